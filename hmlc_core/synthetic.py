"""A small synthetic hierarchical multi-label dataset with rare deep nodes.

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
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from hmlc_core.data import GO_ROOTS, HMCDataset, Split, standardize_features
from hmlc_core.hierarchy import Hierarchy

__all__ = ["make_synthetic"]

_PROTOTYPE_DECAY = 0.85  # prototype scale shrinks by this factor per level
_MAX_NODES = 100_000


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value: object, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < low or (high is not None and v > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return v


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
        ``sum(branching**d for d in 1..depth)`` non-root nodes, at most 100000.
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
        names the argument), or the tree would exceed 100000 nodes.
    """
    n_train = _check_int("n_train", n_train, 1)
    n_valid = _check_int("n_valid", n_valid, 1)
    n_test = _check_int("n_test", n_test, 1)
    n_features = _check_int("n_features", n_features, 1)
    depth = _check_int("depth", depth, 1)
    branching = _check_int("branching", branching, 2)
    seed = _check_int("seed", seed, 0)
    p_continue = _check_float("p_continue", p_continue, 0.0, 1.0)
    zipf_exponent = _check_float("zipf_exponent", zipf_exponent, 0.0)
    p_second = _check_float("p_second", p_second, 0.0, 1.0)
    noise = _check_float("noise", noise, 0.0)
    n_nonroot = sum(branching**d for d in range(1, depth + 1))
    if n_nonroot > _MAX_NODES:
        raise ValueError(
            f"depth={depth} and branching={branching} give {n_nonroot} nodes; at most {_MAX_NODES} are allowed"
        )

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
    n = n_train + n_valid + n_test
    zipf = np.arange(1, branching + 1, dtype=np.float64) ** (-zipf_exponent)
    zipf /= zipf.sum()
    Y = np.zeros((n, n_nodes), dtype=np.uint8)
    Y[:, root_col] = 1

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
            on = rows & (length >= d)
            Y[on, columns[d - 1][flat[on]]] = 1

    add_path(np.ones(n, dtype=bool))
    add_path(rng.random(n) < p_second)

    # ------------------------------------------------------------ features
    X = Y.astype(np.float64) @ prototypes + noise * rng.normal(size=(n, n_features))
    bounds = np.cumsum([n_train, n_valid])
    xs = standardize_features(*np.split(X, bounds))
    ys = np.split(Y, bounds)
    tag = f"synthetic(seed={seed})"
    return HMCDataset(
        name="synthetic",
        hierarchy=hierarchy,
        feature_names=[f"f{j}" for j in range(n_features)],
        train=Split(np.ascontiguousarray(xs[0]), np.ascontiguousarray(ys[0])),
        valid=Split(np.ascontiguousarray(xs[1]), np.ascontiguousarray(ys[1])),
        test=Split(np.ascontiguousarray(xs[2]), np.ascontiguousarray(ys[2])),
        source={"train": tag, "valid": tag, "test": tag},
    )
