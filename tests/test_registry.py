"""The SQLite run registry: schema, WAL, state transitions, the atomic claim, import, rename and delete.

Registry state is checked with plain ``sqlite3`` queries, independently of the
registry's own readers. No process is started here (see test_jobs.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from hmlc_core.registry import (
    REGISTRY_FILE, SCHEMA_VERSION, Registry, RegistryError, display_names, headline_metrics, runs_table,
)
from hmlc_core.train import TrainConfig

CONFIG = TrainConfig(dataset="synthetic", epochs=1, hidden=8, profile="quick")


def _raw(runs_dir: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(runs_dir / REGISTRY_FILE) as conn:
        return conn.execute(sql, params).fetchall()


def _status(runs_dir: Path, run_id: str) -> str:
    return _raw(runs_dir, "SELECT status FROM runs WHERE id = ?", (run_id,))[0][0]


def _tree_digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "runs")


def test_new_registry_is_wal_with_schema_version(reg: Registry) -> None:
    assert (reg.runs_dir / REGISTRY_FILE).is_file()
    assert _raw(reg.runs_dir, "PRAGMA journal_mode") == [("wal",)]
    assert _raw(reg.runs_dir, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert reg.max_concurrent == 1
    Registry(reg.runs_dir)  # opening it again keeps it
    assert _raw(reg.runs_dir, "SELECT value FROM settings") == [(1,)]


def test_check_constraints_reject_bad_rows(reg: Registry) -> None:
    insert = ("INSERT INTO runs (id, name, dataset, config, status, created_at, folder) "
              "VALUES (?, 'n', 'd', ?, ?, 0, ?)")
    for params in (("a", "{}", "done", "a"),          # unknown status
                   ("b", "not json", "queued", "b"),  # config must be JSON
                   ("c", "{}", "queued", "../c"),     # folder outside the runs dir
                   ("d", "{}", "finished", "d")):     # an ended run needs finished_at
        with pytest.raises(sqlite3.IntegrityError):
            _raw(reg.runs_dir, insert, params)


def test_not_a_registry_is_reported_with_the_file(tmp_path: Path) -> None:
    (tmp_path / REGISTRY_FILE).write_text("hello, not a database " * 100)
    with pytest.raises(RegistryError, match=REGISTRY_FILE):
        Registry(tmp_path, create=False)
    assert Registry(tmp_path).damaged.name.startswith(f"{REGISTRY_FILE}.damaged-")  # kept aside (test_corrupt_runs)
    newer = tmp_path / "newer"
    newer.mkdir()
    with sqlite3.connect(newer / REGISTRY_FILE) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RegistryError, match="newer"):
        Registry(newer)
    with pytest.raises(RegistryError, match="no run registry"):
        Registry(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()


def test_submit_claim_progress_complete(reg: Registry) -> None:
    record = reg.submit(CONFIG, "my run")
    assert _raw(reg.runs_dir, "SELECT status, name, dataset, epochs, pid FROM runs") == [
        ("queued", "my run", "synthetic", 1, None)]
    assert json.loads(_raw(reg.runs_dir, "SELECT config FROM runs")[0][0]) == CONFIG.to_dict()
    assert record.path == reg.runs_dir / record.id and not record.path.exists()

    claimed = reg.claim_next()
    assert claimed is not None and claimed.id == record.id
    assert _status(reg.runs_dir, record.id) == "running" and claimed.started_at is not None
    assert reg.attach_worker(record.id, 4242, "tok")
    reg.report_progress(record.id, 1, 1, loss=0.5, valid_auprc=0.25)
    assert _raw(reg.runs_dir, "SELECT epoch, epochs, loss, valid_auprc, pid, pid_token FROM runs") == [
        (1, 1, 0.5, 0.25, 4242, "tok")]
    assert not reg.is_cancel_requested(record.id)

    done = reg.complete(record.id, "finished", {"auprc_micro": 0.5, "macro_f1": float("nan")})
    assert done.status == "finished" and done.finished_at >= done.started_at
    assert json.loads(_raw(reg.runs_dir, "SELECT metrics FROM runs")[0][0]) == {"auprc_micro": 0.5, "macro_f1": None}
    with pytest.raises(RegistryError, match="finished"):
        reg.complete(record.id, "finished")
    with pytest.raises(RegistryError, match="already ended"):
        reg.request_cancel(record.id)
    assert not reg.fail(record.id, "too late")  # an ended run stays ended
    assert _status(reg.runs_dir, record.id) == "finished"
    reg.report_progress(record.id, 5, 9)  # ignored once ended
    assert _raw(reg.runs_dir, "SELECT epoch FROM runs") == [(1,)]


def test_invalid_config_is_not_queued(reg: Registry) -> None:
    with pytest.raises(ValueError, match="heads >= 2"):
        reg.submit(TrainConfig(dataset="synthetic", heads=1, focal="epistemic"))
    assert _raw(reg.runs_dir, "SELECT count(*) FROM runs") == [(0,)]


def test_cancel_queued_at_once_and_running_by_flag(reg: Registry) -> None:
    first, second = reg.submit(CONFIG), reg.submit(CONFIG)
    assert reg.claim_next().id == first.id
    assert reg.request_cancel(second.id).status == "cancelled"
    assert _raw(reg.runs_dir, "SELECT status, finished_at IS NOT NULL FROM runs WHERE id = ?", (second.id,)) == [
        ("cancelled", 1)]
    running = reg.request_cancel(first.id)
    assert running.status == "running" and running.cancel_requested
    assert reg.is_cancel_requested(first.id)
    assert reg.claim_next() is None  # nothing queued any more


def test_mark_dead_respects_pid_and_cancel_flag(reg: Registry) -> None:
    a, b = reg.submit(CONFIG), reg.submit(CONFIG)
    reg.set_max_concurrent(2)
    reg.claim_next(), reg.claim_next()
    reg.attach_worker(a.id, 111, "x")
    reg.attach_worker(b.id, 222, "y")
    assert not reg.mark_dead(a.id, 999, "wrong pid")  # a different worker: untouched
    assert _status(reg.runs_dir, a.id) == "running"
    assert reg.mark_dead(a.id, 111, "killed")
    reg.request_cancel(b.id)
    assert reg.mark_dead(b.id, 222, "gone")
    assert _raw(reg.runs_dir, "SELECT id, status, error FROM runs ORDER BY created_at, rowid") == [
        (a.id, "failed", "killed"), (b.id, "cancelled", "gone")]


def test_claim_respects_the_concurrency_limit(reg: Registry) -> None:
    ids = [reg.submit(CONFIG).id for _ in range(3)]
    assert reg.claim_next().id == ids[0]  # oldest first
    assert reg.claim_next() is None  # limit 1
    reg.set_max_concurrent(2)
    assert reg.claim_next().id == ids[1]
    assert reg.claim_next() is None
    assert [_status(reg.runs_dir, i) for i in ids] == ["running", "running", "queued"]
    with pytest.raises(ValueError, match=">= 1"):
        reg.set_max_concurrent(0)


def test_concurrent_claims_never_exceed_the_limit(reg: Registry) -> None:
    for _ in range(6):
        reg.submit(CONFIG)
    reg.set_max_concurrent(2)
    barrier = threading.Barrier(8)
    claimed: list[object] = []

    def claim() -> None:
        barrier.wait()
        claimed.append(reg.claim_next())

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [c for c in claimed if c is not None]
    assert len(claimed) == 8 and len(winners) == 2
    assert len({w.id for w in winners}) == 2
    assert _raw(reg.runs_dir, "SELECT count(*) FROM runs WHERE status = 'running'") == [(2,)]


def test_sync_imports_unregistered_run_folders(reg: Registry, synthetic_run: Path) -> None:
    shutil.copytree(synthetic_run, reg.runs_dir / "from_cli")
    stopped = reg.runs_dir / "stopped"
    shutil.copytree(synthetic_run, stopped)
    summary = json.loads((stopped / "summary.json").read_text())
    (stopped / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    broken = reg.runs_dir / "broken"
    shutil.copytree(synthetic_run, broken)
    (broken / "config.json").write_text("{not json")
    (reg.runs_dir / ".hidden_tmp").mkdir()
    (reg.runs_dir / "not_a_run").mkdir()

    added = reg.sync()
    assert sorted(r.folder for r in added) == ["broken", "from_cli", "stopped"]
    rows = {r[0]: r[1:] for r in _raw(reg.runs_dir, "SELECT folder, status, name, dataset, metrics, error FROM runs")}
    expected = json.loads((synthetic_run / "summary.json").read_text())
    status, name, dataset, metrics, error = rows["from_cli"]
    assert (status, name, dataset, error) == ("finished", "from_cli", "synthetic", None)
    metrics = json.loads(metrics)
    for key in ("auprc_micro", "macro_precision", "macro_recall", "macro_f1", "recall_by_depth"):
        assert metrics[key] == expected[key]
    assert rows["stopped"][0] == "cancelled"
    assert rows["broken"][0] == "failed" and "config.json" in rows["broken"][4] and "line 1" in rows["broken"][4]
    config = json.loads(_raw(reg.runs_dir, "SELECT config FROM runs WHERE folder = 'from_cli'")[0][0])
    assert config == json.loads((synthetic_run / "config.json").read_text())["train"]
    assert reg.sync() == []  # imported once
    assert _raw(reg.runs_dir, "SELECT count(*) FROM runs") == [(3,)]


def test_rename_keeps_the_folder(reg: Registry, synthetic_run: Path) -> None:
    shutil.copytree(synthetic_run, reg.runs_dir / "r1")
    (record,) = reg.sync()
    renamed = reg.rename(record.id, "  better name ")
    assert renamed.name == "better name" and renamed.folder == "r1" and renamed.path.is_dir()
    assert _raw(reg.runs_dir, "SELECT name, folder FROM runs") == [("better name", "r1")]
    with pytest.raises(ValueError, match="empty"):
        reg.rename(record.id, "   ")
    with pytest.raises(RegistryError, match="no run"):
        reg.rename("nope", "x")
    assert display_names([reg.runs_dir, reg.runs_dir.parent / "elsewhere"]) == {
        (reg.runs_dir / "r1").resolve(): "better name"}


def test_delete_removes_only_that_run(reg: Registry, synthetic_run: Path) -> None:
    shutil.copytree(synthetic_run, reg.runs_dir / "keep")
    shutil.copytree(synthetic_run, reg.runs_dir / "drop")
    before = _tree_digest(reg.runs_dir / "keep")
    records = {r.folder: r for r in reg.sync()}
    log = reg.runs_dir / ".logs" / f"{records['drop'].id}.log"
    log.parent.mkdir()
    log.write_text("worker output")
    reg.delete(records["drop"].id)
    assert not (reg.runs_dir / "drop").exists() and not log.exists()
    assert sorted(p.name for p in reg.runs_dir.iterdir() if not p.name.startswith(REGISTRY_FILE)) == [".logs", "keep"]
    assert _tree_digest(reg.runs_dir / "keep") == before
    assert _raw(reg.runs_dir, "SELECT folder FROM runs") == [("keep",)]

    running = reg.submit(CONFIG)
    reg.claim_next()
    with pytest.raises(RegistryError, match="cancel it"):
        reg.delete(running.id)
    assert _status(reg.runs_dir, running.id) == "running"
    queued = reg.submit(CONFIG)
    reg.delete(queued.id)  # a queued job has no folder yet
    assert [r.id for r in reg.runs()] == [running.id, records["keep"].id]


def test_headline_metrics_and_runs_table(reg: Registry) -> None:
    summary = {"auprc_micro": 0.4, "macro_recall": float("nan"), "status": "finished", "recall_by_depth": {"1": 1.0}}
    assert headline_metrics(summary) == {"auprc_micro": 0.4, "macro_recall": None, "recall_by_depth": {"1": 1.0}}
    a = reg.submit(CONFIG, "a")
    reg.claim_next()
    reg.report_progress(a.id, 1, 1, 0.3)
    reg.complete(a.id, "finished", headline_metrics(summary))
    b = reg.submit(CONFIG, "b")
    table = runs_table(reg.runs(), now=0.0)
    assert list(table.index) == [b.id, a.id]
    assert table.loc[a.id, "auprc_micro"] == 0.4 and table.loc[a.id, "epochs"] == "1/1"
    finished = reg.get(a.id)
    assert table.loc[a.id, "elapsed_s"] == pytest.approx(finished.finished_at - finished.started_at)
    assert table.loc[b.id, "status"] == "queued" and table.loc[b.id, "elapsed_s"] != table.loc[b.id, "elapsed_s"]


def test_default_names_are_short_and_readable() -> None:
    from hmlc_core.registry import default_run_name

    assert (default_run_name(TrainConfig(dataset="cellcycle_FUN"))
            == "cellcycle_FUN · class-wise weights, mean focal · seed 0")
    plain = TrainConfig(dataset="derisi_FUN", weighting="none", focal="none", heads=1, seed=2, profile="quick")
    assert default_run_name(plain) == "derisi_FUN · plain · seed 2 · 1 head · quick"
    zlpr = TrainConfig(dataset="d", weighting="binary", focal="none", loss="zlpr", lpros=0.1)
    assert default_run_name(zlpr) == "d · ZLPR, binary weights, LPROS · seed 0"
    shortlist = TrainConfig(dataset="d", weighting="none", focal="none", shortlist=50)
    assert default_run_name(shortlist) == "d · plain, shortlist 50 · seed 0"  # not the plain run's name


def test_cli_default_folders_are_imported_under_readable_names(reg: Registry, synthetic_run: Path) -> None:
    from hmlc_core.registry import default_folder_name

    config = TrainConfig.from_dict(json.loads((synthetic_run / "config.json").read_text())["train"])
    assert (config.dataset, config.weighting, config.focal, config.heads, config.seed) == (
        "synthetic", "class-wise", "mean", 2, 0)
    folders = {
        default_folder_name(config, "20261129-034916"): "synthetic · class-wise weights, mean focal · seed 0",
        "synthetic-class-wise-mean-h2-s0-20261129-034917": "synthetic · class-wise weights, mean focal · seed 0",
        "my-experiment": "my-experiment",  # chosen with --out: kept
        "synthetic-class-wise-mean-s0-later": "synthetic-class-wise-mean-s0-later",  # not a time stamp
    }
    assert default_folder_name(config, "20261129-034916") == "synthetic-class-wise-mean-s0-20261129-034916"
    for folder in folders:
        shutil.copytree(synthetic_run, reg.runs_dir / folder)
    reg.sync()
    assert dict(_raw(reg.runs_dir, "SELECT folder, name FROM runs")) == folders


def test_a_name_in_use_is_accepted_with_a_warning(reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    first = reg.submit(CONFIG, "focal k=3")
    assert reg.named(" FOCAL k=3 ") == [first]
    with caplog.at_level("WARNING", logger="hmlc_core.registry"):
        second = reg.submit(CONFIG, "focal k=3")
    assert [r.id for r in reg.named("focal k=3")] == [first.id, second.id]
    assert any(first.id in r.getMessage() and "already used" in r.getMessage() for r in caplog.records)
    caplog.clear()
    other = reg.submit(CONFIG, "other")
    with caplog.at_level("WARNING", logger="hmlc_core.registry"):
        reg.rename(other.id, "focal k=3")
    assert any("already used" in r.getMessage() for r in caplog.records)


def test_run_label_shows_name_dataset_and_key() -> None:
    from hmlc_core.registry import run_label

    assert (run_label("20261129-034916-f09f", "focal k=3", "cellcycle_FUN")
            == "focal k=3 · cellcycle_FUN · 20261129-034916-f09f")
    assert run_label("demo", None, "synthetic") == "demo · synthetic"
    assert run_label("old_run", "old_run", "synthetic") == "old_run · synthetic"
    assert run_label("k", "synthetic · plain · seed 0", "synthetic") == "synthetic · plain · seed 0 · k"
    assert run_label("k") == "k"
