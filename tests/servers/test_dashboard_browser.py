"""A real headless Chromium (Debian's `chromium`, driven by Playwright) on a live dashboard.

The dashboard runs as `autoresearch dashboard` in its own process; this test writes trials into
the search's SQLite file with the store's API while the browser watches. Screenshots of the
main page and a trial page are saved as PNG artifacts under `test-artifacts/dashboard/` (or
`$AR_TEST_ARTIFACTS`); with AR_UPDATE_SCREENSHOTS=1 the main page's also becomes the README's
`docs/dashboard.png`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lineage.state import StateDir
from servers.auth import viewer_token
from tests.servers.conftest import CLI, REPO, free_port, stop, wait_port
from tests.servers.dashboard_feed import make_search, record

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("AR_TEST_ARTIFACTS", REPO / "test-artifacts")) / "dashboard"

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: ./install.sh --dev installs chromium")
        pytest.skip("no chromium (./install.sh --dev installs it)")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ar-chromium-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                       viewport={"width": 1500, "height": 1000})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[StateDir, str]]:
    """A search with a few trials, and its dashboard served by `autoresearch dashboard`."""
    sd = make_search(tmp_path / "search")
    record(sd, "opt", "LR", "0.003", score=1.95)
    record(sd, "arch", "HIDDEN", "128", score=1.80, parent=1, hypothesis="narrower hidden layer <b>not bold</b>")
    record(sd, "reg", "WEIGHT_DECAY", "0.001", status="crash", parent=2)
    record(sd, "opt", "EPOCHS", "20", score=1.70, parent=2, hypothesis="fewer epochs: the loss had flattened")
    record(sd, "loss", "LABEL_SMOOTHING", "0.1", score=2.3, parent=4)
    record(sd, "aug", "BATCH_SIZE", "64", parent=4, finish=False)
    port, log = free_port(), tmp_path / "dashboard.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*CLI, "dashboard", "--state", str(sd.path), "--port", str(port), "--poll-ms", "500"],
                                cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_port(port, proc, log)
        yield sd, f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        sd.close()


def _page(browser: Any) -> tuple[Any, list[str]]:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page, problems


def _save(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_browser_sees_a_new_trial_appear_without_a_reload(browser: Any, live: tuple[StateDir, str]) -> None:
    sd, base = live
    page, problems = _page(browser)
    navigations: list[str] = []
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
    page.goto(f"{base}/?token={viewer_token(sd.path)}")
    assert page.url == f"{base}/"  # the token left the address
    page.wait_for_function("document.querySelector('#recent').textContent.includes('exp 006')")
    page.evaluate("window.stillHere = true")
    assert "narrower hidden layer <b>not bold</b>" in page.inner_text("#leaderboard")  # text, not markup
    record(sd, "arch", "HIDDEN", "96", score=1.60, parent=4, hypothesis="a new idea, written while the page watches")
    page.wait_for_function("document.querySelector('#recent').textContent.includes('a new idea, written while')",
                           timeout=30_000)
    page.wait_for_function("document.querySelector('#cards').textContent.includes('exp 007')", timeout=30_000)
    assert page.evaluate("window.stillHere") is True and len(navigations) == 1  # no reload
    page.wait_for_selector("#chart-trials .main-svg")
    assert page.locator("#specialists tr").count() == 6  # a header and five specialists
    cookie = next(c for c in browser.cookies() if c["name"].startswith("ar_dashboard_"))
    assert cookie["httpOnly"] and "ar_dashboard" not in page.evaluate("document.cookie")
    shot = _save(page, "main.png")
    if os.environ.get("AR_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, REPO / "docs" / "dashboard.png")
    assert shot.stat().st_size > 50_000 and problems == []
    page.close()


def test_browser_opens_a_trial_page_with_its_diff(browser: Any, live: tuple[StateDir, str]) -> None:
    sd, base = live
    page, problems = _page(browser)
    page.goto(f"{base}/?token={viewer_token(sd.path)}")
    page.wait_for_function("document.querySelector('#leaderboard').textContent.includes('exp 004')")
    page.click("#leaderboard >> text=exp 004")
    page.wait_for_url(f"{base}/s/search/trial/4")
    assert "fewer epochs: the loss had flattened" in page.inner_text(".hypothesis")
    added = page.locator(".diff tr.add").all_inner_texts()
    removed = page.locator(".diff tr.del").all_inner_texts()
    assert any("EPOCHS = 20" in row for row in added) and any("EPOCHS = 30" in row for row in removed)
    assert page.locator(".diff tr.add .code span").count() > 0  # highlighted tokens, not plain text
    assert "2.900 s" in page.inner_text("body") and "NVIDIA H200" in page.inner_text("body")
    shot = _save(page, "trial.png")
    assert shot.stat().st_size > 30_000 and problems == []
    page.close()


def test_browser_without_a_token_gets_401(browser: Any, live: tuple[StateDir, str]) -> None:
    _, base = live
    page = browser.new_page()
    page.context.clear_cookies()  # the module's browser may hold an earlier test's cookie
    response = page.goto(f"{base}/")
    assert response is not None and response.status == 401
    assert "needs a token" in page.inner_text("body") and "autoresearch tokens" in page.inner_text("body")
    api = page.goto(f"{base}/api/s/search/summary")
    assert api is not None and api.status == 401
    page.close()
