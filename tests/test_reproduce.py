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
from sklearn.metrics import average_precision_score, f1_score, recall_score

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import reproduce  # noqa: E402
from helpers import closure_reference, train_prevalence_reference  # noqa: E402
from hmlc_core.decision import DEFAULT_SHRINKAGE, fit_decision_rule  # noqa: E402
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
    assert "Best configuration at fixed 0.5: `weighting-focal`" in report
    assert "### Decision rules" not in report  # runs trained on train+valid have no held-out predictions
    assert ("- `paper-e1` (C-HMCNN's recipe: batch 4, the dataset's learning rate, 1 epochs, trained on "
            "train+valid, fixed 0.5 only): 9 runs") in report


def test_budget_record_and_report_only(work: Path, tmp_path: Path) -> None:
    report = tmp_path / "reproduction.md"
    assert reproduce.main(["--report-only", "--work", str(work), "--report", str(report)]) == 0
    text = report.read_text()
    assert text == reproduce.render_report(work, reproduce.FINDINGS.read_text())
    assert "## Findings" in text and text.index("## Budgets") < text.index("## Findings") < text.index("## Budget `")
    assert not (work / "paper-e1" / "invocations.json").exists()  # --report-only trains nothing, records nothing
    resources = json.loads((work / "paper-e1" / "synthetic" / "plain" / "seed-0" / "resources.json").read_text())
    assert resources["wall_seconds"] >= resources["train_seconds"] > 0


HELD_OUT_CONFIGS = ["plain", "weighting-focal", "asl"]


@pytest.fixture(scope="module")
def held_out_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WORK/paper-e3-fit-train/synthetic/{plain,weighting-focal,asl}/seed-{0,1,2} (valid held out), and
    WORK/paper-e3/synthetic/plain/seed-{0,1} trained on train+valid: 3-epoch synthetic runs."""
    root = tmp_path_factory.mktemp("reproduce-held-out")
    tasks = reproduce.plan(root, ["synthetic"], HELD_OUT_CONFIGS, [0, 1, 2], "paper", 3, None, "train")
    tasks += reproduce.plan(root, ["synthetic"], ["plain"], [0, 1], "paper", 3, None, "train+valid")
    assert len(tasks) == 11
    for task in tasks:
        reproduce._train_one(task)
    return root


def _recompute(run_dir: Path, rule: str, shrinkage: float | None) -> dict[str, float]:
    """Test metrics of a run under a rule, from its saved predictions, with sklearn for every metric."""
    saved = np.load(run_dir / "predictions.npz")
    run = load_run(run_dir)
    hierarchy, mask = run.hierarchy, run.hierarchy.eval_mask
    fitted = fit_decision_rule(rule, hierarchy, saved["valid_y_true"], saved["valid_mean_probs"], threshold=0.5,
                               shrinkage=shrinkage, prevalence=train_prevalence_reference(run_dir))
    y, probs = saved["y_true"], saved["mean_probs"]
    pred = closure_reference(hierarchy, probs > fitted.thresholds)
    ye, pe = y[:, mask], pred[:, mask]
    recall = recall_score(ye, pe, average=None, zero_division=0)
    freq = run.node_metrics["train_frequency"].to_numpy(float)[mask]
    rare = freq <= np.quantile(freq, 0.25)
    index = hierarchy.index
    violations = sum(int(np.sum((pred[:, index[c]] == 1) & (pred[:, index[p]] == 0))) for p, c in hierarchy.graph.edges)
    ap = [average_precision_score(ye[:, j], probs[:, mask][:, j]) if ye[:, j].any() else 0.0
          for j in range(ye.shape[1])]
    return {"macro_f1": float(np.mean(f1_score(ye, pe, average=None, zero_division=0))),
            "macro_recall": float(recall.mean()), "rare_node_recall": float(recall[rare].mean()),
            "micro_f1": float(f1_score(ye, pe, average="micro", zero_division=0)),
            "coherence_violations": violations, "macro_auprc": float(np.mean(ap))}


RULES = {"fixed": ("fixed", None), "global": ("global", None), "per-node": ("per-node", DEFAULT_SHRINKAGE),
         "per-node-m0": ("per-node", 0.0)}


def test_fit_on_keeps_budgets_apart(held_out_work: Path) -> None:
    assert reproduce.build_parser().parse_args([]).fit_on == "train"
    assert reproduce.budget_name("quick", None, "train") == "quick-fit-train"
    assert reproduce.budget_name("quick", None) == "quick"
    assert sorted(p.name for p in held_out_work.iterdir()) == ["paper-e3", "paper-e3-fit-train"]
    for run_dir in (held_out_work / "paper-e3-fit-train").glob("*/*/seed-*"):
        assert load_run(run_dir).config.fit_on == "train"
    assert load_run(held_out_work / "paper-e3" / "synthetic" / "plain" / "seed-0").config.fit_on == "train+valid"
    # the second call finds every run finished, in its own budget only
    assert reproduce.plan(held_out_work, ["synthetic"], ["plain"], [0, 1, 2], "paper", 3, None, "train") == []
    assert len(reproduce.plan(held_out_work, ["synthetic"], ["plain"], [0, 1, 2], "paper", 3, None)) == 1


def test_decision_columns_match_sklearn(held_out_work: Path) -> None:
    df = reproduce.collect(held_out_work / "paper-e3-fit-train")
    assert len(df) == 9 and sorted(df["config"].unique()) == sorted(HELD_OUT_CONFIGS)
    for _, row in df.iterrows():
        for key, (rule, shrinkage) in RULES.items():
            expected = _recompute(Path(row["run"]), rule, shrinkage)
            assert expected["coherence_violations"] == 0 == row[f"coherence_violations@{key}"]
            for metric in ("macro_f1", "macro_recall", "rare_node_recall", "micro_f1"):
                assert row[f"{metric}@{key}"] == pytest.approx(expected[metric], abs=1e-9), (key, metric)
            assert row["macro_auprc"] == pytest.approx(expected["macro_auprc"], abs=1e-9)
        assert row["macro_f1@fixed"] == pytest.approx(row["macro_f1"], abs=1e-12)  # summary.json at 0.5
    assert (df["rare_node_recall@per-node-m0"] > 0).any()  # the synthetic runs do reach rare nodes unshrunk
    assert reproduce.collect(held_out_work / "paper-e3").filter(like="@").empty  # train+valid: no tuned rules


def _by_seed(held_out_work: Path, config: str, rule: str, shrinkage: float | None, metric: str) -> np.ndarray:
    runs = sorted((held_out_work / "paper-e3-fit-train" / "synthetic" / config).glob("seed-*"))
    return np.array([_recompute(r, rule, shrinkage)[metric] for r in runs])


def test_decision_report_numbers(held_out_work: Path) -> None:
    report = reproduce.render_report(held_out_work)
    assert report.index("## Budget `paper-e3`") < report.index("## Budget `paper-e3-fit-train`")
    assert report.count("### Decision rules: every configuration under every rule") == 1
    assert report.index("## Budget `paper-e3-fit-train`") < report.index("### Decision rules")
    assert "trained on train with valid held out for the decision rules" in report

    plain_fixed = _by_seed(held_out_work, "plain", "fixed", None, "macro_f1")
    paper_fixed = _by_seed(held_out_work, "weighting-focal", "fixed", None, "macro_f1")
    asl_m0 = _by_seed(held_out_work, "asl", "per-node", 0.0, "macro_f1")
    row = next(line for line in report.splitlines() if line.startswith("| asl | per-node (m = 0, unshrunk) | 3 |"))
    cells = row.split(" | ")
    assert cells[3] == f"{asl_m0.mean():.4f}"
    assert cells[4] == f"{asl_m0.mean() / plain_fixed.mean():.2f}x ({wilcoxon(plain_fixed, asl_m0).pvalue:.2g})"
    assert cells[5] == f"{asl_m0.mean() / paper_fixed.mean():.2f}x ({wilcoxon(paper_fixed, asl_m0).pvalue:.2g})"

    ap_plain = _by_seed(held_out_work, "plain", "fixed", None, "macro_auprc")
    ap_asl = _by_seed(held_out_work, "asl", "fixed", None, "macro_auprc")
    row = next(line for line in report.splitlines() if line.startswith("| asl | 3 | ")
               and line.count("|") == 6)
    assert row.split(" | ")[2] == f"{ap_asl.mean():.4f}"
    assert row.split(" | ")[3] == f"{ap_asl.mean() - ap_plain.mean():+.4f} ({wilcoxon(ap_plain, ap_asl).pvalue:.2g})"


def test_done_when_figures(held_out_work: Path) -> None:
    df = reproduce.collect(held_out_work / "paper-e3-fit-train")
    assert reproduce.done_when(df) == []  # synthetic is not one of the target datasets
    everywhere = reproduce.done_when(df, None)  # every dataset of df
    assert [v for _, _, v, _ in everywhere if v.startswith("synthetic ")] and len(everywhere) == 9
    figures = {f: (t, v, met) for f, t, v, met in reproduce.done_when(df.assign(dataset="cellcycle_FUN"))}
    plain_fixed = _by_seed(held_out_work, "plain", "fixed", None, "macro_f1")
    m5 = _by_seed(held_out_work, "plain", "per-node", DEFAULT_SHRINKAGE, "macro_f1")
    label = f"per-node (m = {DEFAULT_SHRINKAGE:g}, default)"
    ratio = m5.mean() / plain_fixed.mean()
    p = wilcoxon(plain_fixed, m5).pvalue
    target, value, met = figures[f"macro F1, plain under {label} / plain at fixed 0.5"]
    assert value == f"{ratio:.2f}x (p = {p:.2g})" and met == (ratio >= 2.5 and p < 0.05)
    micro_m5 = _by_seed(held_out_work, "plain", "per-node", DEFAULT_SHRINKAGE, "micro_f1")
    micro_global = _by_seed(held_out_work, "plain", "global", None, "micro_f1")
    micro_ratio = micro_m5.mean() / micro_global.mean()
    assert figures[f"micro F1, plain under {label} / under global"][1] == f"{micro_ratio:.2f}x"
    rare = _by_seed(held_out_work, "plain", "per-node", 0.0, "rare_node_recall")
    _, value, met = figures["rare-node recall, plain under per-node (m = 0, unshrunk), per dataset"]
    assert value == f"cellcycle {rare.mean():.3f}" and met == bool(rare.mean() > 0)
    assert figures["coherence violations, every run under every rule"][1:] == ("0", True)
