"""A training step whose backward pass applies Adam: streaming linear layers compiled with numba.

At C-HMCNN's batch of 4 a training step of the ensemble moves far more memory than it
computes: every weight is read by the forward pass and again by the backward pass, its
gradient is written, and Adam then reads and writes weights, gradient and both moments.
BLAS kernels stream a 4-row matmul at a third of the machine's memory bandwidth
(docs/performance.md). :class:`FusedAdamEnsemble` runs an :class:`~hmlc_core.model.HMCEnsemble`
with two kernels per linear layer instead:

- **forward**: ``y = b + x @ W`` row by row of ``W``, skipping the rows whose input is zero
  in every sample (after ReLU and dropout 0.7, about half of them at batch 4), which leaves
  the sum unchanged;
- **backward + Adam**: one sweep over ``W`` that, for each row, computes the input gradient
  ``dx = dy @ W.T`` from the old weights, the weight gradient ``x.T @ dy`` (never stored as
  a matrix) and Adam's update of the row and of both moments, then moves on.

The update is Adam (Kingma & Ba 2015, Algorithm 1) with L2 weight decay added to the
gradient, as ``torch.optim.Adam`` computes it and as C-HMCNN and Xu et al. 2026 train
(docs/method.md, *Defaults and why*: lr 1e-4, weight decay 1e-5, default betas and eps). It is the same
arithmetic in float32; only the order of the sums inside the matmuls differs from BLAS,
so parameters agree with ``torch.optim.Adam`` to float32 rounding (``tests/test_fused.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numba import njit

from hmlc_core.model import HMCEnsemble

__all__ = ["FusedAdamEnsemble", "AdamLayerState"]

# error_model="numpy": no ZeroDivisionError checks, which would stop LLVM from vectorising the loops.
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_JIT)
def _forward_kernel(x, w, b, out):  # pragma: no cover - compiled by numba
    copies, rows, fan_in = w.shape[0], x.shape[1], w.shape[1]
    for h in range(out.shape[0]):
        hw = h if copies > 1 else 0
        hx = h if x.shape[0] > 1 else 0
        fan_out = out.shape[2]
        for r in range(rows):
            for n in range(fan_out):
                out[h, r, n] = 0.0
        for k in range(fan_in):
            for r in range(rows):
                xv = x[hx, r, k]
                if xv != 0.0:
                    for n in range(fan_out):
                        out[h, r, n] += xv * w[hw, k, n]
        for r in range(rows):
            for n in range(fan_out):
                out[h, r, n] += b[hw, 0, n]


@njit(fastmath={"reassoc"}, **_JIT)
def _dot(a, c):  # pragma: no cover - compiled by numba
    s = np.float32(0.0)
    for i in range(a.shape[0]):
        s += a[i] * c[i]
    return s


@njit(**_JIT)
def _adam_row(p, g, m, v, step_size, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay,
              bias_correction2_sqrt):  # pragma: no cover - compiled by numba
    for n in range(p.shape[0]):
        gn = g[n] + weight_decay * p[n]
        mn = m[n] + one_minus_beta1 * (gn - m[n])
        vn = beta2 * v[n] + one_minus_beta2 * gn * gn
        m[n] = mn
        v[n] = vn
        p[n] = p[n] - step_size * (mn / (np.sqrt(vn) / bias_correction2_sqrt + eps))


@njit(**_JIT)
def _backward_adam_kernel(x, dy, w, b, mw, vw, mb, vb, dx, need_dx, step_size, one_minus_beta1, beta2,
                          one_minus_beta2, eps, weight_decay,
                          bias_correction2_sqrt):  # pragma: no cover - compiled by numba
    rows, fan_in, fan_out = x.shape[1], w.shape[1], w.shape[2]
    g = np.empty(fan_out, dtype=np.float32)
    for h in range(w.shape[0]):
        hx = h if x.shape[0] > 1 else 0
        for k in range(fan_in):
            row = w[h, k]
            if need_dx:
                for r in range(rows):
                    dx[hx, r, k] += _dot(dy[h, r], row)
            for n in range(fan_out):
                g[n] = 0.0
            for r in range(rows):
                xv = x[hx, r, k]
                if xv != 0.0:
                    for n in range(fan_out):
                        g[n] += xv * dy[h, r, n]
            _adam_row(row, g, mw[h, k], vw[h, k], step_size, one_minus_beta1, beta2, one_minus_beta2, eps,
                      weight_decay, bias_correction2_sqrt)
        for n in range(fan_out):
            g[n] = 0.0
        for r in range(rows):
            for n in range(fan_out):
                g[n] += dy[h, r, n]
        _adam_row(b[h, 0], g, mb[h, 0], vb[h, 0], step_size, one_minus_beta1, beta2, one_minus_beta2, eps,
                  weight_decay, bias_correction2_sqrt)


class AdamLayerState:
    """Adam's state for one linear layer of the ensemble: both moments and the step count.

    Parameters
    ----------
    weight : torch.Tensor, shape (copies, fan_in, fan_out), float32
        The layer's weight parameter (updated in place by the backward kernel).
    bias : torch.Tensor, shape (copies, 1, fan_out), float32

    Attributes
    ----------
    exp_avg, exp_avg_sq : torch.Tensor
        First and second moments of the weight, same shape as it, zeros at first.
    exp_avg_bias, exp_avg_sq_bias : torch.Tensor
        The same for the bias.
    step : int
        Updates applied so far (Adam's ``t``).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        for name, t in (("weight", weight), ("bias", bias)):
            if t.dtype != torch.float32 or not t.is_contiguous() or t.device.type != "cpu":
                raise TypeError(f"the fused kernels need a contiguous float32 CPU {name}, got {t.dtype} "
                                f"on {t.device} (contiguous: {t.is_contiguous()})")
        self.weight, self.bias = weight, bias
        self.exp_avg = torch.zeros_like(weight)
        self.exp_avg_sq = torch.zeros_like(weight)
        self.exp_avg_bias = torch.zeros_like(bias)
        self.exp_avg_sq_bias = torch.zeros_like(bias)
        self.step = 0


class _FusedAdamLinear(torch.autograd.Function):
    """``b + x @ W`` for stacked layers; its backward returns ``dx`` and applies Adam to ``W`` and ``b``.

    The bias parameter is an input (its gradient is returned as None) so that autograd
    calls the backward pass even for layer 0, whose input needs no gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor, state: AdamLayerState,  # type: ignore[override]
                hyper: tuple[float, float, float, float, float]) -> torch.Tensor:
        x = x.contiguous()
        w = state.weight.detach()
        out = torch.empty(max(x.shape[0], w.shape[0]), x.shape[1], w.shape[2])
        _forward_kernel(x.numpy(), w.numpy(), bias.detach().numpy(), out.numpy())
        ctx.save_for_backward(x)
        ctx.state, ctx.hyper = state, hyper
        return out

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        state: AdamLayerState = ctx.state
        lr, beta1, beta2, eps, weight_decay = ctx.hyper
        need_dx = bool(ctx.needs_input_grad[0])
        dy = dy.contiguous()
        dx = torch.zeros_like(x) if need_dx else torch.zeros(1, 1, 1)
        state.step += 1
        bias_correction1 = 1.0 - beta1 ** state.step
        bias_correction2 = 1.0 - beta2 ** state.step
        f32 = np.float32
        _backward_adam_kernel(
            x.numpy(), dy.numpy(), state.weight.detach().numpy(), state.bias.detach().numpy(),
            state.exp_avg.numpy(), state.exp_avg_sq.numpy(), state.exp_avg_bias.numpy(),
            state.exp_avg_sq_bias.numpy(), dx.numpy(), need_dx, f32(lr / bias_correction1), f32(1.0 - beta1),
            f32(beta2), f32(1.0 - beta2), f32(eps), f32(weight_decay), f32(math.sqrt(bias_correction2)))
        return (dx if need_dx else None), None, None, None


class FusedAdamEnsemble:
    """Train an :class:`~hmlc_core.model.HMCEnsemble` with Adam applied inside the backward pass.

    Calling the object runs the ensemble's training forward pass (same layers,
    ReLU and dropout as ``model``, the linear layers through the streaming
    kernels); ``loss.backward()`` on a loss built from its output then updates
    every weight and bias of ``model`` in place, layer by layer, as one step of
    ``torch.optim.Adam(model.parameters(), lr, betas, eps, weight_decay)`` would.
    No ``.grad`` is stored and there is no separate ``optimizer.step()``. Call
    ``backward`` exactly once per forward pass. Every layer keeps its own step
    count; a layer that gets no gradient is not updated (as torch's Adam skips a
    parameter whose gradient is None). Kernels are compiled by numba on first
    use (a few seconds, then cached on disk) and run on one thread.

    Parameters
    ----------
    model : HMCEnsemble
        Any ensemble kind (per-member, shared first layer, mc-dropout).
    lr : float
        Learning rate, > 0.
    weight_decay : float, default 0.0
        L2 penalty added to the gradient (torch's Adam), >= 0.
    betas : tuple of float, default (0.9, 0.999)
    eps : float, default 1e-8

    Raises
    ------
    ValueError
        On a non-positive learning rate, a negative weight decay or betas outside [0, 1).
    TypeError
        If the model's parameters are not contiguous float32 CPU tensors.

    Notes
    -----
    Source of the update: Adam (Kingma & Ba 2015, Algorithm 1) with L2 weight
    decay, the optimizer of C-HMCNN (docs/method.md, *Defaults and why*).
    """

    def __init__(self, model: HMCEnsemble, lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        if lr <= 0 or weight_decay < 0 or eps < 0 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"Adam needs lr > 0, weight_decay >= 0, eps >= 0 and betas in [0, 1); got lr={lr}, "
                             f"weight_decay={weight_decay}, eps={eps}, betas={betas}")
        self.model = model
        self.hyper = (float(lr), float(betas[0]), float(betas[1]), float(eps), float(weight_decay))
        self.layers = [AdamLayerState(w.data, b.data) for w, b in zip(model.weights, model.biases)]

    def state_dict(self) -> dict[str, Any]:
        """Adam's state of every layer, for a training checkpoint (:func:`hmlc_core.train.train`).

        Returns
        -------
        dict
            ``layers``: one dict per linear layer with ``exp_avg``, ``exp_avg_sq``, ``exp_avg_bias``,
            ``exp_avg_sq_bias`` (float32 tensors, clones) and ``step`` (int); ``hyper``: (lr, beta1, beta2,
            eps, weight_decay).
        """
        return {"hyper": list(self.hyper),
                "layers": [{"exp_avg": s.exp_avg.clone(), "exp_avg_sq": s.exp_avg_sq.clone(),
                            "exp_avg_bias": s.exp_avg_bias.clone(), "exp_avg_sq_bias": s.exp_avg_sq_bias.clone(),
                            "step": int(s.step)} for s in self.layers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s moments and step counts in place (the kernels keep their tensors).

        Raises
        ------
        ValueError
            If the layer count, a moment's shape or the hyper-parameters differ from this optimizer's.
        """
        layers = state.get("layers")
        if not isinstance(layers, list) or len(layers) != len(self.layers):
            raise ValueError(f"the optimizer state has {len(layers) if isinstance(layers, list) else 'no'} layers, "
                             f"this ensemble {len(self.layers)}")
        if [float(v) for v in state.get("hyper", ())] != list(self.hyper):
            raise ValueError(f"the optimizer state was made with (lr, beta1, beta2, eps, weight_decay) = "
                             f"{state.get('hyper')}, this optimizer has {list(self.hyper)}")
        for k, (target, saved) in enumerate(zip(self.layers, layers)):
            for name in ("exp_avg", "exp_avg_sq", "exp_avg_bias", "exp_avg_sq_bias"):
                mine, theirs = getattr(target, name), saved[name]
                if tuple(theirs.shape) != tuple(mine.shape):
                    raise ValueError(f"layer {k}: {name} has shape {tuple(theirs.shape)}, this ensemble "
                                     f"{tuple(mine.shape)}")
                mine.copy_(theirs)
            target.step = int(saved["step"])

    def affine(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Layer ``layer``'s ``b + h @ W`` through the fused kernels.

        Arguments, shapes and result as :meth:`HMCEnsemble.affine`; the result's
        backward pass updates the layer's weight and bias with Adam.

        Raises
        ------
        TypeError
            If ``h`` is not float32.
        """
        if h.dtype != torch.float32:
            raise TypeError(f"the fused kernels need float32 inputs, got {h.dtype}")
        state = self.layers[layer]
        x = h.unsqueeze(0) if h.dim() == 2 else h
        copies = state.weight.shape[0]
        if copies == 1 and x.shape[0] > 1:
            members, rows = x.shape[0], x.shape[1]
            flat = _FusedAdamLinear.apply(x.reshape(1, members * rows, x.shape[2]), self.model.biases[layer],
                                          state, self.hyper)
            return flat.reshape(members, rows, -1)
        return _FusedAdamLinear.apply(x, self.model.biases[layer], state, self.hyper)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Member logits of the training forward pass.

        Parameters
        ----------
        x : torch.Tensor, shape (B, D), float32

        Returns
        -------
        torch.Tensor, shape (H, B, C), float32
        """
        return self.model.logits(x, affine=self.affine)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Raw member probabilities ``sigmoid(logits)``, shape (H, B, C), in (0, 1) (as ``model(x)``)."""
        return torch.sigmoid(self.logits(x))
