"""Tests for hmlc_core.synthetic.make_synthetic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hmlc_core.data import HMCDataset
from hmlc_core.data import standardize_features
from hmlc_core.synthetic import LARGE_SYNTHETIC, MAX_NODES, expected_positive_rates, make_synthetic


@pytest.fixture(scope="module")
def ds() -> HMCDataset:
    return make_synthetic()


def test_shapes_and_dtypes(ds):
    h = ds.hierarchy
    assert ds.name == "synthetic"
    # defaults: root + 3 + 9 + 27 + 81 nodes
    assert h.n_nodes == 1 + 3 + 9 + 27 + 81
    assert (ds.train.n_samples, ds.valid.n_samples, ds.test.n_samples) == (600, 200, 400)
    for split in ds.splits.values():
        assert split.X.shape == (split.n_samples, 24) and split.X.dtype == np.float32
        assert split.Y.shape == (split.n_samples, h.n_nodes) and split.Y.dtype == np.uint8
        assert set(np.unique(split.Y)) <= {0, 1}
    assert ds.feature_names == [f"f{j}" for j in range(24)]


def test_tree_structure_and_ids(ds):
    h = ds.hierarchy
    assert h.is_tree and h.roots == ["root"]
    assert int(h.depth.max()) == 4
    assert h.parents("1") == ["root"]
    assert h.parents("1.2") == ["1"]
    assert h.parents("3.1.2.3") == ["3.1.2"]
    assert h.children("2.3") == ["2.3.1", "2.3.2", "2.3.3"]
    assert not h.eval_mask[h.index["root"]] and int(h.eval_mask.sum()) == h.n_nodes - 1


def test_labels_coherent_and_multilabel(ds):
    h = ds.hierarchy
    for split in ds.splits.values():
        assert h.is_coherent(split.Y)
        assert split.Y[:, h.index["root"]].all()
    # every sample reaches depth 1; some have two depth-1 labels (a second path)
    depth1 = ds.train.Y[:, h.depth == 1].sum(axis=1)
    assert (depth1 >= 1).all()
    assert (depth1 >= 2).any()


def test_frequency_decreases_with_depth(ds):
    h = ds.hierarchy
    freq = ds.train.Y.mean(axis=0)
    per_depth = [freq[h.depth == d].mean() for d in range(1, 5)]
    assert per_depth[0] > per_depth[1] > per_depth[2] > per_depth[3]
    # depth-4 nodes are rare: on average a few training samples each, far below depth 1
    assert per_depth[3] < per_depth[0] / 20
    assert per_depth[3] * ds.train.n_samples < 10


def test_features_standardised_on_train_valid(ds):
    fit = np.vstack([ds.train.X, ds.valid.X]).astype(np.float64)
    np.testing.assert_allclose(fit.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(fit.std(axis=0), 1.0, atol=1e-5)


def test_deterministic_per_seed():
    a, b, c = make_synthetic(seed=3), make_synthetic(seed=3), make_synthetic(seed=4)
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(a, name).X, getattr(b, name).X)
        np.testing.assert_array_equal(getattr(a, name).Y, getattr(b, name).Y)
    assert not np.array_equal(a.train.X, c.train.X)
    assert not np.array_equal(a.train.Y, c.train.Y)


def test_custom_sizes():
    d = make_synthetic(n_train=50, n_valid=10, n_test=20, n_features=5, depth=5, branching=2, seed=1)
    assert d.hierarchy.n_nodes == 1 + 2 + 4 + 8 + 16 + 32
    assert int(d.hierarchy.depth.max()) == 5
    assert d.train.X.shape == (50, 5) and d.valid.X.shape == (10, 5) and d.test.X.shape == (20, 5)


def test_no_deep_nodes_when_walk_never_continues():
    d = make_synthetic(p_continue=0.0, p_second=0.0, seed=2)
    h = d.hierarchy
    assert d.train.Y[:, h.depth >= 2].sum() == 0
    assert (d.train.Y[:, h.depth == 1].sum(axis=1) == 1).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_train": 0}, "n_train"),
        ({"n_valid": -1}, "n_valid"),
        ({"n_test": 1.5}, "n_test"),
        ({"n_features": 0}, "n_features"),
        ({"depth": 0}, "depth"),
        ({"branching": 1}, "branching"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"p_continue": 1.5}, "p_continue"),
        ({"p_second": -0.1}, "p_second"),
        ({"noise": float("nan")}, "noise"),
        ({"zipf_exponent": -1.0}, "zipf_exponent"),
        ({"depth": 12, "branching": 10}, "depth"),
        ({"depth": 6, "branching": 10}, "depth"),  # 1,111,110 nodes > MAX_NODES
    ],
)
def test_argument_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_synthetic(**kwargs)


# ------------------------------------------------------------------ larger trees (issue 17)
def _dense_reference(n_train, n_valid, n_test, n_features, depth, branching, seed, p_continue, zipf_exponent,
                     p_second, noise, hierarchy):
    """The generative process of the module docstring written out with dense (N, C) matrices.

    The same draws in the same order as the generator (prototypes level by level, then for each path the
    child choices and the continuation draws, the second-path coin between the two paths, then the
    noise); features by a dense float64 matmul. Returns (X before standardisation, Y).
    """
    rng = np.random.default_rng(seed)
    c = hierarchy.n_nodes
    ids = [[".".join(str(k + 1) for k in ks) for ks in itertools.product(range(branching), repeat=d)]
           for d in range(1, depth + 1)]
    cols = [np.array([hierarchy.index[i] for i in level]) for level in ids]
    prototypes = np.zeros((c, n_features))
    for d, level in enumerate(cols, start=1):
        prototypes[level] = rng.normal(0.0, 0.85 ** (d - 1), size=(len(level), n_features))
    n = n_train + n_valid + n_test
    z = np.arange(1, branching + 1, dtype=np.float64) ** (-zipf_exponent)
    z /= z.sum()
    y = np.zeros((n, c), dtype=np.uint8)
    y[:, hierarchy.index["root"]] = 1
    for path in range(2):
        active = np.ones(n, dtype=bool) if path == 0 else rng.random(n) < p_second
        choices = rng.choice(branching, size=(n, depth), p=z)
        length = 1 + np.cumprod(rng.random((n, depth - 1)) < p_continue, axis=1).sum(axis=1)
        for i in np.flatnonzero(active):
            flat = 0
            for d in range(1, length[i] + 1):
                flat = flat * branching + choices[i, d - 1]
                y[i, cols[d - 1][flat]] = 1
    x = y.astype(np.float64) @ prototypes + noise * rng.normal(size=(n, n_features))
    return x, y


def test_sparse_generator_equals_the_dense_process_bit_for_bit():
    args = dict(n_train=70, n_valid=20, n_test=30, n_features=6, depth=3, branching=4, seed=11, p_continue=0.8,
                zipf_exponent=0.7, p_second=0.5, noise=1.0)
    d = make_synthetic(**args)
    x, y = _dense_reference(**args, hierarchy=d.hierarchy)
    xs = standardize_features(x[:70], x[70:90], x[90:])
    for i, name in enumerate(("train", "valid", "test")):
        np.testing.assert_array_equal(getattr(d, name).Y, y[[slice(0, 70), slice(70, 90), slice(90, 120)][i]])
        np.testing.assert_array_equal(getattr(d, name).X, np.ascontiguousarray(xs[i]))


def test_expected_rates_by_enumeration_and_the_docstring_table():
    # two levels of three children, enumerated path by path: P(on one path) = p_continue**(d-1) * prod z
    z = np.array([1, 1 / 2, 1 / 3]) / (1 + 1 / 2 + 1 / 3)
    r1, r2 = expected_positive_rates(depth=2, branching=3, p_continue=0.6, zipf_exponent=1.0, p_second=0.25)
    for k in range(3):
        assert r1[k] == pytest.approx(1 - (1 - z[k]) * (1 - 0.25 * z[k]))
        for j in range(3):
            pi = 0.6 * z[k] * z[j]
            assert r2[3 * k + j] == pytest.approx(1 - (1 - pi) * (1 - 0.25 * pi))
    # the defaults reproduce the table of the module docstring (train positives per node over 600 samples)
    rates = expected_positive_rates()
    assert [len(r) for r in rates] == [3, 9, 27, 81]
    table = [(236, 372, 136), (59, 155, 18), (14, 61, 2.3), (3.3, 23.5, 0.29)]
    for r, (mean, most, least) in zip(rates, table):
        assert 600 * r.mean() == pytest.approx(mean, rel=0.03)
        assert 600 * r.max() == pytest.approx(most, rel=0.03)
        assert 600 * r.min() == pytest.approx(least, rel=0.03)


MEDIUM = dict(n_train=4000, n_valid=500, n_test=500, n_features=8, depth=3, branching=12, p_continue=0.9,
              zipf_exponent=0.5)


@pytest.fixture(scope="module")
def medium() -> HMCDataset:
    return make_synthetic(**MEDIUM, seed=5)


def test_medium_tree_size_and_long_tail(medium):
    h = medium.hierarchy
    assert h.n_nodes == 1 + 12 + 144 + 1728 and int(h.depth.max()) == 3
    assert h.is_coherent(medium.train.Y) and medium.train.Y.shape == (4000, h.n_nodes)
    freq = medium.train.Y.sum(axis=0)
    rates = expected_positive_rates(**{k: MEDIUM[k] for k in ("depth", "branching", "p_continue", "zipf_exponent")})
    for d, r in enumerate(rates, start=1):
        nodes = h.depth == d
        # per-depth mean count: a sum of independent-ish Bernoulli counts, within 5 standard errors
        se = np.sqrt(4000 * (r * (1 - r)).sum()) / r.size
        assert abs(freq[nodes].mean() - 4000 * r.mean()) < 5 * se + 1e-9, d
        # share of nodes seen at least once in training, as expected
        assert (freq[nodes] > 0).mean() == pytest.approx((1 - (1 - r) ** 4000).mean(), abs=0.03)
    per_depth = [freq[h.depth == d].mean() for d in (1, 2, 3)]
    assert per_depth[0] > 8 * per_depth[1] > 64 * per_depth[2]
    deep = freq[h.depth == 3]
    assert np.median(deep) <= 3 and deep.max() >= 20  # a long tail: most deep nodes rare, a few common
    # the most frequent depth-3 node is the Zipf head's 1.1.1
    assert h.nodes[int(np.flatnonzero(h.depth == 3)[np.argmax(deep)])] == "1.1.1"


def test_medium_tree_is_deterministic(medium):
    again, other = make_synthetic(**MEDIUM, seed=5), make_synthetic(**MEDIUM, seed=6)
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(medium, name).X, getattr(again, name).X)
        np.testing.assert_array_equal(getattr(medium, name).Y, getattr(again, name).Y)
    assert not np.array_equal(medium.train.Y, other.train.Y)


def test_large_configuration_has_about_100k_nodes():
    sizes = {k: LARGE_SYNTHETIC[k] for k in ("depth", "branching", "p_continue", "zipf_exponent")}
    n_nonroot = sum(len(r) for r in expected_positive_rates(**sizes))
    assert n_nonroot == 111_110 <= MAX_NODES
    tiny = make_synthetic(**{**LARGE_SYNTHETIC, "n_train": 3, "n_valid": 2, "n_test": 2})
    assert tiny.hierarchy.n_nodes == n_nonroot + 1 and int(tiny.hierarchy.depth.max()) == 5
    assert tiny.train.Y.shape == (3, 111_111) and tiny.hierarchy.is_coherent(tiny.train.Y)
