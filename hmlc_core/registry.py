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
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from hmlc_core.config import TrainConfig
from hmlc_core.runs import RUN_FILES, RunError, read_config, read_summary

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


class _DamagedRegistry(RegistryError):
    """The registry file is damaged (empty, not SQLite, malformed, no schema): :class:`Registry` keeps it aside."""

    def __init__(self, message: str, reason: str, inode: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.inode = inode


_SQLITE_DAMAGE_CODES = (11, 26)
"""SQLITE_CORRUPT, SQLITE_NOTADB: the file itself is damaged (not busy, locked or unreadable)."""


def _is_damage(exc: BaseException | None) -> bool:
    """Whether an SQLite error says the database file is damaged."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _SQLITE_DAMAGE_CODES


_DELETING = re.compile(r"\.(?P<folder>.+)\.deleting-[0-9a-f]+")
_OLD = re.compile(r"\.(?P<folder>.+)\.old-(?P<pid>\d+)")
_TMP = re.compile(r"\.(?P<folder>.+)\.tmp-(?P<pid>\d+)-[a-z0-9_]+")
"""Hidden folder names of a delete (:meth:`Registry.delete`) and of an overwrite (:func:`hmlc_core.runs.save_run`)."""


def _process_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this machine (this process counts; so does one we may not signal)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _decode_object(text: Any) -> tuple[dict[str, Any], str | None]:
    """A JSON object column's value and None, or ``{}`` and what is wrong with it."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        return {}, f"is not valid JSON ({exc})"
    if not isinstance(value, dict):
        return {}, f"is not a JSON object ({type(value).__name__})"
    return value, None


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
    if config.shortlist is not None:
        words.append(f"shortlist {config.shortlist}")
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

    Attributes
    ----------
    damaged : pathlib.Path or None
        Where a damaged registry file (empty, not SQLite, malformed, without
        the schema) was kept aside when this object opened it, as
        ``registry.sqlite.damaged-<YYYYmmdd-HHMMSS>``, a new registry being
        started in its place (logged as a warning); None otherwise. Never
        done with ``create=False``, which raises instead.
    import_problems : dict of str to str
        Run folders :meth:`sync` could not import (folder name -> reason).

    Raises
    ------
    RegistryError
        If the file is not an SQLite database, has a newer schema, or is not
        an hmlc-lab registry (the message names the file); with ``create``
        True, only for another application's database, a newer schema, or a
        file that cannot be opened (locked, no permission).

    Notes
    -----
    Crash safety (issue 13, item 5) uses no journal: a half-done operation
    is recognised by its hidden folder name, and :meth:`recover` (called by
    :func:`hmlc_core.jobs.startup`) finishes or undoes it.

    * :meth:`delete` renames the folder to ``.<folder>.deleting-<hex>`` and
      deletes the row inside one write transaction, so the registry commit
      decides: after a kill, a ``.deleting`` folder whose row still exists
      (with no folder of that name) is renamed back (the delete never
      happened); any other ``.deleting`` folder is removed (it was committed).
    * An overwrite (:func:`hmlc_core.runs.save_run`) writes the new run to
      ``.<folder>.tmp-<pid>-*``, moves the old one to ``.<folder>.old-<pid>``,
      then renames the new one into place. For a writer ``pid`` that is no
      longer alive, with no ``<folder>``: the new run is put in place when
      its folder is complete (all :data:`hmlc_core.runs.RUN_FILES`), else
      the old run is put back; the leftover ``.old`` and ``.tmp`` folders
      are then removed. Folders of a live ``pid`` are left alone.
    * :meth:`sync` checks that a folder still exists inside its write
      transaction, and :meth:`delete` moves it aside under the same lock, so
      a run deleted by one process is never imported again by another: no
      row points to a missing folder.

    :meth:`recover` holds the write lock while it looks and renames, so it is
    safe next to other processes' deletes and imports. A pid is checked on
    this machine only (a runs directory shared across machines may have its
    leftovers of a live writer elsewhere removed).
    """

    def __init__(self, runs_dir: str | Path, create: bool = True) -> None:
        self.runs_dir = Path(runs_dir).expanduser().resolve()
        self.path = self.runs_dir / REGISTRY_FILE
        if not create and not self.path.is_file():
            raise RegistryError(f"no run registry at {self.path}")
        self.import_problems: dict[str, str] = {}
        self.damaged: Path | None = None
        if create:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._init_schema(create)
        except _DamagedRegistry as exc:
            if not create:
                raise RegistryError(f"{exc}; it is kept aside and a new registry started when the dashboard or a "
                                    "job next opens it for writing") from exc
            self.damaged = self._set_aside(exc.inode)
            if self.damaged is not None:
                log.warning("%s is damaged (%s): kept aside as %s; a new registry is started and the run folders "
                            "are imported again (queued jobs and run names are lost; see the kept file)",
                            self.path, exc.reason, self.damaged)
            self._init_schema(create)
        # An idle connection held for the registry's lifetime: closing the last connection to a WAL database
        # checkpoints and deletes the WAL (about 10 ms per call); with this one open a write costs ~0.1 ms.
        # After one read it stays idle (no open transaction), so it holds no snapshot and blocks no checkpoint.
        self._keeper: sqlite3.Connection | None = sqlite3.connect(self.path, check_same_thread=False)
        try:
            self._keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()  # attach it to the WAL index
        except sqlite3.Error as exc:
            self.close()
            raise RegistryError(f"{self.path}: not a usable run registry ({exc})") from exc

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
        """Check the registry file: its schema version, and that SQLite can read its table list.

        A missing registry is created (:meth:`_create`). A damaged one (an empty file, not an SQLite
        database, a malformed database, or one without the schema) raises :class:`_DamagedRegistry`.
        An up-to-date registry is only read (no lock is taken), so opening one is cheap.

        Raises
        ------
        RegistryError
            If the registry is missing and ``create`` is False, has a newer schema, is another
            application's SQLite database, or cannot be opened (locked, no permission).
        """
        if create and not self.path.exists():
            self._create()
        try:
            info = self.path.stat()
        except FileNotFoundError as exc:
            raise RegistryError(f"no run registry at {self.path}") from exc
        inode = info.st_ino
        if info.st_size == 0:
            raise _DamagedRegistry(f"{self.path}: the run registry is an empty file", "an empty file", inode)
        try:
            conn = self._connect()
        except RegistryError as exc:
            if _is_damage(exc.__cause__):
                raise _DamagedRegistry(str(exc), str(exc.__cause__), inode) from exc
            raise
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        except sqlite3.Error as exc:
            if _is_damage(exc):
                raise _DamagedRegistry(f"{self.path}: damaged run registry ({exc})", str(exc), inode) from exc
            raise RegistryError(f"{self.path}: not a usable run registry ({exc})") from exc
        finally:
            conn.close()
        if version > SCHEMA_VERSION:
            raise RegistryError(f"{self.path}: schema version {version} is newer than this hmlc-lab "
                                f"understands ({SCHEMA_VERSION}); upgrade hmlc-lab")
        if version == 0 and tables:
            raise RegistryError(f"{self.path}: an SQLite database that is not an hmlc-lab run registry")
        if version != SCHEMA_VERSION:
            raise _DamagedRegistry(f"{self.path}: the run registry has no schema", "no schema (an empty database)",
                                   inode)

    def _create(self) -> None:
        """Create a new registry atomically: its schema is written (in WAL mode) to a hidden temporary file,
        which is then linked into place (if another process created one first, that one is kept)."""
        fd, name = tempfile.mkstemp(prefix=f".{REGISTRY_FILE}.new-", dir=self.runs_dir)
        os.close(fd)
        tmp = Path(name)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    log.warning("%s: journal mode is %r, not WAL (a network file system?)", self.path, mode)
                with self._transaction(conn):
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute("INSERT INTO settings (key, value) VALUES ('max_concurrent', ?)",
                                 (DEFAULT_MAX_CONCURRENT,))
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            finally:
                conn.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process created the registry meanwhile
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: cannot create the run registry ({exc})") from exc
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
                leftover.unlink(missing_ok=True)

    def _set_aside(self, inode: int) -> Path | None:
        """Rename the damaged registry (and its ``-wal``/``-shm`` files) to ``registry.sqlite.damaged-<time>``.

        Only when the file is still the damaged one (inode ``inode``): another process may have set it
        aside and created a new registry meanwhile. Returns the new name, or None when nothing was moved.
        """
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{REGISTRY_FILE}.damaged-{stamp}")
        n = 1
        while aside.exists():
            aside, n = self.path.with_name(f"{REGISTRY_FILE}.damaged-{stamp}-{n}"), n + 1
        try:
            if self.path.stat().st_ino != inode:
                return None
            self.path.rename(aside)
        except FileNotFoundError:
            return None
        for suffix in ("-wal", "-shm"):
            try:
                self.path.with_name(REGISTRY_FILE + suffix).rename(aside.with_name(aside.name + suffix))
            except FileNotFoundError:
                pass
        return aside

    def journal_mode(self) -> str:
        """The database's journal mode (``"wal"`` normally)."""
        with self._read() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def _record(self, row: sqlite3.Row) -> RunRecord:
        """A row as a :class:`RunRecord`; a ``config`` or ``metrics`` that is not a JSON object (a damaged or
        hand-edited row) becomes ``{}``, logged and told in ``error``, so one bad row spoils only itself."""
        config, config_problem = _decode_object(row["config"])
        metrics, metrics_problem = _decode_object(row["metrics"]) if row["metrics"] else ({}, None)
        problems = [f"its stored {what} {problem}" for what, problem in (("config", config_problem),
                                                                          ("metrics", metrics_problem)) if problem]
        error = row["error"]
        if problems:
            log.warning("run %s in %s: %s", row["id"], self.path, "; ".join(problems))
            error = "; ".join([*([error] if error else []), *problems])
        return RunRecord(
            id=row["id"], name=row["name"], dataset=row["dataset"], config=config,
            status=row["status"], created_at=row["created_at"], started_at=row["started_at"],
            finished_at=row["finished_at"], metrics=metrics,
            error=error, pid=row["pid"], pid_token=row["pid_token"], folder=row["folder"],
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

        The folder is first renamed aside to ``.<folder>.deleting-<hex>`` and
        the row deleted in the same write transaction; on a failure the folder
        is renamed back before the lock is released, so both stay in place.
        Then the folder is removed; only this run's folder inside
        :attr:`runs_dir` is touched. A process killed in between is recovered
        by :meth:`recover` (see the class notes).

        Raises
        ------
        RegistryError
            If there is no such run, or it is running (cancel it first).
        OSError
            If the folder cannot be moved aside (nothing is changed then).
        """
        aside = None
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
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
                conn.execute("COMMIT")
            except BaseException:
                if aside is not None and aside.exists() and not path.exists():
                    aside.rename(path)  # still under the write lock: no other process saw it aside
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise RegistryError(f"{self.path}: {exc}") from exc
        finally:
            conn.close()
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
        (self.runs_dir / LOG_DIR / f"{run_id}.log").unlink(missing_ok=True)
        log.info("deleted run %s (%s)", run_id, folder)

    def recover(self) -> list[str]:
        """Finish or undo the deletes and overwrites that a killed process left half done (at each start).

        What is done to each hidden ``.deleting``, ``.old`` and ``.tmp``
        folder is described in the class notes; all looking and renaming is
        done under the registry's write lock, removing afterwards.

        Returns
        -------
        list of str
            One line per folder put back in place or removed (also logged).

        Raises
        ------
        RegistryError
            If the registry cannot be written.
        OSError
            If a folder cannot be renamed back into place.
        """
        actions: list[str] = []
        doomed: list[Path] = []
        with self._write() as conn:
            folders = {r["folder"] for r in conn.execute("SELECT folder FROM runs")}
            hidden = sorted(p for p in self.runs_dir.iterdir() if p.name.startswith(".") and p.is_dir())
            for aside in hidden:
                if (match := _DELETING.fullmatch(aside.name)) is None:
                    continue
                target = self.runs_dir / match["folder"]
                if match["folder"] in folders and not target.exists():
                    aside.rename(target)
                    actions.append(f"put back {target}: its delete was killed before the registry commit")
                else:
                    doomed.append(aside)
            for aside in hidden:
                if (match := _OLD.fullmatch(aside.name)) is None or _process_alive(int(match["pid"])):
                    continue
                target = self.runs_dir / match["folder"]
                if not target.exists():
                    new = [p for p in hidden if (m := _TMP.fullmatch(p.name)) is not None
                           and (m["folder"], m["pid"]) == (match["folder"], match["pid"])
                           and all((p / name).is_file() for name in RUN_FILES)]
                    if new:
                        new[-1].rename(target)
                        actions.append(f"put the new run in place at {target}: its overwrite was killed")
                    else:
                        aside.rename(target)
                        actions.append(f"put the old run back at {target}: its overwrite was killed")
                        continue
                doomed.append(aside)
            doomed += [p for p in hidden if (m := _TMP.fullmatch(p.name)) is not None and p.exists()
                       and not _process_alive(int(m["pid"]))]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
            actions.append(f"removed {path}, left by a killed delete or save")
        for action in actions:
            log.warning("run registry recovery: %s", action)
        return actions

    # ----------------------------------------------------------- importing
    def sync(self) -> list[RunRecord]:
        """Import run folders of :attr:`runs_dir` that have no row (made by the CLI or copied in).

        A folder counts when it is not hidden and holds ``summary.json`` and
        ``config.json``. It is imported as ``finished``, or ``cancelled``
        when its summary says ``interrupted``, with its headline metrics; a
        folder whose files cannot be read is imported as ``failed`` with the
        error naming the file. Its display name is :func:`imported_run_name`
        (the folder name, or a readable name for the CLI's default folders).
        A folder the registry cannot hold (a name its CHECK constraints
        refuse, such as one with a backslash or only blanks) is skipped and
        logged, with the reason in :attr:`import_problems`; the folders after
        it are still imported.
        Safe to call concurrently (a folder is imported once), and with
        :meth:`delete` (a folder is imported only if it still exists once the
        write lock is held).

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
            try:
                row = _import_row(path)
            except FileNotFoundError:
                continue  # deleted or moved meanwhile
            try:
                with self._write() as conn:
                    if conn.execute("SELECT 1 FROM runs WHERE folder = ?", (path.name,)).fetchone() is not None:
                        continue  # imported meanwhile by another caller
                    if not (path / "summary.json").is_file():
                        continue  # deleted meanwhile: delete() moves a folder aside under this same lock
                    run_id = self._free_id(conn)
                    conn.execute(
                        "INSERT INTO runs (id, name, dataset, config, status, created_at, started_at, finished_at, "
                        "metrics, error, folder, epoch, epochs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, row["name"], row["dataset"], json.dumps(row["config"]), row["status"],
                         row["created_at"], row["started_at"], row["created_at"], json.dumps(row["metrics"]),
                         row["error"], path.name, row["epoch"], row["epochs"]))
            except RegistryError as exc:
                if not isinstance(exc.__cause__, sqlite3.IntegrityError):
                    raise
                if path.name not in self.import_problems:
                    log.warning("cannot import run folder %r: the registry refuses it (%s)", path.name, exc.__cause__)
                self.import_problems[path.name] = f"the registry refuses this folder ({exc.__cause__})"
                continue
            log.info("imported run folder %s as %s", path, row["status"])
            added.append(self.get(run_id))
        return added


def _import_row(path: Path) -> dict[str, Any]:
    """Registry fields of an unregistered run folder, read from its ``summary.json`` and ``config.json``.

    The files are read and checked as :func:`hmlc_core.runs.load_run` does (size, UTF-8, links out of
    the folder, field types, counts >= 0); a folder that fails, or that links outside the runs folder,
    gets a ``failed`` row whose error names the file and the field.

    Raises
    ------
    FileNotFoundError
        If ``summary.json`` disappeared (the folder was deleted meanwhile).
    """
    try:
        mtime = (path / "summary.json").stat().st_mtime
    except FileNotFoundError:
        raise
    except OSError:
        mtime = time.time()
    try:
        if not path.resolve().is_relative_to(path.parent.resolve()):
            raise RunError(f"it links outside the runs folder (to {path.resolve()}); links out are refused", path)
        summary = read_summary(path)
        config = read_config(path).to_dict()
    except RunError as exc:
        return {"name": path.name, "dataset": "unknown", "config": {}, "status": "failed", "created_at": mtime,
                "started_at": None,
                "metrics": {}, "error": f"cannot import this run folder: {exc}", "epoch": 0, "epochs": None}
    try:
        created = datetime.strptime(summary["created"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except (KeyError, TypeError, ValueError):
        created = mtime
    seconds = summary.get("train_seconds")
    epochs = summary.get("epochs_planned") or config.get("epochs")  # both checked: int >= 0 or None
    return {
        "name": imported_run_name(path.name, TrainConfig.from_dict(config)),
        "dataset": str(summary.get("dataset") or config["dataset"]),
        "config": _json_safe(config),
        "status": "cancelled" if summary.get("status") == "interrupted" else "finished",
        "created_at": created,
        "started_at": created - seconds if isinstance(seconds, (int, float)) and math.isfinite(seconds) else None,
        "metrics": headline_metrics(summary),
        "error": "interrupted (imported run folder)" if summary.get("status") == "interrupted" else None,
        "epoch": summary.get("epochs_completed") or 0,
        "epochs": epochs if epochs else None,
    }


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
