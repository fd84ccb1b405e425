"""Background training jobs: the queue's dispatcher, the worker process, cancel and reconciliation.

A job is a row of the :class:`~hmlc_core.registry.Registry`. :func:`dispatch`
claims queued jobs (atomically, up to the registry's concurrency limit) and
starts one detached worker process per job::

    python -m hmlc_core worker --runs-dir RUNS_DIR RUN_ID

(``start_new_session=True``, output appended to ``RUNS_DIR/.logs/RUN_ID.log``),
so a job survives Streamlit reruns, page switches, browser refreshes and a
restart of the dashboard. The worker (:func:`run_worker`) runs the same
function as the CLI ``train`` command (:func:`train_and_save`), reports every
epoch to the registry, polls for cancellation (a registry read at most every
:data:`CANCEL_POLL_S` seconds, and SIGTERM), saves the run atomically with
:func:`hmlc_core.runs.save_run` into ``RUNS_DIR/RUN_ID``, records the headline
metrics, and ends the row ``finished``, ``cancelled`` or ``failed`` (with the
exception's message). Finally it dispatches the next queued job(s), so the queue
advances with no browser open.

A row left ``running`` by a worker that died (killed, out of memory, machine
restart) is marked ``failed`` by :func:`reconcile`, which runs at every
dispatch. A process is identified by its pid *and* its start time
(:func:`process_token`), so a pid reused by an unrelated process does not
keep a dead job alive.

Cancelled runs: a job cancelled while queued never starts; a running job
stops after its current training step and, if it finished at least one epoch,
its partial model is saved and evaluated like the CLI's Ctrl-C (summary status
``interrupted``) so it can be inspected; with no finished epoch nothing is saved.

Importing this module does not import torch (the dashboard imports it);
:func:`train_and_save` imports the training code when it runs.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from hmlc_core.catalog import GENERATED, open_dataset
from hmlc_core.checkpoint import CHECKPOINT_SECONDS
from hmlc_core.config import TrainConfig
from hmlc_core.data import DatasetNotFoundError, HMCDataset, find_dataset_files
from hmlc_core.limits import (DEFAULT_MAX_CONCURRENT_JOBS, DatasetShape, JobLimits, LimitError, check_job_memory,
                              check_output_dir, estimate_run_size)
from hmlc_core.registry import Registry, RegistryError, RunRecord, headline_metrics
from hmlc_core.runs import Run, load_run, save_run
from hmlc_core.tables import find_table_dataset

if TYPE_CHECKING:
    from hmlc_core.train import Progress

__all__ = [
    "CANCEL_POLL_S", "START_GRACE_S", "train_and_save", "process_token", "process_alive", "reconcile",
    "dispatch", "startup", "cancel", "run_worker", "worker_command", "retrain_config", "has_valid_split",
    "check_launchable", "dataset_shape", "load_dataset_shape", "check_capacity", "submit", "set_concurrency",
]

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.5
"""A worker reads its cancel flag from the registry at most this often (seconds)."""

START_GRACE_S = 120.0
"""A claimed job whose worker has not attached its pid after this many seconds is marked failed."""

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_CHILDREN: list[subprocess.Popen] = []
"""Workers started by this process, polled at each dispatch so that finished ones are reaped (no zombies)."""
_CHILDREN_LOCK = threading.Lock()


# ------------------------------------------------------------ shared with the CLI
def train_and_save(
    config: TrainConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    save_empty: bool = True,
    max_memory_mb: int | None = None,
    dataset: HMCDataset | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> Run | None:
    """Load the dataset, check the output folder, train, save the run directory and load it back.

    The CLI ``train`` and the worker both run this. Before training, ``out``'s parent must be writable
    with room for the run (:func:`hmlc_core.limits.check_output_dir` against
    :func:`hmlc_core.limits.estimate_run_size`), and with ``max_memory_mb`` the job's estimated memory
    must fit (:func:`hmlc_core.limits.check_job_memory`).

    Parameters
    ----------
    config : TrainConfig
    out : path
        Run directory to write (atomically, :func:`hmlc_core.runs.save_run`).
    overwrite : bool
        Replace an existing run directory.
    progress, should_stop : callable, optional
        Passed to :func:`hmlc_core.train.train`.
    save_empty : bool, default True
        With False, a run stopped before its first finished epoch is not saved.
    max_memory_mb : int, optional
        Refuse the job if its estimated memory exceeds this many MiB (the worker passes
        ``HMLC_MAX_JOB_MEMORY_MB``; the CLI sets no limit).
    dataset : HMCDataset, optional
        The data to train on (the CLI's ``train --table``, :func:`hmlc_core.tables.load_table_dataset`);
        None opens ``config.dataset`` (:func:`hmlc_core.catalog.open_dataset`, holding out
        ``config.valid_fraction`` of its training rows when it has no valid split).
    checkpoint : path, optional
        Training checkpoint file (``train``'s ``checkpoint``, :mod:`hmlc_core.checkpoint`): resumed from when
        it fits, written while training, and removed once the finished run is saved (kept when training was
        stopped, so the run can go on with ``overwrite``).
    checkpoint_seconds : float, default :data:`hmlc_core.checkpoint.CHECKPOINT_SECONDS`
        Least seconds between two checkpoints.

    Returns
    -------
    Run or None
        The saved run, or None when nothing was saved (``save_empty=False``).

    Raises
    ------
    FileExistsError
        If ``out`` exists, is not empty and ``overwrite`` is False.
    LimitError
        If the output folder is not writable or too full, or the job is over ``max_memory_mb``.
    DatasetNotFoundError, ValueError
        From :func:`hmlc_core.catalog.open_dataset` and :func:`hmlc_core.train.train`.
    TrainingDiverged
        From :func:`hmlc_core.train.train`; nothing is saved.
    """
    from hmlc_core.train import train  # imports torch: only the CLI and the worker train

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"run directory {out} already exists; choose another --out or pass --overwrite")
    resolved = config.resolved()
    resolved.validate()
    if dataset is None:
        dataset = open_dataset(config.dataset, config.data_dir, config.valid_fraction)
    shape = dataset_shape(dataset)
    if max_memory_mb is not None:
        check_job_memory(resolved, shape, max_memory_mb)
    check_output_dir(Path(os.path.abspath(out)).parent, estimate_run_size(resolved, shape))
    result = train(config, dataset, progress=progress, should_stop=should_stop, checkpoint=checkpoint,
                   checkpoint_seconds=checkpoint_seconds)
    if result.epochs_completed == 0 and result.interrupted and not save_empty:
        log.info("stopped before the first epoch finished; nothing saved")
        return None
    run = load_run(save_run(out, result, dataset, overwrite=overwrite))
    if checkpoint is not None and not result.interrupted:  # a stopped run may be resumed (with overwrite)
        Path(checkpoint).unlink(missing_ok=True)
    return run


# ------------------------------------------------------------------ processes
def process_token(pid: int) -> str | None:
    """A token identifying the process ``pid`` (its start time), or None if no such live process.

    On Linux the token is field 22 of ``/proc/<pid>/stat`` (start time in
    clock ticks after boot) and zombies count as dead; elsewhere it is ``""``
    when ``os.kill(pid, 0)`` finds the process (no reuse protection there).
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
    except OSError:
        pass
    else:
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is field 3 -> index 0
        return None if fields[0] in ("Z", "X") else fields[19]
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    return ""


def process_alive(pid: int | None, token: str | None) -> bool:
    """True if ``pid`` is a live process whose :func:`process_token` matches ``token`` (when both are known)."""
    if pid is None:
        return False
    current = process_token(pid)
    if current is None:
        return False
    return not (token and current and current != token)


def _reap() -> None:
    with _CHILDREN_LOCK:
        _CHILDREN[:] = [child for child in _CHILDREN if child.poll() is None]


def reconcile(registry: Registry, now: float | None = None) -> list[str]:
    """Mark ``failed`` every running job whose worker is gone (``cancelled`` if a cancel was asked).

    A job counts as gone when its pid is dead or now belongs to another
    process (start token differs), or when it was claimed more than
    :data:`START_GRACE_S` seconds ago and no worker ever attached.

    Returns
    -------
    list of str
        Ids of the rows changed.
    """
    _reap()
    now = time.time() if now is None else now
    changed = []
    for record in registry.runs(["running"]):
        if record.pid is None:
            if record.started_at is not None and now - record.started_at > START_GRACE_S:
                error = f"the worker process never started (no report within {START_GRACE_S:.0f} s)"
                if registry.mark_dead(record.id, None, error):
                    changed.append(record.id)
            continue
        if process_alive(record.pid, record.pid_token):
            continue
        error = (f"the worker process {record.pid} ended without reporting (killed, out of memory, or the "
                 f"machine restarted); see {record.log_path}")
        if registry.mark_dead(record.id, record.pid, error):
            log.warning("run %s: %s", record.id, error)
            changed.append(record.id)
    return changed


def worker_command(registry: Registry, run_id: str) -> list[str]:
    """The argv of the worker process of ``run_id``."""
    return [sys.executable, "-m", "hmlc_core", "worker", "--runs-dir", str(registry.runs_dir), run_id]


def _spawn(registry: Registry, record: RunRecord) -> subprocess.Popen | None:
    record.log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    try:
        with open(record.log_path, "ab") as logfile:
            proc = subprocess.Popen(worker_command(registry, record.id), stdin=subprocess.DEVNULL, stdout=logfile,
                                    stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True)
    except OSError as exc:
        registry.fail(record.id, f"cannot start the worker process: {exc}")
        return None
    with _CHILDREN_LOCK:
        _CHILDREN.append(proc)
    registry.attach_worker(record.id, proc.pid, process_token(proc.pid))
    log.info("started worker %d for run %s", proc.pid, record.id)
    return proc


def dispatch(registry: Registry) -> list[subprocess.Popen]:
    """Reconcile, then start workers for queued jobs while fewer than ``max_concurrent`` run.

    Safe to call from several threads and processes at once: claiming is one
    ``BEGIN IMMEDIATE`` transaction (:meth:`Registry.claim_next`).

    A concurrency setting above ``HMLC_MAX_CONCURRENT_JOBS`` (one stored before the limit was set or
    lowered) is first lowered to it.

    Returns
    -------
    list of subprocess.Popen
        The workers started by this call (detached; they outlive the caller).
    """
    reconcile(registry)
    try:
        cap = JobLimits.from_env().max_concurrent
    except LimitError as exc:  # the Retrain page reports it; the queue keeps to the default meanwhile
        log.error("%s; using the default limit of %d concurrent runs", exc, DEFAULT_MAX_CONCURRENT_JOBS)
        cap = DEFAULT_MAX_CONCURRENT_JOBS
    if registry.max_concurrent > cap:
        log.warning("lowering the concurrency setting of %s from %d to %d (HMLC_MAX_CONCURRENT_JOBS)",
                    registry.runs_dir, registry.max_concurrent, cap)
        registry.set_max_concurrent(cap)
    started = []
    while (record := registry.claim_next()) is not None:
        proc = _spawn(registry, record)
        if proc is not None:
            started.append(proc)
    return started


def startup(registry: Registry) -> list[RunRecord]:
    """What the dashboard does once when it starts: recover, import unregistered run folders, reconcile, dispatch.

    Recovery (:meth:`Registry.recover`) finishes or undoes deletes and
    overwrites that a killed process left half done.

    Returns
    -------
    list of RunRecord
        The imported rows (:meth:`Registry.sync`).
    """
    registry.recover()
    imported = registry.sync()
    dispatch(registry)
    return imported


def cancel(registry: Registry, run_id: str) -> RunRecord:
    """Cancel a job: a queued one at once; a running one gets the flag and SIGTERM and ends ``cancelled``.

    SIGTERM is sent only to a worker that has reported (epoch 0 or later), so
    its handler is in place; a worker still starting reads the flag before it
    trains.

    Raises
    ------
    RegistryError
        If there is no such run or it has already ended.
    """
    record = registry.request_cancel(run_id)
    # A worker reports epoch 0 once its SIGTERM handler is installed; before that (while it imports torch) a
    # signal would kill it, and the flag alone stops it at its first check.
    if record.status == "running" and record.progress_at is not None and process_alive(record.pid, record.pid_token):
        try:
            os.kill(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return record


# ---------------------------------------------------------------- the worker
class _CancelWatch:
    """``should_stop`` of a worker: SIGTERM/SIGINT, or the registry's cancel flag (read at most every 0.5 s)."""

    def __init__(self, registry: Registry, run_id: str) -> None:
        self.registry, self.run_id = registry, run_id
        self.stop = False
        self._last = float("-inf")

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True
        log.warning("signal %d: stopping after the current step", signum)

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.stop and now - self._last >= CANCEL_POLL_S:
            self._last = now
            try:
                self.stop = self.registry.is_cancel_requested(self.run_id)
            except RegistryError as exc:
                log.warning("cannot read the cancel flag: %s", exc)
        return self.stop


def run_worker(runs_dir: str | Path, run_id: str) -> int:
    """Run one registered job to its end (the ``worker`` CLI command).

    The job must be ``running`` (claimed by :func:`dispatch`) with no live
    worker, or ``queued`` (claimed here, regardless of the concurrency limit).

    Returns
    -------
    int
        Exit code: 0 when the run ended ``finished`` or ``cancelled``, 1 when it failed.

    Raises
    ------
    RegistryError
        If the job does not exist, has ended, or already has a live worker.
    """
    registry = Registry(runs_dir)
    record = registry.get(run_id)
    if record.status == "queued":
        record = registry.claim(run_id)
    elif record.status != "running":
        raise RegistryError(f"run {run_id} is {record.status}: nothing to do")
    elif record.pid not in (None, os.getpid()) and process_alive(record.pid, record.pid_token):
        raise RegistryError(f"run {run_id} already has a worker (process {record.pid})")
    watch = _CancelWatch(registry, run_id)
    watch.install()
    registry.attach_worker(run_id, os.getpid(), process_token(os.getpid()))
    registry.report_progress(run_id, 0, record.epochs or record.train_config().resolved().epochs)
    code = 1
    try:
        code = _work(registry, record, watch)
    except Exception as exc:  # any error ends the job as failed, with its message
        log.error("run %s failed:\n%s", run_id, traceback.format_exc())
        registry.fail(run_id, f"{type(exc).__name__}: {exc}")
    finally:
        try:
            dispatch(registry)
        except (RegistryError, OSError) as exc:
            log.error("cannot dispatch the next job: %s", exc)
    return code


def _work(registry: Registry, record: RunRecord, watch: _CancelWatch) -> int:
    config = record.train_config()
    log.info("run %s (%s): %s", record.id, record.name, config.to_dict())
    if watch():
        registry.complete(record.id, "cancelled", error="cancelled before training started")
        return 0

    def progress(event: dict[str, Any]) -> None:
        try:
            registry.report_progress(record.id, event["epoch"], event["epochs"], event["loss"],
                                     event.get("valid_auprc"))
        except RegistryError as exc:
            log.warning("cannot report progress: %s", exc)
        extra = f", valid AUPRC {event['valid_auprc']:.4f}" if "valid_auprc" in event else ""
        log.info("epoch %d/%d loss %.4f (%.1f s)%s", event["epoch"], event["epochs"], event["loss"],
                 event["seconds"], extra)

    run = train_and_save(config, record.path, progress=progress, should_stop=watch, save_empty=False,
                         max_memory_mb=JobLimits.from_env().max_job_memory_mb)
    if run is None:
        registry.complete(record.id, "cancelled", error="cancelled before the first epoch finished; nothing saved")
        return 0
    interrupted = run.summary.get("status") == "interrupted"
    registry.complete(record.id, "cancelled" if interrupted else "finished", headline_metrics(run.summary),
                      error=(f"cancelled after {run.summary.get('epochs_completed')} epoch(s); the partial run "
                             "is saved") if interrupted else None)
    log.info("run %s %s: %s", record.id, "cancelled" if interrupted else "finished", run.path)
    return 0


# ------------------------------------------------------------ the Retrain form
def has_valid_split(dataset: str, data_dir: str | Path | None = None) -> bool:
    """True if ``dataset`` has a valid split of its own (the built-in ``synthetic`` and ``shapes`` do; for files,
    a ``*.valid.arff``).

    Unknown datasets return False. A run on a dataset without one can hold one out of its training rows
    (``TrainConfig.valid_fraction``).
    """
    if dataset in GENERATED:
        return True
    try:
        return "valid" in find_dataset_files(dataset, data_dir)
    except (DatasetNotFoundError, ValueError):
        return False


def check_launchable(config: TrainConfig) -> None:
    """Check that ``config`` can be launched: a valid config, a dataset that exists, a valid split if needed.

    Raises
    ------
    ValueError
        From :meth:`TrainConfig.validate` (naming the field), or when the
        dataset is missing, neither ARFF nor a table dataset (:class:`~hmlc_core.data.DatasetNotFoundError`,
        which lists the datasets found) or has no valid split while ``fit_on="train"`` and ``valid_fraction``
        is 0 (a table dataset has none).
    """
    config.resolved().validate()
    if config.dataset in GENERATED:
        return
    try:
        files = find_dataset_files(config.dataset, config.data_dir)
    except DatasetNotFoundError as exc:
        try:
            table = find_table_dataset(config.dataset, config.data_dir)
        except DatasetNotFoundError:
            table = None
        if table is None:
            raise ValueError(str(exc)) from exc
        files = {}  # a table dataset (an upload): open_dataset gives it no valid split
    if config.fit_on == "train" and "valid" not in files and config.valid_fraction == 0:
        raise ValueError(f"dataset {config.dataset!r} has no valid split: set fit_on to 'train+valid', or hold "
                         "one out of its training rows (valid_fraction > 0)")


def retrain_config(base: TrainConfig | None, dataset: str, **overrides: Any) -> TrainConfig:
    """The config the Retrain page launches: a starting config, switched to ``dataset``, with the form's values.

    Parameters
    ----------
    base : TrainConfig or None
        The config to start from (an existing run's), or None for the
        defaults: :class:`TrainConfig` with ``profile="quick"`` and
        ``fit_on="train"`` where the dataset has a valid split (else
        ``"train+valid"``).
    dataset : str
    **overrides
        Field values set by the form (any :class:`TrainConfig` field).

    Returns
    -------
    TrainConfig
        Not validated. ``lr`` and ``batch_size`` of ``base`` are cleared so
        the chosen profile sets them; ``hidden`` is kept only when the dataset
        is unchanged (it is a per-dataset value, docs/method.md, *Defaults and why*).

    Raises
    ------
    ValueError
        If an override names no :class:`TrainConfig` field.
    """
    unknown = sorted(set(overrides) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown config fields: {unknown}")
    if base is None:
        base = TrainConfig(dataset=dataset, profile="quick",
                           fit_on="train" if has_valid_split(dataset) else "train+valid")
    hidden = base.hidden if base.dataset == dataset else None
    return replace(base, dataset=dataset, lr=None, batch_size=None, hidden=hidden, **overrides)


def dataset_shape(dataset: HMCDataset) -> DatasetShape:
    """The sizes of a loaded dataset that the memory and disk estimates need."""
    return DatasetShape(n_features=int(dataset.train.X.shape[1]), n_nodes=int(dataset.hierarchy.n_nodes),
                        n_train=int(dataset.train.X.shape[0]),
                        n_valid=0 if dataset.valid is None else int(dataset.valid.X.shape[0]),
                        n_test=int(dataset.test.X.shape[0]))


def load_dataset_shape(name: str, data_dir: str | Path | None = None) -> DatasetShape:
    """Open a dataset (:func:`hmlc_core.catalog.open_dataset`, 1-2 s for a GO dataset) and return its sizes.

    Raises
    ------
    DatasetNotFoundError, ValueError
        From :func:`hmlc_core.catalog.open_dataset`.
    """
    return dataset_shape(open_dataset(name, data_dir))


def check_capacity(registry: Registry, config: TrainConfig, shape: DatasetShape | None = None,
                   limits: JobLimits | None = None) -> None:
    """Check the job limits before queueing ``config`` in ``registry``: queue length, memory, disk.

    Parameters
    ----------
    registry : Registry
    config : TrainConfig
        Valid (:func:`check_launchable`).
    shape : DatasetShape, optional
        The dataset's sizes (:func:`load_dataset_shape`); without them only the queue is checked, and the
        worker checks memory and disk once it has loaded the data.
    limits : JobLimits, optional
        Default :meth:`JobLimits.from_env`.

    Raises
    ------
    LimitError
        When the queue is full (``HMLC_MAX_QUEUED_JOBS``), the estimated memory is over
        ``HMLC_MAX_JOB_MEMORY_MB`` (naming the fields), or the runs folder is not writable or too full.
    """
    limits = JobLimits.from_env() if limits is None else limits
    queued = len(registry.runs(["queued"]))
    if queued >= limits.max_queued:
        raise LimitError(f"the queue is full: {queued} jobs are waiting, the limit is {limits.max_queued} "
                         f"(HMLC_MAX_QUEUED_JOBS); cancel one or wait for a job to start")
    if shape is not None:
        resolved = config.resolved()
        check_job_memory(resolved, shape, limits.max_job_memory_mb)
        check_output_dir(registry.runs_dir, estimate_run_size(resolved, shape))


def submit(registry: Registry, config: TrainConfig, name: str | None = None,
           shape: DatasetShape | None = None, limits: JobLimits | None = None) -> RunRecord:
    """Queue ``config`` after :func:`check_launchable` and :func:`check_capacity` (the Retrain page's Launch).

    Two sessions submitting at the same moment may each pass the queue check, so the queue can
    briefly hold one job per session more than ``HMLC_MAX_QUEUED_JOBS``.

    Returns
    -------
    RunRecord
        The new ``queued`` row (:meth:`Registry.submit`).

    Raises
    ------
    ValueError
        From :func:`check_launchable`, or a :class:`~hmlc_core.limits.LimitError` from :func:`check_capacity`.
    """
    check_launchable(config)
    check_capacity(registry, config, shape, limits)
    return registry.submit(config, name)


def set_concurrency(registry: Registry, value: int, limits: JobLimits | None = None) -> None:
    """Set how many jobs of ``registry`` may run at once, within ``HMLC_MAX_CONCURRENT_JOBS``.

    Raises
    ------
    LimitError
        If ``value`` is above the limit.
    ValueError
        If ``value`` < 1 (:meth:`Registry.set_max_concurrent`).
    """
    limits = JobLimits.from_env() if limits is None else limits
    if int(value) > limits.max_concurrent:
        raise LimitError(f"'Concurrent runs' must be at most {limits.max_concurrent} (HMLC_MAX_CONCURRENT_JOBS), "
                         f"got {value}")
    registry.set_max_concurrent(int(value))
