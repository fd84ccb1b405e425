"""Multi-seed runs and paired significance tests between two configurations.

A configuration is trained once per seed into ``OUT/seed-S`` (a normal run
directory each); :func:`seed_table` collects their headline metrics, and
:func:`paired_wilcoxon` compares two such folders pair by pair, as the
paper's significance claims do (Wilcoxon signed-rank over seeds x datasets,
``scipy.stats.wilcoxon``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from hmlc_core.data import HMCDataset
from hmlc_core.runs import find_runs, load_run, save_run
from hmlc_core.train import Progress, TrainConfig, train

__all__ = ["SEED_METRICS", "train_seeds", "seed_table", "WilcoxonResult", "paired_wilcoxon", "describe"]

log = logging.getLogger(__name__)

SEED_METRICS = ("auprc_micro", "macro_precision", "macro_recall", "macro_f1", "rare_node_recall")
"""Columns of :func:`seed_table` besides ``dataset`` and ``seed``."""


def train_seeds(
    config: TrainConfig,
    dataset: HMCDataset,
    seeds: Iterable[int],
    out: str | Path,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Path]:
    """Train ``config`` once per seed and save each run as ``out/seed-S``.

    Existing run directories are replaced. Returns the run directories in
    seed order; stops early (without saving the unfinished seed) when
    ``should_stop`` returns True.
    """
    out = Path(out)
    paths = []
    for seed in seeds:
        result = train(replace(config, seed=int(seed)), dataset, progress=progress, should_stop=should_stop)
        if result.interrupted:
            log.info("stopped during seed %d; %d seeds saved", seed, len(paths))
            break
        paths.append(save_run(out / f"seed-{seed}", result, dataset, overwrite=True))
    return paths


def seed_table(root: str | Path) -> pd.DataFrame:
    """Headline metrics of every run below ``root`` (one row per run).

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``seed``, ``run`` and :data:`SEED_METRICS`,
        sorted by dataset and seed. ``rare_node_recall`` is the macro recall
        of the evaluated nodes in the bottom quartile of training frequency.

    Raises
    ------
    hmlc_core.runs.RunError
        If a run directory is unreadable.
    """
    rows = []
    for path in find_runs([root, *[p for p in Path(root).glob("*") if p.is_dir()]]):
        run = load_run(path)
        row = {"dataset": run.summary["dataset"], "seed": run.config.seed, "run": str(path)}
        row.update({k: run.summary[k] for k in SEED_METRICS if k in run.summary})
        row["rare_node_recall"] = run.rare_node_recall()
        rows.append(row)
    table = pd.DataFrame(rows, columns=["dataset", "seed", "run", *SEED_METRICS])
    return table.sort_values(["dataset", "seed"]).reset_index(drop=True)


@dataclass(frozen=True)
class WilcoxonResult:
    """Outcome of :func:`paired_wilcoxon`.

    Attributes
    ----------
    metric : str
    n_pairs : int
    mean_a, mean_b : float
        Means of the metric over the pairs.
    median_difference : float
        Median of ``b - a``.
    statistic : float
        Wilcoxon's W (NaN when every difference is 0).
    p_value : float
        Two-sided p-value in [0, 1]; 1.0 when every difference is 0.
    """

    metric: str
    n_pairs: int
    mean_a: float
    mean_b: float
    median_difference: float
    statistic: float
    p_value: float


def paired_wilcoxon(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> WilcoxonResult:
    """Wilcoxon signed-rank test of ``metric`` between two seed tables, paired on (dataset, seed).

    Parameters
    ----------
    a, b : pandas.DataFrame
        From :func:`seed_table`.
    metric : str
        One of :data:`SEED_METRICS`.

    Returns
    -------
    WilcoxonResult

    Raises
    ------
    ValueError
        If the metric is unknown or fewer than 2 (dataset, seed) pairs match.
    """
    if metric not in SEED_METRICS:
        raise ValueError(f"metric must be one of {SEED_METRICS}, got {metric!r}")
    pairs = a.merge(b, on=["dataset", "seed"], suffixes=("_a", "_b"))
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 runs with the same (dataset, seed) in both folders, found {len(pairs)}")
    x, y = pairs[f"{metric}_a"].to_numpy(float), pairs[f"{metric}_b"].to_numpy(float)
    diff = y - x
    if np.all(diff == 0):
        statistic, p_value = float("nan"), 1.0
    else:
        test = wilcoxon(x, y)
        statistic, p_value = float(test.statistic), float(test.pvalue)
    return WilcoxonResult(metric, len(pairs), float(x.mean()), float(y.mean()), float(np.median(diff)),
                          statistic, p_value)


def describe(results: Sequence[WilcoxonResult]) -> str:
    """A small markdown table of several test results."""
    lines = ["| metric | pairs | mean A | mean B | median B-A | W | p |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.metric} | {r.n_pairs} | {r.mean_a:.4f} | {r.mean_b:.4f} | {r.median_difference:+.4f} "
                     f"| {r.statistic:.1f} | {r.p_value:.3g} |")
    return "\n".join(lines)
