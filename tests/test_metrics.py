"""Metrics against scikit-learn and hand-computed cases: per-node and macro P/R/F1 at 0.5 with nodes without test
positives counted, micro AUPRC, hierarchical P/R/F1 (docs/method.md, *Metrics*)."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import (
    auprc_micro,
    average_precision_per_node,
    macro_precision_recall_f1,
    node_metrics_table,
    precision_recall_f1,
    recall_by_depth,
    summarize,
)
from hmlc_core.model import MCM

H = Hierarchy([("root", "a"), ("a", "b"), ("root", "c")])  # columns: root, a, c, b


@pytest.fixture
def random_case():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 12)) < 0.15).astype(np.uint8)
    y[:, 4] = 0  # a node without positives
    scores = np.round(rng.random((200, 12)) * 0.5 + 0.4 * y, 2)  # rounded: many ties
    return y, scores


def test_per_node_prf_matches_sklearn(random_case):
    y, s = random_case
    p, r, f = precision_recall_f1(y, s, threshold=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp, sr, sf, _ = precision_recall_fscore_support(y, (s > 0.5).astype(int), average=None, zero_division=0)
    np.testing.assert_allclose(p, sp)
    np.testing.assert_allclose(r, sr)
    np.testing.assert_allclose(f, sf)
    mask = np.ones(12, dtype=bool)
    mask[0] = False
    mp, mr, mf = macro_precision_recall_f1(y, s, mask)
    assert mr == pytest.approx(sr[1:].mean())  # includes the node without positives (recall 0)
    assert mf == pytest.approx(sf[1:].mean())  # mean of per-node F1, not F1 of the means
    assert mp == pytest.approx(sp[1:].mean())


def test_ap_per_node_matches_sklearn_with_ties(random_case):
    y, s = random_case
    ap = average_precision_per_node(y, s)
    for j in range(12):
        if y[:, j].any():
            assert ap[j] == pytest.approx(average_precision_score(y[:, j], s[:, j]), abs=1e-12)
        else:
            assert np.isnan(ap[j])


def test_auprc_micro_matches_sklearn(random_case):
    y, s = random_case
    mask = np.arange(12) % 3 != 0
    want = average_precision_score(y[:, mask], s[:, mask], average="micro")
    assert auprc_micro(y, s, mask) == pytest.approx(want)
    assert np.isnan(auprc_micro(np.zeros((3, 2)), np.ones((3, 2))))


def test_hand_case_and_recall_by_depth():
    # columns root, a, c, b (depths 0, 1, 1, 2)
    y = np.array([[1, 1, 0, 1], [1, 0, 1, 0], [1, 1, 0, 0]])
    probs = np.array([[0.9, 0.8, 0.1, 0.2], [0.9, 0.3, 0.7, 0.1], [0.9, 0.4, 0.6, 0.3]])
    _, recall, _ = precision_recall_f1(y, probs)
    # a: positives in rows 0, 2; predicted only row 0 -> recall 1/2; c: 1/1; b: 0/1
    np.testing.assert_allclose(recall, [1.0, 0.5, 1.0, 0.0])
    assert recall_by_depth(recall, H.depth, H.eval_mask) == {1: 0.75, 2: 0.0}
    s = summarize(H, y, probs)
    assert s["macro_recall"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert s["recall_by_depth"] == {"1": 0.75, "2": 0.0}
    assert s["n_eval_nodes"] == 3 and s["n_eval_nodes_with_positives"] == 3
    # c predicted in row 2 where it is negative: precision 1/2
    table = node_metrics_table(H, y, probs, train_frequency=np.array([5, 3, 2, 1]))
    assert table.loc["c", "precision"] == pytest.approx(0.5)
    assert table.loc["b", "support"] == 1 and table.loc["b", "fn"] == 1
    assert table.loc["b", "parent"] == "a" and table.loc["root", "parent"] == ""
    assert list(table.index) == H.nodes


def test_mean_of_coherent_member_predictions_is_coherent():
    rng = np.random.default_rng(1)
    import torch

    mcm = MCM(H)
    members = mcm(torch.rand(5, 20, 4, dtype=torch.float64)).numpy()
    assert all(H.is_coherent(m) for m in members)
    assert H.is_coherent(members.mean(axis=0))
    assert summarize(H, (rng.random((20, 4)) < 0.3).astype(int), members.mean(0))["coherence_violations"] == 0


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shapes"):
        precision_recall_f1(np.zeros((2, 3)), np.zeros((2, 4)))


# ----------------------------------------------- hierarchical P/R/F1 and deepest correct level
def _naive_hierarchical(h: Hierarchy, y_true, y_pred, scored: set[str]):
    """Python-set reference: Kiritchenko's augmented sets via networkx, depth via BFS from the root."""
    import networkx as nx

    depth = {n: min(nx.shortest_path_length(h.graph, r, n) for r in h.roots if nx.has_path(h.graph, r, n))
             for n in h.graph.nodes}
    both = n_pred = n_true = 0
    correct, true_depth = [], []
    for t_row, p_row in zip(y_true, y_pred, strict=True):
        sets = []
        for row in (t_row, p_row):
            named = {h.nodes[j] for j in np.flatnonzero(row)}
            augmented = set(named)
            for n in named:
                augmented |= nx.ancestors(h.graph, n)
            sets.append(augmented & scored)
        t, p = sets
        both += len(t & p)
        n_pred += len(p)
        n_true += len(t)
        correct.append(max((depth[n] for n in t & p), default=0))
        true_depth.append(max((depth[n] for n in t), default=0))
    hp = both / n_pred if n_pred else 0.0
    hr = both / n_true if n_true else 0.0
    hf = 2 * hp * hr / (hp + hr) if hp + hr else 0.0
    return (hp, hr, hf), np.array(correct), np.array(true_depth)


def test_hierarchical_prf_and_deepest_level_hand_case():
    from hmlc_core.metrics import deepest_correct_level, hierarchical_precision_recall_f1

    # columns root, a, c, b (depths 0, 1, 1, 2); only the most specific terms are set, and some predictions are
    # incoherent (b without a), so the ancestor augmentation matters.
    y_true = np.array([[0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 0], [1, 0, 0, 0]])
    y_pred = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
    # augmented, root excluded: T = {a,b} {c} {a,b} {a,c} {};  P = {c} {a,b} {a} {a,b,c} {c}
    # |T & P| = 0 + 0 + 1 + 2 + 0 = 3;  sum |P| = 1 + 2 + 1 + 3 + 1 = 8;  sum |T| = 2 + 1 + 2 + 2 + 0 = 7
    hp, hr, hf = hierarchical_precision_recall_f1(y_true, y_pred, H)
    assert hp == pytest.approx(3 / 8)
    assert hr == pytest.approx(3 / 7)
    assert hf == pytest.approx(2 * (3 / 8) * (3 / 7) / (3 / 8 + 3 / 7))
    assert hf == pytest.approx(0.4)
    correct, true = deepest_correct_level(y_true, y_pred, H)
    np.testing.assert_array_equal(correct, [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(true, [2, 1, 2, 1, 0])
    assert correct.dtype == np.int64 and true.dtype == np.int64
    # a custom mask that also drops a: T & P = {} {} {} {c} {}, P = {c} {b} {} {b,c} {c}, T = {b} {c} {b} {c} {}
    mask = np.array([False, False, True, True])
    assert hierarchical_precision_recall_f1(y_true, y_pred, H, mask) == pytest.approx((1 / 5, 1 / 4, 2 / 9))
    np.testing.assert_array_equal(deepest_correct_level(y_true, y_pred, H, mask)[0], [0, 0, 0, 1, 0])
    # nothing predicted / nothing true: zero_division = 0
    assert hierarchical_precision_recall_f1(y_true, np.zeros_like(y_pred), H) == (0.0, 0.0, 0.0)
    assert hierarchical_precision_recall_f1(np.zeros_like(y_true), y_pred, H) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hierarchical_metrics_match_a_naive_set_implementation_on_a_random_dag(seed):
    from helpers import random_dag

    from hmlc_core.metrics import deepest_correct_level, hierarchical_precision_recall_f1

    h = random_dag(40, seed)
    assert not h.is_tree
    rng = np.random.default_rng(seed)
    y_true = (rng.random((60, h.n_nodes)) < 0.05).astype(np.uint8)  # sparse, not propagated
    y_pred = (rng.random((60, h.n_nodes)) < 0.08).astype(np.uint8)  # incoherent
    for mask in (h.eval_mask, rng.random(h.n_nodes) < 0.7):
        scored = {n for n, keep in zip(h.nodes, mask, strict=True) if keep}
        want, want_correct, want_true = _naive_hierarchical(h, y_true, y_pred, scored)
        assert hierarchical_precision_recall_f1(y_true, y_pred, h, mask) == pytest.approx(want)
        correct, true = deepest_correct_level(y_true, y_pred, h, mask)
        np.testing.assert_array_equal(correct, want_correct)
        np.testing.assert_array_equal(true, want_true)
        assert np.all(correct <= true)


def test_hierarchical_metrics_equal_flat_micro_for_coherent_predictions():
    from helpers import random_dag

    from hmlc_core.metrics import hierarchical_precision_recall_f1

    h = random_dag(30, 5)
    rng = np.random.default_rng(5)
    y_true = h.propagate(rng.random((80, h.n_nodes)) < 0.04)
    y_pred = h.propagate(rng.random((80, h.n_nodes)) < 0.06)
    m = h.eval_mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp, sr, sf, _ = precision_recall_fscore_support(y_true[:, m], y_pred[:, m], average="micro", zero_division=0)
    assert hierarchical_precision_recall_f1(y_true, y_pred, h) == pytest.approx((sp, sr, sf))


def test_hierarchical_metrics_reject_bad_input():
    from hmlc_core.metrics import deepest_correct_level, hierarchical_precision_recall_f1

    y = np.zeros((3, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="y_pred must hold 0/1"):
        hierarchical_precision_recall_f1(y, np.full((3, 4), 0.7), H)
    with pytest.raises(ValueError, match=r"y_true must have shape \(N, 4\)"):
        hierarchical_precision_recall_f1(np.zeros((3, 5)), y, H)
    with pytest.raises(ValueError, match="same shape"):
        deepest_correct_level(y, np.zeros((2, 4)), H)
    with pytest.raises(ValueError, match="eval_mask"):
        deepest_correct_level(y, y, H, np.ones(3, dtype=bool))


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int8, np.int64, np.float32, np.float64])
def test_is_binary_agrees_with_isin(dtype) -> None:
    from hmlc_core.metrics import is_binary

    rng = np.random.default_rng(0)
    for values in ((0, 1), (0, 1, 2), (-1, 0, 1), (0, 0.5, 1)):
        a = rng.choice(np.asarray(values, dtype=np.float64), size=(7, 5)).astype(dtype)
        assert is_binary(a) == bool(np.isin(a, (0, 1)).all()), (values, dtype)
    assert not is_binary(np.array([[0.0, np.nan]]))
    assert not is_binary(np.array([[0, 1]], dtype=object))
