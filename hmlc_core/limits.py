"""Bounds on background jobs: how many run and wait, how much memory one may take, and disk space checks.

The dashboard lets anyone who reaches it launch training jobs, so the job layer (:mod:`hmlc_core.jobs`)
and the Retrain page refuse, before anything starts, a job that would exceed these limits:

- ``HMLC_MAX_CONCURRENT_JOBS`` (default :data:`DEFAULT_MAX_CONCURRENT_JOBS`): the largest concurrency
  setting of a runs folder's registry;
- ``HMLC_MAX_QUEUED_JOBS`` (default :data:`DEFAULT_MAX_QUEUED_JOBS`): how many jobs may wait in the queue;
- ``HMLC_MAX_JOB_MEMORY_MB`` (default :data:`DEFAULT_MAX_JOB_MEMORY_MB`): the memory one job is
  estimated to need (:func:`estimate_job_memory`).

Worst case, the jobs of one runs folder together take ``max concurrent x max job memory``.

Before training, the output folder is checked for writability and free space against the estimated
size of the saved run (:func:`check_output_dir`), so a read-only or full disk is reported before
the work, not after it. Imports only the standard library (no numpy, no torch).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hmlc_core.config import TrainConfig

__all__ = [
    "MAX_CONCURRENT_ENV", "MAX_QUEUED_ENV", "MAX_MEMORY_ENV", "DEFAULT_MAX_CONCURRENT_JOBS",
    "DEFAULT_MAX_QUEUED_JOBS", "DEFAULT_MAX_JOB_MEMORY_MB", "MB", "LimitError", "JobLimits", "DatasetShape",
    "model_parameters", "estimate_job_memory", "estimate_run_size", "check_job_memory", "check_output_dir",
]

MAX_CONCURRENT_ENV = "HMLC_MAX_CONCURRENT_JOBS"
MAX_QUEUED_ENV = "HMLC_MAX_QUEUED_JOBS"
MAX_MEMORY_ENV = "HMLC_MAX_JOB_MEMORY_MB"

DEFAULT_MAX_CONCURRENT_JOBS = 4
"""Jobs that may train at once unless ``HMLC_MAX_CONCURRENT_JOBS`` says otherwise (each uses one core)."""

DEFAULT_MAX_QUEUED_JOBS = 20
"""Jobs that may wait in the queue unless ``HMLC_MAX_QUEUED_JOBS`` says otherwise."""

DEFAULT_MAX_JOB_MEMORY_MB = 8192
"""Estimated memory of one job, in MiB (2**20 bytes), unless ``HMLC_MAX_JOB_MEMORY_MB`` says otherwise.

Enough for every dataset's paper preset with 2 heads (the largest, seq_GO with hidden width 9,000, is
estimated at 4.4 GiB)."""

MB = 2**20
"""Bytes in the MB (MiB) of the limits and messages."""


class LimitError(ValueError):
    """A job refused by a limit of this module (or an output folder that cannot take the run).

    A ValueError, so the CLI prints it as a user error and the Retrain page shows it as a reason not to
    launch. The message names the limit, the field or folder, and what to change.
    """


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise LimitError(f"environment variable {name} must be a whole number >= 1, got {raw!r}") from None
    if value < 1:
        raise LimitError(f"environment variable {name} must be a whole number >= 1, got {raw!r}")
    return value


@dataclass(frozen=True)
class JobLimits:
    """The limits on background jobs (see the module docstring).

    Attributes
    ----------
    max_concurrent : int
        Largest concurrency setting, >= 1.
    max_queued : int
        Largest number of queued jobs, >= 1.
    max_job_memory_mb : int
        Largest estimated memory of one job in MiB, >= 1.
    """

    max_concurrent: int = DEFAULT_MAX_CONCURRENT_JOBS
    max_queued: int = DEFAULT_MAX_QUEUED_JOBS
    max_job_memory_mb: int = DEFAULT_MAX_JOB_MEMORY_MB

    @classmethod
    def from_env(cls) -> JobLimits:
        """The limits set by ``HMLC_MAX_CONCURRENT_JOBS``, ``HMLC_MAX_QUEUED_JOBS``, ``HMLC_MAX_JOB_MEMORY_MB``.

        Raises
        ------
        LimitError
            If a variable is set to anything but a whole number >= 1 (naming it).
        """
        return cls(_env_int(MAX_CONCURRENT_ENV, DEFAULT_MAX_CONCURRENT_JOBS),
                   _env_int(MAX_QUEUED_ENV, DEFAULT_MAX_QUEUED_JOBS),
                   _env_int(MAX_MEMORY_ENV, DEFAULT_MAX_JOB_MEMORY_MB))

    def describe(self) -> str:
        """One sentence for users, naming the environment variables."""
        return (f"at most {self.max_concurrent} concurrent runs ({MAX_CONCURRENT_ENV}), {self.max_queued} "
                f"queued jobs ({MAX_QUEUED_ENV}) and {self.max_job_memory_mb} MB of estimated memory per job "
                f"({MAX_MEMORY_ENV})")


@dataclass(frozen=True)
class DatasetShape:
    """The sizes of a dataset that memory and disk estimates need.

    Attributes
    ----------
    n_features : int
        Input width D after preprocessing.
    n_nodes : int
        Hierarchy nodes C.
    n_train, n_valid, n_test : int
        Rows per split (0 for a missing valid split).
    """

    n_features: int
    n_nodes: int
    n_train: int
    n_valid: int
    n_test: int


def model_parameters(config: TrainConfig, n_features: int, n_nodes: int) -> int:
    """Number of weights and biases of the ensemble ``config`` describes (as :class:`hmlc_core.model.HMCEnsemble`).

    Parameters
    ----------
    config : TrainConfig
        Resolved (``hidden`` set).
    n_features, n_nodes : int
        D and C.

    Returns
    -------
    int
        ``sum over layers of copies x (fan_in x fan_out + fan_out)``, where ``copies`` is 1 for a shared
        layer (every layer of ``mc-dropout``, the first of ``shared``) and ``heads`` otherwise.
    """
    dims = [n_features] + [int(config.hidden)] * (config.n_layers - 1) + [n_nodes]
    total = 0
    for layer, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        shared = config.ensemble == "mc-dropout" or (config.ensemble == "shared" and layer == 0
                                                    and config.n_layers > 1)
        total += (1 if shared else config.heads) * (fan_in * fan_out + fan_out)
    return total


def estimate_job_memory(config: TrainConfig, shape: DatasetShape) -> int:
    """Estimated peak memory of loading the data, training and saving one run, in bytes.

    ``16 P`` (float32 weights, gradients and Adam's two moments, ``P`` = :func:`model_parameters`)
    ``+ 4 B H (3 h (L - 1) + 8 C)`` (one training batch: three tensors per hidden layer, eight of the
    output width in the loss) ``+ 32 N (D + C)`` (the data: the ARFF text parsed into Python objects,
    then float32 copies; ``N`` all rows) ``+ 12 H T C`` (member probabilities of the larger of test and
    valid, ``T`` rows, and the uncertainty maps computed from them). An upper estimate for refusing
    absurd jobs. Measured on cellcycle_GO (quick profile, 1 epoch; peak RSS above that of the imports):
    557 MB with 1 head and 766 MB with 4, against estimates of 630 and 1,079 MB.

    Parameters
    ----------
    config : TrainConfig
        Resolved and validated.
    shape : DatasetShape

    Returns
    -------
    int
    """
    heads, hidden, layers, nodes = config.heads, int(config.hidden), config.n_layers, shape.n_nodes
    n_rows = shape.n_train + shape.n_valid + shape.n_test
    weights = 16 * model_parameters(config, shape.n_features, nodes)
    batch = 4 * int(config.batch_size) * heads * (3 * hidden * (layers - 1) + 8 * nodes)
    data = 32 * n_rows * (shape.n_features + nodes)
    evaluation = 12 * heads * max(shape.n_test, shape.n_valid) * nodes
    return weights + batch + data + evaluation


def estimate_run_size(config: TrainConfig, shape: DatasetShape) -> int:
    """Estimated size of the saved run folder in bytes, plus a margin.

    ``4 P`` (model.pt) ``+ T C (1 + 4 + 2 H + 2)`` (predictions.npz: labels as uint8, mean
    probabilities as float32, member probabilities and uncertainty as float16) ``+ V C (1 + 4)``
    (held-out valid labels and probabilities with ``fit_on="train"``) ``+ 400 C`` (node_metrics.csv,
    about 400 bytes a node), times 1.2, plus 1 MiB for the small files.

    Parameters
    ----------
    config : TrainConfig
        Resolved.
    shape : DatasetShape

    Returns
    -------
    int
    """
    nodes = shape.n_nodes
    model = 4 * model_parameters(config, shape.n_features, nodes)
    predictions = shape.n_test * nodes * (1 + 4 + 2 * config.heads + 2)
    held_out = shape.n_valid * nodes * 5 if config.fit_on == "train" else 0
    return math.ceil(1.2 * (model + predictions + held_out + 400 * nodes)) + MB


def check_job_memory(config: TrainConfig, shape: DatasetShape, limit_mb: int) -> int:
    """Refuse a job whose estimated memory (:func:`estimate_job_memory`) exceeds ``limit_mb`` MiB.

    Returns
    -------
    int
        The estimate in bytes.

    Raises
    ------
    LimitError
        Naming the fields that set the size (heads, hidden, batch_size) with their values.
    """
    need = estimate_job_memory(config, shape)
    if need > limit_mb * MB:
        params = model_parameters(config, shape.n_features, shape.n_nodes)
        raise LimitError(
            f"config fields 'heads' ({config.heads}), 'hidden' ({config.hidden}) and 'batch_size' "
            f"({config.batch_size}) give an estimated {need / MB:,.0f} MB of memory ({params:,} parameters "
            f"for {shape.n_features} features and {shape.n_nodes} nodes), above the limit of {limit_mb:,} MB "
            f"per job ({MAX_MEMORY_ENV}): lower heads or hidden")
    return need


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_dir(folder: str | Path, needed_bytes: int) -> None:
    """Check, before training, that a run can be written into ``folder`` (created if missing).

    The nearest existing folder on the way to ``folder`` must be a directory, writable (``os.access``
    and a real temporary file, which catches read-only mounts and ACLs) and on a file system with at
    least ``needed_bytes`` free (``shutil.disk_usage``).

    Parameters
    ----------
    folder : path
        Where the run folder will be created (its parent, for a run directory).
    needed_bytes : int
        :func:`estimate_run_size`.

    Raises
    ------
    LimitError
        Naming the folder and what is wrong (not a folder, not writable, not enough space).
    """
    base = _existing_ancestor(Path(folder))
    if not base.is_dir():
        raise LimitError(f"cannot save the run under {folder}: {base} is not a folder")
    problem = None
    if not os.access(base, os.W_OK | os.X_OK):
        problem = "permission denied"
    else:
        try:
            with tempfile.TemporaryFile(dir=base):
                pass
        except OSError as exc:
            problem = exc.strerror or str(exc)
    if problem is not None:
        raise LimitError(f"cannot save the run under {folder}: {base} is not writable ({problem}); choose "
                         "another output folder")
    free = shutil.disk_usage(base).free
    if free < needed_bytes:
        raise LimitError(f"not enough disk space to save the run under {folder}: {free / MB:,.1f} MB free on "
                         f"the file system of {base}, the run needs about {needed_bytes / MB:,.1f} MB; free "
                         "some space or choose another output folder")
