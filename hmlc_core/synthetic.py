"""A synthetic hierarchical multi-label dataset with rare deep nodes (small by default, up to 200,000 nodes).

:func:`make_synthetic` builds a FunCat-like tree and samples data from it, for
tests, demos and quick experiments without the CLUS files. Everything is drawn
from one :func:`numpy.random.default_rng` generator seeded with ``seed``, so a
seed fixes every array.

Generative process
------------------
**Hierarchy.** A complete tree: ``root`` plus ``depth`` levels below it, every
non-leaf node having ``branching`` children. Node ids look like FunCat ids:
the children of ``root`` are ``1 .. branching``, the children of ``1.2`` are
``1.2.1 .. 1.2.branching``. Depth ``d`` holds ``branching**d`` nodes, so the
defaults (``depth=4``, ``branching=3``) give 3 + 9 + 27 + 81 = 120 nodes plus
``root`` (C = 121 columns; ``root`` is skipped in evaluation).

**Labels.** Each sample walks down from ``root``:

1. at every level the child is drawn with Zipf-like probabilities
   ``z_k ∝ k**(-zipf_exponent)`` for the k-th child (k = 1..branching); with
   the defaults (exponent 1, 3 children) ``z = (6/11, 3/11, 2/11)``;
2. the walk always reaches depth 1 and, after each level, goes one level
   deeper with probability ``p_continue`` (default 0.7), so it reaches depth
   ``d`` with probability ``p_continue**(d-1)``;
3. with probability ``p_second`` (default 0.3) the sample draws a second,
   independent path the same way (multi-label); the label set is the union of
   both paths, i.e. every node on a path plus ``root`` is positive (coherent
   by construction).

A node at depth ``d`` reached through children ``k_1..k_d`` lies on one path
with probability ``pi = p_continue**(d-1) * prod_i z_{k_i}``; it is positive
with probability ``1 - (1 - pi) * (1 - p_second * pi)``. With the defaults
this gives, per node and over the 600 training samples (expected values):

=====  =======  ===============  ===========================  ==================
depth  nodes    P(walk reaches)  mean positive rate per node  train positives per node (mean / most / least frequent)
=====  =======  ===============  ===========================  ==================
1      3        1.00             0.393                        236 / 372 / 136
2      9        0.70             0.098                        59 / 155 / 18
3      27       0.49             0.023                        14 / 61 / 2.3
4      81       0.34             0.0055                       3.3 / 23.5 / 0.29
=====  =======  ===============  ===========================  ==================

so depth-1 nodes are common, and a typical depth-4 node has a handful of
training samples (many have none), as in the real FunCat/GO data.

**Features.** Every non-root node ``n`` at depth ``d`` has a prototype vector
``v_n ~ N(0, (0.85**(d-1))**2 I)`` of length ``n_features``. A sample's raw
features are the sum of the prototypes of its positive nodes plus Gaussian
noise ``N(0, noise**2 I)`` (default ``noise=1.5``). Deeper nodes thus have weaker
signal and fewer examples: learnable, but harder. Finally the features are
standardised with :func:`hmlc_core.data.standardize_features` (mean and
population standard deviation of train+valid), as real data are (docs/method.md,
*Data and hierarchy*), and cast to float32. As a difficulty check (defaults, seed 0),
one logistic regression per node trained on the 600 training samples reaches a
mean test average precision of about 0.95 at depth 1, 0.80 at depth 2, 0.56 at
depth 3 and 0.36 at depth 4 (nodes with at least one positive in train and
test).

Samples are drawn i.i.d. and split in order: the first ``n_train`` rows are
train, the next ``n_valid`` valid, the rest test.

Large hierarchies
-----------------
Trees of up to :data:`MAX_NODES` (200,000) non-root nodes are allowed. The label sets are drawn as
(row, column) lists and the features computed from a sparse label matrix (``O(N x labels per sample x D)``),
so the only (N, C) arrays built are the dense uint8 label matrices every :class:`~hmlc_core.data.Split`
holds: ``N x C`` bytes in all. :data:`LARGE_SYNTHETIC`, the 100k-node benchmark of issue 17
(``depth=5``, ``branching=10``: 111,110 nodes plus ``root``; 40,000 / 5,000 / 5,000 samples, 64 features,
``p_continue=0.9``, ``zipf_exponent=0.5``, the other defaults) thus needs 5.6 GB for its labels
(50,000 x 111,111 bytes); generating it peaked at 5.8 GB RSS and took 47-53 s on this machine (2 cores
under a load of about 10; most of it writing the dense label matrices, about 5 s building the hierarchy).
Its tail, from :func:`expected_positive_rates` (expected training positives per node over the 40,000
training samples; the share of nodes with at least one; seed 0 measured the same to within 1%):

=====  =======  ===================================  ===============================
depth  nodes    mean train positives per node        share with >= 1 train positive
=====  =======  ===================================  ===============================
1      10       5061                                 1.00
2      100      467                                  1.00
3      1000     42.1                                 1.00
4      10000    3.79                                 0.89
5      100000   0.34                                 0.26
=====  =======  ===================================  ===============================

A sample has 6.3 positive nodes on average (``root`` included); 90% of the nodes are leaves at depth 5,
three in four of which never occur in training, as in extreme multi-label data (most labels rare).
"""

from __future__ import annotations

import itertools
import numbers
from typing import TYPE_CHECKING

import numpy as np

from hmlc_core.data import GO_ROOTS, HMCDataset, Split, standardize_features
from hmlc_core.hierarchy import Hierarchy

if TYPE_CHECKING:  # imported where used: the dashboard imports this module but a page view never generates data
    import scipy.sparse as sp

__all__ = ["make_synthetic", "expected_positive_rates", "LARGE_SYNTHETIC", "MAX_NODES"]

_PROTOTYPE_DECAY = 0.85  # prototype scale shrinks by this factor per level

MAX_NODES = 200_000
"""Most non-root nodes :func:`make_synthetic` builds (``depth=5, branching=10`` gives 111,110).

The hierarchy (networkx, string ids) takes about 5 s and 0.2 GB to build at 111k nodes; the labels of
every split are dense uint8 ``(N, C)`` matrices (:class:`~hmlc_core.data.Split`), ``N x C`` bytes."""

LARGE_SYNTHETIC: dict[str, int | float] = {
    "n_train": 40_000, "n_valid": 5_000, "n_test": 5_000, "n_features": 64, "depth": 5, "branching": 10,
    "p_continue": 0.9, "zipf_exponent": 0.5,
}
"""Arguments of :func:`make_synthetic` for the 100k-node benchmark (issue 17; module docstring, *Large hierarchies*)."""


def check_int(name: str, value: object, minimum: int) -> int:
    """``value`` as an int after checking it is a whole number (not a bool) >= ``minimum``.

    Raises
    ------
    ValueError
        Naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: object, low: float, high: float | None = None) -> float:
    """``value`` as a float after checking it is a finite number (not a bool) in ``[low, high]`` (``high`` None: no
    upper bound).

    Raises
    ------
    ValueError
        Naming ``name``, the bound and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < low or (high is not None and v > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


def expected_positive_rates(
    depth: int = 4,
    branching: int = 3,
    p_continue: float = 0.7,
    zipf_exponent: float = 1.0,
    p_second: float = 0.3,
) -> list[np.ndarray]:
    """Probability that a sample is positive for each node, per depth, under :func:`make_synthetic`'s process.

    A node at depth ``d`` reached through children ``k_1..k_d`` lies on one path with probability
    ``pi = p_continue**(d-1) * prod_i z_{k_i}`` (``z_k ∝ k**(-zipf_exponent)``) and is positive with
    probability ``1 - (1 - pi) * (1 - p_second * pi)`` (module docstring, *Labels*).

    Parameters
    ----------
    depth, branching, p_continue, zipf_exponent, p_second
        As :func:`make_synthetic` (same defaults, same checks).

    Returns
    -------
    list of numpy.ndarray of float64
        Entry ``d - 1`` has shape ``(branching**d,)``: the rates of the depth-``d`` nodes in id order
        (``1.1.1, 1.1.2, ...``, the order of :func:`itertools.product`), values in [0, 1].

    Raises
    ------
    ValueError
        If an argument has the wrong type or is out of range, or the tree would exceed :data:`MAX_NODES` nodes.
    """
    depth = check_int("depth", depth, 1)
    branching = check_int("branching", branching, 2)
    p_continue = check_float("p_continue", p_continue, 0.0, 1.0)
    zipf_exponent = check_float("zipf_exponent", zipf_exponent, 0.0)
    p_second = check_float("p_second", p_second, 0.0, 1.0)
    _check_size(depth, branching)
    zipf = np.arange(1, branching + 1, dtype=np.float64) ** (-zipf_exponent)
    zipf /= zipf.sum()
    rates, path = [], np.ones(1)
    for d in range(1, depth + 1):
        path = np.outer(path, zipf).ravel()
        pi = p_continue ** (d - 1) * path
        rates.append(1.0 - (1.0 - pi) * (1.0 - p_second * pi))
    return rates


def _check_size(depth: int, branching: int) -> None:
    n_nonroot = sum(branching**d for d in range(1, depth + 1))
    if n_nonroot > MAX_NODES:
        raise ValueError(
            f"depth={depth} and branching={branching} give {n_nonroot} nodes; at most {MAX_NODES} are allowed"
        )


def _dense_labels(labels: sp.csr_matrix) -> np.ndarray:
    """The (N, C) uint8 0/1 matrix of a 0/1 CSR matrix, filled directly (no float intermediate)."""
    out = np.zeros(labels.shape, dtype=np.uint8)
    rows = np.repeat(np.arange(labels.shape[0], dtype=np.int64), np.diff(labels.indptr))
    out.reshape(-1)[rows * labels.shape[1] + labels.indices] = 1  # flat indices: much faster than (rows, cols)
    return out


def make_synthetic(
    n_train: int = 600,
    n_valid: int = 200,
    n_test: int = 400,
    n_features: int = 24,
    depth: int = 4,
    branching: int = 3,
    seed: int = 0,
    *,
    p_continue: float = 0.7,
    zipf_exponent: float = 1.0,
    p_second: float = 0.3,
    noise: float = 1.5,
) -> HMCDataset:
    """Generate a synthetic tree-structured multi-label dataset with rare deep nodes.

    The generative process (and the expected node frequencies per depth) is
    described in the module docstring of :mod:`hmlc_core.synthetic`.

    Parameters
    ----------
    n_train, n_valid, n_test : int, default 600, 200, 400
        Number of samples per split; each >= 1.
    n_features : int, default 24
        Feature dimension ``D`` (>= 1).
    depth : int, default 4
        Number of levels below ``root`` (>= 1).
    branching : int, default 3
        Children per non-leaf node (>= 2). The tree has
        ``sum(branching**d for d in 1..depth)`` non-root nodes, at most
        :data:`MAX_NODES` (200,000).
    seed : int, default 0
        Seed of the :func:`numpy.random.default_rng` generator (>= 0). The
        same arguments give identical arrays.
    p_continue : float in [0, 1], default 0.7
        Probability of going one level deeper after each level.
    zipf_exponent : float >= 0, default 1.0
        Skew of the child choice (0 = uniform).
    p_second : float in [0, 1], default 0.3
        Probability that a sample has a second label path.
    noise : float >= 0, default 1.5
        Standard deviation of the Gaussian feature noise.

    Returns
    -------
    HMCDataset
        ``name="synthetic"``; ``hierarchy`` a tree with ``root`` skipped in
        evaluation; ``train``/``valid``/``test`` with ``X`` float32 (N, D)
        standardised on train+valid and ``Y`` uint8 (N, C) coherent, in
        ``hierarchy.nodes`` column order; feature names ``f0 .. f{D-1}``.

    Raises
    ------
    ValueError
        If an argument has the wrong type or is out of range (the message
        names the argument), or the tree would exceed :data:`MAX_NODES` nodes.
    """
    n_train = check_int("n_train", n_train, 1)
    n_valid = check_int("n_valid", n_valid, 1)
    n_test = check_int("n_test", n_test, 1)
    n_features = check_int("n_features", n_features, 1)
    depth = check_int("depth", depth, 1)
    branching = check_int("branching", branching, 2)
    seed = check_int("seed", seed, 0)
    p_continue = check_float("p_continue", p_continue, 0.0, 1.0)
    zipf_exponent = check_float("zipf_exponent", zipf_exponent, 0.0)
    p_second = check_float("p_second", p_second, 0.0, 1.0)
    noise = check_float("noise", noise, 0.0)
    _check_size(depth, branching)

    # ------------------------------------------------------------ hierarchy
    ids_by_depth: list[list[str]] = []
    edges: list[tuple[str, str]] = []
    for d in range(1, depth + 1):
        # itertools.product enumerates child tuples in flat-index order: f = sum_i k_i * b**(d-i)
        ids = [".".join(str(k + 1) for k in ks) for ks in itertools.product(range(branching), repeat=d)]
        for f, node in enumerate(ids):
            edges.append(("root" if d == 1 else ids_by_depth[-1][f // branching], node))
        ids_by_depth.append(ids)
    hierarchy = Hierarchy(edges, skip_eval={"root"} | GO_ROOTS)
    columns = [np.array([hierarchy.index[n] for n in ids], dtype=np.int64) for ids in ids_by_depth]
    root_col = hierarchy.index["root"]
    n_nodes = hierarchy.n_nodes

    rng = np.random.default_rng(seed)

    # ------------------------------------------------------------ prototypes
    prototypes = np.zeros((n_nodes, n_features), dtype=np.float64)
    for d, cols in enumerate(columns, start=1):
        scale = _PROTOTYPE_DECAY ** (d - 1)
        prototypes[cols] = rng.normal(0.0, scale, size=(len(cols), n_features))

    # ------------------------------------------------------------ labels
    # The label sets are kept as (row, column) lists, one part per path and level, and become a sparse
    # matrix for the features and a dense uint8 matrix per split: no (N, C) float matrix is built.
    n = n_train + n_valid + n_test
    zipf = np.arange(1, branching + 1, dtype=np.float64) ** (-zipf_exponent)
    zipf /= zipf.sum()
    rows_parts = [np.arange(n, dtype=np.int64)]
    cols_parts = [np.full(n, root_col, dtype=np.int64)]

    def add_path(rows: np.ndarray) -> None:
        choices = rng.choice(branching, size=(n, depth), p=zipf)
        if depth > 1:
            goes_on = rng.random((n, depth - 1)) < p_continue
            length = 1 + np.cumprod(goes_on, axis=1).sum(axis=1)
        else:
            length = np.ones(n, dtype=np.int64)
        flat = np.zeros(n, dtype=np.int64)
        for d in range(1, depth + 1):
            flat = flat * branching + choices[:, d - 1]
            on = np.flatnonzero(rows & (length >= d))
            rows_parts.append(on)
            cols_parts.append(columns[d - 1][flat[on]])

    add_path(np.ones(n, dtype=bool))
    add_path(rng.random(n) < p_second)
    import scipy.sparse as sp

    rows_all, cols_all = np.concatenate(rows_parts), np.concatenate(cols_parts)
    labels = sp.csr_matrix((np.ones(rows_all.size), (rows_all, cols_all)), shape=(n, n_nodes))
    labels.sum_duplicates()
    labels.data[:] = 1.0  # a node on both paths is positive once

    # ------------------------------------------------------------ features
    X = labels @ prototypes + noise * rng.normal(size=(n, n_features))
    bounds = np.cumsum([n_train, n_valid])
    xs = standardize_features(*np.split(X, bounds))
    ys = [_dense_labels(labels[first:last]) for first, last in zip((0, *bounds), (*bounds, n))]
    tag = f"synthetic(seed={seed})"
    return HMCDataset(
        name="synthetic",
        hierarchy=hierarchy,
        feature_names=[f"f{j}" for j in range(n_features)],
        train=Split(np.ascontiguousarray(xs[0]), ys[0]),
        valid=Split(np.ascontiguousarray(xs[1]), ys[1]),
        test=Split(np.ascontiguousarray(xs[2]), ys[2]),
        source={"train": tag, "valid": tag, "test": tag},
    )
