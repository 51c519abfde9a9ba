"""Every chapter is also a plain script: ``python chapters/NN_name.py`` runs top to bottom.

The cells are the same code that nbval runs through a kernel (see ``conftest.py``), with one
difference: in a script :func:`gdbook.expect_error` catches the error it expects and prints it, where
a notebook lets it propagate so that the reader sees the traceback. So every script is compiled here,
and the scripts that show errors on purpose (the only ones whose path differs from the notebook's)
are run in full, in a subprocess, as a reader would run them.
"""

import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "chapters").glob("*.py"))
SHOWS_ERRORS = [script for script in SCRIPTS if "expect_error(" in script.read_text()]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_compiles(script, tmp_path):
    py_compile.compile(str(script), cfile=str(tmp_path / "compiled.pyc"), doraise=True)


@pytest.mark.parametrize("script", SHOWS_ERRORS, ids=lambda p: p.name)
def test_script_runs_to_the_end(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,  # chapters must not depend on the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
