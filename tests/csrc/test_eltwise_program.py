"""Elementwise programs (csrc/kernels/program.h via lepton_graph.backends.cpu.eltwise) against torch eager.

Every ISA variant the machine has runs in-process (set_max_isa). Shapes include size 0 and 1 dims, odd sizes,
numpy broadcasting and non-contiguous (transposed, strided, expanded) inputs; data includes NaN/inf/-0/denormals.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends import LowerOptions
from lepton_graph.backends.cpu import eltwise, native
from lepton_graph.backends.cpu.native import _C
from lepton_graph.ir import DType, Graph, Op
from lepton_graph.ir.interpret import interpret

from ..strategies import make_tensor
from .isa import ISA_PARAMS, dispatch_at

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")


SETTINGS = settings(max_examples=25, deadline=None)


DIMS = st.sampled_from([0, 1, 1, 2, 3, 5, 7, 16, 17, 33, 100, 1030])


@st.composite
def shapes(draw: st.DrawFn, max_rank: int = 4, max_numel: int = 40_000) -> tuple[int, ...]:
    rank = draw(st.integers(0, max_rank))
    shape = tuple(draw(DIMS) for _ in range(rank))
    while math.prod(shape) > max_numel:
        shape = shape[1:]
    return shape


@st.composite
def broadcast_of(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``shape``: leading dims dropped, some dims set to 1."""
    drop = draw(st.integers(0, len(shape)))
    return tuple(1 if draw(st.booleans()) else d for d in shape[drop:])


def tensor(
    shape: tuple[int, ...], seed: int, layout: int, dtype: torch.dtype = torch.float32, specials: bool = True
) -> torch.Tensor:
    """Random data in one of several layouts: 0 contiguous, 1 transposed, 2 strided slice, 3 expanded, 4 a view at
    an offset into its storage (tests/strategies.py)."""
    g = torch.Generator().manual_seed(seed)

    def base(*size: int) -> torch.Tensor:  # scaled before the view is taken: x * 3 afterwards would be contiguous
        return torch.randn(size, generator=g) * 3

    if layout == 4:
        x = make_tensor(shape, torch.float32, "offset", seed, low=-9, high=9)
    elif layout == 1 and len(shape) >= 2:
        x = base(*shape[::-1]).permute(*reversed(range(len(shape))))
    elif layout == 2 and len(shape) >= 1:
        x = base(*shape[:-1], shape[-1] * 2)[..., ::2]
    elif layout == 3 and len(shape) >= 1 and shape[0] > 1:
        x = base(1, *shape[1:]).expand(shape)
    else:
        x = base(*shape)
    if specials and x.numel() and x.is_contiguous():
        flat = x.view(-1)
        sp = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e-40, 100.0, -100.0])
        idx = torch.randint(0, flat.numel(), (min(flat.numel(), 6),), generator=g)
        flat[idx] = sp[torch.randint(0, len(sp), (len(idx),), generator=g)]
    if dtype == torch.bool:
        return x > 0
    if not dtype.is_floating_point:
        return (x.nan_to_num(0, 0, 0) * 10).clamp(-1000, 1000).to(dtype)
    return x.to(dtype)


def assert_matches(got: torch.Tensor, ref: torch.Tensor, tol: float = 2e-6) -> None:
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, ref.shape, got.dtype, ref.dtype)
    if not ref.is_floating_point():
        assert torch.equal(got, ref)
        return
    g, r = got.double(), ref.double()
    assert torch.equal(g.isnan(), r.isnan()), "NaN positions differ"
    fin = r.isfinite()
    assert torch.equal(g[~fin & ~r.isnan()], r[~fin & ~r.isnan()]), "inf values differ"
    assert torch.equal(fin, g.isfinite()), "finite positions differ"
    if fin.any():
        scale = r[fin].abs().max().clamp_min(1e-30)
        err = ((g[fin] - r[fin]).abs().max() / scale).item()
        lowp = ref.dtype in (torch.bfloat16, torch.float16)
        assert err <= (1e-2 if lowp else tol), f"relative error {err:.3e}"


def assert_bits_equal(got: torch.Tensor, ref: torch.Tensor) -> None:
    """Rounding must be bit-exact; NaN payloads are not (torch's own vector and scalar paths differ)."""
    assert torch.equal(got.isnan(), ref.isnan())
    keep = ~ref.isnan()
    assert torch.equal(got[keep].view(torch.int16), ref[keep].view(torch.int16))


def run_single(op: Op, xs: list[torch.Tensor], attrs: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g = Graph()
    ins = [g.add_input(tuple(x.shape), DType.from_torch(x.dtype)) for x in xs]
    n = g.add_node(op, ins, attrs or {})
    g.outputs = n.outputs
    k = eltwise.lower_elementwise(n, g, LowerOptions())
    assert not isinstance(k, str), k
    return k(*xs), interpret(g, xs)[0]


UNARY = [
    Op.NEG,
    Op.ABS,
    Op.EXP,
    Op.LOG,
    Op.SQRT,
    Op.RSQRT,
    Op.ERF,
    Op.TANH,
    Op.SIGMOID,
    Op.RELU,
    Op.SILU,
    Op.SIN,
    Op.COS,
    Op.RECIPROCAL,
    Op.LOGICAL_NOT,
]
BINARY = [
    Op.ADD,
    Op.SUB,
    Op.MUL,
    Op.DIV,
    Op.POW,
    Op.MAXIMUM,
    Op.MINIMUM,
    Op.EQ,
    Op.NE,
    Op.LT,
    Op.LE,
    Op.GT,
    Op.GE,
    Op.LOGICAL_AND,
    Op.LOGICAL_OR,
]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(
    op=st.sampled_from(UNARY + [Op.GELU, Op.CLAMP]),
    shape=shapes(),
    layout=st.integers(0, 4),
    seed=st.integers(0, 2**31 - 1),
    approx=st.sampled_from(["none", "tanh"]),
)
def test_unary_matches_torch(isa: str, op: Op, shape: tuple, layout: int, seed: int, approx: str) -> None:
    x = tensor(shape, seed, layout)
    if op is Op.GELU:  # torch's own gelu(inf) is inf for 0-d tensors and NaN otherwise: leave infinities out
        x = x.nan_to_num(float("nan"), 50.0, -50.0)
    attrs = {"approximate": approx} if op is Op.GELU else {"min": -1.5, "max": 2.0} if op is Op.CLAMP else {}
    with dispatch_at(isa):
        got, ref = run_single(op, [x], attrs)
    assert_matches(got, ref, tol=5e-6 if op is Op.ERF else 2e-6)


@st.composite
def binary_case(draw: st.DrawFn) -> tuple:
    out = draw(shapes(max_rank=3))
    sa, sb = draw(broadcast_of(out)), draw(broadcast_of(out))
    if draw(st.booleans()):
        sa = out
    return sa, sb


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(
    op=st.sampled_from(BINARY),
    case=binary_case(),
    la=st.integers(0, 3),
    lb=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
    scalar=st.sampled_from([None, 2.0, -0.5, 3, 0.0]),
    reverse=st.booleans(),
)
def test_binary_matches_torch(
    isa: str, op: Op, case: tuple, la: int, lb: int, seed: int, scalar: float | None, reverse: bool
) -> None:
    sa, sb = case
    a = tensor(sa, seed, la)
    if op is Op.POW:
        a = a.abs()  # negative ** fraction is NaN either way; keep the comparison informative
    if scalar is None:
        xs, attrs = [a, tensor(sb, seed + 1, lb)], {}
    else:
        xs, attrs = [a], {"scalar": scalar, "reverse": reverse}
    with dispatch_at(isa):
        got, ref = run_single(op, xs, attrs)
    assert_matches(got, ref, tol=1e-5 if op is Op.POW else 2e-6)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(case=binary_case(), seed=st.integers(0, 2**31 - 1), mode=st.integers(0, 3))
def test_where_matches_torch(isa: str, case: tuple, seed: int, mode: int) -> None:
    sa, sb = case
    cond = tensor(sa, seed, 0, torch.bool)
    xs = [cond]
    attrs = {}
    if mode & 1:
        attrs["scalar_a"] = -1e9
    else:
        xs.append(tensor(sb, seed + 1, 1))
    if mode & 2:
        attrs["scalar_b"] = 0.5
    else:
        xs.append(tensor(sa, seed + 2, 2))
    with dispatch_at(isa):
        got, ref = run_single(Op.WHERE, xs, attrs)
    assert_matches(got, ref)


CASTS = [
    (torch.float32, DType.bf16),
    (torch.float32, DType.f16),
    (torch.float32, DType.bool),
    (torch.float32, DType.i64),
    (torch.float32, DType.i32),
    (torch.int64, DType.f32),
    (torch.int32, DType.f32),
    (torch.bool, DType.f32),
    (torch.bfloat16, DType.f32),
    (torch.float16, DType.f32),
    (torch.int64, DType.bool),
    (torch.bfloat16, DType.f16),
]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(cast=st.sampled_from(CASTS), shape=shapes(), layout=st.integers(0, 4), seed=st.integers(0, 2**31 - 1))
def test_cast_matches_torch(isa: str, cast: tuple, shape: tuple, layout: int, seed: int) -> None:
    src, dst = cast
    x = tensor(shape, seed, layout, src, specials=dst not in (DType.i64, DType.i32))
    with dispatch_at(isa):
        got, ref = run_single(Op.CAST, [x], {"dtype": dst})
    if got.dtype in (torch.bfloat16, torch.float16):
        assert_bits_equal(got, ref)
    else:
        assert_matches(got, ref)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(shape=shapes(), seed=st.integers(0, 2**31 - 1), dt=st.sampled_from([torch.bfloat16, torch.float16]))
def test_low_precision_binary_rounds_like_torch(isa: str, shape: tuple, seed: int, dt: torch.dtype) -> None:
    a, b = tensor(shape, seed, 0, dt), tensor(shape, seed + 1, 1, dt)
    with dispatch_at(isa):
        got, ref = run_single(Op.MUL, [a, b])
    assert_bits_equal(got, ref)


def _fused_graph(shape: tuple, bshape: tuple) -> Graph:
    """y = gelu(x * w + b) ; z = where(y > 0.1, y, -x) ; also exposes the inner sum (multi-output)."""
    g = Graph()
    x = g.add_input(shape, DType.f32)
    w = g.add_input(bshape, DType.f32)
    b = g.add_input(bshape, DType.f32)
    t = g.add_node(Op.MUL, [x, w]).out
    s = g.add_node(Op.ADD, [t, b]).out
    y = g.add_node(Op.GELU, [s], {"approximate": "tanh"}).out
    c = g.add_node(Op.GT, [y], {"scalar": 0.1}).out
    nx = g.add_node(Op.NEG, [x]).out
    z = g.add_node(Op.WHERE, [c, y, nx]).out
    p = g.add_node(Op.POW, [z], {"scalar": 2}).out
    q = g.add_node(Op.SUB, [p], {"scalar": 1.0, "reverse": True}).out
    cb = g.add_node(Op.CAST, [c], {"dtype": DType.f32}).out
    r = g.add_node(Op.MUL, [q, cb]).out
    g.outputs = [s, r, c]
    return g


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(out=shapes(max_rank=3), seed=st.integers(0, 2**31 - 1), lx=st.integers(0, 3))
def test_fused_program_matches_op_by_op(isa: str, out: tuple, seed: int, lx: int) -> None:
    bshape = out[-1:] if out else ()
    g = _fused_graph(out, bshape)
    built = eltwise.build_program(g.nodes, g.inputs, g.outputs)
    assert not isinstance(built, str), built
    k = eltwise.program_kernel(built, g.outputs)
    xs = [tensor(out, seed, lx), tensor(bshape, seed + 1, 0), tensor(bshape, seed + 2, 0)]
    with dispatch_at(isa):
        got = k(*xs)
    ref = interpret(g, xs)
    for a, b in zip(got, ref):
        assert_matches(a, b, tol=1e-5)


def test_register_allocation_reuses_registers() -> None:
    g = Graph()
    x = g.add_input((8,), DType.f32)
    v = x
    for _ in range(30):
        v = g.add_node(Op.TANH, [v]).out
    g.outputs = [v]
    built = eltwise.build_program(g.nodes, g.inputs, g.outputs)
    assert not isinstance(built, str) and built.nregs <= 2


def test_integer_arithmetic_is_declined() -> None:
    g = Graph()
    x = g.add_input((4,), DType.i64)
    n = g.add_node(Op.ADD, [x], {"scalar": 1})
    g.outputs = n.outputs
    assert isinstance(eltwise.lower_elementwise(n, g, LowerOptions()), str)


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_huge_outputs_stream_past_the_caches(isa: str) -> None:
    """Outputs >= 16 MB take the non-temporal store path when it is switched on (bound results and explicit stores,
    odd offsets)."""
    _C.set_program_stream_bytes(16 << 20)
    try:
        _run_huge_outputs(isa)
    finally:
        _C.set_program_stream_bytes(0)


def _run_huge_outputs(isa: str) -> None:
    g = Graph()
    x = g.add_input((5, 1 << 20), DType.f32)
    b = g.add_input((1 << 20,), DType.f32)
    s = g.add_node(Op.ADD, [x, b]).out
    r = g.add_node(Op.RELU, [s]).out
    g.outputs = [s, r, x]  # x: an input that is also an output (an explicit store)
    built = eltwise.build_program(g.nodes, g.inputs, g.outputs)
    k = eltwise.program_kernel(built, g.outputs)
    xs = [torch.randn(5, (1 << 20) + 3)[:, 3:], torch.randn(1 << 20)]
    with dispatch_at(isa):
        got = k(*xs)
    for a, e in zip(got, interpret(g, xs)):
        assert torch.equal(a, e)


def test_large_tensor_multithreaded() -> None:
    a = torch.randn(3, 1 << 18)
    b = torch.randn(1 << 18)
    got, ref = run_single(Op.ADD, [a, b])
    assert torch.equal(got, ref)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"code": [0, 0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 5, 0, 0, -1, 0]},  # store reads an unwritten register
        {"code": [9, 0, 0, 0, 0, 0, -1, 0]},  # unknown op
        {"code": [0, 0, 0, 3, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, -1, 0]},  # loads a missing input
        {"code": [0, 0, 0, 0, 0, 0, -1, 0]},  # never writes the output
        {"code": [0, 0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, -1, 0], "nregs": 0},
        {"code": [0, 0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, -1, 0], "in_dtypes": ["complex64"]},
        {"code": [0, 0, 0, 0, 0, 0, -1, 0, 5, 0, 0, 0, -1, -1, 0, 0]},  # row op outside row mode
    ],
)
def test_bad_programs_raise_value_error(kwargs: dict) -> None:
    args = {"code": [], "consts": [0.0], "nregs": 2, "in_dtypes": ["float32"], "out_dtypes": ["float32"]}
    args.update(kwargs)
    with pytest.raises(ValueError):
        _C.Program(args["code"], args["consts"], args["nregs"], args["in_dtypes"], args["out_dtypes"], False)


def test_bad_run_arguments_raise_value_error() -> None:
    p = _C.Program([0, 0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, -1, 0], [], 1, ["float32"], ["float32"], False)
    x, y = torch.randn(4, 3), torch.empty(4, 3)
    with pytest.raises(ValueError):  # wrong number of inputs
        p.run([], [], [], [4, 3], [y.data_ptr()])
    with pytest.raises(ValueError):  # does not broadcast
        p.run([x.data_ptr()], [[4, 2]], [[2, 1]], [4, 3], [y.data_ptr()])
    with pytest.raises(ValueError):  # misaligned
        p.run([x.data_ptr() + 1], [[4, 3]], [[3, 1]], [4, 3], [y.data_ptr()])
    with pytest.raises(ValueError):  # null output
        p.run([x.data_ptr()], [[4, 3]], [[3, 1]], [4, 3], [0])
    with pytest.raises(ValueError):  # negative size
        p.run([x.data_ptr()], [[4, 3]], [[3, 1]], [-4, 3], [y.data_ptr()])


# -- transcendentals on a dense grid ---------------------------------------------------------------------------------

GRID_OPS = [
    (Op.EXP, {}),
    (Op.TANH, {}),
    (Op.ERF, {}),
    (Op.SIGMOID, {}),
    (Op.SILU, {}),
    (Op.GELU, {"approximate": "none"}),
    (Op.GELU, {"approximate": "tanh"}),
]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("op_attrs", GRID_OPS, ids=lambda oa: f"{oa[0].value}{oa[1].get('approximate', '')}")
def test_transcendentals_on_a_dense_grid(isa: str, op_attrs: tuple) -> None:
    """Every element (not only the largest) within 2e-6 * max(|ref|, 1) of torch, over [-30, 30] densely, near 0,
    at the clamp/branch points of the approximations (0.625, 3.92, 4, 9.1, 87-89, 104) and at specials."""
    op, attrs = op_attrs
    pts = [0.625, 3.92, 4.0, 9.1, 10.0, 20.0, 80.0, 87.0, 88.7, 89.0, 103.9, 104.0, 1e-6, 1e-30, 1e-40, 0.0]
    near = torch.tensor(pts).repeat_interleave(3) * torch.tensor([0.999, 1.0, 1.001]).repeat(len(pts))
    x = torch.cat([torch.linspace(-30, 30, 60001), near, -near, torch.tensor([float("nan"), -0.0])])
    if op is not Op.GELU:  # torch's gelu at +-inf differs between its scalar and vector paths
        x = torch.cat([x, torch.tensor([float("inf"), -float("inf")])])
    if op is Op.EXP:
        x = x.clamp_max(88.5)  # keep the ratio finite; overflow to inf is covered by the specials test
    with dispatch_at(isa):
        got, ref = run_single(op, [x], attrs)
    assert torch.equal(got.isnan(), ref.isnan())
    ok = ~ref.isnan()
    g, r = got[ok].double(), ref[ok].double()
    assert torch.equal(g.isinf(), r.isinf()) and torch.equal(g[r.isinf()], r[r.isinf()])
    fin = r.isfinite()
    err = (g[fin] - r[fin]).abs() / r[fin].abs().clamp_min(1.0)
    assert err.max().item() <= 2e-6, (err.max().item(), x[ok][fin][err.argmax()].item())


# -- bound programs (the per-call fast path) -------------------------------------------------------------------------


@pytest.mark.parametrize("isa", ISA_PARAMS)
@SETTINGS
@given(case=st.data(), seed=st.integers(0, 2**31 - 1))
def test_bound_program_matches_general_run(isa: str, case: st.DataObject, seed: int) -> None:
    """Program.bind(...).run(*ptrs) == Program.run(...) for broadcasting shapes incl. 0/1/odd sizes."""
    out = case.draw(shapes(max_rank=3))
    sa, sb = case.draw(broadcast_of(out)), case.draw(broadcast_of(out))
    g = Graph()
    ia, ib = g.add_input(sa, DType.f32), g.add_input(sb, DType.f32)
    s = g.add_node(Op.ADD, [ia, ib]).out
    r = g.add_node(Op.SIGMOID, [s]).out
    g.outputs = [r]
    built = eltwise.build_program(g.nodes, g.inputs, g.outputs)
    a, b = tensor(sa, seed, 0), tensor(sb, seed + 1, 0)
    oshape = torch.broadcast_shapes(sa, sb)
    y1, y2 = torch.full(oshape, 7.0), torch.full(oshape, 7.0)
    with dispatch_at(isa):
        bound = built.program.bind([list(sa), list(sb)], [list(a.stride()), list(b.stride())], list(oshape))
        bound.run(a.data_ptr(), b.data_ptr(), y1.data_ptr())
        built.program.run([a.data_ptr(), b.data_ptr()], [sa, sb], [a.stride(), b.stride()], oshape, [y2.data_ptr()])
    assert bound.num_inputs == 2 and bound.num_outputs == 1 and bound.numel == y1.numel()
    assert torch.equal(y1.isnan(), y2.isnan()) and torch.equal(y1.nan_to_num(), y2.nan_to_num())
    # the lowered kernel: fast path for contiguous inputs, general path for views; both match eager
    k = eltwise.program_kernel(built, g.outputs, g.inputs)
    ref = interpret(g, [a, b])[0]
    assert_matches(k(a, b), ref)
    if len(sa) >= 1:
        a_nc = tensor(sa, seed, 2)
        assert_matches(k(a_nc, b), interpret(g, [a_nc, b])[0])


def test_bound_program_bad_arguments_raise_value_error() -> None:
    p = _C.Program([0, 0, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0, 0, 0, -1, 0], [], 1, ["float32"], ["float32"], False)
    x, y = torch.randn(4, 3), torch.empty(4, 3)
    with pytest.raises(ValueError):  # does not broadcast
        p.bind([[4, 2]], [[2, 1]], [4, 3])
    with pytest.raises(ValueError):  # wrong number of inputs
        p.bind([], [], [4, 3])
    bound = p.bind([[4, 3]], [[3, 1]], [4, 3])
    for args in [
        (x.data_ptr(),),
        (x.data_ptr(), y.data_ptr(), y.data_ptr()),
        (x.data_ptr() + 1, y.data_ptr()),
        (x.data_ptr(), 0),
        (x.data_ptr(), "y"),
        (x.data_ptr(), -8),
    ]:
        with pytest.raises(ValueError):
            bound.run(*args)
    bound.run(x.data_ptr(), y.data_ptr())
    assert torch.equal(y, x)
    empty = p.bind([[0, 3]], [[3, 1]], [0, 3])
    empty.run(0, 0)  # nothing to read or write: null pointers are fine


def test_parallel_guard_switch_keeps_results() -> None:
    a = torch.randn(1 << 20)
    ref = torch.relu(a)
    native.set_num_threads(2)
    try:
        for on in (False, True):
            _C.set_parallel_guard(on)
            got, _ = run_single(Op.RELU, [a])
            assert torch.equal(got, ref)
    finally:
        _C.set_parallel_guard(True)
    assert _C.parallel_overhead_ns() >= 0


def test_compiled_model_runs_elementwise_natively() -> None:
    import lepton_graph

    class M(torch.nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            t = torch.sigmoid(x * 1.5 + y) * torch.tanh(x)
            return torch.where(t > 0.2, t, torch.exp(-t.abs())) + torch.clamp(y, -1, 1)

    m = M().eval()
    x, y = torch.randn(8, 33), torch.randn(33)
    c = lepton_graph.compile(m)
    with torch.no_grad():
        got, ref = c(x, y), m(x, y)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    d = c.report().as_dict()
    assert d["native_nodes"] >= 1 and d["fallback_nodes"] == 0, d
