"""The per-node decision rule's shrinkage ``m`` and its two design choices, measured on trained runs.

Reads run folders trained with ``fit_on="train"`` (for example those of ``bench/reproduce.py``:
``runs/reproduce/quick-fit-train/DATASET/plain/seed-S``) and prints a markdown table, per dataset
and pooled over the (dataset, seed) pairs:

- the fixed 0.5 and global rules, and the per-node rule of :mod:`hmlc_core.decision` at each ``m``
  (:func:`hmlc_core.decision.shrinkage_tradeoff`): test micro F1 as a ratio to the global rule's,
  macro F1 as a ratio to the fixed 0.5 rule's, rare-node recall (bottom quartile of training
  frequency);
- an ablation at the default ``m``: the rule without its prevalence floor, and with
  hierarchy consistency obtained by lowering each node's threshold to its descendants' (thresholds
  monotone along the edges, the rule before the upward closure replaced it), with and without the floor.

The ablation's monotone thresholds are computed here, not in the library, which no longer has them.
Run by hand (not part of the test suite)::

    python bench/decision_tradeoff.py --work runs/reproduce/quick-fit-train \
        --datasets cellcycle_FUN derisi_FUN eisen_FUN gasch1_FUN
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from hmlc_core.decision import (DEFAULT_SHRINKAGE, DEFAULT_TRADEOFF_MS, global_threshold,  # noqa: E402
                                micro_f1, per_node_thresholds, shrinkage_tradeoff)
from hmlc_core.hierarchy import Hierarchy  # noqa: E402
from hmlc_core.metrics import precision_recall_f1, rare_node_recall  # noqa: E402
from hmlc_core.runs import load_run  # noqa: E402


def lowered_to_descendants(hierarchy: Hierarchy, thresholds: np.ndarray) -> np.ndarray:
    """Each node's threshold lowered to the smallest over its descendants (monotone along every edge)."""
    t = np.array(thresholds, dtype=np.float64)
    index = hierarchy.index
    for node in reversed(list(nx.topological_sort(hierarchy.graph))):
        children = [index[c] for c in hierarchy.graph.successors(node)]
        if children:
            t[index[node]] = min(t[index[node]], float(t[children].min()))
    return t


def _scores(y: np.ndarray, p: np.ndarray, pred: np.ndarray, freq: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    _, recall, f1 = precision_recall_f1(y, p, predictions=pred)
    return {"micro_f1": micro_f1(y, pred, mask), "macro_f1": float(f1[mask].mean()),
            "rare_node_recall": rare_node_recall(recall, freq, mask)}


def measure(run_dir: Path, ms: tuple[float, ...]) -> pd.DataFrame:
    """One row per rule variant of one run: ``variant``, ``micro_f1``, ``macro_f1``, ``rare_node_recall``."""
    run = load_run(run_dir)
    held = run.held_out()
    if held is None:
        raise SystemExit(f"{run_dir}: no held-out predictions (train with --fit-on train)")
    h, (y_held, p_held) = run.hierarchy, held
    preds = run.predictions()
    y, p = preds["y_true"], preds["mean_probs"]
    freq = run.node_metrics["train_frequency"].to_numpy(dtype=np.int64)
    n_train = int(run.summary["n_train"])
    table = shrinkage_tradeoff(h, y_held, p_held, y, p, ms, freq, n_train=n_train)
    rows = [{"variant": {"fixed": row.label, "global": "global (tuned)"}.get(row.rule, f"per-node m = {row.m:g}"),
             "micro_f1": row.micro_f1, "macro_f1": row.macro_f1, "rare_node_recall": row.rare_node_recall}
            for row in table.itertuples()]
    t_g = global_threshold(h, y_held, p_held)
    mask = h.eval_mask
    for floor in (False, True):
        t = per_node_thresholds(h, y_held, p_held, DEFAULT_SHRINKAGE, t_g, run.train_prevalence() if floor else None)
        with_floor = "with" if floor else "without"
        if not floor:
            rows.append({"variant": f"m = {DEFAULT_SHRINKAGE:g}, closure, without floor",
                         **_scores(y, p, h.propagate(p > t), freq, mask)})
        pred = (p > lowered_to_descendants(h, t)).astype(np.uint8)
        rows.append({"variant": f"m = {DEFAULT_SHRINKAGE:g}, lowered thresholds, {with_floor} floor",
                     **_scores(y, p, pred, freq, mask)})
    return pd.DataFrame(rows)


def render(frames: dict[str, list[pd.DataFrame]]) -> str:
    """Markdown: one column group per dataset and the pooled mean, ratios of per-run means."""
    def summarise(runs: list[pd.DataFrame]) -> pd.DataFrame:
        mean = pd.concat(runs).groupby("variant", sort=False).mean()
        glob = mean.loc[[v for v in mean.index if v.startswith("global")][0], "micro_f1"]
        fixed = mean.loc[[v for v in mean.index if v.startswith("fixed")][0], "macro_f1"]
        return mean.assign(micro_ratio=mean["micro_f1"] / glob, macro_ratio=mean["macro_f1"] / fixed)

    per = {name: summarise(runs) for name, runs in frames.items()}
    every = [df for runs in frames.values() for df in runs]
    pooled = summarise(every)
    names = list(per)
    head = "| rule | " + " | ".join(f"{n} micro F1 (x global) | macro F1 (x fixed) | rare R" for n in names)
    lines = [head + " | mean of the datasets' ratios: micro x global | macro x fixed | rare R |",
             "|---" * (1 + 3 * len(names) + 3) + "|"]
    for variant in pooled.index:
        cells = [f"{per[n].loc[variant, 'micro_f1']:.3f} ({per[n].loc[variant, 'micro_ratio']:.2f}x) | "
                 f"{per[n].loc[variant, 'macro_f1']:.4f} ({per[n].loc[variant, 'macro_ratio']:.2f}x) | "
                 f"{per[n].loc[variant, 'rare_node_recall']:.3f}" for n in names]
        ratios = [np.mean([per[n].loc[variant, k] for n in names]) for k in ("micro_ratio", "macro_ratio")]
        rare = np.mean([per[n].loc[variant, "rare_node_recall"] for n in names])
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {ratios[0]:.2f}x | {ratios[1]:.2f}x | {rare:.3f} |")
    lines.append("")
    lines.append(f"{len(every)} runs; rare R: rare-node recall; every ratio is of the per-dataset means over seeds.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/reproduce/quick-fit-train"))
    parser.add_argument("--datasets", nargs="+", default=["cellcycle_FUN", "derisi_FUN", "eisen_FUN", "gasch1_FUN"])
    parser.add_argument("--config", default="plain")
    parser.add_argument("--ms", type=float, nargs="+", default=list(DEFAULT_TRADEOFF_MS))
    args = parser.parse_args(argv)
    frames: dict[str, list[pd.DataFrame]] = {}
    for name in args.datasets:
        runs = sorted((args.work / name / args.config).glob("seed-*"))
        if not runs:
            raise SystemExit(f"no runs under {args.work / name / args.config}")
        frames[name] = [measure(r, tuple(args.ms)) for r in runs]
    sys.stdout.write(render(frames) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
