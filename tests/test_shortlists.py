"""Shortlist training (hmlc_core.shortlists): ANN shortlists, MCLoss on a scored set, training and prediction.

References are independent of the code under test: numpy brute-force nearest neighbours, the project's full
MCLoss (:func:`hmlc_core.losses.mc_loss`) and the dense ensemble, and a per-sample Python loop over
``Hierarchy.descendants`` for the restricted constraint.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import mc_loss
from hmlc_core.model import MCM
from hmlc_core.shortlists import (AncestorLists, LabelIndex, ShortlistNetwork, build_index, constrained_scored, embed,
                                  label_embeddings, predict_shortlist, scored_mc_loss, scored_set, shortlist_negatives,
                                  train_shortlist)
from hmlc_core.synthetic import make_synthetic
from hmlc_core.tail_metrics import precision_at_k


@pytest.fixture(scope="module")
def small():
    return make_synthetic(n_train=120, n_valid=20, n_test=80, n_features=12, depth=3, branching=3, seed=1)


def _net(dataset, heads: int = 2, seed: int = 0) -> ShortlistNetwork:
    net = ShortlistNetwork(dataset.n_features, dataset.hierarchy.n_nodes, 16, heads, 3, 0.5,
                           generator=torch.Generator().manual_seed(seed))
    return net.eval()


def _all_negatives(y: np.ndarray) -> np.ndarray:
    rows = [np.flatnonzero(r == 0) for r in y]
    out = np.full((len(rows), max(len(r) for r in rows)), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :r.size] = r
    return out


def test_label_embeddings_are_normalised_means_of_positives() -> None:
    rep = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])
    y = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0]])
    emb = label_embeddings(rep, y)
    mean0 = np.array([0.6, 0.8]) + np.array([0.0, 1.0])
    np.testing.assert_allclose(emb[0], mean0 / np.linalg.norm(mean0), rtol=1e-6)
    np.testing.assert_allclose(emb[1], np.array([1.0, 1.0]) / np.sqrt(2), rtol=1e-6)
    np.testing.assert_allclose(emb[2], [0.6, 0.8], rtol=1e-6)


def test_shortlist_has_k_nearest_non_positive_nodes(small) -> None:
    rng = np.random.default_rng(0)
    rep = rng.normal(size=(small.train.X.shape[0], 8)).astype(np.float32)
    y = sp.csr_matrix(small.train.Y)
    emb = label_embeddings(rep, y)
    candidates = small.hierarchy.eval_mask & (np.abs(emb).sum(1) > 0)
    index = LabelIndex(emb, candidates, kind="exact")
    k = 5
    short = shortlist_negatives(index, rep, y, k, batch_size=50)
    assert short.shape == (rep.shape[0], k)
    assert (short >= 0).all()
    # Brute-force reference: cosine similarity to every candidate that is not a positive of the row.
    unit = rep / np.linalg.norm(rep, axis=1, keepdims=True)
    sim = unit @ emb.T
    for i in range(rep.shape[0]):
        assert not small.train.Y[i, short[i]].any()
        allowed = candidates & (small.train.Y[i] == 0)
        best = np.flatnonzero(allowed)[np.argsort(-sim[i, allowed], kind="stable")[:k]]
        np.testing.assert_allclose(np.sort(sim[i, short[i]]), np.sort(sim[i, best]), rtol=1e-5)


def test_hnsw_search_recalls_exact_neighbours() -> None:
    rng = np.random.default_rng(3)
    labels = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(200, 16)).astype(np.float32)
    index = LabelIndex(labels, np.ones(3000, dtype=bool), kind="hnsw")
    assert index.kind == "hnsw"
    found, _ = index.search(queries, 10)
    unit = labels / np.linalg.norm(labels, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ unit.T), axis=1)[:, :10]
    recall = np.mean([np.intersect1d(f, e).size / 10 for f, e in zip(found, exact)])
    assert recall >= 0.95


def _dag_case() -> tuple[Hierarchy, np.ndarray, torch.Tensor]:
    """A DAG (nodes with two parents, a second root skipped in evaluation), coherent labels, random probabilities."""
    edges = [("root", "a"), ("root", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("a", "e"), ("e", "d"),
             ("b", "f"), ("f", "g"), ("c", "g"), ("GO0008150", "h"), ("h", "g")]
    h = Hierarchy(edges, skip_eval={"root", "GO0008150"})
    rng = np.random.default_rng(7)
    y = h.propagate(rng.random((12, h.n_nodes)) < 0.2)
    probs = torch.as_tensor(rng.random((3, 12, h.n_nodes)), dtype=torch.float32)
    return h, y, probs


def test_every_node_scored_gives_full_mcloss_on_a_dag() -> None:
    h, y, probs = _dag_case()
    probs.requires_grad_(True)
    reference = mc_loss(probs, torch.as_tensor(y, dtype=torch.float32), MCM(h), torch.as_tensor(h.eval_mask))
    reference.backward()
    ref_grad = probs.grad.clone()
    probs.grad = None
    scored = scored_set(AncestorLists(h), sp.csr_matrix(y), _all_negatives(y))
    loss = scored_mc_loss(probs[:, scored.sample, scored.node], scored)
    loss.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=0)
    torch.testing.assert_close(probs.grad, ref_grad, rtol=1e-5, atol=1e-9)


def test_every_node_scored_gives_full_mcloss_values_and_gradients(small) -> None:
    h = small.hierarchy
    net = _net(small)
    x = torch.as_tensor(small.train.X[:16])
    y = small.train.Y[:16]
    probs = torch.sigmoid(net.to_ensemble().logits(x)).detach().requires_grad_(True)
    reference = mc_loss(probs, torch.as_tensor(y, dtype=torch.float32), MCM(h),
                        torch.as_tensor(h.eval_mask))
    reference.backward()
    ref_grad = probs.grad.clone()
    probs.grad = None
    scored = scored_set(AncestorLists(h), sp.csr_matrix(y), _all_negatives(y))
    assert len(scored) == y.size
    loss = scored_mc_loss(probs[:, scored.sample, scored.node], scored)
    loss.backward()
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=0)
    torch.testing.assert_close(probs.grad, ref_grad, rtol=1e-5, atol=1e-9)


def test_partial_scored_set_takes_the_max_over_scored_descendants(small) -> None:
    rng = np.random.default_rng(5)
    y = small.train.Y[:10]
    shortlist = np.array([rng.choice(np.flatnonzero(r == 0), 6, replace=False) for r in y])
    _check_partial(small.hierarchy, y, shortlist, rng)


def test_partial_scored_set_on_a_dag() -> None:
    h, y, _ = _dag_case()
    rng = np.random.default_rng(6)
    shortlist = np.full((y.shape[0], 3), -1, dtype=np.int64)
    for i, r in enumerate(y):
        negative = np.flatnonzero(r == 0)
        shortlist[i, :min(3, negative.size)] = rng.choice(negative, min(3, negative.size), replace=False)
    _check_partial(h, y, shortlist, rng)


def test_sampled_negatives_are_weighted_and_scored_columns_are_not_drawn_twice(small) -> None:
    h = small.hierarchy
    y = small.train.Y[:3]
    evaluated = np.flatnonzero(h.eval_mask)
    negative = [np.flatnonzero((r == 0) & h.eval_mask) for r in y]
    shortlist = np.array([[n[0], n[1]] for n in negative])
    # Row 0 draws a positive, a shortlisted negative and one other node twice; rows 1 and 2 draw others once.
    positive0 = np.flatnonzero(y[0] & h.eval_mask)[0]
    sampled = np.array([[positive0, shortlist[0, 0], negative[0][5], negative[0][5]],
                        [negative[1][2], negative[1][3], negative[1][4], negative[1][5]],
                        [negative[2][2], negative[2][2], negative[2][2], negative[2][6]]])
    scored = scored_set(AncestorLists(h), sp.csr_matrix(y), shortlist, sampled)
    weight = {(int(b), int(j)): float(w) for b, j, w in zip(scored.sample, scored.node, scored.weight)}
    label = {(int(b), int(j)): float(v) for b, j, v in zip(scored.sample, scored.node, scored.label)}
    unit = evaluated.size / sampled.shape[1]
    expected = {(0, negative[0][5]): 2 * unit, (2, negative[2][2]): 3 * unit, (2, negative[2][6]): unit}
    expected.update({(1, j): unit for j in negative[1][2:6]})
    assert len(scored) == y.sum() + shortlist.size + len(expected)
    for key, value in expected.items():
        assert weight[key] == pytest.approx(value) and label[key] == 0
    for b in range(3):
        assert all(weight[(b, j)] == 1 and label[(b, j)] == 1 for j in np.flatnonzero(y[b]))
        assert all(weight[(b, j)] == 1 and label[(b, j)] == 0 for j in shortlist[b])
    with pytest.raises(ValueError, match="evaluated"):
        scored_set(AncestorLists(h), sp.csr_matrix(y), shortlist, np.zeros((3, 2), dtype=np.int64))


def test_sampled_negatives_estimate_the_full_loss_sum_without_bias() -> None:
    """On a flat hierarchy MCLoss is per-node BCE; the weighted sum over draws averages to the full sum."""
    leaves = [f"n{i}" for i in range(40)]
    h = Hierarchy([("root", leaf) for leaf in leaves], skip_eval={"root"})
    rng = np.random.default_rng(11)
    y = h.propagate(rng.random((6, h.n_nodes)) < 0.1)
    probs = torch.as_tensor(rng.uniform(0.02, 0.98, (1, 6, h.n_nodes)), dtype=torch.float32)
    p, t = probs[0].double().numpy(), y.astype(float)
    full = -(t * np.log(p) + (1 - t) * np.log(1 - p))[:, h.eval_mask].sum()
    evaluated = np.flatnonzero(h.eval_mask)
    ancestors = AncestorLists(h)
    estimates = []
    for _ in range(3000):
        scored = scored_set(ancestors, sp.csr_matrix(y), None, evaluated[rng.integers(evaluated.size, size=(6, 5))])
        estimates.append(float(scored_mc_loss(probs[:, scored.sample, scored.node], scored, "sum")))
    estimates = np.asarray(estimates)
    assert abs(estimates.mean() - full) < 4 * estimates.std() / np.sqrt(estimates.size)
    assert estimates.std() > 0


def _check_partial(h: Hierarchy, y: np.ndarray, shortlist: np.ndarray, rng: np.random.Generator) -> None:
    """Restricted MCLoss outputs and plain maxima against a per-entry loop over ``Hierarchy.descendants``."""
    scored = scored_set(AncestorLists(h), sp.csr_matrix(y), shortlist)
    assert len(scored) == y.sum() + (shortlist >= 0).sum()
    probs = torch.as_tensor(rng.random((2, len(scored))), dtype=torch.float32)
    out = constrained_scored(probs, scored).numpy()
    plain = constrained_scored(probs, scored, use_labels=False).numpy()
    entry = {(int(b), int(j)): r for r, (b, j) in enumerate(zip(scored.sample, scored.node))}
    for (b, j), r in entry.items():
        node = h.nodes[j]
        members = [r] + [entry[(b, h.index[d])] for d in h.descendants(node) if (b, h.index[d]) in entry]
        if y[b, j]:
            members = [m for m in members if scored.label[m] == 1]
        np.testing.assert_array_equal(out[:, r], probs.numpy()[:, members].max(axis=1))
        every = [r] + [entry[(b, h.index[d])] for d in h.descendants(node) if (b, h.index[d]) in entry]
        np.testing.assert_array_equal(plain[:, r], probs.numpy()[:, every].max(axis=1))


def test_sparse_logits_equal_the_dense_ensemble(small) -> None:
    net = _net(small)
    x = torch.as_tensor(small.test.X[:5])
    dense = net.to_ensemble().logits(x)
    sample = torch.arange(5).repeat_interleave(small.hierarchy.n_nodes)
    node = torch.arange(small.hierarchy.n_nodes).repeat(5)
    sparse = net.entry_logits(net.representation(x), sample, node)
    torch.testing.assert_close(sparse, dense.reshape(2, -1), rtol=1e-5, atol=1e-6)
    # Any entry order and ragged samples: a random subset in random order.
    pick = torch.randperm(sample.numel(), generator=torch.Generator().manual_seed(1))[:37]
    subset = net.entry_logits(net.representation(x), sample[pick], node[pick])
    torch.testing.assert_close(subset, dense.reshape(2, -1)[:, pick], rtol=1e-5, atol=1e-6)


def test_a_step_updates_only_the_scored_nodes_classifier_rows(small) -> None:
    net = _net(small).train()
    y = small.train.Y[:6]
    shortlist = np.tile([5, 9, 11], (6, 1))
    scored = scored_set(AncestorLists(small.hierarchy), sp.csr_matrix(y), shortlist)
    # Entries in an order other than by sample, and samples of different sizes, exercise the grid layout.
    perm = torch.randperm(len(scored), generator=torch.Generator().manual_seed(0))
    before = net.classifier.detach().clone()
    opt = torch.optim.SparseAdam([net.classifier], lr=0.1)
    rep = net.representation(torch.as_tensor(small.train.X[:6]))
    logits = net.entry_logits(rep, scored.sample[perm], scored.node[perm])
    (logits * torch.linspace(-1, 1, logits.shape[1])).sum().backward()
    opt.step()
    changed = np.flatnonzero((net.classifier.detach() != before).any(dim=1).numpy())
    np.testing.assert_array_equal(changed, np.unique(scored.node.numpy()))


def test_predictions_are_coherent_and_ancestor_closed(small) -> None:
    h = small.hierarchy
    net = _net(small)
    rep = net.representation(torch.as_tensor(small.train.X)).permute(1, 0, 2).reshape(120, -1).detach().numpy()
    emb = label_embeddings(rep, small.train.Y)
    index = LabelIndex(emb, h.eval_mask & (np.abs(emb).sum(1) > 0), kind="exact")
    pred = predict_shortlist(net, index, h, small.test.X, k=4, batch_size=32)
    child, parent = h.edge_index()
    for row, scores in zip(pred.indices, pred.scores):
        keep = row >= 0
        nodes, values = row[keep], dict(zip(row[keep].tolist(), scores[keep].tolist()))
        assert nodes.size >= 4
        for c, p in zip(child, parent):
            if c in values:
                assert p in values  # the scored set holds every ancestor of a scored node
                assert values[p] >= values[c]
    dense = pred.dense()
    assert h.is_coherent(dense)
    assert (dense > 0).sum(axis=1).min() >= 4


@pytest.mark.parametrize("options", [{}, {"uniform": 4, "row_optimizer": "catch-up-adam"}])
def test_training_improves_precision_at_1(options: dict) -> None:
    data = make_synthetic(n_train=400, n_valid=50, n_test=200, n_features=16, depth=3, branching=4, seed=2,
                          noise=1.0)
    h = data.hierarchy
    untrained = train_shortlist(data, k=8, hidden=32, epochs=0, proxy_epochs=0, seed=0)
    trained = train_shortlist(data, k=8, hidden=32, epochs=12, batch_size=32, lr=3e-3, cycle=4, seed=0,
                              dropout=0.3, **options)
    p1 = {}
    for name, result in (("untrained", untrained), ("trained", trained)):
        scores = predict_shortlist(result.model, result.index, h, data.test.X, k=8).dense()
        p1[name] = precision_at_k(data.test.Y, scores, 1, h.eval_mask)
    assert p1["trained"] > p1["untrained"] + 0.2
    assert [e["phase"] for e in trained.history] == ["proxy"] + ["shortlist"] * 12
    assert trained.history[-1]["loss"] < trained.history[1]["loss"]


def test_progress_reports_every_epoch_and_a_seed_fixes_the_run(small) -> None:
    seen: list[dict] = []
    kwargs = dict(k=5, hidden=16, epochs=3, batch_size=32, cycle=2, ann="hnsw")
    first = train_shortlist(small, seed=4, progress=seen.append, **kwargs)
    second = train_shortlist(small, seed=4, **kwargs)
    other = train_shortlist(small, seed=5, **kwargs)
    assert [e["epoch"] for e in seen] == [1, 2, 3, 4] and all(e["epochs"] == 4 for e in seen)
    assert all(e["seconds"] > 0 for e in seen)
    assert [e["shortlist_seconds"] > 0 for e in seen] == [False, True, False, True]
    assert [e["loss"] for e in first.history] == [e["loss"] for e in second.history]
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)
    assert [e["loss"] for e in first.history] != [e["loss"] for e in other.history]


def test_bad_arguments_are_refused(small) -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        train_shortlist(small, k=0)
    with pytest.raises(ValueError, match="row_optimizer"):
        train_shortlist(small, row_optimizer="sgd")
    with pytest.raises(ValueError, match="ann kind"):
        LabelIndex(np.ones((3, 2)), np.ones(3, dtype=bool), kind="annoy")
    with pytest.raises(ValueError, match="n_layers >= 2"):
        ShortlistNetwork(4, 5, 8, n_layers=1)
    with pytest.raises(ValueError, match="no node can be shortlisted"):
        LabelIndex(np.zeros((3, 2)), np.zeros(3, dtype=bool))


def test_dense_logits_equal_the_ensemble_and_the_entry_logits(small) -> None:
    net = _net(small)
    x = torch.as_tensor(small.test.X[:7])
    dense = net.logits(x)
    assert dense.shape == (2, 7, small.hierarchy.n_nodes)
    torch.testing.assert_close(dense, net.to_ensemble().logits(x), rtol=1e-5, atol=1e-6)
    sample = torch.arange(7).repeat_interleave(small.hierarchy.n_nodes)
    node = torch.arange(small.hierarchy.n_nodes).repeat(7)
    torch.testing.assert_close(dense.reshape(2, -1), net.entry_logits(net.representation(x), sample, node),
                               rtol=1e-5, atol=1e-6)


def test_full_epochs_train_the_dense_network_with_mcloss_and_adam(small) -> None:
    """A full epoch is an epoch of the project's MCLoss on every node with a fresh torch Adam (whole data in one
    batch, no dropout: the step is independent of the batch order), and the index is rebuilt after it."""
    h = small.hierarchy
    kwargs = dict(k=5, hidden=16, epochs=2, batch_size=1000, lr=0.01, cycle=1, seed=3, heads=2, dropout=0.0,
                  weight_decay=1e-3, ann="exact", uniform=2)
    before = train_shortlist(small, **kwargs)
    after = train_shortlist(small, full_epochs=2, **kwargs)
    assert [e["phase"] for e in after.history] == ["proxy", "shortlist", "shortlist", "full", "full"]
    assert [e["epoch"] for e in after.history] == [1, 2, 3, 4, 5]
    assert after.history[3]["scored_per_sample"] == h.n_nodes
    for mine, theirs in zip(before.history, after.history[:3]):
        assert mine["loss"] == theirs["loss"]

    reference = before.model.to_ensemble()
    opt = torch.optim.Adam(reference.parameters(), lr=0.01, weight_decay=1e-3)
    x = torch.as_tensor(np.concatenate([small.train.X, small.valid.X]))
    y = torch.as_tensor(np.concatenate([small.train.Y, small.valid.Y]), dtype=torch.float32)
    mcm, mask = MCM(h), torch.as_tensor(h.eval_mask)
    losses = []
    for _ in range(2):
        reference.train()
        loss = mc_loss(torch.sigmoid(reference.logits(x)), y, mcm, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose([e["loss"] for e in after.history[3:]], losses, rtol=1e-5)
    trained = after.model.to_ensemble()
    for mine, theirs in zip(trained.parameters(), reference.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6)
    rebuilt = build_index(embed(after.model, x), sp.csr_matrix(y.numpy()), h.eval_mask, "exact")
    queries = embed(after.model, torch.as_tensor(small.test.X))
    np.testing.assert_array_equal(after.index.search(queries, 5)[0], rebuilt.search(queries, 5)[0])
    stale = build_index(embed(before.model, x), sp.csr_matrix(y.numpy()), h.eval_mask, "exact")
    assert not np.array_equal(stale.search(queries, 5)[0], rebuilt.search(queries, 5)[0])
