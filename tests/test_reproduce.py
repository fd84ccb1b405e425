"""bench/reproduce.py: planning, the choice of the best configuration, and the report built from real runs.

The runs are 1-epoch synthetic runs trained in-process (the script itself trains each in a fresh worker).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import reproduce  # noqa: E402
from hmlc_core.runs import load_run  # noqa: E402


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WORK/paper-e1/synthetic/{chmcnn,plain,weighting-focal}/seed-{0,1,2}, trained for one epoch."""
    root = tmp_path_factory.mktemp("reproduce")
    tasks = reproduce.plan(root, ["synthetic"], ["chmcnn", "plain", "weighting-focal"], [0, 1, 2], "paper", 1, None)
    assert len(tasks) == 9
    for task in tasks:
        reproduce._train_one(task)
    return root


def test_plan_skips_finished_runs(work: Path) -> None:
    assert reproduce.plan(work, ["synthetic"], ["plain", "weighting-focal"], [0, 1, 2], "paper", 1, None) == []
    todo = reproduce.plan(work, ["synthetic"], ["plain", "lpros"], [0, 3], "paper", 1, None)
    assert sorted((t.config_name, t.config.seed) for t in todo) == [("lpros", 0), ("lpros", 3), ("plain", 3)]
    assert all(Path(t.out).parent.name == t.config_name for t in todo)


def test_every_config_is_valid() -> None:
    for name, (_, overrides) in reproduce.CONFIGS.items():
        config = reproduce.TrainConfig(dataset="cellcycle_FUN", **overrides)
        config.resolved().validate()
        assert (config.heads == 1) == (name == reproduce.CHMCNN)


def test_best_config_prefers_macro_recall_at_comparable_f1() -> None:
    rows = [("plain", 0.10, 0.01), ("weighting", 0.095, 0.30), ("focal-mean", 0.05, 0.50), ("lpros", 0.12, 0.05)]
    df = pd.DataFrame([{"config": c, "macro_f1": f, "macro_recall": r} for c, f, r in rows])
    assert reproduce.best_config(df) == "weighting"  # focal-mean recalls more but has half the F1
    low = df.assign(macro_f1=[0.10, 0.05, 0.06, 0.02])
    assert reproduce.best_config(low) == "focal-mean"  # none comparable: the highest macro-F1
    assert reproduce.best_config(df[df["config"] != "plain"]) is None


def test_report_numbers_match_the_runs(work: Path) -> None:
    df = reproduce.collect(work / "paper-e1")
    assert sorted(df["config"].unique()) == ["chmcnn", "plain", "weighting-focal"]
    assert len(df) == 9 and (df["epochs"] == 1).all()
    assert (df["peak_rss_mb"] > 0).all()

    summaries = {}
    for run_dir in sorted((work / "paper-e1" / "synthetic").glob("*/seed-*")):
        run = load_run(run_dir)
        summaries.setdefault(run_dir.parent.name, []).append(run.summary)
    plain_auprc = np.array([s["auprc_micro"] for s in summaries["plain"]])
    weighted_auprc = np.array([s["auprc_micro"] for s in summaries["weighting-focal"]])

    report = reproduce.render_report(work)
    expected = f"{plain_auprc.mean():.4f} ± {plain_auprc.std(ddof=1):.4f}"
    plain_row = next(line for line in report.splitlines() if line.startswith("| plain | 3 | 1 |"))
    assert plain_row.split(" | ")[3] == expected

    diff = weighted_auprc.mean() - plain_auprc.mean()
    p = wilcoxon(plain_auprc, weighted_auprc).pvalue
    row = next(line for line in report.splitlines() if line.startswith("| weighting-focal | 3 |"))
    assert f"{diff:+.4f} ({p:.2g})" in row
    assert "### C-HMCNN against its published AUPRC" in report
    assert "| synthetic | 3 | 1 |" in report  # chmcnn row; synthetic has no published figure
    assert "Best weighted/focal configuration: `weighting-focal`" in report
    assert "- `paper-e1` (C-HMCNN's recipe: batch 4, the dataset's learning rate, 1 epochs): 9 runs" in report


def test_budget_record_and_report_only(work: Path, tmp_path: Path) -> None:
    report = tmp_path / "reproduction.md"
    assert reproduce.main(["--report-only", "--work", str(work), "--report", str(report)]) == 0
    text = report.read_text()
    assert text == reproduce.render_report(work, reproduce.FINDINGS.read_text())
    assert "## Findings" in text and text.index("## Budgets") < text.index("## Findings") < text.index("## Budget `")
    assert not (work / "paper-e1" / "invocations.json").exists()  # --report-only trains nothing, records nothing
    resources = json.loads((work / "paper-e1" / "synthetic" / "plain" / "seed-0" / "resources.json").read_text())
    assert resources["wall_seconds"] >= resources["train_seconds"] > 0
