"""Hierarchy-coherent networks: the max-constraint module and the C-HMCNN(h) ensemble.

Sources: C-HMCNN (Giunchiglia & Lukasiewicz, "Coherent Hierarchical Multi-Label
Classification Networks", NeurIPS 2020) for the network and MCM (METHOD.md B1,
B3); the multi-head ensemble of Xu et al. 2026 (METHOD.md C1, C2).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hmlc_core.hierarchy import Hierarchy

__all__ = ["MCM", "HMCEnsemble"]


class MCM(nn.Module):
    """Max-constraint module: ``MCM(x)_j = max of x_i over i in {j} and the descendants of j``.

    Computed exactly as a scatter-max over the (node, ancestor) pair list of the
    hierarchy, so memory is O(B x P) with ``P = C + sum_i |ancestors(i)|``; the
    dense B x C x C tensor of the reference code is never built (METHOD.md B3,
    variant b). It is a masked max (non-descendants are ignored, not multiplied
    by 0), so it is correct for logits as well as probabilities, and
    ``sigmoid(MCM(z)) == MCM(sigmoid(z))`` (METHOD.md L4, L5).

    Gradients flow to the arg-max descendant; when several descendants tie for
    the max, torch's ``scatter_reduce`` splits the gradient evenly among them
    (the dense reference picks one). Ties do not happen with continuous outputs.

    Parameters
    ----------
    hierarchy : Hierarchy
        Defines the column order and the descendant sets.

    Shapes
    ------
    input : (..., C) float tensor (any leading dims, e.g. (B, C) or (H, B, C))
    output : same shape and dtype; coherent (``out[..., parent] >= out[..., child]``).
    """

    node_idx: torch.Tensor
    ancestor_idx: torch.Tensor

    def __init__(self, hierarchy: Hierarchy) -> None:
        super().__init__()
        nodes, ancestors = hierarchy.ancestor_pairs()
        self.n_nodes = hierarchy.n_nodes
        self.register_buffer("node_idx", torch.from_numpy(nodes), persistent=False)
        self.register_buffer("ancestor_idx", torch.from_numpy(ancestors), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_nodes:
            raise ValueError(f"MCM expects {self.n_nodes} nodes in the last dimension, got {x.shape[-1]}")
        values = x.index_select(-1, self.node_idx)
        index = self.ancestor_idx.expand(*x.shape[:-1], -1)
        out = torch.full_like(x, float("-inf"))
        return out.scatter_reduce(-1, index, values, reduce="amax", include_self=True)


def _uniform_(tensor: torch.Tensor, fan_in: int, generator: torch.Generator | None) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


class HMCEnsemble(nn.Module):
    """An ensemble of H independent C-HMCNN(h) networks evaluated in one batched matmul.

    Each member is the C-HMCNN(h) feed-forward network (METHOD.md B1): ``n_layers``
    linear layers ``D -> h -> ... -> h -> C`` with ReLU and dropout after every
    layer but the last, and a sigmoid output. The members' weights are stacked
    along a leading member axis and applied with ``torch.baddbmm``, which gives
    exactly the outputs of H separate networks (see :meth:`member_network`).
    Parameters are initialised like :class:`torch.nn.Linear`
    (uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``), independently per member.

    Parameters
    ----------
    n_features : int
        Input dimension D.
    n_nodes : int
        Output dimension C (all hierarchy nodes, roots included).
    hidden : int, default 500
        Hidden width h (per-dataset values in METHOD.md B2).
    n_heads : int, default 2
        Number of ensemble members H (the paper's tabular default).
    n_layers : int, default 3
        Number of linear layers (>= 1).
    dropout : float, default 0.7
        Dropout probability in [0, 1), C-HMCNN's value.
    generator : torch.Generator, optional
        Source of randomness for the initialisation.

    Raises
    ------
    ValueError
        If a size is not positive or ``dropout`` is outside [0, 1).
    """

    def __init__(
        self,
        n_features: int,
        n_nodes: int,
        hidden: int = 500,
        n_heads: int = 2,
        n_layers: int = 3,
        dropout: float = 0.7,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("n_features", n_features), ("n_nodes", n_nodes), ("hidden", hidden),
                            ("n_heads", n_heads), ("n_layers", n_layers)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_features, self.n_nodes, self.hidden = int(n_features), int(n_nodes), int(hidden)
        self.n_heads, self.n_layers, self.dropout = int(n_heads), int(n_layers), float(dropout)
        dims = [self.n_features] + [self.hidden] * (self.n_layers - 1) + [self.n_nodes]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            w = torch.empty(self.n_heads, fan_in, fan_out)
            b = torch.empty(self.n_heads, 1, fan_out)
            _uniform_(w, fan_in, generator)
            _uniform_(b, fan_in, generator)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def spec(self) -> dict[str, float | int]:
        """The constructor arguments, to rebuild the module before loading a state dict."""
        return {"n_features": self.n_features, "n_nodes": self.n_nodes, "hidden": self.hidden,
                "n_heads": self.n_heads, "n_layers": self.n_layers, "dropout": self.dropout}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Member logits.

        Parameters
        ----------
        x : torch.Tensor, shape (B, D), float32

        Returns
        -------
        torch.Tensor, shape (H, B, C)
        """
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"input must have shape (B, {self.n_features}), got {tuple(x.shape)}")
        h = torch.matmul(x, self.weights[0]) + self.biases[0]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            h = F.dropout(F.relu(h), p=self.dropout, training=self.training)
            h = torch.baddbmm(b, h, w)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (unconstrained) member probabilities ``sigmoid(logits)``, shape (H, B, C), in (0, 1).

        C-HMCNN trains on these through MCLoss; apply :class:`MCM` for the
        coherent predictions (METHOD.md B1, C2).
        """
        return torch.sigmoid(self.logits(x))

    def member_network(self, member: int) -> nn.Sequential:
        """A standalone ``nn.Sequential`` C-HMCNN network equal to member ``member``.

        Useful for export and as the reference in tests: in eval mode its
        output equals ``self(x)[member]``.

        Raises
        ------
        IndexError
            If ``member`` is not in ``[0, H)``.
        """
        if not 0 <= member < self.n_heads:
            raise IndexError(f"member {member} out of range for {self.n_heads} members")
        layers: list[nn.Module] = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[member].T)
                lin.bias.copy_(b[member, 0])
            layers.append(lin)
            if i < self.n_layers - 1:
                layers += [nn.ReLU(), nn.Dropout(self.dropout)]
        layers.append(nn.Sigmoid())
        return nn.Sequential(*layers)
