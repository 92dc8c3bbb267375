"""The fusion pass proposes, the backend disposes: a GEMM never falls back to torch because of what follows it.

Before the backend's ``can_fuse`` (commit 4e35687) ``tanh(linear(x)) * 2 + 1`` ran with 0 native nodes: the pass put
the mul and add into the GEMM's epilogue, the lowering refused the group and the GEMM went to torch with it.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import lepton_graph as lg
from lepton_graph.config import config

_GEMMS = ("linear", "matmul", "addmm", "conv2d", "qlinear")


def _no_gemm_in_torch(compiled: object) -> None:
    d = compiled.report().as_dict()  # type: ignore[attr-defined]
    slow = [k for k in d["fallback_ops"] if any(g in k for g in _GEMMS)]
    assert not slow, f"GEMMs ran through torch: {d['fallback_ops']}"


class TanhAffine(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(24, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x)) * 2 + 1


class SwiGLU(nn.Module):
    """Llama / Qwen / Mistral MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Linear(24, 40, bias=False)
        self.up = nn.Linear(24, 40, bias=False)
        self.down = nn.Linear(40, 24, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


class ScaledQuery(nn.Module):
    """BART / OPT / Whisper: ``q_proj(x) * scaling`` before the scores."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(24, 24)
        self.k = nn.Linear(24, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax((self.q(x) * 24**-0.5) @ self.k(x).transpose(-1, -2), dim=-1)


@pytest.mark.parametrize("model_cls", [TanhAffine, SwiGLU, ScaledQuery])
def test_gemm_with_an_epilogue_the_kernel_cannot_take_stays_native(model_cls: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model, x = model_cls().eval(), torch.randn(2, 7, 24)
    compiled = lg.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
    d = compiled.report().as_dict()
    assert d["fallback_nodes"] == 0 and d["native_nodes"] == d["nodes"], d["fallback_ops"]


def test_each_refusal_is_logged_with_the_backends_reason(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    with config.patch(log="fusion"):
        lg.compile(TanhAffine().eval())(torch.randn(3, 24))
    err = capsys.readouterr().err
    assert "backend: mul in a gemm epilogue" in err


_UNARY = ["relu", "tanh", "sigmoid", "gelu", "silu", "neg", "abs"]
_BINARY_SCALAR = ["add", "mul", "sub", "div"]


class Chain(nn.Module):
    """linear, then a random elementwise chain: unary ops, scalar ops, a residual, a per-column vector, a
    full-shape product."""

    def __init__(self, steps: list[tuple[str, float]], bias: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16, bias=bias)
        self.vec = nn.Parameter(torch.randn(16))
        self.steps = steps

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        for op, c in self.steps:
            if op in _UNARY:
                y = getattr(torch, op)(y) if hasattr(torch, op) else getattr(nn.functional, op)(y)
            elif op == "residual":
                y = y + r
            elif op == "vector":
                y = y + self.vec
            elif op == "product":
                y = y * r
            else:
                y = getattr(torch, op)(y, c)
        return y


_step = st.one_of(
    st.tuples(st.sampled_from(_UNARY), st.just(0.0)),
    st.tuples(st.sampled_from(_BINARY_SCALAR), st.sampled_from([0.5, 2.0, -1.5])),
    st.tuples(st.sampled_from(["residual", "vector", "product"]), st.just(0.0)),
)


@given(steps=st.lists(_step, min_size=1, max_size=5), bias=st.booleans(), rows=st.sampled_from([1, 3, 8]))
def test_no_gemm_lands_in_a_fallback_partition(steps: list[tuple[str, float]], bias: bool, rows: int) -> None:
    torch.manual_seed(0)
    model = Chain(steps, bias).eval()
    x, r = torch.randn(rows, 16), torch.randn(rows, 16)
    compiled = lg.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, r), model(x, r), rtol=1e-4, atol=1e-5)
    _no_gemm_in_torch(compiled)


def test_every_refusal_has_a_reason_in_the_pass_stats() -> None:
    # relu and add are one elementwise component, but a path leaves it (cumsum) and comes back: not convex
    c = lg.compile(lambda x: torch.relu(x) + torch.cumsum(torch.relu(x), -1))
    c(torch.randn(4, 6))
    fuse = next(p for p in c.report().latest.regions[0].passes if p["name"] == "fuse")
    assert fuse["stats"]["refused"] == {"not convex": 1}, fuse["stats"]
    assert fuse["changed"] is False  # before: True although every group was rejected


class ConvChain(nn.Module):
    """A conv whose chain mixes what its epilogue takes (bias, relu) with what it does not (scalar add, mul)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x) + r) * 0.5 + 1.0


def test_conv_with_an_epilogue_the_kernel_cannot_take_stays_native() -> None:
    torch.manual_seed(0)
    model, x, r = ConvChain().eval(), torch.randn(2, 4, 9, 9), torch.randn(2, 8, 9, 9)
    compiled = lg.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, r), model(x, r), rtol=1e-4, atol=1e-5)
    _no_gemm_in_torch(compiled)
    assert compiled.report().as_dict()["fallback_nodes"] == 0
