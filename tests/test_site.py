"""The built site, as a reader meets it: every page in a real headless Chromium.

Runs when the book has been built (``_build/html``) and Chromium, ChromeDriver and Selenium are
installed (CI installs them; see ``.ci/run``); otherwise the tests are skipped. For every page of the
table of contents it checks that the browser logs no JavaScript error, that every image and every
animation frame loads, and that every equation has been typeset by MathJax (no raw TeX left outside
code). It also follows the navigation from the landing page to every chapter, runs a search, and
saves screenshots to ``ci-artifacts/``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

from test_structure import toc_files

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
ARTIFACTS = ROOT / "ci-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - selenium is installed by .ci/run, not requirements.txt
    webdriver = None

MISSING = [
    what
    for what, present in [
        ("a built site (_build/html)", (HTML / "index.html").exists()),
        ("selenium", webdriver is not None),
        ("Chromium", CHROMIUM),
        ("ChromeDriver", CHROMEDRIVER),
    ]
    if not present
]
if MISSING and os.environ.get("GDBOOK_REQUIRE_BROWSER") == "1":  # CI: a skip would hide a broken set-up
    raise RuntimeError(f"GDBOOK_REQUIRE_BROWSER=1 but missing: {', '.join(MISSING)}")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (see .ci/run)")

PAGES = [f"{name}.html" for name in toc_files()]

# Raw TeX that MathJax should have turned into typeset math (looked for outside code blocks).
TEX_LEFTOVERS = ["\\(", "\\[", "$$", "\\frac", "\\begin{", "\\nabla", "\\alpha", "\\theta"]

VISIBLE_TEXT_OUTSIDE_CODE = """
const main = document.querySelector('main') || document.body;
const clone = main.cloneNode(true);
clone.querySelectorAll('pre, code, .highlight, mjx-container, script, style, .output')
     .forEach(node => node.remove());
return clone.innerText;
"""

BROKEN_IMAGES = """
return Array.from(document.images)
  .filter(img => !(img.complete && img.naturalWidth > 0))
  .map(img => img.getAttribute('src').slice(0, 80));
"""


@pytest.fixture(scope="module")
def site_url():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))

    class QuietHandler(handler.func):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1300,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, url: str):
    driver.get(url)
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    # MathJax typesets asynchronously: wait until it says it is done.
    driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
            MathJax.startup.promise.then(() => done(true)).catch(() => done(false));
        } else { done(true); }
        """
    )


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_cleanly(browser, site_url, page):
    browser.get_log("browser")  # drop what earlier pages logged
    open_page(browser, f"{site_url}/{page}")
    assert browser.title, f"{page} has no title"
    assert console_errors(browser) == [], f"JavaScript errors on {page}"
    assert browser.execute_script(BROKEN_IMAGES) == [], f"images that did not load on {page}"

    text = browser.execute_script(VISIBLE_TEXT_OUTSIDE_CODE)
    leftovers = [tex for tex in TEX_LEFTOVERS if tex in text]
    assert leftovers == [], f"raw TeX left on {page}: {leftovers}"
    math_spans = browser.find_elements(By.CSS_SELECTOR, "main .math")
    typeset = browser.find_elements(By.CSS_SELECTOR, "main mjx-container")
    assert len(typeset) >= len(math_spans), f"{page}: {len(math_spans)} equations, {len(typeset)} typeset"


@pytest.mark.parametrize("page", [page for page in PAGES if page.startswith("chapters/")])
def test_animations_play(browser, site_url, page):
    open_page(browser, f"{site_url}/{page}")
    animations = browser.find_elements(By.CSS_SELECTOR, "main .animation")
    for animation in animations:
        frame = animation.find_element(By.CSS_SELECTOR, "img")
        first = frame.get_attribute("src")
        assert first.startswith("data:image/"), f"{page}: an animation has no embedded frame"
        # Step one frame forward with the widget's own button: the image must change.
        buttons = animation.find_elements(By.CSS_SELECTOR, "button")
        next_frame = [b for b in buttons if "step-forward" in (b.get_attribute("innerHTML") or "")]
        assert next_frame, f"{page}: animation without a step button"
        browser.execute_script("arguments[0].click()", next_frame[0])
        assert frame.get_attribute("src") != first, f"{page}: the animation did not advance"


def test_navigation_reaches_every_chapter(browser, site_url):
    open_page(browser, f"{site_url}/index.html")
    links = {
        link.get_attribute("href").split("#")[0].removeprefix(site_url + "/")
        for link in browser.find_elements(By.CSS_SELECTOR, "nav.bd-docs-nav a.reference")
    }
    missing = [page for page in PAGES if page.startswith("chapters/") and page not in links]
    assert missing == [], f"pages the navigation does not link to: {missing}"
    for page in sorted(links):
        if page.endswith(".html"):
            open_page(browser, f"{site_url}/{page}")
            assert "404" not in browser.title, f"{page} is linked but does not load"


def test_search_finds_adagrad(browser, site_url):
    browser.get(f"{site_url}/search.html?q=Adagrad")
    WebDriverWait(browser, 60).until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
            or "did not match" in d.find_element(By.ID, "search-results").text
        )
    )
    results = browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
    pages = sorted({r.find_element(By.TAG_NAME, "a").get_attribute("href").split("/")[-1] for r in results})
    assert results, "searching for Adagrad found nothing"
    print("Adagrad found on:", pages)


def test_screenshots(browser, site_url):
    ARTIFACTS.mkdir(exist_ok=True)
    for page, name in [("index.html", "landing"), (PAGES[1], "first-chapter")]:
        open_page(browser, f"{site_url}/{page}")
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1300, min(height, 8000))
        assert browser.save_screenshot(str(ARTIFACTS / f"screenshot-{name}.png"))
    browser.set_window_size(1300, 1000)


@pytest.mark.parametrize("page", [page for page in PAGES if page.startswith("chapters/")])
def test_download_menu_offers_the_executed_notebook(browser, site_url, page):
    """The download menu links the page's executed notebook (.ipynb, with outputs) next to its .md."""
    import json
    import urllib.request

    open_page(browser, f"{site_url}/{page}")
    links = [
        a.get_attribute("href")
        for a in browser.find_elements(By.CSS_SELECTOR, ".dropdown-download-buttons a")
        if (a.get_attribute("href") or "").endswith(".ipynb")
    ]
    assert len(links) == 1, f"{page}: the download menu offers {len(links)} notebooks"
    with urllib.request.urlopen(links[0], timeout=30) as response:
        notebook = json.loads(response.read())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and "".join(code[0]["source"]).startswith("import gdbook"), f"{links[0]} is not the chapter"
    assert any(cell.get("outputs") for cell in code), f"{links[0]} has no outputs"
