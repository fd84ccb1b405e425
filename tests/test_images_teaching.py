"""Tests for hmlc_core.images.teaching.make_shapes, the generated teaching image dataset."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from hmlc_core.data import HMCDataset
from hmlc_core.images.teaching import FAMILIES, PATTERNS, SIZES, make_shapes


@pytest.fixture(scope="module")
def default_ds() -> tuple[HMCDataset, float]:
    """The dataset ``--dataset shapes`` trains on (opened by name with no data directory), and its CPU seconds."""
    from hmlc_core.catalog import open_dataset

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HMLC_DATA_DIR", raising=False)
        start = time.process_time()
        ds = open_dataset("shapes")
        return ds, time.process_time() - start


@pytest.fixture(scope="module")
def small_ds() -> HMCDataset:
    return make_shapes(seed=1, n_train=60, n_valid=20, n_test=30)


def _zipf(k: int, exponent: float) -> np.ndarray:
    z = np.arange(1, k + 1, dtype=np.float64) ** (-exponent)
    return z / z.sum()


def _expected_rates(p_continue: float = 0.7, zipf_exponent: float = 0.8, p_second: float = 0.15) -> dict[int, list]:
    """Per depth, the probability that each node is positive (the module docstring's formula, written out anew)."""
    children = [len(FAMILIES), len(next(iter(FAMILIES.values()))), len(PATTERNS), len(SIZES)]
    reach = [1.0, 1.0, p_continue, p_continue**2]
    rates = {}
    for d in range(1, 5):
        out = []
        for ks in itertools.product(*[range(c) for c in children[:d]]):
            pi = reach[d - 1] * np.prod([_zipf(children[i], zipf_exponent)[k] for i, k in enumerate(ks)])
            out.append(1 - (1 - pi) * (1 - p_second * pi))
        rates[d] = out
    return rates


def test_shapes_dtypes_and_names(small_ds):
    ds = small_ds
    assert ds.name == "shapes"
    assert (ds.train.n_samples, ds.valid.n_samples, ds.test.n_samples) == (60, 20, 30)
    assert ds.images is not None and ds.images.shape == (3, 32, 32) and ds.images.root == "generated:shapes"
    for name, split in ds.splits.items():
        assert split.X.shape == (split.n_samples, 3 * 32 * 32) and split.X.dtype == np.float32
        assert split.Y.shape == (split.n_samples, ds.hierarchy.n_nodes) and split.Y.dtype == np.uint8
        thumbs = ds.images.thumbnails[name]
        assert thumbs.shape == (split.n_samples, 32, 32, 3) and thumbs.dtype == np.uint8
        assert ds.images.names[name][:2] == [f"{name}/000000.png", f"{name}/000001.png"]
        assert ds.source[name] == "generated:shapes"
    # the images are not blank: every image has real contrast
    assert (ds.images.thumbnails["train"].reshape(60, -1).std(axis=1) > 10).all()


def test_other_image_size():
    ds = make_shapes(seed=0, n_train=8, n_valid=4, n_test=4, image_size=48)
    assert ds.images.shape == (3, 48, 48) and ds.images.thumbnails["test"].shape == (4, 48, 48, 3)


def test_deterministic_per_seed():
    a = make_shapes(seed=3, n_train=40, n_valid=10, n_test=10)
    b = make_shapes(seed=3, n_train=40, n_valid=10, n_test=10)
    c = make_shapes(seed=4, n_train=40, n_valid=10, n_test=10)
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(a.images.thumbnails[name], b.images.thumbnails[name])
        np.testing.assert_array_equal(getattr(a, name).X, getattr(b, name).X)
        np.testing.assert_array_equal(getattr(a, name).Y, getattr(b, name).Y)
    assert not np.array_equal(a.images.thumbnails["train"], c.images.thumbnails["train"])
    assert not np.array_equal(a.train.Y, c.train.Y)


def test_taxonomy_well_formed(small_ds):
    h = small_ds.hierarchy
    n_shapes = sum(len(v) for v in FAMILIES.values())
    assert h.is_tree and h.roots == ["root"] and h.skipped == ["root"]
    assert h.n_nodes == 1 + len(FAMILIES) + n_shapes + n_shapes * len(PATTERNS) + n_shapes * len(PATTERNS) * len(SIZES)
    for node in h.nodes[1:]:
        parts = node.split("/")
        assert h.depth[h.index[node]] == len(parts)
        assert h.parents(node) == (["root"] if len(parts) == 1 else ["/".join(parts[:-1])])
    assert "polygon/triangle/striped/small" in h.index and "round/circle/outline" in h.index
    leaves = [n for n in h.nodes if h.depth[h.index[n]] == 4]
    assert {n.rsplit("/", 1)[1] for n in leaves} == set(SIZES)
    for split in small_ds.splits.values():
        assert h.is_coherent(split.Y) and split.Y[:, h.index["root"]].all()
        # every image shows at least one named shape: depth 2 is always reached
        assert (split.Y[:, h.depth == 2].sum(axis=1) >= 1).all()


def test_per_depth_frequencies_match_documented_expectation(default_ds):
    ds, _ = default_ds
    h = ds.hierarchy
    rates = _expected_rates()
    Y = np.vstack([s.Y for s in ds.splits.values()]).astype(np.float64)
    n = len(Y)
    assert n == 3500
    # the module docstring's table (mean positive rate per node at each depth)
    documented = {1: 0.364, 2: 0.125, 3: 0.0297, 4: 0.0104}
    for d in range(1, 5):
        cols = h.depth == d
        expected = np.asarray(rates[d])
        assert len(expected) == int(cols.sum())
        assert expected.mean() == pytest.approx(documented[d], rel=0.02)
        per_row = Y[:, cols].sum(axis=1)
        # rows are i.i.d.: the total is within 4 standard errors of its expectation
        standard_error = np.sqrt(n) * per_row.std(ddof=1)
        assert abs(per_row.sum() - n * expected.sum()) < 4 * standard_error, (d, per_row.sum(), n * expected.sum())
        # and the most frequent node at each depth is the one the Zipf order makes most frequent
        assert abs(Y[:, cols].sum(axis=0).max() - n * expected.max()) < 5 * np.sqrt(n * expected.max())
    # deeper nodes are rarer, and the rarest deep node still has a few training examples
    per_node = [ds.train.Y[:, h.depth == d].mean() for d in range(1, 5)]
    assert per_node[0] > per_node[1] > per_node[2] > per_node[3]
    assert ds.train.Y[:, h.depth == 4].sum(axis=0).min() >= 1


def test_multilabel_rows(default_ds):
    ds, _ = default_ds
    h = ds.hierarchy
    Y = np.vstack([s.Y for s in ds.splits.values()])
    two_shapes = (Y[:, h.depth == 2].sum(axis=1) == 2).mean()
    # P(two different shapes) = p_second * (1 - sum_s P(shape s)^2), with P(shape) = z_family * z_shape
    z3 = _zipf(3, 0.8)
    p_shape = np.outer(z3, z3).ravel()
    expected = 0.15 * (1 - (p_shape**2).sum())
    assert abs(two_shapes - expected) < 5 * np.sqrt(expected * (1 - expected) / len(Y))
    assert (Y[:, h.depth == 2].sum(axis=1) <= 2).all()


def test_generation_is_fast(default_ds):
    _, seconds = default_ds
    assert seconds < 10.0  # CPU time (not wall time, which a busy machine stretches): about 2 s measured


def _fourier_features(thumbs: np.ndarray) -> np.ndarray:
    """Translation-invariant features: log magnitudes of the 2-D Fourier transforms of the grey image and of its
    gradient magnitude (the module docstring's difficulty baseline)."""
    grey = thumbs.astype(np.float64).mean(axis=3)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    gy, gx = np.gradient(grey, axis=(1, 2))
    spectra = [np.log1p(np.abs(np.fft.rfft2(g))).reshape(len(thumbs), -1) for g in (grey, np.hypot(gx, gy))]
    return np.hstack(spectra)


def test_depth1_baseline_well_above_chance_but_not_perfect(default_ds):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    ds, _ = default_ds
    h = ds.hierarchy
    scaler = StandardScaler().fit(_fourier_features(ds.images.thumbnails["train"]))
    x_train = scaler.transform(_fourier_features(ds.images.thumbnails["train"]))
    x_test = scaler.transform(_fourier_features(ds.images.thumbnails["test"]))
    aucs = []
    for node in FAMILIES:
        j = h.index[node]
        model = LogisticRegression(C=0.01, max_iter=500).fit(x_train, ds.train.Y[:, j])
        aucs.append(roc_auc_score(ds.test.Y[:, j], model.predict_proba(x_test)[:, 1]))
    # a random score's AUC is 0.5: every family is well above chance, and no family is solved
    assert min(aucs) > 0.7 and max(aucs) < 0.95, aucs


def test_catalog_finds_shapes_without_data_dir(monkeypatch, default_ds):
    from hmlc_core.catalog import available_datasets
    from hmlc_core.presets import DEFAULT_PRESET, preset_for

    monkeypatch.delenv("HMLC_DATA_DIR", raising=False)
    assert available_datasets()[:2] == ["synthetic", "shapes"]
    ds, _ = default_ds  # opened by name in the fixture
    assert ds.name == "shapes" and ds.images is not None and ds.images.root == "generated:shapes"
    assert (ds.train.n_samples, ds.valid.n_samples, ds.test.n_samples) == (2000, 500, 1000)
    assert preset_for("shapes") != DEFAULT_PRESET and preset_for("Shapes") == preset_for("shapes")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_train": 0}, "n_train"),
        ({"n_valid": -1}, "n_valid"),
        ({"n_test": 2.5}, "n_test"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
        ({"image_size": 8}, "image_size"),
        ({"p_continue": 1.5}, "p_continue"),
        ({"p_second": -0.1}, "p_second"),
        ({"zipf_exponent": float("nan")}, "zipf_exponent"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_argument_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_shapes(**kwargs)
