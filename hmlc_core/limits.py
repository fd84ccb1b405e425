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

Enough for every dataset's preset with 2 heads (the largest, seq_GO with hidden width 9,000, is estimated at
2.9 GiB with the paper profile and 3.9 GiB with the quick one)."""

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


# Constants of :func:`estimate_job_memory`, in bytes. "Measured": peak resident set size of a job's stage above
# that of the process after its imports (``VmHWM`` reset between stages through ``/proc/self/clear_refs``),
# 2026-11-29 on this 2-core machine; the cases are listed in :func:`estimate_job_memory`.
_RUNTIME_BYTES = 128 * MB
"""Taken by any job whatever its sizes: torch's and numba's first-use allocations and thread pools (measured
74-96 MiB on the 121-node synthetic dataset, whose arrays take under 6 MiB)."""
_NODE_BYTES = 2048
"""Per hierarchy node, for the whole job: node ids, parent and child maps, ancestor pairs, MCM and loss buffers
(measured after loading: 0.6 KiB a node on the 111,111-node synthetic tree; 4.8 KiB on cellcycle_GO, a DAG,
the ARFF parser's leftovers included, which :data:`_RUNTIME_BYTES` also covers)."""
_STEP_BYTES = 128
"""Per (batch row, member, node) of a training step over every node: logits, probabilities, MCM's transposed
copy, int64 arg-max and per-level buffers, the loss terms and their gradients (measured 82-120 on the
22,765- and 111,111-node synthetic data at batch 64)."""
_PREDICT_BYTES = 16
"""Per (row, member, node) of one chunk of :func:`hmlc_core.train.predict_members`: logits, probabilities,
MCM's transposed copy and running max, the output (measured 15.6-16.4 at 111,111 nodes)."""
_SAVE_BYTES = 12
"""Per (test row, node) in :func:`hmlc_core.runs.save_run` beside the member probabilities' float16 copy (2 H
bytes): the mean (float32), the display mode's uncertainty (float16) and the decision (uint8), 7 bytes written
one chunk of ``eval_batch_size`` test rows at a time into the arrays saved, and what the allocator keeps of them
(measured 6 on the 111,111-node synthetic data, 9 on cellcycle_GO). It also covers the metrics computed from the
mean and the decisions afterwards, 13 bytes a test cell (8 of them :func:`hmlc_core.metrics.summarize`'s)."""
_ENTRY_BYTES = 16
"""Per (batch row, scored entry, member, hidden unit + 1) of a shortlist training step: the gathered classifier
rows, their permuted copy, their gradient and its sparse update (measured 15 on cellcycle_GO, K = 100,
400 uniform negatives, batch 64)."""
_POSITIVES_ALLOWANCE = 256
"""Scored entries allowed for a sample's positives in a shortlist step (cellcycle_GO: 142 at most)."""


def _memory_terms(config: TrainConfig, shape: DatasetShape) -> tuple[int, dict[str, int]]:
    """What stays resident through a job and the peak of each stage above it, in bytes (see
    :func:`estimate_job_memory`, which states every term).

    Returns
    -------
    resident : int
    stages : dict of str to int
        ``"load"``, ``"train"`` and ``"save"`` (the last with what the allocator keeps of training).
    """
    heads, hidden, nodes, features = config.heads, int(config.hidden), shape.n_nodes, shape.n_features
    batch = int(config.batch_size)
    held_out = config.fit_on == "train"
    n_rows = shape.n_train + shape.n_valid + shape.n_test
    n_fit = shape.n_train + (0 if held_out else shape.n_valid)
    params = model_parameters(config, features, nodes)

    def chunk(rows: int) -> int:
        return _PREDICT_BYTES * heads * min(config.eval_batch_size, rows) * nodes

    def predict(rows: int) -> int:
        return chunk(rows) + 8 * heads * rows * nodes

    step = _STEP_BYTES * batch * heads * nodes
    resident = _RUNTIME_BYTES + _NODE_BYTES * nodes + n_rows * (nodes + 4 * features)
    load = max(shape.n_train, shape.n_valid, shape.n_test) * nodes + 8 * nodes * features + 32 * n_rows * features
    if config.shortlist is None:
        train = (12 if config.kernel == "numba" else 16) * params + 4 * n_fit * features + step
        if held_out:
            train += predict(shape.n_valid) + 16 * shape.n_valid * nodes
        if config.patience is not None:
            train += 4 * params
    else:
        out = heads * (hidden + 1) * nodes
        table = 4 * nodes * heads * hidden
        width = min(nodes, config.shortlist + config.shortlist_uniform + _POSITIVES_ALLOWANCE)
        train = (16 * (params - out) + 12 * out + 4 * n_fit * (features + heads * hidden + 2 * config.shortlist)
                 + table + max(4 * table, _ENTRY_BYTES * batch * width * heads * (hidden + 1)))
        if config.shortlist_full_epochs:
            train = max(train, 16 * params + 8 * out + table + max(step, 4 * table))
    beside = chunk(shape.n_test)
    if held_out:
        fit = 48 * shape.n_valid * nodes if config.decision != "fixed" else 0
        beside = max(beside, 4 * shape.n_valid * nodes + max(chunk(shape.n_valid), fit))
    save = 4 * params + max(shape.n_train * nodes, (2 * heads + _SAVE_BYTES) * shape.n_test * nodes + beside)
    return resident, {"load": load, "train": train, "save": save + train // 2}


def estimate_job_memory(config: TrainConfig, shape: DatasetShape) -> int:
    """Estimated peak memory (resident set) of loading the data, training and saving one run, in bytes.

    The stages run one after another, so the estimate is what stays resident plus the largest stage::

        128 MiB + 2 KiB C + N (C + 4 D) + max(load, train, save + train / 2)

    with ``N`` the rows of all splits (``T`` test, ``V`` valid, ``N_fit`` the rows trained on), ``C`` nodes,
    ``D`` features, ``H`` members, ``h`` hidden width, ``B`` batch rows, ``E`` eval_batch_size and ``P`` the
    parameters (:func:`model_parameters`). Every term is in bytes and counts the arrays the code allocates
    (its module and function named), with the measured constants of this module:

    - 128 MiB: torch's and numba's first-use allocations; 2 KiB a node: the hierarchy and the loss's buffers;
      ``N (C + 4 D)``: every split's labels, uint8 (``HMCDataset``'s ``Y``), and features, float32;
    - ``load = max_split_rows C + 8 C D + 32 N D``: :meth:`hmlc_core.hierarchy.Hierarchy.label_matrix`'s
      unpropagated copy of one split's labels (the ARFF labels are read as term lists, not per cell), the
      synthetic generator's float64 prototypes, the float64 features and the standardised copies
      (:func:`hmlc_core.data.standardize_features`);
    - ``train`` (:func:`hmlc_core.train.train`) ``= 16 P`` (float32 weights, gradients and Adam's two moments;
      ``12 P`` with the numba kernel, which keeps no gradients) ``+ 4 N_fit D`` (the stacked features)
      ``+ 128 B H C`` (one step over every node), plus with ``fit_on="train"`` each epoch's valid
      predictions, ``predict(V) + 16 V C`` (mean and micro AUPRC), and with ``patience`` the kept best
      weights, ``4 P``;
    - ``train`` with ``shortlist`` ``K`` (:func:`hmlc_core.shortlists.train_shortlist`) ``= 16 P_trunk +
      12 P_out`` (the output layer's rows, ``P_out = H (h + 1) C``, with SparseAdam's two dense moments; its
      gradients are sparse) ``+ 4 N_fit (D + H h + 2 K)`` (features, representations, int64 shortlists)
      ``+ L + max(4 L, 16 B W H (h + 1))``, ``L = 4 C H h`` one float32 table of label embeddings: the index
      kept while the next one is built from four more tables (label sums, normalised copy, index copy, faiss
      storage), or a step's gathered rows for ``W = min(C, K + shortlist_uniform + 256)`` entries a sample.
      No ``(B, C)`` tensor is built, except in the ``shortlist_full_epochs`` last epochs: then at least
      ``16 P + 8 P_out + L + max(128 B H C, 4 L)`` (dense Adam beside SparseAdam's moments);
    - ``save`` (:func:`hmlc_core.runs.save_run`) ``= 4 P + max(N_train C, (2 H + 12) T C + chunk(T))``: the
      test rows are predicted ``E`` at a time into the arrays saved and the decisions, the ``2 H + 12`` bytes a
      test cell of :data:`_SAVE_BYTES`, beside one chunk of predictions, ``chunk(R) = 16 H min(E, R) C``
      (:func:`hmlc_core.train.predict_members`); before them ``N_train C``, the boolean copy of the training
      labels :func:`hmlc_core.tail_metrics.information_content` takes. With ``fit_on="train"`` ``chunk(T)``
      becomes at least ``4 V C + max(chunk(V), 48 V C)``: the held-out mean probabilities (float32) and the
      ``global`` or ``per-node`` decision rule fitted on them (``48 V C``; nothing for ``fixed``). ``train / 2``
      is what the allocator keeps of what training freed (measured after training: 6-28 % of the training
      stage's peak at 111,111 nodes, up to 45 % on cellcycle_GO);
    - ``predict(R) = chunk(R) + 8 H R C``: :func:`hmlc_core.train.predict_members` over ``R`` rows at once, as
      training predicts the held-out rows each epoch (the chunks and their concatenation).

    Measured peaks above the imports (MiB), against this estimate, and measured while ``save_run`` evaluated the
    whole test split at once (``whole split``; ``(6 H + 64) T C`` estimated its stage). ``*``: training stopped
    after 30-50 steps (20-150 in the last column), past the first ones, where the optimiser's moments are
    allocated; ``save_run`` ran in full::

        case (H = 2, h = 500 unless stated; train/valid/test rows)          measured  estimate  whole split
        cellcycle_GO quick, H = 1, h = 1000 (1,625/848/1,278)                    307       331          449
        cellcycle_GO quick, H = 4, h = 1000                                      572       685          675
        cellcycle_GO paper (numba, batch 4), h = 1000 *                          301       399          443
        cellcycle_GO quick, h = 1000, fit_on="train"                             398       548          547
        cellcycle_GO shortlist K = 100, 400 uniform, quick, h = 1000 *         1,348     1,810        1,389
        synthetic 22,765 nodes quick, fit_on="train" (3,000/1,000/1,000) *     1,208     2,046        1,965
        synthetic 111,111 nodes paper (numba) (400/100/500) *                  3,179     4,116        3,969
        synthetic 111,111 nodes quick, fit_on="train" (640/300/300)            3,355     5,955        4,065
        synthetic 111,111 nodes shortlist, 2 cycles (2,000/200/500)            2,999     5,308        4,197
        synthetic 111,111 nodes shortlist, 1 full epoch (200/40/300)           4,219     5,078        4,223
        synthetic 111,111 nodes shortlist (8,000/1,000/300) *                  3,285     5,008        4,057
        synthetic 111,111 nodes shortlist (400/100/1,000)                      3,777     6,065        6,865
        synthetic 111,111 nodes shortlist (400/100/5,000)                      8,707    13,271            -
        runs/large: 111,111 nodes shortlist K = 100 (10,000/1,000/500)         3,793     6,264        5,382

    At 111,111 nodes and thousands of test rows ``save_run`` is the largest stage: ``(2 H + 12) T C`` is 8.9 GB
    for the 5,000 test rows of :data:`hmlc_core.synthetic.LARGE_SYNTHETIC` (``(6 H + 64) T C``, 42 GB, while the
    whole split was evaluated at once), so with its 5.6 GB of labels the whole benchmark is estimated at 17.7 GiB,
    within a 24 GB machine.
    Not counted: LPROS's duplicated rows and image encoders' activations.

    Parameters
    ----------
    config : TrainConfig
        Resolved and validated.
    shape : DatasetShape

    Returns
    -------
    int
        Bytes.
    """
    resident, stages = _memory_terms(config, shape)
    return resident + max(stages.values())


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
        Naming the fields that set the size (heads, hidden, batch_size) with their values, and the stage
        that needs the most (loading, training, or saving the predictions of the test rows).
    """
    resident, stages = _memory_terms(config, shape)
    need = resident + max(stages.values())
    if need > limit_mb * MB:
        params = model_parameters(config, shape.n_features, shape.n_nodes)
        stage = {"load": f"loading {shape.n_train + shape.n_valid + shape.n_test:,} rows",
                 "train": "training",
                 "save": f"saving the predictions of {shape.n_test:,} test rows"}[max(stages, key=stages.get)]
        raise LimitError(
            f"config fields 'heads' ({config.heads}), 'hidden' ({config.hidden}) and 'batch_size' "
            f"({config.batch_size}) give an estimated {need / MB:,.0f} MB of memory ({params:,} parameters "
            f"for {shape.n_features} features and {shape.n_nodes} nodes; the largest stage is {stage}), above "
            f"the limit of {limit_mb:,} MB per job ({MAX_MEMORY_ENV}): lower heads or hidden")
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
