"""Chapter 8's logs, as a reader opens them: in the real TensorBoard, in a real browser.

The logs are written by ``gdbook.tensorboard_logs``, the module exported from the chapter's cells
(``train_and_log``: ``tf.summary.scalar`` / ``tf.summary.histogram`` in a custom loop; ``fit_and_log``:
Keras' ``TensorBoard(histogram_freq=1)`` callback), on a tiny network so that the test stays fast.
``tensorboard --logdir`` serves them on a loopback port; headless Chromium opens the *Scalars* and
*Distributions* dashboards, and the test checks that the browser logs no error, that the runs' tags
are shown, and saves a screenshot of each to ``ci-artifacts/``. The server is always stopped.

Skipped without selenium, Chromium and ChromeDriver, unless ``GDBOOK_REQUIRE_BROWSER=1`` (CI).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from local_servers import free_port, server_process
from test_site import ARTIFACTS, MISSING as SITE_MISSING, browser, console_errors  # noqa: F401  (a fixture)

TENSORBOARD = shutil.which("tensorboard", path=str(Path(sys.executable).parent)) or shutil.which("tensorboard")

MISSING = [m for m in SITE_MISSING if "built site" not in m] + ([] if TENSORBOARD else ["TensorBoard"])
if MISSING and os.environ.get("GDBOOK_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"GDBOOK_REQUIRE_BROWSER=1 but missing: {', '.join(MISSING)}")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}")

STEPS, EPOCHS = 20, 3
# What the dashboards must show: (run, tag) as the chapter's functions name them.
SCALAR_TAGS = ["loss", "grad_norm/global", "grad_norm/layer01", "grad_norm/output", "epoch_loss"]
DISTRIBUTION_TAGS = ["grads/layer01", "grads/output", "fit_demo/layer01/kernel/histogram"]
RUNS = ["chain", "fit/train"]
# The dashboards group tags by prefix and draw only the first groups' cards; a tag filter matching every
# tag puts all of them (fewer than a page, 12) in one open group.
ALL_TAGS = "tagFilter=.*"


def tiny_network(name: str):
    import keras

    layers = [
        keras.layers.Dense(8, "relu", kernel_initializer=keras.initializers.HeNormal(seed=1), name="layer01"),
        keras.layers.Dense(8, "relu", kernel_initializer=keras.initializers.HeNormal(seed=2), name="layer02"),
        keras.layers.Dense(1, kernel_initializer=keras.initializers.HeNormal(seed=3), name="output"),
    ]
    return keras.Sequential([keras.Input((1,)), *layers], name=name)


def write_logs(root: Path) -> None:
    """Logs written as Chapter 8 writes them: a custom loop, and `fit` with Keras' callback."""
    import gdbook

    gdbook.setup()
    import keras
    import numpy as np

    from gdbook.tensorboard_logs import fit_and_log, train_and_log

    x = np.linspace(-2, 2, 64, dtype=np.float32)[:, None]
    y = np.sin(1.5 * x)
    losses = train_and_log(
        root / "chain",
        tiny_network("chain"),
        x,
        y,
        keras.optimizers.SGD(0.01, global_clipnorm=1.0),
        STEPS,
        histograms=("layer01", "output"),
    )
    assert losses.shape == (STEPS,) and np.all(np.isfinite(losses))
    model = tiny_network("fit_demo")
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    fit_and_log(root / "fit", model, x, y, EPOCHS, batch_size=len(x))


@pytest.fixture(scope="module")
def tensorboard_url(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("tensorboard-logs")
    port = free_port()
    home = tmp_path_factory.mktemp("tensorboard-home")
    log_path = home / "tensorboard.log"
    command = [TENSORBOARD, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--reload_interval", "2"]
    url = f"http://127.0.0.1:{port}"
    # Started first: TensorBoard starts up (it imports TensorFlow) while the logs are written.
    env = dict(os.environ, HOME=str(home))
    with server_process(command, cwd=home, env=env, log_path=log_path) as server:
        write_logs(logdir)
        deadline = time.monotonic() + 120
        runs = None
        while True:
            try:
                # The runs list is filled once TensorBoard has loaded the logs.
                with urllib.request.urlopen(f"{url}/data/runs", timeout=5) as response:
                    runs = json.loads(response.read())
                    if set(RUNS) <= set(runs):
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"TensorBoard did not load the runs (runs: {runs}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url


# Visible text of the page, through the shadow roots of TensorBoard's Polymer dashboards.
DEEP_TEXT = """
const out = [];
const walk = (node) => {
  if (node.shadowRoot) walk(node.shadowRoot);
  for (const child of node.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) out.push(child.textContent);
    else walk(child);
  }
};
walk(document.body);
return out.join(' ');
"""


def open_dashboard(browser, url: str, tags: list[str], screenshot: str) -> str:  # noqa: F811
    browser.get_log("browser")  # drop what an earlier page logged
    browser.set_window_size(1300, 1400)  # every card of the dashboard in the screenshot
    browser.get(url)
    deadline = time.monotonic() + 60
    while True:
        text = browser.execute_script(DEEP_TEXT)
        missing = [name for name in tags + RUNS if name not in text]
        if not missing:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    time.sleep(2)  # let the charts draw their lines before the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / screenshot))
    assert missing == [], f"not shown on {url}: {missing}"
    return text


def test_scalars_dashboard(browser, tensorboard_url):  # noqa: F811
    open_dashboard(browser, f"{tensorboard_url}/#scalars&{ALL_TAGS}", SCALAR_TAGS, "tensorboard-scalars.png")
    assert console_errors(browser) == [], "JavaScript errors on the Scalars dashboard"


def test_distributions_dashboard(browser, tensorboard_url):  # noqa: F811
    url = f"{tensorboard_url}/#distributions&{ALL_TAGS}"
    open_dashboard(browser, url, DISTRIBUTION_TAGS, "tensorboard-distributions.png")
    assert console_errors(browser) == [], "JavaScript errors on the Distributions dashboard"
