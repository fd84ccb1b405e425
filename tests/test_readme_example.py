"""The README's notebook example (issue 15, *Done when*) runs as written and its run opens in the dashboard.

The ``python`` block right after the ``<!-- example: notebook -->`` marker in README.md is executed in a
temporary working folder holding the two files it reads, ``genes.csv`` and ``go-basic.obo``, generated
here: a small GO-like ontology (one obsolete term) and a table whose labels follow its features.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import only_runs_in, open_app
from hmlc_core.runs import load_run

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- example: notebook -->"

ROOT_TERM = "GO:0008150"
CHILDREN = {"GO:0000001": ["GO:0000011", "GO:0000012"], "GO:0000002": ["GO:0000021", "GO:0000022"],
            "GO:0000003": ["GO:0000031"]}
OBSOLETE = "GO:0000099"


def readme_example() -> str:
    """The code of the first ```python block after :data:`MARKER` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.count(MARKER) == 1, f"README.md must hold the marker {MARKER} exactly once"
    match = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    assert match, f"no ```python block after {MARKER} in README.md"
    return match.group(1)


def _obo() -> str:
    """An OBO 1.2 ontology: the root, 3 children, 5 grandchildren (is_a) and an obsolete term."""
    terms = [f"[Term]\nid: {ROOT_TERM}\nname: biological_process\n"]
    for child, grandchildren in CHILDREN.items():
        terms.append(f"[Term]\nid: {child}\nname: process {child[-1]}\nis_a: {ROOT_TERM} ! biological_process\n")
        terms += [f"[Term]\nid: {g}\nname: process {g[-2:]}\nis_a: {child}\n" for g in grandchildren]
    terms.append(f"[Term]\nid: {OBSOLETE}\nname: gone\nis_obsolete: true\nis_a: {ROOT_TERM}\n")
    return "format-version: 1.2\nontology: go-mini\n\n" + "\n".join(terms)


def _table(n: int = 90, seed: int = 0) -> pd.DataFrame:
    """``n`` samples, 4 features; a sample's leaf is set by its strongest feature (a few carry two leaves,
    one has no label)."""
    rng = np.random.default_rng(seed)
    leaves = [g for gs in CHILDREN.values() for g in gs]
    x = rng.normal(size=(n, 4))
    labels = []
    for i, row in enumerate(x):
        first = leaves[int(np.argmax(row)) % len(leaves)]
        second = leaves[(int(np.argmin(row)) + 4) % len(leaves)]
        labels.append("" if i == 0 else first if i % 5 else f"{first}@{second}")
    frame = pd.DataFrame(x, columns=[f"f{j}" for j in range(4)])
    frame["labels"] = labels
    return frame


@pytest.fixture
def notebook_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, Path]:
    """Run the README example in ``tmp_path/notebook``; returns its namespace and the run directory."""
    work = tmp_path / "notebook"
    work.mkdir()
    (work / "go-basic.obo").write_text(_obo(), encoding="utf-8")
    _table().to_csv(work / "genes.csv", index=False)
    monkeypatch.chdir(work)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(readme_example(), "README.md (notebook example)", "exec"), namespace)  # noqa: S102
    return namespace, work / "runs" / "genes"


def test_readme_notebook_example_fits_predicts_and_saves(notebook_run: tuple[dict, Path]) -> None:
    ns, run_dir = notebook_run
    assert Path(ns["run_dir"]).resolve() == run_dir.resolve()
    clf, X_test = ns["clf"], ns["X_test"]
    nodes = {ROOT_TERM, *CHILDREN, *(g for gs in CHILDREN.values() for g in gs)}
    assert set(clf.classes_) == nodes and OBSOLETE not in set(clf.classes_)
    probs, predicted = ns["probs"], ns["predicted"]
    assert probs.shape == predicted.shape == (len(X_test), len(nodes))
    assert list(probs.columns) == list(clf.classes_) and list(probs.index) == list(X_test.index)
    assert ((probs.to_numpy() >= 0) & (probs.to_numpy() <= 1)).all()
    assert clf.hierarchy_.coherence_violations(predicted.to_numpy()) == 0
    run = load_run(run_dir)
    assert run.hierarchy.nodes == clf.hierarchy_.nodes
    preds = run.predictions()
    np.testing.assert_allclose(preds["mean_probs"], probs.to_numpy(), atol=1e-6)
    assert preds["y_true"].shape == (len(X_test), len(nodes))
    assert run.summary["n_test"] == len(X_test)


def test_readme_notebook_run_opens_in_the_overview(notebook_run: tuple[dict, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, run_dir = notebook_run
    only_runs_in(run_dir.parent, tmp_path, monkeypatch)
    at = open_app(run="genes")
    assert not at.exception
    assert at.title[0].value.startswith("Overview")
    assert "genes" in at.title[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["nodes"] == str(len(load_run(run_dir).hierarchy.nodes))
    assert metrics["test examples"] == str(load_run(run_dir).summary["n_test"])
