"""Dense reference formulation of the released training step (our own code, for benchmarks and tests).

This module re-states, in the straightforward dense way, what one training step
of the authors' tabular ensemble does (C-HMCNN, Giunchiglia & Lukasiewicz 2020;
Xu et al. 2026 focal/weighted loss), so that the project's sparse, batched
implementation can be checked against it (``tests/test_bench_reference.py``)
and timed against it (``bench/bench_train.py``). It is written from the
formulation in ``METHOD.md`` (sections A4, B1-B4, C1-C2, D5, E1-E2); no code was
copied from the reference repositories.

What is deliberately "dense" / "as released" here:

- **H separate networks** (:func:`build_member`): one ``nn.Sequential`` C-HMCNN
  network per ensemble member (Linear D->h, ReLU, Dropout, Linear h->h, ReLU,
  Dropout, Linear h->C, Sigmoid; METHOD.md B1, C1), evaluated in a Python loop
  over the members.
- **Dense MCM** (:func:`dense_mcm`): ``R`` is the (1, C, C) float64 matrix with
  ``R[j, i] = 1`` iff ``i`` is ``j`` or a descendant of ``j`` (METHOD.md A4), and
  ``MCM(x) = max_i R[j, i] * x[b, i]`` materialises the (B, C, C) float64 product
  (METHOD.md B3). Valid for non-negative inputs only (probabilities).
- **MCLoss** (:func:`dense_mc_loss`) on top of it, per member, in float64
  (METHOD.md B4): ``c = MCM(h)``, ``p = MCM(y * h)``, ``o = (1-y) c + y p``,
  element-wise BCE over the evaluated nodes.
- **Weights picked with the released indexing** (:func:`released_weights`): the
  (2, C) stack (row 0 positive weights, row 1 negative weights) is transposed,
  restricted to the evaluated nodes, broadcast to (B, C_eval, 2) and indexed
  with the 0/1 label, so ``y = 0`` gets the positive weight (METHOD.md D5).
- **Focal factor** ``f_min + u**k`` with ``u`` the ``mean`` (bBMA) uncertainty
  of the detached stacked member probabilities, shared by all members
  (METHOD.md E1, E2).
- **List-of-pairs loader** (:class:`PairLoader`): a Python list of
  ``(x_i, y_i)`` tensors, ``random.shuffle``-d every epoch, batches collated
  with ``torch.stack`` -- what a ``torch.utils.data.DataLoader`` over such a list
  does.
- **Adam** with torch's default (per-parameter, non-foreach) CPU update, and
  ``loss.item()`` every step (the reference logs the loss).

The node weights and the uncertainty are the small pieces taken from the
project (:func:`hmlc_core.losses.node_weights`,
:func:`hmlc_core.uncertainty.mean_uncertainty`): they are O(B x C) and not
what this reference is about.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import node_weights
from hmlc_core.presets import preset_for
from hmlc_core.uncertainty import mean_uncertainty

__all__ = [
    "dense_R",
    "dense_mcm",
    "dense_mc_loss",
    "released_weights",
    "build_member",
    "PairLoader",
    "DenseReference",
    "dense_peak_bytes",
    "members_from_ensemble",
]


# --------------------------------------------------------------------------- MCM / MCLoss
def dense_R(hierarchy: Hierarchy) -> torch.Tensor:
    """C-HMCNN's ``R``: shape (1, C, C), float64, ``R[0, j, i] = 1`` iff ``i`` is ``j`` or a descendant of ``j``.

    It is the transpose of :meth:`Hierarchy.ancestor_matrix` (METHOD.md A4),
    with a leading batch dimension.
    """
    return torch.from_numpy(hierarchy.ancestor_matrix().T.astype(np.float64)).unsqueeze(0)


def dense_mcm(x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Dense max-constraint module: ``out[b, j] = max_i R[j, i] * x[b, i]`` (METHOD.md B3).

    Parameters
    ----------
    x : torch.Tensor, shape (B, C), values >= 0
        Probabilities of one network (any float dtype; computed in float64).
    R : torch.Tensor, shape (1, C, C), float64
        From :func:`dense_R`.

    Returns
    -------
    torch.Tensor, shape (B, C), float64

    Notes
    -----
    Materialises the (B, C, C) float64 product ``R * x`` (about 545 MB for GO's
    4,126 nodes at B = 4); its backward builds two more tensors of that size.
    Multiplying non-descendants by 0 is only correct for non-negative inputs.
    """
    return (R * x.double().unsqueeze(1)).max(dim=2).values


def dense_mc_loss(h: torch.Tensor, y: torch.Tensor, R: torch.Tensor, eval_idx: torch.Tensor) -> torch.Tensor:
    """Element-wise MCLoss of one network, float64 (METHOD.md B4).

    Parameters
    ----------
    h : torch.Tensor, shape (B, C), values in (0, 1)
        Raw (unconstrained) sigmoid outputs of one member.
    y : torch.Tensor, shape (B, C), values in {0, 1}
        Coherent labels.
    R : torch.Tensor, shape (1, C, C), float64
    eval_idx : torch.Tensor of int64, shape (C_eval,)
        Indices of the evaluated nodes (C-HMCNN's ``to_eval``).

    Returns
    -------
    torch.Tensor, shape (B, C_eval), float64
        ``BCE(o[:, eval], y[:, eval])`` with ``o = (1-y) MCM(h) + y MCM(y h)``.
    """
    y = y.double()
    constrained = dense_mcm(h, R)
    constrained_pos = dense_mcm(y * h.double(), R)
    out = (1 - y) * constrained + y * constrained_pos
    return F.binary_cross_entropy(out[:, eval_idx], y[:, eval_idx], reduction="none")


def released_weights(y: torch.Tensor, w_stack: torch.Tensor, eval_idx: torch.Tensor) -> torch.Tensor:
    """Per-(sample, node) weights picked the way the released code does (METHOD.md D5).

    Parameters
    ----------
    y : torch.Tensor, shape (B, C), values in {0, 1}
    w_stack : torch.Tensor, shape (2, C)
        Row 0 positive weights, row 1 negative weights.
    eval_idx : torch.Tensor of int64, shape (C_eval,)

    Returns
    -------
    torch.Tensor, shape (B, C_eval)
        ``w_stack.T[eval]`` broadcast to (B, C_eval, 2) and indexed with the label:
        an entry with ``y = 0`` gets row 0 (the positive weight), ``y = 1`` row 1.
    """
    per_node = w_stack.T[eval_idx]  # (C_eval, 2)
    batch = per_node.unsqueeze(0).expand(y.shape[0], -1, -1)  # (B, C_eval, 2)
    label = y[:, eval_idx].long().unsqueeze(-1)  # (B, C_eval, 1)
    return batch.gather(-1, label).squeeze(-1)


# --------------------------------------------------------------------------- network and data
def build_member(n_features: int, hidden: int, n_nodes: int, dropout: float = 0.7) -> nn.Sequential:
    """One C-HMCNN(h) network with 3 layers (METHOD.md B1).

    ``Linear(D, h), ReLU, Dropout, Linear(h, h), ReLU, Dropout, Linear(h, C), Sigmoid``;
    the same layer layout (and state-dict keys) as
    :meth:`hmlc_core.model.HMCEnsemble.member_network` with ``n_layers=3``.
    """
    return nn.Sequential(
        nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, n_nodes), nn.Sigmoid(),
    )


class PairLoader:
    """A list of ``(x_i, y_i)`` tensor pairs, shuffled with :func:`random.shuffle` each epoch.

    Iterating yields ``(torch.stack(xs), torch.stack(ys))`` batches of
    ``batch_size`` pairs (the last one smaller), forever: a new epoch starts
    with a new shuffle when the list is exhausted. This is the work a
    ``DataLoader(list_of_pairs, batch_size, shuffle=True)`` does per batch.
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, batch_size: int) -> None:
        self.pairs = [(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
                      for x, y in zip(X, Y)]
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            random.shuffle(self.pairs)
            for first in range(0, len(self.pairs), self.batch_size):
                chunk = self.pairs[first:first + self.batch_size]
                yield torch.stack([p[0] for p in chunk]), torch.stack([p[1] for p in chunk])


# --------------------------------------------------------------------------- the training step
class DenseReference:
    """The dense training loop: H ``nn.Sequential`` members, dense MCM, per-member MCLoss, Adam.

    Parameters
    ----------
    dataset : hmlc_core.data.HMCDataset
        Trained on train+valid (C-HMCNN's final protocol, METHOD.md A7); node
        weights from the train split only.
    heads : int
        Ensemble members H.
    batch_size : int
    hidden : int, optional
        Hidden width; the dataset's C-HMCNN preset when None (METHOD.md B2).
    lr : float, optional
        The preset's learning rate when None (1e-4 for FUN/GO).
    weight_decay, dropout : float
        1e-5 and 0.7 (METHOD.md B2).
    weighting : {"class-wise", "binary", "none"}
        Node weights (METHOD.md D2), picked with the released indexing (D5).
    focal_k, focal_min : float
        Focal factor ``focal_min + u**k`` with ``u`` the bBMA (``mean``)
        uncertainty (E1, E2); ``focal_k=None`` switches the factor off.
    reduction : {"mean", "sum"}
        Over members x samples x evaluated nodes. The project's default is
        "mean" (C-HMCNN's BCELoss); the authors' focal path sums (B4). It does
        not change the cost of a step.
    seed : int

    Attributes
    ----------
    members : list of nn.Sequential
    R : torch.Tensor, (1, C, C) float64
    loader : PairLoader
    optimizer : torch.optim.Adam
    """

    def __init__(
        self,
        dataset: Any,
        heads: int = 2,
        batch_size: int = 4,
        hidden: int | None = None,
        lr: float | None = None,
        weight_decay: float = 1e-5,
        dropout: float = 0.7,
        weighting: str = "class-wise",
        focal_k: float | None = 2.0,
        focal_min: float = 0.25,
        reduction: str = "mean",
        seed: int = 0,
    ) -> None:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        preset = preset_for(dataset.name)
        hidden = preset.hidden if hidden is None else int(hidden)
        lr = preset.lr if lr is None else float(lr)
        random.seed(seed)
        torch.manual_seed(seed)
        hierarchy = dataset.hierarchy
        self.heads = int(heads)
        self.reduction = reduction
        self.focal_k, self.focal_min = focal_k, float(focal_min)
        self.R = dense_R(hierarchy)
        self.eval_idx = torch.from_numpy(np.flatnonzero(hierarchy.eval_mask)).long()
        w = node_weights(dataset.train.Y, hierarchy, weighting)
        self.w_stack = torch.tensor(np.stack([w.positive, w.negative]), dtype=torch.float32)
        self.members = [build_member(dataset.n_features, hidden, hierarchy.n_nodes, dropout)
                        for _ in range(self.heads)]
        params = itertools.chain.from_iterable(m.parameters() for m in self.members)
        # torch's defaults on CPU: neither foreach nor fused (explicit here so it cannot drift).
        self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=False)
        if dataset.valid is not None:
            X = np.concatenate([dataset.train.X, dataset.valid.X])
            Y = np.concatenate([dataset.train.Y, dataset.valid.Y])
        else:
            X, Y = dataset.train.X, dataset.train.Y
        self.loader = PairLoader(X, Y, batch_size)
        self._batches = iter(self.loader)
        self.last_batch_size = 0

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The weighted, focal MCLoss of the ensemble on one batch (a float64 scalar with a graph)."""
        outputs = [member(x) for member in self.members]  # H x (B, C), Python loop over members
        factor = released_weights(y, self.w_stack, self.eval_idx)
        if self.focal_k is not None:
            u = mean_uncertainty(torch.stack(outputs).detach())  # (B, C), shared by all members
            factor = factor * (self.focal_min + u[:, self.eval_idx] ** self.focal_k)
        factor = factor.double()
        total = torch.zeros((), dtype=torch.float64)
        for h in outputs:
            total = total + (dense_mc_loss(h, y, self.R, self.eval_idx) * factor).sum()
        if self.reduction == "mean":
            total = total / (self.heads * y.shape[0] * self.eval_idx.numel())
        return total

    def train_mode(self) -> None:
        for member in self.members:
            member.train()

    def step(self) -> float:
        """One optimizer step on the next batch; returns ``loss.item()``."""
        x, y = next(self._batches)
        self.last_batch_size = int(x.shape[0])
        loss = self.loss(x, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


def dense_peak_bytes(n_nodes: int, batch_size: int) -> int:
    """Rough peak of the dense MCM's working memory in bytes: R plus three (B, C, C) float64 tensors.

    One (B, C, C) product lives during a forward MCM; the backward of the max
    and of the product build two more of that size. Members are evaluated one
    after the other, so the number of members does not multiply it.
    """
    c2 = int(n_nodes) ** 2
    return 8 * c2 + 3 * 8 * int(batch_size) * c2


def members_from_ensemble(ensemble: Any) -> list[nn.Sequential]:
    """Reference members loaded with the weights of a :class:`hmlc_core.model.HMCEnsemble` (3 layers)."""
    out = []
    for h in range(ensemble.n_heads):
        member = build_member(ensemble.n_features, ensemble.hidden, ensemble.n_nodes, ensemble.dropout)
        member.load_state_dict(ensemble.member_network(h).state_dict())
        out.append(member)
    return out
