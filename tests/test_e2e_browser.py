"""End-to-end browser test: ``streamlit run app.py`` on localhost, driven in headless Debian Chromium.

Opens every page on the bundled demo run, launches a 1-epoch retrain of the synthetic demo dataset from
the Retrain page, waits for it to finish, and finds it on the Compare page. Screenshots of each page are
saved as test artifacts in ``test-artifacts/`` (the README's screenshots come from there).

Needs ``/usr/bin/chromium`` (Debian's ``chromium`` package; another binary via ``HMLC_CHROMIUM``) and
playwright-python; ``.ci/run`` installs both and sets ``HMLC_E2E_REQUIRED=1``, so there a missing browser
fails the run. Elsewhere, without them, the test skips and says why.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("HMLC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

REQUIRED = os.environ.get("HMLC_E2E_REQUIRED") == "1"  # set by .ci/run: there a missing browser is a failure

try:
    from playwright import sync_api
except ImportError:
    if REQUIRED:
        raise
    pytest.skip("playwright-python is not installed (pip install -r requirements.txt)", allow_module_level=True)
if not Path(CHROMIUM).exists():
    if REQUIRED:
        raise RuntimeError(f"HMLC_E2E_REQUIRED=1 but there is no Chromium at {CHROMIUM}")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Streamlit server on a free port; new runs go to a temporary ``HMLC_RUNS_DIR``. Yields (url, runs_dir)."""
    runs_dir = tmp_path_factory.mktemp("e2e_runs")
    port = _free_port()
    env = {**os.environ, "HMLC_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": "1"}
    env.pop("HMLC_DATA_DIR", None)  # the Retrain page then offers the synthetic demo dataset only
    log = (tmp_path_factory.mktemp("e2e_log") / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start (exit code {proc.poll()}); log: {log.name}")
            time.sleep(0.5)
        yield url, runs_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server: tuple[str, Path]) -> Iterator[object]:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:  # playwright gives the browser a fresh temporary profile
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            yield page
        finally:
            browser.close()


def _settle(page: object, timeout_ms: int = 60_000) -> None:
    """Wait until the app has rendered and its script is not running."""
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)
    page.wait_for_timeout(500)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)


def _no_exception(page: object) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()


def _open(page: object, url: str, name: str) -> None:
    page.goto(url)
    _settle(page)
    _no_exception(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _registry_rows(runs_dir: Path) -> list[tuple[str, str, str]]:
    db = runs_dir / "registry.sqlite"
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=5) as con:
        return con.execute("SELECT id, name, status FROM runs").fetchall()


def test_pages_retrain_and_compare(server: tuple[str, Path], page: object) -> None:
    url, runs_dir = server

    _open(page, url, "overview")
    assert "Overview" in page.inner_text("body")

    page.goto(f"{url}/hierarchy?run=demo&color=recall&node=2.1")
    page.wait_for_selector("g.slice", timeout=60_000)  # the sunburst has drawn
    _settle(page)
    _no_exception(page)
    assert "Hierarchy explorer" in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "explorer.png"))

    _open(page, f"{url}/missed-nodes?run=demo", "missed")

    _open(page, f"{url}/retraining?run=demo", "retrain")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    _settle(page)
    page.get_by_role("button", name="Launch").click()
    deadline = time.monotonic() + 180
    while True:
        rows = _registry_rows(runs_dir)
        if rows and all(status in ("finished", "failed", "cancelled") for _, _, status in rows):
            break
        assert time.monotonic() < deadline, f"the retrain did not finish in time: {rows}"
        page.wait_for_timeout(1000)
    assert len(rows) == 1 and rows[0][2] == "finished", rows
    run_id, run_name, _ = rows[0]
    page.wait_for_timeout(2500)  # the progress fragment refreshes about every second
    _no_exception(page)
    assert "finished" in page.inner_text("body")
    page.get_by_text("Recently ended").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "retrain.png"))

    _open(page, f"{url}/comparison?run=demo", "compare")
    body = page.inner_text("body")
    assert run_name in body or run_id in body, "the new run is not offered on the Compare page"
