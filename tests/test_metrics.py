"""Metrics against scikit-learn and a hand-computed case (METHOD.md G1, G2, L17)."""

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
