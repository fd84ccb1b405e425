#!/usr/bin/env python
"""Full training against shortlist training on the 100k-node synthetic hierarchy and cellcycle_GO (issue 17).

Usage (from the repository root; see bench/README.md, *Full against shortlist training*)::

    python bench/shortlist_bench.py --json                              # synthetic100k, and cellcycle_GO if present
    python bench/shortlist_bench.py --datasets synthetic100k --batch 64 --train-steps 100 --json --out sl.json
    python bench/shortlist_bench.py --datasets cellcycle_GO --batch 64 --json

Every side runs in its own spawned child that builds (or loads) the dataset itself, so each peak memory
belongs to one side, and no multi-GB label matrix travels through a pipe.

How a side is measured (the same for both, the same batch size, the same training rows):

- **Training rows.** Training runs one pass over the first ``train_steps x batch`` training rows (or all of
  them when fewer), a random sample since the rows are i.i.d. (synthetic) or shuffled by ``train``. A
  budget shorter than an epoch is then the same as ``train_steps`` steps of an epoch over the whole set,
  and ``hmlc_core.train.train`` reads only those rows' labels, one batch at a time (see *Memory*).
- **Epoch time.** Seconds per step, the mean over the steps after ``--warmup``, times the steps of a full
  epoch ``ceil(N_fit / batch)`` (``N_fit`` = train + valid rows, ``fit_on="train+valid"``): an
  extrapolation, reported as ``epoch_s_extrapolated`` next to the measured ``timed_steps``.
- **Peak memory.** The child's ``VmHWM`` (peak RSS) is reset (``/proc/self/clear_refs``) after the dataset
  is built, so ``training_peak_rss_mb`` covers training and evaluation only; ``dataset_peak_rss_mb`` is the
  peak while building the data. Where the reset is not allowed, ``ru_maxrss`` (the whole child) is given.
- **Quality.** On the first ``--eval-rows`` test rows: P@1, P@5, PSP@5 (propensities from the full train
  split's frequencies, Jain et al. 2016), nDCG@5 and micro AUPRC over the evaluated nodes
  (:mod:`hmlc_core.tail_metrics`, :func:`hmlc_core.metrics.auprc_micro`).
- **Memory of full training at full size.** ``train`` keeps the labels in the dataset's uint8 arrays and
  converts one (batch, C) block at a time (no train+valid copy), so its need is estimated as the measured
  training peak plus the dataset labels of the rows left out (``full_train_estimated_gib``, with its parts);
  ``fits_24gb`` compares it with 24 GiB.

The ratio the issue asks for is ``ratio_epoch_s = shortlist epoch seconds / full epoch seconds`` (< 0.2 is
the ">= 5x faster" target), measured in the same run against the same baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_train import DEFAULT_DATA_DIR, log, machine_info, mem_available_bytes, run_in_child  # noqa: E402

SYNTHETIC_100K = "synthetic100k"
GIB = 2**30


# ============================================================================ helpers
def _status_kb(key: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(reset_worked: bool) -> float:
    """Peak RSS in MiB since the last reset (``VmHWM``), or of the whole process (``ru_maxrss``)."""
    hwm = _status_kb("VmHWM") if reset_worked else None
    return (hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024.0


def build_dataset(name: str, data_dir: str | None, seed: int) -> tuple[Any, dict[str, Any]]:
    """The dataset and how long (s) and how much memory (peak RSS, MiB) building it took."""
    t = time.perf_counter()
    cpu = time.process_time()
    if name == SYNTHETIC_100K:
        from hmlc_core.synthetic import LARGE_SYNTHETIC, make_synthetic

        ds = make_synthetic(**LARGE_SYNTHETIC, seed=seed)
    elif name == "synthetic":  # the small default, for a quick check of this script
        from hmlc_core.synthetic import make_synthetic

        ds = make_synthetic(seed=seed)
    else:
        from hmlc_core.data import load_dataset

        ds = load_dataset(name, data_dir)
    info = {"build_s": time.perf_counter() - t, "build_cpu_s": time.process_time() - cpu,
            "dataset_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "n_nodes": ds.hierarchy.n_nodes, "n_features": ds.n_features,
            "samples": {k: s.n_samples for k, s in ds.splits.items()},
            "label_bytes_gib": sum(s.Y.nbytes for s in ds.splits.values()) / GIB}
    return ds, info


def budget_dataset(ds: Any, n_rows: int, eval_rows: int) -> tuple[Any, dict[str, Any]]:
    """The first ``n_rows`` train(+valid) rows as the train split (no valid) and the first ``eval_rows`` test rows.

    Also returns what the metrics need from the full data (train frequencies, ``N_fit``), so the caller can
    drop the full dataset.
    """
    import numpy as np

    from hmlc_core.data import HMCDataset, Split

    parts = [ds.train] + ([ds.valid] if ds.valid is not None else [])
    n_fit = sum(p.n_samples for p in parts)
    x = np.concatenate([p.X[:n_rows] for p in parts])[:n_rows]
    y = np.concatenate([p.Y[:n_rows] for p in parts])[:n_rows]
    test = Split(np.ascontiguousarray(ds.test.X[:eval_rows]), np.ascontiguousarray(ds.test.Y[:eval_rows]))
    small = HMCDataset(name=ds.name, hierarchy=ds.hierarchy, feature_names=ds.feature_names, train=Split(x, y),
                       valid=None, test=test, source=ds.source)
    full = {"n_fit": n_fit, "n_train": ds.train.n_samples, "train_frequency": ds.train.Y.sum(axis=0),
            "label_bytes": sum(s.Y.nbytes for s in ds.splits.values())}
    return small, full


def quality(y_true: Any, scores: Any, hierarchy: Any, train_frequency: Any, n_train: int) -> dict[str, float]:
    """P@1, P@5, PSP@5, nDCG@5 and micro AUPRC over the evaluated nodes."""
    from hmlc_core.metrics import auprc_micro
    from hmlc_core.tail_metrics import ndcg_at_k, precision_at_k, propensities, psp_at_k

    mask = hierarchy.eval_mask
    prop = propensities(train_frequency, n_train)
    return {"p@1": precision_at_k(y_true, scores, 1, mask), "p@5": precision_at_k(y_true, scores, 5, mask),
            "psp@5": psp_at_k(y_true, scores, prop, 5, mask), "ndcg@5": ndcg_at_k(y_true, scores, 5, mask),
            "auprc_micro": auprc_micro(y_true, scores, mask)}


def _steps_summary(stamps: list[float], warmup: int, n_fit: int, batch: int) -> dict[str, Any]:
    timed = [b - a for a, b in zip(stamps[warmup:-1], stamps[warmup + 1:])] if len(stamps) > warmup + 1 else []
    if not timed:
        raise RuntimeError(f"only {len(stamps)} steps ran: nothing left after {warmup} warm-up steps")
    per_step = sum(timed) / len(timed)
    steps_per_epoch = math.ceil(n_fit / batch)
    return {"timed_steps": len(timed), "seconds_per_step": per_step, "steps_per_epoch": steps_per_epoch,
            "epoch_s_extrapolated": per_step * steps_per_epoch}


# ============================================================================ the two sides (child processes)
def full_side(name: str, data_dir: str | None, seed: int, heads: int, hidden: int | None, lr: float | None,
              batch: int, train_steps: int, warmup: int, eval_rows: int, threads: int) -> dict[str, Any]:
    """Full training: ``hmlc_core.train.train`` (MCLoss over every node) on the budget rows, one epoch."""
    import gc

    import torch

    from hmlc_core.model import MCM
    from hmlc_core.train import TrainConfig, predict_members, train

    ds, info = build_dataset(name, data_dir, seed)
    small, full = budget_dataset(ds, train_steps * batch, eval_rows)
    del ds
    gc.collect()
    reset = reset_peak_rss()
    stamps: list[float] = []

    def clock() -> bool:  # polled by train after every optimizer step
        stamps.append(time.perf_counter())
        return False

    config = TrainConfig(dataset=name, heads=heads, hidden=hidden, lr=lr, batch_size=batch, epochs=1,
                         threads=threads, seed=seed, fit_on="train+valid")
    t = time.perf_counter()
    result = train(config, small, should_stop=clock)
    info["train_s"] = time.perf_counter() - t
    info.update(_steps_summary([t] + stamps, warmup, full["n_fit"], batch))
    t = time.perf_counter()
    probs = predict_members(result.model, MCM(small.hierarchy), small.test.X, 256).mean(0).numpy()
    info["predict_s"] = time.perf_counter() - t
    info["quality"] = quality(small.test.Y, probs, small.hierarchy, full["train_frequency"], full["n_train"])
    n_rows = small.train.n_samples
    peak = peak_rss_mb(reset)
    # train at full size adds the dataset's uint8 labels of the rows this budget dataset does not hold; it
    # reads labels one batch at a time, without a train+valid or float32 copy
    extra = {"dataset_labels_gib": (full["label_bytes"] - small.train.Y.nbytes - small.test.Y.nbytes) / GIB}
    info.update({"kernel": result.config.kernel, "hidden": result.config.hidden, "lr": result.config.lr,
                 "heads": heads, "batch": batch,
                 "train_rows": n_rows, "eval_rows": small.test.n_samples, "peak_reset": reset,
                 "training_peak_rss_mb": peak, "full_train_parts_gib": extra,
                 "full_train_estimated_gib": peak / 1024 + sum(extra.values()),
                 "threads": torch.get_num_threads()})
    info["fits_24gb"] = info["full_train_estimated_gib"] <= 24
    return info


def shortlist_side(name: str, data_dir: str | None, seed: int, heads: int, hidden: int | None, lr: float | None,
                   batch: int, train_steps: int, warmup: int, eval_rows: int, threads: int, k: int, epochs: int,
                   proxy_epochs: int, cycle: int, uniform: int = 0) -> dict[str, Any]:
    """Shortlist training (``hmlc_core.shortlists.train_shortlist``) on the same rows at the same batch size.

    Skipped, with the reason, when :mod:`hmlc_core.shortlists` cannot be imported. Its epoch time is the
    mean seconds per step of the shortlist-phase epochs (steps only) times the steps of a full epoch, plus
    the rebuild of embeddings, index and shortlists (``shortlist_seconds``) scaled to ``N_fit`` rows and
    amortised over ``cycle`` epochs. Hidden width and learning rate default to the dataset's preset, as
    ``train``'s do (``warmup`` is unused: ``train_shortlist`` reports whole epochs).
    """
    try:
        from hmlc_core.shortlists import predict_shortlist, train_shortlist
    except ImportError as exc:
        return {"skipped": f"hmlc_core.shortlists is not importable: {exc}"}
    import gc

    import torch

    from hmlc_core.presets import preset_for

    ds, info = build_dataset(name, data_dir, seed)
    small, full = budget_dataset(ds, train_steps * batch, eval_rows)
    del ds
    gc.collect()
    reset = reset_peak_rss()
    torch.set_num_threads(threads)
    width = hidden if hidden is not None else int(preset_for(name).hidden)
    rate = lr if lr is not None else float(preset_for(name).lr)
    t = time.perf_counter()
    result = train_shortlist(small, k=k, hidden=width, lr=rate, epochs=epochs, batch_size=batch, cycle=cycle, seed=seed,
                             heads=heads, proxy_epochs=proxy_epochs, uniform=uniform)
    info["train_s"] = time.perf_counter() - t
    n_rows = small.train.n_samples
    steps = math.ceil(n_rows / batch)
    phase = [h for h in result.history if h["phase"] == "shortlist"]
    if not phase:
        raise RuntimeError("no shortlist-phase epoch ran (epochs must be >= 1)")
    per_step = sum(h["seconds"] for h in phase) / (steps * len(phase))
    rebuild = sum(h["shortlist_seconds"] for h in phase) / max(1, math.ceil(len(phase) / cycle))
    steps_per_epoch = math.ceil(full["n_fit"] / batch)
    info.update({"seconds_per_step": per_step, "steps_per_epoch": steps_per_epoch,
                 "rebuild_s_at_budget_rows": rebuild,
                 "epoch_s_extrapolated": per_step * steps_per_epoch + rebuild * full["n_fit"] / n_rows / cycle,
                 "scored_per_sample": phase[-1]["scored_per_sample"], "history": result.history})
    t = time.perf_counter()
    sparse = predict_shortlist(result.model, result.index, small.hierarchy, small.test.X, k)
    scores = sparse.dense(max_cells=small.test.n_samples * small.hierarchy.n_nodes)
    info["predict_s"] = time.perf_counter() - t
    info["quality"] = quality(small.test.Y, scores, small.hierarchy, full["train_frequency"], full["n_train"])
    info.update({"k": k, "hidden": width, "lr": rate, "heads": heads, "batch": batch, "epochs": epochs,
                 "proxy_epochs": proxy_epochs, "cycle": cycle, "uniform": uniform, "train_rows": n_rows,
                 "eval_rows": small.test.n_samples, "peak_reset": reset, "training_peak_rss_mb": peak_rss_mb(reset),
                 "threads": torch.get_num_threads()})
    return info


# ============================================================================ driver
def compare(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Both sides on one dataset, and the ratios shortlist / full."""
    common = {"name": name, "data_dir": args.data_dir, "seed": args.seed, "heads": args.heads, "hidden": args.hidden,
              "lr": args.lr, "batch": args.batch, "train_steps": args.train_steps, "warmup": args.warmup,
              "eval_rows": args.eval_rows, "threads": args.threads}
    log(f"{name}: full training ...")
    full = run_in_child(full_side, args.timeout, **common)
    log(f"{name}: shortlist training ...")
    short = run_in_child(shortlist_side, args.timeout, **common, k=args.k, epochs=args.sl_epochs,
                         proxy_epochs=args.sl_proxy_epochs, cycle=args.cycle, uniform=args.uniform)
    out: dict[str, Any] = {"dataset": name, "full": full, "shortlist": short}
    ok = "error" not in full and "error" not in short and "skipped" not in short
    out["ratio_epoch_s"] = short["epoch_s_extrapolated"] / full["epoch_s_extrapolated"] if ok else None
    out["speedup"] = 1 / out["ratio_epoch_s"] if out["ratio_epoch_s"] else None
    out["ratio_peak_rss"] = short["training_peak_rss_mb"] / full["training_peak_rss_mb"] if ok else None
    if ok:
        out["ratio_p@5"] = short["quality"]["p@5"] / full["quality"]["p@5"] if full["quality"]["p@5"] else None
        out["delta_auprc_micro"] = short["quality"]["auprc_micro"] - full["quality"]["auprc_micro"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=None,
                   help=f"default: {SYNTHETIC_100K}, plus cellcycle_GO when it is in the data dir")
    p.add_argument("--data-dir", default=os.environ.get("HMLC_DATA_DIR", DEFAULT_DATA_DIR))
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=None, help="hidden width (default: the dataset's preset)")
    p.add_argument("--lr", type=float, default=None, help="learning rate of both sides (default: the preset's)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train-steps", type=int, default=60, help="training budget in steps of --batch rows")
    p.add_argument("--warmup", type=int, default=3, help="steps left out of the per-step mean")
    p.add_argument("--eval-rows", type=int, default=500, help="test rows evaluated (dense N x C scores)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=100, help="shortlist: negatives per sample")
    p.add_argument("--sl-epochs", type=int, default=1, help="shortlist: epochs after the proxy phase")
    p.add_argument("--sl-proxy-epochs", type=int, default=0, help="shortlist: proxy epochs")
    p.add_argument("--cycle", type=int, default=5, help="shortlist: epochs between rebuilds")
    p.add_argument("--uniform", type=int, default=0, help="shortlist: uniform negatives per sample and step")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per side")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    names = args.datasets
    if names is None:
        names = [SYNTHETIC_100K] + (["cellcycle_GO"] if (Path(args.data_dir) / "datasets_GO").is_dir() else [])
    avail = mem_available_bytes()
    report = {"machine": machine_info(), "mem_available_gib_at_start": avail / GIB if avail else None,
              "args": vars(args), "results": [compare(n, args) for n in names]}
    text = json.dumps(report, indent=2, default=float)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if args.json:
        print(text)
    else:
        for r in report["results"]:
            f, s = r["full"], r["shortlist"]
            print(f"{r['dataset']}: full epoch {f.get('epoch_s_extrapolated')} s, shortlist "
                  f"{s.get('epoch_s_extrapolated', s.get('skipped', s.get('error')))}, ratio {r['ratio_epoch_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
