"""The ``python -m hmlc_core sweep`` command: its options, help text and what it runs.

Dask is imported only when a sweep runs (not for ``--help`` or ``--dry-run``).
"""

from __future__ import annotations

import argparse
import logging
import textwrap
from contextlib import ExitStack
from pathlib import Path

from hmlc_core.sweeps.configs import CONFIGS
from hmlc_core.sweeps.grid import FOLDER_SEPARATOR, build_spec
from hmlc_core.sweeps.store import plan

__all__ = ["SWEEP_HELP", "add_sweep_options", "run_sweep_command"]

log = logging.getLogger(__name__)

SWEEP_HELP = "train a grid of datasets x configurations x seeds as Dask tasks (resumable)"
"""One-line help of the command in ``python -m hmlc_core --help``."""

_DESCRIPTION = [
    "Train every cell of a grid, datasets x configurations x seeds, one Dask task per cell, each saved as a "
    f"run folder OUT/DATASET{FOLDER_SEPARATOR}CONFIG{FOLDER_SEPARATOR}seed-S that the dashboard opens.",
    "The grid: --datasets, --configs (named configurations, listed below), --option FIELD=V1,V2 (option "
    "lists: every combination is applied to each configuration, or alone) and --seeds; or the same in a TOML "
    "or JSON file given with --spec (keys datasets, configs, define, options, seeds, profile, epochs, fit_on, "
    "data_dir; see hmlc_core/sweeps/grid.py), where flags given on the command line replace the file's "
    "values. --profile, --epochs and --fit-on set the training budget of every cell.",
    "Where it runs: by default on an embedded Dask LocalCluster on 127.0.0.1 with --workers single-threaded "
    "worker processes (default: one per core). With --scheduler tcp://HOST:PORT (or $HMLC_DASK_SCHEDULER) the "
    "tasks go to an existing cluster started with 'dask scheduler' and 'dask worker ADDRESS --nthreads 1' "
    "(or dask-jobqueue's SLURMCluster); its workers need the same checkout, the data (HMLC_DATA_DIR) and the "
    "--out folder at the same path (README, 'Running on a cluster').",
    "Resume: run the same command again. Cells whose run folder is complete are skipped before submission; "
    "folders are written atomically, so a killed sweep or worker never leaves a half-written run. A task "
    "lost with its worker is rerun by the Dask scheduler, and one that raised is resubmitted --retries times; "
    "a cell that still fails is reported and the others go on (exit code 1).",
    "Only this command writes the run registry OUT/registry.sqlite, registering each run as it lands, so a "
    "dashboard started with HMLC_RUNS_DIR=OUT lists the sweep's runs as they arrive. On a terminal a "
    "progress bar counts the runs.",
]
_EPILOG = [
    "named configurations:\n" + "\n".join(f"  {name:<28}{desc}" for name, (desc, _) in CONFIGS.items()),
    "examples:\n"
    "  python -m hmlc_core sweep --datasets cellcycle_FUN derisi_FUN --configs chmcnn plain \\\n"
    "      --seeds 0 1 2 --fit-on train --out runs/sweep-fun\n"
    "  python -m hmlc_core sweep --spec sweep.toml --out runs/sweep --dry-run\n"
    "  python -m hmlc_core sweep --spec sweep.toml --out /shared/runs/sweep --scheduler tcp://10.0.0.5:8786",
]


def _text(paragraphs: list[str]) -> str:
    return "\n\n".join(p if "\n" in p else textwrap.fill(p, 79, break_on_hyphens=False) for p in paragraphs)


def add_sweep_options(p: argparse.ArgumentParser) -> None:
    """Add the ``sweep`` options, description and epilog to ``p`` (a subparser of ``python -m hmlc_core``)."""
    p.description, p.epilog = _text(_DESCRIPTION), _text(_EPILOG)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    grid = p.add_argument_group("the grid (each replaces the value of --spec)")
    grid.add_argument("--spec", default=None, metavar="FILE", help="grid spec, a .toml or .json file")
    grid.add_argument("--datasets", nargs="+", metavar="NAME", help="dataset names (see 'datasets')")
    grid.add_argument("--configs", nargs="+", metavar="NAME",
                      help="named configurations (listed below) or names of the spec's 'define' table")
    grid.add_argument("--option", action="append", metavar="FIELD=V1,V2",
                      help="an option list over a TrainConfig field, e.g. --option decision=fixed,per-node "
                           "(repeatable; values are read as JSON where they can be)")
    grid.add_argument("--seeds", nargs="+", type=int, metavar="S", help="seeds, e.g. --seeds 0 1 2 (default 0)")
    grid.add_argument("--profile", choices=("paper", "quick"), default=None,
                      help="'paper': C-HMCNN's recipe; 'quick': batch 64, 20x learning rate, 40%% of the epochs "
                           "(default paper)")
    grid.add_argument("--epochs", type=int, default=None, help="epochs of every cell (default: the dataset's)")
    grid.add_argument("--fit-on", choices=("train+valid", "train"), default=None,
                      help="'train' keeps the valid split aside for the tuned decision rules (default: "
                           "TrainConfig's, train+valid)")
    grid.add_argument("--data-dir", default=None,
                      help="data folder as the workers see it (default: each worker's $HMLC_DATA_DIR)")
    run = p.add_argument_group("where and how it runs")
    run.add_argument("--out", required=True, help="the sweep's output folder (shared by all workers)")
    run.add_argument("--workers", type=int, default=None, metavar="N",
                     help="embedded LocalCluster: N worker processes of one thread (default: one per core)")
    run.add_argument("--scheduler", default=None, metavar="ADDR",
                     help="tcp://HOST:PORT of a running 'dask scheduler' (default: $HMLC_DASK_SCHEDULER, else "
                          "the embedded LocalCluster)")
    run.add_argument("--retries", type=int, default=2, help="resubmissions of a task that raised (default 2)")
    run.add_argument("--dry-run", action="store_true",
                     help="list the cells (done, todo or conflict) and exit without training")


def run_sweep_command(args: argparse.Namespace) -> int:
    """Run ``sweep`` with the parsed ``args``; returns the exit code (0, 1 when a cell failed, 2 on a conflict).

    Raises
    ------
    ValueError
        From :func:`hmlc_core.sweeps.grid.build_spec` or :func:`hmlc_core.sweeps.engine.run_sweep`
        (the CLI prints it and exits 2).
    """
    spec = build_spec(args.spec, datasets=args.datasets, configs=args.configs, options=args.option,
                      seeds=args.seeds, profile=args.profile, epochs=args.epochs, fit_on=args.fit_on,
                      data_dir=args.data_dir)
    cells = spec.cells()
    out = Path(args.out)
    if args.dry_run:
        state = plan(cells, out)
        done = {c.folder for c in state.done}
        for cell in cells:
            status = "done" if cell.folder in done else ("conflict" if cell.folder in state.conflicts else "todo")
            print(f"{status:<9}{cell.cell_id}  {cell.folder}")
        for folder, why in state.conflicts.items():
            print(f"conflict: {folder}: {why}")
        print(f"{len(cells)} cells: {len(state.done)} done, {len(state.todo)} to train, "
              f"{len(state.conflicts)} conflicting")
        return 2 if state.conflicts else 0
    from hmlc_core.sweeps.engine import dask_client, run_sweep

    if not args.verbose:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    with ExitStack() as stack:
        try:
            client = stack.enter_context(dask_client(args.scheduler, args.workers))
        except OSError as exc:
            raise ValueError(f"cannot start or reach the Dask cluster: {exc}") from exc
        report = run_sweep(cells, out, client, retries=args.retries)
    log.info("sweep finished: %d trained, %d already done, %d failed, %d registered, %.1f s wall",
             len(report.trained), len(report.skipped), len(report.failed), report.registered, report.wall_seconds)
    for label, error in report.failed.items():
        log.error("failed: %s: %s", label, error)
    return 1 if report.failed else 0
