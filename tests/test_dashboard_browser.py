"""The dashboard in a real browser: `streamlit run dashboard/app.py -- --db URL` on a free localhost port, and
Debian's Chromium driven by Playwright through every page (never `playwright install`). Screenshots are saved as
test artifacts in tests/artifacts/dashboard/ (or $REPRO_TEST_ARTIFACTS/dashboard/)."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What works on these machines (../shared/ENVIRONMENT.md): no sandbox as root, and none of Chromium's own
# background connections, which a closed network refuses.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("REPRO_TEST_ARTIFACTS", REPO / "tests" / "artifacts")) / "dashboard"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian's chromium is not installed (make testbed installs it, as root)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")

# (path, the page's title, texts the page must show, data grids and charts at least); a data grid draws its cells on a
# canvas, so the texts are the page's own
PAGES = [
    ("", "Published vs reproduced", ["Coverage", "6/12 claims tested", "Tables"], 1, 1),  # bulat2019: Table 1's 6
    ("table?paper=bulat2019&table=1", "Table", ["Published and reproduced", "At profile smoke", "Assumptions",
                                                "the real-valued network is above every binary one",
                                                "the numbers behind it"], 2, 0),
    ("runs", "Runs", ["10 run(s): 10 finished", "MLflow links open the MLflow UI"], 1, 0),
    ("curves?paper=bulat2019&table=1", "Curves", ["Thin lines: one seed each"], 1, 1),
    ("structure?paper=bulat2019&table=1", "Structure", ["Measured against published", "Packed against float size"], 2, 1),
    ("kernels", "Kernels", ["thread(s)", "The papers' efficiency claims"], 2, 1),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dashboard(filled_db):
    """The dashboard served on localhost, its database given on the command line (REPRO_DB unset)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "REPRO_DB"}
    log = open(filled_db.folder / "streamlit.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.port",
                               str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                               "--browser.gatherUsageStats", "false", "--", "--db", filled_db.url],
                              cwd=filled_db.folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (filled_db.folder / "streamlit.log").read_text()
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """A page once Streamlit has run its script (its status widget gone) and drawn every element (no skeleton left:
    data grids and charts load after the script ends)."""
    page = browser.new_page(viewport={"width": 1400, "height": 2200}, accept_downloads=True)
    page.goto(url)
    page.get_by_role("heading", level=1).first.wait_for(timeout=120_000)
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=120_000)
    page.wait_for_function("document.querySelectorAll('[data-testid=stSkeleton]').length === 0", timeout=60_000)
    return page


@pytest.mark.parametrize("path,title,expected,grids,charts", PAGES, ids=[p[1].split()[0].lower() for p in PAGES])
def test_every_page_in_chromium(dashboard, browser, path, title, expected, grids, charts):
    page = open_page(browser, f"{dashboard}/{path}")
    try:
        assert page.get_by_role("heading", level=1).first.inner_text() == title
        body = page.locator("body").inner_text()
        for text in expected:
            assert text in body, text
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        assert page.locator('[data-testid="stDataFrame"]').count() >= grids
        assert page.locator('[data-testid="stVegaLiteChart"]').count() >= charts
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{title.split()[0].lower()}.png"), full_page=True)
    finally:
        page.close()


def test_the_downloads_are_what_repro_compare_prints(dashboard, browser, filled_db):
    page = open_page(browser, f"{dashboard}/table?paper=bulat2019&table=1")
    try:
        for label, fmt in (("CSV", "csv"), ("Markdown", "markdown"), ("LaTeX", "latex")):
            with page.expect_download() as download:
                page.locator('[data-testid="stDownloadButton"] button').filter(has_text=label).click()
            received = Path(download.value.path()).read_text()
            assert received == filled_db.repro("compare", "--paper", "bulat2019", "--table", "1", "--format", fmt), fmt
    finally:
        page.close()
