"""Sweeps on Dask (issue 14, items 1 and 4): the grid, resumption, a LocalCluster, a real scheduler whose worker
is SIGKILLed mid-task, and a sweep client killed and rerun.

Every Dask process binds 127.0.0.1; runs are short synthetic-data runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hmlc_core.cli import main
from hmlc_core.registry import Registry
from hmlc_core.runs import RUN_FILES, find_runs
from hmlc_core.sweeps import CONFIGS, build_spec, plan
from hmlc_core.sweeps.grid import Cell, split_folder
from hmlc_core.sweeps.store import cell_state
from hmlc_core.sweeps.task import train_cell

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HMLC_RUNS_DIR", "HMLC_DASK"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    return env


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in RUN_FILES)


def _check_registry(out: Path, folders: set[str]) -> None:
    """One registry row per run folder, every row's folder complete, no other rows."""
    rows = Registry(out, create=False).runs()
    assert sorted(r.folder for r in rows) == sorted(folders)
    assert all(r.status == "finished" and _complete(out / r.folder) for r in rows)


# ------------------------------------------------------------------------------------------ grid (unit)
def test_grid_is_datasets_x_configs_x_seeds_seed_major() -> None:
    spec = build_spec(datasets=["synthetic", "cellcycle_FUN"], configs=["chmcnn", "plain"], seeds=[0, 1], epochs=2)
    cells = spec.cells()
    assert [(c.seed, c.dataset, c.config_name) for c in cells] == [
        (s, d, n) for s in (0, 1) for d in ("synthetic", "cellcycle_FUN") for n in ("chmcnn", "plain")]
    assert cells[0].folder == "synthetic__chmcnn__seed-0"
    assert [split_folder(c.folder) for c in cells[:2]] == [("synthetic", "chmcnn", 0), ("synthetic", "plain", 0)]
    assert split_folder("registry.sqlite") is None and split_folder("a__b__seed-x") is None
    assert cells[0].train_config().heads == 1 and cells[1].train_config().heads == 2
    assert dict(cells[1].overrides) == CONFIGS["plain"][1]
    assert len({c.cell_id for c in cells}) == len(cells)
    again = build_spec(datasets=["synthetic", "cellcycle_FUN"], configs=["chmcnn", "plain"], seeds=[0, 1], epochs=2)
    assert [c.cell_id for c in again.cells()] == [c.cell_id for c in cells]  # stable across calls
    other = build_spec(datasets=["synthetic"], configs=["chmcnn"], seeds=[0], epochs=3).cells()[0]
    assert other.folder == cells[0].folder and other.cell_id != cells[0].cell_id


def test_a_configuration_may_set_the_budget_fields_and_wins() -> None:
    # the module docstring promises it; a duplicate keyword used to raise TypeError
    cell = Cell("synthetic", "long", (("epochs", 7), ("fit_on", "train"), ("profile", "quick")), 0, "paper", 2,
                "train+valid", None)
    config = cell.train_config()
    assert (config.epochs, config.fit_on, config.profile, config.threads) == (7, "train", "quick", 1)


def test_spec_file_with_define_and_options_and_flags_over_it(tmp_path: Path) -> None:
    spec_file = tmp_path / "sweep.toml"
    spec_file.write_text('datasets = ["synthetic"]\nconfigs = ["chmcnn", "mine"]\nseeds = [0, 1]\n'
                         'profile = "quick"\n[define.mine]\nheads = 3\nweighting = "none"\n'
                         '[options]\ndecision = ["fixed", "global"]\n')
    spec = build_spec(spec_file, seeds=[4], options=["focal=none,mean"], fit_on="train")
    names = [name for name, _ in spec.configs]
    assert names == [f"{b},decision={d},focal={f}" for b in ("chmcnn", "mine") for d in ("fixed", "global")
                     for f in ("none", "mean")]
    assert dict(spec.configs[-1][1]) == {"heads": 3, "weighting": "none", "decision": "global", "focal": "mean"}
    assert spec.seeds == (4,) and spec.profile == "quick" and spec.fit_on == "train"
    json_file = tmp_path / "sweep.json"
    json_file.write_text(json.dumps({"datasets": ["synthetic"], "options": {"heads": [1, 2]}}))
    assert [n for n, _ in build_spec(json_file).configs] == ["heads=1", "heads=2"]


@pytest.mark.parametrize(("text", "flags", "message"), [
    ('datasets = ["synthetic"]\nconfigs = ["plain"]\nseed = [0]\n', {}, "unknown key(s) ['seed']"),
    ('datasets = ["synthetic"]\nconfigs = ["nope"]\n', {}, "unknown configuration(s) ['nope']"),
    ('datasets = ["synthetic"]\n[define.x]\nheadz = 2\n', {}, "'headz' is not a TrainConfig field"),
    ('datasets = ["synthetic"]\n[options]\nseed = [1, 2]\n', {}, "'seed' is set by the grid"),
    ('datasets = ["a/b"]\nconfigs = ["plain"]\n', {}, "not usable in a folder name"),
    ('datasets = ["synthetic"]\nconfigs = ["plain"]\nseeds = [-1]\n', {}, "seed -1"),
    ('datasets = ["synthetic"]\nconfigs = ["plain"]\n', {"epochs": 0}, "'epochs' must be"),
    ('datasets = ["synthetic"]\n[define.x]\nheads = 0\n', {}, "configuration 'x' on 'synthetic'"),
    ('datasets = [\n', {}, "not valid TOML"),
])
def test_bad_spec_names_the_file_and_the_key(tmp_path: Path, text: str, flags: dict, message: str) -> None:
    spec_file = tmp_path / "bad.toml"
    spec_file.write_text(text)
    with pytest.raises(ValueError) as info:
        build_spec(spec_file, **flags).cells()
    assert message in str(info.value) and str(spec_file) in str(info.value)


# ---------------------------------------------------------------------------------- resume (unit)
def test_plan_skips_complete_matching_runs_only(synthetic_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # synthetic_run: 3 epochs, 2 heads, seed 0, TrainConfig's defaults = the "weighting-focal" configuration
    cells = build_spec(datasets=["synthetic"], configs=["weighting-focal"], seeds=[0, 1], epochs=3).cells()
    shutil.copytree(synthetic_run, tmp_path / cells[0].folder)
    (tmp_path / f".{cells[1].folder}.tmp-1-x").mkdir()  # a save killed half way: hidden, ignored
    state = plan(cells, tmp_path)
    assert state.done == [cells[0]] and state.todo == [cells[1]] and not state.conflicts
    before = (tmp_path / cells[0].folder / "model.pt").stat().st_mtime_ns
    result = train_cell(cells[0], str(tmp_path))  # a rerun task finds the folder its lost attempt saved
    assert result["trained"] is False
    assert (tmp_path / cells[0].folder / "model.pt").stat().st_mtime_ns == before

    assert main(["sweep", "--datasets", "synthetic", "--configs", "weighting-focal", "--seeds", "0", "1",
                 "--epochs", "3", "--out", str(tmp_path), "--dry-run"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[:2] == [f"done     {cells[0].cell_id}  {cells[0].folder}",
                          f"todo     {cells[1].cell_id}  {cells[1].folder}"]

    longer = build_spec(datasets=["synthetic"], configs=["weighting-focal"], seeds=[0], epochs=4).cells()[0]
    state, reason = cell_state(tmp_path, longer)
    assert state == "conflict" and "epochs = 3" in reason
    (tmp_path / cells[0].folder / "model.pt").unlink()
    state, reason = cell_state(tmp_path, cells[0])
    assert state == "conflict" and "model.pt" in reason


def test_sweep_help_documents_the_grid_scheduler_workers_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("datasets x configurations x seeds", "--spec FILE", "--scheduler ADDR", "HMLC_DASK_SCHEDULER",
                  "--workers N", "Resume: run the same command again", "weighting-focal", "dask worker"):
        assert words in text
    assert "``" not in text and ":func:" not in text


def test_workers_are_refused_with_a_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    from hmlc_core.sweeps.engine import SCHEDULER_ENV, dask_client, scheduler_address

    monkeypatch.setenv(SCHEDULER_ENV, "tcp://127.0.0.1:1")
    assert scheduler_address() == "tcp://127.0.0.1:1" and scheduler_address("tcp://h:2") == "tcp://h:2"
    with pytest.raises(ValueError, match="--workers sets the embedded LocalCluster"):
        with dask_client(workers=2):
            pass


# ------------------------------------------------------------------------------------ LocalCluster
@pytest.fixture(scope="module")
def local_client() -> Iterator[Any]:
    """The sweep's default engine, shared by this module's tests: a LocalCluster of 2 single-threaded workers."""
    from hmlc_core.sweeps.engine import dask_client

    with dask_client(workers=2) as client:
        yield client


def test_local_cluster_sweep_trains_registers_and_resumes(local_client: Any, tmp_path: Path) -> None:
    from hmlc_core.sweeps.engine import run_sweep

    cells = build_spec(datasets=["synthetic"], configs=["chmcnn", "plain"], seeds=[0], epochs=1).cells()
    out = tmp_path / "out"
    workers = local_client.scheduler_info()["workers"].values()
    assert len(workers) == 2 and {w["nthreads"] for w in workers} == {1}
    assert {w["host"] for w in workers} == {"127.0.0.1"}
    registered_on_landing: list[bool] = []

    def on_run(folder: str) -> None:  # each run is in the registry as soon as it lands
        registered_on_landing.append(folder in {r.folder for r in Registry(out, create=False).runs()})

    report = run_sweep(cells, out, local_client, progress=False, on_run=on_run)
    assert sorted(report.trained) == sorted(c.folder for c in cells) and not report.failed
    assert report.registered == 2 and registered_on_landing == [True, True]
    _check_registry(out, {c.folder for c in cells})
    assert find_runs([out]) == sorted((out / c.folder).resolve() for c in cells)  # what the dashboard lists
    again = run_sweep(cells, out, local_client, progress=False)
    missing = build_spec(datasets=["no_such_dataset"], configs=["chmcnn"], seeds=[0], epochs=1).cells()
    failed = run_sweep(missing, out, local_client, retries=0, progress=False)
    assert again.trained == [] and sorted(again.skipped) == sorted(c.folder for c in cells) and again.registered == 0
    assert failed.trained == [] and list(failed.failed) == [missing[0].label]
    assert "DatasetNotFoundError" in failed.failed[missing[0].label]
    _check_registry(out, {c.folder for c in cells})  # the failed cell left no folder and no row
    for cell in cells:
        resources = json.loads((out / cell.folder / "resources.json").read_text())
        assert resources["cell_id"] == cell.cell_id and resources["peak_rss_mb"] > 50
        assert json.loads((out / cell.folder / "config.json").read_text())["train"]["threads"] == 1


# ------------------------------------------------------------------ a real scheduler, a worker killed
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """``dask scheduler`` and two ``dask worker --nthreads 1 --no-nanny`` processes on 127.0.0.1."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [sys.executable, "-m", "dask"]  # the `dask` command of this interpreter
    logs = open(tmp_path / "dask.log", "wb")  # noqa: SIM115 - closed below
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port",
                                          address.rsplit(":", 1)[1], "--no-dashboard"],
                              cwd=REPO, env=_env(), stdout=logs, stderr=subprocess.STDOUT)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(dask + ["worker", address, "--nthreads", "1",
                                                      "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                                          cwd=REPO, env=_env(), stdout=logs, stderr=subprocess.STDOUT))
        yield address, procs[1:]
    finally:
        for proc in procs[::-1]:  # the workers first, while their scheduler is still there
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()


def test_sweep_survives_a_worker_killed_mid_task(dask_cluster: tuple[str, list[subprocess.Popen]],
                                                 tmp_path: Path) -> None:
    from distributed import Client

    from hmlc_core.sweeps.engine import run_sweep

    address, workers = dask_cluster
    cells = build_spec(datasets=["synthetic"], configs=["chmcnn", "plain"], seeds=[0, 1], epochs=2).cells()
    out = tmp_path / "out"
    killed: dict[str, Any] = {}

    def kill_a_busy_worker(client: Client) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for addr, keys in client.processing().items():
                if not keys:
                    continue
                executing = client.run(lambda dask_worker: [ts.key for ts in dask_worker.state.executing],
                                       workers=[addr])[addr]
                if executing:
                    pid = client.run(os.getpid, workers=[addr])[addr]
                    assert pid in {w.pid for w in workers}
                    time.sleep(0.5)  # inside the task (it imports torch, then trains for seconds)
                    os.kill(pid, signal.SIGKILL)
                    lost = next(c for c in cells if executing[0] == f"hmlc-sweep-{c.cell_id}")
                    killed.update(pid=pid, cell=lost, saved_before=(out / lost.folder).exists())
                    return
            time.sleep(0.05)

    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        monitor = threading.Thread(target=kill_a_busy_worker, args=(client,))
        monitor.start()
        report = run_sweep(cells, out, client, retries=1, progress=False)
        monitor.join()
    assert killed, "no task was seen executing"
    assert not report.failed and sorted(report.trained) == sorted(c.folder for c in cells)
    assert all(_complete(out / c.folder) for c in cells)
    assert not [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".") and not _complete(p)]
    _check_registry(out, {c.folder for c in cells})
    lost = killed["cell"]
    assert killed["saved_before"] is False  # killed mid-task, before its run was saved
    assert json.loads((out / lost.folder / "resources.json").read_text())["pid"] != killed["pid"]  # rerun elsewhere


# ----------------------------------------------------------------------- the client killed, then rerun
def test_sweep_resumes_after_the_client_is_killed(local_client: Any, tmp_path: Path) -> None:
    from hmlc_core.sweeps.engine import run_sweep

    out = tmp_path / "out"
    argv = [sys.executable, "-m", "hmlc_core", "sweep", "--datasets", "synthetic", "--configs", "chmcnn",
            "--seeds", "0", "1", "2", "--epochs", "2", "--workers", "1", "--out", str(out)]
    log = open(tmp_path / "first.log", "wb")  # noqa: SIM115 - closed below
    first = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        landed: list[Path] = []
        while not landed and time.monotonic() < deadline and first.poll() is None:
            landed = [p for p in out.glob("synthetic__*") if _complete(p)] if out.is_dir() else []
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the client, its LocalCluster and its worker
        first.wait()
        log.close()
    assert landed, (tmp_path / "first.log").read_text()[-3000:]
    kept = {p.name: (p / "model.pt").stat().st_mtime_ns for p in out.glob("synthetic__*") if _complete(p)}
    assert 1 <= len(kept) < 3
    cells = build_spec(datasets=["synthetic"], configs=["chmcnn"], seeds=[0, 1, 2], epochs=2).cells()
    second = run_sweep(cells, out, local_client, progress=False)  # the same sweep, run again
    assert sorted(second.skipped) == sorted(kept) and len(second.trained) == 3 - len(kept) and not second.failed
    folders = {f"synthetic__chmcnn__seed-{s}" for s in range(3)}
    assert all(_complete(out / f) for f in folders)
    assert {f: (out / f / "model.pt").stat().st_mtime_ns for f in kept} == kept  # finished runs not retrained
    _check_registry(out, folders)


# ----------------------------------------------------------------------- a long cell resumed from its checkpoint
def test_a_cell_killed_mid_training_goes_on_from_its_checkpoint(tmp_path: Path) -> None:
    import torch

    from hmlc_core.catalog import open_dataset
    from hmlc_core.sweeps.task import checkpoint_path
    from hmlc_core.train import train

    cell = build_spec(datasets=["synthetic"], configs=["chmcnn"], seeds=[0], epochs=4).cells()[0]
    whole = train_cell(cell, str(tmp_path / "whole"))
    out = tmp_path / "out"
    out.mkdir()
    checkpoint = checkpoint_path(out, cell)
    assert checkpoint.parent == out and checkpoint.name.startswith(".")
    finished: list[int] = []
    # the first attempt: its worker dies in epoch 3, after the checkpoint of epoch 2 (what train_cell writes)
    train(cell.train_config(), open_dataset("synthetic"), progress=lambda e: finished.append(e["epoch"]),
          should_stop=lambda: len(finished) >= 2, checkpoint=checkpoint, checkpoint_seconds=0)
    assert checkpoint.is_file() and plan([cell], out).todo == [cell]  # nothing saved: still to do
    assert find_runs([out]) == []
    result = train_cell(cell, str(out))
    assert result["trained"] and result["resources"]["resumed_epochs"] == 2
    assert whole["resources"]["resumed_epochs"] == 0
    assert not checkpoint.exists()  # removed once the run is saved
    saved = json.loads((out / cell.folder / "summary.json").read_text())
    assert saved["resumed_epochs"] == 2 and saved["epochs_completed"] == 4
    a = torch.load(tmp_path / "whole" / cell.folder / "model.pt", weights_only=True)
    b = torch.load(out / cell.folder / "model.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same run as without the kill
