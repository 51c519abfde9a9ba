"""Servers the browser tests start on this machine: a free loopback port, and a server process
that is always stopped (its whole process group), whatever the test does."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server_process(command: list[str], *, cwd: Path, env: dict, log_path: Path) -> Iterator[subprocess.Popen]:
    """Run ``command`` in its own process group, its output in ``log_path``; on exit send the group
    SIGTERM, then SIGKILL if it has not stopped within 30 s."""
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield server
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
