"""Adam for a table whose rows get sparse gradients, moving every row as dense Adam would.

Shortlist training updates the classifier row of a node only at the steps that score the node. PyTorch's
:class:`torch.optim.SparseAdam` is *lazy*: a row's moments decay and the row moves only at the steps that
touch it, so a row scored at a fraction ``q`` of the steps moves about ``q`` times as far as under full
training, where Adam moves every row at every step. On cellcycle_GO (C-HMCNN recipe, 15 epochs) rows
trained that way rank worse than full training's (micro AUPRC 0.358 against 0.390 with ``K=100`` hard and
400 uniform negatives); tripling the rows' learning rate gave 0.369 and this optimiser 0.364 (one seed each:
lazy updates are a small part of the gap, so ``train_shortlist`` keeps SparseAdam as its default).

:class:`CatchUpAdam` is dense Adam (Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015,
Algorithm 1) fed the sparse gradient with zeros for untouched rows, computed lazily: at the step ``t`` that
touches a row last updated at step ``l``, it first applies the ``d = t - l - 1`` updates dense Adam made in
between with a zero gradient, then the step's own update. With zero gradients the moments only decay,
``m_{l+i} = b1^i m_l`` and ``v_{l+i} = b2^i v_l``, so the skipped updates sum to

``lr x m_l / (sqrt(v_l) + eps) x sum_{i=1..d} r^i c(l + i)``, ``r = b1 / sqrt(b2)``,
``c(s) = sqrt(1 - b2^s) / (1 - b1^s)`` (the bias corrections),

exact when ``eps`` is small against ``sqrt(v)`` (``eps`` is moved out of the sum). ``r^i`` falls below
1e-10 within :data:`CATCH_UP_STEPS` steps for the default betas, where the sum is cut. :meth:`CatchUpAdam.flush`
applies the pending updates of every row up to the current step (call it before the rows are read). The cost
of a step stays that of the touched rows: ``O(R x (D + CATCH_UP_STEPS))`` for ``R`` rows of width ``D``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["CATCH_UP_STEPS", "FLUSH_ROWS", "CatchUpAdam"]

CATCH_UP_STEPS = 256
"""Most skipped steps summed per row; ``r^256 < 1e-11`` for Adam's default betas (0.9, 0.999)."""

FLUSH_ROWS = 8192
"""Rows caught up at a time by :meth:`CatchUpAdam.flush`."""


class CatchUpAdam(torch.optim.Optimizer):
    """Dense Adam on one 2-D parameter with sparse (row) gradients, computed at the touched rows only.

    Parameters
    ----------
    params : iterable of torch.Tensor
        One parameter, 2-D (rows x width), whose gradients are sparse COO tensors over rows (as
        ``F.embedding(..., sparse=True)`` gives).
    lr : float, default 1e-3
    betas : tuple of float, default (0.9, 0.999)
    eps : float, default 1e-8

    Raises
    ------
    ValueError
        On a non-positive ``lr`` or ``eps``, betas outside [0, 1), or a parameter that is not 2-D.

    Notes
    -----
    Source: Kingma & Ba, ICLR 2015, Algorithm 1, without weight decay (as :class:`torch.optim.SparseAdam`);
    the lazy evaluation of the zero-gradient steps is described in the module docstring. Call
    :meth:`flush` before reading the parameter: rows untouched since their last update still owe the
    updates dense Adam would have made.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        if not lr > 0 or not eps > 0:
            raise ValueError(f"lr and eps must be > 0, got {lr} and {eps}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() != 2:
                    raise ValueError(f"CatchUpAdam needs 2-D parameters (rows x width), got shape {tuple(p.shape)}")

    def _state(self, p: torch.Tensor) -> dict:
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            state["last"] = torch.zeros(p.shape[0], dtype=torch.long)
        return state

    @staticmethod
    def _skipped(last: torch.Tensor, upto: int, beta1: float, beta2: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row: (sum of the skipped steps' factors ``r^i c(l + i)``, number of skipped steps ``d``)."""
        skipped = (upto - last).clamp(min=0)
        width = int(min(int(skipped.max()) if skipped.numel() else 0, CATCH_UP_STEPS))
        if width == 0:
            return torch.zeros(last.shape, dtype=torch.float64), skipped
        i = torch.arange(1, width + 1, dtype=torch.float64)
        s = last[:, None].double() + i[None, :]
        factor = (beta1 / math.sqrt(beta2)) ** i * torch.sqrt(1 - beta2 ** s) / (1 - beta1 ** s)
        factor = factor * (i[None, :] <= skipped[:, None].double())
        # Rows never updated (last = 0 with zero moments) get nothing: their moments are zero.
        return factor.sum(dim=1), skipped

    def _catch_up(self, p: torch.Tensor, state: dict, rows: torch.Tensor, upto: int, group: dict) -> None:
        """Apply the zero-gradient updates of ``rows`` from their last update through step ``upto``."""
        beta1, beta2 = group["betas"]
        last = state["last"][rows]
        total, skipped = self._skipped(last, upto, beta1, beta2)
        m, v = state["exp_avg"][rows], state["exp_avg_sq"][rows]
        p.data[rows] -= group["lr"] * total[:, None].to(p.dtype) * m / (v.sqrt() + group["eps"])
        state["exp_avg"][rows] = m * (beta1 ** skipped.double())[:, None].to(p.dtype)
        state["exp_avg_sq"][rows] = v * (beta2 ** skipped.double())[:, None].to(p.dtype)
        state["last"][rows] = upto

    @torch.no_grad()
    def step(self, closure=None):
        """One Adam step of the touched rows, after their skipped zero-gradient steps.

        Raises
        ------
        RuntimeError
            If a gradient is dense.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if not p.grad.is_sparse:
                    raise RuntimeError("CatchUpAdam needs sparse gradients (F.embedding(..., sparse=True))")
                state = self._state(p)
                state["step"] += 1
                t = state["step"]
                grad = p.grad.coalesce()
                rows = grad.indices()[0]
                values = grad.values()
                self._catch_up(p, state, rows, t - 1, group)
                m = state["exp_avg"][rows].mul_(beta1).add_(values, alpha=1 - beta1)
                v = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
                state["exp_avg"][rows], state["exp_avg_sq"][rows] = m, v
                step_size = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                p.data[rows] -= step_size * m / (v.sqrt() + group["eps"] * math.sqrt(1 - beta2 ** t))
                state["last"][rows] = t
        return loss

    @torch.no_grad()
    def flush(self) -> None:
        """Apply every row's pending zero-gradient updates up to the current step (dense Adam's state)."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if not state:
                    continue
                rows = torch.nonzero(state["last"] < state["step"]).flatten()
                for first in range(0, rows.numel(), FLUSH_ROWS):  # bounded memory: FLUSH_ROWS x CATCH_UP_STEPS
                    self._catch_up(p, state, rows[first:first + FLUSH_ROWS], state["step"], group)
