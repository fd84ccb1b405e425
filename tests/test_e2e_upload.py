"""Browser test: "Upload your own data" on the Retrain page, in headless Chromium (issue 15, item 3).

``streamlit run app.py`` on 127.0.0.1 with ``HMLC_DATA_DIR`` a fresh temporary folder. A valid table (60
rows, a ``labels`` column) and an edge-list hierarchy are set on the two file inputs; the summary shows,
"Save as dataset" writes the dataset folder, the Dataset chooser offers it at once, the upload expander
stays open, and a 1-epoch retrain of it (Fit on train+valid: a table dataset has no valid split) is
launched and finishes, and the run opens through the Runs section's link and on the Overview. A table with
a non-numeric feature cell and a hierarchy with a cycle each get an error naming the file and the line, and
write nothing. A second server started with ``server.maxUploadSize`` 1 MB refuses a 2 MB table in the
browser, and again nothing is written. Skips like tests/test_e2e_browser.py without Chromium or playwright.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, _no_exception, _settle, streamlit_app, sync_api, wait_for_jobs

EDGES = "parent,child\nr,a\nr,b\na,a1\na,a2\nb,b1\n"


def _table(rows: int = 60) -> str:
    """A CSV table of ``rows`` samples: 3 numeric features and labels among the hierarchy's leaves."""
    rng = np.random.default_rng(0)
    leaves = ["a1", "a2", "b1"]
    lines = ["f0,f1,f2,labels"]
    for i in range(rows):
        label = leaves[i % 3]
        lines.append(f"{rng.normal() + i % 3:.4f},{rng.normal():.4f},{rng.normal() - i % 3:.4f},{label}")
    return "\n".join(lines) + "\n"


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _env(tmp: pytest.TempPathFactory, data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HMLC_DATA_DIR": str(data_dir), "HMLC_RUNS_DIR": str(tmp.mktemp("upload_e2e_runs")),
            "HMLC_LOCAL_RUNS_DIR": str(tmp.mktemp("upload_e2e_no_user_runs")), "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as pw:  # playwright gives the browser a fresh temporary profile
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _open_upload(page: object, url: str) -> None:
    """Open the Retrain page and its "Upload your own data" expander."""
    page.goto(f"{url}/retraining")
    _settle(page)
    _no_exception(page)
    page.get_by_text("Upload your own data", exact=True).click()
    page.locator(".st-key-rt_upload_table input[type=file]").wait_for(state="attached", timeout=10_000)


def _upload(page: object, table: Path, hierarchy: Path, shows: str) -> None:
    """Set the two file inputs and wait until the page shows ``shows`` (the summary or an error)."""
    page.locator(".st-key-rt_upload_table input[type=file]").set_input_files(str(table))
    page.locator(".st-key-rt_upload_hierarchy input[type=file]").set_input_files(str(hierarchy))
    page.get_by_text(shows).first.wait_for(timeout=30_000)
    _settle(page)
    _no_exception(page)


def _errors(page: object) -> str:
    return "\n".join(page.locator("[data-testid=stAlertContentError]").all_inner_texts())


def test_upload_trains_and_bad_uploads_write_nothing(tmp_path_factory: pytest.TempPathFactory,
                                                     browser: object) -> None:
    files = tmp_path_factory.mktemp("upload_e2e_files")
    (files / "mine.csv").write_text(_table())
    (files / "tax.csv").write_text(EDGES)
    (files / "bad.csv").write_text("f0,labels\n1,a1\nx,b1\n")
    (files / "loop.csv").write_text("parent,child\nr,a\na,b\nb,a\n")
    data_dir = tmp_path_factory.mktemp("upload_e2e_data")
    env = _env(tmp_path_factory, data_dir)
    runs_dir = Path(env["HMLC_RUNS_DIR"])
    with streamlit_app(env, tmp_path_factory.mktemp("upload_e2e_log") / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            # bad uploads first: each names the file and the line, Save stays disabled, nothing is written
            for table, hierarchy, message in [("bad.csv", "tax.csv", "bad.csv: line 3, column 'f0':"),
                                              ("mine.csv", "loop.csv", "loop.csv: line")]:
                _open_upload(page, url)
                _upload(page, files / table, files / hierarchy, message)
                assert message in _errors(page), _errors(page)
                assert page.get_by_role("button", name="Save as dataset").is_disabled()
                assert _listing(data_dir) == []

            # a valid upload: summary, Save, the Dataset chooser offers it
            _open_upload(page, url)
            _upload(page, files / "mine.csv", files / "tax.csv", "60 samples")
            body = page.inner_text("[data-testid=stMain]")
            assert "60 samples, 3 features; 100% of the samples have a label" in body, body
            assert "6 nodes, depth 2" in body
            assert _errors(page) == ""
            page.get_by_role("button", name="Save as dataset").click()
            _settle(page)
            _no_exception(page)
            [folder] = list(data_dir.iterdir())
            assert folder.name.startswith("upload-")
            assert sorted(p.name for p in folder.iterdir()) == [f"{folder.name}.csv", f"{folder.name}.edges.csv"]
            assert f"Saved as dataset {folder.name}" in page.inner_text("[data-testid=stMain]")

            dataset = page.get_by_label("Dataset", exact=True)
            dataset.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            dataset.click()
            page.locator("[role='listbox']").wait_for(state="visible", timeout=5000)
            options = page.get_by_role("option").all_inner_texts()
            assert folder.name in options, options
            page.get_by_role("option", name=folder.name).click()
            _settle(page)
            _no_exception(page)
            assert dataset.input_value() == folder.name
            # a table dataset has no valid split: the page says so until Fit on is train+valid
            assert "has no valid split: set fit_on to 'train+valid'" in page.inner_text("[data-testid=stMain]")
            page.get_by_role("radiogroup", name="Fit on").get_by_text("train+valid").click()
            _settle(page)
            epochs = page.get_by_label("Epochs", exact=True)
            epochs.fill("1")
            epochs.press("Enter")
            _settle(page)
            page.get_by_role("button", name="Launch").click()
            _settle(page)
            rows = wait_for_jobs(page, runs_dir, 60)
            assert len(rows) == 1 and rows[0][2] == "finished", rows
            run_id, run_name, _ = rows[0]
            assert folder.name in run_name, run_name  # the default run name starts with the dataset

            page.goto(f"{url}/retraining")
            _settle(page)
            page.get_by_role("link", name="in the explorer").click()  # "Manage run" starts on the newest run
            page.wait_for_url(f"**/hierarchy?run={run_id}")
            _settle(page)
            _no_exception(page)
            assert page.locator("h1").first.inner_text() == f"Hierarchy explorer · {run_name}"
            page.goto(f"{url}/?run={run_id}")
            _settle(page)
            _no_exception(page)
            main = page.inner_text("[data-testid=stMain]")
            assert run_name in main and folder.name in main, main
        finally:
            page.close()


def test_file_over_the_limit_is_refused(tmp_path_factory: pytest.TempPathFactory, browser: object) -> None:
    files = tmp_path_factory.mktemp("upload_e2e_big")
    big = _table(60) + "1,2,3,a1\n" * (2 * 2**20 // 9)  # about 2 MB
    (files / "big.csv").write_text(big)
    (files / "tax.csv").write_text(EDGES)
    data_dir = tmp_path_factory.mktemp("upload_e2e_big_data")
    env = _env(tmp_path_factory, data_dir, STREAMLIT_SERVER_MAX_UPLOAD_SIZE="1")
    with streamlit_app(env, tmp_path_factory.mktemp("upload_e2e_big_log") / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            _open_upload(page, url)
            assert "at most 1 MB each" in page.inner_text("[data-testid=stMain]")
            _upload(page, files / "big.csv", files / "tax.csv", "big.csv")
            uploader = page.locator(".st-key-rt_upload_table").inner_text()
            assert "big.csv" in uploader and "File must be 1.0MB or smaller." in uploader, uploader
            assert page.get_by_role("button", name="Save as dataset").count() == 0  # the table was not taken
            assert _listing(data_dir) == []
        finally:
            page.close()
