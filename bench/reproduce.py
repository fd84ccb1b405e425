"""Reproduction report: the paper's method family on the CLUS FunCat (and GO) benchmarks (issue 4, item 8).

Trains every configuration of :data:`CONFIGS` (the paper's method family and
the tail-aware baselines of issue 12) on each dataset for several seeds, then
writes ``docs/reproduction.md``: per dataset the mean +- std over seeds of test
micro AUPRC, macro precision / recall / F1, rare-node recall (evaluated nodes in
the bottom quartile of training frequency) and recall by depth, next to
C-HMCNN's published AUPRC (docs/method.md, *Metrics*), and paired Wilcoxon
signed-rank p-values over (dataset, seed) pairs against the plain ensemble.

With ``--fit-on train`` (the default) the runs keep the valid split aside, and
every configuration is also reported under the decision rules of
:data:`DECISIONS` (fixed 0.5, global, per-node at the default shrinkage and
unshrunk) fitted on that split, with the threshold-free macro AUPRC, Wilcoxon
tests against plain and the paper's method at 0.5, and the issue's targets
(:func:`done_when`). Runs trained on train+valid (``--fit-on train+valid``,
C-HMCNN's protocol) have no held-out predictions, are reported at 0.5 only, and
live in their own budget folder (:func:`budget_name`), so the two are never mixed.

Every trained run is an ordinary run directory (``WORK/BUDGET/DATASET/CONFIG/seed-S``),
so finished runs are reused when the command is repeated, the report can be
rebuilt from them alone (``--report-only``), and any of them opens in the
dashboard. Each run also records its wall time and the peak resident memory of
the process that trained it (``resources.json``), since every run trains in a
fresh worker process.

Run by hand (it is not part of the test suite)::

    HMLC_DATA_DIR=../shared/data/hmc python bench/reproduce.py --quick          # < 30 min on 2 cores
    HMLC_DATA_DIR=../shared/data/hmc python bench/reproduce.py --profile quick --seeds 3 \
        --datasets cellcycle_FUN derisi_FUN eisen_FUN gasch1_FUN \
        --configs plain weighting-focal class-balanced asl logit-adjust           # issue 12's targets, ~10 min
    HMLC_DATA_DIR=../shared/data/hmc python bench/reproduce.py --configs chmcnn --seeds 3 \
        --datasets cellcycle_FUN derisi_FUN eisen_FUN                            # paper budget, full epochs
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import logging
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from hmlc_core.catalog import open_dataset  # noqa: E402
from hmlc_core.data import list_datasets, resolve_data_dir  # noqa: E402
from hmlc_core.decision import DEFAULT_SHRINKAGE  # noqa: E402
from hmlc_core.experiments import SEED_METRICS, paired_wilcoxon, seed_table  # noqa: E402
from hmlc_core.runs import Run, evaluate_run, load_run, save_run  # noqa: E402
from hmlc_core.train import TrainConfig, train  # noqa: E402
from hmlc_core.sweeps.configs import CHMCNN, CONFIGS, PAPER, PLAIN  # noqa: E402

log = logging.getLogger("reproduce")

PUBLISHED_AUPRC = {
    "cellcycle_FUN": 0.255, "derisi_FUN": 0.195, "eisen_FUN": 0.306, "expr_FUN": 0.302, "gasch1_FUN": 0.286,
    "gasch2_FUN": 0.258, "seq_FUN": 0.292, "spo_FUN": 0.215,
    "cellcycle_GO": 0.413, "derisi_GO": 0.370, "eisen_GO": 0.455, "expr_GO": 0.447, "gasch1_GO": 0.436,
    "gasch2_GO": 0.414, "seq_GO": 0.446, "spo_GO": 0.382,
}
"""C-HMCNN's published micro AUPRC, mean of 10 seeds (from the C-HMCNN README; docs/method.md, *Metrics*)."""

FINDINGS = ROOT / "bench" / "reproduction_findings.md"
"""Hand-written reading of the figures, inserted into the report after its budgets (when the file exists)."""

QUICK_DATASETS = ("cellcycle_FUN", "derisi_FUN", "eisen_FUN")
INDEXING_STUDY = ("weighting-focal-intended", "weighting-focal-propagated")
"""The two variants behind the choice of default weight indexing and counting: left out of ``--quick``."""
COMPARABLE_F1 = 0.9
"""A configuration's macro-F1 counts as comparable to plain's when at least this fraction of it."""

DECISIONS: dict[str, tuple[str, str, float | None, float | None]] = {
    "fixed": ("fixed 0.5", "fixed", 0.5, None),
    "global": ("global", "global", None, None),
    "per-node": (f"per-node (m = {DEFAULT_SHRINKAGE:g}, default)", "per-node", None, DEFAULT_SHRINKAGE),
    "per-node-m0": ("per-node (m = 0, unshrunk)", "per-node", None, 0.0),
}
"""Key -> (label, rule, threshold, shrinkage) of the decision rules every run with held-out predictions is
evaluated under (:func:`hmlc_core.runs.evaluate_run`; docs/method.md, *Decision rules*)."""
DECISION_METRICS = ("macro_f1", "macro_recall", "rare_node_recall", "micro_f1", "coherence_violations")
"""Test metrics reported per decision rule, as columns ``METRIC@KEY`` of :func:`collect`."""
DEFAULT_RULE = "per-node"
"""The decision rule the issue's targets call "the default rule": per-node at the default shrinkage."""
TARGET_DATASETS = ("cellcycle_FUN", "derisi_FUN", "eisen_FUN", "gasch1_FUN")
"""The datasets of the decision layer's targets (issue 12, *Done when*); the other datasets are left out of them."""

METRIC_NAMES = {"auprc_micro": "AUPRC", "macro_precision": "macro P", "macro_recall": "macro R",
                "macro_f1": "macro F1", "rare_node_recall": "rare-node R"}


@dataclass(frozen=True)
class Task:
    """One training run: a configuration on a dataset with a seed, saved to ``out``."""

    config_name: str
    config: TrainConfig
    out: str


FIT_ON_SUFFIX = {"train+valid": "", "train": "-fit-train"}
"""Budget-folder suffix per ``fit_on``: runs trained on train+valid (no held-out predictions) and runs that kept
the valid split aside are never mixed in one table."""


def budget_name(profile: str, epochs: int | None, fit_on: str = "train+valid") -> str:
    """Folder name of a training budget: the profile, ``-eN`` when the epochs are fixed, ``-fit-train`` when the
    runs kept the valid split aside (``fit_on="train"``)."""
    return (profile if epochs is None else f"{profile}-e{epochs}") + FIT_ON_SUFFIX[fit_on]


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _train_one(task: Task) -> str:
    """Worker: train and save one run (in its own process, so its peak RSS is its own)."""
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    dataset = open_dataset(task.config.dataset, task.config.data_dir)
    result = train(task.config, dataset)
    path = save_run(task.out, result, dataset, overwrite=True)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _write_text_atomic(path / "resources.json", json.dumps({
        "wall_seconds": time.perf_counter() - start,
        "train_seconds": result.train_seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }))
    return str(path)


def plan(work: Path, datasets: list[str], configs: list[str], seeds: list[int], profile: str,
         epochs: int | None, data_dir: str | None, fit_on: str = "train+valid") -> list[Task]:
    """The runs still to train (those without a ``summary.json``), seed-major so early seeds finish first."""
    budget = work / budget_name(profile, epochs, fit_on)
    tasks = []
    for seed in seeds:
        for dataset in datasets:
            for name in configs:
                out = budget / dataset / name / f"seed-{seed}"
                if (out / "summary.json").exists():
                    continue
                config = TrainConfig(dataset=dataset, data_dir=data_dir, profile=profile, epochs=epochs, seed=seed,
                                     fit_on=fit_on, **CONFIGS[name][1])
                config.resolved().validate()
                tasks.append(Task(name, config, str(out)))
    return tasks


def run_tasks(tasks: list[Task], jobs: int) -> list[str]:
    """Train ``tasks`` in ``jobs`` worker processes (one task per fresh process); returns failures."""
    failures = []
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
        futures = {pool.submit(_train_one, t): t for t in tasks}
        for i, future in enumerate(cf.as_completed(futures), 1):
            task = futures[future]
            label = f"{task.config.dataset} {task.config_name} seed {task.config.seed}"
            try:
                future.result()
                log.info("[%d/%d] %s done", i, len(tasks), label)
            except Exception as exc:  # a failed run is reported and the others go on
                log.error("[%d/%d] %s failed: %s", i, len(tasks), label, exc)
                failures.append(f"{label}: {exc}")
    return failures


# ----------------------------------------------------------------------------- report


def collect(budget_dir: Path) -> pd.DataFrame:
    """One row per finished run below ``budget_dir``: dataset, config, seed, headline metrics, depths, resources."""
    frames = []
    for dataset_dir in sorted(p for p in budget_dir.iterdir() if p.is_dir()):
        for config_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
            if config_dir.name not in CONFIGS:
                continue
            table = seed_table(config_dir)
            if table.empty:
                continue
            table["config"] = config_dir.name
            extra = []
            for run_path in table["run"]:
                run = load_run(run_path)
                depths = run.summary["recall_by_depth"]  # macro recall per depth, computed when the run was saved
                res_path = Path(run_path) / "resources.json"
                res = json.loads(res_path.read_text()) if res_path.exists() else {}
                extra.append({**{f"depth_{d}": r for d, r in depths.items()},
                              "epochs": run.summary["epochs_completed"],
                              "train_seconds": res.get("train_seconds", run.summary.get("train_seconds")),
                              "peak_rss_mb": res.get("peak_rss_mb", np.nan),
                              **decision_metrics(run)})
            frames.append(pd.concat([table.reset_index(drop=True), pd.DataFrame(extra)], axis=1))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def decision_metrics(run: Run) -> dict[str, float]:
    """Test metrics of ``run`` under every rule of :data:`DECISIONS`, plus the threshold-free macro AUPRC.

    Parameters
    ----------
    run : hmlc_core.runs.Run

    Returns
    -------
    dict
        ``METRIC@KEY`` for every metric of :data:`DECISION_METRICS` and key of :data:`DECISIONS`, and
        ``macro_auprc`` (mean per-node average precision over the evaluated nodes, nodes without test
        positives counting 0; docs/method.md, *Metrics*). Empty for a run trained on train+valid: it has no
        held-out predictions to tune a rule on, and its fixed-0.5 figures are already in ``summary.json``.
    """
    if run.held_out() is None:
        return {}
    out: dict[str, float] = {}
    for key, (_, rule, threshold, shrinkage) in DECISIONS.items():
        result = evaluate_run(run, rule, threshold, shrinkage)
        out.update({f"{m}@{key}": float(result[m]) for m in DECISION_METRICS})
        out["macro_auprc"] = float(result["macro_auprc"])
    return out


@dataclass(frozen=True)
class Paired:
    """A two-sided Wilcoxon signed-rank test (scipy) of B against A over matching (dataset, seed) pairs."""

    n_pairs: int
    mean_a: float
    mean_b: float
    p_value: float


def paired_test(df: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> Paired:
    """Wilcoxon test of column ``b[1]`` of configuration ``b[0]`` against column ``a[1]`` of ``a[0]``.

    Pairs are the (dataset, seed) present in both; p is 1 when every difference is 0 (scipy refuses that
    case). Raises ValueError with fewer than 2 pairs.
    """
    left = df[df["config"] == a[0]][["dataset", "seed", a[1]]].rename(columns={a[1]: "x"})
    right = df[df["config"] == b[0]][["dataset", "seed", b[1]]].rename(columns={b[1]: "y"})
    pairs = left.merge(right, on=["dataset", "seed"]).dropna()
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 matching (dataset, seed) pairs, found {len(pairs)}")
    x, y = pairs["x"].to_numpy(float), pairs["y"].to_numpy(float)
    p = 1.0 if np.all(x == y) else float(wilcoxon(x, y).pvalue)
    return Paired(len(pairs), float(x.mean()), float(y.mean()), p)


def dataset_ratio(df: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> float:
    """Mean over datasets of (seed mean of ``b``) / (seed mean of ``a``), over datasets that have both;
    NaN when none has, or when a denominator is 0."""
    ratios = []
    for _, sub in df.groupby("dataset"):
        x = sub.loc[sub["config"] == a[0], a[1]].dropna()
        y = sub.loc[sub["config"] == b[0], b[1]].dropna()
        if x.empty or y.empty:
            continue
        ratios.append(y.mean() / x.mean() if x.mean() > 0 else np.nan)
    return float(np.mean(ratios)) if ratios else float("nan")


def _has_decisions(df: pd.DataFrame) -> bool:
    return f"macro_f1@{DEFAULT_RULE}" in df.columns and df[f"macro_f1@{DEFAULT_RULE}"].notna().any()


def _pm(values: pd.Series, digits: int = 4) -> str:
    values = values.dropna()
    if values.empty:
        return "n/a"
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}"


def _num(values: pd.Series, digits: int) -> str:
    """Mean of the known values, or n/a (runs trained outside this script have no resources.json)."""
    values = values.dropna()
    return "n/a" if values.empty else f"{values.mean():.{digits}f}"


def _config_order(names: list[str]) -> list[str]:
    return [c for c in CONFIGS if c in names]


def _dataset_section(df: pd.DataFrame, dataset: str) -> list[str]:
    sub = df[df["dataset"] == dataset]
    published = PUBLISHED_AUPRC.get(dataset)
    pub = f"{published:.3f}" if published is not None else "not published"
    lines = [f"#### {dataset} (C-HMCNN published AUPRC: {pub})", "",
             "| config | seeds | epochs | AUPRC | macro P | macro R | macro F1 | rare-node R | train s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in _config_order(list(sub["config"].unique())):
        rows = sub[sub["config"] == name]
        lines.append(
            f"| {name} | {len(rows)} | {int(rows['epochs'].median())} | "
            + " | ".join(_pm(rows[m]) for m in SEED_METRICS)
            + f" | {_num(rows['train_seconds'], 1)} | {_num(rows['peak_rss_mb'], 0)} |")
    depth_cols = sorted((c for c in sub.columns if c.startswith("depth_") and sub[c].notna().any()),
                        key=lambda c: int(c.split("_")[1]))
    lines += ["", "Recall by depth (macro recall of the evaluated nodes at each depth, mean ± std over seeds):", "",
              "| config | " + " | ".join(f"depth {c.split('_')[1]}" for c in depth_cols) + " |",
              "|---|" + "---|" * len(depth_cols)]
    for name in _config_order(list(sub["config"].unique())):
        rows = sub[sub["config"] == name]
        lines.append(f"| {name} | " + " | ".join(_pm(rows[c], 3) for c in depth_cols) + " |")
    return lines + _dataset_decision_lines(sub) + [""]


def _published_section(df: pd.DataFrame) -> list[str]:
    rows = df[df["config"] == CHMCNN]
    if rows.empty:
        return []
    lines = ["### C-HMCNN against its published AUPRC", "",
             "| dataset | seeds | epochs | AUPRC (ours) | published | difference | within 0.01 |",
             "|---|---|---|---|---|---|---|"]
    for dataset, sub in rows.groupby("dataset"):
        published = PUBLISHED_AUPRC.get(dataset)
        mean = sub["auprc_micro"].mean()
        diff = "n/a" if published is None else f"{mean - published:+.4f}"
        ok = "n/a" if published is None else ("yes" if abs(mean - published) <= 0.01 else "**no**")
        pub = "n/a" if published is None else f"{published:.3f}"
        lines.append(f"| {dataset} | {len(sub)} | {int(sub['epochs'].median())} | {_pm(sub['auprc_micro'])} | {pub} "
                     f"| {diff} | {ok} |")
    return lines + [""]


def _tests(df: pd.DataFrame, name: str) -> dict[str, Any]:
    a = df[df["config"] == PLAIN][["dataset", "seed", *SEED_METRICS]]
    b = df[df["config"] == name][["dataset", "seed", *SEED_METRICS]]
    return {m: paired_wilcoxon(a, b, m) for m in SEED_METRICS}


def best_config(df: pd.DataFrame) -> str | None:
    """The configuration (other than plain and chmcnn) with the highest mean macro recall among those whose
    mean macro-F1 is at least :data:`COMPARABLE_F1` times plain's; if none is comparable, the one with the
    highest macro-F1.
    Means are over every (dataset, seed) of the configuration. None without a plain baseline.

    Macro recall, not rare-node recall, ranks the candidates: on the FunCat benchmarks almost no run recalls
    any bottom-quartile node at threshold 0.5, so rare-node recall is 0 or a single lucky node and would
    pick by noise. Both are reported."""
    if PLAIN not in set(df["config"]):
        return None
    means = df.groupby("config")[["macro_f1", "macro_recall"]].mean()
    candidates = means.drop(index=[c for c in (PLAIN, CHMCNN) if c in means.index])
    if candidates.empty:
        return None
    comparable = candidates[candidates["macro_f1"] >= COMPARABLE_F1 * means.loc[PLAIN, "macro_f1"]]
    if comparable.empty:
        return str(candidates["macro_f1"].idxmax())
    return str(comparable["macro_recall"].idxmax())


def _comparison_section(df: pd.DataFrame) -> list[str]:
    if PLAIN not in set(df["config"]):
        return []
    lines = ["### Each configuration against plain at fixed 0.5 (paired over dataset x seed)", "",
             "Ratios are of means over all pairs; p: two-sided Wilcoxon signed-rank test (scipy) on the pairs.", "",
             "| config | pairs | AUPRC Δ (p) | macro R ratio (p) | rare-node R ratio (p) | macro F1 Δ (p) |",
             "|---|---|---|---|---|---|"]
    for name in _config_order(list(df["config"].unique())):
        if name in (PLAIN, CHMCNN):
            continue
        try:
            t = _tests(df, name)
        except ValueError as exc:  # fewer than two matching pairs
            lines.append(f"| {name} | n/a ({exc}) | | | | |")
            continue
        lines.append(
            f"| {name} | {t['auprc_micro'].n_pairs} "
            f"| {t['auprc_micro'].mean_b - t['auprc_micro'].mean_a:+.4f} ({t['auprc_micro'].p_value:.2g}) "
            f"| {_ratio(t['macro_recall'])} ({t['macro_recall'].p_value:.2g}) "
            f"| {_ratio(t['rare_node_recall'])} ({t['rare_node_recall'].p_value:.2g}) "
            f"| {t['macro_f1'].mean_b - t['macro_f1'].mean_a:+.4f} ({t['macro_f1'].p_value:.2g}) |")
    if df["rare_node_recall"].max() == 0:
        lines += ["", "No run of any configuration recalls a single rare node (bottom quartile of training "
                      "frequency) at threshold 0.5, so rare-node recall ratios are undefined; recall by depth (per "
                      "dataset, below) shows where the recall gained by a configuration lies."]
    best = best_config(df)
    if best is None:
        return lines + [""]
    lines += ["", f"### Best configuration at fixed 0.5: `{best}`", "",
              f"Chosen as the highest mean macro recall among the configurations whose mean macro-F1 is at least "
              f"{COMPARABLE_F1:.0%} of plain's (if none is, the highest macro-F1); rare-node recall is too close to 0 "
              "on these datasets to rank by.",
              "",
              "| dataset | seeds | macro R ratio | rare-node R ratio | macro F1 plain → best |",
              "|---|---|---|---|---|"]
    for dataset, sub in df.groupby("dataset"):
        a, b = sub[sub["config"] == PLAIN], sub[sub["config"] == best]
        if a.empty or b.empty:
            continue
        lines.append(
            f"| {dataset} | {min(len(a), len(b))} "
            f"| {_safe_ratio(b['macro_recall'].mean(), a['macro_recall'].mean())} "
            f"| {_safe_ratio(b['rare_node_recall'].mean(), a['rare_node_recall'].mean())} "
            f"| {a['macro_f1'].mean():.4f} → {b['macro_f1'].mean():.4f} |")
    try:
        f1 = _tests(df, best)["macro_f1"]
        verdict = "changed significantly" if f1.p_value < 0.05 else "did not change significantly"
        lines += ["", f"Macro-F1 {verdict} (Wilcoxon over {f1.n_pairs} dataset x seed pairs: mean "
                      f"{f1.mean_a:.4f} → {f1.mean_b:.4f}, p = {f1.p_value:.3g}, at the 0.05 level)."]
    except ValueError as exc:
        lines += ["", f"No significance test: {exc}."]
    return lines + [""]


def _ratio(result: Any) -> str:
    return _safe_ratio(result.mean_b, result.mean_a)


def _safe_ratio(b: float, a: float, what: str = "plain") -> str:
    return f"{b / a:.2f}x" if a > 0 else f"n/a ({what} is 0)"


def _test_cell(df: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> str:
    """``ratio of means (p)`` of a paired test, or n/a."""
    try:
        t = paired_test(df, a, b)
    except ValueError:
        return "n/a"
    return f"{_safe_ratio(t.mean_b, t.mean_a, 'reference')} ({t.p_value:.2g})"


def _decision_section(df: pd.DataFrame) -> list[str]:
    """Every configuration under every decision rule, against plain and the paper's method at fixed 0.5."""
    if not _has_decisions(df):
        return []
    names = _config_order(list(df["config"].unique()))
    lines = ["### Decision rules: every configuration under every rule", "",
             "Test metrics under four decision rules fitted on each run's own valid split (the runs were trained "
             "with `fit_on=\"train\"`, so the valid split is held out; tuning never sees test labels): `fixed 0.5`; "
             "`global`, one threshold maximising micro F1 on valid; `per-node`, one threshold per node maximising "
             f"its F1 on valid, shrunk towards the global one with m = {DEFAULT_SHRINKAGE:g} pseudo-positives (the "
             "default) or not at all (m = 0), and capped by the node's prevalence floor; every ancestor of a "
             "predicted node is predicted too, so predictions stay "
             "hierarchy-consistent (docs/method.md, *Decision rules*). Means over every (dataset, seed); ratios "
             "are of those means, p: two-sided Wilcoxon signed-rank test (scipy) over the (dataset, seed) pairs.",
             "",
             f"| config | rule | pairs | macro F1 | ×plain at 0.5 (p) | ×{PAPER} at 0.5 (p) | macro R | rare-node R "
             "| micro F1 | coherence violations |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        rows = df[df["config"] == name]
        for key, (label, *_rest) in DECISIONS.items():
            col = f"macro_f1@{key}"
            if rows[col].isna().all():
                continue
            vs_plain = _test_cell(df, (PLAIN, "macro_f1@fixed"), (name, col)) if (name, key) != (PLAIN, "fixed") \
                else "1"
            vs_paper = _test_cell(df, (PAPER, "macro_f1@fixed"), (name, col)) if (name, key) != (PAPER, "fixed") \
                else "1"
            lines.append(
                f"| {name} | {label} | {rows[col].notna().sum()} | {rows[col].mean():.4f} | {vs_plain} | {vs_paper} "
                f"| {rows[f'macro_recall@{key}'].mean():.4f} | {rows[f'rare_node_recall@{key}'].mean():.4f} "
                f"| {rows[f'micro_f1@{key}'].mean():.4f} | {int(rows[f'coherence_violations@{key}'].sum())} |")
    lines += ["", "Threshold-free ranking quality: macro AUPRC (mean per-node average precision over the evaluated "
                  "nodes, nodes without test positives counting 0; docs/method.md, *Metrics*).", "",
              f"| config | pairs | macro AUPRC | Δ plain (p) | Δ {PAPER} (p) |", "|---|---|---|---|---|"]
    for name in names:
        rows = df[df["config"] == name]["macro_auprc"].dropna()
        if rows.empty:
            continue
        cells = []
        for ref in (PLAIN, PAPER):
            try:
                t = paired_test(df, (ref, "macro_auprc"), (name, "macro_auprc"))
                cells.append("—" if name == ref else f"{t.mean_b - t.mean_a:+.4f} ({t.p_value:.2g})")
            except ValueError:
                cells.append("n/a")
        lines.append(f"| {name} | {len(rows)} | {rows.mean():.4f} | {cells[0]} | {cells[1]} |")
    return lines + [""]


def done_when(df: pd.DataFrame, datasets: tuple[str, ...] | None = TARGET_DATASETS
              ) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets for the decision layer (issue 12, *Done when*), measured on ``df``.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`collect`.
    datasets : tuple of str or None
        The datasets to measure on (default: the issue's four, :data:`TARGET_DATASETS`); None: all of ``df``.

    Returns
    -------
    list of (figure, target, value, met)
        ``met`` is None when the figure cannot be computed (a configuration missing). Ratios are the mean over
        datasets of the per-dataset ratio of seed means; p is the paired Wilcoxon test over (dataset, seed).
    """
    if datasets is not None:
        df = df[df["dataset"].isin(datasets)]
    if not _has_decisions(df) or not {PLAIN, PAPER} <= set(df["config"]):
        return []
    out: list[tuple[str, str, str, bool | None]] = []
    for key in (DEFAULT_RULE, "per-node-m0"):
        label = DECISIONS[key][0]
        for ref, target in ((PLAIN, 2.5), (PAPER, 1.5)):
            ratio = dataset_ratio(df, (ref, "macro_f1@fixed"), (PLAIN, f"macro_f1@{key}"))
            try:
                p = paired_test(df, (ref, "macro_f1@fixed"), (PLAIN, f"macro_f1@{key}")).p_value
            except ValueError:
                p = float("nan")
            out.append((f"macro F1, plain under {label} / {ref} at fixed 0.5", f">= {target}x, p < 0.05",
                        f"{ratio:.2f}x (p = {p:.2g})", bool(ratio >= target and p < 0.05)))
        per_dataset = df[df["config"] == PLAIN].groupby("dataset")[f"rare_node_recall@{key}"].mean()
        out.append((f"rare-node recall, plain under {label}, per dataset", "> 0 on every dataset",
                    ", ".join(f"{d.removesuffix('_FUN')} {v:.3f}" for d, v in per_dataset.items()),
                    bool((per_dataset > 0).all())))
    violations = int(sum(df[f"coherence_violations@{k}"].sum() for k in DECISIONS))
    out.append(("coherence violations, every run under every rule", "0", str(violations), violations == 0))
    micro = dataset_ratio(df, (PLAIN, "micro_f1@global"), (PLAIN, f"micro_f1@{DEFAULT_RULE}"))
    macro = dataset_ratio(df, (PLAIN, "macro_f1@fixed"), (PLAIN, f"macro_f1@{DEFAULT_RULE}"))
    label = DECISIONS[DEFAULT_RULE][0]
    out.append((f"micro F1, plain under {label} / under global", ">= 0.8x", f"{micro:.2f}x", bool(micro >= 0.8)))
    out.append((f"macro F1, plain under {label} / at fixed 0.5", ">= 2x", f"{macro:.2f}x", bool(macro >= 2)))
    return out


def _done_when_section(df: pd.DataFrame) -> list[str]:
    lines: list[str] = []
    scopes = [TARGET_DATASETS]
    if not set(df["dataset"]) <= set(TARGET_DATASETS):
        scopes.append(None)
    for datasets in scopes:
        rows = done_when(df, datasets)
        if not rows:
            continue
        used_rows = df if datasets is None else df[df["dataset"].isin(datasets)]
        used_rows = used_rows[used_rows["config"].isin([PLAIN, PAPER])]
        used = ", ".join(sorted(used_rows["dataset"].unique()))
        title = "issue 12, *Done when*" if datasets is not None else "the same figures on every dataset of the budget"
        lines += [f"### The decision layer's targets ({title})", "",
                  f"On the plain 2-member ensemble; `{PAPER}` is the paper's method (class-wise weights + bBMA "
                  f"focal). Datasets: {used}; seeds {', '.join(str(s) for s in sorted(used_rows['seed'].unique()))}. "
                  "Ratios: mean over the datasets of the per-dataset ratio of seed means; p: two-sided Wilcoxon "
                  "signed-rank test (scipy) over the (dataset, seed) pairs.", "",
                  "| figure | target | measured | met |", "|---|---|---|---|"]
        for figure, target, value, met in rows:
            lines.append(f"| {figure} | {target} | {value} | "
                         f"{'n/a' if met is None else ('yes' if met else '**no**')} |")
        lines.append("")
    return lines


def _dataset_decision_lines(sub: pd.DataFrame) -> list[str]:
    if not _has_decisions(sub):
        return []
    keys = list(DECISIONS)
    head = f"fixed 0.5 / global / per-node m = {DEFAULT_SHRINKAGE:g} / per-node m = 0"
    lines = ["", f"Under each decision rule (mean over seeds; each cell: {head}):", "",
             "| config | macro AUPRC | macro F1 | macro R | rare-node R | micro F1 |", "|---|---|---|---|---|---|"]
    for name in _config_order(list(sub["config"].unique())):
        rows = sub[sub["config"] == name]
        cells = [" / ".join(f"{rows[f'{m}@{k}'].mean():.3f}" for k in keys)
                 for m in ("macro_f1", "macro_recall", "rare_node_recall", "micro_f1")]
        lines.append(f"| {name} | {rows['macro_auprc'].mean():.4f} | " + " | ".join(cells) + " |")
    return lines


def _ensemble_cost_section(df: pd.DataFrame) -> list[str]:
    heads, mc = "weighting-focal", "weighting-focal-mcdropout"
    if not {heads, mc} <= set(df["config"]):
        return []
    lines = ["### MC-dropout against the heads ensemble (same loss, 2 members)", "",
             "| dataset | train s heads | train s MC-dropout | time ratio | peak RSS MB heads | peak RSS MB MC-dropout "
             "| macro F1 heads → MC-dropout |", "|---|---|---|---|---|---|---|"]
    for dataset, sub in df.groupby("dataset"):
        a, b = sub[sub["config"] == heads], sub[sub["config"] == mc]
        if a.empty or b.empty:
            continue
        lines.append(f"| {dataset} | {a['train_seconds'].mean():.1f} | {b['train_seconds'].mean():.1f} "
                     f"| {b['train_seconds'].mean() / a['train_seconds'].mean():.2f} | {a['peak_rss_mb'].mean():.0f} "
                     f"| {b['peak_rss_mb'].mean():.0f} | {a['macro_f1'].mean():.4f} → {b['macro_f1'].mean():.4f} |")
    lines += ["", "Peak RSS is the whole training process (Python, torch, data), not the model alone."]
    return lines + [""]


def _invocations(budget_dir: Path) -> list[dict[str, Any]]:
    path = budget_dir / "invocations.json"
    return json.loads(path.read_text()) if path.exists() else []


PROFILE_TEXT = {"paper": ("C-HMCNN's recipe: batch 4, the dataset's learning rate", "the dataset's epochs"),
                "quick": ("the quick profile: batch 64, 20x the learning rate", "40% of the dataset's epochs (>= 10)")}


def _budget_lines(name: str, df: pd.DataFrame, budget_dir: Path) -> list[str]:
    held_out = name.endswith(FIT_ON_SUFFIX["train"])
    profile, _, epochs = name.removesuffix(FIT_ON_SUFFIX["train"]).partition("-e")
    recipe, default_epochs = PROFILE_TEXT.get(profile, (profile, "default epochs"))
    what = f"{recipe}, {epochs + ' epochs' if epochs else default_epochs}, " + (
        "trained on train with valid held out for the decision rules" if held_out
        else "trained on train+valid, fixed 0.5 only")
    lines = [f"- `{name}` ({what}): {len(df)} runs, {df['dataset'].nunique()} datasets, seeds "
             f"{', '.join(str(s) for s in sorted(df['seed'].unique()))}; "
             f"{df['train_seconds'].sum() / 60:.1f} CPU-minutes of training (sum over runs, one thread each)."]
    for inv in _invocations(budget_dir):
        lines.append(f"  - {inv['date']}: {inv['runs_trained']} runs in {inv['wall_minutes']:.1f} min wall with "
                     f"{inv['jobs']} worker process(es) on {inv['machine']}: `{inv['command']}`")
    return lines


def render_report(work: Path, findings: str | None = None) -> str:
    """Markdown report of every budget folder below ``work``, with ``findings`` (markdown) after the budgets."""
    budgets = sorted(p for p in work.iterdir() if p.is_dir()) if work.exists() else []
    frames = {b: collect(b) for b in budgets}
    frames = {b: df for b, df in frames.items() if not df.empty}
    lines = ["# Reproduction report", "",
             "Generated by `bench/reproduce.py` from the run folders it trained (rebuild with `--report-only`). "
             "Datasets: the CLUS HMC benchmarks in `HMLC_DATA_DIR`; test-set metrics on the ensemble-mean "
             "constrained probabilities (docs/method.md, *Metrics*), at threshold 0.5 unless a decision rule is "
             "named (budgets trained with `--fit-on train` are also reported under the tuned rules, fitted on "
             "the valid split that those runs held out); rare nodes are the evaluated "
             "nodes in the bottom quartile of training frequency (docs/method.md, *Rare nodes*). Published AUPRC: "
             "C-HMCNN's README (docs/method.md, *Metrics*).", "",
             "## Budgets", ""]
    for budget, df in frames.items():
        lines += _budget_lines(budget.name, df, budget)
    if findings:
        lines += ["", findings.strip()]
    lines += ["", "## Configurations", "", "| name | what |", "|---|---|"]
    lines += [f"| `{name}` | {desc} |" for name, (desc, _) in CONFIGS.items()]
    lines += ["", "All but `chmcnn` are 2-member ensembles (the paper's tabular default); everything not named "
              "is the TrainConfig default (released weight indexing, descendant-sum counting, omega 0.25, "
              "focal_min 0.25, k = 2).", ""]
    for budget, df in frames.items():
        lines += [f"## Budget `{budget.name}`", ""]
        lines += _published_section(df)
        lines += _done_when_section(df)
        lines += _decision_section(df)
        lines += _comparison_section(df)
        lines += _ensemble_cost_section(df)
        lines += ["### Per dataset", ""]
        for dataset in sorted(df["dataset"].unique()):
            lines += _dataset_section(df, dataset)
    return "\n".join(lines).rstrip() + "\n"


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", help="default: every *_FUN dataset in the data dir (and *_GO with --go)")
    p.add_argument("--go", action="store_true", help="also the GO datasets")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS),
                   help="default: all but chmcnn (with --quick also without " + " and ".join(INDEXING_STUDY) + ")")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="default: the dataset's C-HMCNN epochs under --profile")
    p.add_argument("--profile", choices=["paper", "quick"], default="paper")
    p.add_argument("--quick", action="store_true",
                   help=f"the 30-minute budget: --profile quick on {', '.join(QUICK_DATASETS)}")
    p.add_argument("--jobs", type=int, default=2, help="worker processes, one torch thread each (default 2)")
    p.add_argument("--work", default=str(ROOT / "runs" / "reproduce"), help="run folders (default runs/reproduce)")
    p.add_argument("--report", default=str(ROOT / "docs" / "reproduction.md"))
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the run folders")
    p.add_argument("--fit-on", choices=list(FIT_ON_SUFFIX), default="train",
                   help="train: keep the valid split aside to tune the global and per-node decision rules (default); "
                        "train+valid: C-HMCNN's protocol, reported at fixed 0.5 only (separate budget folders)")
    p.add_argument("--data-dir", default=None, help="default: $HMLC_DATA_DIR")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    work = Path(args.work)
    if not args.report_only:
        profile = "quick" if args.quick else args.profile
        if args.datasets:
            datasets = args.datasets
        elif args.quick:
            datasets = list(QUICK_DATASETS)
        else:
            found = list_datasets(resolve_data_dir(args.data_dir))
            datasets = [d for d in found if d.endswith("_FUN") or (args.go and d.endswith("_GO"))]
        left_out = (CHMCNN, *INDEXING_STUDY) if args.quick else (CHMCNN,)
        configs = args.configs or [c for c in CONFIGS if c not in left_out]
        tasks = plan(work, datasets, configs, list(range(args.seeds)), profile, args.epochs, args.data_dir,
                     args.fit_on)
        budget_dir = work / budget_name(profile, args.epochs, args.fit_on)
        log.info("%d runs to train (%s) with %d workers", len(tasks), budget_dir.name, args.jobs)
        start = time.perf_counter()
        failures = run_tasks(tasks, args.jobs) if tasks else []
        if tasks:
            record = _invocations(budget_dir) + [{
                "date": time.strftime("%Y-%m-%d"), "machine": _machine(), "jobs": args.jobs,
                "runs_trained": len(tasks) - len(failures), "wall_minutes": (time.perf_counter() - start) / 60,
                "command": "python bench/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            }]
            _write_text_atomic(budget_dir / "invocations.json", json.dumps(record, indent=1))
        for failure in failures:
            log.error("failed: %s", failure)
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    findings = FINDINGS.read_text() if FINDINGS.exists() else None
    _write_text_atomic(report, render_report(work, findings))
    log.info("wrote %s", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
