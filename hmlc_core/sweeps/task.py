"""The work of one sweep task, run on a Dask worker: train one cell and save its run folder.

:func:`train_cell` is idempotent: when the cell's run folder is already complete (a task rerun after its
worker died between saving and reporting) it returns that folder without training. It trains with
:func:`hmlc_core.jobs.train_and_save` (the CLI's and the dashboard's path) on one torch thread, saves the run
atomically (:func:`hmlc_core.runs.save_run`) and then records ``resources.json``. It never opens the run
registry: only the sweep's client does (:mod:`hmlc_core.sweeps.engine`).

Long cells survive their worker: training writes a checkpoint beside the run folder,
``out/.<folder>.checkpoint.pt`` (:func:`checkpoint_path`, :mod:`hmlc_core.checkpoint`, at most every 5
minutes), and a task that finds one (a retry after the worker died, or the same sweep started again after
the client, the cluster or the session was stopped) goes on from its last finished epoch. The file is
removed once the run is saved. Shortlist training writes none.

Peak memory is per task although a Dask worker process runs many tasks: on Linux the process's peak
resident size (``VmHWM``) is reset before training by writing ``5`` to ``/proc/self/clear_refs`` and read
from ``/proc/self/status`` after saving (proc(5)), so it is the worker process's peak while the task ran
(Python, torch and Dask included, about 0.6 GB on the synthetic data); where the reset is unavailable the
process's lifetime peak (``ru_maxrss``) is recorded, and ``peak_rss_scope`` says which.
"""

from __future__ import annotations

import logging
import os
import resource
import socket
import time
from pathlib import Path
from typing import Any

from hmlc_core.checkpoint import checkpoint_beside
from hmlc_core.sweeps.grid import Cell
from hmlc_core.sweeps.store import cell_state, read_resources, write_resources

__all__ = ["train_cell", "checkpoint_path", "reset_peak_rss", "peak_rss_mb"]

log = logging.getLogger(__name__)


def reset_peak_rss() -> bool:
    """Reset this process's peak resident size (Linux ``/proc/self/clear_refs``); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """This process's peak resident size in MiB: ``VmHWM`` of ``/proc/self/status``, else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def checkpoint_path(out: str | Path, cell: Cell) -> Path:
    """Where the training checkpoint of ``cell`` lives while it trains: ``out/.<cell.folder>.checkpoint.pt``
    (:func:`hmlc_core.checkpoint.checkpoint_beside` of its run folder)."""
    return checkpoint_beside(Path(out) / cell.folder)


def train_cell(cell: Cell, out: str) -> dict[str, Any]:
    """Train ``cell`` into ``out/<cell.folder>`` unless that run folder is already complete.

    Parameters
    ----------
    cell : Cell
    out : str
        The sweep's output folder (shared by all workers).

    Returns
    -------
    dict
        ``folder`` (str, the run folder's name), ``trained`` (bool, False when it was already there) and
        ``resources`` (the contents of ``resources.json``: ``wall_seconds``, ``train_seconds``,
        ``cpu_seconds``, ``peak_rss_mb``, ``peak_rss_scope`` "task" or "process", ``host``, ``pid``,
        ``resumed_epochs``). A cell resumed from a checkpoint reports the earlier tasks' training seconds in
        ``wall_seconds`` and ``train_seconds`` too (``cpu_seconds`` and the peak are this task's).

    Raises
    ------
    ValueError
        If the run folder exists with other settings (:func:`hmlc_core.sweeps.store.cell_state`).
    Exception
        Whatever :func:`hmlc_core.jobs.train_and_save` raises (DatasetNotFoundError, LimitError,
        TrainingDiverged, ...); Dask reports it to the client, which logs it and goes on with the others.
    """
    import torch

    from hmlc_core.jobs import train_and_save

    path = Path(out) / cell.folder
    state, reason = cell_state(out, cell)
    if state == "done":
        log.info("%s: already saved at %s", cell.label, path)
        return {"folder": cell.folder, "trained": False, "resources": read_resources(path)}
    if state == "conflict":
        raise ValueError(str(reason))
    torch.set_num_threads(1)
    scope = "task" if reset_peak_rss() else "process"
    start, cpu_start = time.perf_counter(), time.process_time()
    config = cell.train_config()
    checkpoint = checkpoint_path(out, cell) if config.shortlist is None else None
    # save_empty defaults to True: a Run is always returned
    run = train_and_save(config, path, checkpoint=checkpoint)
    summary = {} if run is None else run.summary
    earlier = float(summary.get("resumed_seconds") or 0.0)
    resources = {"wall_seconds": time.perf_counter() - start + earlier, "train_seconds": summary.get("train_seconds"),
                 "resumed_epochs": int(summary.get("resumed_epochs") or 0),
                 "cpu_seconds": time.process_time() - cpu_start, "peak_rss_mb": peak_rss_mb(),
                 "peak_rss_scope": scope, "host": socket.gethostname(), "pid": os.getpid(), "cell_id": cell.cell_id}
    write_resources(path, resources)
    log.info("%s: saved %s in %.1f s", cell.label, path, resources["wall_seconds"])
    return {"folder": cell.folder, "trained": True, "resources": resources}
