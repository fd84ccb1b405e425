"""AppTest tests of the Retrain page (app_pages/retrain.py), reached through app.py's navigation.

The page is reached as test_app.py describes (first run, then ``switch_page``). One test launches a
real 1-epoch worker from the page and waits for it; the fixture kills and reaps any worker left alive.
"""

from __future__ import annotations

import html
import json
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
from app_pages import common as app_common

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"


@pytest.fixture
def runs_dir(synthetic_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """New runs go to tmp/runs (``HMLC_RUNS_DIR``), which holds a copy of the synthetic run, ``old_run``.

    The demo pair is the synthetic run and a copy of it.
    """
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", synthetic_run)
    shutil.copytree(synthetic_run, tmp_path / "demo_weighted_run")
    monkeypatch.setattr(app_common, "DEMO_WEIGHTED_RUN_DIR", tmp_path / "demo_weighted_run")
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
    at.switch_page("app_pages/retrain.py")
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
    assert at.selectbox(key="rt_dataset").options == ["synthetic", "shapes"]
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
    assert any(app_common.md_text("heads >= 2") in e.value for e in at.error)  # shown as text
    assert at.button(key="rt_launch").disabled
    at.selectbox(key="rt_focal").set_value("mean")
    at.number_input(key="rt_label_smoothing").set_value(0.1).run()
    assert any(app_common.md_text("label_smoothing") in e.value for e in at.error)
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
    assert at.selectbox(key="rt_dataset").options == ["synthetic", "shapes", "mine"]
    assert not at.info  # no hint about HMLC_DATA_DIR once it is set
    assert at.number_input(key="rt_valid_fraction").disabled  # synthetic has its own valid split
    at.selectbox(key="rt_dataset").set_value("mine").run()
    assert any("no valid split" in e.value for e in at.error)
    assert not at.number_input(key="rt_valid_fraction").disabled
    at.number_input(key="rt_valid_fraction").set_value(0.3).run()  # hold one out of the training rows
    assert not at.error
    at.number_input(key="rt_valid_fraction").set_value(0.0)
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


def test_start_from_a_demo_run_changes_only_what_the_user_changes(runs_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    demos = {"demo": ROOT / "assets" / "demo_run", "demo-weighted": ROOT / "assets" / "demo_weighted_run"}
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", demos["demo"])  # the bundled pair
    monkeypatch.setattr(app_common, "DEMO_WEIGHTED_RUN_DIR", demos["demo-weighted"])
    monkeypatch.setattr(jobs, "dispatch", lambda registry: None)  # launched jobs stay queued: no worker starts
    at = _page()
    labels = at.selectbox(key="rt_start").options
    assert labels[0].startswith("defaults") and labels[1].startswith("demo · synthetic")
    assert labels[2].startswith("demo-weighted · synthetic") and any("old_run" in label for label in labels[3:])
    registry = Registry(runs_dir)
    for start, changes in (("demo-weighted", {"rt_focal_k": 3.0}), ("demo", {})):
        at.selectbox(key="rt_start").set_value(start).run()
        assert not [w for w in at.warning if "already exists" not in w.value]  # the last name is taken: warned
        for key, value in changes.items():
            at.number_input(key=key).set_value(value)
        at.text_input(key="rt_name").set_value(f"from {start}")
        at.button(key="rt_launch").click().run()
        assert not at.exception and not at.error
        expected = json.loads((demos[start] / "config.json").read_text(encoding="utf-8"))["train"]
        launched = _by_name(registry, f"from {start}").train_config().resolved().to_dict()
        assert {k: launched[k] for k in expected if launched[k] != expected[k]} == {
            field: value for field, value in (("focal_k", changes.get("rt_focal_k")),) if value is not None}


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
        # names are markdown-escaped (md_text): the browser shows them as typed
        assert sorted(s.label.split(" · ")[0] for s in at.status) == [app_common.md_text("stand-in worker"),
                                                                       "waiting job"]
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
    assert at.selectbox(key="run").options == ["demo", "demo-weighted", "old_run"]
    Registry(runs_dir).rename(old.id, "nice name")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = "old_run"
    at.run()
    assert not at.exception and not at.warning
    assert at.selectbox(key="run").value == "old_run"  # the URL key is still the folder name
    assert at.selectbox(key="run").options == ["demo", "demo-weighted", "old_run"]
    assert at.title[0].value == "Overview · nice name"
    shown = at.selectbox(key="run" + app_common.SHOWN_SUFFIX)  # the visible chooser: name · dataset · key
    assert shown.value == "old_run"
    assert shown.options == ["demo · synthetic", "demo-weighted · synthetic", "nice name · synthetic · old_run"]

    shown.set_value("demo-weighted").run()  # a pick by name moves the bound key (test_e2e_browser: and the URL)
    assert not at.exception
    assert at.session_state["run"] == "demo-weighted"


def _explorer_hrefs(at: AppTest) -> list[str]:
    hrefs = re.findall(r'href="([^"]*)"', "".join(h.proto.body for h in at.get("html")))
    return [html.unescape(h) for h in hrefs if h.startswith("hierarchy?")]


@pytest.mark.parametrize("sidebar_run", ["demo", "demo-weighted"])
def test_open_in_the_explorer_opens_the_linked_run(runs_dir: Path, sidebar_run: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = sidebar_run
    at.run()
    at.switch_page("app_pages/retrain.py").run()
    old = next(r for r in Registry(runs_dir).runs() if r.folder == "old_run")
    at.selectbox(key="rt_manage").set_value(old.id).run()
    assert not at.exception
    assert _explorer_hrefs(at) == ["hierarchy?run=old_run"]
    # A fresh page view of that URL, and the same session switching pages with that URL, show old_run.
    fresh = AppTest.from_file(str(APP), default_timeout=60)
    fresh.query_params["run"] = "old_run"
    fresh.run()
    fresh.switch_page("app_pages/explorer.py").run()
    at.query_params["run"] = [sidebar_run, "old_run"]  # what a link leaves next to the chooser's own run
    at.switch_page("app_pages/explorer.py").run()
    for view in (fresh, at):
        assert not view.exception
        assert view.title[0].value == "Hierarchy explorer · old\\_run"
        assert view.selectbox(key="run").value == "old_run"


# The section headings of docs/method.md that help texts may point to (the method document's outline).
METHOD_SECTIONS = {"Data and hierarchy", "MCM and MCLoss", "Ensembles", "Node weights", "Focal weighting",
                   "Uncertainty modes", "LPROS, schedules and the mixed loss", "ZLPR", "Metrics", "Evaluated nodes",
                   "Rare nodes", "Defaults and why", "References", "Tail-aware baselines"}
# Form widgets that set a training option: each help text ends with a pointer into docs/method.md.
OPTION_KEYS = {"rt_dataset", "rt_profile", "rt_epochs", "rt_seed", "rt_fit_on", "rt_patience", "rt_weighting",
               "rt_omega", "rt_counting", "rt_weight_indexing", "rt_focal", "rt_focal_k", "rt_focal_min", "rt_heads",
               "rt_ensemble", "rt_loss", "rt_label_smoothing", "rt_lpros_on", "rt_lpros", "rt_schedule",
               "rt_schedule_k", "rt_mixed_on", "rt_mixed_lambda", "rt_cb_beta", "rt_asl_gamma_pos",
               "rt_asl_gamma_neg", "rt_asl_clip", "rt_logit_adjust_on", "rt_logit_adjust"}


def _input_widgets(at: AppTest) -> list:
    main = at.main
    return [*main.selectbox, *main.number_input, *main.radio, *main.toggle, *main.text_input, *main.checkbox]


def test_every_input_has_a_plain_help_text_pointing_at_the_method_document(runs_dir: Path) -> None:
    at = _page()
    widgets = _input_widgets(at)
    keys = {w.key for w in widgets}
    assert OPTION_KEYS <= keys, OPTION_KEYS - keys  # the list above covers the form
    labels = {w.label for w in widgets}
    options = {str(o) for w in widgets if hasattr(w, "options") for o in w.options}
    method_headings = None
    method_doc = ROOT / "docs" / "method.md"
    if method_doc.exists():
        method_headings = {re.sub(r"^#+\s*", "", line).strip()
                           for line in method_doc.read_text(encoding="utf-8").splitlines() if line.startswith("#")}
    for widget in widgets:
        text = widget.help or ""
        assert len(text) >= 40, f"{widget.label!r} has no help text in plain words: {text!r}"
        # no bare section codes of the private notes (D2, E1, ...); tests/test_docs.py checks file names
        assert not re.search(r"\b[A-J][0-9]\b", text), (widget.label, text)
        # fields named in a help text ("Epochs", "Fit on") are labels or options on this page
        for quoted in re.findall(r'"([^"]+)"', text):
            assert quoted in labels or quoted in options, f"{widget.label!r} help names {quoted!r}, not on the page"
        if widget.key in OPTION_KEYS:
            pointer = re.search(r"docs/method\.md, ((?:\*[^*]+\*(?:, | and )?)+)\.?$", text.strip())
            assert pointer, f"{widget.label!r} help does not end with a docs/method.md section: {text!r}"
            for section in re.findall(r"\*([^*]+)\*", pointer.group(1)):
                assert section in METHOD_SECTIONS, (widget.label, section)
                if method_headings is not None:
                    assert section in method_headings, f"docs/method.md has no section {section!r}"


def _stand_in_job(registry: Registry, name: str, epochs: int) -> tuple[str, subprocess.Popen]:
    """A registry job marked running, whose "worker" is a sleeping process (killed by SIGTERM on cancel)."""
    record = registry.submit(jobs.retrain_config(None, "synthetic", epochs=epochs), name)
    assert registry.claim_next().id == record.id
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    registry.attach_worker(record.id, sleeper.pid, jobs.process_token(sleeper.pid))
    return record.id, sleeper


def test_job_box_shows_the_epoch_in_one_place_only(runs_dir: Path) -> None:
    """The box header and its progress text used to both show the epoch; the browser draws them at
    different moments, so they disagreed. The epoch is now in the progress text only."""
    registry = Registry(runs_dir)
    at = _page()
    run_id, sleeper = _stand_in_job(registry, "stand-in worker", 10)
    try:
        registry.report_progress(run_id, 3, 10, loss=0.5)
        at.run()
        (box,) = at.status
        (progress,) = at.get("progress")
        assert progress.proto.text.startswith("epoch 3/10 · loss 0.5000")
        assert box.label == app_common.md_text("stand-in worker") + " · running"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_manage_run_shows_the_new_status_after_a_cancel(runs_dir: Path) -> None:
    """The selectbox's value travels as its label text: when the chosen run's status (or name) changes, the
    page must send the new label, or the browser keeps showing "running" after a cancel."""
    registry = Registry(runs_dir)
    at = _page()
    run_id, sleeper = _stand_in_job(registry, "stand-in worker", 10)
    try:
        registry.report_progress(run_id, 1, 10)
        at.run()
        at.selectbox(key="rt_manage").set_value(run_id).run()
        assert at.selectbox(key="rt_manage").value == run_id
        jobs.cancel(registry, run_id)  # as the Cancel button does (another tab's, say): SIGTERM to the worker
        assert sleeper.wait(timeout=30) != 0
    finally:
        sleeper.kill()
        sleeper.wait()
    at.run()  # the panel reconciles the ended worker: the run is now cancelled
    assert registry.get(run_id).status == "cancelled"
    manage = at.selectbox(key="rt_manage")
    assert manage.value == run_id
    shown = manage.proto.raw_value if manage.proto.set_value else None
    assert shown is not None and "cancelled" in shown and "running" not in shown, shown
    at.run()  # nothing changed since: the value is not pushed again
    assert not at.selectbox(key="rt_manage").proto.set_value


def test_a_run_name_in_use_is_warned_about_and_accepted(runs_dir: Path) -> None:
    at = _page()
    assert not [w for w in at.warning if "already exists" in w.value]
    at.text_input(key="rt_name").set_value("old_run").run()  # the imported folder's name
    assert not at.exception
    (warning,) = [w.value for w in at.warning if "already exists" in w.value]
    old = Registry(runs_dir).runs()[0]
    assert "old\\_run" in warning and old.id in warning
    at.number_input(key="rt_epochs").set_value(1)
    at.button(key="rt_launch").click().run()
    registry = Registry(runs_dir)
    assert sorted(r.name for r in registry.runs()) == ["old_run", "old_run"]  # accepted: names are labels
    stop_workers(registry)


def test_tail_baseline_widgets_reach_the_launched_run(runs_dir: Path) -> None:
    # docs/method.md, *Tail-aware baselines*: each setting is enabled only with its option, and lands in the run.
    at = _page()
    assert at.number_input(key="rt_cb_beta").disabled and at.number_input(key="rt_asl_clip").disabled
    assert at.number_input(key="rt_logit_adjust").disabled and not at.toggle(key="rt_logit_adjust_on").value
    at.number_input(key="rt_epochs").set_value(1)
    at.selectbox(key="rt_weighting").set_value("class-balanced")
    at.selectbox(key="rt_focal").set_value("none")
    at.selectbox(key="rt_loss").set_value("asl")
    at.toggle(key="rt_logit_adjust_on").set_value(True).run()
    assert not at.number_input(key="rt_cb_beta").disabled and not at.number_input(key="rt_asl_gamma_neg").disabled
    assert at.number_input(key="rt_logit_adjust").value == 1.0 and not at.number_input(key="rt_logit_adjust").disabled
    at.number_input(key="rt_cb_beta").set_value(0.99)
    at.number_input(key="rt_asl_gamma_neg").set_value(2.0)
    at.number_input(key="rt_asl_clip").set_value(0.1)
    at.number_input(key="rt_logit_adjust").set_value(0.5)
    at.text_input(key="rt_name").set_value("tail baselines").run()
    assert not at.error
    at.button(key="rt_launch").click().run()
    assert not at.exception
    registry = Registry(runs_dir)
    record = _by_name(registry, "tail baselines")
    c = record.train_config()
    assert (c.weighting, c.cb_beta, c.focal, c.loss, c.asl_gamma_pos, c.asl_gamma_neg, c.asl_clip,
            c.logit_adjust) == ("class-balanced", 0.99, "none", "asl", 0.0, 2.0, 0.1, 0.5)
    wait_until(lambda: registry.get(record.id).status in ("finished", "failed", "cancelled"), what="the run")
    record = registry.get(record.id)
    assert record.status == "finished", record.error
    assert load_run(record.path).config.logit_adjust == 0.5
    wait_until(lambda: not jobs.process_alive(record.pid, record.pid_token), 30, "the worker to exit")
