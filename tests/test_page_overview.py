"""AppTest tests of the Overview page (app_pages/overview.py), the app's default page.

Expected numbers come from the run's files (summary.json, history.csv,
predictions.npz) and scikit-learn, not from hmlc_core.views.diagnose. See
tests/test_app.py for the AppTest conventions (fresh AppTest + ``run`` query
parameter to change runs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_recall_fscore_support
from streamlit.testing.v1 import AppTest

from helpers import open_app
from app_pages import common as app_common
from hmlc_core.runs import load_run
from hmlc_core.train import TrainConfig



def _app(**query: str) -> AppTest:
    return open_app(**query)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _chart(at: AppTest, title: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if s["layout"].get("title", {}).get("text") == title)


def test_overview_is_the_default_page_and_shows_the_run(app_env: Path) -> None:
    at = _app(run=app_env.name)
    assert not at.exception and not at.warning
    assert at.title[0].value == f"Overview · {app_common.md_text(app_env.name)}"
    assert not any("demo pair" in p.proto.label for p in at.get("page_link"))
    run = load_run(app_env)
    s = run.summary
    m = _metrics(at)
    assert m["micro AUPRC"] == f"{s['auprc_micro']:.3f}"
    assert m["macro recall"] == f"{s['macro_recall']:.3f}"
    assert m["nodes"] == "121" and m["max depth"] == "4"
    # the dataset and structure are text, not metric cards, which cut long values ("cellcyc...")
    assert "dataset" not in m and "structure" not in m
    assert any("synthetic" in c.value and "tree" in c.value for c in at.caption)
    assert m["test examples"] == str(s["n_test"])
    preds = run.predictions()
    mask = run.hierarchy.eval_mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = precision_recall_fscore_support(preds["y_true"][:, mask], (preds["mean_probs"] > 0.5)[:, mask],
                                                     average="micro", zero_division=0)
    # coherent predictions: Kiritchenko's ancestor-augmented hP/hR/hF equal the flat micro values
    assert (m["hierarchical precision"], m["hierarchical recall"], m["hierarchical F1"]) == (
        f"{p:.3f}", f"{r:.3f}", f"{f:.3f}")
    assert 0 <= float(m["rare-node recall"]) <= 1
    curve = _chart(at, "Training curve")
    np.testing.assert_allclose(curve["data"][0]["y"], run.history["loss"], rtol=1e-5)
    rbd = _chart(at, "Macro recall by depth")
    assert rbd["data"][0]["x"] == [1, 2, 3, 4]
    links = {link.proto.page.split("/")[-1] for link in at.get("page_link")}
    assert links >= {"hierarchy", "missed-nodes", "retraining", "comparison"}
    config = at.dataframe[0].value
    assert sorted(config.index) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    assert config.loc["heads", "value"] == str(run.config.heads)


def test_overview_follows_the_run_chosen_in_the_url(synthetic_run: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "more" / "other_run"
    shutil.copytree(synthetic_run, other)
    history = pd.read_csv(other / "history.csv")
    history["loss"] = history["loss"] * 10 + 1
    history.to_csv(other / "history.csv", index=False)
    summary = json.loads((other / "summary.json").read_text())
    summary["auprc_micro"] = 0.123456
    (other / "summary.json").write_text(json.dumps(summary))
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", tmp_path / "no_demo_run")
    monkeypatch.setattr(app_common, "LOCAL_RUNS_DIR", tmp_path / "runs")
    monkeypatch.setenv("HMLC_RUNS_DIR", os.pathsep.join([str(synthetic_run.parent), str(other.parent)]))

    first = _app(run=synthetic_run.name)
    second = _app(run="other_run")
    assert not first.exception and not second.exception
    assert second.title[0].value == "Overview · other\\_run"
    assert _metrics(second)["micro AUPRC"] == "0.123"
    assert _metrics(first)["micro AUPRC"] == f"{load_run(synthetic_run).summary['auprc_micro']:.3f}"
    np.testing.assert_allclose(_chart(second, "Training curve")["data"][0]["y"], history["loss"], rtol=1e-5)
    assert _chart(first, "Training curve")["data"][0]["y"] != _chart(second, "Training curve")["data"][0]["y"]


def test_overview_warns_when_the_predictions_cannot_be_read(synthetic_run: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken" / "broken_run"
    shutil.copytree(synthetic_run, broken)
    (broken / "predictions.npz").write_bytes(b"not a zip file")
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", tmp_path / "no_demo_run")
    monkeypatch.setattr(app_common, "LOCAL_RUNS_DIR", tmp_path / "runs")
    monkeypatch.setenv("HMLC_RUNS_DIR", str(broken.parent))
    at = _app(run="broken_run")
    assert not at.exception
    assert any(app_common.md_text("predictions.npz") in w.value for w in at.warning)  # shown as text
    m = _metrics(at)
    assert m["hierarchical F1"] == "n/a"
    assert m["micro AUPRC"] == f"{load_run(broken).summary['auprc_micro']:.3f}"  # the rest of the page is there


def test_overview_renders_the_bundled_demo_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    at = _app()
    assert not at.exception and not at.warning
    demo = load_run(app_common.DEMO_RUN_DIR)
    assert at.title[0].value == f"Overview · {app_common.md_text('demo')}"  # the chooser's key, not the folder
    # the demo points at its weighted twin on Compare; another run does not
    assert any("demo pair" in p.proto.label for p in at.get("page_link"))
    assert _metrics(at)["micro AUPRC"] == f"{demo.summary['auprc_micro']:.3f}"
