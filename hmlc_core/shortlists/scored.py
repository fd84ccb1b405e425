"""MCLoss and the max-constraint restricted to a per-sample scored set of nodes.

C-HMCNN's MCLoss (Giunchiglia & Lukasiewicz, NeurIPS 2020; docs/method.md, *MCM and MCLoss*) scores every node
of every sample: ``o = (1 - y) MCM(h) + y MCM(y h)``. LightDXML's phase 3 (Mishra et al., IJCNN 2023, arXiv
2304.11045) trains on the positives and the shortlisted negatives only. Here sample ``b`` is scored on

``S_b = P_b ∪ N_b ∪ U_b``: its positives ``P_b`` (propagated labels, so every ancestor of a positive is in
``P_b``), its shortlisted negatives ``N_b`` and, optionally, negatives ``U_b`` drawn uniformly from the other
evaluated nodes;

and for ``j`` in ``S_b`` the constrained output is

- ``j`` positive: the max of ``h`` over the positive descendants of ``j`` (itself included). These all lie
  in ``P_b``, so this is MCLoss's value **exactly**;
- ``j`` negative: the max of ``h`` over the descendants of ``j`` **that are in** ``S_b`` (itself included)
  instead of all its descendants: the approximation. It is a lower bound of MCLoss's value (a max over a
  subset), equal to it when the highest-scoring descendant is scored. When ``S_b`` holds every evaluated
  node (a shortlist of all negatives, e.g. ``K >= C``) every constrained output is MCLoss's, bit for bit,
  and the loss is MCLoss's up to the summation order of the mean (``tests/test_shortlists.py`` checks
  values and gradients against :func:`hmlc_core.losses.mc_loss`).

Cost: with ``R = sum_b |S_b|`` scored entries and ``a(j)`` the number of ancestors of ``j`` (the depth, for a
tree), building the (entry, scored ancestor) pairs and the scatter-max over them is ``O(sum_{scored j} (1 +
a(j)) log R)``, i.e. ``O(B (|P| + K) a log(B (|P| + K)))`` per batch, against ``O(B P_all)`` for the full
MCM's pair strategy (``P_all = C + sum_j a(j)``). No cap on descendants is needed: each scored node pushes
its value up to its scored ancestors, so the work follows the ancestor counts, not the subtree sizes.

The arg-max is found without autograd and the output is one ``gather`` of the scored probabilities, so the
gradient reaches the winning descendant only, with MCM's tie rule (the node itself first, then the highest
column), as :class:`hmlc_core.model.MCM` does.

Uniform negatives and their weights
-----------------------------------
Hard negatives alone leave the nodes a sample's shortlist never holds without any loss for that sample, so
their scores are never pushed down for it: a model trained that way ranks (sample, node) pairs across nodes
badly (micro AUPRC 0.23 against 0.41 for full MCLoss on cellcycle_GO). Beside the hard negatives, ``M`` columns
``u_1..u_M`` can be drawn uniformly, with replacement, from the ``C_e`` evaluated nodes; a draw that is a
positive or a shortlisted negative is dropped (those are scored exactly) and each kept draw weighs ``C_e / M``
(repeated draws add up). This is importance sampling of the sum over the remaining negatives: ``E[sum_m
[u_m in R] (C_e / M) l(u_m)] = sum_{j in R} l(j)`` for the remaining set ``R``, so with a per-node loss (a flat
hierarchy) the weighted sum is an unbiased estimate of MCLoss's sum over all nodes. With a hierarchy, a sampled
negative's constrained output is the max over its scored descendants, the approximation above. The mean
reduction divides by the sum of the weights, an estimate of ``B x C_e``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import _positives_first

__all__ = ["AncestorLists", "ScoredSet", "scored_set", "constrained_scored", "scored_mc_loss"]


class AncestorLists:
    """Every node's reflexive ancestors as a CSR list (from :meth:`Hierarchy.ancestor_pairs`).

    Parameters
    ----------
    hierarchy : Hierarchy

    Attributes
    ----------
    indptr : numpy.ndarray of int64, shape (C + 1,)
    indices : numpy.ndarray of int64, shape (P,)
        ``indices[indptr[j]:indptr[j + 1]]`` are ``j`` and its ancestors.
    n_nodes : int
    eval_mask : numpy.ndarray of bool, shape (C,)
    n_evaluated : int
        ``C_e``, the number of evaluated nodes (uniform negatives are drawn from them).
    """

    def __init__(self, hierarchy: Hierarchy) -> None:
        nodes, ancestors = hierarchy.ancestor_pairs()
        self.n_nodes = hierarchy.n_nodes
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(nodes, minlength=self.n_nodes))]).astype(np.int64)
        self.indices = ancestors.astype(np.int64)
        self.eval_mask = hierarchy.eval_mask.copy()
        self.n_evaluated = int(self.eval_mask.sum())

    def closure(self, nodes: np.ndarray) -> np.ndarray:
        """The sorted union of ``nodes`` and all their ancestors."""
        nodes = np.asarray(nodes, dtype=np.int64)
        return np.unique(self.indices[_ranges(self.indptr[nodes], self.indptr[nodes + 1])])


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[i], stops[i])`` over i, vectorised."""
    lengths = stops - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


@dataclass
class ScoredSet:
    """The scored (sample, node) entries of a batch, sorted by sample then node, and their ancestor pairs.

    Attributes
    ----------
    sample : torch.Tensor of int64, shape (R,)
        Row of the batch of each entry.
    node : torch.Tensor of int64, shape (R,)
        Column of each entry.
    label : torch.Tensor of float32, shape (R,)
        1 for a positive, 0 for a negative.
    weight : torch.Tensor of float32, shape (R,)
        The entry's weight in the loss: 1 for positives and shortlisted negatives, ``count x C_e / M`` for a
        uniformly drawn negative (see the module docstring).
    evaluated : torch.Tensor of bool, shape (R,)
        Whether the node enters the loss (not a skipped root).
    pair_source, pair_target : torch.Tensor of int64, shape (Q,)
        Entry ``pair_source[q]`` is ``pair_target[q]`` or one of its descendants, both scored for the same
        sample (self pairs included).
    n_samples : int
    """

    sample: torch.Tensor
    node: torch.Tensor
    label: torch.Tensor
    weight: torch.Tensor
    evaluated: torch.Tensor
    pair_source: torch.Tensor
    pair_target: torch.Tensor
    n_samples: int

    def __len__(self) -> int:
        return int(self.node.numel())

    def dense(self, values: torch.Tensor, n_nodes: int, fill: float = 0.0) -> torch.Tensor:
        """Scatter entry values ``(..., R)`` into a ``(..., B, C)`` tensor, ``fill`` elsewhere."""
        out = torch.full(values.shape[:-1] + (self.n_samples * n_nodes,), fill, dtype=values.dtype)
        out[..., self.sample * n_nodes + self.node] = values
        return out.reshape(values.shape[:-1] + (self.n_samples, n_nodes))


def scored_set(ancestors: AncestorLists, positives: sp.csr_matrix, negatives: np.ndarray | None,
               sampled: np.ndarray | None = None) -> ScoredSet:
    """Build a batch's scored set ``S_b = P_b ∪ N_b ∪ U_b`` and its (descendant, ancestor) pairs within ``S_b``.

    Parameters
    ----------
    ancestors : AncestorLists
    positives : scipy.sparse.csr_matrix of {0, 1}, shape (B, C)
        The batch's propagated labels (positives).
    negatives : numpy.ndarray of int64, shape (B, K), or None
        Shortlisted negative columns, ``-1`` padding; entries that are positives of their row are dropped,
        so a shortlist need not exclude them. ``None``: no negatives. For prediction pass every scored node
        as a "negative" with an empty ``positives``.
    sampled : numpy.ndarray of int64, shape (B, M), optional
        Columns drawn uniformly with replacement from the evaluated nodes (``U_b``); draws that are positives
        or shortlisted negatives of their row are dropped, the rest weigh ``count x C_e / M`` (module
        docstring).

    Returns
    -------
    ScoredSet

    Raises
    ------
    ValueError
        On a width other than C, a column out of range or a sampled column that is not evaluated.
    """
    c = ancestors.n_nodes
    pos = sp.csr_matrix(positives)
    if pos.shape[1] != c:
        raise ValueError(f"positives must have {c} columns, got {pos.shape[1]}")
    b = pos.shape[0]
    pos_keys = np.repeat(np.arange(b, dtype=np.int64), np.diff(pos.indptr)) * c + pos.indices.astype(np.int64)
    pos_keys = np.unique(pos_keys[pos.data != 0])
    neg_keys = np.zeros(0, dtype=np.int64)
    if negatives is not None:
        neg = np.asarray(negatives, dtype=np.int64)
        if neg.ndim != 2 or neg.shape[0] != b:
            raise ValueError(f"negatives must have shape ({b}, K), got {neg.shape}")
        if neg.size and neg.max() >= c:
            raise ValueError(f"a shortlisted column is out of range (>= {c})")
        rows = np.broadcast_to(np.arange(b)[:, None], neg.shape)
        keep = neg >= 0
        neg_keys = np.setdiff1d(rows[keep] * c + neg[keep], pos_keys)
    drawn_keys, drawn_weight = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if sampled is not None:
        drawn = np.asarray(sampled, dtype=np.int64)
        if drawn.ndim != 2 or drawn.shape[0] != b:
            raise ValueError(f"sampled must have shape ({b}, M), got {drawn.shape}")
        if drawn.size and (drawn.min() < 0 or drawn.max() >= c or not ancestors.eval_mask[drawn].all()):
            raise ValueError("sampled columns must be evaluated nodes")
        drawn_keys, counts = np.unique(np.arange(b, dtype=np.int64)[:, None] * c + drawn, return_counts=True)
        fresh = ~np.isin(drawn_keys, np.concatenate([pos_keys, neg_keys]))
        scale = ancestors.n_evaluated / max(drawn.shape[1], 1)
        drawn_keys, drawn_weight = drawn_keys[fresh], (counts[fresh] * scale).astype(np.float32)
    keys = np.concatenate([pos_keys, neg_keys, drawn_keys])
    label = np.concatenate([np.ones(pos_keys.size, np.float32), np.zeros(neg_keys.size + drawn_keys.size, np.float32)])
    weight = np.concatenate([np.ones(pos_keys.size + neg_keys.size, np.float32), drawn_weight])
    order = np.argsort(keys, kind="stable")
    keys, label, weight = keys[order], label[order], weight[order]
    sample, node = keys // c, keys % c
    # Pairs: every scored entry against each of its reflexive ancestors that is scored for the same sample.
    counts = ancestors.indptr[node + 1] - ancestors.indptr[node]
    source = np.repeat(np.arange(keys.size, dtype=np.int64), counts)
    anc_keys = sample[source] * c + ancestors.indices[_ranges(ancestors.indptr[node], ancestors.indptr[node + 1])]
    at = np.searchsorted(keys, anc_keys).clip(max=max(keys.size - 1, 0))
    found = keys[at] == anc_keys if keys.size else np.zeros(0, dtype=bool)
    return ScoredSet(
        sample=torch.from_numpy(sample), node=torch.from_numpy(node), label=torch.from_numpy(label),
        weight=torch.from_numpy(weight), evaluated=torch.from_numpy(ancestors.eval_mask[node]),
        pair_source=torch.from_numpy(source[found]), pair_target=torch.from_numpy(at[found]), n_samples=b)


def constrained_scored(probs: torch.Tensor, scored: ScoredSet, use_labels: bool = True) -> torch.Tensor:
    """MCLoss's constrained outputs on the scored entries (see the module docstring for the semantics).

    Parameters
    ----------
    probs : torch.Tensor, shape (H, R), values in [0, 1]
        Raw member probabilities of the scored entries.
    scored : ScoredSet
    use_labels : bool, default True
        True: MCLoss's ``o`` (a positive entry maxes over its positive scored descendants, a negative one
        over all its scored descendants). False: the plain max over scored descendants, the coherent
        prediction within the scored set.

    Returns
    -------
    torch.Tensor, shape (H, R)
        Differentiable (a gather of ``probs`` at each entry's arg-max descendant).
    """
    h, r = probs.shape
    labels = scored.label if use_labels else torch.zeros_like(scored.label)
    keys = _positives_first(probs.detach(), labels.expand(h, -1))
    src, tgt = scored.pair_source, scored.pair_target
    with torch.no_grad():
        values = keys[:, src]
        index = tgt.expand(h, -1)
        best = torch.full_like(keys, torch.iinfo(keys.dtype).min).scatter_reduce(1, index, values, "amax")
        hit = values == best[:, tgt]
        # Entries are sorted by (sample, node), so a larger entry index is a larger column within the sample.
        rank = torch.where(src == tgt, r, src)
        choice = torch.zeros((h, r), dtype=torch.long).scatter_reduce(1, index, hit * (rank + 1), "amax") - 1
        arg = torch.where(choice == r, torch.arange(r).expand(h, -1), choice)
    return probs.gather(1, arg)


def scored_mc_loss(probs: torch.Tensor, scored: ScoredSet, reduction: str = "mean") -> torch.Tensor:
    """Weighted binary cross-entropy of the scored MCLoss outputs against the labels, over evaluated entries.

    Parameters
    ----------
    probs : torch.Tensor, shape (H, R), values in [0, 1]
    scored : ScoredSet
    reduction : {"mean", "sum"}
        "sum": ``sum_{members, evaluated entries} weight x BCE``. "mean" divides it by ``H x`` the sum of the
        evaluated entries' weights (their number without sampled negatives), so with every node scored it is
        C-HMCNN's mean over members x samples x evaluated nodes (:func:`hmlc_core.losses.mc_loss`).

    Returns
    -------
    torch.Tensor, a scalar

    Raises
    ------
    ValueError
        On an unknown reduction or a shape mismatch.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if probs.dim() != 2 or probs.shape[1] != len(scored):
        raise ValueError(f"probs must have shape (H, {len(scored)}), got {tuple(probs.shape)}")
    out = constrained_scored(probs, scored)[:, scored.evaluated]
    weight = scored.weight[scored.evaluated]
    loss = F.binary_cross_entropy(out, scored.label[scored.evaluated].expand_as(out), weight.expand_as(out),
                                  reduction="sum")
    if reduction == "sum":
        return loss
    return loss / max(float(weight.sum()) * out.shape[0], 1.0)
