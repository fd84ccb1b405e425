"""The C-HMCNN(h) network split into a shared trunk and a per-node classifier table for shortlist training.

The network is the project's (docs/method.md, *MCM and MCLoss*; :class:`hmlc_core.model.HMCEnsemble`):
``n_layers`` linear layers ``D -> h -> ... -> h -> C`` with ReLU and dropout after every layer but the last.
The first ``n_layers - 1`` layers are an :class:`~hmlc_core.model.HMCEnsemble` of width ``h`` (the trunk);
the last layer is a table of one row per node, ``H x (h + 1)`` numbers (every member's weights and bias),
read with :func:`torch.nn.functional.embedding` with sparse gradients, so a step touches only the scored
nodes' rows and :class:`torch.optim.SparseAdam` updates only them (the classifier of LightDXML's phase 3,
Mishra et al., IJCNN 2023, evaluated on the shortlist only). :meth:`ShortlistNetwork.to_ensemble` gives the
equal dense :class:`~hmlc_core.model.HMCEnsemble`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hmlc_core.model import HMCEnsemble

__all__ = ["ShortlistNetwork"]


class ShortlistNetwork(nn.Module):
    """A C-HMCNN(h) ensemble whose output layer is evaluated on chosen (sample, node) entries only.

    Parameters
    ----------
    n_features : int
        Input dimension D.
    n_nodes : int
        Number of hierarchy nodes C.
    hidden : int
        Hidden width h.
    n_heads : int, default 1
        Ensemble members H (each with its own trunk and classifier, ``kind="heads"``).
    n_layers : int, default 3
        Linear layers, >= 2 (the trunk needs at least one).
    dropout : float, default 0.7
    generator : torch.Generator, optional
        Initialisation; the classifier like :class:`torch.nn.Linear` (uniform in ``±1/sqrt(h)``).

    Raises
    ------
    ValueError
        If ``n_layers < 2`` or a size is invalid (as :class:`HMCEnsemble`).
    """

    def __init__(self, n_features: int, n_nodes: int, hidden: int, n_heads: int = 1, n_layers: int = 3,
                 dropout: float = 0.7, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"shortlist training needs n_layers >= 2 (a trunk and a classifier), got {n_layers}")
        self.trunk = HMCEnsemble(n_features, hidden, hidden, n_heads, n_layers - 1, dropout, generator=generator)
        self.n_features, self.n_nodes, self.hidden = int(n_features), int(n_nodes), int(hidden)
        self.n_heads, self.n_layers, self.dropout = int(n_heads), int(n_layers), float(dropout)
        table = torch.empty(self.n_nodes, self.n_heads * (self.hidden + 1))
        bound = 1.0 / math.sqrt(self.hidden)
        with torch.no_grad():
            table.uniform_(-bound, bound, generator=generator)
        self.classifier = nn.Parameter(table)

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The input of the output layer, ``dropout(relu(trunk(x)))`` (dropout in training mode only).

        Parameters
        ----------
        x : torch.Tensor, shape (B, D), float32

        Returns
        -------
        torch.Tensor, shape (H, B, h)
        """
        return F.dropout(F.relu(self.trunk.logits(x)), p=self.dropout, training=self.training)

    def entry_logits(self, rep: torch.Tensor, sample: torch.Tensor, node: torch.Tensor) -> torch.Tensor:
        """Member logits of the entries ``(sample[r], node[r])``.

        Parameters
        ----------
        rep : torch.Tensor, shape (H, B, h)
            From :meth:`representation`.
        sample, node : torch.Tensor of int64, shape (R,)

        Returns
        -------
        torch.Tensor, shape (H, R); the classifier's gradient is sparse (rows of ``node`` only).

        Notes
        -----
        The entries are laid out as a (B, M) grid, ``M`` the most entries of a sample, so that one batched
        matmul computes them: ``O(H B M h)`` work, about a third less time than an element-wise product over
        the R entries, measured on CPU. Padding repeats a node of the same batch and gets no gradient, so
        SparseAdam touches only the scored nodes' rows.
        """
        b = rep.shape[1]
        counts = torch.bincount(sample, minlength=b)
        order = torch.argsort(sample, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        col = torch.empty_like(sample)
        col[order] = torch.arange(sample.numel()) - starts[sample[order]]
        width = int(counts.max()) if sample.numel() else 0
        fill = node[order[starts.clamp(max=max(sample.numel() - 1, 0))]] if sample.numel() else counts
        grid = fill[:, None].repeat(1, width)
        grid[sample, col] = node
        rows = F.embedding(grid, self.classifier, sparse=True).view(b, width, self.n_heads, self.hidden + 1)
        weight = rows[..., :-1].permute(2, 0, 3, 1).reshape(self.n_heads * b, self.hidden, width)
        logits = torch.bmm(rep.reshape(self.n_heads * b, 1, self.hidden), weight).view(self.n_heads, b, width)
        return logits[:, sample, col] + rows[sample, col, :, -1].T

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Member logits of every node, as :meth:`HMCEnsemble.logits` (the full MCLoss phase of training).

        Parameters
        ----------
        x : torch.Tensor, shape (B, D), float32

        Returns
        -------
        torch.Tensor, shape (H, B, C); the classifier's gradient is dense (every row).
        """
        rep = self.representation(x)
        table = self.classifier.view(self.n_nodes, self.n_heads, self.hidden + 1)
        return torch.baddbmm(table[..., -1].T.unsqueeze(1), rep, table[..., :-1].permute(1, 2, 0))

    def to_ensemble(self) -> HMCEnsemble:
        """The equal dense :class:`HMCEnsemble` (``kind="heads"``), for the project's saving, metrics and views.

        Its ``logits(x)[:, b, j]`` equals ``entry_logits(representation(x), b, j)`` in eval mode.
        """
        model = HMCEnsemble(self.n_features, self.n_nodes, self.hidden, self.n_heads, self.n_layers, self.dropout)
        table = self.classifier.detach().view(self.n_nodes, self.n_heads, self.hidden + 1)
        with torch.no_grad():
            for layer in range(self.n_layers - 1):
                model.weights[layer].copy_(self.trunk.weights[layer])
                model.biases[layer].copy_(self.trunk.biases[layer])
            model.weights[-1].copy_(table[..., :-1].permute(1, 2, 0))
            model.biases[-1].copy_(table[..., -1].T.unsqueeze(1))
        model.eval()
        return model
