"""Threshold-free and tail metrics (hmlc_core/tail_metrics.py; docs/method.md, *Threshold-free and tail metrics*).

References: scikit-learn's average precision (macro AUPRC), the CAFA evaluator ``cafaeval`` run on OBO and TSV
files (Fmax, Smin), napkinXC (propensities, P@k, PSP@k, nDCG@k, PSnDCG@k), plain-loop re-implementations
written here from the papers' formulas, and hand-computed cases.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import rare_node_mask, rare_node_recall, summarize
from hmlc_core.tail_metrics import (
    DEFAULT_THRESHOLDS,
    FREQUENCY_BINS,
    fmax,
    frequency_bin_masks,
    information_content,
    macro_auprc,
    ndcg_at_k,
    precision_at_k,
    propensities,
    psndcg_at_k,
    psp_at_k,
    smin,
    tail_summary,
)

# root -> a, b; a -> c, d; b -> c (c has two parents); c -> e. Column order: root, a, b, c, d, e.
DAG = Hierarchy([("root", "a"), ("root", "b"), ("a", "c"), ("b", "c"), ("a", "d"), ("c", "e")])


def _random_dag(n_nodes: int, seed: int) -> Hierarchy:
    """A random DAG over ids T:0000 (the root) .. with one or two parents per node."""
    rng = np.random.default_rng(seed)
    edges = []
    for i in range(1, n_nodes):
        parents = rng.choice(i, size=min(i, int(rng.integers(1, 3))), replace=False)
        edges += [(f"T:{int(p):04d}", f"T:{i:04d}") for p in parents]
    return Hierarchy(edges)


def _random_labels(h: Hierarchy, n: int, rng: np.random.Generator) -> np.ndarray:
    """Propagated labels, each sample with 1-3 random non-root nodes."""
    non_root = [v for v in h.nodes if v not in h.roots]
    sets = [rng.choice(non_root, size=int(rng.integers(1, 4)), replace=False) for _ in range(n)]
    return h.label_matrix(sets)


# ------------------------------------------------------------------------------------------------ macro AUPRC
def test_macro_auprc_both_variants_against_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random((120, 8)) < 0.2).astype(np.uint8)
    y[:, 3] = 0  # no test positive
    s = np.round(rng.random((120, 8)) * 0.6 + 0.3 * y, 2)  # ties
    mask = np.array([False, True, True, True, True, True, False, True])
    ap = {j: average_precision_score(y[:, j], s[:, j]) for j in range(8) if y[:, j].any()}
    selected = [j for j in range(8) if mask[j]]
    all_nodes = np.mean([ap.get(j, 0.0) for j in selected])
    with_pos = np.mean([ap[j] for j in selected if j in ap])
    assert macro_auprc(y, s, mask) == pytest.approx(all_nodes, abs=1e-12)
    assert macro_auprc(y, s, mask, with_positives_only=True) == pytest.approx(with_pos, abs=1e-12)
    assert macro_auprc(y, s, mask) < macro_auprc(y, s, mask, with_positives_only=True)


def test_macro_auprc_hand_case():
    # node 0 ranked perfectly (AP 1), node 1: positives at ranks 1 and 3 (AP (1 + 2/3)/2), node 2 no positive
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.9, 0.1], [0.8, 0.8, 0.2], [0.1, 0.7, 0.3], [0.2, 0.1, 0.4]])
    ap1 = (1 + 2 / 3) / 2
    assert macro_auprc(y, s) == pytest.approx((1 + ap1 + 0) / 3)
    assert macro_auprc(y, s, with_positives_only=True) == pytest.approx((1 + ap1) / 2)
    assert np.isnan(macro_auprc(y, s, np.array([False, False, True]), with_positives_only=True))
    assert np.isnan(macro_auprc(y, s, np.zeros(3, dtype=bool)))


# ------------------------------------------------------------------------------------------- Fmax / Smin, brute force
def _brute_force(y, s, eval_cols, thresholds, ic):
    """CAFA's definitions written as plain loops over samples, nodes and thresholds (Radivojac et al. 2013;
    Clark & Radivojac 2013): benchmark samples have a true evaluated node; thresholds where nothing is predicted
    are skipped. Returns (fmax, t_f, smin, t_s)."""
    rows = [i for i in range(len(y)) if any(y[i][j] for j in eval_cols)]
    best_f, best_tf, best_s, best_ts = None, None, None, None
    for t in thresholds:
        precisions, recalls, ru, mi, covered = [], [], 0.0, 0.0, 0
        for i in rows:
            predicted = {j for j in eval_cols if s[i][j] >= t}
            true = {j for j in eval_cols if y[i][j]}
            if predicted:
                covered += 1
                precisions.append(len(predicted & true) / len(predicted))
            recalls.append(len(predicted & true) / len(true))
            ru += sum(ic[j] for j in true - predicted)
            mi += sum(ic[j] for j in predicted - true)
        if covered == 0:
            continue
        pr, rc = sum(precisions) / covered, sum(recalls) / len(rows)
        f = 2 * pr * rc / (pr + rc) if pr + rc > 0 else 0.0
        dist = ((ru / len(rows)) ** 2 + (mi / len(rows)) ** 2) ** 0.5
        if best_f is None or f > best_f + 1e-12:
            best_f, best_tf = f, t
        if best_s is None or dist < best_s - 1e-12:
            best_s, best_ts = dist, t
    return best_f, best_tf, best_s, best_ts


def test_fmax_and_smin_match_brute_force_with_ties_on_the_grid():
    h = _random_dag(14, seed=1)
    rng = np.random.default_rng(1)
    y = _random_labels(h, 40, rng)
    y[:4, 1:] = 0  # samples with no true evaluated node (only the root): not benchmark targets, ignored
    probs = h.max_constraint(np.round(rng.random(y.shape) * 0.7 + 0.3 * y, 1))  # scores on grid values: s >= t ties
    grid = np.round(np.arange(1, 10) / 10, 1)
    ic = rng.random(h.n_nodes) * 3
    cols = list(np.flatnonzero(h.eval_mask))
    f_ref, tf_ref, s_ref, ts_ref = _brute_force(y.tolist(), probs.tolist(), cols, grid.tolist(), ic.tolist())
    f, tf = fmax(y, probs, h, grid)
    s, ts = smin(y, probs, ic, h, grid)
    assert (f, tf) == (pytest.approx(f_ref, abs=1e-12), tf_ref)
    assert (s, ts) == (pytest.approx(s_ref, abs=1e-12), ts_ref)
    # the same with a plain mask: no propagation needed, the probabilities are coherent
    assert fmax(y, probs, h.eval_mask, grid) == (f, tf)


def test_fmax_hand_case():
    # one node-level example: T_1 = {a, c}, T_2 = {b}. At t = 0.5: P_1 = {a}, P_2 = {a, b}:
    # pr = (1/1 + 1/2) / 2 = 0.75, rc = (1/2 + 1/1) / 2 = 0.75, F = 0.75.
    h = Hierarchy([("root", "a"), ("root", "b"), ("a", "c")])  # root, a, b, c
    y = np.array([[1, 1, 0, 1], [1, 0, 1, 0]])
    probs = np.array([[1.0, 0.6, 0.2, 0.3], [1.0, 0.7, 0.9, 0.1]])
    value, t = fmax(y, probs, h, np.array([0.5]))
    assert value == pytest.approx(0.75) and t == 0.5
    # t = 0.25 adds c to P_1: pr = (2/2 + 1/2) / 2 = 0.75, rc = 1 -> F = 6/7, the maximum
    value, t = fmax(y, probs, h, np.array([0.25, 0.5]))
    assert value == pytest.approx(6 / 7) and t == 0.25
    # nothing predicted at any threshold: F = 0, threshold undefined
    value, t = fmax(y, probs * 0.01, h, np.array([0.5]))
    assert value == 0.0 and np.isnan(t)


def test_fmax_propagates_scores_with_a_hierarchy():
    h = Hierarchy([("root", "a"), ("a", "b")])  # root, a, b
    y = np.array([[1, 1, 1]])
    incoherent = np.array([[1.0, 0.1, 0.9]])  # a below its child b
    assert fmax(y, incoherent, h, np.array([0.5]))[0] == pytest.approx(1.0)  # a raised to 0.9
    assert fmax(y, incoherent, h.eval_mask, np.array([0.5]))[0] == pytest.approx(2 / 3)  # as given: pr 1, rc 1/2


def test_fmax_rejects_bad_input():
    y = np.array([[1, 1, 0]])
    with pytest.raises(ValueError, match="increasing"):
        fmax(y, y * 0.5, np.ones(3, bool), np.array([0.5, 0.2]))
    with pytest.raises(ValueError, match="0/1"):
        fmax(y * 2, y * 0.5, np.ones(3, bool))
    with pytest.raises(ValueError, match="shape"):
        fmax(y, np.zeros((1, 2)), np.ones(3, bool))


# ------------------------------------------------------------------------------------------------ information content
def test_information_content_hand_case_with_two_parents_and_zero_counts():
    # DAG columns: root, a, b, c, d, e. c has parents a and b; e only below c.
    y = DAG.label_matrix([["c"], ["a"], ["a"], ["b"], ["d"], ["a", "b"]])
    ic = information_content(y, DAG)
    # a: 5 of 6 samples; b: 3 of 6; c | a and b: 1 of 2 (samples 0 and 5); d | a: 1 of 5;
    # e: parent c seen, e never -> -log2 0 -> 0 by convention; root: always -> 0
    expected = {"root": 0.0, "a": -np.log2(5 / 6), "b": 1.0, "c": 1.0, "d": -np.log2(1 / 5), "e": 0.0}
    for node, value in expected.items():
        assert ic[DAG.index[node]] == pytest.approx(value), node
    # no sample has both parents of c: 0/0 -> 0 by convention
    ic2 = information_content(DAG.label_matrix([["a"], ["b"]]), DAG)
    assert ic2[DAG.index["c"]] == 0.0
    assert (ic >= 0).all() and not np.signbit(ic).any()


def test_information_content_against_counting_loop():
    h = _random_dag(20, seed=3)
    rng = np.random.default_rng(3)
    y = _random_labels(h, 60, rng)
    ic = information_content(y, h)
    for node in h.nodes:
        j = h.index[node]
        parents = [h.index[p] for p in h.parents(node)]
        has_parents = [all(row[p] for p in parents) for row in y.tolist()]
        n_pa = sum(has_parents)
        n_both = sum(1 for row, ok in zip(y.tolist(), has_parents) if ok and row[j])
        ref = -np.log2(n_both / n_pa) if n_pa and n_both else 0.0
        assert ic[j] == pytest.approx(ref, abs=1e-12), node


# ------------------------------------------------------------------------------------------------ against cafaeval
def _write_cafa_inputs(tmp_path: Path, h: Hierarchy, y: np.ndarray, probs: np.ndarray, ic: np.ndarray) -> dict:
    obo = ["format-version: 1.2", ""]
    for node in h.nodes:
        obo += ["[Term]", f"id: {node}", f"name: term {node}", "namespace: test_ontology"]
        obo += [f"is_a: {p} ! term {p}" for p in h.parents(node)]
        obo.append("")
    (tmp_path / "ontology.obo").write_text("\n".join(obo))
    gt = [f"s{i}\t{node}" for i in range(len(y)) for node in h.nodes if y[i, h.index[node]]]
    (tmp_path / "gt.tsv").write_text("\n".join(gt) + "\n")
    (tmp_path / "pred").mkdir()
    pred = [f"s{i}\t{node}\t{float(probs[i, h.index[node]])!r}" for i in range(len(y)) for node in h.nodes]
    (tmp_path / "pred" / "model.tsv").write_text("\n".join(pred) + "\n")
    (tmp_path / "ia.tsv").write_text("\n".join(f"{node}\t{float(ic[h.index[node]])!r}" for node in h.nodes) + "\n")
    return {"obo_file": str(tmp_path / "ontology.obo"), "pred_dir": str(tmp_path / "pred"),
            "gt_file": str(tmp_path / "gt.tsv"), "ia": str(tmp_path / "ia.tsv")}


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # cafaeval 1.3.0 under pandas 3.1
@pytest.mark.parametrize("seed", [0, 1])
def test_fmax_and_smin_match_cafaeval(tmp_path, seed):
    cafaeval = pytest.importorskip("cafaeval.evaluation", reason="cafaeval (CAFA-evaluator) is in requirements.txt")
    h = _random_dag(16, seed=seed)
    rng = np.random.default_rng(seed)
    y_train = _random_labels(h, 80, rng)
    y = _random_labels(h, 30, rng)
    # incoherent scores (cafaeval and fmax/smin both max-propagate them), rounded to 3 decimals: ties
    probs = np.round(np.clip(rng.random(y.shape) * 0.8 + 0.25 * y, 0, 1), 3)
    ic = information_content(y_train, h)
    assert (ic > 0).sum() >= 5
    paths = _write_cafa_inputs(tmp_path, h, y, probs, ic)
    df, best = cafaeval.cafa_eval(**paths, no_orphans=True, norm="cafa", prop="max", th_step=0.01, n_cpu=1)
    grid = np.arange(0.01, 1, 0.01)  # cafaeval's grid, bit for bit

    f, t = fmax(y, probs, h, grid)
    assert f == pytest.approx(float(best["f"]["f"].iloc[0]), abs=1e-12)
    assert t == pytest.approx(float(best["f"].index.get_level_values("tau")[0]), abs=1e-12)

    s_unweighted, t_unweighted = smin(y, probs, np.ones(h.n_nodes), h, grid)  # cafaeval's "s": every node counts 1
    assert s_unweighted == pytest.approx(float(best["s"]["s"].iloc[0]), abs=1e-9)
    assert t_unweighted == pytest.approx(float(best["s"].index.get_level_values("tau")[0]), abs=1e-12)

    s, t = smin(y, probs, ic, h, grid)  # cafaeval's information-accretion-weighted "s_w"
    assert s == pytest.approx(float(df["s_w"].min()), abs=1e-9)
    assert t == pytest.approx(float(df["s_w"].idxmin()[2]), abs=1e-12)


# ------------------------------------------------------------------------------------------------ P@k and PSP@k
def test_propensities_hand_value_and_napkinxc():
    n, freq = 100, np.array([0.0, 1.0, 10.0, 99.0])
    c = (np.log(n) - 1) * 2.5**0.55
    expected = 1 / (1 + c * np.exp(-0.55 * np.log(freq + 1.5)))
    np.testing.assert_allclose(propensities(freq, n), expected, rtol=1e-12)
    assert (np.diff(propensities(freq, n)) > 0).all()
    napkinxc = pytest.importorskip("napkinxc.metrics", reason="napkinxc is in requirements.txt")
    rng = np.random.default_rng(0)
    y_train = (rng.random((200, 30)) < rng.random(30) * 0.3).astype(np.float64)
    np.testing.assert_allclose(propensities(y_train.sum(axis=0), 200),
                               napkinxc.Jain_et_al_propensity(y_train), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 3"):
        propensities(freq, 2)


def test_p_and_psp_at_k_match_napkinxc_without_ties():
    napkinxc = pytest.importorskip("napkinxc.metrics", reason="napkinxc is in requirements.txt")
    rng = np.random.default_rng(5)
    y = (rng.random((150, 25)) < 0.12).astype(np.float64)
    y[:5] = 0  # samples without any true label count in P@k and PSP@k
    scores = rng.random(y.shape) + 0.3 * y  # continuous: no ties
    prop = propensities(rng.integers(0, 60, 25), 500)
    for k in (1, 3, 5):
        assert precision_at_k(y, scores, k) == pytest.approx(napkinxc.precision_at_k(y, scores, k=k)[-1], abs=1e-12)
        ref_norm = napkinxc.psprecision_at_k(y, scores, 1 / prop, k=k, normalize=True)[-1]
        ref_raw = napkinxc.psprecision_at_k(y, scores, 1 / prop, k=k, normalize=False)[-1]
        assert psp_at_k(y, scores, prop, k) == pytest.approx(ref_norm, abs=1e-12)
        assert psp_at_k(y, scores, prop, k, normalised=False) == pytest.approx(ref_raw, abs=1e-12)


def _plain_psp(y, s, prop, k, mask):
    """PSP@k and its best value by explicit ranking: descending score, ties to the lower column."""
    cols = [j for j in range(len(mask)) if mask[j]]
    scored = best = hits = 0.0
    for yi, si in zip(y, s):
        ranking = sorted(cols, key=lambda j: (-si[j], j))[:k]
        hits += sum(yi[j] for j in ranking) / k
        scored += sum(yi[j] / prop[j] for j in ranking) / k
        best += sum(sorted((yi[j] / prop[j] for j in cols), reverse=True)[:k]) / k
    return hits / len(y), scored / best, scored / len(y)


def test_p_and_psp_at_k_with_ties_and_mask_against_plain_loops():
    rng = np.random.default_rng(6)
    y = (rng.random((60, 12)) < 0.25).astype(np.uint8)
    s = np.round(rng.random(y.shape) * 0.5 + 0.3 * y, 1)  # many ties: the lower column wins
    prop = propensities(rng.integers(0, 40, 12), 300)
    mask = np.ones(12, dtype=bool)
    mask[[0, 7]] = False
    for k in (1, 2, 4):
        p_ref, psp_ref, raw_ref = _plain_psp(y.tolist(), s.tolist(), prop.tolist(), k, mask.tolist())
        assert precision_at_k(y, s, k, mask) == pytest.approx(p_ref, abs=1e-12)
        assert psp_at_k(y, s, prop, k, mask) == pytest.approx(psp_ref, abs=1e-12)
        assert psp_at_k(y, s, prop, k, mask, normalised=False) == pytest.approx(raw_ref, abs=1e-12)


def test_psp_at_k_hand_case():
    # labels 0 (p = 0.5) and 1 (p = 0.25); sample 1 true {0, 1}, sample 2 true {1}; both rank 0 above 1.
    y = np.array([[1, 1], [0, 1]])
    s = np.array([[0.9, 0.1], [0.8, 0.2]])
    prop = np.array([0.5, 0.25])
    # P@1 = (1 + 0)/2; PSP@1 = (2 + 0)/2 = 1; best = (4 + 4)/2 = 4 -> normalised 0.25
    assert precision_at_k(y, s, 1) == pytest.approx(0.5)
    assert psp_at_k(y, s, prop, 1, normalised=False) == pytest.approx(1.0)
    assert psp_at_k(y, s, prop, 1) == pytest.approx(0.25)
    # tie: the lower column (shallower node) is ranked first
    assert precision_at_k(np.array([[0, 1]]), np.array([[0.5, 0.5]]), 1) == 0.0
    with pytest.raises(ValueError, match="exceeds"):
        precision_at_k(y, s, 3)
    assert np.isnan(psp_at_k(np.zeros((2, 2)), s, prop, 1))


# ------------------------------------------------------------------------------------------------ nDCG@k and PSnDCG@k
def test_ndcg_and_psndcg_at_k_match_napkinxc_without_ties():
    napkinxc = pytest.importorskip("napkinxc.metrics", reason="napkinxc is in requirements.txt")
    rng = np.random.default_rng(8)
    y = (rng.random((150, 25)) < 0.12).astype(np.float64)
    y[:5] = 0  # samples without a true label: 0 in nDCG@k, nothing in either sum of PSnDCG@k
    y[5:10] = 0
    y[5:10, 3] = 1  # one true label, fewer than k: the ideal DCG stops at min(k, |y_i|)
    scores = rng.random(y.shape) + 0.3 * y  # continuous: no ties
    prop = propensities(rng.integers(0, 60, 25), 500)
    for k in (1, 3, 5):
        assert ndcg_at_k(y, scores, k) == pytest.approx(napkinxc.ndcg_at_k(y, scores, k=k)[-1], abs=1e-12)
        for normalised in (True, False):
            ref = napkinxc.psndcg_at_k(y, scores, 1 / prop, k=k, normalize=normalised)[-1]
            assert psndcg_at_k(y, scores, prop, k, normalised=normalised) == pytest.approx(ref, abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 12), c=st.integers(2, 9), levels=st.integers(1, 4))
def test_ndcg_and_psndcg_with_ties_and_masks_match_napkinxc(seed, n, c, levels):
    """napkinXC orders tied scores arbitrarily, so it gets a stable sort's ranking: ties to the lower column."""
    napkinxc = pytest.importorskip("napkinxc.metrics", reason="napkinxc is in requirements.txt")
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.35).astype(np.uint8)  # samples without a true node are common
    s = rng.integers(0, levels, (n, c)) / levels  # at most 4 distinct scores: many ties
    mask = rng.random(c) < 0.8
    mask[rng.integers(c)] = True
    prop = propensities(rng.integers(0, 30, c), 200)
    cols = np.flatnonzero(mask)
    ranking = [[int(j) for j in row] for row in np.argsort(-s[:, cols], axis=1, kind="stable")]
    y_ref, inverse = y[:, cols].astype(np.float64), 1 / prop[cols]
    for k in range(1, cols.size + 1):
        assert ndcg_at_k(y, s, k, mask) == pytest.approx(napkinxc.ndcg_at_k(y_ref, ranking, k=k)[-1], abs=1e-12)
        raw = napkinxc.psndcg_at_k(y_ref, ranking, inverse, k=k, normalize=False)[-1]
        assert psndcg_at_k(y, s, prop, k, mask, normalised=False) == pytest.approx(raw, abs=1e-12)
        if y_ref.any():
            ref = napkinxc.psndcg_at_k(y_ref, ranking, inverse, k=k, normalize=True)[-1]
            assert psndcg_at_k(y, s, prop, k, mask) == pytest.approx(ref, abs=1e-12)
        else:  # no true masked node at all: the best attainable value is 0
            assert np.isnan(psndcg_at_k(y, s, prop, k, mask))


def test_ndcg_and_psndcg_at_k_hand_case():
    # rankings: sample 0 ranks 0, 2, 1 (true {0, 1}); sample 1 ranks 0, 2, 1 (true {2}); sample 2 has no true node
    y = np.array([[1, 1, 0], [0, 0, 1], [0, 0, 0]])
    s = np.array([[0.9, 0.1, 0.5], [0.8, 0.2, 0.7], [0.1, 0.2, 0.3]])
    prop = np.array([0.5, 0.25, 0.2])  # gains 1/p = 2, 4, 5
    d2 = 1 / np.log2(3)  # discount of rank 2
    z0 = 1 + d2  # sample 0's ideal DCG@2 (two true nodes); sample 1's is 1 (one true node)
    assert ndcg_at_k(y, s, 2) == pytest.approx((1 / z0 + d2) / 3)
    scored = 2 / z0 + 5 * d2  # PSDCG@2 / ideal DCG@2, summed over the samples
    best = (4 + 2 * d2) / z0 + 5  # the same for the best ranking (largest gain first)
    assert psndcg_at_k(y, s, prop, 2, normalised=False) == pytest.approx(scored / 3)
    assert psndcg_at_k(y, s, prop, 2) == pytest.approx(scored / best)
    assert ndcg_at_k(y, s, 1) == pytest.approx(1 / 3)  # sample 0's top node is true
    # tie: the lower column (shallower node) is ranked first
    assert ndcg_at_k(np.array([[0, 1]]), np.array([[0.5, 0.5]]), 1) == 0.0
    assert ndcg_at_k(np.array([[1, 0]]), np.array([[0.5, 0.5]]), 1) == 1.0
    assert ndcg_at_k(np.zeros((2, 3)), s[:2], 2) == 0.0
    assert np.isnan(psndcg_at_k(np.zeros((2, 3)), s[:2], prop, 2))
    assert psndcg_at_k(np.zeros((2, 3)), s[:2], prop, 2, normalised=False) == 0.0
    with pytest.raises(ValueError, match="exceeds"):
        ndcg_at_k(y, s, 4)
    with pytest.raises(ValueError, match="exceeds"):
        psndcg_at_k(y, s, prop, 2, np.array([True, False, False]))
    with pytest.raises(ValueError, match="positive integer"):
        ndcg_at_k(y, s, 0)
    with pytest.raises(ValueError, match="propensity"):
        psndcg_at_k(y, s, np.array([0.5, 0.0, 0.2]), 1)
    with pytest.raises(ValueError, match="0/1"):
        ndcg_at_k(y * 2, s, 1)


# ------------------------------------------------------------------------------------------------ tail_summary
@pytest.fixture(scope="module")
def summary_case():
    h = _random_dag(40, seed=7)
    rng = np.random.default_rng(7)
    y_train = _random_labels(h, 300, rng)
    y = _random_labels(h, 120, rng)
    probs = h.max_constraint(np.clip(rng.random(y.shape) * 0.6 + 0.35 * y, 0, 1))
    pred = (probs > 0.45).astype(np.uint8)
    freq = y_train.sum(axis=0)
    return h, y_train, y, probs, pred, freq


def test_tail_summary_agrees_with_the_single_metrics(summary_case):
    h, y_train, y, probs, pred, freq = summary_case
    out = tail_summary(h, y, probs, pred, freq, len(y_train), y_train)
    json.dumps(out, allow_nan=False)  # strict JSON
    mask = h.eval_mask
    base = summarize(h, y, pred, threshold=0.5)
    for key in ("macro_precision", "macro_recall", "macro_f1"):
        assert out[key] == pytest.approx(base[key])
    assert out["n_eval_nodes"] == base["n_eval_nodes"]
    assert out["n_eval_nodes_with_positives"] == base["n_eval_nodes_with_positives"]
    assert out["macro_auprc"] == pytest.approx(macro_auprc(y, probs, mask))
    assert out["macro_auprc_with_positives"] == pytest.approx(macro_auprc(y, probs, mask, with_positives_only=True))
    rare = rare_node_mask(freq, mask)
    recall = (pred.astype(bool) & (y == 1)).sum(0) / np.maximum(y.sum(0), 1)
    assert out["rare_node_recall"] == pytest.approx(rare_node_recall(recall, freq, mask))
    assert out["rare_node_auprc"] == pytest.approx(macro_auprc(y, probs, rare))
    assert out["n_rare_nodes"] == int(rare.sum())
    assert (out["fmax"], out["fmax_threshold"]) == pytest.approx(fmax(y, probs, h))
    ic = information_content(y_train, h)
    assert (out["smin"], out["smin_threshold"]) == pytest.approx(smin(y, probs, ic, h))
    prop = propensities(freq, len(y_train))
    for k in (1, 3, 5):
        assert out[f"p@{k}"] == pytest.approx(precision_at_k(y, probs, k, mask))
        assert out[f"psp@{k}"] == pytest.approx(psp_at_k(y, probs, prop, k, mask))
    tp, n_pred, n_true = ((pred == 1) & (y == 1))[:, mask].sum(), pred[:, mask].sum(), y[:, mask].sum()
    assert out["micro_f1"] == pytest.approx(2 * tp / (n_pred + n_true))


def test_tail_summary_groups(summary_case):
    h, y_train, y, probs, pred, freq = summary_case
    out = tail_summary(h, y, probs, pred, freq, len(y_train), ks=(1, 2))
    assert "smin" not in out  # no training labels, no information content
    bins = out["by_frequency_bin"]
    assert list(bins) == ["bottom quartile"] + [label for label, _, _ in FREQUENCY_BINS]
    masks = frequency_bin_masks(freq, h.eval_mask)
    absolute = [masks[label] for label, _, _ in FREQUENCY_BINS]
    assert (np.sum(absolute, axis=0) == h.eval_mask).all()  # the absolute bins partition the evaluated nodes
    assert sum(bins[label]["n_nodes"] for label, _, _ in FREQUENCY_BINS) == out["n_eval_nodes"]
    for label, lo, hi in FREQUENCY_BINS:
        nodes = masks[label]
        assert (freq[nodes] >= lo).all() and (hi is None or (freq[nodes] <= hi).all())
        if nodes.any():
            assert bins[label]["macro_auprc"] == pytest.approx(macro_auprc(y, probs, nodes))
            assert bins[label]["fmax"] == pytest.approx(fmax(y, probs, nodes)[0])
    depths = out["by_depth"]
    assert set(depths) == {str(d) for d in np.unique(h.depth[h.eval_mask])}
    assert sum(g["n_nodes"] for g in depths.values()) == out["n_eval_nodes"]
    for d, g in depths.items():
        nodes = h.eval_mask & (h.depth == int(d))
        assert g["macro_auprc_with_positives"] == pytest.approx(
            macro_auprc(y, probs, nodes, with_positives_only=True), nan_ok=True) or g["n_nodes_with_positives"] == 0
        if nodes.sum() >= 2:
            assert g["p@2"] == pytest.approx(precision_at_k(y, probs, 2, nodes))
        else:
            assert g["p@2"] is None


def test_tail_summary_reports_ndcg_and_psndcg(summary_case):
    h, y_train, y, probs, pred, freq = summary_case
    out = tail_summary(h, y, probs, pred, freq, len(y_train), ks=(1, 2, 5))
    json.dumps(out, allow_nan=False)
    prop = propensities(freq, len(y_train))
    groups = {"overall": (out, h.eval_mask)}
    masks = frequency_bin_masks(freq, h.eval_mask)
    groups.update({f"bin {label}": (g, masks[label]) for label, g in out["by_frequency_bin"].items()})
    groups.update({f"depth {d}": (g, h.eval_mask & (h.depth == int(d))) for d, g in out["by_depth"].items()})
    assert any(nodes.sum() < 5 for _, nodes in groups.values())  # some group too small for k = 5
    for name, (g, nodes) in groups.items():
        for k in (1, 2, 5):
            assert {f"p@{k}", f"psp@{k}", f"ndcg@{k}", f"psndcg@{k}"} <= set(g), name  # old keys kept
            if nodes.sum() < k:
                assert g[f"ndcg@{k}"] is None and g[f"psndcg@{k}"] is None and g[f"p@{k}"] is None, name
                continue
            assert g[f"ndcg@{k}"] == pytest.approx(ndcg_at_k(y, probs, k, nodes), abs=1e-12), name
            ref = psndcg_at_k(y, probs, prop, k, nodes)
            assert g[f"psndcg@{k}"] == (None if np.isnan(ref) else pytest.approx(ref, abs=1e-12)), name


def test_tail_summary_rejects_bad_input(summary_case):
    h, y_train, y, probs, pred, freq = summary_case
    with pytest.raises(ValueError, match="pred"):
        tail_summary(h, y, probs, probs, freq, len(y_train))
    with pytest.raises(ValueError, match="train_frequency"):
        tail_summary(h, y, probs, pred, freq[:-1], len(y_train))


def test_default_threshold_grid_is_cafas():
    assert len(DEFAULT_THRESHOLDS) == 99 and DEFAULT_THRESHOLDS[0] == 0.01 and DEFAULT_THRESHOLDS[-1] == 0.99


# ------------------------------------------------------------------------------------------------ real data
def test_tail_summary_on_cellcycle_go():
    data_dir = os.environ.get("HMLC_DATA_DIR")
    if not data_dir or not Path(data_dir).is_dir():
        pytest.skip("real-data test: set HMLC_DATA_DIR to the CLUS HMC folder")
    from hmlc_core.data import DatasetNotFoundError, load_dataset

    try:
        ds = load_dataset("cellcycle_GO", data_dir)
    except DatasetNotFoundError:
        pytest.skip(f"real-data test: cellcycle_GO not found under HMLC_DATA_DIR={data_dir}")
    h, y_train, y = ds.hierarchy, ds.train.Y, ds.test.Y
    rng = np.random.default_rng(0)
    probs = h.max_constraint(np.clip(0.5 * y + rng.random(y.shape) * 0.6, 0, 1))  # an informative, coherent scorer
    pred = (probs > 0.5).astype(np.uint8)
    out = tail_summary(h, y, probs, pred, y_train.sum(axis=0), len(y_train), y_train)
    json.dumps(out, allow_nan=False)
    assert out["n_eval_nodes"] == int(h.eval_mask.sum())
    assert 0 < out["macro_auprc"] < out["macro_auprc_with_positives"] <= 1
    assert 0 < out["fmax"] <= 1 and out["smin"] > 0
    assert out["by_frequency_bin"]["<= 8"]["n_nodes"] > 0
    for k in (1, 3, 5):
        assert 0 < out[f"psndcg@{k}"] < out[f"ndcg@{k}"] <= 1  # the frequent upper levels fill the top ranks
