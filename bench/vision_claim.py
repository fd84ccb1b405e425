"""The paper's vision claim, measured on the generated ``shapes`` images (issue 16, item 5).

Xu et al. write that the weighted loss "aids convolutional networks on challenging tasks, as in situations
with suboptimal encoders or limited data". This script trains, on the generated teaching dataset
(:func:`hmlc_core.images.teaching.make_shapes`, seed 0: 2,000 train, 500 valid and 1,000 test images), the
three configurations of :data:`CONFIG_NAMES` (named as in ``bench/reproduce.py`` and
:data:`hmlc_core.sweeps.configs.CONFIGS`: ``plain``, the paper's ``weighting-focal``, and ``logit-adjust``,
the best tail-aware option of the tabular reproduction), each a 2-member ensemble, in the three settings of
:data:`SETTINGS`:

* ``cnn``: the small CNN trained end to end (``encoder="cnn"``);
* ``frozen``: a frozen, randomly initialised encoder (``encoder="frozen"``, no checkpoint): the
  "suboptimal encoder";
* ``limited``: the CNN trained end to end on a seeded 10% subset of the train split (:func:`limited_subset`;
  valid and test whole): "limited data".

Every run keeps the valid split aside (``fit_on="train"``) to fit the global and per-node decision rules,
and is reported on the test split at fixed 0.5 and under those rules (:data:`RULES`) with the metrics and
helpers of ``bench/reproduce.py`` (:func:`reproduce.collect`, :func:`reproduce.paired_test`): micro and
macro AUPRC, macro recall, macro F1 and rare-node recall (evaluated nodes in the bottom quartile of training
frequency; docs/method.md, *Rare nodes*). Paired comparisons against ``plain`` over the seeds give the mean
difference, the number of seeds where the configuration is ahead and the paired effect size ``d_z`` (mean
difference over the standard deviation of the differences); with 3 seeds the two-sided Wilcoxon signed-rank
test cannot go below p = 0.25, so no difference here can be significant by it.

Training: ``cnn`` and ``frozen`` run on the sweep engine (:mod:`hmlc_core.sweeps`, a Dask ``LocalCluster``
with ``--jobs`` single-threaded worker processes, default 1; :func:`reproduce.train_budget`), which opens
datasets by name only; ``limited`` trains on a subset that has no name the engine can open, so its cells
(the same :class:`~hmlc_core.sweeps.grid.Cell` objects, the same run folders and ``resources.json``) are
trained in this process (:func:`train_here`) while the cluster waits. Cells are trained seed by seed, so
an interrupted measurement has whole seeds; every run is an ordinary run folder
``WORK/SETTING/DATASET__CONFIG__seed-S`` that is skipped when the command is repeated (resumable), opens in
the dashboard (``HMLC_RUNS_DIR=WORK/SETTING``), and from which ``--report-only`` rebuilds the tables.

The tables go into the report file (default docs/vision.md) between :data:`BEGIN` and :data:`END`, keeping
the hand-written text around them (a file without the markers gets the tables alone); ``WORK/runs.csv``
holds one row per run with every metric.

Run by hand (it is not part of the test suite)::

    python bench/vision_claim.py                     # 27 runs, 28 CPU-minutes (46 min wall on 2 busy cores)
    python bench/vision_claim.py --report-only       # rebuild the tables from runs/vision
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bench.reproduce import (  # noqa: E402
    _machine,
    _pm,
    _write_text_atomic,
    collect,
    paired_test,
    train_budget,
)
from hmlc_core.catalog import SHAPES, open_dataset  # noqa: E402
from hmlc_core.config import TrainConfig  # noqa: E402
from hmlc_core.data import HMCDataset  # noqa: E402
from hmlc_core.decision import DEFAULT_SHRINKAGE  # noqa: E402
from hmlc_core.images.sets import image_dataset  # noqa: E402
from hmlc_core.registry import Registry, RegistryError  # noqa: E402
from hmlc_core.sweeps.configs import CONFIGS, LOGIT_ADJUST, PAPER, PLAIN  # noqa: E402
from hmlc_core.sweeps.grid import Cell, GridSpec  # noqa: E402
from hmlc_core.sweeps.store import cell_state, read_resources, write_resources  # noqa: E402
from hmlc_core.sweeps.task import peak_rss_mb, reset_peak_rss  # noqa: E402

log = logging.getLogger("vision_claim")

CONFIG_NAMES = (PLAIN, PAPER, LOGIT_ADJUST)
"""The configurations compared (:data:`hmlc_core.sweeps.configs.CONFIGS`): plain MCLoss, the paper's
class-wise weights + bBMA focal factor, and logit adjustment (tau 1); each a 2-member ensemble."""


@dataclass(frozen=True)
class Setting:
    """One experimental setting.

    Attributes
    ----------
    name : str
        Its folder below the work folder.
    title : str
        How the report names it.
    encoder : str
        The :class:`~hmlc_core.config.TrainConfig` ``encoder``.
    limited : bool
        Train on :func:`limited_subset` of the train split (in this process) instead of the whole ``shapes``.
    """

    name: str
    title: str
    encoder: str
    limited: bool = False


SETTINGS: dict[str, Setting] = {
    "cnn": Setting("cnn", "(a) CNN trained end to end", "cnn"),
    "frozen": Setting("frozen", "(b) frozen random encoder (suboptimal encoder)", "frozen"),
    "limited": Setting("limited", "(c) CNN on 10% of the training images (limited data)", "cnn", limited=True),
}
"""Setting name -> :class:`Setting`, in report order."""

EPOCHS = 80
"""Epochs of every run: at batch 32 and the ``shapes`` preset's learning rate 3e-3, the trained CNN's valid
micro AUPRC stays near 0.29 for about 30 epochs and then climbs (0.55 after 60 epochs for weighting-focal);
80 epochs of the 27 runs fit the budget of about 35 CPU-minutes (docs/vision.md, *Budget*)."""
FRACTION = 0.1
"""Share of the train split kept by the ``limited`` setting."""
SUBSET_SEED = 0
"""Seed of the ``limited`` setting's subset: one subset for every training seed, so the seeds vary training only."""

RULES: dict[str, str] = {"fixed": "fixed 0.5", "global": "global",
                         "per-node": f"per-node (m = {DEFAULT_SHRINKAGE:g})"}
"""Decision-rule keys of :data:`reproduce.DECISIONS` reported here -> their label."""
RULE_METRICS = {"macro_recall": "macro R", "macro_f1": "macro F1", "rare_node_recall": "rare-node R"}
"""Thresholded test metrics reported under each rule (columns ``METRIC@RULE`` of :func:`reproduce.collect`)."""
RANKING_METRICS = {"auprc_micro": "micro AUPRC", "macro_auprc": "macro AUPRC"}
"""Threshold-free test metrics (the same under every rule)."""

BEGIN = "<!-- bench/vision_claim.py: generated tables begin -->"
END = "<!-- bench/vision_claim.py: generated tables end -->"
"""Markers of the generated block in the report file."""


# ----------------------------------------------------------------------------- data and cells


def limited_subset(dataset: HMCDataset, fraction: float = FRACTION, seed: int = SUBSET_SEED) -> HMCDataset:
    """An image dataset with a seeded share of ``dataset``'s train images and its valid and test splits whole.

    Parameters
    ----------
    dataset : HMCDataset
        An image dataset whose :attr:`~hmlc_core.images.sets.ImageSet.thumbnails` hold every split.
    fraction : float in (0, 1]
        Share of the train images kept: ``max(1, round(fraction * N_train))`` of them, drawn without
        replacement by ``numpy.random.default_rng(seed)`` and kept in their original order.
    seed : int

    Returns
    -------
    HMCDataset
        Named ``<name>-<percent>pct`` (``shapes-10pct``), rebuilt with
        :func:`hmlc_core.images.sets.image_dataset`, so its pixels are normalised with the subset's own
        per-channel statistics, as any dataset of that many train images would be.

    Raises
    ------
    ValueError
        If ``fraction`` is outside (0, 1], or ``dataset`` is not an image dataset with train thumbnails.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    images = dataset.images
    if images is None or "train" not in images.thumbnails:
        raise ValueError(f"dataset {dataset.name!r} is not an image dataset with train thumbnails")
    n_train = dataset.train.n_samples
    keep = max(1, int(round(fraction * n_train)))
    rows = np.sort(np.random.default_rng(seed).choice(n_train, size=keep, replace=False))
    splits = {"train": dataset.train, "test": dataset.test}
    if dataset.valid is not None:
        splits["valid"] = dataset.valid
    pixels = {s: images.thumbnails[s] for s in splits}
    labels = {s: split.Y for s, split in splits.items()}
    names = {s: list(images.names[s]) for s in splits}
    pixels["train"], labels["train"] = pixels["train"][rows], labels["train"][rows]
    names["train"] = [names["train"][i] for i in rows]
    name = f"{dataset.name}-{round(100 * fraction):g}pct"
    return image_dataset(name, dataset.hierarchy, pixels, labels, names, images.root, images.skipped)


def _recipe() -> dict[str, Any]:
    """Hidden width, learning rate and batch size of the ``shapes`` preset, for every cell: a subset has
    another name, which :func:`hmlc_core.presets.preset_for` would not give the ``shapes`` recipe."""
    resolved = TrainConfig(dataset=SHAPES).for_dataset(True).resolved()
    return {"hidden": resolved.hidden, "lr": resolved.lr, "batch_size": resolved.batch_size}


def setting_cells(setting: Setting, dataset: str, seeds: Sequence[int], epochs: int) -> list[Cell]:
    """The cells of ``setting`` on ``dataset``: :data:`CONFIG_NAMES` x ``seeds``, seed-major.

    Each cell's overrides are its configuration's (:data:`~hmlc_core.sweeps.configs.CONFIGS`), the
    setting's encoder and the ``shapes`` recipe (:func:`_recipe`); ``fit_on="train"``, ``epochs`` fixed.

    Raises
    ------
    ValueError
        If a cell's TrainConfig is invalid (:meth:`hmlc_core.sweeps.grid.GridSpec.cells`).
    """
    recipe = _recipe()
    configs = tuple((name, {**CONFIGS[name][1], **recipe, "encoder": setting.encoder}) for name in CONFIG_NAMES)
    spec = GridSpec(datasets=(dataset,), configs=configs, seeds=tuple(seeds), epochs=epochs, fit_on="train",
                    source=f"setting {setting.name}")
    return spec.cells()


def _record_invocation(out: Path, trained: int, failed: int, seconds: float, command: str) -> None:
    """Append this process's training to ``out/invocations.json``, in :func:`reproduce.train_budget`'s format."""
    path = out / "invocations.json"
    record = json.loads(path.read_text()) if path.exists() else []
    record.append({"date": time.strftime("%Y-%m-%d"), "machine": _machine(), "jobs": 1,
                   "scheduler": "this process", "runs_trained": trained, "runs_failed": failed,
                   "wall_minutes": seconds / 60, "command": command})
    _write_text_atomic(path, json.dumps(record, indent=1))


def train_here(cells: Sequence[Cell], out: str | Path, dataset: HMCDataset, command: str = "") -> list[str]:
    """Train the cells not yet in ``out`` in this process, on ``dataset``, one after the other.

    Each cell is trained and saved as the sweep engine's task does (:func:`hmlc_core.sweeps.task.train_cell`:
    :func:`hmlc_core.jobs.train_and_save` on one torch thread, then ``resources.json``), except that the
    data is ``dataset`` rather than the one its name opens. The run folders are then registered in
    ``out/registry.sqlite`` and the invocation appended to ``out/invocations.json`` (when anything trained).

    Parameters
    ----------
    cells : sequence of Cell
        From :func:`setting_cells`.
    out : path
        The setting's folder (created).
    dataset : HMCDataset
        The data every cell trains on.
    command : str
        The command line, recorded.

    Returns
    -------
    list of str
        The run folders trained (the ones already complete are skipped).

    Raises
    ------
    ValueError
        If a run folder exists with other settings (:func:`hmlc_core.sweeps.store.cell_state`), before
        anything is trained.
    """
    import torch

    from hmlc_core.jobs import train_and_save

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    states = {cell.folder: cell_state(out, cell) for cell in cells}
    conflicts = {folder: why for folder, (state, why) in states.items() if state == "conflict"}
    if conflicts:
        raise ValueError("these run folders do not match the measurement:\n" +
                         "\n".join(f"  {name}: {why}" for name, why in conflicts.items()))
    todo = [cell for cell in cells if states[cell.folder][0] == "todo"]
    trained: list[str] = []
    start = time.perf_counter()
    for i, cell in enumerate(todo, 1):
        torch.set_num_threads(1)
        scope = "task" if reset_peak_rss() else "process"
        t0, cpu0 = time.perf_counter(), time.process_time()
        run = train_and_save(cell.train_config(), out / cell.folder, dataset=dataset)
        resources = {"wall_seconds": time.perf_counter() - t0, "train_seconds": run.summary.get("train_seconds"),
                     "cpu_seconds": time.process_time() - cpu0, "peak_rss_mb": peak_rss_mb(),
                     "peak_rss_scope": scope, "host": "this process", "cell_id": cell.cell_id}
        write_resources(out / cell.folder, resources)
        trained.append(cell.folder)
        log.info("[%d/%d] %s done in %.1f s", i, len(todo), cell.label, resources["wall_seconds"])
    if trained:
        _record_invocation(out, len(trained), 0, time.perf_counter() - start, command)
        try:
            registry = Registry(out)
            try:
                registry.sync()
            finally:
                registry.close()
        except (RegistryError, OSError) as exc:  # the dashboard imports the folders itself when it opens them
            log.warning("cannot register the runs in %s: %s", out, exc)
    return trained


def measure(work: str | Path, seeds: Sequence[int], epochs: int = EPOCHS, settings: Sequence[str] = tuple(SETTINGS),
            jobs: int = 1, command: str = "", in_process: bool = False,
            base: HMCDataset | None = None) -> None:
    """Train every setting's cells not yet in ``work``, seed by seed.

    Parameters
    ----------
    work : path
        The measurement's folder; each setting's runs go to ``work/<setting>``.
    seeds : sequence of int
    epochs : int
    settings : sequence of str
        Keys of :data:`SETTINGS`.
    jobs : int
        Worker processes of the sweep engine's LocalCluster (``cnn`` and ``frozen``).
    command : str
        The command line, recorded in each setting's ``invocations.json``.
    in_process : bool
        Train every setting in this process (:func:`train_here`) on ``base`` instead of the sweep engine.
    base : HMCDataset, optional
        The full dataset: ``limited`` subsets it, and with ``in_process`` the other settings train on it.
        Default: ``shapes`` (:func:`hmlc_core.catalog.open_dataset`), the data the engine's workers open.

    Raises
    ------
    ValueError
        On an unknown setting or a run folder trained with other settings.
    """
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known: {list(SETTINGS)}")
    work = Path(work)
    base = open_dataset(SHAPES) if base is None else base
    subset = limited_subset(base) if any(SETTINGS[s].limited for s in settings) else None
    engine = [s for s in settings if not SETTINGS[s].limited and not in_process]
    with _client(jobs if engine else 0) as client:
        for seed in seeds:
            for name in settings:
                setting = SETTINGS[name]
                data = base if subset is None or not setting.limited else subset
                cells = setting_cells(setting, data.name, [seed], epochs)
                if name in engine:
                    report = train_budget(cells, work / name, client, command, progress=False)
                    for label, error in report.failed.items():
                        log.error("failed: %s: %s", label, error)
                else:
                    train_here(cells, work / name, data, command)


class _NoClient:
    """Stands in for the Dask client when no setting runs on the engine (Dask is not started)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _client(jobs: int) -> Any:
    """The sweep engine's LocalCluster client with ``jobs`` workers, or a stand-in for ``jobs`` = 0."""
    if jobs == 0:
        return _NoClient()
    from hmlc_core.sweeps.engine import dask_client

    logging.getLogger("distributed").setLevel(logging.WARNING)
    return dask_client(None, jobs)


# ----------------------------------------------------------------------------- report


def collect_all(work: str | Path) -> pd.DataFrame:
    """One row per finished run of every setting below ``work`` (:func:`reproduce.collect`), with a
    ``setting`` column; empty when there is none."""
    frames = []
    for name in SETTINGS:
        folder = Path(work) / name
        if folder.is_dir():
            df = collect(folder)
            if not df.empty:
                frames.append(df.assign(setting=name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dataclass(frozen=True)
class Effect:
    """A paired comparison of configuration B against A over the seeds they share.

    Attributes
    ----------
    differences : numpy.ndarray of float64
        B - A per shared seed, in seed order.
    mean : float
        Mean difference.
    ahead : int
        Seeds where B - A > 0.
    d_z : float
        ``mean / std(differences, ddof=1)``, the paired standardised effect size (Cohen's d_z); NaN with
        fewer than 2 seeds, +-inf when every difference is the same non-zero value.
    p_value : float
        Two-sided Wilcoxon signed-rank p (:func:`reproduce.paired_test`); NaN with fewer than 2 seeds.
    """

    differences: np.ndarray
    mean: float
    ahead: int
    d_z: float
    p_value: float


def effect(df: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> Effect:
    """Paired effect of column ``b[1]`` of configuration ``b[0]`` against column ``a[1]`` of ``a[0]`` in
    ``df`` (one setting's rows of :func:`collect_all`), paired on the seed.

    Raises
    ------
    ValueError
        If no seed has both.
    """
    left = df[df["config"] == a[0]].set_index("seed")[a[1]]
    right = df[df["config"] == b[0]].set_index("seed")[b[1]]
    shared = sorted(set(left.dropna().index) & set(right.dropna().index))
    if not shared:
        raise ValueError(f"no seed has both {a} and {b}")
    diff = right.loc[shared].to_numpy(float) - left.loc[shared].to_numpy(float)
    mean = float(diff.mean())
    if len(diff) < 2:
        d_z, p = float("nan"), float("nan")
    else:
        sd = float(diff.std(ddof=1))
        d_z = mean / sd if sd > 0 else (float("nan") if mean == 0 else float(np.sign(mean) * np.inf))
        p = paired_test(df.assign(dataset="-"), a, b).p_value
    return Effect(diff, mean, int((diff > 0).sum()), d_z, p)


def _effect_text(e: Effect) -> str:
    d_z = "n/a" if np.isnan(e.d_z) else ("±inf" if np.isinf(e.d_z) else f"{e.d_z:+.1f}")
    return f"{e.mean:+.4f} ({e.ahead}/{len(e.differences)} ahead, d_z {d_z})"


def _columns() -> list[tuple[str, str]]:
    """(column, label) of every metric reported, threshold-free first."""
    return [*RANKING_METRICS.items(), *((f"{m}@{r}", f"{label} @ {RULES[r]}") for m, label in RULE_METRICS.items()
                                        for r in RULES)]


def _settings_lines(df: pd.DataFrame, work: Path) -> list[str]:
    lines = ["### Runs", "", "| setting | dataset | runs | seeds | epochs | train images | CPU min (sum) "
             "| wall min (sum) | wall s per run (mean) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, setting in SETTINGS.items():
        sub = df[df["setting"] == name]
        if sub.empty:
            continue
        seeds = ", ".join(str(s) for s in sorted(sub["seed"].unique()))
        n_train = ", ".join(sorted({str(_n_train(Path(r))) for r in sub["run"]}))
        cpu = sum(read_resources(r).get("cpu_seconds", np.nan) for r in sub["run"])
        lines.append(f"| {setting.title} | {', '.join(sorted(sub['dataset'].unique()))} | {len(sub)} | {seeds} "
                     f"| {int(sub['epochs'].median())} | {n_train} | {cpu / 60:.1f} "
                     f"| {sub['wall_seconds'].sum() / 60:.1f} | {sub['wall_seconds'].mean():.1f} |")
    lines += ["", "CPU and wall time of each run from its `resources.json` (training, evaluation and saving; "
              "for `cnn` and `frozen` also opening the dataset in the worker). Wall time is longer than CPU "
              "time where other jobs shared the two cores."]
    lines += ["", "Training invocations (`invocations.json` of each setting's folder):", ""]
    for name in SETTINGS:
        path = work / name / "invocations.json"
        for inv in json.loads(path.read_text()) if path.exists() else []:
            lines.append(f"- `{name}`, {inv['date']}: {inv['runs_trained']} run(s) in {inv['wall_minutes']:.1f} min "
                         f"wall, {inv['jobs']} worker(s) ({inv['scheduler']}) on {inv['machine']}")
    return lines + [""]


def _n_train(run_dir: Path) -> Any:
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary.get("n_train", "?")


def render_tables(df: pd.DataFrame, work: Path) -> str:
    """The generated markdown of the report: runs, one table per setting, the paired effects."""
    if df.empty:
        return "No finished run yet.\n"
    lines = _settings_lines(df, work)
    for name, setting in SETTINGS.items():
        sub = df[df["setting"] == name]
        if sub.empty:
            continue
        lines += [f"### {setting.title}", "", "Test metrics, mean ± std over seeds:", "",
                  "| metric | " + " | ".join(f"`{c}`" for c in CONFIG_NAMES if c in set(sub["config"])) + " |",
                  "|---|" + "---|" * sub["config"].nunique()]
        for column, label in _columns():
            cells = [_pm(sub.loc[sub["config"] == c, column], 3) for c in CONFIG_NAMES if c in set(sub["config"])]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Paired effects against `plain`", "",
              "Each cell: mean difference configuration − plain over the seeds (seeds where the configuration "
              "is ahead / seeds, and the paired effect size d_z = mean / std of the differences). With 3 seeds the "
              "two-sided Wilcoxon signed-rank test cannot reach p < 0.25, so these are effect sizes, not tests.",
              ""]
    others = [c for c in CONFIG_NAMES if c != PLAIN]
    head = [f"{SETTINGS[s].name}: `{c}`" for s in SETTINGS if s in set(df["setting"]) for c in others]
    lines += ["| metric | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for column, label in _columns():
        cells = []
        for s in SETTINGS:
            sub = df[df["setting"] == s]
            if sub.empty:
                continue
            for c in others:
                try:
                    cells.append(_effect_text(effect(sub, (PLAIN, column), (c, column))))
                except ValueError:
                    cells.append("n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "### The paper's method at 0.5 against plain under the tuned per-node rule", "",
              "Each cell: mean difference `plain` under per-node − `weighting-focal` at fixed 0.5 (seeds where "
              "tuned plain is ahead / seeds, d_z).", "",
              "| metric | " + " | ".join(SETTINGS[s].name for s in SETTINGS if s in set(df["setting"])) + " |",
              "|---|" + "---|" * df["setting"].nunique()]
    for metric, label in RULE_METRICS.items():
        cells = []
        for s in SETTINGS:
            sub = df[df["setting"] == s]
            if sub.empty:
                continue
            try:
                cells.append(_effect_text(effect(sub, (PAPER, f"{metric}@fixed"), (PLAIN, f"{metric}@per-node"))))
            except ValueError:
                cells.append("n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: str | Path, tables: str) -> None:
    """Put ``tables`` between :data:`BEGIN` and :data:`END` in ``report``, keeping the text around them; a
    file without both markers (or no file) is written with the marked tables alone.

    Raises
    ------
    ValueError
        If the markers are out of order.
    """
    path = Path(report)
    block = f"{BEGIN}\n\n{tables.rstrip()}\n\n{END}"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        middle, _, tail = rest.partition(END)
        if END in head or BEGIN in middle:
            raise ValueError(f"{path}: the markers {BEGIN!r} and {END!r} are out of order")
        new = head + block + tail
    else:
        new = block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text_atomic(path, new)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--epochs", type=int, default=EPOCHS, help=f"epochs of every run (default {EPOCHS})")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes of the sweep engine's LocalCluster (default 1)")
    p.add_argument("--in-process", action="store_true", help="train every setting in this process, without Dask")
    p.add_argument("--work", default=str(ROOT / "runs" / "vision"), help="run folders (default runs/vision)")
    p.add_argument("--report", default=str(ROOT / "docs" / "vision.md"),
                   help="file whose generated block is replaced (default docs/vision.md)")
    p.add_argument("--report-only", action="store_true", help="rebuild the tables from the run folders")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.seeds < 1 or args.epochs < 1 or args.jobs < 1:
        parser.error("--seeds, --epochs and --jobs must be at least 1")
    work = Path(args.work)
    if not args.report_only:
        command = "python bench/vision_claim.py " + " ".join(argv if argv is not None else sys.argv[1:])
        measure(work, range(args.seeds), args.epochs, args.settings, args.jobs, command.strip(), args.in_process)
    df = collect_all(work)
    if not df.empty:
        work.mkdir(parents=True, exist_ok=True)
        df.to_csv(work / "runs.csv", index=False)
    write_report(args.report, render_tables(df, work))
    log.info("wrote %s (%d runs)", args.report, len(df))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
