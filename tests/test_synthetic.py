"""Tests for hmlc_core.synthetic.make_synthetic."""

from __future__ import annotations

import numpy as np
import pytest

from hmlc_core.data import HMCDataset
from hmlc_core.synthetic import make_synthetic


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
    ],
)
def test_argument_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_synthetic(**kwargs)
