"""The run registry: one SQLite row per training run, in ``<runs dir>/registry.sqlite``.

The registry is the single source of truth for the dashboard's job queue and
its list of runs (issue 5, items 4-5). The dashboard, the worker processes of
:mod:`hmlc_core.jobs` and any number of browser tabs read and write it at the
same time, so:

* the database is in WAL mode (many readers, one writer, readers never block
  the writer) with ``synchronous=NORMAL`` (never corrupt; a power cut may
  lose the last commits), and a busy timeout of :data:`BUSY_TIMEOUT_S`;
* every call opens its own connection and closes it (Streamlit reruns run in
  threads; a worker is another process), and every write is one short
  ``BEGIN IMMEDIATE`` transaction, so a read-modify-write (claiming the next
  queued job under the concurrency limit) is atomic across processes;
* the schema is versioned with ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`)
  and guarded by CHECK constraints (valid status, JSON columns, a run folder
  name directly inside the runs directory).

Table ``runs``
--------------
==================  ===========================================================
``id``              short unique text, ``YYYYmmdd-HHMMSS-xxxx`` (UTC time + 4 hex)
``name``            display name (renamable; the folder keeps its name)
``dataset``         dataset name
``config``          JSON of :meth:`TrainConfig.to_dict` (as submitted; the
                    resolved config is in the run's ``config.json``)
``status``          one of :data:`STATUSES`
``created_at``,     Unix times in seconds (float, UTC); ``started_at`` and
``started_at``,     ``finished_at`` are NULL until the job starts / ends
``finished_at``
``metrics``         JSON of :func:`headline_metrics` (NULL until saved)
``error``           why a run failed or was cancelled (NULL otherwise)
``pid``,            the worker's process id and its start token
``pid_token``       (:func:`hmlc_core.jobs.process_token`), against pid reuse
``folder``          run directory name inside the runs directory
``epoch``,          live progress: finished epochs, planned epochs, last
``epochs``,         mean training loss, last validation micro AUPRC and the
``loss``,           time of the last report
``valid_auprc``,
``progress_at``
``cancel_requested``  1 once a cancel was asked for a running job
==================  ===========================================================

Table ``settings``: ``max_concurrent`` (int >= 1, default
:data:`DEFAULT_MAX_CONCURRENT`), the number of jobs allowed to run at once.

Status transitions: ``queued -> running -> finished | cancelled | failed`` and
``queued -> cancelled | failed``. Only :mod:`hmlc_core.jobs` starts processes;
this module never does.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from hmlc_core.config import TrainConfig

__all__ = [
    "REGISTRY_FILE", "SCHEMA_VERSION", "STATUSES", "ACTIVE_STATUSES", "TERMINAL_STATUSES", "HEADLINE_METRICS",
    "DEFAULT_MAX_CONCURRENT", "BUSY_TIMEOUT_S", "LOG_DIR", "RegistryError", "RunRecord", "Registry",
    "headline_metrics", "default_run_name", "default_folder_name", "imported_run_name", "run_label", "display_names",
    "runs_table",
]

log = logging.getLogger(__name__)

REGISTRY_FILE = "registry.sqlite"
"""File name of the registry inside a runs directory."""

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the current schema."""

STATUSES = ("queued", "running", "finished", "failed", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
TERMINAL_STATUSES = ("finished", "failed", "cancelled")

DEFAULT_MAX_CONCURRENT = 1
"""Jobs running at once unless the user changes it (one on a 2-core machine, DASHBOARD.md section 3)."""

BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for another writer's lock before it gives up (seconds)."""

LOG_DIR = ".logs"
"""Folder (hidden, inside the runs directory) holding one ``<id>.log`` per worker."""

HEADLINE_METRICS = ("auprc_micro", "macro_precision", "macro_recall", "macro_f1", "recall_by_depth",
                    "coherence_violations", "n_eval_nodes", "epochs_completed", "epochs_planned",
                    "train_seconds", "seconds_per_epoch")
"""Keys of a run's ``summary.json`` (:func:`hmlc_core.runs.save_run`) copied into the registry."""

_STATUS_SQL = ", ".join(f"'{s}'" for s in STATUSES)
_SCHEMA = (
    f"""CREATE TABLE runs (
        id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
        name TEXT NOT NULL CHECK (length(trim(name)) > 0),
        dataset TEXT NOT NULL,
        config TEXT NOT NULL CHECK (json_valid(config)),
        status TEXT NOT NULL CHECK (status IN ({_STATUS_SQL})),
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        metrics TEXT CHECK (metrics IS NULL OR json_valid(metrics)),
        error TEXT,
        pid INTEGER CHECK (pid IS NULL OR pid > 0),
        pid_token TEXT,
        folder TEXT NOT NULL UNIQUE CHECK (length(folder) > 0 AND folder NOT IN ('.', '..')
                                           AND instr(folder, '/') = 0 AND instr(folder, '\\') = 0
                                           AND substr(folder, 1, 1) != '.'),
        epoch INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
        epochs INTEGER CHECK (epochs IS NULL OR epochs >= 1),
        loss REAL,
        valid_auprc REAL,
        progress_at REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
        CHECK (status != 'queued' OR (started_at IS NULL AND pid IS NULL)),
        CHECK (status IN ('queued', 'running') OR finished_at IS NOT NULL)
    )""",
    "CREATE INDEX runs_by_status ON runs (status, created_at)",
    """CREATE TABLE settings (
        key TEXT PRIMARY KEY CHECK (key IN ('max_concurrent')),
        value INTEGER NOT NULL CHECK (value >= 1)
    )""",
)


class RegistryError(ValueError):
    """The registry file is unreadable, or an operation does not fit a run's state; the message says which."""


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None (strict JSON, as the CHECK constraints ask)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def headline_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """The :data:`HEADLINE_METRICS` of a run's ``summary.json``, with NaN as None.

    Parameters
    ----------
    summary : dict
        :attr:`hmlc_core.runs.Run.summary` (metrics from
        :func:`hmlc_core.metrics.summarize`: micro AUPRC, macro
        precision/recall/F1 in [0, 1], recall by depth; plus run facts).

    Returns
    -------
    dict
        Only the keys present in ``summary``.
    """
    return _json_safe({k: summary[k] for k in HEADLINE_METRICS if k in summary})


def _method_words(config: TrainConfig) -> list[str]:
    """The loss method of ``config`` in words: ``["plain"]``, ``["class-wise weights", "mean focal"]``, ..."""
    words = []
    if config.weighting != "none":
        words.append(f"{config.weighting} weights")
    if config.focal != "none":
        words.append(f"{config.focal} focal")
    if config.lpros is not None:
        words.append("LPROS")
    if config.logit_adjust is not None:
        words.append(f"logit adjustment {config.logit_adjust:g}")
    words = words or ["plain"]
    if config.loss != "mcloss":
        words.insert(0, config.loss.upper())
    return words


def default_run_name(config: TrainConfig) -> str:
    """A short readable display name, e.g. ``synthetic · class-wise weights, mean focal · seed 0``.

    The dataset, the loss method and the seed; the ensemble (``3 heads``,
    ``mc-dropout``) and the profile only when they differ from
    :class:`~hmlc_core.config.TrainConfig`'s defaults.
    """
    defaults = TrainConfig(dataset=config.dataset)
    parts = [config.dataset, ", ".join(_method_words(config)), f"seed {config.seed}"]
    if config.heads != defaults.heads or config.ensemble != defaults.ensemble:
        members = f"{config.heads} head" + ("s" if config.heads != 1 else "")
        parts.append(members if config.ensemble == "heads" else f"{config.ensemble} ({members})")
    if config.profile != defaults.profile:
        parts.append(config.profile)
    return " · ".join(parts)


def default_folder_name(config: TrainConfig, stamp: str) -> str:
    """The CLI's default run folder ``<dataset>-<method>-s<seed>-<stamp>``, e.g. ``synthetic-plain-s0-20261129-034916``.

    ``<method>`` is :func:`default_run_name`'s loss method with words joined by
    ``-`` (``class-wise-mean``, ``plain``); the ensemble size is added only when
    it is not the default (``-h3``). ``stamp`` is the local time
    ``YYYYmmdd-HHMMSS``. :meth:`Registry.sync` recognises these folders and
    imports them under :func:`default_run_name` instead of the folder name.
    """
    method = "-".join(w.removesuffix(" weights").removesuffix(" focal").replace(" ", "-").lower()
                      for w in _method_words(config))
    heads = "" if config.heads == TrainConfig(dataset=config.dataset).heads else f"-h{config.heads}"
    return f"{config.dataset}-{method}{heads}-s{config.seed}-{stamp}"


def imported_run_name(folder: str, config: TrainConfig | None) -> str:
    """Display name of a run folder imported by :meth:`Registry.sync`.

    A folder named by the CLI's default (:func:`default_folder_name`, or the
    older ``<dataset>-<weighting>-<focal>-h<heads>-s<seed>-<stamp>``) gets
    :func:`default_run_name`; any other folder keeps its name, which the user
    chose with ``--out``.
    """
    if config is None:
        return folder
    stamp = r"-\d{8}-\d{6}"
    current = re.escape(default_folder_name(config, "")[:-1]) + stamp
    older = re.escape(f"{config.dataset}-{config.weighting}-{config.focal}-h{config.heads}-s{config.seed}") + stamp
    if re.fullmatch(current, folder) or re.fullmatch(older, folder):
        return default_run_name(config)
    return folder


def run_label(key: str, name: str | None = None, dataset: str | None = None) -> str:
    """How the dashboard lists a run: ``name · dataset · key``, or ``key · dataset`` for a run without a name.

    The name is left out when it is missing or equals the key, the dataset
    when it is missing or already part of the name. The key (what URLs hold)
    is always shown, so runs with the same name stay apart. Plain text: a
    page must not render it as markdown.
    """
    named = bool(name) and name != key
    shown_dataset = [dataset] if dataset and not (named and dataset in name) else []
    return " · ".join([name, *shown_dataset, key] if named else [key, *shown_dataset])


def _new_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


@dataclass(frozen=True)
class RunRecord:
    """One row of the ``runs`` table (see the module docstring for the columns).

    Attributes
    ----------
    id, name, dataset, status : str
    config : dict
        ``TrainConfig.to_dict()`` as submitted (empty for a folder that could not be read).
    created_at : float
        Unix time (s).
    started_at, finished_at : float or None
    metrics : dict
        :func:`headline_metrics` (empty until the run is saved).
    error : str or None
    pid : int or None
    pid_token : str or None
    folder : str
    path : pathlib.Path
        ``<runs dir>/<folder>``, the run directory (exists once saved).
    log_path : pathlib.Path
        The worker's log file ``<runs dir>/.logs/<id>.log``.
    epoch : int
        Finished epochs (>= 0).
    epochs : int or None
        Planned epochs.
    loss, valid_auprc : float or None
        Last epoch's mean training loss and validation micro AUPRC.
    progress_at : float or None
        Unix time of the last progress report.
    cancel_requested : bool
    """

    id: str
    name: str
    dataset: str
    config: dict[str, Any]
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    metrics: dict[str, Any]
    error: str | None
    pid: int | None
    pid_token: str | None
    folder: str
    path: Path
    log_path: Path
    epoch: int
    epochs: int | None
    loss: float | None
    valid_auprc: float | None
    progress_at: float | None
    cancel_requested: bool

    @property
    def active(self) -> bool:
        """True while queued or running."""
        return self.status in ACTIVE_STATUSES

    @property
    def fraction(self) -> float:
        """Finished fraction ``epoch / epochs`` in [0, 1] (0 when ``epochs`` is unknown)."""
        if not self.epochs:
            return 0.0
        return min(max(self.epoch / self.epochs, 0.0), 1.0)

    def elapsed(self, now: float | None = None) -> float | None:
        """Seconds since the start (until ``finished_at`` once ended); None before the start.

        Parameters
        ----------
        now : float, optional
            Unix time used for a run still going (default: ``time.time()``).
        """
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else (time.time() if now is None else now)
        return max(end - self.started_at, 0.0)

    def train_config(self) -> TrainConfig:
        """The row's config as a :class:`TrainConfig`.

        Raises
        ------
        ValueError
            If the stored config has unknown fields or none at all.
        """
        if not self.config:
            raise ValueError(f"run {self.id} has no stored config")
        return TrainConfig.from_dict(self.config)


class Registry:
    """The registry of one runs directory (created on first use).

    Parameters
    ----------
    runs_dir : path
        The runs directory; ``registry.sqlite`` lives inside it, and new runs
        are saved to ``runs_dir/<id>``.
    create : bool, default True
        Create the directory and the database when missing. With False a
        missing registry raises :class:`RegistryError` (for read-only uses).

    Raises
    ------
    RegistryError
        If the file is not an SQLite database, has a newer schema, or is not
        an hmlc-lab registry (the message names the file).
    """

    def __init__(self, runs_dir: str | Path, create: bool = True) -> None:
        self.runs_dir = Path(runs_dir).expanduser().resolve()
        self.path = self.runs_dir / REGISTRY_FILE
        if not create and not self.path.is_file():
            raise RegistryError(f"no run registry at {self.path}")
        if create:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._init_schema(create)
        # An idle connection held for the registry's lifetime: closing the last connection to a WAL database
        # checkpoints and deletes the WAL (about 10 ms per call); with this one open a write costs ~0.1 ms.
        # After one read it stays idle (no open transaction), so it holds no snapshot and blocks no checkpoint.
        self._keeper: sqlite3.Connection | None = sqlite3.connect(self.path, check_same_thread=False)
        self._keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()  # attach it to the WAL index

    def close(self) -> None:
        """Release the idle connection (the registry stays usable, each call opening its own connection)."""
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None

    def __repr__(self) -> str:
        return f"Registry({str(self.runs_dir)!r})"

    # ------------------------------------------------------------ plumbing
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: cannot open the run registry ({exc})") from exc
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # the WAL-safe setting: no fsync at every commit
        except sqlite3.Error as exc:  # e.g. "file is not a database": SQLite reads the header here
            conn.close()
            raise RegistryError(f"{self.path}: cannot open the run registry ({exc})") from exc
        return conn

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: {exc}") from exc
        finally:
            conn.close()

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` on ``conn``: committed on success, rolled back on any exception."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on a fresh connection; SQLite errors become RegistryError."""
        conn = self._connect()
        try:
            with self._transaction(conn):
                yield conn
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: {exc}") from exc
        finally:
            conn.close()

    def _init_schema(self, create: bool) -> None:
        """Check the schema version; create the schema (in WAL mode) in a new database.

        An up-to-date registry is only read (no lock is taken), so opening one is cheap.
        """
        conn = self._connect()
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return
            if version > SCHEMA_VERSION:
                raise RegistryError(f"{self.path}: schema version {version} is newer than this hmlc-lab "
                                    f"understands ({SCHEMA_VERSION}); upgrade hmlc-lab")
            if not create:
                raise RegistryError(f"{self.path}: empty run registry")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                log.warning("%s: journal mode is %r, not WAL (a network file system?)", self.path, mode)
            with self._transaction(conn):
                version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
                tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
                if version == 0 and tables:
                    raise RegistryError(f"{self.path}: an SQLite database that is not an hmlc-lab run registry")
                if version == 0:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute("INSERT INTO settings (key, value) VALUES ('max_concurrent', ?)",
                                 (DEFAULT_MAX_CONCURRENT,))
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: not a usable run registry ({exc})") from exc
        finally:
            conn.close()

    def journal_mode(self) -> str:
        """The database's journal mode (``"wal"`` normally)."""
        with self._read() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def _record(self, row: sqlite3.Row) -> RunRecord:
        return RunRecord(
            id=row["id"], name=row["name"], dataset=row["dataset"], config=json.loads(row["config"]),
            status=row["status"], created_at=row["created_at"], started_at=row["started_at"],
            finished_at=row["finished_at"], metrics=json.loads(row["metrics"]) if row["metrics"] else {},
            error=row["error"], pid=row["pid"], pid_token=row["pid_token"], folder=row["folder"],
            path=self.runs_dir / row["folder"], log_path=self.runs_dir / LOG_DIR / f"{row['id']}.log",
            epoch=row["epoch"], epochs=row["epochs"], loss=row["loss"], valid_auprc=row["valid_auprc"],
            progress_at=row["progress_at"], cancel_requested=bool(row["cancel_requested"]),
        )

    def _free_id(self, conn: sqlite3.Connection) -> str:
        """A new run id used by no row and no folder (call inside a write transaction)."""
        while True:
            run_id = _new_id()
            if (conn.execute("SELECT 1 FROM runs WHERE id = ? OR folder = ?", (run_id, run_id)).fetchone() is None
                    and not (self.runs_dir / run_id).exists()):
                return run_id

    @staticmethod
    def _status(conn: sqlite3.Connection, run_id: str) -> str:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RegistryError(f"no run with id {run_id!r} in the registry")
        return str(row["status"])

    # ------------------------------------------------------------- reading
    def get(self, run_id: str) -> RunRecord:
        """The row of ``run_id``.

        Raises
        ------
        RegistryError
            If there is no such run.
        """
        with self._read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RegistryError(f"no run with id {run_id!r} in {self.path}")
        return self._record(row)

    def runs(self, statuses: Iterable[str] | None = None, limit: int | None = None) -> list[RunRecord]:
        """Rows, newest first, optionally only those with a status in ``statuses``.

        Raises
        ------
        ValueError
            On an unknown status.
        """
        sql, params = "SELECT * FROM runs", []
        if statuses is not None:
            statuses = list(statuses)
            unknown = sorted(set(statuses) - set(STATUSES))
            if unknown:
                raise ValueError(f"unknown run status {unknown}; expected some of {list(STATUSES)}")
            sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
            params += statuses
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [self._record(r) for r in rows]

    @property
    def max_concurrent(self) -> int:
        """How many jobs may run at once (>= 1)."""
        with self._read() as conn:
            return int(conn.execute("SELECT value FROM settings WHERE key = 'max_concurrent'").fetchone()[0])

    def set_max_concurrent(self, value: int) -> None:
        """Set the concurrency limit.

        Raises
        ------
        ValueError
            If ``value`` < 1.
        """
        if int(value) < 1:
            raise ValueError(f"the number of concurrent runs must be >= 1, got {value}")
        with self._write() as conn:
            conn.execute("UPDATE settings SET value = ? WHERE key = 'max_concurrent'", (int(value),))

    def is_cancel_requested(self, run_id: str) -> bool:
        """True when a cancel was asked for ``run_id`` or the row is no longer running (or is gone)."""
        with self._read() as conn:
            row = conn.execute("SELECT status, cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is None or bool(row["cancel_requested"]) or row["status"] != "running"

    # ---------------------------------------------------------- the queue
    def submit(self, config: TrainConfig, name: str | None = None) -> RunRecord:
        """Queue a training job for ``config``.

        Parameters
        ----------
        config : TrainConfig
            Validated here (after :meth:`TrainConfig.resolved`).
        name : str, optional
            Display name; empty or None gives :func:`default_run_name`.

        Returns
        -------
        RunRecord
            The new ``queued`` row; its run is saved to ``runs_dir/<id>``.

        Raises
        ------
        ValueError
            From :meth:`TrainConfig.validate`, naming the invalid field.
        """
        resolved = config.resolved()
        resolved.validate()
        name = (name or "").strip() or default_run_name(config)
        clashes = self.named(name)
        if clashes:
            log.warning("run name %r is already used by %s; the new run gets it too (ids tell them apart)", name,
                        ", ".join(r.id for r in clashes))
        payload = json.dumps(_json_safe(config.to_dict()))
        with self._write() as conn:
            run_id = self._free_id(conn)
            conn.execute("INSERT INTO runs (id, name, dataset, config, status, created_at, folder, epochs) "
                         "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                         (run_id, name, config.dataset, payload, time.time(), run_id, resolved.epochs))
        log.info("queued run %s (%s)", run_id, name)
        return self.get(run_id)

    def named(self, name: str) -> list[RunRecord]:
        """The runs whose display name is ``name`` (compared after stripping blanks, case-insensitively), oldest first.

        Names are labels, not identities: :meth:`submit` and :meth:`rename`
        accept a name in use (the default name of a configuration is the same
        every time it is retrained), and callers warn with this list.
        """
        wanted = name.strip().casefold()
        return [r for r in reversed(self.runs()) if r.name.strip().casefold() == wanted]

    def claim_next(self) -> RunRecord | None:
        """Atomically move the oldest queued job to ``running`` if fewer than :attr:`max_concurrent` run.

        The claimed row has no pid yet; the caller starts its worker and calls
        :meth:`attach_worker`.

        Returns
        -------
        RunRecord or None
            The claimed job, or None when the limit is reached or nothing is queued.
        """
        with self._read() as conn:  # the usual case, nothing queued, takes no write lock
            if conn.execute("SELECT 1 FROM runs WHERE status = 'queued' LIMIT 1").fetchone() is None:
                return None
        with self._write() as conn:
            limit = conn.execute("SELECT value FROM settings WHERE key = 'max_concurrent'").fetchone()[0]
            running = conn.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]
            if running >= limit:
                return None
            row = conn.execute("SELECT id FROM runs WHERE status = 'queued' "
                               "ORDER BY created_at, rowid LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, epoch = 0 WHERE id = ?",
                         (time.time(), row["id"]))
        return self.get(row["id"])

    def claim(self, run_id: str) -> RunRecord:
        """Move one queued job to ``running`` now, regardless of the concurrency limit (a manual ``worker``).

        Raises
        ------
        RegistryError
            If the run does not exist or is not queued.
        """
        with self._write() as conn:
            status = self._status(conn, run_id)
            if status != "queued":
                raise RegistryError(f"run {run_id} is {status}, not queued")
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, epoch = 0 WHERE id = ?",
                         (time.time(), run_id))
        return self.get(run_id)

    def attach_worker(self, run_id: str, pid: int, token: str | None) -> bool:
        """Record the worker process of a running job; False if the row is no longer running."""
        with self._write() as conn:
            cur = conn.execute("UPDATE runs SET pid = ?, pid_token = ? WHERE id = ? AND status = 'running'",
                               (int(pid), token, run_id))
        return cur.rowcount == 1

    def report_progress(self, run_id: str, epoch: int, epochs: int, loss: float | None = None,
                        valid_auprc: float | None = None) -> None:
        """Store one epoch's progress of a running job (ignored once the row is no longer running).

        Parameters
        ----------
        epoch, epochs : int
            Finished and planned epochs.
        loss : float, optional
            Mean training loss of the epoch (non-finite is stored as NULL).
        valid_auprc : float, optional
            Validation micro AUPRC in [0, 1].
        """
        loss, valid_auprc = _json_safe(loss), _json_safe(valid_auprc)
        with self._write() as conn:
            conn.execute("UPDATE runs SET epoch = ?, epochs = ?, loss = ?, valid_auprc = ?, progress_at = ? "
                         "WHERE id = ? AND status = 'running'",
                         (int(epoch), int(epochs), loss, valid_auprc, time.time(), run_id))

    def complete(self, run_id: str, status: str, metrics: dict[str, Any] | None = None,
                 error: str | None = None) -> RunRecord:
        """End a running job as ``finished`` or ``cancelled`` with its headline metrics.

        Raises
        ------
        ValueError
            On another ``status``.
        RegistryError
            If the row is not running.
        """
        if status not in ("finished", "cancelled"):
            raise ValueError(f"complete() takes status 'finished' or 'cancelled', got {status!r}")
        payload = None if metrics is None else json.dumps(_json_safe(metrics))
        with self._write() as conn:
            current = self._status(conn, run_id)
            if current != "running":
                raise RegistryError(f"run {run_id} is {current}, not running: cannot mark it {status}")
            conn.execute("UPDATE runs SET status = ?, metrics = ?, error = ?, finished_at = ? WHERE id = ?",
                         (status, payload, error, time.time(), run_id))
        return self.get(run_id)

    def fail(self, run_id: str, error: str) -> bool:
        """Mark a queued or running job ``failed`` with ``error``; False if it had already ended."""
        with self._write() as conn:
            cur = conn.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? "
                               "WHERE id = ? AND status IN ('queued', 'running')", (error, time.time(), run_id))
        return cur.rowcount == 1

    def mark_dead(self, run_id: str, pid: int | None, error: str) -> bool:
        """A running job whose worker ``pid`` is gone: ``failed``, or ``cancelled`` if a cancel was asked.

        Only changes the row while it is still running with that same ``pid``
        (None for a job whose worker never attached), so a concurrent worker
        start or finish is never overwritten.

        Returns
        -------
        bool
            True if the row was changed.
        """
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = CASE cancel_requested WHEN 1 THEN 'cancelled' ELSE 'failed' END, "
                "error = ?, finished_at = ? WHERE id = ? AND status = 'running' AND pid IS ?",
                (error, time.time(), run_id, pid))
        return cur.rowcount == 1

    def request_cancel(self, run_id: str) -> RunRecord:
        """Cancel a job: a queued one becomes ``cancelled`` at once, a running one gets ``cancel_requested``.

        The worker of a running job sees the flag within about half a second
        (and :func:`hmlc_core.jobs.cancel` also sends it SIGTERM).

        Raises
        ------
        RegistryError
            If the run does not exist or has already ended.
        """
        with self._write() as conn:
            status = self._status(conn, run_id)
            if status == "queued":
                conn.execute("UPDATE runs SET status = 'cancelled', error = 'cancelled before it started', "
                             "finished_at = ? WHERE id = ?", (time.time(), run_id))
            elif status == "running":
                conn.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,))
            else:
                raise RegistryError(f"run {run_id} has already ended ({status})")
        return self.get(run_id)

    # -------------------------------------------------- rename and delete
    def rename(self, run_id: str, name: str) -> RunRecord:
        """Change the display name (the run folder keeps its name, so URLs stay valid).

        Raises
        ------
        ValueError
            If ``name`` is blank.
        RegistryError
            If there is no such run.
        """
        name = name.strip()
        if not name:
            raise ValueError("a run name must not be empty")
        clashes = [r.id for r in self.named(name) if r.id != run_id]
        if clashes:
            log.warning("run name %r is already used by %s", name, ", ".join(clashes))
        with self._write() as conn:
            self._status(conn, run_id)
            conn.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id))
        return self.get(run_id)

    def delete(self, run_id: str) -> None:
        """Remove a run's row, its folder and its log; refuses a running job.

        The folder is first renamed aside (to a hidden name, in the same
        transaction that deletes the row, so a failure leaves both in place),
        then removed; only this run's folder inside :attr:`runs_dir` is touched.

        Raises
        ------
        RegistryError
            If there is no such run, or it is running (cancel it first).
        OSError
            If the folder cannot be moved aside (nothing is changed then).
        """
        aside = None
        try:
            with self._write() as conn:
                status = self._status(conn, run_id)
                if status == "running":
                    raise RegistryError(f"run {run_id} is running: cancel it before deleting it")
                folder = conn.execute("SELECT folder FROM runs WHERE id = ?", (run_id,)).fetchone()["folder"]
                path = self.runs_dir / folder
                if path.parent != self.runs_dir:
                    raise RegistryError(f"run {run_id}: folder {folder!r} is not inside {self.runs_dir}")
                if path.exists():
                    aside = self.runs_dir / f".{folder}.deleting-{secrets.token_hex(4)}"
                    path.rename(aside)
                conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        except BaseException:
            if aside is not None and not path.exists():
                aside.rename(path)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        (self.runs_dir / LOG_DIR / f"{run_id}.log").unlink(missing_ok=True)
        log.info("deleted run %s (%s)", run_id, folder)

    # ----------------------------------------------------------- importing
    def sync(self) -> list[RunRecord]:
        """Import run folders of :attr:`runs_dir` that have no row (made by the CLI or copied in).

        A folder counts when it is not hidden and holds ``summary.json`` and
        ``config.json``. It is imported as ``finished``, or ``cancelled``
        when its summary says ``interrupted``, with its headline metrics; a
        folder whose files cannot be read is imported as ``failed`` with the
        error naming the file. Its display name is :func:`imported_run_name`
        (the folder name, or a readable name for the CLI's default folders).
        Safe to call concurrently (a folder is imported once).

        Returns
        -------
        list of RunRecord
            The rows added.
        """
        with self._read() as conn:
            known = {r["folder"] for r in conn.execute("SELECT folder FROM runs")}
        added = []
        for path in sorted(self.runs_dir.iterdir()):
            if (path.name in known or path.name.startswith(".") or not path.is_dir()
                    or not (path / "summary.json").is_file() or not (path / "config.json").is_file()):
                continue
            row = _import_row(path)
            with self._write() as conn:
                if conn.execute("SELECT 1 FROM runs WHERE folder = ?", (path.name,)).fetchone() is not None:
                    continue  # imported meanwhile by another caller
                run_id = self._free_id(conn)
                conn.execute(
                    "INSERT INTO runs (id, name, dataset, config, status, created_at, started_at, finished_at, "
                    "metrics, error, folder, epoch, epochs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, row["name"], row["dataset"], json.dumps(row["config"]), row["status"],
                     row["created_at"], row["started_at"], row["created_at"], json.dumps(row["metrics"]),
                     row["error"], path.name, row["epoch"], row["epochs"]))
            log.info("imported run folder %s as %s", path, row["status"])
            added.append(self.get(run_id))
        return added


def _import_row(path: Path) -> dict[str, Any]:
    """Registry fields of an unregistered run folder, read from its ``summary.json`` and ``config.json``."""
    mtime = (path / "summary.json").stat().st_mtime
    try:
        summary = _read_json_object(path / "summary.json")
        config_doc = _read_json_object(path / "config.json")
        try:
            config = TrainConfig.from_dict(config_doc["train"]).to_dict()
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path / 'config.json'}: field 'train': {exc}") from exc
    except ValueError as exc:
        return {"name": path.name, "dataset": "unknown", "config": {}, "status": "failed", "created_at": mtime,
                "started_at": None,
                "metrics": {}, "error": f"cannot import this run folder: {exc}", "epoch": 0, "epochs": None}
    try:
        created = datetime.strptime(summary["created"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (KeyError, TypeError, ValueError):
        created = mtime
    seconds = summary.get("train_seconds")
    epochs = summary.get("epochs_planned") or config.get("epochs")
    return {
        "name": imported_run_name(path.name, TrainConfig.from_dict(config)),
        "dataset": str(summary.get("dataset") or config["dataset"]),
        "config": _json_safe(config),
        "status": "cancelled" if summary.get("status") == "interrupted" else "finished",
        "created_at": created,
        "started_at": created - seconds if isinstance(seconds, (int, float)) and math.isfinite(seconds) else None,
        "metrics": headline_metrics(summary),
        "error": "interrupted (imported run folder)" if summary.get("status") == "interrupted" else None,
        "epoch": int(summary.get("epochs_completed") or 0),
        "epochs": int(epochs) if epochs else None,
    }


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def display_names(runs_dirs: Sequence[str | Path]) -> dict[Path, str]:
    """Display names of registered runs in existing registries of ``runs_dirs``, by resolved run directory.

    Folders without a registry are skipped (nothing is created); an
    unreadable registry is logged and skipped.
    """
    names: dict[Path, str] = {}
    for root in runs_dirs:
        try:
            registry = Registry(root, create=False)
            records = registry.runs()
        except (RegistryError, OSError) as exc:
            if (Path(root) / REGISTRY_FILE).exists():
                log.warning("cannot read the run registry in %s: %s", root, exc)
            continue
        registry.close()
        for record in records:
            names[record.path.resolve()] = record.name
    return names


def runs_table(records: Sequence[RunRecord], now: float | None = None) -> pd.DataFrame:
    """A table of registry rows for display, newest first as given.

    Parameters
    ----------
    records : sequence of RunRecord
    now : float, optional
        Unix time for the elapsed time of unfinished runs (default: now).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``id``; columns ``name``, ``status``, ``dataset``,
        ``created`` (local datetime), ``epochs`` (``"done/planned"``),
        ``elapsed_s`` (float seconds or NaN), ``auprc_micro``,
        ``macro_recall``, ``macro_f1`` (floats in [0, 1] or NaN), ``folder`` and
        ``error``.
    """
    rows = []
    for r in records:
        elapsed = r.elapsed(now)
        rows.append({
            "id": r.id, "name": r.name, "status": r.status, "dataset": r.dataset,
            "created": pd.Timestamp.fromtimestamp(r.created_at).floor("s"),
            "epochs": f"{r.epoch}/{r.epochs}" if r.epochs else str(r.epoch),
            "elapsed_s": float("nan") if elapsed is None else elapsed,
            **{k: float("nan") if r.metrics.get(k) is None else float(r.metrics[k])
               for k in ("auprc_micro", "macro_recall", "macro_f1")},
            "folder": r.folder, "error": r.error or "",
        })
    columns = ["id", "name", "status", "dataset", "created", "epochs", "elapsed_s", "auprc_micro", "macro_recall",
               "macro_f1", "folder", "error"]
    return pd.DataFrame(rows, columns=columns).set_index("id")
