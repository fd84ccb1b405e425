"""Background jobs: real worker subprocesses, cancel, SIGKILL + reconcile, the queue, the shared train path.

Workers train tiny synthetic runs (hidden width 8, quick profile). Every test
that starts a process waits for it, and the ``no_stray_workers`` fixture kills
and reaps any worker still alive at the end, so no process outlives a test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from hmlc_core import jobs
from hmlc_core.cli import build_parser, main
from hmlc_core.registry import Registry, RegistryError, RunRecord
from hmlc_core.runs import load_run
from hmlc_core.train import TrainConfig

TINY = dict(dataset="synthetic", hidden=8, heads=2, profile="quick", fit_on="train", focal="mean")
SHORT = TrainConfig(epochs=1, **TINY)
ENDLESS = TrainConfig(epochs=100_000, **TINY)
TIMEOUT_S = 120


def wait_until(condition: Callable[[], object], timeout: float = TIMEOUT_S, what: str = "condition") -> object:
    """Poll ``condition`` every 0.1 s until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


def live_workers(registry: Registry) -> list[RunRecord]:
    """Rows whose recorded worker process is alive (the test process itself, used as a stand-in, excluded)."""
    return [r for r in registry.runs()
            if r.pid not in (None, os.getpid()) and jobs.process_alive(r.pid, r.pid_token)]


def stop_workers(registry: Registry) -> None:
    """SIGKILL every worker of the registry that is still alive and wait until it is gone."""
    for record in live_workers(registry):
        os.kill(record.pid, signal.SIGKILL)
        wait_until(lambda r=record: not jobs.process_alive(r.pid, r.pid_token), 30, f"worker {record.pid}")
    for child in list(jobs._CHILDREN):
        child.wait(timeout=30)
        jobs._CHILDREN.remove(child)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    """A fresh registry; at teardown no worker of it is left alive (a leftover one also fails the test)."""
    reg = Registry(tmp_path / "runs")
    yield reg
    leftovers = [r.id for r in live_workers(reg)]
    stop_workers(reg)
    assert not leftovers, f"workers still alive at the end of the test: {leftovers}"


def _ended(registry: Registry, run_id: str) -> RunRecord | None:
    record = registry.get(run_id)
    return record if record.status in ("finished", "failed", "cancelled") else None


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_process_token_tells_live_dead_zombie_and_reused() -> None:
    me = jobs.process_token(os.getpid())
    assert me and jobs.process_alive(os.getpid(), me)
    assert not jobs.process_alive(os.getpid(), str(int(me) + 1))  # same pid, another start time: reused
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_until(lambda: jobs.process_token(child.pid) is None, 30, "the child to exit")  # a zombie counts as dead
    child.wait()
    assert jobs.process_token(child.pid) is None and not jobs.process_alive(child.pid, None)
    assert not jobs.process_alive(None, None)


def test_reconcile_fails_dead_and_reused_workers(registry: Registry) -> None:
    registry.set_max_concurrent(4)
    dead, reused, alive, never = (registry.submit(SHORT) for _ in range(4))
    for _ in range(4):
        registry.claim_next()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    registry.attach_worker(dead.id, child.pid, "12345")
    registry.attach_worker(reused.id, os.getpid(), "not-my-start-time")
    registry.attach_worker(alive.id, os.getpid(), jobs.process_token(os.getpid()))
    assert sorted(jobs.reconcile(registry)) == sorted([dead.id, reused.id])
    assert registry.get(dead.id).status == "failed" and str(child.pid) in registry.get(dead.id).error
    assert registry.get(reused.id).status == "failed"
    assert registry.get(alive.id).status == "running"
    assert registry.get(never.id).status == "running"  # claimed, worker not attached yet: within the grace time
    later = time.time() + jobs.START_GRACE_S + 1
    assert jobs.reconcile(registry, now=later) == [never.id]
    assert "never started" in registry.get(never.id).error
    registry.fail(alive.id, "test over")


def test_worker_trains_saves_and_the_queue_advances(registry: Registry) -> None:
    first, second = registry.submit(SHORT, "first"), registry.submit(replace(SHORT, seed=1), "second")
    started = jobs.dispatch(registry)
    assert len(started) == 1  # limit 1: the second waits
    assert registry.get(first.id).status == "running" and registry.get(second.id).status == "queued"
    assert registry.get(first.id).pid == started[0].pid
    assert started[0].wait(timeout=TIMEOUT_S) == 0
    # the first worker dispatched the second one itself, with no call from here
    done = wait_until(lambda: _ended(registry, second.id), what="the second job")
    assert jobs.dispatch(registry) == []
    for record in (registry.get(first.id), done):
        assert record.status == "finished", record.error
        assert record.epoch == record.epochs == 1 and record.valid_auprc is not None
        run = load_run(record.path)
        assert run.config.seed == record.train_config().seed and run.summary["status"] == "finished"
        preds = run.predictions()
        mask = run.hierarchy.eval_mask
        expected = average_precision_score(preds["y_true"][:, mask], preds["mean_probs"][:, mask], average="micro")
        assert record.metrics["auprc_micro"] == pytest.approx(expected, abs=1e-6)
        for key in ("macro_precision", "macro_recall", "macro_f1"):
            assert record.metrics[key] == pytest.approx(run.summary[key])
        assert record.log_path.is_file() and "finished" in record.log_path.read_text()
    assert done.pid not in (None, started[0].pid)
    assert done.started_at >= registry.get(first.id).finished_at
    wait_until(lambda: not jobs.process_alive(done.pid, done.pid_token), 30, "the second worker to exit")


def test_cancel_a_running_job_keeps_its_partial_run(registry: Registry) -> None:
    record = registry.submit(ENDLESS, "endless")
    (proc,) = jobs.dispatch(registry)
    wait_until(lambda: registry.get(record.id).epoch >= 2, what="two epochs")
    assert jobs.cancel(registry, record.id).cancel_requested
    assert proc.wait(timeout=TIMEOUT_S) == 0
    ended = registry.get(record.id)
    assert ended.status == "cancelled" and "partial run" in ended.error
    run = load_run(ended.path)
    assert run.summary["status"] == "interrupted"
    assert 2 <= run.summary["epochs_completed"] < ENDLESS.epochs
    assert ended.metrics["epochs_completed"] == run.summary["epochs_completed"]
    with pytest.raises(RegistryError, match="already ended"):
        jobs.cancel(registry, record.id)


def test_cancel_before_the_worker_can_react(registry: Registry) -> None:
    """A worker that dies of the SIGTERM (here: a bare process, no handler): the job still ends cancelled."""
    record = registry.submit(SHORT)
    registry.claim_next()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        registry.attach_worker(record.id, sleeper.pid, jobs.process_token(sleeper.pid))
        registry.report_progress(record.id, 0, 1)  # as a worker does once its handler is installed
        jobs.cancel(registry, record.id)
        assert sleeper.wait(timeout=30) == -signal.SIGTERM
    finally:
        sleeper.kill()
        sleeper.wait()
    assert jobs.reconcile(registry) == [record.id]
    assert registry.get(record.id).status == "cancelled"


def test_concurrency_limit_with_real_workers(registry: Registry) -> None:
    a, b = registry.submit(ENDLESS, "a"), registry.submit(ENDLESS, "b")
    started = jobs.dispatch(registry)
    assert len(started) == 1 and jobs.dispatch(registry) == []
    assert [registry.get(i).status for i in (a.id, b.id)] == ["running", "queued"]
    assert jobs.cancel(registry, b.id).status == "cancelled"  # queued: at once
    jobs.cancel(registry, a.id)  # at once, while the worker is still starting (no signal can kill it then)
    assert started[0].wait(timeout=TIMEOUT_S) == 0
    assert registry.get(a.id).status == "cancelled"
    assert "before training started" in registry.get(a.id).error
    assert not registry.get(b.id).path.exists()


def test_killed_worker_is_failed_and_other_runs_stay_intact(registry: Registry, synthetic_run: Path) -> None:
    shutil.copytree(synthetic_run, registry.runs_dir / "kept")
    (kept,) = registry.sync()
    before = _digest(kept.path)
    victim = registry.submit(ENDLESS, "victim")
    (proc,) = jobs.dispatch(registry)
    wait_until(lambda: registry.get(victim.id).epoch >= 1, what="the first epoch")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert registry.get(victim.id).status == "running"  # nobody has looked yet
    assert jobs.reconcile(registry) == [victim.id]
    failed = registry.get(victim.id)
    assert failed.status == "failed" and str(proc.pid) in failed.error and failed.finished_at is not None
    assert not failed.path.exists()
    assert registry.get(kept.id) == kept
    assert _digest(kept.path) == before
    assert load_run(kept.path).summary["status"] == "finished"
    assert sorted(p.name for p in registry.runs_dir.iterdir() if not p.name.startswith("registry.sqlite")) == [
        ".logs", "kept"]


def test_worker_records_a_failure_with_its_message(registry: Registry, tmp_path: Path) -> None:
    record = registry.submit(replace(SHORT, dataset="no_such_dataset", data_dir=str(tmp_path)))
    (proc,) = jobs.dispatch(registry)
    assert proc.wait(timeout=TIMEOUT_S) == 1
    failed = registry.get(record.id)
    assert failed.status == "failed" and "DatasetNotFoundError" in failed.error
    assert "no_such_dataset" in failed.error or str(tmp_path) in failed.error
    assert "Traceback" in failed.log_path.read_text()


def test_worker_command_line(registry: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert "worker" in build_parser().format_help()
    assert main(["worker", "--runs-dir", str(registry.runs_dir), "nope"]) == 2
    assert "no run with id 'nope'" in capsys.readouterr().err
    record = registry.submit(SHORT)
    registry.request_cancel(record.id)
    assert main(["worker", "--runs-dir", str(registry.runs_dir), record.id]) == 2
    assert "cancelled: nothing to do" in capsys.readouterr().err


def test_train_and_save_is_shared_and_skips_empty_runs(tmp_path: Path) -> None:
    assert jobs.train_and_save(SHORT, tmp_path / "empty", should_stop=lambda: True, save_empty=False) is None
    assert not (tmp_path / "empty").exists()
    run = jobs.train_and_save(SHORT, tmp_path / "one")
    assert run.path == tmp_path / "one" and run.summary["epochs_completed"] == 1
    with pytest.raises(FileExistsError, match="already exists"):
        jobs.train_and_save(SHORT, tmp_path / "one")


def test_retrain_config_and_launch_checks(tmp_path: Path) -> None:
    default = jobs.retrain_config(None, "synthetic")
    assert (default.profile, default.fit_on, default.weighting, default.focal) == ("quick", "train", "class-wise",
                                                                                  "mean")
    base = TrainConfig(dataset="synthetic", hidden=64, lr=0.5, batch_size=7, dropout=0.3, seed=3)
    same = jobs.retrain_config(base, "synthetic", seed=9, heads=3)
    assert (same.hidden, same.lr, same.batch_size, same.dropout, same.seed, same.heads) == (64, None, None, 0.3, 9, 3)
    assert jobs.retrain_config(base, "cellcycle_FUN").hidden is None  # a per-dataset value
    with pytest.raises(ValueError, match="bogus"):
        jobs.retrain_config(None, "synthetic", bogus=1)

    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"mine.{split}.arff").write_text("@relation mine\n")
    assert jobs.has_valid_split("synthetic") and not jobs.has_valid_split("mine", data)
    jobs.check_launchable(TrainConfig(dataset="mine", data_dir=str(data), fit_on="train+valid"))
    with pytest.raises(ValueError, match="no valid split"):
        jobs.check_launchable(TrainConfig(dataset="mine", data_dir=str(data), fit_on="train"))
    with pytest.raises(ValueError, match="absent"):
        jobs.check_launchable(TrainConfig(dataset="absent", data_dir=str(data), fit_on="train+valid"))
    with pytest.raises(ValueError, match="label_smoothing"):
        jobs.check_launchable(TrainConfig(dataset="synthetic", label_smoothing=0.1))


def test_metrics_json_in_registry_is_strict(registry: Registry) -> None:
    record = registry.submit(SHORT)
    registry.claim_next()
    registry.complete(record.id, "finished", {"macro_recall": float("nan"), "values": [np.float64(1.5)]})
    with sqlite3.connect(registry.runs_dir / "registry.sqlite") as conn:
        text = conn.execute("SELECT metrics FROM runs").fetchone()[0]
    assert json.loads(text) == {"macro_recall": None, "values": [1.5]}
