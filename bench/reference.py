"""Dense reference formulations of the released training step (our own code, for benchmarks and tests).

This module re-states, in the straightforward dense way, what one training step
of the authors' tabular ensemble does (C-HMCNN, Giunchiglia & Lukasiewicz 2020;
Xu et al. 2026 focal/weighted loss), so that the project's sparse, batched
implementation can be checked against it (``tests/test_bench_reference.py``)
and timed against it (``bench/bench_train.py``). It is written from the
formulation in docs/method.md (*MCM and MCLoss*, *Ensembles*, *Node weights*, *Focal weighting*) and from
reading the authors' training loop; no code was copied from the reference
repositories.

Two loops share the networks, ``R``, the node weights and the focal factor:

- :class:`ReleasedLoopReference` is the step as the released loop runs it: the
  members' MCM on one stacked (H, B, C, C) float64 tensor, boolean-mask node
  selection, the weight array turned into a tensor every step, float64 data
  through a ``DataLoader``, and the loop's per-step bookkeeping (accuracy, three
  ``.item()`` calls, the epoch's predictions gathered with ``torch.cat``). It is
  the benchmark's baseline.
- :class:`DenseReference` ("lean") keeps only the dense formulation: one member
  at a time, index-based selection, ``loss.item()`` and nothing else.

What is deliberately "dense" / "as released" in both:

- **H separate networks** (:func:`build_member`): one ``nn.Sequential`` C-HMCNN
  network per ensemble member (Linear D->h, ReLU, Dropout, Linear h->h, ReLU,
  Dropout, Linear h->C, Sigmoid; docs/method.md, *Ensembles*), evaluated in a Python loop
  over the members.
- **Dense MCM** (:func:`dense_mcm`): ``R`` is the (1, C, C) float64 matrix with
  ``R[j, i] = 1`` iff ``i`` is ``j`` or a descendant of ``j`` (docs/method.md, *Data and hierarchy*), and
  ``MCM(x) = max_i R[j, i] * x[b, i]`` materialises the (B, C, C) float64 product
  (docs/method.md, *MCM and MCLoss*). Valid for non-negative inputs only (probabilities).
- **MCLoss** (:func:`dense_mc_loss`) on top of it, per member, in float64
  (docs/method.md, *MCM and MCLoss*): ``c = MCM(h)``, ``p = MCM(y * h)``, ``o = (1-y) c + y p``,
  element-wise BCE over the evaluated nodes.
- **Weights picked with the released indexing** (:func:`released_weights`): the
  (2, C) stack (row 0 positive weights, row 1 negative weights) is transposed,
  restricted to the evaluated nodes, broadcast to (B, C_eval, 2) and indexed
  with the 0/1 label, so ``y = 0`` gets the positive weight (docs/method.md, *Node weights*).
- **Focal factor** ``f_min + u**k`` with ``u`` the ``mean`` (bBMA) uncertainty
  of the detached stacked member probabilities, shared by all members
  (docs/method.md, *Focal weighting*).
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
    "stacked_dense_mcm",
    "dense_mc_loss",
    "released_weights",
    "build_member",
    "PairLoader",
    "DenseReference",
    "ReleasedLoopReference",
    "REFERENCE_LOOPS",
    "dense_peak_bytes",
    "members_from_ensemble",
]


# --------------------------------------------------------------------------- MCM / MCLoss
def dense_R(hierarchy: Hierarchy) -> torch.Tensor:
    """C-HMCNN's ``R``: shape (1, C, C), float64, ``R[0, j, i] = 1`` iff ``i`` is ``j`` or a descendant of ``j``.

    It is the transpose of :meth:`Hierarchy.ancestor_matrix` (docs/method.md, *Data and hierarchy*),
    with a leading batch dimension.
    """
    return torch.from_numpy(hierarchy.ancestor_matrix().T.astype(np.float64)).unsqueeze(0)


def dense_mcm(x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Dense max-constraint module: ``out[b, j] = max_i R[j, i] * x[b, i]`` (docs/method.md, *MCM and MCLoss*).

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


def stacked_dense_mcm(x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """Dense MCM of all members at once: ``out[h, b, j] = max_i R[j, i] * x[h, b, i]``.

    See docs/method.md, *MCM and MCLoss*.

    Parameters
    ----------
    x : torch.Tensor, shape (H, B, C), values >= 0
        Member probabilities (float32 in the released loop).
    R : torch.Tensor, shape (1, C, C), float64
        From :func:`dense_R`.

    Returns
    -------
    torch.Tensor, shape (H, B, C), float64

    Notes
    -----
    The released ensemble loss applies MCM to the stacked members, so the
    product ``R * x`` is one (H, B, C, C) float64 tensor (40 MB for FUN's 500
    nodes at H = 5, B = 4; 1.1 GB for GO at H = 2, B = 4), where
    :func:`dense_mcm` builds H tensors of (B, C, C) one after the other.
    """
    return (R.unsqueeze(0) * x.unsqueeze(-2)).max(dim=-1).values


def dense_mc_loss(h: torch.Tensor, y: torch.Tensor, R: torch.Tensor, eval_idx: torch.Tensor) -> torch.Tensor:
    """Element-wise MCLoss of one network, float64 (docs/method.md, *MCM and MCLoss*).

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
    """Per-(sample, node) weights picked the way the released code does (docs/method.md, *Node weights*).

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
    """One C-HMCNN(h) network with 3 layers (docs/method.md, *MCM and MCLoss*).

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
        Trained on train+valid (C-HMCNN's final protocol; docs/method.md, *Data and hierarchy*); node
        weights from the train split only.
    heads : int
        Ensemble members H.
    batch_size : int
    hidden : int, optional
        Hidden width; the dataset's C-HMCNN preset when None (docs/method.md, *Defaults and why*).
    lr : float, optional
        The preset's learning rate when None (1e-4 for FUN/GO).
    weight_decay, dropout : float
        1e-5 and 0.7 (docs/method.md, *Defaults and why*).
    weighting : {"class-wise", "binary", "none"}
        Node weights, picked with the released indexing (docs/method.md, *Node weights*).
    focal_k, focal_min : float
        Focal factor ``focal_min + u**k`` with ``u`` the bBMA (``mean``)
        uncertainty (docs/method.md, *Focal weighting*); ``focal_k=None`` switches the factor off.
    reduction : {"mean", "sum"}
        Over members x samples x evaluated nodes. The project's default is
        "mean" (C-HMCNN's BCELoss); the authors' focal path sums (docs/method.md, *MCM and MCLoss*). It does
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
        self.batch_size = int(batch_size)
        self.n_samples = len(X)
        self._batches = self._make_batches(X, Y)
        self.last_batch_size = 0

    def _make_batches(self, X: np.ndarray, Y: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.loader = PairLoader(X, Y, self.batch_size)
        return iter(self.loader)

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


class ReleasedLoopReference(DenseReference):
    """The dense step as the released training loop runs it, bookkeeping included (the benchmark's baseline).

    Same networks, ``R``, node weights, focal factor and optimizer as
    :class:`DenseReference`, with the released loop's way of running them
    (docs/method.md, *MCM and MCLoss*, and the sections named below):

    - **Stacked dense MCM**: the loss applies MCM to the stacked members, so
      each MCM materialises one (H, B, C, C) float64 product
      (:func:`stacked_dense_mcm`); MCLoss needs two per step.
    - **Boolean node selection**: the evaluated nodes are picked with C-HMCNN's
      ``to_eval`` as a boolean mask, every time (docs/method.md, *Evaluated nodes*).
    - **Weights rebuilt every step**: the (2, C) float64 weight array becomes a
      float32 tensor, is transposed, masked, broadcast to (B, C_eval, 2) and
      indexed with the labels (docs/method.md, *Node weights*).
    - **Data**: float64 features and labels as a Python list of pairs, batched
      by a shuffling ``torch.utils.data.DataLoader`` (default collate); the
      features are cast with ``.float()`` every step (the scaled features stay
      float64; docs/method.md, *Data and hierarchy*).
    - **Per-step bookkeeping**: the mean of the members' constrained outputs
      thresholded at 0.5, the training accuracy, three ``.item()`` calls (loss,
      accuracy, mean uncertainty), and the epoch's predictions, mean
      probabilities and labels gathered with ``torch.cat`` (the released loop
      computes training metrics from them when the epoch ends; that
      end-of-epoch computation is not part of a step and is not done here).
      The gathered tensors grow through the epoch, so a step's cost grows with
      its position in the epoch; :meth:`fast_forward` places a timing window.

    Parameters
    ----------
    Those of :class:`DenseReference`.

    Attributes
    ----------
    eval_mask : torch.Tensor of bool, shape (C,)
    weight_array : numpy.ndarray of float64, shape (2, C)
        Row 0 positive weights, row 1 negative weights.
    epoch_predicted, epoch_probs, epoch_labels : torch.Tensor or None
        The epoch so far: (N, C) bool, float64, float64 (None at an epoch's start).
    position : int
        Steps taken in the current epoch.
    """

    def __init__(self, dataset: Any, **kwargs: Any) -> None:
        self.epoch_predicted: torch.Tensor | None = None
        self.epoch_probs: torch.Tensor | None = None
        self.epoch_labels: torch.Tensor | None = None
        self.position = 0
        super().__init__(dataset, **kwargs)
        self.eval_mask = torch.from_numpy(dataset.hierarchy.eval_mask.astype(np.uint8)).bool()
        self.weight_array = self.w_stack.numpy().astype(np.float64)

    def _make_batches(self, X: np.ndarray, Y: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        pairs = list(zip(torch.from_numpy(np.asarray(X, dtype=np.float64)),
                         torch.from_numpy(np.asarray(Y, dtype=np.float64))))
        self.loader = torch.utils.data.DataLoader(pairs, batch_size=self.batch_size, shuffle=True)
        return self._epochs()

    def _epochs(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            self.epoch_predicted = self.epoch_probs = self.epoch_labels = None
            self.position = 0
            yield from self.loader

    def _forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss (float64 scalar), constrained member outputs (H, B, C) float64, uncertainty (B, C_eval)."""
        probs = torch.cat([member(x).unsqueeze(0) for member in self.members])  # (H, B, C) float32
        mask = self.eval_mask
        per_node = torch.tensor(self.weight_array, dtype=torch.float32).T[mask]  # (C_eval, 2), every step
        batch = per_node.unsqueeze(0).expand(y.shape[0], -1, -1)
        rows = torch.arange(batch.shape[0]).view(-1, 1)
        cols = torch.arange(batch.shape[1]).view(1, -1)
        weights = batch[rows, cols, y[:, mask].int()]  # (B, C_eval)
        u = mean_uncertainty(probs.detach())
        if not bool(((u >= 0) & (u <= 1)).all()):
            raise ValueError("uncertainty outside [0, 1]")
        labels = y.unsqueeze(0).expand_as(probs)  # float64
        constrained = stacked_dense_mcm(probs, self.R)
        constrained_pos = stacked_dense_mcm(labels * probs, self.R)
        out = (1 - labels) * constrained + labels * constrained_pos
        loss = F.binary_cross_entropy(out[:, :, mask], labels[:, :, mask], reduction="none") * weights
        u_eval = u[:, mask]
        if self.focal_k is not None:
            loss = loss * (self.focal_min + u_eval ** self.focal_k)
        total = loss.sum()
        if self.reduction == "mean":
            total = total / loss.numel()
        return total, constrained.detach(), u_eval

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The weighted, focal MCLoss of the ensemble on one batch (a float64 scalar with a graph)."""
        return self._forward(x.float(), y.double())[0]

    def _gather(self, predicted: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor) -> None:
        if self.epoch_predicted is None:
            self.epoch_predicted, self.epoch_probs, self.epoch_labels = predicted, probs, labels
        else:
            self.epoch_predicted = torch.cat((self.epoch_predicted, predicted))
            self.epoch_probs = torch.cat((self.epoch_probs, probs))
            self.epoch_labels = torch.cat((self.epoch_labels, labels))
        self.position += 1

    def step(self) -> float:
        """One optimizer step on the next batch, with the loop's bookkeeping; returns ``loss.item()``."""
        x, y = next(self._batches)
        self.last_batch_size = int(x.shape[0])
        self.optimizer.zero_grad()
        loss, constrained, u = self._forward(x.float(), y)
        mean_probs = constrained.mean(dim=0)
        predicted = mean_probs > 0.5
        accuracy = (predicted == y.byte()).sum() / y.numel()
        loss.backward()
        self.optimizer.step()
        value = loss.item()
        accuracy.item()
        u.mean().item()
        self._gather(predicted, mean_probs, y)
        return value

    def fast_forward(self, steps: int) -> None:
        """Skip ``steps`` batches without training, growing the gathered tensors as those steps would.

        The gathered predictions and probabilities are zeros of the right
        shape and dtype (their values do not change what ``torch.cat``
        costs). Used to centre a timing window on the middle of an epoch,
        where a step costs the epoch's average. Crossing an epoch's end starts
        a new epoch as :meth:`step` does.
        """
        for _ in range(int(steps)):
            x, y = next(self._batches)
            shape = (x.shape[0], y.shape[1])
            self._gather(torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.float64), y)


REFERENCE_LOOPS = {"released": ReleasedLoopReference, "lean": DenseReference}
"""The benchmark's reference formulations by name."""


def dense_peak_bytes(n_nodes: int, batch_size: int, stacked_heads: int = 1) -> int:
    """Rough peak of the dense MCM's working memory in bytes: R plus three (H', B, C, C) float64 tensors.

    One product lives during a forward MCM; the backward of the max and of the
    product build two more of that size. ``stacked_heads`` is H' = 1 when the
    members are evaluated one after the other (:class:`DenseReference`) and
    H' = H when the members' MCM is one stacked tensor
    (:class:`ReleasedLoopReference`).
    """
    c2 = int(n_nodes) ** 2
    return 8 * c2 + 3 * 8 * int(stacked_heads) * int(batch_size) * c2


def members_from_ensemble(ensemble: Any) -> list[nn.Sequential]:
    """Reference members loaded with the weights of a :class:`hmlc_core.model.HMCEnsemble` (3 layers)."""
    out = []
    for h in range(ensemble.n_heads):
        member = build_member(ensemble.n_features, ensemble.hidden, ensemble.n_nodes, ensemble.dropout)
        member.load_state_dict(ensemble.member_network(h).state_dict())
        out.append(member)
    return out
