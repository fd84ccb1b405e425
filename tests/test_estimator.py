"""hmlc_core.HMCClassifier, the scikit-learn estimator (issue 15, item 1).

Tiny synthetic data (7 nodes, 8 features) and few epochs keep the file at a few seconds.

scikit-learn's common checks (``sklearn.utils.estimator_checks``): the ones in ``SKLEARN_CHECKS`` run
and pass, on a hierarchy ``root -> "0", "1", "2"`` so that the checks' integer class labels 0/1/2 are
node ids (a 1-D ``y`` holds one node id per sample). The others do not apply, because ``y`` is
multi-label over a fixed hierarchy (its indicator matrix has exactly one column per node, in
``Hierarchy.nodes`` order, and a label is a node id), not a free set of classes learnt from ``y``:

- ``check_classifiers_train``, ``check_classifiers_classes``, ``check_classifiers_one_label``,
  ``check_classifiers_regression_target``, ``check_dtype_object``: ``classes_`` are the hierarchy's
  nodes, not the values found in ``y``; ``predict`` returns an (n, C) indicator matrix, not one label.
- ``check_classifier_multioutput``, ``check_supervised_y_2d``,
  ``check_classifiers_multilabel_representation_invariance``,
  ``check_classifiers_multilabel_output_format_*``: they pass indicator matrices with another number of
  columns than the hierarchy has nodes, which is refused with a clear error (tested below).
- ``check_sample_weights_*``: ``fit`` takes no sample weights (the loss has node weights instead).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

from hmlc_core import HMCClassifier, Hierarchy
from hmlc_core.config import TrainConfig
from hmlc_core.estimator import CONFIG_PARAMS
from hmlc_core.runs import load_run
from hmlc_core.synthetic import make_synthetic

FAST = {"epochs": 3, "hidden": 16, "batch_size": 64, "kernel": "torch", "lr": 1e-3, "n_layers": 2}
"""Small, quick training options (the torch kernel avoids numba's compile time)."""

SKLEARN_CHECKS = (
    "check_estimator_cloneable", "check_no_attributes_set_in_init", "check_parameters_default_constructible",
    "check_get_params_invariance", "check_set_params", "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimators_unfitted", "check_fit_check_is_fitted", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_dont_overwrite_parameters", "check_estimators_overwrite_params",
    "check_estimators_fit_returns_self", "check_fit_score_takes_y", "check_estimators_dtypes",
    "check_estimators_nan_inf", "check_estimators_empty_data_messages", "check_estimators_pickle",
    "check_pipeline_consistency", "check_dict_unchanged", "check_fit_idempotent",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1sample",
    "check_fit2d_1feature", "check_fit1d", "check_fit2d_predict1d", "check_requires_y_none",
    "check_readonly_memmap_input", "check_supervised_y_no_nan", "check_complex_data",
    "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array", "check_estimator_sparse_matrix",
)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_train=120, n_valid=30, n_test=60, n_features=8, depth=2, branching=2, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    return HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(data.train.X, data.train.Y)


def _most_specific(hierarchy: Hierarchy, y: np.ndarray) -> list[list[str]]:
    """Per sample, the positive nodes without a positive child (what an annotation file lists)."""
    out = []
    for row in y:
        pos = {hierarchy.nodes[i] for i in np.flatnonzero(row)}
        out.append(sorted(n for n in pos if not set(hierarchy.children(n)) & pos))
    return out


def test_fit_predict_shapes_and_coherence(data, fitted) -> None:
    probs = fitted.predict_proba(data.test.X)
    pred = fitted.predict(data.test.X)
    assert probs.shape == pred.shape == (data.test.n_samples, data.hierarchy.n_nodes)
    assert probs.dtype == np.float32 and ((probs >= 0) & (probs <= 1)).all()
    assert set(np.unique(pred)) <= {0, 1}
    assert data.hierarchy.coherence_violations(probs) == 0
    assert data.hierarchy.coherence_violations(pred) == 0
    assert list(fitted.classes_) == data.hierarchy.nodes
    assert fitted.n_features_in_ == data.n_features
    assert 0.0 <= fitted.score(data.test.X, data.test.Y) <= 1.0


def test_label_lists_equal_the_propagated_matrix(data, fitted) -> None:
    lists = _most_specific(data.hierarchy, data.train.Y)
    leaves_only = data.hierarchy.label_matrix(lists, propagate=False)
    assert not np.array_equal(leaves_only, data.train.Y), "the probe needs labels that propagation changes"
    from_lists = HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(data.train.X, lists)
    from_leaves = HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(data.train.X, leaves_only)
    expected = fitted.predict_proba(data.test.X)
    np.testing.assert_array_equal(from_lists.predict_proba(data.test.X), expected)
    np.testing.assert_array_equal(from_leaves.predict_proba(data.test.X), expected)


def test_hierarchy_forms_give_the_same_classes(data, fitted) -> None:
    graph = nx.DiGraph(data.hierarchy.graph.edges)
    edges = [(p, c) for p, c in data.hierarchy.graph.edges]
    for form in (graph, edges):
        est = HMCClassifier(hierarchy=form, **FAST).fit(data.train.X, data.train.Y)
        assert list(est.classes_) == list(fitted.classes_)
        np.testing.assert_array_equal(est.predict_proba(data.test.X), fitted.predict_proba(data.test.X))


def test_parameters_mirror_train_config() -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    # image encoders are not estimator parameters: the estimator takes feature tables (encoder "auto" -> "none");
    # it holds out its own validation_fraction (seeded by random_state), so valid_fraction stays 0
    assert set(CONFIG_PARAMS) | {"dataset", "data_dir", "seed", "fit_on", "encoder", "encoder_checkpoint",
                                 "encoder_width", "valid_fraction"} == fields
    params = HMCClassifier().get_params()
    assert set(params) == set(CONFIG_PARAMS) | {"hierarchy", "validation_fraction", "random_state"}
    defaults = TrainConfig(dataset="x")
    assert all(params[name] == getattr(defaults, name) for name in CONFIG_PARAMS)


def test_clone_and_params_round_trip(data, fitted) -> None:
    copy = clone(fitted)
    assert not hasattr(copy, "model_")
    assert {k: v for k, v in copy.get_params().items() if k != "hierarchy"} == \
        {k: v for k, v in fitted.get_params().items() if k != "hierarchy"}
    assert copy.get_params()["hierarchy"].nodes == data.hierarchy.nodes
    copy.set_params(epochs=1, decision_threshold=0.3)
    assert copy.get_params()["epochs"] == 1 and copy.decision_threshold == 0.3
    assert fitted.epochs == FAST["epochs"]
    with pytest.raises(ValueError, match="Invalid parameter"):
        copy.set_params(no_such_option=1)


def test_pipeline_with_standard_scaler(data) -> None:
    raw = data.train.X * 10.0 + 5.0
    pipe = make_pipeline(StandardScaler(), HMCClassifier(hierarchy=data.hierarchy, **FAST)).fit(raw, data.train.Y)
    test_raw = data.test.X * 10.0 + 5.0
    scaler = StandardScaler().fit(raw)
    alone = HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(scaler.transform(raw), data.train.Y)
    np.testing.assert_allclose(pipe.predict_proba(test_raw), alone.predict_proba(scaler.transform(test_raw)),
                               atol=1e-6)
    assert pipe.predict(test_raw).shape == (data.test.n_samples, data.hierarchy.n_nodes)


@pytest.mark.parametrize("decision", ["fixed", "per-node"])
def test_save_load_round_trip(data, tmp_path: Path, decision: str) -> None:
    est = HMCClassifier(hierarchy=data.hierarchy, decision=decision, validation_fraction=0.25, **FAST)
    est.fit(data.train.X, data.train.Y)
    run_dir = est.save(tmp_path / "run", data.test.X, data.test.Y)
    run = load_run(run_dir)
    assert run.hierarchy.nodes == data.hierarchy.nodes and run.config.fit_on == "train"
    np.testing.assert_array_equal(run.predictions()["mean_probs"], est.predict_proba(data.test.X))
    loaded = HMCClassifier.load(run_dir)
    np.testing.assert_array_equal(loaded.predict_proba(data.test.X), est.predict_proba(data.test.X))
    np.testing.assert_array_equal(loaded.predict(data.test.X), est.predict(data.test.X))
    assert loaded.decision_rule_ == est.decision_rule_
    assert loaded.get_params()["decision"] == decision and loaded.validation_fraction == 0.25
    with pytest.raises(ValueError, match="cannot be saved again"):
        loaded.save(tmp_path / "again", data.test.X, data.test.Y)
    with pytest.raises(FileExistsError):
        est.save(run_dir, data.test.X, data.test.Y)


def test_clear_errors(data, fitted) -> None:
    x, y = data.train.X, data.train.Y
    with pytest.raises(ValueError, match="needs a hierarchy"):
        HMCClassifier(**FAST).fit(x, y)
    with pytest.raises(ValueError, match="cycle"):
        HMCClassifier(hierarchy=[("a", "b"), ("b", "a")], **FAST).fit(x, [["a"]] * len(x))
    with pytest.raises(ValueError, match=r"X has 120 samples but y has 119"):
        HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(x, y[:-1])
    with pytest.raises(ValueError, match=r"y has 6 columns but the hierarchy has 7 nodes"):
        HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(x, y[:, :-1])
    with pytest.raises(ValueError, match="only 0 and 1"):
        HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(x, y * 2)
    lists = _most_specific(data.hierarchy, y)
    lists[4] = ["no-such-node"]
    with pytest.raises(ValueError, match=r"sample 4: label 'no-such-node' is not a node"):
        HMCClassifier(hierarchy=data.hierarchy, **FAST).fit(x, lists)
    with pytest.raises(ValueError, match="validation_fraction"):
        HMCClassifier(hierarchy=data.hierarchy, decision="global", **FAST).fit(x, y)
    with pytest.raises(ValueError, match="config field 'heads'"):
        HMCClassifier(hierarchy=data.hierarchy, heads=0, **FAST).fit(x, y)
    with pytest.raises(ValueError, match="X has 7 features, but HMCClassifier is expecting 8"):
        fitted.predict_proba(data.test.X[:, :-1])
    with pytest.raises(NotFittedError):
        HMCClassifier(hierarchy=data.hierarchy).predict(data.test.X)


def _check_estimator() -> HMCClassifier:
    return HMCClassifier(hierarchy=[("root", "0"), ("root", "1"), ("root", "2")], epochs=1, hidden=4,
                         batch_size=64, kernel="torch", lr=1e-3, n_layers=2)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("check", SKLEARN_CHECKS)
def test_sklearn_estimator_check(check: str) -> None:
    getattr(estimator_checks, check)("HMCClassifier", _check_estimator())
