"""Hierarchy-coherent networks: the max-constraint module and the C-HMCNN(h) ensemble.

Sources: C-HMCNN (Giunchiglia & Lukasiewicz, "Coherent Hierarchical Multi-Label
Classification Networks", NeurIPS 2020) for the network and MCM (docs/method.md,
*MCM and MCLoss*); the multi-head ensemble of Xu et al. 2026 (docs/method.md,
*Ensembles*).
``ENSEMBLE_KINDS`` is defined in the torch-free :mod:`hmlc_core.config` and
re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import networkx as nx
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hmlc_core.config import ENSEMBLE_KINDS
from hmlc_core.hierarchy import Hierarchy

__all__ = ["MCM", "HMCEnsemble", "ENSEMBLE_KINDS", "model_from_spec"]


class MCM(nn.Module):
    """Max-constraint module: ``MCM(x)_j = max of x_i over i in {j} and the descendants of j``.

    Exact and sparse: the dense B x C x C tensor of the reference code is never
    built (docs/method.md, *MCM and MCLoss*). For every (sample, node) the position of the maximising
    descendant is found without autograd, and the output is one differentiable
    ``gather`` of the input at those positions, so gradients flow to the arg-max
    descendant only, as with the dense max (C-HMCNN), and the backward pass is a
    cheap scatter-add. The arg-max is found in one of two exact ways, whichever
    moves less memory for the batch at hand:

    - *pairs*: a scatter-max over the (node, ancestor) pair list, O(M x P) with
      ``P = C + sum_i |ancestors(i)|``; best for small
      batches (one kernel, little Python overhead);
    - *levels*: bottom-up over the hierarchy's heights, each parent taking the
      max of its own value and its children's,
      O(M x E) with E edges; best for large batches and deep DAGs such as GO
      (E = 5,827 against P = 42,704 for cellcycle_GO).

    Here ``M`` is the number of rows (the product of the leading dimensions).
    It is a masked max (non-descendants are ignored, not multiplied by 0), so it
    is correct for logits as well as probabilities, and
    ``sigmoid(MCM(z)) == MCM(sigmoid(z))``. When several
    descendants tie for the max, the gradient goes to one of them (the node
    itself if it is among them), as with the dense ``max``.

    Parameters
    ----------
    hierarchy : Hierarchy
        Defines the column order and the descendant sets.

    Shapes
    ------
    input : (..., C) float tensor (any leading dims, e.g. (B, C) or (H, B, C))
    output : same shape and dtype; coherent (``out[..., parent] >= out[..., child]``).
    """

    PAIRS_MAX_WORK = 100_000
    """Largest ``M x P`` for which the pair strategy is used (measured crossover, docs/performance.md)."""

    node_idx: torch.Tensor
    ancestor_idx: torch.Tensor

    def __init__(self, hierarchy: Hierarchy) -> None:
        super().__init__()
        nodes, ancestors = hierarchy.ancestor_pairs()
        self.n_nodes = hierarchy.n_nodes
        self.register_buffer("node_idx", torch.from_numpy(nodes), persistent=False)
        self.register_buffer("ancestor_idx", torch.from_numpy(ancestors), persistent=False)
        # Rank of each pair's node when several descendants tie: the node itself first (rank C), then by index.
        pair_rank = np.where(nodes == ancestors, hierarchy.n_nodes, nodes)
        self.register_buffer("pair_rank", torch.from_numpy(pair_rank)[:, None], persistent=False)
        child, parent = hierarchy.edge_index()
        self.register_buffer("edge_child", torch.from_numpy(child), persistent=False)
        self.register_buffer("edge_parent", torch.from_numpy(parent), persistent=False)
        height = np.zeros(hierarchy.n_nodes, dtype=np.int64)
        for n in reversed(list(nx.topological_sort(hierarchy.graph))):
            kids = [hierarchy.index[c] for c in hierarchy.graph.successors(n)]
            if kids:
                height[hierarchy.index[n]] = 1 + height[kids].max()
        self.n_levels = 0
        for level in np.unique(height[parent]):
            keep = height[parent] == level
            parents, inverse = np.unique(parent[keep], return_inverse=True)
            self.register_buffer(f"level{self.n_levels}_child", torch.from_numpy(child[keep]), persistent=False)
            self.register_buffer(f"level{self.n_levels}_parent", torch.from_numpy(parents), persistent=False)
            self.register_buffer(f"level{self.n_levels}_inverse", torch.from_numpy(inverse.astype(np.int64)),
                                 persistent=False)
            self.n_levels += 1

    def _argmax_pairs(self, xt: torch.Tensor) -> torch.Tensor:
        m = xt.shape[1]
        values = xt.index_select(0, self.node_idx)
        index = self.ancestor_idx[:, None].expand(-1, m)
        lowest = torch.iinfo(xt.dtype).min if not xt.dtype.is_floating_point else float("-inf")
        best = torch.full_like(xt, lowest).scatter_reduce(0, index, values, "amax")
        hit = values == best.index_select(0, self.ancestor_idx)
        # Every node has at least one hit (its arg-max), so 0 never wins over a hit's rank + 1.
        choice = torch.zeros(xt.shape, dtype=torch.long).scatter_reduce(
            0, index, hit * (self.pair_rank + 1), "amax") - 1
        own = torch.arange(self.n_nodes, device=xt.device)[:, None].expand_as(choice)
        return torch.where(choice == self.n_nodes, own, choice)

    def _argmax_levels(self, xt: torch.Tensor) -> torch.Tensor:
        m = xt.shape[1]
        best = xt.clone()
        arg = torch.arange(self.n_nodes, device=xt.device)[:, None].expand(-1, m).clone()
        for i in range(self.n_levels):
            child = getattr(self, f"level{i}_child")
            parents = getattr(self, f"level{i}_parent")
            inverse = getattr(self, f"level{i}_inverse")
            values = best.index_select(0, child)
            index = inverse[:, None].expand(-1, m)
            own = best.index_select(0, parents)
            top = own.scatter_reduce(0, index, values, "amax")
            wins = (values == top.index_select(0, inverse)) & (values > own.index_select(0, inverse))
            winner = torch.full_like(own, -1, dtype=torch.long).scatter_reduce(
                0, index, torch.where(wins, arg.index_select(0, child), -1), "amax")
            best[parents] = top
            arg[parents] = torch.where(winner >= 0, winner, arg.index_select(0, parents))
        return arg

    def argmax(self, x: torch.Tensor) -> torch.Tensor:
        """Column of the maximising descendant for every entry.

        Parameters
        ----------
        x : torch.Tensor, shape (..., C)
            Floating point, or integer sort keys.

        Returns
        -------
        torch.Tensor of int64, shape (..., C)
            ``MCM(x) == x.gather(-1, argmax(x))``.
        """
        xt = x.detach().reshape(-1, self.n_nodes).T.contiguous()
        with torch.no_grad():
            if xt.shape[1] * self.node_idx.numel() <= self.PAIRS_MAX_WORK:
                arg = self._argmax_pairs(xt)
            else:
                arg = self._argmax_levels(xt)
        return arg.T.reshape(x.shape)

    def is_coherent(self, y: torch.Tensor) -> bool:
        """Whether no node of ``y`` exceeds its parents (``y[..., child] <= y[..., parent]`` on every edge).

        Parameters
        ----------
        y : torch.Tensor, shape (..., C)

        Returns
        -------
        bool
        """
        return bool((y.index_select(-1, self.edge_child) <= y.index_select(-1, self.edge_parent)).all())

    def _max_levels(self, xt: torch.Tensor) -> torch.Tensor:
        m = xt.shape[1]
        best = xt.clone()
        for i in range(self.n_levels):
            parents = getattr(self, f"level{i}_parent")
            index = getattr(self, f"level{i}_inverse")[:, None].expand(-1, m)
            values = best.index_select(0, getattr(self, f"level{i}_child"))
            best[parents] = best.index_select(0, parents).scatter_reduce(0, index, values, "amax")
        return best

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """``MCM(x)`` without autograd: the maxima themselves, no arg-max (inference).

        The same masked max over descendants, by the same pair or
        level strategy, equal to ``forward`` bit for bit (a max is exact) in
        about a third of the work. ``forward`` takes this path whenever no
        gradient is needed (``torch.no_grad()`` or an input without ``requires_grad``).

        Parameters
        ----------
        x : torch.Tensor, shape (..., C), floating point

        Returns
        -------
        torch.Tensor, same shape and dtype, detached.
        """
        xt = x.detach().reshape(-1, self.n_nodes).T.contiguous()
        m = xt.shape[1]
        with torch.no_grad():
            if m * self.node_idx.numel() <= self.PAIRS_MAX_WORK:
                index = self.ancestor_idx[:, None].expand(-1, m)
                best = torch.full_like(xt, float("-inf")).scatter_reduce(
                    0, index, xt.index_select(0, self.node_idx), "amax")
            else:
                best = self._max_levels(xt)
        return best.T.reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_nodes:
            raise ValueError(f"MCM expects {self.n_nodes} nodes in the last dimension, got {x.shape[-1]}")
        if not (torch.is_grad_enabled() and x.requires_grad):
            return self.values(x)
        return x.gather(-1, self.argmax(x))


def _uniform_(tensor: torch.Tensor, fan_in: int, generator: torch.Generator | None) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


class HMCEnsemble(nn.Module):
    """An ensemble of H C-HMCNN(h) networks evaluated in batched matmuls.

    Each member is the C-HMCNN(h) feed-forward network (docs/method.md, *MCM and
    MCLoss*): ``n_layers`` linear layers ``D -> h -> ... -> h -> C`` with ReLU and dropout after every
    layer but the last, and a sigmoid output. A layer's weights have a leading
    member axis of length H (one set per member, applied with ``torch.baddbmm``,
    which gives exactly the outputs of H separate networks, see
    :meth:`member_network`) or 1 (shared by all members). ``kind`` says which
    (:data:`ENSEMBLE_KINDS`): ``"heads"`` (every layer per member, the paper's
    tabular ensemble), ``"shared"`` (the first layer shared) or
    ``"mc-dropout"`` (every layer shared; the members differ only by their
    dropout masks, which stay on at test time; our reading of the paper's
    "dropout variant"); docs/method.md, *Ensembles*. Parameters are initialised like
    :class:`torch.nn.Linear` (uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``).

    Parameters
    ----------
    n_features : int
        Input dimension D.
    n_nodes : int
        Output dimension C (all hierarchy nodes, roots included).
    hidden : int, default 500
        Hidden width h (per-dataset values in docs/method.md, *Defaults and why*).
    n_heads : int, default 2
        Number of ensemble members H (the paper's tabular default).
    n_layers : int, default 3
        Number of linear layers (>= 1).
    dropout : float, default 0.7
        Dropout probability in [0, 1), C-HMCNN's value.
    generator : torch.Generator, optional
        Source of randomness for the initialisation.
    kind : {"heads", "shared", "mc-dropout"}, default "heads"

    Raises
    ------
    ValueError
        If a size is not positive, ``dropout`` is outside [0, 1), the kind is
        unknown, or ``mc-dropout`` has no dropout to sample (``dropout == 0``
        or a single layer).
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
        kind: str = "heads",
    ) -> None:
        super().__init__()
        if kind not in ENSEMBLE_KINDS:
            raise ValueError(f"ensemble kind must be one of {ENSEMBLE_KINDS}, got {kind!r}")
        if kind == "mc-dropout" and (dropout == 0 or n_layers < 2):
            raise ValueError("an mc-dropout ensemble needs dropout > 0 and at least 2 layers")
        self.kind = kind
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
        for layer, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            shared = kind == "mc-dropout" or (kind == "shared" and layer == 0 and self.n_layers > 1)
            copies = 1 if shared else self.n_heads
            w = torch.empty(copies, fan_in, fan_out)
            b = torch.empty(copies, 1, fan_out)
            _uniform_(w, fan_in, generator)
            _uniform_(b, fan_in, generator)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def spec(self) -> dict[str, float | int]:
        """The constructor arguments, to rebuild the module before loading a state dict."""
        return {"n_features": self.n_features, "n_nodes": self.n_nodes, "hidden": self.hidden,
                "n_heads": self.n_heads, "n_layers": self.n_layers, "dropout": self.dropout, "kind": self.kind}

    def logits(self, x: torch.Tensor,
               affine: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Member logits.

        Parameters
        ----------
        x : torch.Tensor, shape (B, D), float32
        affine : callable, optional
            ``affine(layer, h)`` computes layer ``layer``'s ``b + h @ W`` in place
            of the default batched matmul (:meth:`affine`); ``h`` is ``x`` for
            layer 0 and the (H, B, h) hidden state after; it returns shape
            (copies or H, B, fan_out). :class:`hmlc_core.fused.FusedAdamEnsemble`
            passes its training kernels here.

        Returns
        -------
        torch.Tensor, shape (H, B, C)
        """
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"input must have shape (B, {self.n_features}), got {tuple(x.shape)}")
        return self.head_logits(x, affine)

    def head_logits(self, x: torch.Tensor,
                    affine: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """The members' layers on rows of their input width (``weights[0].shape[1]``), unchecked.

        :meth:`logits` after its shape check; an encoder ensemble
        (:class:`hmlc_core.images.encoders.CNNEnsemble`) calls it on its trunk's features.

        Parameters
        ----------
        x : torch.Tensor, shape (B, fan_in of layer 0), float32
        affine : callable, optional
            As :meth:`logits`.

        Returns
        -------
        torch.Tensor, shape (H, B, C)
        """
        affine = self.affine if affine is None else affine
        sample_dropout = self.training or self.kind == "mc-dropout"
        h = affine(0, x).expand(self.n_heads, -1, -1)
        for layer in range(1, self.n_layers):
            h = F.dropout(F.relu(h), p=self.dropout, training=sample_dropout)
            h = affine(layer, h)
        return h

    def affine(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s affine map ``b + h @ W`` as a batched matmul.

        Parameters
        ----------
        layer : int
            In ``[0, n_layers)``.
        h : torch.Tensor, shape (B, D) for layer 0, else (H, B, h), float32

        Returns
        -------
        torch.Tensor, shape (copies, B, fan_out), copies = 1 (shared layer) or H
        """
        w, b = self.weights[layer], self.biases[layer]
        if layer > 0 and w.shape[0] == self.n_heads:
            return torch.baddbmm(b, h, w)
        return torch.matmul(h, w) + b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (unconstrained) member probabilities ``sigmoid(logits)``, shape (H, B, C), in (0, 1).

        C-HMCNN trains on these through MCLoss; apply :class:`MCM` for the
        coherent predictions (docs/method.md, *Ensembles*). For ``mc-dropout`` the
        members are stochastic also in eval mode.
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
            copy = member if w.shape[0] > 1 else 0
            with torch.no_grad():
                lin.weight.copy_(w[copy].T)
                lin.bias.copy_(b[copy, 0])
            layers.append(lin)
            if i < self.n_layers - 1:
                layers += [nn.ReLU(), nn.Dropout(self.dropout)]
        layers.append(nn.Sigmoid())
        return nn.Sequential(*layers)


def model_from_spec(spec: dict) -> HMCEnsemble:
    """Rebuild an untrained ensemble from a saved :meth:`HMCEnsemble.spec` (before loading its state dict).

    A spec with an ``encoder`` key is an image ensemble's
    (:meth:`hmlc_core.images.encoders.CNNEnsemble.spec`); any other is a plain :class:`HMCEnsemble`'s
    (every run saved before encoders existed).

    Parameters
    ----------
    spec : dict
        The ``model`` part of a run's ``config.json``.

    Returns
    -------
    HMCEnsemble
        A :class:`HMCEnsemble` or a :class:`~hmlc_core.images.encoders.CNNEnsemble`.

    Raises
    ------
    TypeError, ValueError
        If the arguments do not fit the constructor.
    """
    if "encoder" in spec:
        from hmlc_core.images.encoders import CNNEnsemble  # the images package imports this module

        return CNNEnsemble(**spec)
    return HMCEnsemble(**spec)
