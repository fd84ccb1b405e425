"""Crash windows of the run registry: a process killed inside a delete or an overwrite, and delete vs import.

Each kill is real (but one): a child process runs the library code with one
function wrapped so that the process ends with ``os._exit`` right after the
step it probes (no ``finally``, no ``atexit``, no SQLite commit); the
overwrite killed while still writing is laid out by hand. The
next start (a new :class:`Registry` and :func:`hmlc_core.jobs.startup`) must
show the run again (rolled back) or have it cleanly gone (completed), with
no hidden leftovers and no row pointing to a missing folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hmlc_core.jobs import startup
from hmlc_core.registry import Registry
from hmlc_core.runs import load_run

ROOT = Path(__file__).resolve().parent.parent

# Wraps Path.rename (or shutil.rmtree) so the process dies right after the step whose target name contains MARK.
_KILLER = """
import os, pathlib, shutil, sys
MARK = sys.argv[1]
_rename = pathlib.Path.rename
def rename(self, target):
    moved = _rename(self, target)
    if MARK in pathlib.Path(target).name:
        os._exit(9)
    return moved
pathlib.Path.rename = rename
if MARK == "rmtree":
    shutil.rmtree = lambda *args, **kwargs: os._exit(9)
"""


def _run_child(body: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLER) + textwrap.dedent(body), *args],
                          env=env, capture_output=True, text=True, timeout=60)


def _fake_run(path: Path, seed: int = 0) -> None:
    """A folder that :meth:`Registry.sync` imports (summary.json and config.json only)."""
    path.mkdir()
    (path / "summary.json").write_text(json.dumps({"auprc_micro": 0.5, "status": "finished"}))
    (path / "config.json").write_text(json.dumps({"train": {"dataset": "synthetic", "seed": seed}}))


def _next_start(runs_dir: Path) -> Registry:
    registry = Registry(runs_dir)
    startup(registry)
    return registry


def _assert_consistent(registry: Registry) -> None:
    """Every imported or finished row has its folder, and no half-done rename is left over."""
    dangling = [r.folder for r in registry.runs() if not r.active and not r.path.is_dir()]
    assert dangling == [], f"rows pointing to missing folders: {dangling}"
    hidden = sorted(p.name for p in registry.runs_dir.iterdir() if p.name.startswith(".") and p.name != ".logs")
    assert hidden == [], f"half-done renames left over: {hidden}"


@pytest.mark.parametrize("mark", [".deleting-", "rmtree"], ids=["before-commit", "after-commit"])
def test_delete_killed_is_rolled_back_or_completed(tmp_path: Path, mark: str) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    _fake_run(runs_dir / "keep", seed=1)
    _fake_run(runs_dir / "victim", seed=2)
    registry = Registry(runs_dir)
    ids = {r.folder: r.id for r in registry.sync()}
    child = _run_child("""
        from hmlc_core.registry import Registry
        Registry(sys.argv[2]).delete(sys.argv[3])
        sys.exit(0)
    """, mark, str(runs_dir), ids["victim"])
    assert child.returncode == 9, child.stderr  # killed at the probed step, not finished normally

    registry = _next_start(runs_dir)
    folders = sorted(r.folder for r in registry.runs())
    if mark == ".deleting-":  # killed before the registry commit: the delete did not happen
        assert folders == ["keep", "victim"]
        assert registry.get(ids["victim"]).path.joinpath("summary.json").is_file()
    else:  # committed: the run is gone, folder included
        assert folders == ["keep"]
        assert not (runs_dir / "victim").exists()
    _assert_consistent(registry)


def test_overwrite_killed_between_its_renames_is_completed(tmp_path: Path, synthetic_run: Path) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    shutil.copytree(synthetic_run, runs_dir / "run")
    old_epochs = load_run(runs_dir / "run").summary["epochs_planned"]
    (row,) = Registry(runs_dir).sync()
    child = _run_child("""
        from hmlc_core.jobs import train_and_save
        from hmlc_core.train import TrainConfig
        train_and_save(TrainConfig(dataset="synthetic", epochs=1, heads=1, seed=5), sys.argv[2], overwrite=True)
        sys.exit(0)
    """, ".old-", str(runs_dir / "run"))
    assert child.returncode == 9, child.stderr
    assert not (runs_dir / "run").exists()  # the window: the old run is aside and the new one not in place

    registry = _next_start(runs_dir)
    assert [r.id for r in registry.runs()] == [row.id]
    run = load_run(registry.get(row.id).path)  # complete: the new run, written in full before the renames
    assert (run.summary["epochs_planned"], run.config.seed) == (1, 5) != (old_epochs, 0)
    _assert_consistent(registry)


def test_overwrite_killed_before_the_new_run_is_complete_is_rolled_back(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    _fake_run(runs_dir / "run", seed=3)
    (row,) = Registry(runs_dir).sync()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended: its half-written folders are leftovers
    (runs_dir / "run").rename(runs_dir / f".run.old-{pid}")
    partial = runs_dir / f".run.tmp-{pid}-abc_12xy"
    partial.mkdir()
    (partial / "config.json").write_text("{}")  # killed while writing the new run

    registry = _next_start(runs_dir)
    assert registry.get(row.id).config["seed"] == 3
    assert json.loads((runs_dir / "run" / "config.json").read_text())["train"]["seed"] == 3
    _assert_consistent(registry)


def test_concurrent_delete_and_import_leave_no_dangling_rows(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    Registry(runs_dir)
    done, ready = tmp_path / "done", tmp_path / "ready"
    # A slow importer (its folder reads take 20 ms) syncs until the deleter is done.
    importer = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys, time
        import hmlc_core.registry as registry_module
        _import_row = registry_module._import_row
        def slow(path):
            row = _import_row(path)
            time.sleep(0.02)
            return row
        registry_module._import_row = slow
        registry = registry_module.Registry(sys.argv[1])
        registry.sync()
        open(sys.argv[3], "w").close()
        while not os.path.exists(sys.argv[2]):
            registry.sync()
        registry.sync()
    """), str(runs_dir), str(done), str(ready)], env=dict(os.environ, PYTHONPATH=str(ROOT)), stderr=subprocess.PIPE,
        text=True)
    try:
        # The deleter: a new run folder appears, is imported, and is deleted at once, 60 times.
        registry = Registry(runs_dir)
        while not ready.exists() and importer.poll() is None:
            time.sleep(0.01)
        for i in range(60):
            _fake_run(runs_dir / f"r{i:02d}", seed=i)
            registry.sync()
            (record,) = [r for r in registry.runs() if r.folder == f"r{i:02d}"]
            registry.delete(record.id)
    finally:
        done.touch()
        _, stderr = importer.communicate(timeout=60)
    assert importer.returncode == 0, stderr
    registry = Registry(runs_dir)
    assert [r.folder for r in registry.runs()] == []
    _assert_consistent(registry)
