"""lepton_graph.kernels.softmax against torch.softmax: any rank and dim, odd and empty sizes, strided inputs,
the one-block and the long-row (online) paths, -inf entries, and bad arguments."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from lepton_graph.kernels import softmax as sm

from tests.strategies import dims_of, shapes, tensors

TOL = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def check(x: torch.Tensor, dim: int) -> None:
    got = sm.softmax(x, dim)
    want = torch.softmax(x.float(), dim).to(x.dtype)
    assert got.shape == x.shape and got.dtype == x.dtype and got.device == x.device
    torch.testing.assert_close(got.float(), want.float(), atol=TOL[x.dtype], rtol=TOL[x.dtype], equal_nan=True)


@given(data=st.data(), shape=shapes(min_rank=1, max_rank=4, max_side=9), dtype=st.sampled_from(sm.DTYPES))
def test_softmax_matches_torch(device: str, data: st.DataObject, shape: tuple, dtype: torch.dtype) -> None:
    x = data.draw(tensors(shape, dtype)).to(device)
    check(x, data.draw(dims_of(len(shape))))


@pytest.mark.parametrize("n_cols", [1, 63, sm.MAX_BLOCK, sm.MAX_BLOCK + 1, 3 * sm.MAX_BLOCK - 5])
def test_long_rows_take_the_online_path(device: str, n_cols: int) -> None:
    x = torch.randn(3, n_cols, generator=torch.Generator().manual_seed(n_cols)) * 8
    x[1, n_cols // 2] = 60.0  # one dominant entry late in the row: the running max must rescale the sum
    check(x.to(device), -1)
    check(x.t().contiguous().t().to(device), -1)  # column-major rows


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's -inf - -inf
def test_minus_inf_entries_and_rows(device: str) -> None:
    for n_cols in (7, sm.MAX_BLOCK + 3):
        x = torch.randn(4, n_cols)
        x[0, : n_cols // 2] = -float("inf")  # a masked-out prefix
        x[2] = -float("inf")  # a fully masked row: NaN in torch too
        x[3, 1:] = -float("inf")
        check(x.to(device), -1)


def test_bad_arguments_are_named(device: str) -> None:
    with pytest.raises(ValueError, match="dtype torch.int64"):
        sm.softmax(torch.ones(3, dtype=torch.int64, device=device))
    with pytest.raises(ValueError, match="0-d"):
        sm.softmax(torch.tensor(1.0, device=device))
    with pytest.raises(ValueError, match="dim 2 is out of range"):
        sm.softmax(torch.ones(2, 2, device=device), dim=2)
    with pytest.raises(TypeError, match="torch.Tensor"):
        sm.softmax([1.0, 2.0])  # type: ignore[arg-type]


def test_cpu_tensor_without_the_interpreter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sm.triton.knobs.runtime, "interpret", False)
    with pytest.raises(ValueError, match="on cpu; Triton kernels need a CUDA tensor"):
        sm.softmax(torch.ones(2, 3))
