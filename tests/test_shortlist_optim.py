"""CatchUpAdam: dense Adam on sparse row gradients, computed at the touched rows only.

Reference: torch.optim.Adam fed the same gradients made dense (zeros for the untouched rows), an
independent implementation of Kingma & Ba's Algorithm 1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmlc_core.shortlists import optim
from hmlc_core.shortlists.optim import CatchUpAdam


def _sparse_rows(rows: np.ndarray, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.as_tensor(rows)[None, :], values, shape, check_invariants=True)


@pytest.mark.parametrize("touch", [0.05, 0.3, 1.0])
def test_catch_up_adam_equals_dense_adam_fed_zero_gradients_for_untouched_rows(
        touch: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(optim, "FLUSH_ROWS", 7)  # the final flush in several chunks
    rng = np.random.default_rng(4)
    shape = (40, 6)
    start = torch.as_tensor(rng.normal(size=shape), dtype=torch.float64)
    lazy = start.clone().requires_grad_(True)
    dense = start.clone().requires_grad_(True)
    # eps far below sqrt(v): CatchUpAdam moves eps out of the sum over skipped steps (module docstring)
    ours = CatchUpAdam([lazy], lr=0.01, eps=1e-14)
    reference = torch.optim.Adam([dense], lr=0.01, eps=1e-14)
    for step in range(400):
        rows = np.flatnonzero(rng.random(shape[0]) < touch)
        if step % 97 == 0:
            rows = np.arange(shape[0] // 2)  # some steps touch a block, leaving the other half untouched
        values = torch.as_tensor(rng.normal(size=(rows.size, shape[1])) + 0.5, dtype=torch.float64)
        lazy.grad = _sparse_rows(rows, values, shape)
        ours.step()
        dense.grad = lazy.grad.to_dense()
        reference.step()
    ours.flush()
    torch.testing.assert_close(lazy.detach(), dense.detach(), rtol=1e-7, atol=1e-9)


def test_lazy_sparse_adam_is_not_dense_adam() -> None:
    """The difference CatchUpAdam removes: SparseAdam moves rarely touched rows much less than dense Adam."""
    rng = np.random.default_rng(5)
    shape = (40, 6)
    lazy, dense = (torch.zeros(shape, dtype=torch.float64, requires_grad=True) for _ in range(2))
    sparse_adam, reference = torch.optim.SparseAdam([lazy], lr=0.01), torch.optim.Adam([dense], lr=0.01)
    for _ in range(300):
        rows = np.flatnonzero(rng.random(shape[0]) < 0.1)
        lazy.grad = _sparse_rows(rows, torch.ones((rows.size, shape[1]), dtype=torch.float64), shape)
        sparse_adam.step()
        dense.grad = lazy.grad.to_dense()
        reference.step()
    assert float(dense.detach().abs().mean()) > 1.3 * float(lazy.detach().abs().mean())


def test_bad_arguments_and_dense_gradients_are_refused() -> None:
    p = torch.zeros((3, 2), requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        CatchUpAdam([p], lr=0)
    with pytest.raises(ValueError, match="betas"):
        CatchUpAdam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="2-D"):
        CatchUpAdam([torch.zeros(3, requires_grad=True)])
    opt = CatchUpAdam([p])
    p.grad = torch.ones((3, 2))
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
