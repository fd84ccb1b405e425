"""Run a sweep's cells as Dask tasks and register the runs as they land.

Every cell still to train (:func:`hmlc_core.sweeps.store.plan`) becomes one task,
:func:`hmlc_core.sweeps.task.train_cell`, submitted to a :class:`distributed.Client`:

* by default an embedded :class:`distributed.LocalCluster` on 127.0.0.1 with one single-threaded worker
  process per core (:func:`dask_client`);
* or an existing cluster: ``scheduler="tcp://HOST:PORT"`` or ``$HMLC_DASK_SCHEDULER``, started with
  ``dask scheduler`` and ``dask worker`` (or dask-jobqueue's ``SLURMCluster``), whose workers see the same
  checkout, data (``HMLC_DATA_DIR``) and output folder, at the same path.

Fault tolerance is Dask's. A task whose worker dies (killed, out of memory, node lost) is rerun on another
worker by the scheduler; once ``distributed.scheduler.allowed-failures`` workers (3 by default) died while
running it, the client gets :class:`distributed.KilledWorker`. A task that raises is resubmitted ``retries``
times. A run folder is never half written (:func:`hmlc_core.runs.save_run` renames a complete temporary
folder into place), and a rerun task finds a folder saved by its lost attempt and returns it.

Only this client writes the SQLite run registry (``OUT/registry.sqlite``, :class:`hmlc_core.registry.Registry`):
it imports each run folder as its task reports (:meth:`Registry.sync`), so a dashboard with
``HMLC_RUNS_DIR=OUT`` lists the sweep's runs as they land. Workers only write run folders.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from distributed import Client, LocalCluster, as_completed

from hmlc_core.registry import Registry, RegistryError
from hmlc_core.sweeps.grid import Cell
from hmlc_core.sweeps.store import plan
from hmlc_core.sweeps.task import train_cell

__all__ = ["SCHEDULER_ENV", "DEFAULT_RETRIES", "SweepReport", "scheduler_address", "dask_client", "run_sweep"]

log = logging.getLogger(__name__)

SCHEDULER_ENV = "HMLC_DASK_SCHEDULER"
"""Environment variable with the address of an existing Dask scheduler (``tcp://HOST:PORT``)."""

DEFAULT_RETRIES = 2
"""How many times a task that raised is resubmitted (Dask ``retries``)."""


@dataclass
class SweepReport:
    """What a sweep did.

    Attributes
    ----------
    trained : list of str
        Run folders trained by this sweep, in the order they landed.
    skipped : list of str
        Run folders already complete before the sweep started (not submitted).
    failed : dict of str to str
        Cell label -> the error of a task that failed after its retries.
    registered : int
        Registry rows added by this sweep (run folders imported).
    wall_seconds : float
        From the first submission to the last result.
    """

    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    registered: int = 0
    wall_seconds: float = 0.0


def scheduler_address(scheduler: str | None = None) -> str | None:
    """``scheduler``, else ``$HMLC_DASK_SCHEDULER``, else None (meaning: start a LocalCluster)."""
    address = scheduler or os.environ.get(SCHEDULER_ENV, "").strip()
    return address or None


@contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A Dask client: connected to ``scheduler`` (:func:`scheduler_address`), else to an embedded LocalCluster.

    Parameters
    ----------
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running ``dask scheduler``.
    workers : int, optional
        LocalCluster only: worker processes, one thread each (default: the number of cores).

    Yields
    ------
    distributed.Client
        Closed (and the LocalCluster shut down, its workers ended) on exit.

    Raises
    ------
    ValueError
        If ``workers`` < 1, or ``workers`` is given with a scheduler (the cluster decides its workers).
    OSError
        If the scheduler cannot be reached (Dask's timeout, ``distributed.comm.timeouts.connect``).
    """
    address = scheduler_address(scheduler)
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    with ExitStack() as stack:
        if address is not None:
            if workers is not None:
                raise ValueError("--workers sets the embedded LocalCluster's size; with --scheduler (or "
                                 f"${SCHEDULER_ENV}) start as many 'dask worker' processes as you want")
            log.info("connecting to the Dask scheduler at %s", address)
            client = stack.enter_context(Client(address))
        else:
            n = workers or os.cpu_count() or 1
            log.info("starting a local Dask cluster: %d worker process(es), one thread each", n)
            cluster = stack.enter_context(LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        yield client


def _progress_bar(total: int, show: bool | None):  # noqa: ANN202 - tqdm or None
    if show is False or (show is None and not sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="run", file=sys.stderr)


def _register(registry: Registry | None) -> int:
    """Import new run folders into ``registry``; a registry error is logged (the next call imports them)."""
    if registry is None:
        return 0
    try:
        return len(registry.sync())
    except (RegistryError, OSError) as exc:
        log.warning("cannot register the runs yet (retried after the next run): %s", exc)
        return 0


def run_sweep(cells: Sequence[Cell], out: str | Path, client: Client, *, retries: int = DEFAULT_RETRIES,
              register: bool = True, progress: bool | None = None,
              on_run: Callable[[str], None] | None = None) -> SweepReport:
    """Train every cell of ``cells`` not yet in ``out``, one Dask task per cell, and register each run.

    Parameters
    ----------
    cells : sequence of Cell
        From :meth:`hmlc_core.sweeps.grid.GridSpec.cells`; submitted in this order (earlier first).
    out : path
        The sweep's output folder, shared by all workers (created). Passed to the workers as an absolute path,
        which must name the same folder on every machine.
    client : distributed.Client
        From :func:`dask_client`.
    retries : int, default :data:`DEFAULT_RETRIES`
        Resubmissions of a task that raised.
    register : bool, default True
        Import the run folders into ``out/registry.sqlite`` (:meth:`Registry.sync`) before submitting and as
        each task reports.
    progress : bool, optional
        A tqdm bar on stderr; default: when stderr is a terminal. Without it, one log line per run.
    on_run : callable, optional
        Called in this process with each trained run folder's name, once it is registered.

    Returns
    -------
    SweepReport

    Raises
    ------
    ValueError
        If a run folder in ``out`` exists with other settings, or is incomplete (listing them), before
        anything is submitted; if ``retries`` < 0.
    """
    if retries < 0:
        raise ValueError(f"--retries must be >= 0, got {retries}")
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    todo = plan(cells, out)
    if todo.conflicts:
        raise ValueError("these run folders do not match the sweep:\n" +
                         "\n".join(f"  {name}: {why}" for name, why in todo.conflicts.items()))
    report = SweepReport(skipped=[c.folder for c in todo.done])
    registry = Registry(out) if register else None
    report.registered += _register(registry)
    log.info("%d cell(s): %d done already, %d to train in %s", len(cells), len(todo.done), len(todo.todo), out)
    if not todo.todo:
        return report
    start = time.perf_counter()
    futures = {client.submit(train_cell, cell, str(out), key=f"hmlc-sweep-{cell.cell_id}", retries=retries,
                             priority=len(todo.todo) - i): cell
               for i, cell in enumerate(todo.todo)}
    bar = _progress_bar(len(futures), progress)
    with ExitStack() as stack:
        if bar is not None:
            from tqdm.contrib.logging import logging_redirect_tqdm

            stack.enter_context(logging_redirect_tqdm())
            stack.callback(bar.close)
        for i, future in enumerate(as_completed(futures), 1):
            cell = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # a failed cell is reported and the others go on
                report.failed[cell.label] = f"{type(exc).__name__}: {exc}"
                log.error("[%d/%d] %s failed: %s", i, len(futures), cell.label, report.failed[cell.label])
            else:
                report.trained.append(result["folder"])
                seconds = result["resources"].get("wall_seconds")
                if bar is None:
                    log.info("[%d/%d] %s done%s", i, len(futures), cell.label,
                             f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else "")
            report.registered += _register(registry)
            if on_run is not None and cell.folder in report.trained:
                on_run(cell.folder)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{len(report.failed)} failed" if report.failed else "")
            future.release()
    report.wall_seconds = time.perf_counter() - start
    if registry is not None:
        registry.close()
    return report
