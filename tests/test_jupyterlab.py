"""A reader opens a chapter in JupyterLab and runs it.

JupyterLab (installed by the requirements, with jupytext's contents manager and jupyterlab-myst) is
started headless on a loopback port with a throw-away settings and workspace folder. Headless
Chromium opens ``chapters/01_gradient.md`` as a notebook (jupytext's "Jupytext Notebook" view, as
*Open With* offers it), runs every cell, and the test checks that every code cell ran, that outputs
appeared, that no cell shows an error, and that the MyST admonitions and labelled equations of the
Markdown cells are rendered rather than shown as source. A screenshot goes to ``ci-artifacts/``. The
server is stopped afterwards.

Skipped without selenium, Chromium and ChromeDriver, unless ``GDBOOK_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from local_servers import free_port, server_process
from test_site import ARTIFACTS, MISSING as SITE_MISSING, browser  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "chapters/01_gradient.md"
JUPYTER_LAB = shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) or shutil.which("jupyter-lab")

MISSING = [m for m in SITE_MISSING if "built site" not in m] + ([] if JUPYTER_LAB else ["JupyterLab"])
if MISSING and os.environ.get("GDBOOK_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"GDBOOK_REQUIRE_BROWSER=1 but missing: {', '.join(MISSING)}")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}")


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    home = tmp_path_factory.mktemp("jupyter")
    port = free_port()
    # Every cell in the page (no virtual scrolling), so the test sees all of them.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text('{"windowingMode": "none"}')
    news = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(home / "runtime"), MPLBACKEND="")
    env.pop("MPLBACKEND")
    command = [
        JUPYTER_LAB,
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={ROOT}",
        "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}",
        "--LabApp.news_url=None",
    ]
    url = f"http://127.0.0.1:{port}"
    with server_process(command, cwd=ROOT, env=env, log_path=home / "lab.log") as server:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(home / 'lab.log').read_text()[-3000:]}")
            time.sleep(1)
        yield url


OPEN_AND_RUN = """
const done = arguments[arguments.length - 1];
(async () => {
  const app = window.jupyterapp;
  await app.restored;
  const panel = await app.commands.execute('docmanager:open',
      {path: arguments[0], factory: 'Jupytext Notebook', kernel: {name: 'python3'}});
  await panel.context.ready;
  await panel.sessionContext.ready;
  window.gdbookPanel = panel;
  await app.commands.execute('notebook:run-all-cells');
  return true;
})().then(done, (error) => done('error: ' + error));
"""

PROGRESS = """
const panel = window.gdbookPanel;
const cells = panel.content.widgets.map((w) => w.model);
const code = cells.filter((c) => c.type === 'code');
const outputs = code.map((c) => c.outputs.toJSON());
return {
  status: panel.sessionContext.session.kernel.status,
  cells: code.length,
  ran: code.filter((c) => c.executionCount !== null).length,
  with_output: outputs.filter((o) => o.length > 0).length,
  errors: outputs.flat().filter((o) => o.output_type === 'error').map((o) => o.ename + ': ' + o.evalue),
};
"""


def test_a_chapter_opens_and_runs_as_a_notebook(browser, lab_url):  # noqa: F811
    browser.set_script_timeout(180)
    browser.get(f"{lab_url}/lab")
    deadline = time.monotonic() + 120
    while not browser.execute_script("return !!(window.jupyterapp && window.jupyterapp.commands)"):
        assert time.monotonic() < deadline, "JupyterLab did not load in Chromium"
        time.sleep(1)
    assert browser.execute_async_script(OPEN_AND_RUN, CHAPTER) is True

    deadline = time.monotonic() + 300
    while True:
        progress = browser.execute_script(PROGRESS)
        if progress["errors"] or (progress["ran"] == progress["cells"] and progress["status"] == "idle"):
            break
        assert time.monotonic() < deadline, f"the chapter did not finish running: {progress}"
        time.sleep(2)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "jupyterlab-01_gradient.png"))
    assert progress["errors"] == [], f"cells that failed in JupyterLab: {progress['errors']}"
    assert progress["cells"] > 10, progress
    assert progress["with_output"] >= progress["cells"] // 3, f"too few outputs appeared: {progress}"

    # MyST in the Markdown cells is rendered (jupyterlab-myst): the goals admonition and the equations
    # appear typeset, not as MyST source.
    rendered = browser.execute_script(
        """
        const texts = [...document.querySelectorAll('.jp-MarkdownCell')].map((c) => c.innerText);
        return {
          goals: texts.some((t) => t.includes('What you will learn') && !t.includes(':::')),
          math: document.querySelectorAll('.jp-MarkdownCell mjx-container, .jp-MarkdownCell .katex').length,
          raw: texts.filter((t) => t.includes(':::{') || t.includes('```{')).length,
        };
        """
    )
    assert rendered["goals"] and rendered["math"] >= 1 and rendered["raw"] == 0, rendered
