"""Norm / softmax row programs and reductions (lepton_graph.backends.cpu.norm) against torch eager, every ISA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends import LowerOptions
from lepton_graph.backends.cpu import native, norm
from lepton_graph.backends.cpu.native import _C
from lepton_graph.ir import DType, Graph, Op
from lepton_graph.ir.interpret import interpret

from ..strategies import LAYOUTS, make_tensor
from .isa import ISA_PARAMS, dispatch_at

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")


SETTINGS = settings(max_examples=20, deadline=None)


# leading dims: none, empty (0 rows), one, odd; row lengths around the vector widths
ROWS = st.sampled_from([(), (0,), (1,), (3,), (2, 0), (2, 5), (130,)])
D = st.sampled_from([1, 2, 7, 16, 17, 64, 100, 768, 3000])
LAYOUT = st.sampled_from(LAYOUTS)  # contiguous, transposed, strided, offset


def data(shape: tuple, seed: int, layout: str = "contiguous") -> torch.Tensor:
    return make_tensor(shape, torch.float32, layout, seed, low=-3.5, high=4.5)


def close(got: torch.Tensor, ref: torch.Tensor, tol: float = 1e-5) -> None:
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert torch.equal(got.isnan(), ref.isnan())
    fin = ref.isfinite()
    assert torch.equal(got[~fin & ~ref.isnan()], ref[~fin & ~ref.isnan()])
    if fin.any():
        err = (got[fin].double() - ref[fin].double()).abs().max() / ref[fin].double().abs().max().clamp_min(1e-30)
        assert err.item() <= tol, err.item()


def lower_single(op: Op, xs: list[torch.Tensor], attrs: dict) -> tuple[Graph, object]:
    g = Graph()
    ins = [g.add_input(tuple(x.shape), DType.from_torch(x.dtype)) for x in xs]
    n = g.add_node(op, ins, attrs)
    g.outputs = n.outputs
    k = (norm.lower_row_op if op in norm._ROW_OPS else norm.lower_argmax if op is Op.ARGMAX else norm.lower_reduce)(
        n, g, LowerOptions()
    )
    assert not isinstance(k, str), k
    return g, k


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(
    rows=ROWS,
    d=D,
    seed=st.integers(0, 2**31 - 1),
    affine=st.integers(0, 2),
    layout=LAYOUT,
    op=st.sampled_from([Op.LAYER_NORM, Op.RMS_NORM]),
)
def test_norms_match_torch(isa: str, rows: tuple, d: int, seed: int, affine: int, layout: str, op: Op) -> None:
    x = data((*rows, d), seed, layout)
    xs = [x] + [data((d,), seed + 1 + i) for i in range(affine if op is Op.LAYER_NORM else min(affine, 1))]
    attrs = {"normalized_shape": (d,), "eps": 1e-5 if op is Op.LAYER_NORM else None}
    g, k = lower_single(op, xs, attrs)
    with dispatch_at(isa):
        got = k(*xs)
    close(got, interpret(g, xs)[0])


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(
    rows=ROWS,
    d=D,
    seed=st.integers(0, 2**31 - 1),
    layout=LAYOUT,
    masked=st.booleans(),
    op=st.sampled_from([Op.SOFTMAX, Op.LOG_SOFTMAX]),
)
def test_softmax_matches_torch(isa: str, rows: tuple, d: int, seed: int, layout: str, masked: bool, op: Op) -> None:
    x = data((*rows, d), seed, layout) * 5
    if masked and x.numel():
        m = torch.zeros(x.numel(), dtype=torch.bool)
        m[::3] = True  # attention masks; rows that are all -inf give NaN like torch
        x = x.masked_fill(m.view(x.shape), -float("inf"))
    g, k = lower_single(op, [x], {"dim": -1})
    with dispatch_at(isa):
        got = k(x)
    close(got, interpret(g, [x])[0])


def _norm_body(d: int, with_epilogue: bool) -> Graph:
    """residual add -> layer_norm(w, b) [-> gelu -> * 2]; outputs: the sum and the last value."""
    g = Graph()
    a = g.add_input((4, 9, d), DType.f32)
    r = g.add_input((4, 9, d), DType.f32)
    w = g.add_input((d,), DType.f32)
    b = g.add_input((d,), DType.f32)
    s = g.add_node(Op.ADD, [a, r]).out
    y = g.add_node(Op.LAYER_NORM, [s, w, b], {"normalized_shape": (d,), "eps": 1e-12}).out
    if with_epilogue:
        y = g.add_node(Op.GELU, [y], {"approximate": "none"}).out
        y = g.add_node(Op.MUL, [y], {"scalar": 2.0}).out
    g.outputs = [s, y]
    return g


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("d", [2, 17, 768])
@pytest.mark.parametrize("epi", [False, True])
def test_fused_norm_group(isa: str, d: int, epi: bool) -> None:
    g = _norm_body(d, epi)
    fused = Graph()
    ins = [fused.add_input(v.shape, v.dtype) for v in g.inputs]
    node = fused.add_node(Op.FUSED, ins, {"kind": "norm", "body": g})
    fused.outputs = node.outputs
    k = norm.lower_fused_rows(node, fused, LowerOptions())
    assert not isinstance(k, str), k
    xs = [data((4, 9, d), 1), data((4, 9, d), 2, "transposed"), data((d,), 3), data((d,), 4)]
    with dispatch_at(isa):
        got = k(*xs)
    for a, b in zip(got, interpret(g, xs)):
        close(a, b)


def test_softmax_fused_with_scale_prologue() -> None:
    g = Graph()
    x = g.add_input((2, 3, 50), DType.f32)
    m = g.add_input((50,), DType.f32)
    s = g.add_node(Op.MUL, [x], {"scalar": 0.125}).out
    t = g.add_node(Op.ADD, [s, m]).out
    y = g.add_node(Op.SOFTMAX, [t], {"dim": -1}).out
    g.outputs = [y]
    k = norm._lower_rows(g.nodes, g.inputs, g.outputs)
    assert not isinstance(k, str), k
    xs = [data((2, 3, 50), 5), data((50,), 6)]
    close(k(*xs), interpret(g, xs)[0])


def test_softmax_other_dim_is_declined() -> None:
    g = Graph()
    x = g.add_input((4, 5), DType.f32)
    n = g.add_node(Op.SOFTMAX, [x], {"dim": 0})
    g.outputs = n.outputs
    assert isinstance(norm.lower_row_op(n, g, LowerOptions()), str)


REDUCE_CASES = [
    ((5, 7, 9), (2,)),
    ((5, 7, 9), (1,)),
    ((5, 7, 9), (0,)),
    ((5, 7, 9), (1, 2)),
    ((5, 7, 9), None),
    ((3, 1000), (-1,)),
    ((1000, 3), (0,)),
    ((4, 0, 3), (2,)),
    ((4, 0, 3), (0,)),
    ((2, 3, 4, 5), (2, 3)),
    ((), None),
    ((64, 4, 7, 7), (2, 3)),
]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("op", [Op.SUM, Op.MEAN, Op.AMAX, Op.AMIN])
@pytest.mark.parametrize("case", REDUCE_CASES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_match_torch(isa: str, op: Op, case: tuple, keepdim: bool) -> None:
    shape, dims = case
    x = data(shape, 7, "transposed")
    if x.numel() > 3:
        m = torch.zeros(x.numel(), dtype=torch.bool)
        m[3] = True
        x = x.masked_fill(m.view(x.shape), float("nan"))
    attrs = {"dims": dims, "keepdim": keepdim}
    reduced = range(len(shape)) if dims is None else [d % len(shape) for d in dims]
    if op in (Op.AMAX, Op.AMIN) and any(shape[d] == 0 for d in reduced):
        return  # torch raises (already when inferring the node's shape)
    g = Graph()
    n = g.add_node(op, [g.add_input(shape, DType.f32)], attrs)
    g.outputs = n.outputs
    k = norm.lower_reduce(n, g, LowerOptions())
    assert not isinstance(k, str), k
    with dispatch_at(isa):
        got = k(x)
    close(got, interpret(g, [x])[0])


@pytest.mark.parametrize("shape,dim", [((5, 7, 9), 2), ((5, 7, 9), 1), ((5, 7, 9), None), ((1, 50257), -1), ((3,), 0)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_matches_torch(shape: tuple, dim: int | None, keepdim: bool) -> None:
    x = data(shape, 9).round()  # ties: the first maximum wins
    g, k = lower_single(Op.ARGMAX, [x], {"dim": dim, "keepdim": keepdim})
    assert torch.equal(k(x), interpret(g, [x])[0])
    y = x.clone()
    y.view(-1)[1] = float("nan")
    assert torch.equal(k(y), interpret(g, [y])[0])


def test_reduce_bad_arguments() -> None:
    x = torch.randn(6)
    y = torch.empty(2)
    with pytest.raises(ValueError):
        _C.reduce_f32("prod", x.data_ptr(), y.data_ptr(), 2, 3, 1)
    with pytest.raises(ValueError):
        _C.reduce_f32("sum", x.data_ptr(), y.data_ptr(), -2, 3, 1)
    with pytest.raises(ValueError):
        _C.reduce_f32("amax", x.data_ptr(), y.data_ptr(), 2, 0, 1)
    with pytest.raises(ValueError):
        _C.reduce_f32("sum", x.data_ptr() + 2, y.data_ptr(), 2, 3, 1)
    with pytest.raises(ValueError):
        _C.argmax_f32(x.data_ptr(), y.data_ptr(), 2, 0, 1)


def test_compiled_model_runs_norms_natively() -> None:
    import lepton_graph

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln = torch.nn.LayerNorm(48)
            self.rms = torch.nn.RMSNorm(48)

        def forward(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
            h = self.ln(x + r)
            p = torch.softmax(h * 0.5, dim=-1)
            return self.rms(p + h).mean(dim=-1) + h.sum(dim=(1, 2)).unsqueeze(-1)

    m = Block().eval()
    x, r = torch.randn(2, 5, 48), torch.randn(2, 5, 48)
    c = lepton_graph.compile(m)
    with torch.no_grad():
        got, ref = c(x, r), m(x, r)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)
    d = c.report().as_dict()
    assert d["fallback_nodes"] == 0 and d["native_nodes"] >= 3, d
