"""Native GEMM (csrc/kernels/gemm*.cpp, lepton_graph/backends/cpu/gemm.py) against torch.

Every ISA variant the machine has runs in-process (set_max_isa): packed fp32 GEMM with every epilogue, the GEMV
path (M <= 4), run-time B with general strides, batched/broadcasting matmul, bf16 mixed precision; then the
lowerings (LINEAR, MATMUL, ADDMM, FUSED gemm groups) through lepton_graph.compile.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends import LowerOptions
from lepton_graph.backends.cpu import native

from .isa import ISA_PARAMS, dispatch_at

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")

if native.available():
    from lepton_graph import _C
    from lepton_graph.backends.cpu import gemm as G


ACTS = {  # by the codes of _C.Act (test_act_codes_are_the_kernels)
    0: lambda v: v,
    1: torch.relu,
    2: F.gelu,
    3: lambda v: F.gelu(v, approximate="tanh"),
    4: F.silu,
    5: torch.tanh,
    6: torch.sigmoid,
}
# Around the micro-tile (14 / 6 rows), the GEMV cut-off (4), the panel widths (16 / 32) and KC (256).
M_SIZES = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 13, 14, 15, 29, 64, 197])
N_SIZES = st.sampled_from([0, 1, 7, 15, 16, 17, 31, 32, 33, 48, 65, 100])
K_SIZES = st.sampled_from([0, 1, 3, 8, 17, 64, 255, 257, 600])


def test_act_codes_are_the_kernels() -> None:
    """One activation enum: the lowerings' codes are _C.Act's, and the kernels refuse codes outside it."""
    from lepton_graph.backends.cpu.epilogue import Act

    assert {a.name: int(a) for a in Act} == {n: int(v) for n, v in _C.Act.__members__.items()}
    assert list(_C.Act.__members__) == ["none", "relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid"]
    one = torch.ones(1, 1)
    packed = _C.gemm_pack_b_f32(one.data_ptr(), 1, 1, 1, 1)
    with pytest.raises(ValueError, match=r"argument 'act' must be in \[0, 6\] \(the codes of _C.Act: none, relu"):
        _C.gemm_packed(one.data_ptr(), 1, 1, 1, packed, one.data_ptr(), 1, act=len(_C.Act.__members__))


def test_blocking_comes_from_the_config() -> None:
    """LEPTON_GEMM_KC / LEPTON_GEMM_MC are read by lepton_graph.config (the one table) and handed to the driver."""
    import os
    import subprocess
    import sys

    code = "from lepton_graph.backends.cpu import native; from lepton_graph import _C; print(_C.gemm_blocking())"
    env = {**os.environ, "LEPTON_GEMM_KC": "64", "LEPTON_GEMM_MC": "24"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(64, 24)"
    with pytest.raises(ValueError, match="argument 'kc' must be 0 or >= 8"):
        _C.gemm_set_blocking(4, 1)


def test_blocking_is_derived_from_the_cache_sizes() -> None:
    """Without LEPTON_GEMM_*: KC 512, MC = L2 / (KC * 4 bytes) clamped to [48, 256] (csrc/kernels/gemm_driver.h);
    the cache sizes decoded from cpuid agree with the kernel's own report in sysfs where Linux has one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    cs = _C.cache_sizes()
    assert 16 << 10 <= cs["l1d"] <= 1 << 20, cs
    assert 128 << 10 <= cs["l2"] <= 64 << 20, cs
    sysfs = Path("/sys/devices/system/cpu/cpu0/cache")
    if cs["detected"] and sysfs.is_dir():
        for index in sysfs.glob("index*"):
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
            kib = int(size[:-1]) * (1024 if size.endswith("M") else 1) if size[-1] in "KM" else int(size) >> 10
            if (level, kind) == ("1", "Data"):
                assert cs["l1d"] == kib << 10, (cs, size)
            elif (level, kind) == ("2", "Unified"):
                assert cs["l2"] == kib << 10, (cs, size)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEPTON_GEMM_")}
    code = "from lepton_graph.backends.cpu import native; from lepton_graph import _C; print(*_C.gemm_blocking())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    kc, mc = (int(v) for v in out.stdout.split())
    want_kc = 512 if native.kernel_variants()["gemm_f32"] == "avx512" else 768  # the ISA's default slice
    assert (kc, mc) == (want_kc, min(max(cs["l2"] // (want_kc * 4), 48), 256))
    old = _C.gemm_blocking()
    try:
        _C.gemm_set_blocking(256, 0)  # 0: derived for this KC
        assert _C.gemm_blocking() == (256, min(max(cs["l2"] // (256 * 4), 48), 256))
    finally:
        _C.gemm_set_blocking(*old)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("act", [0, 2])
def test_small_blocking_splits_k_and_rows(isa: str, act: int) -> None:
    """Blocks small enough that the driver runs several K slices (C accumulated, the epilogue on the last one) and
    several row blocks per thread: the same answer."""
    g = torch.Generator().manual_seed(act)
    m, n, k = 37, 70, 100
    a, b, bias = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g), torch.randn(n, generator=g)
    packed = _C.gemm_pack_b_f32(b.data_ptr(), k, n, n, 1)
    out = torch.empty(m, n)
    old = _C.gemm_blocking()
    _C.gemm_set_blocking(16, 8)
    try:
        with dispatch_at(isa):
            _C.gemm_packed(a.data_ptr(), m, k, k, packed, out.data_ptr(), n, bias.data_ptr(), act=act)
    finally:
        _C.gemm_set_blocking(*old)
    assert _rel_err(out, _reference(a, b, bias, None, False, act)) < 1e-5


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    if ref.numel() == 0:
        return 0.0
    return ((got.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


def _reference(a, b, bias, res, before, act):
    v = a.double() @ b.double()
    if bias is not None:
        v = v + bias.double()
    if res is not None and before:
        v = v + res.double()
    v = ACTS[act](v)
    if res is not None and not before:
        v = v + res.double()
    return v


def _wide(rows: int, cols: int, pad: int, gen: torch.Generator) -> torch.Tensor:
    """A (rows, cols) view with row stride cols + pad (non-contiguous when pad > 0)."""
    return torch.randn(rows, cols + pad, generator=gen)[:, :cols]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=M_SIZES,
    n=N_SIZES,
    k=K_SIZES,
    act=st.integers(0, 6),
    bias=st.booleans(),
    res=st.sampled_from([None, "before", "after"]),
    pad=st.sampled_from([0, 3]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=30)
def test_gemm_packed_matches_torch(isa, m, n, k, act, bias, res, pad, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    a = _wide(m, k, pad, g) * 2
    b = torch.randn(k, n, generator=g) / max(k, 1) ** 0.5
    bv = torch.randn(n, generator=g) if bias else None
    rv = _wide(m, n, pad, g) if res else None
    out = torch.full((m, n + pad), float("nan"))[:, :n]  # ldc > n: the padding must stay untouched
    packed = _C.gemm_pack_b_f32(b.data_ptr(), k, n, n, 1)
    assert (packed.k, packed.n, packed.bf16) == (k, n, False)
    with dispatch_at(isa):
        _C.gemm_packed(
            a.data_ptr(),
            m,
            k,
            a.stride(0),
            packed,
            out.data_ptr(),
            out.stride(0),
            bv.data_ptr() if bv is not None else 0,
            rv.data_ptr() if rv is not None else 0,
            rv.stride(0) if rv is not None else 0,
            res == "before",
            act,
        )
    ref = _reference(a, b, bv, rv, res == "before", act)
    assert _rel_err(out, ref) <= 5e-5
    if pad and m:
        assert out.as_strided((m, pad), (n + pad, 1), n).isnan().all()


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("act", range(7))
def test_activations_extreme_values(isa, act) -> None:
    """Activation epilogues over a wide range (exp overflows and underflows there) and NaN, vs torch in fp64;
    +-inf only where the limit is unambiguous (x * 0 at -inf is NaN in torch, 0 here for some activations)."""
    specials = [float("nan"), 0.0, -0.0] + ([float("inf"), -float("inf")] if act in (0, 1, 5, 6) else [])
    x = torch.cat([torch.linspace(-120, 120, 4001), torch.tensor(specials)])
    n = x.numel()
    one = torch.ones(1, 1)
    packed = _C.gemm_pack_b_f32(one.data_ptr(), 1, 1, 1, 1)
    out = torch.empty(n, 1)
    a = x.reshape(n, 1).contiguous()
    with dispatch_at(isa):
        _C.gemm_packed(a.data_ptr(), n, 1, 1, packed, out.data_ptr(), 1, 0, 0, 0, False, act)
    ref = ACTS[act](x.double())
    got = out.reshape(-1).double()
    assert torch.equal(got.isnan(), ref.isnan())
    inf = ref.isinf()
    assert torch.equal(got[inf], ref[inf])
    finite = ref.isfinite()
    err = (got[finite] - ref[finite]).abs() / ref[finite].abs().clamp_min(1e-3)
    assert err.max().item() < 2e-5


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_gelu_erf_dense(isa) -> None:
    """GELU (erf) epilogue on a dense grid where its erfc fit matters (the tail for negative x is relative-accurate:
    no 1 + erf cancellation), as a tile epilogue (M > 4) and on the GEMV path (M = 1); bias added first."""
    x = torch.linspace(-10, 10, 200001)
    one = torch.ones(1, 1)
    packed = _C.gemm_pack_b_f32(one.data_ptr(), 1, 1, 1, 1)
    bias = torch.tensor([0.25])
    ref = F.gelu(x.double() + 0.25)
    with dispatch_at(isa):
        out = torch.empty(x.numel(), 1)
        _C.gemm_packed(x.data_ptr(), x.numel(), 1, 1, packed, out.data_ptr(), 1, bias.data_ptr(), 0, 0, False, 2)
        row, ones = torch.empty(1, 64), torch.ones(1, 64)
        wide = _C.gemm_pack_b_f32(ones.data_ptr(), 1, 64, 64, 1)
        xs = torch.tensor([[-3.5]])
        _C.gemm_packed(xs.data_ptr(), 1, 1, 1, wide, row.data_ptr(), 64, 0, 0, 0, False, 2)
    err = (out.reshape(-1).double() - ref).abs() / ref.abs().clamp_min(1e-3)
    assert err.max().item() < 2e-5
    assert torch.allclose(
        row.double(), F.gelu(torch.tensor(-3.5, dtype=torch.float64)).expand(1, 64), rtol=2e-5, atol=0
    )


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=M_SIZES,
    n=N_SIZES,
    k=K_SIZES,
    ta=st.booleans(),
    tb=st.booleans(),
    threads=st.booleans(),
    act=st.integers(0, 6),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=20)
def test_gemm_runtime_b_strided(isa, m, n, k, ta, tb, threads, act, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(k, m, generator=g).t() if ta else torch.randn(m, k, generator=g)
    b = (torch.randn(n, k, generator=g).t() if tb else torch.randn(k, n, generator=g)) / max(k, 1) ** 0.5
    bias = torch.randn(n, generator=g)
    out = torch.empty(m, n)
    with dispatch_at(isa):
        _C.gemm_f32(
            a.data_ptr(),
            a.stride(0),
            a.stride(1),
            b.data_ptr(),
            b.stride(0),
            b.stride(1),
            out.data_ptr(),
            n,
            m,
            n,
            k,
            bias.data_ptr(),
            0,
            0,
            False,
            act,
            threads,
        )
    assert _rel_err(out, _reference(a, b, bias, None, False, act)) <= 5e-5


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize(
    ("sa", "sb"),
    [
        ((2, 3, 5, 7), (2, 3, 7, 9)),
        ((4, 1, 6, 33), (5, 33, 17)),
        ((3, 20, 64), (64, 40)),
        ((7,), (2, 7, 3)),
        ((2, 5, 8), (8,)),
        ((8, 40, 16), (8, 16, 40)),
        ((0, 3, 4), (4, 5)),
    ],
)
def test_matmul_kernel_batched_broadcasting(isa, sa, sb) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(*sa, generator=g), torch.randn(*sb, generator=g)
    kernel = G._matmul_general()
    with dispatch_at(isa):
        got = kernel(a, b)
        got_t = kernel(
            a.transpose(-1, -2).contiguous().transpose(-1, -2) if a.dim() > 1 else a,
            b.transpose(-1, -2).contiguous().transpose(-1, -2) if b.dim() > 1 else b,
        )
    ref = torch.matmul(a.double(), b.double())
    assert got.shape == ref.shape and got_t.shape == ref.shape
    assert _rel_err(got, ref) <= 1e-5 and _rel_err(got_t, ref) <= 1e-5


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize(("m", "n", "k"), [(1, 10, 7), (3, 33, 64), (29, 100, 257), (64, 48, 600), (0, 4, 4)])
def test_bf16_gemm(isa, m, n, k) -> None:
    """Mixed precision: exactly the bf16-rounded products summed in fp32; ~1e-3 of fp32's scale."""
    g = torch.Generator().manual_seed(1)
    a, b, bias = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g), torch.randn(n, generator=g)
    packed = _C.gemm_pack_b_bf16(b.data_ptr(), k, n, n, 1)
    assert packed.bf16
    out = torch.empty(m, n)
    with dispatch_at(isa):
        _C.gemm_packed(a.data_ptr(), m, k, k, packed, out.data_ptr(), n, bias.data_ptr(), 0, 0, False, 1)
    rounded = torch.relu(a.bfloat16().double() @ b.bfloat16().double() + bias.double())
    assert _rel_err(out, rounded) <= 1e-5
    assert _rel_err(out, torch.relu(a.double() @ b.double() + bias.double())) <= 1e-2


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=M_SIZES,
    n=N_SIZES,
    k=st.sampled_from([0, 1, 3, 17, 64, 257, 600, 1025, 2100]),
    act=st.integers(0, 6),
    bias=st.booleans(),
    res=st.sampled_from([None, "before", "after"]),
    pad=st.sampled_from([0, 3]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=25, deadline=None)
def test_bf16_gemm_epilogues(isa, m, n, k, act, bias, res, pad, seed) -> None:
    """bf16 packing with every epilogue (bias / residual / ReLU in registers, the other activations as a pass over
    the stored tile), strided A / C / residual, K over several K slices (512 k-pairs each): the bf16-rounded
    products summed in fp32, then the fp32 epilogue."""
    g = torch.Generator().manual_seed(seed)
    a = _wide(m, k, pad, g)
    b = torch.randn(k, n, generator=g) / max(k, 1) ** 0.5
    bv = torch.randn(n, generator=g) if bias else None
    rv = _wide(m, n, pad, g) if res else None
    out = torch.full((m, n + pad), float("nan"))[:, :n]
    packed = _C.gemm_pack_b_bf16(b.data_ptr(), k, n, n, 1)
    with dispatch_at(isa):
        _C.gemm_packed(
            a.data_ptr(),
            m,
            k,
            a.stride(0),
            packed,
            out.data_ptr(),
            out.stride(0),
            bv.data_ptr() if bv is not None else 0,
            rv.data_ptr() if rv is not None else 0,
            rv.stride(0) if rv is not None else 0,
            res == "before",
            act,
        )
    ref = _reference(a.bfloat16().float(), b.bfloat16().float(), bv, rv, res == "before", act)
    assert _rel_err(out, ref) <= 5e-5
    if pad and m:
        assert out.as_strided((m, pad), (n + pad, 1), n).isnan().all()


def test_bad_arguments_raise_value_error() -> None:
    b = torch.randn(8, 4)
    a = torch.randn(3, 8)
    c = torch.empty(3, 4)
    p = _C.gemm_pack_b_f32(b.data_ptr(), 8, 4, 4, 1)
    with pytest.raises(ValueError, match="'K'"):
        _C.gemm_packed(a.data_ptr(), 3, 7, 8, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="'M'"):
        _C.gemm_packed(a.data_ptr(), -1, 8, 8, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="'lda'"):
        _C.gemm_packed(a.data_ptr(), 3, 8, 2, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="'ldc'"):
        _C.gemm_packed(a.data_ptr(), 3, 8, 8, p, c.data_ptr(), 3)
    with pytest.raises(ValueError, match="'act'"):
        _C.gemm_packed(a.data_ptr(), 3, 8, 8, p, c.data_ptr(), 4, act=9)
    with pytest.raises(ValueError, match="'a_ptr'"):
        _C.gemm_packed(0, 3, 8, 8, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="'a_ptr'"):
        _C.gemm_packed(a.data_ptr() + 2, 3, 8, 8, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="'N'"):
        _C.gemm_pack_b_f32(b.data_ptr(), 8, -4, 4, 1)
    with pytest.raises(ValueError, match="'b_ptr'"):
        _C.gemm_pack_b_f32(0, 8, 4, 4, 1)
    with pytest.raises(ValueError, match="'ep'"):
        _C.gemm_packed(a.data_ptr(), 3, 8, 8, p, c.data_ptr(), 4, residual_ptr=c.data_ptr(), ld_residual=2)
    with pytest.raises(ValueError, match="'K'"):
        _C.gemm_f32(a.data_ptr(), 8, 1, b.data_ptr(), 4, 1, c.data_ptr(), 4, 3, 4, -8)
    with pytest.raises(ValueError, match="batch_strides"):
        _C.gemm_f32_batched([2], a.data_ptr(), [1, 2], 8, 1, b.data_ptr(), [0], 4, 1, c.data_ptr(), [0], 4, 3, 4, 8)


# ------------------------------------------------------------------------------------------------ lowerings


def _compile(model, *xs, **kw):
    import lepton_graph as lg

    compiled = lg.compile(model, **kw)
    got = compiled(*xs)
    return compiled, got


class _Mlp(torch.nn.Module):
    def __init__(self, act: str) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = torch.nn.Linear(24, 40), torch.nn.Linear(40, 24), torch.nn.Linear(24, 10)
        self.act = act

    def forward(self, x):
        h = self.l1(x)
        h = {
            "gelu": F.gelu,
            "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
            "silu": F.silu,
            "relu": torch.relu,
            "tanh": torch.tanh,
            "sigmoid": torch.sigmoid,
        }[self.act](h)
        h = torch.relu(self.l2(h) + x)  # residual before the activation
        return self.l3(h) + 0.5


@pytest.mark.parametrize("act", ["gelu", "gelu_tanh", "silu", "relu", "tanh", "sigmoid"])
def test_compiled_mlp_is_native_and_matches(act) -> None:
    torch.manual_seed(0)
    m = _Mlp(act).eval()
    x = torch.randn(3, 5, 24)
    compiled, got = _compile(m, x)
    rep = compiled.report().as_dict()
    assert rep["native_nodes"] >= 3, rep
    ref = m(x)
    assert _rel_err(got, ref) <= 1e-4


def test_compiled_residual_after_activation_and_matmul() -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 12)
    lin = torch.nn.Linear(16, 16)
    bias = torch.randn(12)

    def f(x, y):
        h = F.gelu(lin(x)) + x  # residual after the activation
        return h @ w, torch.matmul(y, y.transpose(-1, -2)), torch.addmm(bias, h, w, beta=0.5, alpha=2.0)

    x, y = torch.randn(2, 16), torch.randn(3, 4, 7)
    compiled, got = _compile(f, x, y)
    with torch.no_grad():
        ref = f(x, y)
    assert compiled.report().as_dict()["native_nodes"] >= 3
    for g_, r_ in zip(got, ref):
        assert _rel_err(g_, r_) <= 1e-4


def test_compiled_addmm_and_runtime_matmul_groups() -> None:
    """Fused groups rooted at ADDMM (constant and run-time B) and at a MATMUL with a run-time B."""
    torch.manual_seed(0)
    w, b, b2 = torch.randn(16, 12), torch.randn(12), torch.randn(12)

    def f(x, y, r):
        return (
            torch.relu(torch.addmm(b, x, w)),
            F.gelu(x @ y + b2),
            torch.sigmoid(torch.addmm(r, x, y)),
            torch.tanh(torch.addmm(b, x, w, alpha=0.5, beta=2.0)),
        )

    x, y, r = torch.randn(5, 16), torch.randn(16, 12), torch.randn(5, 12)
    compiled, got = _compile(f, x, y, r)
    with torch.no_grad():
        ref = f(x, y, r)
    rep = compiled.report().as_dict()
    assert rep["native_nodes"] == rep["nodes"], rep
    for g_, r_ in zip(got, ref):
        assert _rel_err(g_, r_) <= 1e-4


def test_bf16_precision_compile() -> None:
    torch.manual_seed(0)
    m = _Mlp("gelu").eval()
    x = torch.randn(4, 24)
    compiled, got = _compile(m, x, precision="bf16")
    err = _rel_err(got, m(x))
    if _C.gemm_bf16_supported():  # bf16 products ran: their rounding shows, within the bf16 bar
        assert 1e-6 < err <= 2e-2, err
    else:  # no AVX512_BF16: precision="bf16" falls back to fp32, which must then meet fp32's bar
        assert err <= 1e-4, err


def _linear_kernel(shape_x, n, k, bias=True):
    from lepton_graph.ir import DType, Graph, Op

    g = Graph()
    x = g.add_input(shape_x, DType.f32)
    w = g.add_constant(torch.randn(n, k))
    ins = [x, w] + ([g.add_constant(torch.randn(n))] if bias else [])
    node = g.add_node(Op.LINEAR, ins)
    return G.lower_linear(node, g, LowerOptions()), g.constants


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_linear_kernel_non_contiguous_and_edge_inputs(isa) -> None:
    kernel, consts = _linear_kernel((6, 5, 9), 11, 9)
    w, b = consts["c0"] if "c0" in consts else list(consts.values())[0], list(consts.values())[1]
    base = torch.randn(5, 6, 9)
    cases = [
        base.transpose(0, 1),
        torch.randn(6, 5, 20)[..., ::2][..., :9],
        torch.randn(9, 6, 5).permute(1, 2, 0),
        torch.randn(1, 9).expand(30, 9).reshape(6, 5, 9),
    ]
    with dispatch_at(isa):
        for x in cases:
            assert _rel_err(kernel(x), F.linear(x.double(), w.double(), b.double())) <= 1e-5
        x1 = torch.randn(9)
        assert _rel_err(kernel(x1), F.linear(x1.double(), w.double(), b.double())) <= 1e-5
        x0 = torch.randn(0, 9)
        assert kernel(x0).shape == (0, 11)


def test_linear_lowering_declines_non_f32() -> None:
    from lepton_graph.ir import DType, Graph, Op

    g = Graph()
    x = g.add_input((2, 4), DType.f64)
    w = g.add_constant(torch.randn(3, 4, dtype=torch.float64))
    node = g.add_node(Op.LINEAR, [x, w])
    assert isinstance(G.lower_linear(node, g, LowerOptions()), str)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=st.sampled_from([5, 8, 13, 64, 128, 197, 211]),
    n=st.sampled_from([33, 100, 300, 769]),
    k=st.sampled_from([1, 17, 300, 800]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=12, deadline=None)
def test_dynamic_panel_claims_give_the_static_split_bit_for_bit(isa, m, n, k, seed) -> None:
    """GEMMs split over N claim their panels at run time (gemm_set_dynamic_panels): whichever thread computes a
    panel, it computes it with the same tiles, so fp32, int8 and weight-only results equal the fixed split's bit for
    bit (sizes around MC's 5/4 slack, several K slices, GEMV rows)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=g)
    w = torch.randn(k, n, generator=g) / k**0.5
    bias = torch.randn(n, generator=g)
    p32 = _C.gemm_pack_b_f32(w.data_ptr(), k, n, n, 1)
    wt = w.t().contiguous()
    scale = (wt.abs().amax(1) / 127).clamp_min(1e-8)
    q8 = torch.round(wt / scale[:, None]).clamp(-127, 127).to(torch.int8)
    p8 = _C.gemm_pack_b_s8(q8.data_ptr(), k, n, q8.stride(1), q8.stride(0), scale.data_ptr())
    pwo = _C.gemm_pack_b_wo(q8.data_ptr(), k, n, k, 8, 0, scale.data_ptr(), 1)
    calls = {
        "f32": lambda c: _C.gemm_packed(a.data_ptr(), m, k, k, p32, c.data_ptr(), n, bias.data_ptr(), act=2),
        "int8": lambda c: _C.gemm_u8s8_dynamic(a.data_ptr(), m, k, k, p8, c.data_ptr(), n),
        "wo": lambda c: _C.gemm_wo_packed(a.data_ptr(), m, k, k, pwo, c.data_ptr(), n),
    }
    threads, dynamic = native.get_num_threads(), _C.gemm_dynamic_panels()
    try:
        native.set_num_threads(2)
        with dispatch_at(isa):
            for name, call in calls.items():
                out = {}
                for on in (False, True):
                    _C.gemm_set_dynamic_panels(on)
                    out[on] = torch.full((m, n), float("nan"))
                    call(out[on])
                assert torch.equal(out[False], out[True]), name
                assert not out[True].isnan().any(), name
    finally:
        native.set_num_threads(threads)
        _C.gemm_set_dynamic_panels(dynamic)


@settings(max_examples=25, deadline=None)
@given(m=M_SIZES, n=N_SIZES, k=K_SIZES, seed=st.integers(0, 2**31 - 1))
def test_packed_panels_taken_from_memory_give_the_same_bits(m: int, n: int, k: int, seed: int) -> None:
    """gemm_packed_b_f32_from (an artifact's stored panels): read in place (64-byte aligned) or copied, the GEMM
    gives the bits of the B packed here; a wrong size or a misaligned in-place read is a ValueError, not a crash."""
    import ctypes

    g = torch.Generator().manual_seed(seed)
    a, w = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
    packed = G.pack_weight(w, transposed=True)
    nbytes = _C.gemm_packed_f32_nbytes(k, n)
    assert packed.nbytes == nbytes
    buf = torch.zeros(nbytes + 128, dtype=torch.uint8)
    at = (-buf.data_ptr()) % 64
    if nbytes:
        ctypes.memmove(buf.data_ptr() + at, packed.data_ptr, nbytes)
    outs = []
    for b in (
        packed,
        _C.gemm_packed_b_f32_from(buf.data_ptr() + at, nbytes, k, n, True),
        _C.gemm_packed_b_f32_from(buf.data_ptr() + at, nbytes, k, n, False),
    ):
        c = torch.empty(m, n)
        _C.gemm_packed(a.data_ptr(), m, k, k, b, c.data_ptr(), n)
        outs.append(c)
    assert all(torch.equal(outs[0], c) for c in outs[1:])
    if nbytes:
        with pytest.raises(ValueError, match="not the"):
            _C.gemm_packed_b_f32_from(buf.data_ptr() + at, nbytes - 4, k, n, False)
        with pytest.raises(ValueError, match="64-byte aligned"):
            _C.gemm_packed_b_f32_from(buf.data_ptr() + at + 4, nbytes, k, n, True)
