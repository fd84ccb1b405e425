"""Small builders shared by several test modules (imported as ``helpers``; pytest puts tests/ on sys.path)."""

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from hmlc_core.hierarchy import Hierarchy
from app_pages import common as app_common

APP = Path(__file__).resolve().parent.parent / "app.py"


def random_dag(n_nodes: int, seed: int) -> Hierarchy:
    """A GO-like DAG: node i links to 1-3 of the nodes before it, so many nodes have several parents."""
    rng = np.random.default_rng(seed)
    edges = []
    for i in range(1, n_nodes):
        for p in rng.choice(i, size=min(i, int(rng.integers(1, 4))), replace=False):
            edges.append((f"n{p}", f"n{i}"))
    return Hierarchy(edges)


def closure_reference(hierarchy: Hierarchy, above: np.ndarray) -> np.ndarray:
    """Upward closure by networkx ancestors, column by column: the test reference of ``DecisionRule.predict``."""
    import networkx as nx

    pred = np.asarray(above).astype(bool).copy()
    for node in hierarchy.nodes:
        j = hierarchy.index[node]
        for ancestor in nx.ancestors(hierarchy.graph, node):
            pred[:, hierarchy.index[ancestor]] |= np.asarray(above)[:, j].astype(bool)
    return pred.astype(np.uint8)


def train_prevalence_reference(run_dir: Path) -> np.ndarray:
    """Training positives / training samples per node, read from the run's files with pandas and json."""
    import json

    import pandas as pd

    freq = pd.read_csv(Path(run_dir) / "node_metrics.csv")["train_frequency"].to_numpy(float)
    return freq / json.loads((Path(run_dir) / "summary.json").read_text())["n_train"]


def only_runs_in(runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the runs in ``runs_dir`` the app's only runs: no demo runs, an empty local runs/ folder."""
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", tmp_path / "no_demo_run")
    monkeypatch.setattr(app_common, "DEMO_WEIGHTED_RUN_DIR", tmp_path / "no_demo_weighted_run")
    monkeypatch.setattr(app_common, "LOCAL_RUNS_DIR", tmp_path / "runs")
    monkeypatch.setenv("HMLC_RUNS_DIR", str(runs_dir))
    return runs_dir


def open_app(page: str | None = None, **query: str | list[str]) -> AppTest:
    """Run app.py once with these query parameters (its default page), then switch to ``page`` if given.

    A page other than the default is reached this way, after a first run, as tests/test_app.py explains.
    """
    at = AppTest.from_file(str(APP), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    return at if page is None else at.switch_page(page).run()
