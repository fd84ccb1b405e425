"""Shared pytest fixtures.

``synthetic_run``
    SESSION-SCOPED, SHARED: a small run directory trained once per test session
    (3 epochs on ``make_synthetic(seed=0)``, 2 heads) in a temporary folder.
    Returns the run directory as a ``pathlib.Path``. Treat it as read-only:
    tests that modify a run must copy it first (``shutil.copytree``).
``app_env``
    The synthetic run is the app's only run (no demo, an empty local runs/
    folder, ``HMLC_RUNS_DIR`` = its folder). Returns the run directory.
``no_user_runs``
    AUTOUSE: every test starts without the user's runs: ``HMLC_RUNS_DIR`` is
    unset and ``HMLC_LOCAL_RUNS_DIR`` (which replaces the app's ``runs/``)
    points at an empty temporary folder. Tests that need runs set them up.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def no_user_runs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's runs (``./runs``, ``$HMLC_RUNS_DIR``) out of every test, subprocesses included."""
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    monkeypatch.setenv("HMLC_LOCAL_RUNS_DIR", str(tmp_path_factory.mktemp("no_user_runs")))


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved run of a 3-epoch, 2-head ensemble on ``make_synthetic(seed=0)`` (read-only, shared)."""
    from hmlc_core.runs import save_run
    from hmlc_core.synthetic import make_synthetic
    from hmlc_core.train import TrainConfig, train

    dataset = make_synthetic(seed=0)
    result = train(TrainConfig(dataset="synthetic", epochs=3, heads=2, seed=0), dataset)
    root = tmp_path_factory.mktemp("synthetic_runs")
    return save_run(root / "synthetic_run", result, dataset)


@pytest.fixture
def app_env(synthetic_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The synthetic run is the only run: no demo, an empty local runs/ folder, HMLC_RUNS_DIR = its folder."""
    from helpers import only_runs_in

    only_runs_in(synthetic_run.parent, tmp_path, monkeypatch)
    return synthetic_run
