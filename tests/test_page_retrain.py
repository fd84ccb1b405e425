"""AppTest tests of the Retrain page (pages/retrain.py), reached through app.py's navigation.

The page is reached as test_app.py describes (first run, then ``switch_page``). One test launches a
real 1-epoch worker from the page and waits for it; the fixture kills and reaps any worker left alive.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_jobs import live_workers, stop_workers, wait_until

from hmlc_core import jobs
from hmlc_core.registry import Registry
from hmlc_core.runs import load_run
from pages import common as app_common

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


@pytest.fixture
def runs_dir(synthetic_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """New runs go to tmp/runs (``HMLC_RUNS_DIR``), which holds a copy of the synthetic run, ``old_run``."""
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", synthetic_run)
    monkeypatch.setattr(app_common, "LOCAL_RUNS_DIR", tmp_path / "local_runs")
    monkeypatch.setenv("HMLC_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("HMLC_DATA_DIR", raising=False)
    shutil.copytree(synthetic_run, tmp_path / "runs" / "old_run")
    yield tmp_path / "runs"
    registry = Registry(tmp_path / "runs")
    leftovers = live_workers(registry)
    stop_workers(registry)
    assert not leftovers, "a worker outlived the test"


def _page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("pages/retrain.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.error, *at.warning, *at.info, *at.success, *at.caption, *at.markdown)]
    return "\n".join(str(p) for p in parts)


def _by_name(registry: Registry, name: str):
    return next(r for r in registry.runs() if r.name == name)


def _doc_profile_rows() -> list[tuple]:
    """The paper/quick rows of docs/performance.md's 'Full training runs' table, parsed independently."""
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    section = text[text.index("## Full training runs"):]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.match(r"(paper|quick)\b", cells[0]):
            rows.append((cells[0].split()[0], int(cells[2]), float(cells[3].rstrip(" s")), float(cells[5]),
                         float(cells[6])))
    return rows


def test_page_renders_defaults_registry_and_profile_costs(runs_dir: Path) -> None:
    at = _page()
    assert at.title[0].value == "Retrain"
    assert at.selectbox(key="rt_dataset").options == ["synthetic"]
    assert any("HMLC_DATA_DIR" in i.value for i in at.info)
    assert at.radio(key="rt_profile").value == "quick" and at.radio(key="rt_fit_on").value == "train"
    assert at.number_input(key="rt_epochs").value is None
    assert not at.button(key="rt_launch").disabled and not at.error
    # the profile costs shown are docs/performance.md's measured figures
    shown = at.table[0].value
    doc = _doc_profile_rows()
    assert len(doc) == 4
    page_rows = [(r["profile"], int(r["epochs"]), float(r["wall time (s)"]), float(r["test AUPRC"]),
                  float(r["macro recall"])) for _, r in shown.iterrows()]
    assert sorted(page_rows) == sorted(doc)
    assert "docs/performance.md" in _texts(at)
    # the run folder made outside the page was imported into the registry on start
    registry = Registry(runs_dir)
    (old,) = registry.runs()
    assert (old.folder, old.status) == ("old_run", "finished")
    assert list(at.dataframe[0].value["name"]) == ["old_run"]


def test_invalid_combination_shows_the_validation_error(runs_dir: Path) -> None:
    at = _page()
    at.number_input(key="rt_heads").set_value(1)
    at.selectbox(key="rt_focal").set_value("epistemic").run()
    assert any("heads >= 2" in e.value for e in at.error)
    assert at.button(key="rt_launch").disabled
    at.selectbox(key="rt_focal").set_value("mean")
    at.number_input(key="rt_label_smoothing").set_value(0.1).run()
    assert any("label_smoothing" in e.value for e in at.error)
    at.selectbox(key="rt_loss").set_value("zlpr").run()
    assert not at.error and not at.button(key="rt_launch").disabled
    assert [r.folder for r in Registry(runs_dir).runs()] == ["old_run"]  # nothing was queued


def test_dataset_without_valid_split_needs_train_valid(runs_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"mine.{split}.arff").write_text("@relation mine\n")
    monkeypatch.setenv("HMLC_DATA_DIR", str(data))
    at = _page()
    assert at.selectbox(key="rt_dataset").options == ["synthetic", "mine"]
    assert not at.info  # no hint about HMLC_DATA_DIR once it is set
    at.selectbox(key="rt_dataset").set_value("mine").run()
    assert any("no valid split" in e.value for e in at.error)
    at.radio(key="rt_fit_on").set_value("train+valid").run()
    assert not at.error


def test_launch_runs_a_job_in_the_background(runs_dir: Path) -> None:
    at = _page()
    at.number_input(key="rt_epochs").set_value(1)
    at.text_input(key="rt_name").set_value("from the page")
    at.button(key="rt_launch").click().run()
    assert not at.exception
    registry = Registry(runs_dir)
    record = _by_name(registry, "from the page")
    assert record.status in ("queued", "running")
    config = record.train_config()
    assert (config.epochs, config.profile, config.fit_on, config.weighting) == (1, "quick", "train", "class-wise")
    assert any("from the page" in s.label for s in at.status)  # the jobs panel shows it
    assert any("from the page" in s.value for s in at.success)

    done = wait_until(lambda: registry.get(record.id).status in ("finished", "failed", "cancelled"),
                      what="the launched run")
    assert done
    record = registry.get(record.id)
    assert record.status == "finished", record.error
    assert load_run(record.path).summary["epochs_completed"] == 1
    wait_until(lambda: not jobs.process_alive(record.pid, record.pid_token), 30, "the worker to exit")
    at.run()
    assert not at.exception and not at.status
    assert re.search(r"from the page\*\* · finished", _texts(at))
    assert "from the page" in list(at.dataframe[0].value["name"])


def test_start_from_an_existing_run_loads_its_config(runs_dir: Path, synthetic_run: Path) -> None:
    at = _page()
    (old,) = Registry(runs_dir).runs()
    assert at.radio(key="rt_profile").value == "quick"
    at.selectbox(key="rt_start").set_value(old.id).run()
    expected = load_run(synthetic_run).config
    assert at.radio(key="rt_profile").value == expected.profile == "paper"
    assert at.number_input(key="rt_epochs").value == expected.epochs == 3
    assert at.radio(key="rt_fit_on").value == expected.fit_on == "train+valid"
    assert at.selectbox(key="rt_focal").value == expected.focal
    at.selectbox(key="rt_start").set_value("defaults").run()
    assert at.radio(key="rt_profile").value == "quick" and at.number_input(key="rt_epochs").value is None


def test_cancel_buttons_of_queued_and_running_jobs(runs_dir: Path) -> None:
    registry = Registry(runs_dir)
    at = _page()
    form_config = jobs.retrain_config(None, "synthetic", epochs=1)
    running = registry.submit(form_config, "stand-in worker")
    registry.claim_next()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        registry.attach_worker(running.id, sleeper.pid, jobs.process_token(sleeper.pid))
        registry.report_progress(running.id, 0, 1)
        queued = registry.submit(form_config, "waiting job")
        at.run()
        assert sorted(s.label.split(" · ")[0] for s in at.status) == ["stand-in worker", "waiting job"]
        assert [s.state for s in at.status] == ["running", "running"]  # not marked complete while active
        (progress,) = at.get("progress")  # only the running job has a progress bar
        assert progress.proto.text.startswith("epoch 0/1 · ")
        at.button(key=f"rt_cancel_{queued.id}").click().run()
        assert registry.get(queued.id).status == "cancelled"
        at.button(key=f"rt_cancel_{running.id}").click().run()
        assert sleeper.wait(timeout=30) != 0  # the stand-in got SIGTERM
    finally:
        sleeper.kill()
        sleeper.wait()
    at.run()  # the panel dispatches, which reconciles the dead worker
    assert registry.get(running.id).status == "cancelled"
    assert not at.status


def test_rename_and_delete_from_the_page(runs_dir: Path, synthetic_run: Path) -> None:
    shutil.copytree(synthetic_run, runs_dir / "other_run")
    at = _page()
    registry = Registry(runs_dir)
    old = next(r for r in registry.runs() if r.folder == "old_run")
    at.selectbox(key="rt_manage").set_value(old.id).run()
    at.text_input(key="rt_new_name").set_value("renamed run").run()
    at.button(key="rt_rename").click().run()
    assert not at.exception
    assert registry.get(old.id).name == "renamed run" and (runs_dir / "old_run").is_dir()
    assert "renamed run" in list(at.dataframe[0].value["name"])

    assert at.button(key="rt_delete").disabled  # not confirmed yet
    at.checkbox(key="rt_confirm_delete").check().run()
    at.button(key="rt_delete").click().run()
    assert not at.exception
    assert not (runs_dir / "old_run").exists()
    assert [r.folder for r in registry.runs()] == ["other_run"]
    assert load_run(runs_dir / "other_run").summary["status"] == "finished"
    assert list(at.dataframe[0].value["name"]) == ["other_run"]


def test_concurrency_setting_is_stored(runs_dir: Path) -> None:
    at = _page()
    assert at.number_input(key="rt_max_concurrent").value == 1
    at.number_input(key="rt_max_concurrent").set_value(3).run()
    assert Registry(runs_dir).max_concurrent == 3


def test_run_chooser_shows_registry_names_and_keeps_urls(runs_dir: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    (old,) = Registry(runs_dir).runs()  # the app's first view imported the folder
    assert at.selectbox(key="run").options == ["demo", "old_run"]
    Registry(runs_dir).rename(old.id, "nice name")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = "old_run"
    at.run()
    assert not at.exception and not at.warning
    assert at.selectbox(key="run").value == "old_run"  # the URL key is still the folder name
    assert at.selectbox(key="run").options == ["demo", "old_run"]
    assert any(c.value.startswith("**nice name** · ") for c in at.sidebar.caption)
