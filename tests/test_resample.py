"""LPROS: a hand-computed toy case, and its invariants (duplicates relabelled with one node and its ancestors,
the most frequent label never duplicated, at most the per-path cap each; docs/method.md, *LPROS, schedules and
the mixed loss*)."""

import math

import numpy as np
import pytest

from helpers import random_dag
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.resample import lpros, most_specific_labels, path_keys
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, train

# root -> a -> b -> e ; root -> c -> d
TOY = Hierarchy([("root", "a"), ("a", "b"), ("root", "c"), ("c", "d"), ("b", "e")])
TOY_TERMS = [["e"], ["b"], ["a"], ["a"], ["a"], ["c"], ["c"], ["c"], ["d"]]


def names(h, idx):
    return [h.nodes[i] for i in idx]


def test_most_specific_labels_and_paths():
    y = TOY.label_matrix(TOY_TERMS)
    assert [names(TOY, s) for s in most_specific_labels(y, TOY)] == TOY_TERMS
    dag = Hierarchy([("root", "x"), ("root", "y"), ("x", "z"), ("y", "z")])
    paths = {tuple(names(dag, p)) for p in path_keys(dag)}
    assert paths == {("root",), ("root", "x"), ("root", "y"), ("root", "x", "z"), ("root", "y", "z")}


def test_toy_case_by_hand():
    # Counts of most specific labels: e 1, b 1, a 3, c 3, d 1; summed up the paths: e 1, b 2, a 5, d 1, c 4, root 9.
    # IRLbP = 5 / count: a 1, b 2.5, e 5, c 1.25, d 5; HMeanIR = 2.95, so the minority keys are e and d.
    # S = 0.5: 4 samples to create, mean size ceil(9 / 5) = 2, max increase ceil(4 / 2) = 2;
    # e and d each get min(2, 2 - 1) = 1 duplicate, of the only rows holding them (0 and 8).
    y = TOY.label_matrix(TOY_TERMS)
    result = lpros(y, TOY, fraction=0.5)
    assert result.minority_keys == 2 and result.max_increase == 2
    assert sorted(zip(result.rows.tolist(), names(TOY, result.terms))) == [(0, "e"), (8, "d")]


@pytest.mark.parametrize("hierarchy", [make_synthetic(n_train=10, n_valid=5, n_test=10).hierarchy, random_dag(25, 4)],
                         ids=["tree", "dag"])
def test_invariants(hierarchy):
    rng = np.random.default_rng(0)
    # Skewed labels: a few frequent leaves, many rare ones.
    leaves = hierarchy.leaves
    weights = 1.0 / np.arange(1, len(leaves) + 1) ** 1.5
    picks = rng.choice(len(leaves), size=200, p=weights / weights.sum())
    y = hierarchy.label_matrix([[leaves[i]] for i in picks])
    result = lpros(y, hierarchy, fraction=0.2, seed=1)
    assert len(result.rows) > 0
    ancestors = hierarchy.ancestor_matrix()
    for label_row, term in zip(result.labels, result.terms):
        # every duplicate's labels are exactly {term} and its ancestors
        np.testing.assert_array_equal(label_row, ancestors[term].astype(np.uint8))
    # the copied rows really hold the term
    assert all(y[r, t] for r, t in zip(result.rows, result.terms))
    # duplicates per key are capped by max_increase (a DAG node can be the end of several keys)
    n_keys = {t: sum(1 for p in path_keys(hierarchy) if p[-1] == t) for t in set(result.terms.tolist())}
    counts = np.bincount(result.terms, minlength=hierarchy.n_nodes)
    assert all(counts[t] <= result.max_increase * n_keys[t] for t in n_keys)
    # no duplicate for the most frequent (non-minority) label
    top_leaf = hierarchy.index[leaves[0]]
    assert counts[top_leaf] == 0
    # step 4: max_increase = ceil(int(S * root count) / #minority), the root counting each label once per path
    paths_per_node = np.bincount([p[-1] for p in path_keys(hierarchy)], minlength=hierarchy.n_nodes)
    root_count = sum(int(paths_per_node[s].sum()) for s in most_specific_labels(y, hierarchy))
    assert result.max_increase == math.ceil(int(0.2 * root_count) / result.minority_keys)


def test_lpros_in_training_keeps_original_frequencies():
    ds = make_synthetic(n_train=200, n_valid=40, n_test=40, seed=10)
    result = train(TrainConfig(dataset="synthetic", epochs=1, hidden=8, batch_size=32, lpros=0.1), ds)
    assert result.n_resampled > 0
    np.testing.assert_array_equal(result.train_frequency, ds.train.Y.sum(axis=0))
    with pytest.raises(ValueError, match="lpros"):
        TrainConfig(dataset="synthetic", lpros=0.0).resolved().validate()
