"""LightDXML's cycle of phases around the project's network and MCLoss: training and sparse prediction.

Mishra et al., *Light-weight Deep Extreme Multilabel Classification*, IJCNN 2023 (arXiv 2304.11045), cycle
through (1) proxy training of label embeddings, (2) shortlisting labels for negative sampling with those
embeddings and (3) training the final classifier on the positives and the shortlisted negatives. Here:

- proxy (once, ``proxy_epochs``): the network is trained on a surrogate task, MCLoss over the shallow nodes
  (the first levels, at most :func:`proxy_nodes` of them; scored for every sample together with its
  positives), which cluster their subtrees the way DeepXML's surrogate label clusters do; it gives the trunk
  a representation worth embedding labels in;
- every ``cycle`` epochs: (1) label embeddings from the current trunk
  (:func:`~hmlc_core.shortlists.ann.label_embeddings`), (2) a new ANN index and shortlist of ``k`` hard
  negatives per training sample (:func:`~hmlc_core.shortlists.ann.shortlist_negatives`), then (3) ``cycle``
  epochs of MCLoss restricted to positives and shortlisted negatives (:mod:`hmlc_core.shortlists.scored`),
  the trunk with Adam and the classifier rows with SparseAdam (sparse gradients);
- last (``full_epochs``, none by default): epochs of the full MCLoss over every node, the whole network with
  a fresh dense Adam, and the index rebuilt from the final representation. Not a LightDXML phase: restricted
  training ranks a node's samples well but leaves the scores of different nodes on unequal scales (the
  negatives never scored keep the probability of their initialisation); a few full epochs re-align them,
  which micro AUPRC, a ranking of all (sample, node) pairs together, needs (measured in bench/README.md,
  *cellcycle_GO*). Each costs one epoch of full training.

Prediction (:func:`predict_shortlist`) scores each sample's ``k`` nearest label embeddings and their
ancestors, coherent through the max over scored descendants; LightDXML's blend of classifier and ANN
similarity scores is not used (the classifier's probability alone, as C-HMCNN predicts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from hmlc_core.data import HMCDataset
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import mc_loss
from hmlc_core.model import MCM
from hmlc_core.shortlists.ann import LabelIndex, label_embeddings, shortlist_negatives
from hmlc_core.shortlists.network import ShortlistNetwork
from hmlc_core.shortlists.optim import CatchUpAdam
from hmlc_core.shortlists.scored import AncestorLists, constrained_scored, scored_mc_loss, scored_set

__all__ = ["ROW_OPTIMIZERS", "SparseScores", "ShortlistResult", "proxy_nodes", "embed", "build_index",
           "train_shortlist", "predict_shortlist"]

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

ROW_OPTIMIZERS = ("sparse-adam", "catch-up-adam")
"""Optimisers of the classifier rows (``train_shortlist(row_optimizer=...)``)."""


@dataclass
class SparseScores:
    """Per-sample scored nodes and their coherent probabilities.

    Attributes
    ----------
    indices : numpy.ndarray of int64, shape (N, M)
        Scored columns of each sample, ascending, ``-1`` padding.
    scores : numpy.ndarray of float32, shape (N, M)
        Mean member probability after the max over scored descendants, 0 at padding.
    n_nodes : int
    """

    indices: np.ndarray
    scores: np.ndarray
    n_nodes: int

    def dense(self, max_cells: int = 50_000_000) -> np.ndarray:
        """The (N, C) float32 score matrix, 0 for unscored nodes (coherent: the scored set is ancestor-closed).

        Raises
        ------
        ValueError
            If ``N x C`` exceeds ``max_cells`` (keep it sparse for large hierarchies).
        """
        n = self.indices.shape[0]
        if n * self.n_nodes > max_cells:
            raise ValueError(f"{n} x {self.n_nodes} scores exceed {max_cells} cells; use the sparse form")
        out = np.zeros((n, self.n_nodes), dtype=np.float32)
        rows, cols = np.nonzero(self.indices >= 0)
        out[rows, self.indices[rows, cols]] = self.scores[rows, cols]
        return out


@dataclass
class ShortlistResult:
    """What :func:`train_shortlist` returns.

    Attributes
    ----------
    model : ShortlistNetwork
        In eval mode; :meth:`ShortlistNetwork.to_ensemble` gives the dense ensemble.
    index : LabelIndex
        The last cycle's ANN index (for :func:`predict_shortlist`).
    train_frequency : numpy.ndarray of int64, shape (C,)
    history : list of dict
        Per epoch: ``epoch``, ``phase`` ("proxy", "shortlist" or "full"), ``loss``, ``seconds`` (training steps),
        ``shortlist_seconds`` (embedding, index and shortlist, 0 when not rebuilt), ``scored_per_sample``.
    train_seconds : float
    """

    model: ShortlistNetwork
    index: LabelIndex
    train_frequency: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def proxy_nodes(hierarchy: Hierarchy, limit: int) -> np.ndarray:
    """The surrogate task's nodes: the evaluated nodes of the shallowest levels, at most ``limit`` (at least level 1).

    Returns
    -------
    numpy.ndarray of int64
        Columns, ascending.
    """
    depths = np.unique(hierarchy.depth[hierarchy.eval_mask])
    keep = depths[:1]
    for d in depths[1:]:
        if int((hierarchy.eval_mask & (hierarchy.depth <= d)).sum()) > limit:
            break
        keep = np.append(keep, d)
    return np.flatnonzero(hierarchy.eval_mask & (hierarchy.depth <= keep.max())).astype(np.int64)


@torch.no_grad()
def embed(model: ShortlistNetwork, x: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Eval-mode representations of all rows, members concatenated: (N, H x h) float32."""
    was = model.training
    model.eval()
    parts = [model.representation(x[i:i + batch_size]).permute(1, 0, 2).reshape(-1, model.n_heads * model.hidden)
             for i in range(0, x.shape[0], batch_size)]
    model.train(was)
    return torch.cat(parts).numpy()


def build_index(rep: np.ndarray, labels: sp.csr_matrix, eval_mask: np.ndarray, ann: str = "auto",
                threads: int = 1) -> LabelIndex:
    """Phases 1-2: label embeddings from ``rep`` and an index over the evaluated nodes that have positives."""
    emb = label_embeddings(rep, labels)
    return LabelIndex(emb, eval_mask & (np.abs(emb).sum(axis=1) > 0), ann, threads)


def _pass(model: ShortlistNetwork, optimisers: list[torch.optim.Optimizer], n: int, batch_size: int,
          gen: torch.Generator, step_loss: Callable[[np.ndarray], tuple[torch.Tensor, int]],
          should_stop: Callable[[], bool] | None = None) -> tuple[float, float] | None:
    """One pass over ``n`` rows in random order; returns (mean loss, mean scored entries per sample).

    ``step_loss(idx)`` gives a batch's loss and its scored entries. ``should_stop`` is polled after every
    step; None is returned when it ends the pass.
    """
    model.train()
    order = torch.randperm(n, generator=gen).numpy()
    total, scored_total = 0.0, 0
    for first in range(0, n, batch_size):
        idx = order[first:first + batch_size]
        loss, scored = step_loss(idx)
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimisers:
            opt.step()
        total += float(loss.detach()) * idx.size
        scored_total += scored
        if should_stop is not None and should_stop():
            return None
    return total / n, scored_total / n


def _epoch(model: ShortlistNetwork, optimisers: list[torch.optim.Optimizer], x: torch.Tensor,
           y: sp.csr_matrix, negatives: Callable[[np.ndarray], np.ndarray], ancestors: AncestorLists,
           batch_size: int, gen: torch.Generator, reduction: str, uniform: int = 0,
           should_stop: Callable[[], bool] | None = None) -> tuple[float, float] | None:
    """One pass of MCLoss restricted to positives and ``negatives(idx)`` (:func:`_pass`).

    ``uniform`` negatives per sample are drawn from the evaluated nodes with ``gen`` at every step.
    """
    pool = np.flatnonzero(ancestors.eval_mask)

    def step_loss(idx: np.ndarray) -> tuple[torch.Tensor, int]:
        drawn = pool[torch.randint(pool.size, (idx.size, uniform), generator=gen).numpy()] if uniform else None
        scored = scored_set(ancestors, y[idx], negatives(idx), drawn)
        rep = model.representation(x[torch.from_numpy(idx)])
        probs = torch.sigmoid(model.entry_logits(rep, scored.sample, scored.node))
        return scored_mc_loss(probs, scored, reduction), len(scored)

    return _pass(model, optimisers, x.shape[0], batch_size, gen, step_loss, should_stop)


def _full_epoch(model: ShortlistNetwork, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: sp.csr_matrix,
                mcm: MCM, eval_mask: torch.Tensor, batch_size: int, gen: torch.Generator, reduction: str,
                should_stop: Callable[[], bool] | None = None) -> tuple[float, float] | None:
    """One pass of the full MCLoss on every node (:func:`_pass`)."""

    def step_loss(idx: np.ndarray) -> tuple[torch.Tensor, int]:
        targets = torch.as_tensor(y[idx].toarray(), dtype=torch.float32)
        loss = mc_loss(torch.sigmoid(model.logits(x[torch.from_numpy(idx)])), targets, mcm, eval_mask,
                       reduction=reduction)
        return loss, idx.size * model.n_nodes

    return _pass(model, [optimiser], x.shape[0], batch_size, gen, step_loss, should_stop)


def train_shortlist(
    dataset: HMCDataset,
    k: int = 100,
    hidden: int = 500,
    epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    cycle: int = 5,
    seed: int = 0,
    *,
    heads: int = 1,
    n_layers: int = 3,
    dropout: float = 0.7,
    weight_decay: float = 1e-5,
    proxy_epochs: int = 1,
    proxy_limit: int | None = None,
    uniform: int = 0,
    full_epochs: int = 0,
    row_optimizer: str = "sparse-adam",
    ann: str = "auto",
    ann_threads: int = 1,
    fit_on: str = "train+valid",
    reduction: str = "mean",
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    check: Callable[[ShortlistNetwork, dict[str, Any]], None] | None = None,
) -> ShortlistResult:
    """Train a C-HMCNN(h) network with LightDXML's cycle of label embeddings, ANN shortlists and restricted MCLoss.

    Parameters
    ----------
    dataset : HMCDataset
    k : int, default 100
        Shortlisted negatives per sample (and nodes searched per sample at prediction).
    hidden, n_layers, dropout, heads : network (:class:`ShortlistNetwork`).
    epochs : int
        Epochs of the shortlist phase (after the proxy phase, before the full one).
    batch_size : int
    lr : float
        Adam (trunk) and SparseAdam (classifier rows) learning rate.
    cycle : int, default 5
        Epochs between rebuilds of the label embeddings, index and shortlists (LightDXML's released
        configurations rebuild every 8 epochs).
    seed : int
        Seeds initialisation, batch order and dropout; with ``ann_threads=1`` (or an exact index) a seed fixes
        the result.
    weight_decay : float
        Adam's, on the trunk only (SparseAdam has none).
    proxy_epochs : int, default 1
        Epochs of the surrogate task before the first shortlist (0 skips it).
    proxy_limit : int, optional
        Most surrogate nodes (:func:`proxy_nodes`); ``max(2 k, 64)`` if None.
    uniform : int, default 0
        Negatives per sample drawn uniformly from the evaluated nodes at every step of the shortlist phase,
        beside the ``k`` hard ones, weighted so that the loss estimates MCLoss over all nodes
        (:mod:`hmlc_core.shortlists.scored`, *Uniform negatives and their weights*).
    full_epochs : int, default 0
        Epochs of the full MCLoss over every node (:func:`hmlc_core.losses.mc_loss`; Giunchiglia and
        Lukasiewicz, NeurIPS 2020, section 3) after the shortlist phase: the whole network with a fresh
        :class:`torch.optim.Adam` (``lr``, ``weight_decay`` on every parameter, as full training), then the
        index is rebuilt. Each costs one epoch of full training (memory too: ``batch_size x C`` scores).
    row_optimizer : {"sparse-adam", "catch-up-adam"}, default "sparse-adam"
        Optimiser of the classifier rows: :class:`torch.optim.SparseAdam` (lazy: a row moves only at the
        steps that score it) or :class:`~hmlc_core.shortlists.optim.CatchUpAdam` (moves every row as dense
        Adam would, as in full training).
    ann : {"auto", "hnsw", "exact"}
        See :class:`~hmlc_core.shortlists.ann.LabelIndex`.
    ann_threads : int
    fit_on : {"train+valid", "train"}
    reduction : {"mean", "sum"}
        See :func:`~hmlc_core.shortlists.scored.scored_mc_loss`.
    progress : callable, optional
        Called after every epoch with its history entry plus ``"epochs"`` (the total, proxy included).
    should_stop : callable, optional
        Polled after every step; True ends training there (the unfinished epoch is not in the history).
    check : callable, optional
        Called after every epoch with the model and the epoch's history entry, before the next shortlist
        is built; an exception it raises ends training (:func:`hmlc_core.train.train` raises
        :class:`~hmlc_core.train.TrainingDiverged` there).

    Returns
    -------
    ShortlistResult

    Raises
    ------
    ValueError
        On a non-positive size, ``cycle < 1``, an unknown ``fit_on``, ANN kind or ``row_optimizer``.
    """
    for name, value in (("k", k), ("hidden", hidden), ("batch_size", batch_size), ("cycle", cycle),
                        ("heads", heads)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if min(epochs, proxy_epochs, uniform, full_epochs) < 0:
        raise ValueError(f"epochs, proxy_epochs, uniform and full_epochs must be >= 0, got {epochs}, {proxy_epochs}, "
                         f"{uniform} and {full_epochs}")
    if fit_on not in ("train+valid", "train"):
        raise ValueError(f"fit_on must be 'train+valid' or 'train', got {fit_on!r}")
    if row_optimizer not in ROW_OPTIMIZERS:
        raise ValueError(f"row_optimizer must be one of {ROW_OPTIMIZERS}, got {row_optimizer!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    hierarchy = dataset.hierarchy
    ancestors = AncestorLists(hierarchy)
    splits = [dataset.train] + ([dataset.valid] if fit_on == "train+valid" and dataset.valid is not None else [])
    x = torch.as_tensor(np.concatenate([s.X for s in splits]), dtype=torch.float32)
    y = sp.csr_matrix(sp.vstack([sp.csr_matrix(s.Y) for s in splits]), dtype=np.uint8)
    train_freq = np.asarray(sp.csr_matrix(dataset.train.Y).sum(axis=0)).ravel().astype(np.int64)

    model = ShortlistNetwork(x.shape[1], hierarchy.n_nodes, hidden, heads, n_layers, dropout, generator=gen)
    optimisers: list[torch.optim.Optimizer] = [
        torch.optim.Adam(model.trunk.parameters(), lr=lr, weight_decay=weight_decay),
        (torch.optim.SparseAdam if row_optimizer == "sparse-adam" else CatchUpAdam)([model.classifier], lr=lr),
    ]
    log.info("shortlist training %s: %d samples, %d nodes, k=%d, %d uniform, cycle=%d, %d proxy + %d + %d full "
             "epochs", dataset.name, x.shape[0], hierarchy.n_nodes, k, uniform, cycle, proxy_epochs, epochs,
             full_epochs)
    history: list[dict[str, Any]] = []
    total_epochs = proxy_epochs + epochs + full_epochs
    start = time.perf_counter()

    def report(entry: dict[str, Any]) -> None:
        history.append(entry)
        if check is not None:
            check(model, entry)
        if progress is not None:
            progress({**entry, "epochs": total_epochs})

    surrogate = proxy_nodes(hierarchy, max(2 * k, 64) if proxy_limit is None else proxy_limit)
    stopped = False
    for epoch in range(1, proxy_epochs + 1):
        t0 = time.perf_counter()
        done = _epoch(model, optimisers, x, y, lambda idx: np.broadcast_to(surrogate, (idx.size, surrogate.size)),
                      ancestors, batch_size, gen, reduction, should_stop=should_stop)
        if done is None:
            stopped = True
            break
        report({"epoch": epoch, "phase": "proxy", "loss": done[0], "seconds": time.perf_counter() - t0,
                "shortlist_seconds": 0.0, "scored_per_sample": done[1]})
    index: LabelIndex | None = None
    shortlist = np.zeros((0, k), dtype=np.int64)
    for step in range(0 if stopped else epochs):
        t0 = time.perf_counter()
        rebuilt = step % cycle == 0
        if rebuilt:
            rep = embed(model, x)
            index = build_index(rep, y, hierarchy.eval_mask, ann, ann_threads)
            shortlist = shortlist_negatives(index, rep, y, k)
        t1 = time.perf_counter()
        done = _epoch(model, optimisers, x, y, lambda idx: shortlist[idx], ancestors, batch_size, gen, reduction,
                      uniform, should_stop)
        if done is None:
            stopped = True
            break
        report({"epoch": proxy_epochs + step + 1, "phase": "shortlist", "loss": done[0],
                "seconds": time.perf_counter() - t1, "shortlist_seconds": t1 - t0 if rebuilt else 0.0,
                "scored_per_sample": done[1]})
    if isinstance(optimisers[1], CatchUpAdam):
        optimisers[1].flush()
    if full_epochs and not stopped:
        dense = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        mcm, eval_mask = MCM(hierarchy), torch.as_tensor(hierarchy.eval_mask)
        for step in range(full_epochs):
            t0 = time.perf_counter()
            done = _full_epoch(model, dense, x, y, mcm, eval_mask, batch_size, gen, reduction, should_stop)
            if done is None:
                break
            report({"epoch": proxy_epochs + epochs + step + 1, "phase": "full", "loss": done[0],
                    "seconds": time.perf_counter() - t0, "shortlist_seconds": 0.0, "scored_per_sample": done[1]})
        index = None
    if index is None:
        index = build_index(embed(model, x), y, hierarchy.eval_mask, ann, ann_threads)
    model.eval()
    return ShortlistResult(model=model, index=index, train_frequency=train_freq, history=history,
                           train_seconds=time.perf_counter() - start)


@torch.no_grad()
def predict_shortlist(model: ShortlistNetwork, index: LabelIndex, hierarchy: Hierarchy, x: np.ndarray,
                      k: int, batch_size: int = 1024) -> SparseScores:
    """Score each sample's ``k`` nearest label embeddings and their ancestors, coherently.

    The scored set of a sample is the ancestor closure of its ``k`` nearest nodes (roots included), so it
    is at most ``k x (1 + a)`` nodes (``a`` the most ancestors of a node); each scored node gets the max of the
    raw member probabilities over its scored descendants (itself included), averaged over members. Within
    the scored set no parent is below a child, and as the set is ancestor-closed, :meth:`SparseScores.dense`
    (0 elsewhere) is coherent too.

    Parameters
    ----------
    model : ShortlistNetwork
    index : LabelIndex
        Built from the training data (:attr:`ShortlistResult.index`).
    hierarchy : Hierarchy
    x : numpy.ndarray of float32, shape (N, D)
    k : int, >= 1
    batch_size : int

    Returns
    -------
    SparseScores
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    model.eval()
    ancestors = AncestorLists(hierarchy)
    xt = torch.as_tensor(x, dtype=torch.float32)
    idx_parts, score_parts = [], []
    for first in range(0, xt.shape[0], batch_size):
        xb = xt[first:first + batch_size]
        b = xb.shape[0]
        rep = model.representation(xb)
        near, _ = index.search(rep.permute(1, 0, 2).reshape(b, -1).numpy(), k)
        sets = [ancestors.closure(row[row >= 0]) for row in near]
        width = max((s.size for s in sets), default=0)
        padded = np.full((b, width), -1, dtype=np.int64)
        for i, s in enumerate(sets):
            padded[i, :s.size] = s
        scored = scored_set(ancestors, sp.csr_matrix((b, hierarchy.n_nodes), dtype=np.uint8), padded)
        probs = torch.sigmoid(model.entry_logits(rep, scored.sample, scored.node))
        coherent = constrained_scored(probs, scored, use_labels=False).mean(0)
        # Entries are sorted by (sample, node): each row's entries are contiguous and ascending.
        counts = np.bincount(scored.sample.numpy(), minlength=b)
        col = np.arange(len(scored)) - np.repeat(np.cumsum(counts) - counts, counts)
        ind = np.full((b, width), -1, dtype=np.int64)
        val = np.zeros((b, width), dtype=np.float32)
        ind[scored.sample.numpy(), col] = scored.node.numpy()
        val[scored.sample.numpy(), col] = coherent.numpy()
        idx_parts.append(ind)
        score_parts.append(val)
    width = max((p.shape[1] for p in idx_parts), default=0)
    indices = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=-1) for p in idx_parts]
                             ) if idx_parts else np.zeros((0, 0), dtype=np.int64)
    scores = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in score_parts]
                            ) if score_parts else np.zeros((0, 0), dtype=np.float32)
    return SparseScores(indices=indices, scores=scores, n_nodes=hierarchy.n_nodes)
