"""Decision rules (hmlc_core.decision): hand cases, scikit-learn brute-force references, DAG consistency,
persistence, refusals, and the runs / CLI wiring."""

import json
import math

import numpy as np
import pytest
from helpers import closure_reference, random_dag
from sklearn.metrics import f1_score

from hmlc_core.config import TrainConfig
from hmlc_core.decision import (DEFAULT_SHRINKAGE, DecisionRule, best_f1_threshold, fit_decision_rule,
                                per_node_thresholds, prevalence_floor, shrinkage_tradeoff)
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import confusion_counts, macro_precision_recall_f1, summarize

# ------------------------------------------------------------------ hand cases
# root -> a -> a1 -> a1x, root -> b. Rows: samples; columns in the order a, a1, a1x, b.
HAND_P = np.array([[0.9, 0.8, 0.7, 0.1],
                   [0.8, 0.3, 0.2, 0.6],
                   [0.4, 0.35, 0.1, 0.2],
                   [0.7, 0.6, 0.05, 0.3]])
HAND_Y = np.array([[1, 1, 1, 0],
                   [1, 0, 0, 1],
                   [0, 0, 0, 0],
                   [1, 1, 1, 0]])
HAND_NODES = ["a", "a1", "a1x", "b"]


def _tree() -> Hierarchy:
    return Hierarchy([("root", "a"), ("a", "a1"), ("a1", "a1x"), ("root", "b")])


def _hand(h: Hierarchy) -> tuple[np.ndarray, np.ndarray]:
    """The hand matrices in the hierarchy's column order, the root's probability its children's max."""
    p, y = np.zeros((4, h.n_nodes)), np.zeros((4, h.n_nodes), dtype=np.uint8)
    for k, node in enumerate(HAND_NODES):
        p[:, h.index[node]], y[:, h.index[node]] = HAND_P[:, k], HAND_Y[:, k]
    p[:, h.index["root"]], y[:, h.index["root"]] = HAND_P.max(axis=1), 1
    assert h.coherence_violations(p) == 0 and h.coherence_violations(y) == 0
    return y, p


def _by_node(h: Hierarchy, rule: DecisionRule) -> dict[str, float]:
    return {n: float(rule.thresholds[h.index[n]]) for n in h.nodes}


def test_two_node_tree_by_hand():
    # scores 0.9 0.8 0.6 0.3 0.2, positives at 0.9 and 0.6: F1 of the top 1, 2, 3, 4, 5 is
    # 2/3, 1/2, 4/5, 2/3, 4/7, so the best cut is between 0.6 and 0.3.
    h = Hierarchy([("root", "a")])
    p = np.array([[0.9, 0.9], [0.8, 0.8], [0.6, 0.6], [0.3, 0.3], [0.2, 0.2]])
    y = np.array([[1, 1], [1, 0], [1, 1], [1, 0], [1, 0]])
    for rule in ("global", "per-node"):
        fitted = fit_decision_rule(rule, h, y, p, shrinkage=0)
        assert _by_node(h, fitted) == {"root": -math.inf, "a": pytest.approx(0.45)}
    assert best_f1_threshold(y[:, 1], p[:, 1]) == (pytest.approx(0.45), pytest.approx(0.8))


def test_three_level_tree_by_hand():
    h = _tree()
    y, p = _hand(h)
    # Global: the 16 (sample, node) pairs sorted by score; 8 positives. Cutting below the 0.6s keeps
    # 7 pairs, all positive: F1 = 14 / 15, the best; the cut is midway between 0.6 and 0.4.
    glob = fit_decision_rule("global", h, y, p)
    assert glob.threshold == pytest.approx(0.5)
    assert _by_node(h, glob) == {"root": -math.inf, "a": 0.5, "a1": 0.5, "a1x": 0.5, "b": 0.5}
    # Per node (m = 0): a 0.55 (F1 1), a1 0.475 (F1 1), a1x 0.45 (F1 2/3, tie with predicting all: the
    # higher threshold wins), b 0.45 (F1 1); the thresholds are kept as they are (no monotone fixing).
    raw = per_node_thresholds(h, y, p, 0.0, 0.5)
    assert {n: raw[h.index[n]] for n in HAND_NODES} == pytest.approx({"a": 0.55, "a1": 0.475, "a1x": 0.45, "b": 0.45})
    per_node = fit_decision_rule("per-node", h, y, p, shrinkage=0)
    assert _by_node(h, per_node) == pytest.approx({"root": -math.inf, "a": 0.55, "a1": 0.475, "a1x": 0.45, "b": 0.45})
    # Upward closure: a1x at 0.46 clears its 0.45, so a1 and a are predicted although a's 0.5 is below its
    # own 0.55; a sample whose a is at 0.5 and whose descendants are below theirs predicts nothing
    # (monotone thresholds would have lowered a to 0.45 and predicted it there).
    fresh = np.zeros((2, h.n_nodes))
    for node, row0, row1 in (("a", 0.5, 0.5), ("a1", 0.46, 0.47), ("a1x", 0.46, 0.44), ("b", 0.1, 0.1)):
        fresh[:, h.index[node]] = row0, row1
    fresh[:, h.index["root"]] = fresh.max(axis=1)
    predicted = [{n for n in h.nodes if row[h.index[n]]} for n, row in zip((0, 1), per_node.predict(fresh))]
    assert predicted == [{"root", "a", "a1", "a1x"}, {"root"}]
    # m = 2: t = (n t* + 2 * 0.5) / (n + 2) with n = 3, 2, 2, 1 held-out positives.
    shrunk = fit_decision_rule("per-node", h, y, p, shrinkage=2)
    a, a1, a1x, b = (3 * .55 + 1) / 5, (2 * .475 + 1) / 4, (2 * .45 + 1) / 4, (.45 + 1) / 3
    assert a > a1 > a1x
    assert _by_node(h, shrunk) == pytest.approx({"root": -math.inf, "a": a, "a1": a1, "a1x": a1x, "b": b})
    assert shrunk.label() == "per-node (m = 2)" and glob.label() == "global 0.50"
    assert fit_decision_rule("fixed", h).label() == "fixed 0.5"


def test_nodes_without_held_out_positives_get_the_global_threshold():
    h = _tree()
    y, p = _hand(h)
    y[:, h.index["b"]] = 0
    glob = fit_decision_rule("global", h, y, p).threshold
    rule = fit_decision_rule("per-node", h, y, p, shrinkage=0)
    assert rule.thresholds[h.index["b"]] == glob


# ------------------------------------------------------------------ references
def _random_flat(seed: int, n: int = 60, c: int = 8) -> tuple[Hierarchy, np.ndarray, np.ndarray]:
    """root -> c leaves, scores rounded to 2 decimals (ties), labels correlated with the scores."""
    rng = np.random.default_rng(seed)
    h = Hierarchy([("root", f"v{j}") for j in range(c)])
    p = np.round(rng.random((n, h.n_nodes)), 2)
    y = (rng.random((n, h.n_nodes)) < 0.3 * p + 0.05).astype(np.uint8)
    p[:, 0], y[:, 0] = p.max(axis=1), 1
    return h, y, p


def _candidates(scores: np.ndarray) -> np.ndarray:
    """Every threshold that gives a distinct prediction: below the minimum and each distinct score."""
    u = np.unique(scores)
    return np.r_[u.min() - 1, u]


@pytest.mark.parametrize("seed", range(5))
def test_global_threshold_matches_sklearn_brute_force(seed):
    h, y, p = _random_flat(seed)
    mask = h.eval_mask
    best = max(f1_score(y[:, mask].ravel(), (p[:, mask] > t).ravel()) for t in _candidates(p[:, mask]))
    rule = fit_decision_rule("global", h, y, p)
    ours = f1_score(y[:, mask], rule.predict(p)[:, mask], average="micro")
    assert ours == pytest.approx(best)


@pytest.mark.parametrize("seed", range(5))
def test_per_node_without_shrinkage_matches_sklearn_brute_force(seed):
    h, y, p = _random_flat(seed)
    rule = fit_decision_rule("per-node", h, y, p, shrinkage=0)
    pred = rule.predict(p)
    for j in np.flatnonzero(h.eval_mask & (y.sum(axis=0) > 0)):
        best = max(f1_score(y[:, j], p[:, j] > t) for t in _candidates(p[:, j]))
        assert f1_score(y[:, j], pred[:, j]) == pytest.approx(best), h.nodes[j]


@pytest.mark.parametrize("seed", range(3))
def test_infinite_shrinkage_is_the_global_rule(seed):
    h = random_dag(25, seed)
    rng = np.random.default_rng(seed)
    p = h.max_constraint(rng.random((80, h.n_nodes)) ** 2)
    y = h.propagate(rng.random((80, h.n_nodes)) < 0.05)
    glob = fit_decision_rule("global", h, y, p)
    for m in (math.inf, 1e12):
        rule = fit_decision_rule("per-node", h, y, p, shrinkage=m)
        np.testing.assert_allclose(rule.thresholds, glob.thresholds, rtol=1e-9)
        assert rule.threshold == glob.threshold


# ------------------------------------------------------------------ hierarchy consistency
@pytest.mark.parametrize("seed", range(60))
def test_every_rule_is_coherent_on_a_random_dag(seed):
    draw = np.random.default_rng(1000 + seed)  # the case: DAG size, rule, m and T
    n_nodes, rule = int(draw.integers(2, 31)), ("fixed", "global", "per-node")[seed % 3]
    shrinkage, fixed = float(draw.choice([0.0, 0.5, 2.0, 20.0])), float(draw.uniform(0, 1))
    h = random_dag(n_nodes, seed)
    rng = np.random.default_rng(seed)
    raw = rng.random((50, h.n_nodes)) ** rng.uniform(0.5, 4, size=h.n_nodes)
    p = h.max_constraint(raw).astype(np.float32)  # coherent, as the MCM makes them; stored as float32 in runs
    y = h.propagate(rng.random((50, h.n_nodes)) < 0.1)
    y[0, -1] = 1  # at least one evaluated positive
    y = h.propagate(y)
    prevalence = rng.random(h.n_nodes) * 0.3 if seed % 2 else None
    fitted = fit_decision_rule(rule, h, y, p, threshold=fixed, shrinkage=shrinkage, prevalence=prevalence)
    incoherent = rng.random((30, h.n_nodes))  # the closure does not rely on the MCM
    for probs in (p, h.max_constraint(rng.random((30, h.n_nodes))), incoherent):  # held-out, fresh, incoherent
        pred = fitted.predict(probs)
        assert h.coherence_violations(pred) == 0
        assert pred[:, ~h.eval_mask].all() or not (~h.eval_mask).any()  # the roots are always predicted
        # the closure only adds ancestors of nodes above their thresholds: nothing else is predicted
        above = probs > fitted.thresholds
        np.testing.assert_array_equal(pred, h.propagate(above))
        assert (pred >= above).all()
        for j in range(h.n_nodes):  # one node's column from its subtree alone (the PR curve's operating point)
            np.testing.assert_array_equal(fitted.predict_node(probs, j), pred[:, j])
    with pytest.raises(IndexError):
        fitted.predict_node(p, h.n_nodes)


def test_closure_follows_every_path_of_a_dag():
    # d has two parents (r and c, c under a): a prediction of e alone brings d, c, a and r along both paths,
    # whatever their own thresholds.
    h = Hierarchy([("r", "a"), ("a", "c"), ("r", "d"), ("c", "d"), ("d", "e")])
    t = np.full(h.n_nodes, 0.9)
    t[h.index["e"]], t[h.index["r"]] = 0.1, -np.inf
    rule = DecisionRule("per-node", t, 0.9, h, 0.0)
    probs = np.full((1, h.n_nodes), 0.2)
    assert {n for n in h.nodes if rule.predict(probs)[0, h.index[n]]} == {"r", "a", "c", "d", "e"}
    t[h.index["e"]] = 0.95  # nothing clears its threshold: only the root
    rule = DecisionRule("per-node", t, 0.9, h, 0.0)
    assert {n for n in h.nodes if rule.predict(probs)[0, h.index[n]]} == {"r"}
    with pytest.raises(ValueError, match="thresholds must have shape"):
        DecisionRule("fixed", t[:-1], 0.5, h)


# ------------------------------------------------------------------ the prevalence floor
def test_prevalence_floor_is_the_numpy_quantile_and_predicts_the_training_share():
    rng = np.random.default_rng(4)
    p = rng.random((200, 5))
    pi = np.array([0.0, 0.005, 0.05, 0.3, 1.0])
    floor = prevalence_floor(p, pi)
    assert floor[0] == np.inf
    for j in range(1, 5):
        assert floor[j] == pytest.approx(np.quantile(p[:, j], 1 - pi[j]))
    share = (p > floor).mean(axis=0)
    assert share[1] == pytest.approx(1 / 200)  # 0.005 x 200 = 1 sample: the top one
    assert share[2] == pytest.approx(0.05, abs=1 / 200) and share[3] == pytest.approx(0.3, abs=1 / 200)
    for bad in (np.array([0.1, -0.1, 0, 0, 0]), np.array([0.1, 1.5, 0, 0, 0]), np.array([np.nan, 0, 0, 0, 0])):
        with pytest.raises(ValueError, match="prevalence"):
            prevalence_floor(p, bad)
    with pytest.raises(ValueError, match="must be"):
        prevalence_floor(p, pi[:3])


def test_per_node_thresholds_are_capped_by_the_floor_only_where_tuned():
    h = _tree()
    y, p = _hand(h)
    pi = np.zeros(h.n_nodes)
    pi[h.index["a1x"]] = 0.25  # the top one of 4 held-out samples: a1x's floor is between 0.7 and 0.2
    pi[h.index["b"]] = 1.0  # floor at the minimum score: b then fires on every held-out sample
    shrunk = per_node_thresholds(h, y, p, 2.0, 0.5)
    capped = per_node_thresholds(h, y, p, 2.0, 0.5, prevalence=pi)
    floor = prevalence_floor(p, pi)
    for node in HAND_NODES:
        j = h.index[node]
        assert capped[j] == pytest.approx(min(shrunk[j], floor[j])), node
    assert capped[h.index["b"]] == pytest.approx(0.1) and capped[h.index["a1x"]] < shrunk[h.index["a1x"]]
    assert capped[h.index["a"]] == shrunk[h.index["a"]]  # prevalence 0: no floor
    y[:, h.index["b"]] = 0  # no held-out positive: b keeps the global threshold, floor or not
    assert per_node_thresholds(h, y, p, 2.0, 0.5, prevalence=pi)[h.index["b"]] == 0.5


# ------------------------------------------------------------------ persistence and refusals
def test_round_trip_through_strict_json():
    h = _tree()
    y, p = _hand(h)
    for rule in ("fixed", "global", "per-node"):
        fitted = fit_decision_rule(rule, h, y, p, shrinkage=3)
        back = DecisionRule.from_dict(json.loads(json.dumps(fitted.to_dict(), allow_nan=False)), h)
        assert back == fitted and back.label() == fitted.label()
        np.testing.assert_array_equal(back.predict(p), fitted.predict(p))
    with pytest.raises(ValueError, match="unknown decision rule"):
        DecisionRule.from_dict({**fitted.to_dict(), "rule": "magic"}, h)


def test_tuned_rules_refuse_without_held_out_data():
    h = _tree()
    for rule in ("global", "per-node"):
        with pytest.raises(ValueError, match="--fit-on train"):
            fit_decision_rule(rule, h)
    with pytest.raises(ValueError, match="no positive"):
        fit_decision_rule("global", h, np.zeros((3, h.n_nodes)), np.full((3, h.n_nodes), 0.5))
    with pytest.raises(ValueError, match="unknown decision rule"):
        fit_decision_rule("best", h)
    with pytest.raises(ValueError, match="shrinkage"):
        fit_decision_rule("per-node", h, *_hand(h), shrinkage=-1)
    with pytest.raises(ValueError, match="fit_on='train'"):
        TrainConfig(dataset="synthetic", decision="per-node").validate()
    TrainConfig(dataset="synthetic", decision="per-node", fit_on="train").validate()
    assert TrainConfig(dataset="x").decision == "fixed" and DEFAULT_SHRINKAGE > 0


# ------------------------------------------------------------------ metrics with per-node thresholds
def test_metric_functions_take_per_node_thresholds():
    h, y, p = _random_flat(7)
    t = np.linspace(0.1, 0.9, h.n_nodes)
    counts = confusion_counts(y, p, t)
    for j in range(h.n_nodes):
        column = confusion_counts(y[:, [j]], p[:, [j]], float(t[j]))
        assert {k: int(v[j]) for k, v in counts.items()} == {k: int(v[0]) for k, v in column.items()}
    f1 = [f1_score(y[:, j], p[:, j] > t[j], zero_division=0) for j in np.flatnonzero(h.eval_mask)]
    assert macro_precision_recall_f1(y, p, h.eval_mask, t)[2] == pytest.approx(np.mean(f1))
    assert summarize(h, y, p, t)["macro_f1"] == pytest.approx(np.mean(f1))
    # given predictions replace probs > threshold everywhere
    pred = (np.random.default_rng(1).random(y.shape) < 0.4).astype(np.uint8)
    f1 = [f1_score(y[:, j], pred[:, j], zero_division=0) for j in np.flatnonzero(h.eval_mask)]
    assert macro_precision_recall_f1(y, p, h.eval_mask, t, predictions=pred)[2] == pytest.approx(np.mean(f1))
    assert summarize(h, y, p, 0.5, predictions=pred)["macro_f1"] == pytest.approx(np.mean(f1))
    assert summarize(h, y, p, 0.5, predictions=pred)["auprc_micro"] == summarize(h, y, p)["auprc_micro"]
    with pytest.raises(ValueError, match="predictions"):
        confusion_counts(y, p, predictions=pred[:, :-1])


def test_shrinkage_tradeoff_table():
    h, y, p = _random_flat(3, n=120)
    held, test = slice(0, 60), slice(60, 120)
    table = shrinkage_tradeoff(h, y[held], p[held], y[test], p[test], ms=(0, 2, 1e9), train_frequency=y[held].sum(0))
    assert list(table["rule"]) == ["fixed", "global", "per-node", "per-node", "per-node"]
    mask = h.eval_mask
    assert table.loc[0, "macro_f1"] == pytest.approx(macro_precision_recall_f1(y[test], p[test], mask, 0.5)[2])
    t_glob = fit_decision_rule("global", h, y[held], p[held]).threshold
    assert table.loc[1, "micro_f1"] == pytest.approx(f1_score(y[test][:, mask], p[test][:, mask] > t_glob,
                                                              average="micro"))
    assert table.loc[4, "micro_f1"] == pytest.approx(table.loc[1, "micro_f1"])  # m -> inf is global
    assert np.isnan(table.loc[0, "m"]) and table.loc[3, "m"] == 2
    # with the floor: each per-node row is fit_decision_rule's rule at that m (the table shares the scans)
    freq = y[held].sum(0)
    floored = shrinkage_tradeoff(h, y[held], p[held], y[test], p[test], ms=(0, 2), train_frequency=freq, n_train=60)
    for row, m in zip((2, 3), (0, 2)):
        rule = fit_decision_rule("per-node", h, y[held], p[held], shrinkage=m, prevalence=freq / 60)
        pred = rule.predict(p[test])
        assert floored.loc[row, "micro_f1"] == pytest.approx(f1_score(y[test][:, mask], pred[:, mask], average="micro"))
        assert floored.loc[row, "macro_f1"] == pytest.approx(
            f1_score(y[test][:, mask], pred[:, mask], average="macro", zero_division=0))
    with pytest.raises(ValueError, match="shrinkage"):
        shrinkage_tradeoff(h, y[held], p[held], y[test], p[test], ms=(-1,))


# ------------------------------------------------------------------ runs and the command line
@pytest.fixture(scope="module")
def held_out_run(tmp_path_factory):
    """A small synthetic run trained with --fit-on train and per-node (m = 1) as its default rule."""
    from hmlc_core.cli import main

    out = tmp_path_factory.mktemp("decision") / "run"
    assert main(["train", "--dataset", "synthetic", "--epochs", "3", "--heads", "2", "--weighting", "none",
                 "--focal", "none", "--fit-on", "train", "--decision", "per-node", "--shrinkage", "1",
                 "--out", str(out), "--quiet"]) == 0
    return out


def test_a_run_keeps_its_held_out_predictions_and_default_rule(held_out_run):
    from hmlc_core.runs import load_run
    from hmlc_core.synthetic import make_synthetic

    run = load_run(held_out_run)
    assert (run.config.decision, run.config.decision_shrinkage) == ("per-node", 1.0)
    y_valid, p_valid = run.held_out()
    assert y_valid.dtype == np.uint8 and p_valid.dtype == np.float32
    np.testing.assert_array_equal(y_valid, make_synthetic().valid.Y)  # the valid split, not the test split
    assert run.hierarchy.coherence_violations(p_valid) == 0
    stored = DecisionRule.from_dict(json.loads((held_out_run / "decision.json").read_text()), run.hierarchy)
    prevalence = make_synthetic().train.Y.mean(axis=0)  # trained on train only: the floor's prevalence
    np.testing.assert_allclose(run.train_prevalence(), prevalence)
    refit = fit_decision_rule("per-node", run.hierarchy, y_valid, p_valid, shrinkage=1, prevalence=prevalence)
    assert stored == refit == run.decision_rule()
    assert run.decision_rule("per-node", shrinkage=1) is run.decision_rule()  # cached
    assert run.summary["decision"] == "per-node (m = 1)"
    preds = run.predictions()
    closed = closure_reference(run.hierarchy, preds["mean_probs"] > refit.thresholds)
    mask = run.hierarchy.eval_mask
    assert run.summary["macro_f1"] == pytest.approx(f1_score(preds["y_true"][:, mask], closed[:, mask],
                                                             average="macro", zero_division=0))


def test_evaluate_json_under_each_rule(held_out_run, capsys):
    from hmlc_core.cli import main
    from hmlc_core.runs import load_run

    run = load_run(held_out_run)
    preds = run.predictions()
    y, p, mask = preds["y_true"], preds["mean_probs"], run.hierarchy.eval_mask
    for args, rule in ((["--decision", "fixed", "--threshold", "0.3"], run.decision_rule("fixed", 0.3)),
                       (["--decision", "global"], run.decision_rule("global")),
                       (["--decision", "per-node", "--shrinkage", "0"], run.decision_rule("per-node", shrinkage=0)),
                       ([], run.decision_rule())):
        capsys.readouterr()
        assert main(["evaluate", str(held_out_run), "--json", *args]) == 0
        result = json.loads(capsys.readouterr().out)
        for key in ("auprc_micro", "macro_precision", "macro_recall", "macro_f1", "n_eval_nodes", "recall_by_depth",
                    "decision", "micro_f1", "rare_node_recall", "macro_auprc", "fmax", "coherence_violations"):
            assert key in result, key
        assert result["decision"] == rule.label()
        pred = run.hierarchy.propagate(p > rule.thresholds)  # the closure (Hierarchy.propagate: tested alone)
        assert result["micro_f1"] == pytest.approx(f1_score(y[:, mask], pred[:, mask], average="micro"))
        assert result["macro_f1"] == pytest.approx(f1_score(y[:, mask], pred[:, mask], average="macro",
                                                            zero_division=0))
        assert result["coherence_violations"] == 0
    assert main(["evaluate", str(held_out_run), "--decision", "global"]) == 0
    assert "decision          global" in capsys.readouterr().out


def test_evaluate_reports_smin_with_information_content_from_the_train_split(held_out_run, capsys):
    """Smin needs each node's information content, which only the training labels give: the run saves it."""
    from hmlc_core.cli import main
    from hmlc_core.runs import load_run
    from hmlc_core.synthetic import make_synthetic
    from hmlc_core.tail_metrics import smin

    run = load_run(held_out_run)
    train = make_synthetic().train.Y.astype(np.float64)
    h = run.hierarchy
    ic = np.zeros(h.n_nodes)
    for node in h.nodes:  # a tree: -log2 n(v) / n(parent), 0 for unseen nodes (CAFA's convention)
        parents = list(h.graph.predecessors(node))
        if parents:
            n_v, n_parent = train[:, h.index[node]].sum(), train[:, h.index[parents[0]]].sum()
            ic[h.index[node]] = -np.log2(n_v / n_parent) if n_v > 0 else 0.0
    np.testing.assert_allclose(run.node_metrics["information_content"].to_numpy(), ic, atol=1e-12)
    preds = run.predictions()
    capsys.readouterr()
    assert main(["evaluate", str(held_out_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["smin"] == pytest.approx(smin(preds["y_true"], preds["mean_probs"], ic, h.eval_mask)[0])


def test_tuned_rules_refuse_a_run_trained_on_train_and_valid(tmp_path, capsys):
    from hmlc_core.cli import main
    from hmlc_core.runs import RunError, load_run

    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    run = load_run(out)
    assert run.held_out() is None and run.decision_rule().label() == "fixed 0.5"
    with pytest.raises(RunError, match="--fit-on train"):
        run.decision_rule("per-node")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--decision", "global"]) == 2
    assert "has no held-out predictions" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--decision", "global",
                 "--out", str(tmp_path / "other"), "--quiet"]) == 2
    assert "fit_on='train'" in capsys.readouterr().err
    # A run saved before decision rules existed: no decision.json, no decision fields in config.json.
    (out / "decision.json").unlink()
    doc = json.loads((out / "config.json").read_text())
    for name in ("decision", "decision_threshold", "decision_shrinkage"):
        del doc["train"][name]
    (out / "config.json").write_text(json.dumps(doc))
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "fixed 0.5"
