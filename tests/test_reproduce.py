"""bench/reproduce.py: training on the sweep engine, the flat run layout and its migration, the choice of the best
configuration, the published AUPRC beside every dataset, and the report built from real runs.

The runs are 1- and 3-epoch synthetic runs trained on one Dask LocalCluster of 2 single-threaded workers, as the
script trains them (the first budget through the script's command line, given the cluster's ``--scheduler``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
from hmlc_core.config import TrainConfig  # noqa: E402
from hmlc_core.decision import DEFAULT_SHRINKAGE, fit_decision_rule  # noqa: E402
from hmlc_core.registry import Registry  # noqa: E402
from hmlc_core.runs import load_run  # noqa: E402
from hmlc_core.sweeps import plan  # noqa: E402
from hmlc_core.sweeps.grid import split_folder  # noqa: E402
from test_dataset_layout import CHMCNN_LAYOUT, UNTUNED  # noqa: E402

WORK_CONFIGS = ["chmcnn", "plain", "weighting-focal"]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """A LocalCluster of 2 single-threaded workers, shared by this module's budgets."""
    from hmlc_core.sweeps.engine import dask_client

    with dask_client(workers=2) as dask:
        yield dask


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, client: Any) -> Path:
    """WORK/paper-e1/synthetic__{chmcnn,plain,weighting-focal}__seed-{0,1,2}, trained for one epoch on
    train+valid by the script's command line, submitted to the shared cluster's scheduler (``--scheduler``)."""
    root = tmp_path_factory.mktemp("reproduce")
    assert reproduce.main(["--datasets", "synthetic", "--configs", *WORK_CONFIGS, "--seeds", "3", "--epochs", "1",
                           "--fit-on", "train+valid", "--scheduler", client.scheduler.address, "--work", str(root),
                           "--report", str(root / "report.md")]) == 0
    return root


def test_runs_are_flat_sweep_folders_and_a_second_call_trains_nothing(work: Path) -> None:
    budget = work / "paper-e1"
    names = sorted(p.name for p in budget.iterdir() if not p.name.startswith("."))
    expected = sorted(f"synthetic__{c}__seed-{s}" for c in WORK_CONFIGS for s in range(3))
    assert names == sorted([*expected, "invocations.json", "registry.sqlite"])
    assert sorted(r.folder for r in Registry(budget, create=False).runs()) == expected  # the dashboard's list
    cells = reproduce.budget_cells(["synthetic"], ["plain", "weighting-focal"], [0, 1, 2], "paper", 1, None)
    assert plan(cells, budget).todo == [] and len(plan(cells, budget).done) == 6
    todo = plan(reproduce.budget_cells(["synthetic"], ["plain", "lpros"], [0, 3], "paper", 1, None), budget).todo
    assert sorted((c.config_name, c.seed) for c in todo) == [("lpros", 0), ("lpros", 3), ("plain", 3)]


def test_every_config_is_valid() -> None:
    for name, (_, overrides) in reproduce.CONFIGS.items():
        config = TrainConfig(dataset="cellcycle_FUN", **overrides)
        config.resolved().validate()
        assert (config.heads == 1) == (name == reproduce.CHMCNN)


def test_best_config_prefers_macro_recall_at_comparable_f1() -> None:
    rows = [("plain", 0.10, 0.01), ("weighting", 0.095, 0.30), ("focal-mean", 0.05, 0.50), ("lpros", 0.12, 0.05)]
    df = pd.DataFrame([{"config": c, "macro_f1": f, "macro_recall": r} for c, f, r in rows])
    assert reproduce.best_config(df) == "weighting"  # focal-mean recalls more but has half the F1
    low = df.assign(macro_f1=[0.10, 0.05, 0.06, 0.02])
    assert reproduce.best_config(low) == "focal-mean"  # none comparable: the highest macro-F1
    assert reproduce.best_config(df[df["config"] != "plain"]) is None


def _summaries(budget: Path) -> dict[str, list[dict[str, Any]]]:
    """Config -> the summaries of its runs in ``budget``, in seed order, read from the run folders."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run_dir in sorted(budget.glob("synthetic__*__seed-*")):
        out.setdefault(split_folder(run_dir.name)[1], []).append(load_run(run_dir).summary)
    return out


def test_report_numbers_match_the_runs(work: Path) -> None:
    df = reproduce.collect(work / "paper-e1")
    assert sorted(df["config"].unique()) == WORK_CONFIGS
    assert len(df) == 9 and (df["epochs"] == 1).all()
    assert (df["peak_rss_mb"] > 0).all() and (df["wall_seconds"] >= df["train_seconds"]).all()

    summaries = _summaries(work / "paper-e1")
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
    assert "### Every dataset against its published AUPRC" in report
    chmcnn = np.array([s["auprc_micro"] for s in summaries["chmcnn"]])
    row = next(line for line in report.splitlines() if line.startswith("| synthetic | others | chmcnn | 3 | 1 |"))
    assert f"| {chmcnn.mean():.4f} ± {chmcnn.std(ddof=1):.4f} | n/a | not published | n/a | — |" in row
    assert "Best configuration at fixed 0.5: `weighting-focal`" in report
    assert "### Decision rules" not in report  # runs trained on train+valid have no held-out predictions
    assert ("- `paper-e1` (C-HMCNN's recipe: batch 4, the dataset's learning rate, 1 epochs, trained on "
            "train+valid, fixed 0.5 only): 9 runs") in report


def test_budget_record_and_report_only(work: Path, tmp_path: Path) -> None:
    budget = work / "paper-e1"
    records = json.loads((budget / "invocations.json").read_text())
    assert len(records) == 1
    record = records[0]
    address = record["scheduler"]
    assert address.startswith("tcp://127.0.0.1:") and record["jobs"] == 2
    assert record["runs_trained"] == 9 and record["runs_failed"] == 0 and record["wall_minutes"] > 0
    assert record["machine"] == reproduce._machine()  # what each worker reported: they run on this machine
    assert record["machine"].startswith(f"{os.cpu_count()} cores, ") and f"--scheduler {address}" in record["command"]
    report = tmp_path / "reproduction.md"
    assert reproduce.main(["--report-only", "--work", str(work), "--report", str(report)]) == 0
    text = report.read_text()
    assert text == reproduce.render_report(work, reproduce.FINDINGS.read_text())
    assert "## Findings" in text and text.index("## Budgets") < text.index("## Findings") < text.index("## Budget `")
    assert (f"9 runs in {record['wall_minutes']:.1f} min wall with 2 Dask worker(s) of the scheduler at {address} on "
            f"{record['machine']}: `python bench/reproduce.py --datasets synthetic") in text
    assert json.loads((budget / "invocations.json").read_text()) == records  # --report-only records nothing
    resources = json.loads((budget / "synthetic__plain__seed-0" / "resources.json").read_text())
    assert resources["wall_seconds"] >= resources["train_seconds"] > 0 and resources["peak_rss_mb"] > 0


def test_jobs_and_a_scheduler_are_refused_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        reproduce.main(["--datasets", "synthetic", "--scheduler", "tcp://127.0.0.1:9", "--jobs", "2",
                        "--work", str(tmp_path), "--report", str(tmp_path / "r.md")])
    assert exc.value.code == 2 and "--jobs sets the size of the embedded LocalCluster" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- the old nested layout
def _nest(work: Path, root: Path) -> Path:
    """A copy of ``work``'s budget in the old layout: ROOT/paper-e1/DATASET/CONFIG/seed-S."""
    for run_dir in sorted((work / "paper-e1").glob("synthetic__*__seed-*")):
        dataset, config, seed = split_folder(run_dir.name)
        shutil.copytree(run_dir, root / "paper-e1" / dataset / config / f"seed-{seed}")
    return root


def test_migration_renames_nested_runs_to_flat_once(work: Path, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    root = _nest(work, tmp_path / "work")
    nested = root / "paper-e1"
    (nested / "synthetic" / "plain" / ".seed-7.tmp-x").mkdir()  # a killed save: left with its folder
    shutil.copytree(work / "paper-e1" / "synthetic__chmcnn__seed-0", nested / "synthetic__chmcnn__seed-0")
    shutil.copytree(work / "paper-e1" / "synthetic__plain__seed-0", tmp_path / "other" / "synthetic__plain__seed-0")
    other_before = sorted(p.name for p in (tmp_path / "other").iterdir())
    with caplog.at_level(logging.WARNING, logger="reproduce"):
        assert len(reproduce.collect(nested)) == 1  # only the one flat run is read ...
    assert "old nested layout" in caplog.text  # ... and the nested ones are named

    done = reproduce.migrate_layout(root)
    assert len(done.moved) == 8  # 9 nested runs, one whose flat name was taken
    assert list(done.kept) == [str(nested / "synthetic" / "chmcnn" / "seed-0")]
    # chmcnn keeps its unmoved run, plain the killed save, and so synthetic/ is not empty either
    assert [Path(r).relative_to(nested).as_posix() for r in done.removed] == ["synthetic/weighting-focal"]
    flat = sorted(p.name for p in nested.iterdir() if split_folder(p.name))
    assert flat == sorted(p.name for p in (work / "paper-e1").glob("synthetic__*__seed-*"))
    assert reproduce.nested_runs(nested) == [("synthetic", "chmcnn", 0, nested / "synthetic" / "chmcnn" / "seed-0")]
    assert (nested / "synthetic" / "plain" / ".seed-7.tmp-x").is_dir()

    before = reproduce.collect(work / "paper-e1").drop(columns="run")
    after = reproduce.collect(nested).drop(columns="run")
    pd.testing.assert_frame_equal(after, before)  # the same runs, read from their new names

    again = reproduce.migrate_layout(root)  # idempotent: nothing more to move
    assert again.moved == [] and again.removed == [] and list(again.kept) == list(done.kept)
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == other_before


def test_migrate_layout_command_empties_the_nested_folders(work: Path, tmp_path: Path) -> None:
    root = _nest(work, tmp_path / "work")
    (root / "notes.log").write_text("kept")
    report = tmp_path / "report.md"
    args = ["--migrate-layout", "--work", str(root), "--report", str(report)]
    assert reproduce.main(args) == 0
    assert sorted(p.name for p in (root / "paper-e1").iterdir()) == sorted(
        p.name for p in (work / "paper-e1").glob("synthetic__*__seed-*"))
    assert not report.exists() and (root / "notes.log").read_text() == "kept"
    assert reproduce.main(args) == 0 and not report.exists()


def test_training_refuses_a_budget_in_the_nested_layout(work: Path, tmp_path: Path) -> None:
    root = _nest(work, tmp_path / "work")
    cells = reproduce.budget_cells(["synthetic"], ["plain"], [0], "paper", 1, None)
    with pytest.raises(ValueError, match="--migrate-layout"):
        reproduce.train_budget(cells, root / "paper-e1", None, "test")  # refused before the client is used
    assert not (root / "paper-e1" / "invocations.json").exists()


# ------------------------------------------------------------------------------- published AUPRC
# C-HMCNN's README results table (github.com/EGiunchiglia/C-HMCNN, README.md at commit
# 150ca4631e2eceef5b0b5b144b926036650f53ff, "average over the 10 runs"), names as it spells them.
CHMCNN_README = {
    "Cellcycle_FUN": 0.255, "Derisi_FUN": 0.195, "Eisen_FUN": 0.306, "Expr_FUN": 0.302, "Gasch1_FUN": 0.286,
    "Gasch2_FUN": 0.258, "Seq_FUN": 0.292, "Spo_FUN": 0.215, "Cellcycle_GO": 0.413, "Derisi_GO": 0.370,
    "Eisen_GO": 0.455, "Expr_GO": 0.447, "Gasch1_GO": 0.436, "Gasch2_GO": 0.414, "Seq_GO": 0.446, "Spo_GO": 0.382,
    "Diatoms_others": 0.758, "Enron_others": 0.756, "Imclef07a_others": 0.956, "Imclef07d_others": 0.927,
}
# HMCN-F (Wehrmann et al. 2018) where it is higher than C-HMCNN (issue 14).
HMCN_F_HIGHER = {"gasch2_GO": 0.465, "expr_GO": 0.452, "seq_GO": 0.447}


def test_every_layout_dataset_chmcnn_reports_has_its_published_auprc() -> None:
    for name, value in CHMCNN_README.items():
        published = reproduce.published_auprc(name)
        assert published is not None and published.chmcnn == value, name
    layout = {name: reproduce.published_auprc(name) for name in CHMCNN_LAYOUT}
    assert sorted(name for name, pub in layout.items() if pub is None) == sorted(UNTUNED)  # not in its table
    readme = {name.lower().removesuffix("_others"): v for name, v in CHMCNN_README.items()}
    for name, published in layout.items():
        if published is not None:
            assert published.chmcnn == readme[name.lower().replace("_corr", "")], name
    assert len([p for p in layout.values() if p is not None]) == len(CHMCNN_README)


def test_hmcn_f_is_used_only_where_higher(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, published in {n: reproduce.published_auprc(n) for n in CHMCNN_LAYOUT}.items():
        if published is None:
            continue
        hmcn_f = HMCN_F_HIGHER.get(name)
        assert published.value == max(published.chmcnn, hmcn_f or 0.0), name
        assert published.source == (reproduce.HMCN_F_SOURCE if hmcn_f else reproduce.CHMCNN_SOURCE), name
    monkeypatch.setitem(reproduce.HMCN_F_AUPRC, "cellcycle_FUN", 0.200)  # a lower HMCN-F figure is not used
    assert reproduce.published_auprc("cellcycle_FUN") == reproduce.Published(0.255, reproduce.CHMCNN_SOURCE, 0.255)


def test_published_table_has_a_row_per_dataset_with_its_source_and_resources(work: Path) -> None:
    df = reproduce.collect(work / "paper-e1")
    relabelled = pd.concat([df.assign(dataset="gasch2_GO"), df.assign(dataset="church_FUN"),
                            df[df["config"] == "plain"].assign(dataset="Diatoms"),
                            df[df["config"] == "chmcnn"].assign(dataset="cellcycle_FUN")], ignore_index=True)
    lines = [line for line in reproduce._published_section(relabelled) if line.startswith("| ")][1:]  # no header
    assert [line.split(" | ")[0][2:] for line in lines] == ["cellcycle_FUN", "church_FUN", "gasch2_GO", "Diatoms"]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines}

    resources = {p.name: json.loads((p / "resources.json").read_text())
                 for p in (work / "paper-e1").glob("synthetic__*__seed-*")}
    summaries = _summaries(work / "paper-e1")
    chmcnn = np.array([s["auprc_micro"] for s in summaries["chmcnn"]])
    plain = np.array([s["auprc_micro"] for s in summaries["plain"]])
    wall = {c: np.mean([r["wall_seconds"] for n, r in resources.items() if f"__{c}__" in n]) for c in WORK_CONFIGS}
    rss = {c: np.mean([r["peak_rss_mb"] for n, r in resources.items() if f"__{c}__" in n]) for c in WORK_CONFIGS}

    def expect(config: str, auprc: np.ndarray, published: str, source: str, chmcnn_value: float | None) -> list[str]:
        diff = "n/a" if chmcnn_value is None else f"{auprc.mean() - chmcnn_value:+.4f}"
        within = "—" if config != "chmcnn" or chmcnn_value is None else (
            "yes" if abs(auprc.mean() - chmcnn_value) <= 0.01 else "**no**")
        return [config, "3", "1", f"{auprc.mean():.4f} ± {auprc.std(ddof=1):.4f}", published, source, diff, within,
                f"{wall[config]:.1f}", f"{rss[config]:.0f} |"]

    assert rows["gasch2_GO"][1:] == ["GO", *expect("chmcnn", chmcnn, "0.465",
                                                   "HMCN-F (Wehrmann et al. 2018); C-HMCNN 0.414", 0.414)]
    assert rows["cellcycle_FUN"][1:] == ["FUN", *expect("chmcnn", chmcnn, "0.255", "C-HMCNN README", 0.255)]
    assert rows["church_FUN"][1:] == ["FUN", *expect("chmcnn", chmcnn, "n/a", "not published", None)]
    assert rows["Diatoms"][1:] == ["others", *expect("plain", plain, "0.758", "C-HMCNN README", 0.758)]


def test_wall_time_per_family(work: Path) -> None:
    df = reproduce.collect(work / "paper-e1")
    mixed = pd.concat([df.assign(dataset="eisen_FUN"), df.assign(dataset="seq_GO"), df.assign(dataset="seq_FUN"),
                       df.assign(dataset="ImCLEF07A")], ignore_index=True)
    lines = [line for line in reproduce._family_section(mixed) if line.startswith("| ")][1:]  # no header
    walls = np.array([json.loads((p / "resources.json").read_text())["wall_seconds"]
                      for p in (work / "paper-e1").glob("synthetic__*__seed-*")])
    rss = np.array([json.loads((p / "resources.json").read_text())["peak_rss_mb"]
                    for p in (work / "paper-e1").glob("synthetic__*__seed-*")])
    assert [line.split(" | ")[:3] for line in lines] == [["| FUN", "2", "18"], ["| GO", "1", "9"],
                                                         ["| others", "1", "9"]]
    fun = lines[0].split(" | ")
    assert fun[3] == f"{2 * walls.sum() / 60:.1f}"
    assert fun[4] == f"{walls.mean():.1f} / {walls.max():.1f}" and fun[5] == f"{rss.mean():.0f} / {rss.max():.0f} |"
    assert "### Wall time per dataset family" in reproduce.render_report(work)


HELD_OUT_CONFIGS = ["plain", "weighting-focal", "asl"]


@pytest.fixture(scope="module")
def held_out_work(tmp_path_factory: pytest.TempPathFactory, client: Any) -> Path:
    """WORK/paper-e3-fit-train/synthetic__{plain,weighting-focal,asl}__seed-{0,1,2} (valid held out), and
    WORK/paper-e3/synthetic__plain__seed-{0,1} trained on train+valid: 3-epoch synthetic runs."""
    root = tmp_path_factory.mktemp("reproduce-held-out")
    held_out = reproduce.budget_cells(["synthetic"], HELD_OUT_CONFIGS, [0, 1, 2], "paper", 3, None, "train")
    both = reproduce.budget_cells(["synthetic"], ["plain"], [0, 1], "paper", 3, None, "train+valid")
    for cells, budget in ((held_out, "paper-e3-fit-train"), (both, "paper-e3")):
        report = reproduce.train_budget(cells, root / budget, client, "test", progress=False)
        assert len(report.trained) == len(cells) and not report.failed
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
    runs = list((held_out_work / "paper-e3-fit-train").glob("synthetic__*__seed-*"))
    assert len(runs) == 9 and all(load_run(run_dir).config.fit_on == "train" for run_dir in runs)
    assert load_run(held_out_work / "paper-e3" / "synthetic__plain__seed-0").config.fit_on == "train+valid"
    record = json.loads((held_out_work / "paper-e3" / "invocations.json").read_text())
    assert [(r["runs_trained"], r["jobs"], r["scheduler"]) for r in record] == [(2, 2, "LocalCluster")]
    # the second call finds every run finished, in its own budget only
    for fit_on, budget, todo in (("train", "paper-e3-fit-train", 0), ("train+valid", "paper-e3", 1)):
        cells = reproduce.budget_cells(["synthetic"], ["plain"], [0, 1, 2], "paper", 3, None, fit_on)
        assert len(plan(cells, held_out_work / budget).todo) == todo


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
    runs = sorted((held_out_work / "paper-e3-fit-train").glob(f"synthetic__{config}__seed-*"))
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


def test_best_configuration_table_on_every_dataset(held_out_work: Path) -> None:
    df = reproduce.collect(held_out_work / "paper-e3-fit-train")
    # a second dataset with plain runs only, as a budget that trains the best configuration on a larger dataset
    plain_only = df[df["config"] == "plain"].assign(dataset="cellcycle_GO")
    both = pd.concat([df, plain_only], ignore_index=True)
    assert set(reproduce.common_datasets(both)["dataset"]) == {"synthetic"}
    table = reproduce.best_rows(both)
    assert list(table["dataset"]) == ["cellcycle_GO", "synthetic"]  # by family: GO before "others"
    m5 = _by_seed(held_out_work, "plain", "per-node", DEFAULT_SHRINKAGE, "macro_f1")
    fixed = _by_seed(held_out_work, "plain", "fixed", None, "macro_f1")
    rare = _by_seed(held_out_work, "plain", "per-node", DEFAULT_SHRINKAGE, "rare_node_recall")
    row = table.iloc[1]
    assert row["seeds"] == 3 and row["coherence_violations"] == 0
    assert row["macro_f1@per-node"] == pytest.approx(m5.mean()) and row["macro_f1@fixed"] == pytest.approx(fixed.mean())
    assert row["rare_node_recall@per-node"] == pytest.approx(rare.mean())
    lines = reproduce._best_section(both)
    line = next(x for x in lines if x.startswith("| synthetic | others | 3 |"))
    assert f"| {fixed.mean():.4f} → {m5.mean():.4f} | {m5.mean() / fixed.mean():.2f}x |" in line
    assert reproduce.best_rows(reproduce.collect(held_out_work / "paper-e3")).empty  # no held-out predictions


def test_datasets_without_a_valid_split_hold_one_out_when_fit_on_train(tmp_path: Path) -> None:
    from test_dataset_layout import _hmc_data

    data = str(_hmc_data(tmp_path))
    names = ["cellcycle_FUN", "Diatoms", "ImCLEF07A", "synthetic"]
    cells = {c.dataset: c for c in reproduce.budget_cells(names, ["plain"], [0], "quick", 1, data, "train")}
    fractions = {name: cell.train_config().valid_fraction for name, cell in cells.items()}
    assert fractions == {"cellcycle_FUN": 0.0, "Diatoms": reproduce.HELD_OUT_VALID,
                         "ImCLEF07A": reproduce.HELD_OUT_VALID, "synthetic": 0.0}
    # C-HMCNN's protocol trains on every training row: nothing is held out, and the cell ids stay those of before
    plain = reproduce.budget_cells(names, ["plain"], [0], "quick", 1, data, "train+valid")
    assert all(c.train_config().valid_fraction == 0.0 and c.overrides == cells["synthetic"].overrides
               for c in plain)
