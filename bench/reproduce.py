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

Training runs on the sweep engine (:mod:`hmlc_core.sweeps`, Dask distributed): each budget folder
``WORK/BUDGET`` is a sweep's output folder, each run one Dask task on an embedded ``LocalCluster``
(``--jobs N`` single-threaded worker processes, default one per core) or on an existing cluster
(``--scheduler tcp://HOST:PORT`` or ``$HMLC_DASK_SCHEDULER``; README, *Running on a cluster*). Every trained
run is an ordinary run directory with the sweep's flat name, ``WORK/BUDGET/DATASET__CONFIG__seed-S``, so
finished runs are reused when the command is repeated, the report can be rebuilt from them alone
(``--report-only``), the budget's ``registry.sqlite`` lists them and any of them opens in the dashboard
(``HMLC_RUNS_DIR=WORK/BUDGET``). Each run also records its wall time and the peak resident memory of the
worker process while it trained (``resources.json``, :func:`hmlc_core.sweeps.task.train_cell`), and each
training command is recorded in the budget's ``invocations.json`` (command, workers, cores and CPU model,
wall time, runs trained).

Budgets trained before the sweep engine used nested folders ``WORK/BUDGET/DATASET/CONFIG/seed-S``;
``--migrate-layout`` renames each to its flat name within its budget folder and removes the emptied
dataset and configuration folders (:func:`migrate_layout`; idempotent, a second call moves nothing).

Run by hand (it is not part of the test suite)::

    HMLC_DATA_DIR=../shared/data/hmc python bench/reproduce.py --quick          # < 30 min on 2 cores
    HMLC_DATA_DIR=../shared/data/hmc python bench/reproduce.py --profile quick --seeds 3 \
        --datasets cellcycle_FUN derisi_FUN eisen_FUN gasch1_FUN \
        --configs plain weighting-focal class-balanced asl logit-adjust           # issue 12's targets, ~10 min
    HMLC_DATA_DIR=../shared/data/hmc python bench/reproduce.py --configs chmcnn --seeds 3 \
        --datasets cellcycle_FUN derisi_FUN eisen_FUN                            # paper budget, full epochs
    python bench/reproduce.py --configs chmcnn --seeds 1 --go --scheduler tcp://HOST:8786    # on a Dask cluster
    python bench/reproduce.py --migrate-layout --work runs/reproduce             # nested run folders -> flat
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from hmlc_core.data import list_datasets, resolve_data_dir  # noqa: E402
from hmlc_core.decision import DEFAULT_SHRINKAGE  # noqa: E402
from hmlc_core.experiments import SEED_METRICS, paired_wilcoxon  # noqa: E402
from hmlc_core.jobs import has_valid_split  # noqa: E402
from hmlc_core.runs import Run, evaluate_run, load_run  # noqa: E402
from hmlc_core.sweeps.configs import CHMCNN, CONFIGS, PAPER, PLAIN  # noqa: E402
from hmlc_core.sweeps.grid import FOLDER_SEPARATOR, Cell, build_spec, split_folder  # noqa: E402
from hmlc_core.sweeps.store import read_resources  # noqa: E402

if TYPE_CHECKING:  # the engine imports Dask, which --report-only and --migrate-layout do not need
    from distributed import Client

    from hmlc_core.sweeps.engine import SweepReport

log = logging.getLogger("reproduce")

CHMCNN_SOURCE = "C-HMCNN README"
"""C-HMCNN's published micro AUPRC, mean of 10 seeds: the results table of github.com/EGiunchiglia/C-HMCNN's
README (commit 150ca4631e2eceef5b0b5b144b926036650f53ff; Giunchiglia & Lukasiewicz, NeurIPS 2020)."""
HMCN_F_SOURCE = "HMCN-F (Wehrmann et al. 2018)"
"""HMCN-F's published micro AUPRC (Wehrmann, Cerri & Barros, ICML 2018), as quoted in issue 14."""

PUBLISHED_AUPRC: dict[str, float] = {
    "cellcycle_FUN": 0.255, "derisi_FUN": 0.195, "eisen_FUN": 0.306, "expr_FUN": 0.302, "gasch1_FUN": 0.286,
    "gasch2_FUN": 0.258, "seq_FUN": 0.292, "spo_FUN": 0.215,
    "cellcycle_GO": 0.413, "derisi_GO": 0.370, "eisen_GO": 0.455, "expr_GO": 0.447, "gasch1_GO": 0.436,
    "gasch2_GO": 0.414, "seq_GO": 0.446, "spo_GO": 0.382,
    "Diatoms": 0.758, "Enron_corr": 0.756, "ImCLEF07A": 0.956, "ImCLEF07D": 0.927,
}
"""Dataset (as :func:`hmlc_core.data.list_datasets` names it) -> C-HMCNN's published micro AUPRC
(:data:`CHMCNN_SOURCE`; docs/method.md, *Metrics*). C-HMCNN's README names the ``others`` sets
``Diatoms_others``, ``Enron_others``, ``Imclef07a_others`` and ``Imclef07d_others``; church_FUN, pheno_FUN and
pheno_GO are in its ``HMC_data`` folder but not in its table."""
HMCN_F_AUPRC: dict[str, float] = {"expr_GO": 0.452, "gasch2_GO": 0.465, "seq_GO": 0.447}
"""HMCN-F's published micro AUPRC (:data:`HMCN_F_SOURCE`) on the datasets where it is higher than C-HMCNN's."""
_PUBLISHED_ALIASES = {"enron": "Enron_corr"}  # C-HMCNN's command-line name of others/Enron_corr_*.arff


@dataclass(frozen=True)
class Published:
    """The best published micro AUPRC of a dataset.

    Attributes
    ----------
    value : float
        The highest published figure, in [0, 1]: HMCN-F's where it is higher than C-HMCNN's, else C-HMCNN's.
    source : str
        Who published ``value``: :data:`CHMCNN_SOURCE` or :data:`HMCN_F_SOURCE`.
    chmcnn : float
        C-HMCNN's own figure, the one its reproduction is held to.
    """

    value: float
    source: str
    chmcnn: float


def published_auprc(dataset: str) -> Published | None:
    """The published micro AUPRC of ``dataset`` (:data:`PUBLISHED_AUPRC`, :data:`HMCN_F_AUPRC`), or None.

    Names are matched case-insensitively, with C-HMCNN's ``_others`` suffix accepted (``Imclef07a_others``,
    ``enron_others``). None for a dataset C-HMCNN does not report (church_FUN, pheno_FUN, pheno_GO, a user's
    own, synthetic).
    """
    key = dataset.lower().removesuffix("_others")
    names = {name.lower(): name for name in PUBLISHED_AUPRC}
    name = names.get(key) or _PUBLISHED_ALIASES.get(key)
    if name is None:
        return None
    chmcnn = PUBLISHED_AUPRC[name]
    hmcn_f = HMCN_F_AUPRC.get(name)
    if hmcn_f is not None and hmcn_f > chmcnn:
        return Published(hmcn_f, HMCN_F_SOURCE, chmcnn)
    return Published(chmcnn, CHMCNN_SOURCE, chmcnn)


def dataset_family(dataset: str) -> str:
    """``FUN``, ``GO`` or ``others`` (every dataset whose name ends in neither ``_FUN`` nor ``_GO``)."""
    for family in ("FUN", "GO"):
        if dataset.endswith(f"_{family}"):
            return family
    return "others"


FAMILIES = ("FUN", "GO", "others")

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


HELD_OUT_VALID = 0.34
"""``valid_fraction`` of the runs that keep a valid split aside (``fit_on="train"``) on a dataset shipped without
one (Diatoms, ImCLEF07A, ImCLEF07D): the share of train+valid that the FUN and GO datasets' own valid split
holds (0.333-0.350 over the 15 of them), held out of the training rows with a fixed seed
(:func:`hmlc_core.data.hold_out_valid`)."""

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


def budget_cells(datasets: Sequence[str], configs: Sequence[str], seeds: Sequence[int], profile: str,
                 epochs: int | None, data_dir: str | None, fit_on: str = "train+valid") -> list[Cell]:
    """The sweep cells of a budget: every dataset x configuration of :data:`CONFIGS` x seed, seed-major.

    With ``fit_on="train"``, a dataset without a valid split of its own holds :data:`HELD_OUT_VALID` of its
    training rows out as one (``valid_fraction``), so its runs can tune the decision rules too.

    Raises
    ------
    ValueError
        On an unknown configuration or a cell whose TrainConfig is invalid
        (:meth:`hmlc_core.sweeps.grid.GridSpec.cells`).
    """
    cells = build_spec(datasets=list(datasets), configs=list(configs), seeds=list(seeds), profile=profile,
                       epochs=epochs, fit_on=fit_on, data_dir=data_dir).cells()
    if fit_on != "train":
        return cells
    without = {d for d in datasets if not has_valid_split(d, data_dir)}
    return [replace(c, overrides=tuple(sorted({**dict(c.overrides), "valid_fraction": HELD_OUT_VALID}.items())))
            if c.dataset in without else c for c in cells]


def _machine() -> str:
    """``N cores, CPU model`` of this machine (``/proc/cpuinfo``)."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def _cluster_machines(client: Client, local: bool) -> str:
    """The machines of the cluster's workers: this one for a LocalCluster; else each distinct
    ``N cores, CPU model`` reported by the workers (their hosts when they cannot run this module's code)."""
    if local:
        return _machine()
    try:
        found = client.run(_machine)
    except Exception as exc:  # a worker that cannot import bench/ still trains; only the record is poorer
        log.warning("cannot ask the workers for their CPU model: %s", exc)
        hosts = sorted({w.get("host", "?") for w in client.scheduler_info()["workers"].values()})
        return "hosts " + ", ".join(hosts)
    return "; ".join(sorted(set(found.values())))


def train_budget(cells: Sequence[Cell], budget_dir: str | Path, client: Client, command: str,
                 scheduler: str | None = None, progress: bool | None = None) -> SweepReport:
    """Train the cells not yet in ``budget_dir`` as one sweep (:func:`hmlc_core.sweeps.engine.run_sweep`) and
    append the invocation to ``budget_dir/invocations.json`` when anything was submitted.

    Parameters
    ----------
    cells : sequence of Cell
        From :func:`budget_cells`.
    budget_dir : path
        ``WORK/BUDGET`` (:func:`budget_name`): the sweep's output folder, created.
    client : distributed.Client
        From :func:`hmlc_core.sweeps.engine.dask_client`.
    command : str
        The command line, recorded.
    scheduler : str, optional
        The scheduler's address, recorded; None: the client's embedded LocalCluster.
    progress : bool, optional
        As :func:`~hmlc_core.sweeps.engine.run_sweep`.

    Returns
    -------
    hmlc_core.sweeps.engine.SweepReport

    Raises
    ------
    ValueError
        If ``budget_dir`` still holds run folders of the nested layout (run :func:`migrate_layout`), or a run
        folder there was trained with other settings (:func:`hmlc_core.sweeps.store.plan`).
    """
    from hmlc_core.sweeps.engine import run_sweep

    budget_dir = Path(budget_dir)
    nested = nested_runs(budget_dir)
    if nested:
        raise ValueError(f"{budget_dir} holds {len(nested)} run folder(s) of the old nested layout "
                         f"(e.g. {nested[0][3]}); run `python bench/reproduce.py --migrate-layout --work "
                         f"{budget_dir.parent}` first")
    workers = len(client.scheduler_info()["workers"])
    machine = _cluster_machines(client, scheduler is None)
    start = time.perf_counter()
    report = run_sweep(cells, budget_dir, client, progress=progress)
    if report.trained or report.failed:
        record = _invocations(budget_dir) + [{
            "date": time.strftime("%Y-%m-%d"), "machine": machine, "jobs": workers,
            "scheduler": scheduler or "LocalCluster", "runs_trained": len(report.trained),
            "runs_failed": len(report.failed), "wall_minutes": (time.perf_counter() - start) / 60,
            "command": command,
        }]
        _write_text_atomic(budget_dir / "invocations.json", json.dumps(record, indent=1))
    return report


# ----------------------------------------------------------------------------- layout


_SEED_DIR = re.compile(r"seed-(\d+)")


def nested_runs(budget_dir: str | Path) -> list[tuple[str, str, int, Path]]:
    """Run folders of the nested layout below ``budget_dir``: ``DATASET/CONFIG/seed-S`` holding ``summary.json``.

    Returns
    -------
    list of (dataset, config, seed, path)
        Sorted by path. Folders with flat names (:func:`hmlc_core.sweeps.grid.split_folder`) and hidden ones
        (temporary saves) are never looked into.
    """
    budget_dir = Path(budget_dir)
    found: list[tuple[str, str, int, Path]] = []
    if not budget_dir.is_dir():
        return found
    for dataset_dir in sorted(budget_dir.iterdir()):
        if not dataset_dir.is_dir() or dataset_dir.name.startswith(".") or split_folder(dataset_dir.name):
            continue
        for config_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for seed_dir in sorted(p for p in config_dir.iterdir() if p.is_dir()):
                match = _SEED_DIR.fullmatch(seed_dir.name)
                if match and (seed_dir / "summary.json").is_file():
                    found.append((dataset_dir.name, config_dir.name, int(match.group(1)), seed_dir))
    return found


@dataclass
class Migration:
    """What :func:`migrate_layout` did.

    Attributes
    ----------
    moved : list of (str, str)
        (old path, new path) of each run folder renamed.
    kept : dict of str to str
        Old path -> why it was left in place (its flat name is taken, or unusable in a flat name).
    removed : list of str
        Emptied dataset and configuration folders removed.
    """

    moved: list[tuple[str, str]] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def _remove_if_empty(folder: Path, removed: list[str]) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (or gone): left as it is
        return
    removed.append(str(folder))


def migrate_layout(work: str | Path) -> Migration:
    """Rename every nested run folder ``WORK/BUDGET/DATASET/CONFIG/seed-S`` to the sweep's flat name
    ``WORK/BUDGET/DATASET__CONFIG__seed-S`` (:attr:`hmlc_core.sweeps.grid.Cell.folder`).

    Each rename is one :func:`os.rename` within the budget folder (atomic on one file system); dataset and
    configuration folders left empty are removed, and nothing else is touched: flat run folders, hidden
    temporary folders, files and other budgets' contents stay as they are. Idempotent: a second call finds
    no nested run and moves nothing.

    Parameters
    ----------
    work : path
        The folder of the budget folders (``--work``, default ``runs/reproduce``); missing: nothing to do.

    Returns
    -------
    Migration
        A run whose flat name is already taken is kept in place (and named in ``kept``), never overwritten.
    """
    work = Path(work)
    result = Migration()
    budgets = sorted(p for p in work.iterdir() if p.is_dir() and not p.name.startswith(".")) if work.is_dir() else []
    for budget in budgets:
        parents: set[Path] = set()
        for dataset, config, seed, path in nested_runs(budget):
            name = FOLDER_SEPARATOR.join((dataset, config, f"seed-{seed}"))
            target = budget / name
            parents.add(path.parent)
            if split_folder(name) != (dataset, config, seed):
                result.kept[str(path)] = f"{dataset!r} or {config!r} is not usable in a flat run folder name"
            elif target.exists():
                result.kept[str(path)] = f"{target} exists already"
            else:
                os.rename(path, target)
                result.moved.append((str(path), str(target)))
        for config_dir in sorted(parents):
            _remove_if_empty(config_dir, result.removed)
        for dataset_dir in sorted({p.parent for p in parents}):
            _remove_if_empty(dataset_dir, result.removed)
    for old, why in result.kept.items():
        log.warning("left %s in place: %s", old, why)
    return result


# ----------------------------------------------------------------------------- report


def collect(budget_dir: Path) -> pd.DataFrame:
    """One row per finished run in ``budget_dir`` (run folders ``DATASET__CONFIG__seed-S`` of a configuration
    of :data:`CONFIGS`): dataset, seed, run, headline metrics, config, recall by depth, epochs, resources
    (``train_seconds``, ``wall_seconds``, ``peak_rss_mb``; NaN without ``resources.json``) and the metrics of
    :func:`decision_metrics`; sorted by dataset, configuration and seed. Run folders of the old nested layout
    are not read (a warning names :func:`migrate_layout`)."""
    nested = nested_runs(budget_dir)
    if nested:
        log.warning("%s: %d run folder(s) of the old nested layout are left out of the report; run "
                    "`python bench/reproduce.py --migrate-layout --work %s`", budget_dir, len(nested),
                    budget_dir.parent)
    found = []
    for path in budget_dir.iterdir():
        parts = split_folder(path.name)
        if parts is None or parts[1] not in CONFIGS or not (path / "summary.json").is_file():
            continue
        found.append((parts, path))
    rows = []
    for (_, config, _), path in sorted(found, key=lambda item: item[0]):
        run = load_run(path)
        res = read_resources(path)
        depths = run.summary["recall_by_depth"]  # macro recall per depth, computed when the run was saved
        rows.append({"dataset": run.summary["dataset"], "seed": run.config.seed, "run": str(path.resolve()),
                     **{k: run.summary[k] for k in SEED_METRICS if k in run.summary},
                     "rare_node_recall": run.rare_node_recall(), "config": config,
                     **{f"depth_{d}": r for d, r in depths.items()},
                     "epochs": run.summary["epochs_completed"],
                     "train_seconds": res.get("train_seconds", run.summary.get("train_seconds")),
                     "wall_seconds": res.get("wall_seconds", np.nan),
                     "peak_rss_mb": res.get("peak_rss_mb", np.nan),
                     **decision_metrics(run)})
    return pd.DataFrame(rows)


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
    published = published_auprc(dataset)
    pub = "not published" if published is None else f"{published.chmcnn:.3f}"
    if published is not None and published.source != CHMCNN_SOURCE:
        pub += f"; {published.source}: {published.value:.3f}"
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


def _reference_config(configs: Sequence[str]) -> str:
    """The configuration compared with the published figure: chmcnn (the published setting), else plain (the
    same network and loss, 2 members), else the first of :data:`CONFIGS` present."""
    for name in (CHMCNN, PLAIN, *CONFIGS):
        if name in configs:
            return name
    raise ValueError("no configuration of CONFIGS among " + ", ".join(configs))


def published_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset of ``df`` (from :func:`collect`): its published AUPRC beside ours.

    Returns
    -------
    pandas.DataFrame
        Sorted by family (:data:`FAMILIES`) and dataset; columns ``dataset``, ``family``, ``config`` (chmcnn
        where the dataset has it, else plain: :func:`_reference_config`), ``seeds``, ``epochs`` (median),
        ``auprc`` (list of the seeds' micro AUPRC), ``published`` and ``source`` (:func:`published_auprc`;
        NaN and "not published" for a dataset C-HMCNN does not report), ``chmcnn`` (C-HMCNN's own figure or
        NaN), ``difference`` (our mean minus C-HMCNN's figure), ``within`` (``|difference| <= 0.01`` for
        chmcnn, None for another configuration or without a figure), ``wall_seconds`` and ``peak_rss_mb``
        (means over the seeds' ``resources.json``, NaN without any).
    """
    rows = []
    for dataset, sub in df.groupby("dataset"):
        config = _reference_config(list(sub["config"].unique()))
        runs = sub[sub["config"] == config]
        published = published_auprc(str(dataset))
        mean = float(runs["auprc_micro"].mean())
        chmcnn = np.nan if published is None else published.chmcnn
        difference = mean - chmcnn
        rows.append({"dataset": dataset, "family": dataset_family(str(dataset)), "config": config,
                     "seeds": len(runs), "epochs": int(runs["epochs"].median()),
                     "auprc": runs["auprc_micro"].tolist(),
                     "published": np.nan if published is None else published.value,
                     "source": "not published" if published is None else published.source, "chmcnn": chmcnn,
                     "difference": difference,
                     "within": bool(abs(difference) <= 0.01) if config == CHMCNN and published else None,
                     "wall_seconds": float(runs["wall_seconds"].mean()),
                     "peak_rss_mb": float(runs["peak_rss_mb"].mean())})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["order"] = table["family"].map(FAMILIES.index)
    return table.sort_values(["order", "dataset"]).drop(columns="order").reset_index(drop=True)


def _published_section(df: pd.DataFrame) -> list[str]:
    table = published_rows(df)
    lines = ["### Every dataset against its published AUPRC", "",
             f"Published: the highest published micro AUPRC ({CHMCNN_SOURCE}, mean of 10 seeds; "
             f"{HMCN_F_SOURCE} where it is higher); Δ and *within 0.01* are against C-HMCNN's own figure. The "
             "configuration is `chmcnn` (the published setting) where the dataset has its runs, else `plain`. "
             "Wall time and peak RSS: means over the seeds' runs (`resources.json`: the run's wall time, and the "
             "peak resident memory of the process that trained it).", "",
             "| dataset | family | config | seeds | epochs | AUPRC (ours) | published | source | Δ C-HMCNN "
             "| within 0.01 | wall s | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.itertuples():
        if np.isnan(row.published):
            published, difference = "n/a", "n/a"
        else:
            published, difference = f"{row.published:.3f}", f"{row.difference:+.4f}"
        source = row.source if row.source != HMCN_F_SOURCE else f"{row.source}; C-HMCNN {row.chmcnn:.3f}"
        within = "—" if row.within is None else ("yes" if row.within else "**no**")
        lines.append(f"| {row.dataset} | {row.family} | {row.config} | {row.seeds} | {row.epochs} "
                     f"| {_pm(pd.Series(row.auprc))} | {published} | {source} | {difference} | {within} "
                     f"| {_num(pd.Series([row.wall_seconds]), 1)} | {_num(pd.Series([row.peak_rss_mb]), 0)} |")
    return lines + [""]


def family_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Wall time and peak memory per dataset family (:data:`FAMILIES`), over every run of ``df``.

    Returns
    -------
    pandas.DataFrame
        One row per family present: ``family``, ``datasets``, ``runs``, ``timed`` (runs with a
        ``resources.json`` wall time), ``wall_minutes`` (sum over the timed runs), ``mean_wall_seconds``,
        ``max_wall_seconds``, ``mean_peak_rss_mb`` and ``max_peak_rss_mb`` (NaN when no run is timed).
    """
    rows = []
    families = df["dataset"].map(dataset_family)
    for family in FAMILIES:
        sub = df[families == family]
        if sub.empty:
            continue
        wall = sub["wall_seconds"].dropna()
        rows.append({"family": family, "datasets": sub["dataset"].nunique(), "runs": len(sub), "timed": len(wall),
                     "wall_minutes": wall.sum() / 60 if len(wall) else np.nan,
                     "mean_wall_seconds": wall.mean(), "max_wall_seconds": wall.max(),
                     "mean_peak_rss_mb": sub["peak_rss_mb"].mean(), "max_peak_rss_mb": sub["peak_rss_mb"].max()})
    return pd.DataFrame(rows)


def _family_section(df: pd.DataFrame) -> list[str]:
    table = family_rows(df)
    lines = ["### Wall time per dataset family", "",
             "Every run of the budget, from its `resources.json` (the run's wall time on one torch thread, and "
             "the peak resident memory of the process that trained it). The total is the sum over runs, not the "
             "wall time of the sweeps, which the budget's invocations record.", "",
             "| family | datasets | runs | wall min (sum) | wall s per run (mean / max) | peak RSS MB (mean / max) |",
             "|---|---|---|---|---|---|"]
    for row in table.itertuples():
        untimed = f" ({row.runs - row.timed} untimed)" if row.timed < row.runs else ""
        wall_sum = "n/a" if np.isnan(row.wall_minutes) else f"{row.wall_minutes:.1f}"
        lines.append(f"| {row.family} | {row.datasets} | {row.runs}{untimed} | {wall_sum} "
                     f"| {_num(pd.Series([row.mean_wall_seconds]), 1)} / {_num(pd.Series([row.max_wall_seconds]), 1)} "
                     f"| {_num(pd.Series([row.mean_peak_rss_mb]), 0)} / {_num(pd.Series([row.max_peak_rss_mb]), 0)} |")
    return lines + [""]


def common_datasets(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` (from :func:`collect`) whose dataset has runs of every configuration of ``df``, so that
    pooled means over datasets compare the configurations on the same datasets (a budget may train only the
    best configuration on its larger datasets)."""
    configs = set(df["config"])
    complete = [d for d, sub in df.groupby("dataset") if set(sub["config"]) == configs]
    return df[df["dataset"].isin(complete)]


def best_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The project's best configuration, plain under the default per-node rule, on every dataset of ``df``.

    Parameters
    ----------
    df : pandas.DataFrame
        From :func:`collect`, of a budget trained with ``fit_on="train"`` (held-out predictions).

    Returns
    -------
    pandas.DataFrame
        One row per dataset with plain runs, sorted by family and dataset: ``dataset``, ``family``, ``seeds``,
        seed means of ``auprc_micro`` and ``macro_auprc`` (threshold-free), and for fixed 0.5 (``@fixed``),
        the global rule (``@global``) and the default per-node rule (``@per-node``) the means of ``macro_f1``,
        ``rare_node_recall`` and ``micro_f1``; ``coherence_violations`` (sum over the seeds under the per-node
        rule). Empty without held-out predictions or plain runs.
    """
    if not _has_decisions(df) or PLAIN not in set(df["config"]):
        return pd.DataFrame()
    rows = []
    for dataset, sub in df[df["config"] == PLAIN].groupby("dataset"):
        row: dict[str, Any] = {"dataset": dataset, "family": dataset_family(str(dataset)), "seeds": len(sub),
                               "auprc_micro": sub["auprc_micro"].mean(), "macro_auprc": sub["macro_auprc"].mean()}
        for key in ("fixed", "global", DEFAULT_RULE):
            for metric in ("macro_f1", "rare_node_recall", "micro_f1"):
                row[f"{metric}@{key}"] = sub[f"{metric}@{key}"].mean()
        row["coherence_violations"] = int(sub[f"coherence_violations@{DEFAULT_RULE}"].sum())
        rows.append(row)
    table = pd.DataFrame(rows)
    table["order"] = table["family"].map(FAMILIES.index)
    return table.sort_values(["order", "dataset"]).drop(columns="order").reset_index(drop=True)


def _best_section(df: pd.DataFrame) -> list[str]:
    table = best_rows(df)
    if table.empty:
        return []
    label = DECISIONS[DEFAULT_RULE][0]
    lines = [f"### The project's best configuration on every dataset: `{PLAIN}` under the {label} rule", "",
             "The decision-layer findings above name it: the plain 2-member ensemble (C-HMCNN's recipe, trained on "
             "train) with per-node thresholds fitted on the held-out valid split "
             "(docs/method.md, *Decision rules*). AUPRC is threshold-free; the F1 and recall columns compare "
             "fixed 0.5 with the per-node rule; micro F1 ratio: per-node over the global rule (the best single "
             "threshold). Means over the seeds.", "",
             "| dataset | family | seeds | AUPRC | macro AUPRC | macro F1 0.5 → per-node | × | rare-node R 0.5 → "
             "per-node | micro F1 per-node / global | coherence violations |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        lines.append(
            f"| {row['dataset']} | {row['family']} | {row['seeds']} | {row['auprc_micro']:.4f} "
            f"| {row['macro_auprc']:.4f} | {row['macro_f1@fixed']:.4f} → {row[f'macro_f1@{DEFAULT_RULE}']:.4f} "
            f"| {_safe_ratio(row[f'macro_f1@{DEFAULT_RULE}'], row['macro_f1@fixed'])} "
            f"| {row['rare_node_recall@fixed']:.3f} → {row[f'rare_node_recall@{DEFAULT_RULE}']:.3f} "
            f"| {_safe_ratio(row[f'micro_f1@{DEFAULT_RULE}'], row['micro_f1@global'], 'global')} "
            f"| {row['coherence_violations']} |")
    lines += ["", "| family | datasets | macro F1 × (mean of the datasets' ratios) | rare-node R per-node (mean) "
                  "| datasets with rare-node R > 0 |", "|---|---|---|---|---|"]
    for family, sub in table.groupby("family", sort=False):
        ratios = sub[f"macro_f1@{DEFAULT_RULE}"] / sub["macro_f1@fixed"].where(sub["macro_f1@fixed"] > 0)
        rare = sub[f"rare_node_recall@{DEFAULT_RULE}"]
        lines.append(f"| {family} | {len(sub)} | {_num(ratios.dropna(), 2)}x | {rare.mean():.3f} "
                     f"| {int((rare > 0).sum())} of {len(sub)} |")
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
        if "scheduler" in inv:  # trained on the sweep engine
            failed = f" ({inv['runs_failed']} failed)" if inv.get("runs_failed") else ""
            engine = (f"{inv['jobs']} Dask worker(s) of a LocalCluster" if inv["scheduler"] == "LocalCluster"
                      else f"{inv['jobs']} Dask worker(s) of the scheduler at {inv['scheduler']}")
            lines.append(f"  - {inv['date']}: {inv['runs_trained']} runs{failed} in {inv['wall_minutes']:.1f} min "
                         f"wall with {engine} on {inv['machine']}: `{inv['command']}`")
        else:  # recorded by the process pool this script had before the sweep engine
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
             "C-HMCNN's README (docs/method.md, *Metrics*), or HMCN-F's (Wehrmann et al. 2018) where it is "
             "higher.", "",
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
        common = common_datasets(df)
        lines += _published_section(df)
        lines += _family_section(df)
        lines += _best_section(df)
        lines += _done_when_section(common)
        lines += _decision_section(common)
        lines += _comparison_section(common)
        lines += _ensemble_cost_section(common)
        lines += ["### Per dataset", ""]
        for dataset in sorted(df["dataset"].unique()):
            lines += _dataset_section(df, dataset)
    return "\n".join(lines).rstrip() + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+",
                   help="default: every *_FUN dataset in the data dir (and *_GO with --go, the others with --others)")
    p.add_argument("--go", action="store_true", help="also the GO datasets")
    p.add_argument("--others", action="store_true",
                   help="also the datasets that are neither FUN nor GO (Diatoms, Enron_corr, ImCLEF07A, ImCLEF07D)")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS),
                   help="default: all but chmcnn (with --quick also without " + " and ".join(INDEXING_STUDY) + ")")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, default=None, help="default: the dataset's C-HMCNN epochs under --profile")
    p.add_argument("--profile", choices=["paper", "quick"], default="paper")
    p.add_argument("--quick", action="store_true",
                   help=f"the 30-minute budget: --profile quick on {', '.join(QUICK_DATASETS)}")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes of the embedded Dask LocalCluster, one torch thread each (default: one "
                        "per core); not with --scheduler")
    p.add_argument("--scheduler", default=None,
                   help="tcp://HOST:PORT of a running Dask scheduler to train on (default: $HMLC_DASK_SCHEDULER, "
                        "else a LocalCluster); its workers need this checkout, the data and --work at the same path")
    p.add_argument("--work", default=str(ROOT / "runs" / "reproduce"), help="run folders (default runs/reproduce)")
    p.add_argument("--report", default=str(ROOT / "docs" / "reproduction.md"))
    p.add_argument("--report-only", action="store_true", help="rebuild the report from the run folders")
    p.add_argument("--migrate-layout", action="store_true",
                   help="rename the run folders of every budget in --work from the old nested layout "
                        "BUDGET/DATASET/CONFIG/seed-S to the flat BUDGET/DATASET__CONFIG__seed-S, remove the "
                        "emptied folders, and stop (idempotent; writes no report)")
    p.add_argument("--fit-on", choices=list(FIT_ON_SUFFIX), default="train",
                   help="train: keep the valid split aside to tune the global and per-node decision rules (default); "
                        "train+valid: C-HMCNN's protocol, reported at fixed 0.5 only (separate budget folders)")
    p.add_argument("--data-dir", default=None, help="default: $HMLC_DATA_DIR")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    work = Path(args.work)
    if args.migrate_layout:
        done = migrate_layout(work)
        log.info("%s: %d run folder(s) renamed to the flat layout, %d left in place, %d emptied folder(s) removed",
                 work, len(done.moved), len(done.kept), len(done.removed))
        return 1 if done.kept else 0
    if not args.report_only:
        from hmlc_core.sweeps.engine import dask_client, scheduler_address

        scheduler = scheduler_address(args.scheduler)
        if scheduler is not None and args.jobs is not None:
            parser.error("--jobs sets the size of the embedded LocalCluster; with --scheduler (or "
                         "$HMLC_DASK_SCHEDULER) the cluster's own workers train")
        if args.jobs is not None and args.jobs < 1:
            parser.error(f"--jobs must be at least 1, got {args.jobs}")
        profile = "quick" if args.quick else args.profile
        if args.datasets:
            datasets = args.datasets
        elif args.quick:
            datasets = list(QUICK_DATASETS)
        else:
            wanted = {"FUN"} | ({"GO"} if args.go else set()) | ({"others"} if args.others else set())
            found = list_datasets(resolve_data_dir(args.data_dir))
            datasets = [d for d in found if dataset_family(d) in wanted]
        left_out = (CHMCNN, *INDEXING_STUDY) if args.quick else (CHMCNN,)
        configs = args.configs or [c for c in CONFIGS if c not in left_out]
        try:
            cells = budget_cells(datasets, configs, range(args.seeds), profile, args.epochs, args.data_dir,
                                 args.fit_on)
        except ValueError as exc:
            parser.error(str(exc))
        budget_dir = work / budget_name(profile, args.epochs, args.fit_on)
        command = "python bench/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with dask_client(scheduler, args.jobs) as client:
            result = train_budget(cells, budget_dir, client, command, scheduler)
        log.info("%s: %d run(s) trained, %d already there, %d failed, in %.1f min", budget_dir.name,
                 len(result.trained), len(result.skipped), len(result.failed), result.wall_seconds / 60)
        for label, error in result.failed.items():
            log.error("failed: %s: %s", label, error)
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    findings = FINDINGS.read_text() if FINDINGS.exists() else None
    _write_text_atomic(report, render_report(work, findings))
    log.info("wrote %s", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
