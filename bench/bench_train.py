#!/usr/bin/env python
"""Benchmark the project's training step against the dense reference formulation (bench/reference.py).

Usage (from the repository root; see bench/README.md for what every number means)::

    python bench/bench_train.py --dataset cellcycle_FUN --heads 2 --batch 4 --json
    python bench/bench_train.py --dataset cellcycle_GO --heads 2 --batch 64 --json
    python bench/bench_train.py --what load --dataset cellcycle_GO --json
    python bench/bench_train.py --what eval --dataset cellcycle_GO --json
    python bench/bench_train.py --what explore --dataset cellcycle_GO --json
    python bench/bench_train.py --what threads --dataset cellcycle_FUN --json
    python bench/bench_train.py --table            # the whole matrix as markdown (about 14 minutes)

Every measurement runs in its own child process (multiprocessing "spawn"), so
each peak RSS (``ru_maxrss`` of that child) belongs to one formulation only.
The dataset is parsed once in the parent and handed to the children.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from collections.abc import Callable
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATA_DIR = "/work/shared/data/hmc"
WHATS = ("train", "load", "eval", "explore", "threads")
REFERENCE_NAMES = ("released", "lean")
"""The reference loops of bench/reference.py: the released loop (the baseline of ``ratio``) and the lean one."""


# ============================================================================ helpers
def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def mem_available_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo (None where unavailable)."""
    return _meminfo("MemAvailable")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def code_version() -> dict[str, Any]:
    """The commit measured and whether ``hmlc_core`` has uncommitted changes (with a hash of the diff)."""
    diff = _git("diff", "HEAD", "--", "hmlc_core")
    return {
        "commit": _git("log", "-1", "--format=%h %s"),
        "hmlc_core_dirty": bool(diff),
        "hmlc_core_diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:10] if diff else None,
    }


def machine_info() -> dict[str, Any]:
    """CPU, memory, load and library versions of this machine."""
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    total, avail = _meminfo("MemTotal"), mem_available_bytes()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "mem_total_gb": round(total / 2**30, 1) if total else None,
        "mem_available_gb": round(avail / 2**30, 1) if avail else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        **code_version(),
    }


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _child_main(conn: Any, fn: str | Callable[..., dict[str, Any]], kwargs: dict[str, Any]) -> None:
    """Entry point of a spawned child: run ``fn(**kwargs)`` (a name: a function of this file) and send back
    ("ok", dict) or ("error", text)."""
    try:
        result = (globals()[fn] if isinstance(fn, str) else fn)(**kwargs)
        conn.send(("ok", result))
    except BaseException:  # noqa: BLE001 - report anything to the parent
        conn.send(("error", traceback.format_exc(limit=8)))
    finally:
        conn.close()


def run_in_child(fn_name: str | Callable[..., dict[str, Any]], timeout_s: float = 900.0,
                 **kwargs: Any) -> dict[str, Any]:
    """Run a module-level function (of this file, by name, or of any module, passed itself) in a fresh spawned
    process and return its dict.

    A child that raises, dies (for example killed for memory) or exceeds
    ``timeout_s`` gives ``{"error": "..."}`` instead of a result.
    """
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send, fn_name, kwargs), daemon=True)
    proc.start()
    send.close()
    try:
        if not recv.poll(timeout_s):
            proc.terminate()
            proc.join(5)
            return {"error": f"timed out after {timeout_s:.0f} s"}
        status, payload = recv.recv()
    except EOFError:
        proc.join(5)
        return {"error": f"child process died with exit code {proc.exitcode} (killed for memory?)"}
    finally:
        recv.close()
    proc.join(30)
    if status != "ok":
        return {"error": payload}
    return payload


def _load(name: str, data_dir: str | None) -> Any:
    from hmlc_core.data import load_dataset

    return load_dataset(name, data_dir)


def _n_fit(dataset: Any) -> int:
    """Samples in the training set the way both formulations use it (train+valid)."""
    return dataset.train.n_samples + (dataset.valid.n_samples if dataset.valid is not None else 0)


# ============================================================================ child workloads
def time_reference(dataset: Any, heads: int, batch: int, steps: int, warmup: int, budget_s: float,
                   threads: int, seed: int = 0, loop: str = "released") -> dict[str, Any]:
    """Time a dense reference (bench/reference.py, ``loop`` in ``REFERENCE_LOOPS``) in this process.

    Warm-up: ``warmup`` steps, but stop after the first step that ends more
    than ``budget_s / 4`` seconds after the start (at least one step). Timed:
    up to ``steps`` steps, ending early after the first step that ends past
    ``budget_s`` seconds (at least one step). For the released loop, whose
    step costs more the later it comes in an epoch (it gathers the epoch's
    predictions), the batches before the window are skipped with
    ``fast_forward`` so that the expected window is centred on the middle of
    an epoch, where a step costs the epoch's average.
    """
    import torch

    from bench.reference import REFERENCE_LOOPS, ReleasedLoopReference

    torch.set_num_threads(threads)
    baseline = peak_rss_mb()
    t = time.perf_counter()
    ref = REFERENCE_LOOPS[loop](dataset, heads=heads, batch_size=batch, seed=seed)
    ref.train_mode()
    setup_s = time.perf_counter() - t

    t = time.perf_counter()
    n_warm = 0
    while n_warm < max(warmup, 1):
        ref.step()
        n_warm += 1
        if time.perf_counter() - t > budget_s / 4:
            break
    warm_s = time.perf_counter() - t

    window_start = None
    if isinstance(ref, ReleasedLoopReference):
        expected = max(1, min(steps, math.ceil(budget_s / (warm_s / n_warm))))
        per_epoch = math.ceil(ref.n_samples / batch)
        skip = per_epoch // 2 - expected // 2 - ref.position
        if skip > 0:
            ref.fast_forward(skip)
        window_start = ref.position

    samples = done = 0
    loss = math.nan
    t0 = time.perf_counter()
    while done < steps:
        loss = ref.step()
        samples += ref.last_batch_size
        done += 1
        if time.perf_counter() - t0 > budget_s:
            break
    seconds = time.perf_counter() - t0
    return {
        "loop": loop,
        "samples_per_s": samples / seconds,
        "seconds_per_step": seconds / done,
        "steps": done,
        "samples": samples,
        "seconds": seconds,
        "warmup_steps": n_warm,
        "warmup_s": warm_s,
        "window_start_step_in_epoch": window_start,
        "setup_s": setup_s,
        "last_loss": loss,
        "threads": torch.get_num_threads(),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


class _StepClock:
    """The ``should_stop`` callable of the project side: counts steps and timestamps the timed window.

    ``train`` polls it after every optimizer step; the batch size of step k is
    known from the loop ``range(0, n, batch)`` (the last batch of an epoch is
    smaller), so the samples of the timed window are exact.
    """

    def __init__(self, n: int, batch: int, steps: int, warmup: int, budget_s: float) -> None:
        self.n, self.batch, self.steps, self.warmup, self.budget_s = n, batch, steps, max(warmup, 1), budget_s
        self.per_epoch = math.ceil(n / batch)
        self.calls = 0
        self.t_start = time.perf_counter()
        self.t_first: float | None = None  # end of the first step
        self.t0: float | None = None  # end of the warm-up
        self.t_end: float | None = None
        self.warm_steps = 0
        self.timed_steps = 0
        self.samples = 0

    def _batch_of(self, k: int) -> int:
        pos = k % self.per_epoch
        return min(self.batch, self.n - pos * self.batch)

    def __call__(self) -> bool:
        now = time.perf_counter()
        k = self.calls
        self.calls += 1
        if self.t_first is None:
            self.t_first = now
        if self.t0 is None:
            self.warm_steps += 1
            if self.warm_steps >= self.warmup or now - self.t_start > self.budget_s / 4:
                self.t0 = now
            return False
        self.timed_steps += 1
        self.samples += self._batch_of(k)
        if self.timed_steps >= self.steps or now - self.t0 > self.budget_s:
            self.t_end = now
            return True
        return False


def time_project(dataset: Any, heads: int, batch: int, steps: int, warmup: int, budget_s: float,
                 threads: int, seed: int = 0, kernel: str = "auto") -> dict[str, Any]:
    """Time the project's real ``hmlc_core.train.train`` in this process, bounded by a ``should_stop`` clock.

    ``kernel`` is ``TrainConfig.kernel``: the fused numba step, plain torch autograd + Adam, or "auto" (numba up
    to batch 32); the record's ``kernel`` is the one that ran.
    """
    import torch

    from hmlc_core.train import TrainConfig, train

    baseline = peak_rss_mb()
    n = _n_fit(dataset)
    per_epoch = math.ceil(n / batch)
    epochs = math.ceil((max(warmup, 1) + steps) / per_epoch) + 1
    config = TrainConfig(dataset=dataset.name, heads=heads, batch_size=batch, weighting="class-wise",
                         focal="mean", epochs=epochs, threads=threads, seed=seed, kernel=kernel)
    clock = _StepClock(n, batch, steps, warmup, budget_s)
    result = train(config, dataset, should_stop=clock)
    if clock.t0 is None or clock.t_end is None or clock.timed_steps == 0:
        raise RuntimeError("training ended before the timed window finished")
    seconds = clock.t_end - clock.t0
    return {
        "samples_per_s": clock.samples / seconds,
        "seconds_per_step": seconds / clock.timed_steps,
        "steps": clock.timed_steps,
        "samples": clock.samples,
        "seconds": seconds,
        "warmup_steps": clock.warm_steps,
        "warmup_s": clock.t0 - clock.t_start,
        "setup_and_first_step_s": (clock.t_first or clock.t_start) - clock.t_start,
        "train_seconds": result.train_seconds,
        "interrupted": result.interrupted,
        "kernel": result.config.kernel,
        "threads": torch.get_num_threads(),
        "hidden": result.config.hidden,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


def time_load(name: str, data_dir: str | None, repeats: int = 2) -> dict[str, Any]:
    """Time ``load_dataset`` (parse train+valid+test ARFF, build the hierarchy, preprocess) ``repeats`` times."""
    baseline = peak_rss_mb()
    times = []
    ds = None
    for _ in range(max(repeats, 1)):
        t = time.perf_counter()
        ds = _load(name, data_dir)
        times.append(time.perf_counter() - t)
    assert ds is not None
    return {
        "first_s": times[0],
        "best_s": min(times),
        "repeats": len(times),
        "n_nodes": ds.hierarchy.n_nodes,
        "n_features": ds.n_features,
        "samples": {k: s.n_samples for k, s in ds.splits.items()},
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


def _quick_model(dataset: Any, heads: int, train_steps: int | None, threads: int) -> Any:
    """A briefly trained project model (the timings below are about evaluation, not quality).

    ``train_steps`` steps at batch 4 through ``should_stop``; with None, one
    complete epoch at batch 512 instead (a handful of steps), because a run
    interrupted inside its first epoch has an empty history, which
    ``save_run``/``load_run`` cannot round-trip (see bench/README.md).
    """
    from hmlc_core.train import TrainConfig, train

    if train_steps is None:
        config = TrainConfig(dataset=dataset.name, heads=heads, batch_size=512, weighting="class-wise",
                             focal="mean", epochs=1, threads=threads)
        return train(config, dataset)
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] >= train_steps

    config = TrainConfig(dataset=dataset.name, heads=heads, weighting="class-wise", focal="mean", epochs=1,
                         threads=threads)
    return train(config, dataset, should_stop=stop)


def time_eval(dataset: Any, heads: int, threads: int, train_steps: int = 2, repeats: int = 2) -> dict[str, Any]:
    """Time one full evaluation of a trained model on the test split.

    Parts: ``predict_members`` (inference + MCM), all six uncertainty modes,
    ``summarize`` and ``node_metrics_table`` -- what ``save_run`` computes
    before writing files. Repeated ``repeats`` times; "first" is what a fresh
    process pays, "best" the steady state.
    """
    import torch

    from hmlc_core.metrics import node_metrics_table, summarize
    from hmlc_core.model import MCM
    from hmlc_core.train import predict_members
    from hmlc_core.uncertainty import UNCERTAINTY_MODES, uncertainty

    result = _quick_model(dataset, heads, train_steps, threads)
    baseline = peak_rss_mb()
    hierarchy, y_test = dataset.hierarchy, dataset.test.Y
    passes = []
    for _ in range(max(repeats, 1)):
        part: dict[str, float] = {}
        t_all = t = time.perf_counter()
        mcm = MCM(hierarchy)
        members = predict_members(result.model, mcm, dataset.test.X, result.config.eval_batch_size)
        mean_probs = members.mean(dim=0).numpy()
        part["predict_members_s"] = time.perf_counter() - t
        t = time.perf_counter()
        u_by_mode = {m: uncertainty(members, m) for m in UNCERTAINTY_MODES}
        part["uncertainty_all_modes_s"] = time.perf_counter() - t
        t = time.perf_counter()
        summary = summarize(hierarchy, y_test, mean_probs)
        part["summarize_s"] = time.perf_counter() - t
        t = time.perf_counter()
        node_metrics_table(hierarchy, y_test, mean_probs, result.train_frequency, u_by_mode["mean"].numpy())
        part["node_metrics_table_s"] = time.perf_counter() - t
        part["total_s"] = time.perf_counter() - t_all
        passes.append(part)
    best = {k: min(p[k] for p in passes) for k in passes[0]}
    return {
        "first": passes[0],
        "best": best,
        "total_s": passes[0]["total_s"],
        "n_test": int(y_test.shape[0]),
        "heads": heads,
        "threads": torch.get_num_threads(),
        "auprc_micro": summary["auprc_micro"],
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak_rss_mb(),
    }


def _widest_node(hierarchy: Any) -> str:
    """The evaluated node with the most children (a large pyvis neighbourhood)."""
    best, best_n = hierarchy.nodes[0], -1
    for node, keep in zip(hierarchy.nodes, hierarchy.eval_mask):
        n = hierarchy.graph.out_degree(node)
        if keep and n > best_n:
            best, best_n = node, n
    return best


def save_quick_run(dataset: Any, heads: int, threads: int, run_dir: str) -> dict[str, Any]:
    """Train a quick model (one epoch at batch 512) and time ``save_run`` into ``run_dir``."""
    from hmlc_core.runs import save_run

    result = _quick_model(dataset, heads, None, threads)
    baseline = peak_rss_mb()
    t = time.perf_counter()
    save_run(run_dir, result, dataset)
    return {"save_run_s": time.perf_counter() - t, "baseline_rss_mb": baseline, "peak_rss_mb": peak_rss_mb()}


def time_explore(run_dir: str, node: str | None = None) -> dict[str, Any]:
    """Time the explorer's data preparation on a saved run, in a fresh process (as the app would).

    ``load_run``, then ``sunburst_figure(run, "recall")`` (and its
    ``to_json``, which Streamlit sends to the browser), ``pyvis_html(run,
    node, "recall")`` and ``node_table(run)``.
    """
    from hmlc_core.views.explore import node_table, pyvis_html, sunburst_figure
    from hmlc_core.runs import load_run

    baseline = peak_rss_mb()
    out: dict[str, Any] = {}
    t = time.perf_counter()
    run = load_run(run_dir)
    out["load_run_s"] = time.perf_counter() - t
    node = node or _widest_node(run.hierarchy)
    out["node"] = node
    t = time.perf_counter()
    fig = sunburst_figure(run, "recall")
    out["sunburst_figure_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out["sunburst_json_kib"] = round(len(fig.to_json()) / 1024, 1)
    out["sunburst_to_json_s"] = time.perf_counter() - t
    t = time.perf_counter()
    html = pyvis_html(run, node, "recall")
    out["pyvis_html_s"] = time.perf_counter() - t
    out["pyvis_html_kib"] = round(len(html) / 1024, 1)
    t = time.perf_counter()
    table = node_table(run)
    out["node_table_s"] = time.perf_counter() - t
    out["node_table_rows"] = int(len(table))
    out["explorer_total_s"] = out["sunburst_figure_s"] + out["pyvis_html_s"] + out["node_table_s"]
    out["baseline_rss_mb"] = baseline
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def bench_explore(dataset: Any, heads: int, threads: int, node: str | None) -> dict[str, Any]:
    """Save a quick run in one child, then time the explorer on it in a second, fresh child."""
    tmp = Path(tempfile.mkdtemp(prefix="hmlc-bench-"))
    try:
        run_dir = str(tmp / "run")
        log(f"explore {dataset.name}: saving a quick run")
        saved = run_in_child("save_quick_run", dataset=dataset, heads=heads, threads=threads, run_dir=run_dir)
        if "error" in saved:
            return {"what": "explore", "dataset": dataset.name, "error": saved["error"]}
        log(f"explore {dataset.name}: explorer functions")
        explored = run_in_child("time_explore", run_dir=run_dir, node=node)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"what": "explore", "dataset": dataset.name, "heads": heads, "save_run_s": saved["save_run_s"],
            "save_run_peak_rss_mb": saved["peak_rss_mb"], **explored}


def _spin(seconds: float) -> None:
    """A CPU-bound competitor: single-threaded numpy matmuls for ``seconds`` (or until terminated)."""
    import numpy as np

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # one BLAS thread per competitor process
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    a = np.random.default_rng(0).standard_normal((384, 384)) / 20
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        a = np.tanh(a @ a)


def _start_competitors(n: int, seconds: float) -> list[Any]:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_spin, args=(seconds,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    return procs


def _stop_competitors(procs: list[Any]) -> None:
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(5)


# ============================================================================ parent-side runs
def default_steps(n_nodes: int, batch: int) -> tuple[int, int]:
    """(project steps, reference steps) upper bounds; the time budget usually ends the window first."""
    big = n_nodes > 2000
    project = 150 if big else 400
    reference = 3 if big else 200
    if batch >= 32:
        project, reference = max(project // 4, 10), max(reference // 4, 2)
    return project, reference


def bench_train(dataset: Any, heads: int, batch: int, steps: int | None, ref_steps: int | None,
                warmup: int, budget_s: float, threads: int, mem_fraction: float,
                loops: tuple[str, ...] = REFERENCE_NAMES, rounds: int = 1, kernel: str = "auto") -> dict[str, Any]:
    """Time the reference loops and the project (each in its own child) and return the comparison record.

    ``kernel`` is the project's training step (``TrainConfig.kernel``).

    ``loops`` names the references to time (``"released"``, the baseline of
    ``ratio``, and/or ``"lean"``, the baseline of ``ratio_lean``); empty: the
    project only. With ``rounds`` > 1 the children run that many times,
    alternating (references, then project, then again), and each reported
    rate is the median over the rounds and each ratio the median of the
    rounds' ratios: on a shared machine a busy moment then spoils one round,
    not the figure. Peak RSS is the largest over the rounds.
    """
    from bench.reference import dense_peak_bytes
    from hmlc_core.presets import preset_for

    C = dataset.hierarchy.n_nodes
    p_default, r_default = default_steps(C, batch)
    p_steps = steps if steps is not None else p_default
    r_steps = ref_steps if ref_steps is not None else (steps if steps is not None else r_default)
    rounds = max(int(rounds), 1)
    record: dict[str, Any] = {
        "what": "train",
        "dataset": dataset.name,
        "n_nodes": C,
        "n_features": dataset.n_features,
        "n_fit_samples": _n_fit(dataset),
        "hidden": preset_for(dataset.name).hidden,
        "heads": heads,
        "batch": batch,
        "threads": threads,
        "rounds": rounds,
        "load_avg_1m_before": round(os.getloadavg()[0], 2),
        "steps": {"project_max": p_steps, "reference_max": r_steps, "warmup": warmup, "budget_s": budget_s},
    }
    avail = mem_available_bytes()
    runnable = []
    for loop in REFERENCE_NAMES:
        need = dense_peak_bytes(C, batch, heads if loop == "released" else 1)
        reason = None
        if loop not in loops:
            reason = "not asked for (--reference)"
        elif avail is not None and need > mem_fraction * avail:
            reason = (f"dense MCM needs about {need / 2**30:.1f} GiB (R plus 3 x {_stacked(loop, heads)}B x C x C "
                      f"float64, C={C}, B={batch}); only {avail / 2**30:.1f} GiB available and the limit is "
                      f"{mem_fraction:.0%} of it")
        else:
            runnable.append(loop)
        record[f"{_prefix(loop)}reference_estimated_dense_mib"] = round(need / 2**20)
        record[f"{_prefix(loop)}reference_skipped_reason"] = reason
    per_round: list[dict[str, Any]] = []
    for k in range(rounds):
        this: dict[str, Any] = {}
        for loop in runnable:
            log(f"{loop} reference {dataset.name} H={heads} B={batch} (round {k + 1}/{rounds}, up to {r_steps} steps)")
            this[loop] = run_in_child("time_reference", dataset=dataset, heads=heads, batch=batch, steps=r_steps,
                                      warmup=warmup, budget_s=budget_s, threads=threads, loop=loop)
        log(f"project   {dataset.name} H={heads} B={batch} (round {k + 1}/{rounds}, up to {p_steps} steps)")
        this["project"] = run_in_child("time_project", dataset=dataset, heads=heads, batch=batch, steps=p_steps,
                                       warmup=warmup, budget_s=budget_s, threads=threads, kernel=kernel)
        per_round.append(this)

    def ok(part: dict[str, Any] | None) -> bool:
        return part is not None and "error" not in part

    projects = [r["project"] for r in per_round if ok(r["project"])]
    record["project_samples_per_s"] = _median([p["samples_per_s"] for p in projects])
    record["project_peak_rss_mb"] = max((p["peak_rss_mb"] for p in projects), default=None)
    for loop in REFERENCE_NAMES:
        pre = _prefix(loop)
        refs = [r[loop] for r in per_round if ok(r.get(loop))]
        failed = [r[loop] for r in per_round if loop in r and not ok(r[loop])]
        if failed and not refs:
            record[f"{pre}reference_skipped_reason"] = ("reference failed: "
                                                       + failed[0]["error"].strip().splitlines()[-1])
        record[f"{pre}reference_samples_per_s"] = _median([r["samples_per_s"] for r in refs])
        record[f"{pre}reference_peak_rss_mb"] = max((r["peak_rss_mb"] for r in refs), default=None)
        record["ratio" + ("_" + loop if pre else "")] = _median(
            [r["project"]["samples_per_s"] / r[loop]["samples_per_s"]
             for r in per_round if ok(r.get(loop)) and ok(r["project"])])
        record[f"{pre}reference"] = refs[-1] if refs else None
    record["project"] = projects[-1] if projects else per_round[-1]["project"]
    record["kernel"] = projects[-1].get("kernel", kernel) if projects else kernel
    if rounds > 1:
        record["per_round"] = [
            {name: (part["samples_per_s"] if ok(part) else None) for name, part in r.items()} for r in per_round]
    return record


def _median(values: list[float]) -> float | None:
    """The median of ``values``, None when empty."""
    return statistics.median(values) if values else None


def _prefix(loop: str) -> str:
    """Key prefix of a reference loop in the record: none for the baseline ("released"), else ``"<loop>_"``."""
    return "" if loop == "released" else loop + "_"


def _stacked(loop: str, heads: int) -> str:
    return f"{heads} x " if loop == "released" else ""


def bench_threads(dataset: Any, heads: int, batch: int, steps: int | None, warmup: int, budget_s: float,
                  competitors: int) -> dict[str, Any]:
    """The project's step with torch threads 1 and 2, alone and next to CPU-bound competitor processes."""
    p_default, _ = default_steps(dataset.hierarchy.n_nodes, batch)
    p_steps = steps if steps is not None else p_default
    cases = []
    for busy in (False, True):
        for threads in (1, 2):
            load_before = round(os.getloadavg()[0], 2)
            procs = _start_competitors(competitors, budget_s * 4 + 60) if busy else []
            try:
                if busy:
                    time.sleep(1.0)
                log(f"threads={threads} {'with' if busy else 'without'} {competitors} competitor(s)")
                res = run_in_child("time_project", dataset=dataset, heads=heads, batch=batch, steps=p_steps,
                                   warmup=warmup, budget_s=budget_s, threads=threads)
            finally:
                _stop_competitors(procs)
            cases.append({"threads": threads, "competing_processes": competitors if busy else 0,
                          "load_avg_1m_before": load_before,
                          "samples_per_s": res.get("samples_per_s"), "seconds_per_step": res.get("seconds_per_step"),
                          "steps": res.get("steps"), "error": res.get("error")})
    return {"what": "threads", "dataset": dataset.name, "heads": heads, "batch": batch,
            "competitor": "one spawned process per core, each looping single-threaded numpy 384x384 matmuls",
            "cases": cases}


# ============================================================================ output
def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}" if abs(v) >= 1 else f"{v:.3g}"
    return str(v)


def markdown(results: dict[str, Any]) -> str:
    lines = []
    m = results["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['mem_total_gb']} GB RAM, "
                 f"torch {m['torch']}, load avg {m['load_avg_1m']}. Code: `{m['commit']}`"
                 + (" (+ uncommitted hmlc_core changes)" if m["hmlc_core_dirty"] else "") + ".")
    lines.append("")
    lines.append("### Training step: dense references vs project (samples/s, torch threads = "
                 f"{results.get('threads', 1)})")
    lines.append("")
    lines.append("| dataset | H | batch | released-loop reference | lean reference | project | project kernel | "
                 "ratio (released) | ratio (lean) | peak RSS MB (released / lean / project) | "
                 "steps timed (released / lean / project) | rounds |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results.get("train", []):
        cells, rss, steps = [], [], []
        for pre in ("", "lean_"):
            value = r.get(f"{pre}reference_samples_per_s")
            reason = r.get(f"{pre}reference_skipped_reason")
            cells.append("n/a (see note)" if value is None and reason and "not asked" not in reason else _fmt(value))
            rss.append(_fmt(r.get(f"{pre}reference_peak_rss_mb"), 0))
            steps.append(str((r.get(f"{pre}reference") or {}).get("steps", "-")))
        ratios = [f"{r[k]:,.1f}x" if r.get(k) is not None else "n/a" for k in ("ratio", "ratio_lean")]
        steps.append(str((r.get("project") or {}).get("steps", "-")))
        rss.append(_fmt(r["project_peak_rss_mb"], 0))
        lines.append(f"| {r['dataset']} | {r['heads']} | {r['batch']} | {cells[0]} | {cells[1]} | "
                     f"{_fmt(r['project_samples_per_s'])} | {r.get('kernel', '-')} | {ratios[0]} | {ratios[1]} | "
                     f"{' / '.join(rss)} | "
                     f"{' / '.join(steps)} | {r.get('rounds', 1)} |")
    notes = [f"{r['dataset']} H={r['heads']} B={r['batch']}, {name} reference: {r[pre + 'reference_skipped_reason']}"
             for r in results.get("train", []) for name, pre in (("released-loop", ""), ("lean", "lean_"))
             if r.get(pre + "reference_skipped_reason") and "not asked" not in r[pre + "reference_skipped_reason"]]
    if notes:
        lines.append("")
        lines.extend(f"Note: {n}" for n in notes)
    if results.get("load"):
        lines += ["", "### Loading a dataset (`load_dataset`: train+valid+test)", "",
                  "| dataset | first (s) | best (s) | peak RSS MB |", "|---|---|---|---|"]
        for r in results["load"]:
            if "error" in r:
                lines.append(f"| {r.get('dataset')} | error | | |")
                continue
            lines.append(f"| {r['dataset']} | {r['first_s']:.2f} | {r['best_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    if results.get("eval"):
        lines += ["", "### One full evaluation on the test split (first pass / best of 2, seconds)", "",
                  "| dataset | H | predict_members | 6 uncertainty modes | summarize | node_metrics_table | "
                  "total | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
        for r in results["eval"]:
            if "error" in r:
                lines.append(f"| {r.get('dataset')} | error | | | | | | |")
                continue
            f, b = r["first"], r["best"]
            cells = " | ".join(f"{f[k]:.2f} / {b[k]:.2f}" for k in
                               ("predict_members_s", "uncertainty_all_modes_s", "summarize_s",
                                "node_metrics_table_s", "total_s"))
            lines.append(f"| {r['dataset']} | {r['heads']} | {cells} | {r['peak_rss_mb']:.0f} |")
    if results.get("explore"):
        lines += ["", "### Explorer data preparation on a saved run (seconds)", "",
                  "| dataset | save_run | load_run | sunburst_figure | sunburst to_json (KiB) | pyvis_html (node) | "
                  "node_table | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
        for r in results["explore"]:
            if "error" in r:
                lines.append(f"| {r.get('dataset')} | error | | | | | | |")
                continue
            lines.append(f"| {r['dataset']} | {r['save_run_s']:.2f} | {r['load_run_s']:.2f} | "
                         f"{r['sunburst_figure_s']:.2f} | "
                         f"{r['sunburst_to_json_s']:.2f} ({r['sunburst_json_kib']:.0f}) | "
                         f"{r['pyvis_html_s']:.2f} ({r['node']}) | {r['node_table_s']:.3f} | {r['peak_rss_mb']:.0f} |")
    if results.get("threads_robustness"):
        lines += ["", "### Thread robustness of the project's step (samples/s)", "",
                  "| dataset | H | batch | 1 thread, alone | 2 threads, alone | 1 thread, busy | 2 threads, busy |",
                  "|---|---|---|---|---|---|---|"]
        for r in results["threads_robustness"]:
            by = {(c["threads"], c["competing_processes"] > 0): c["samples_per_s"] for c in r["cases"]}
            lines.append(f"| {r['dataset']} | {r['heads']} | {r['batch']} | {_fmt(by.get((1, False)))} | "
                         f"{_fmt(by.get((2, False)))} | {_fmt(by.get((1, True)))} | {_fmt(by.get((2, True)))} |")
        lines.append("")
        lines.append(f"Busy = {results['threads_robustness'][0]['competitor']}.")
    return "\n".join(lines)


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cellcycle_FUN", help="dataset name (default cellcycle_FUN)")
    ap.add_argument("--heads", type=int, default=2, help="ensemble members H (default 2)")
    ap.add_argument("--batch", type=int, default=4, help="batch size (default 4)")
    ap.add_argument("--steps", type=int, default=None,
                    help="upper bound on timed steps for both formulations (default: per dataset and batch, "
                         "see default_steps); the time budget may end the window earlier")
    ap.add_argument("--ref-steps", type=int, default=None, help="upper bound on timed reference steps "
                    "(overrides --steps for the reference)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps before timing (default 3; at least 1; "
                    "cut short after budget/4 seconds)")
    ap.add_argument("--budget", type=float, default=10.0,
                    help="seconds of timed steps per formulation before the window closes (default 10)")
    ap.add_argument("--data-dir", default=os.environ.get("HMLC_DATA_DIR", DEFAULT_DATA_DIR))
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads in both children (default 1)")
    ap.add_argument("--kernel", choices=("auto", "numba", "torch"), default="auto",
                    help="the project's training step (TrainConfig.kernel): fused numba kernels, plain torch "
                         "autograd + Adam, or auto (default: numba up to batch 32, torch above)")
    ap.add_argument("--what", choices=WHATS, default="train",
                    help="train: reference vs project step (default); load: load_dataset; eval: one full "
                         "test evaluation; explore: explorer data preparation on a saved run; threads: the "
                         "project's step with 1/2 threads, alone and next to CPU-bound competitors")
    ap.add_argument("--node", default=None, help="--what explore: node for pyvis_html (default: the evaluated "
                    "node with the most children)")
    ap.add_argument("--competitors", type=int, default=None,
                    help="--what threads: competing processes (default: number of usable CPUs)")
    ap.add_argument("--mem-fraction", type=float, default=0.6,
                    help="run the dense reference only if its estimated memory is below this fraction of "
                         "MemAvailable (default 0.6)")
    ap.add_argument("--reference", choices=("both", *REFERENCE_NAMES, "none"), default="both",
                    help="which dense references to time (default both): 'released' (the released loop, the "
                         "baseline of ratio), 'lean' (the dense formulation alone, ratio_lean) or 'none' "
                         "(the project only)")
    ap.add_argument("--table", action="store_true",
                    help="run the whole matrix (cellcycle_FUN/GO x H 2,5 x batch 4,64 + load/eval/explore/threads) "
                         "and print a markdown table (JSON with --json)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="time the references and the project this many times, alternating, and report medians "
                         "(default 1; with --table 3 for cellcycle_FUN and 1 for cellcycle_GO, whose dense steps "
                         "take 10-40 s each)")
    ap.add_argument("--out", default=None, help="also write the JSON result to this file")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)

    data_dir = args.data_dir
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 2
    competitors = args.competitors if args.competitors is not None else usable
    machine = machine_info()
    loops = {"both": REFERENCE_NAMES, "none": ()}.get(args.reference, (args.reference,))

    if args.table:
        results: dict[str, Any] = {"machine": machine, "threads": args.threads, "train": [], "load": [],
                                   "eval": [], "explore": [], "threads_robustness": []}
        t_all = time.perf_counter()
        datasets = {}
        for name in ("cellcycle_FUN", "cellcycle_GO"):
            datasets[name] = _load(name, data_dir)
        for name, ds in datasets.items():
            rounds = args.rounds or (3 if ds.hierarchy.n_nodes <= 2000 else 1)
            for heads in (2, 5):
                for batch in (4, 64):
                    results["train"].append(bench_train(ds, heads, batch, args.steps, args.ref_steps, args.warmup,
                                                        args.budget, args.threads, args.mem_fraction,
                                                        loops, rounds, args.kernel))
        for name, ds in datasets.items():
            log(f"load {name}")
            results["load"].append({"dataset": name, **run_in_child("time_load", name=name, data_dir=data_dir)})
            log(f"eval {name}")
            results["eval"].append({"dataset": name, **run_in_child("time_eval", dataset=ds, heads=2,
                                                                    threads=args.threads)})
        log("explore cellcycle_GO")
        results["explore"].append(bench_explore(datasets["cellcycle_GO"], 2, args.threads, args.node))
        for name in ("cellcycle_FUN", "cellcycle_GO"):
            results["threads_robustness"].append(bench_threads(datasets[name], 2, 4, args.steps, args.warmup,
                                                               min(args.budget, 6.0), competitors))
        results["table_seconds"] = time.perf_counter() - t_all
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(markdown(results))
            print(f"\n(whole table: {results['table_seconds'] / 60:.1f} minutes)")
        return 0

    if args.what == "load":
        record = {"what": "load", "dataset": args.dataset,
                  **run_in_child("time_load", name=args.dataset, data_dir=data_dir)}
    else:
        ds = _load(args.dataset, data_dir)
        if args.what == "train":
            record = bench_train(ds, args.heads, args.batch, args.steps, args.ref_steps, args.warmup, args.budget,
                                 args.threads, args.mem_fraction, loops, args.rounds or 1, args.kernel)
        elif args.what == "eval":
            record = {"what": "eval", "dataset": ds.name,
                      **run_in_child("time_eval", dataset=ds, heads=args.heads, threads=args.threads)}
        elif args.what == "explore":
            record = bench_explore(ds, args.heads, args.threads, args.node)
        else:
            record = bench_threads(ds, args.heads, args.batch, args.steps, args.warmup, args.budget, competitors)
    record["machine"] = machine
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        key = {"train": "train", "load": "load", "eval": "eval", "explore": "explore",
               "threads": "threads_robustness"}[args.what]
        print(markdown({"machine": machine, "threads": args.threads, key: [record]}))
    return 0 if "error" not in record else 1


if __name__ == "__main__":
    sys.exit(main())
