"""Native int8 GEMM (csrc/kernels/gemm_int8*.cpp) against an exact integer reference, on every ISA path.

The integer core (gemm_u8s8s32) must equal int64 torch.matmul exactly; the row quantizer must equal the registry's
reference (ir/defs/quant.py) bit for bit; the dynamic GEMM before its epilogue must equal the reference formula bit
for bit, and with each epilogue match it to fp32 rounding. Shapes cover odd K, K not a multiple of 4, 0 and 1,
the tile heights (12 / 2 / 4 rows), both panel widths (16 / 32) and strided rows of A; values cover saturation
(u8 255 x s8 -127/127 at K = 16384), all-zero and constant rows and channels.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lepton_graph.backends.cpu import native
from lepton_graph.ir.defs.quant import qlinear, qlinear_static, quantize_rows_u8, quantize_weight_per_channel

from .isa import ISA_PARAMS, dispatch_at
from .test_gemm import ACTS

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")

if native.available():
    from lepton_graph import _C
    from lepton_graph.backends.cpu import gemm as G

M_SIZES = st.sampled_from([0, 1, 2, 3, 4, 5, 11, 12, 13, 25, 64])
N_SIZES = st.sampled_from([0, 1, 7, 15, 16, 17, 31, 32, 33, 48, 65])
K_SIZES = st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 255, 257])


def pack(w: torch.Tensor, scale: torch.Tensor | None = None):
    """Pack a (K, N) int8 B (any strides) with per-column scales."""
    scale = torch.ones(w.shape[1]) if scale is None else scale.contiguous()
    return _C.gemm_pack_b_s8(w.data_ptr(), w.shape[0], w.shape[1], w.stride(0), w.stride(1), scale.data_ptr())


def s32(a8: torch.Tensor, packed) -> torch.Tensor:
    m, k = a8.shape
    c = torch.full((m, packed.n), -7, dtype=torch.int32)
    _C.gemm_u8s8s32(a8.data_ptr(), m, k, a8.stride(0) if m > 1 else k, packed, c.data_ptr(), packed.n)
    return c


def dynamic(a: torch.Tensor, packed, bias=None, res=None, before=False, act=0) -> torch.Tensor:
    m, k = a.shape
    c = torch.full((m, packed.n), float("nan"))
    _C.gemm_u8s8_dynamic(
        a.data_ptr(),
        m,
        k,
        a.stride(0) if m > 1 else k,
        packed,
        c.data_ptr(),
        packed.n,
        0 if bias is None else bias.data_ptr(),
        0 if res is None else res.data_ptr(),
        0 if res is None else res.stride(0),
        before,
        act,
    )
    return c


def rows_view(m: int, k: int, pad: int, gen: torch.Generator, scale: float = 2.0) -> torch.Tensor:
    """(m, k) float32 rows with row stride k + pad (a non-contiguous view when pad > 0)."""
    return (torch.randn(m, k + pad, generator=gen) * scale)[:, :k]


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(m=M_SIZES, n=N_SIZES, k=K_SIZES, pad=st.sampled_from([0, 3]), w_t=st.booleans(), seed=st.integers(0, 99))
def test_integer_core_is_exact(isa: str, m: int, n: int, k: int, pad: int, w_t: bool, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a8 = torch.randint(0, 256, (m, k + pad), generator=gen, dtype=torch.uint8)[:, :k]
    w = torch.randint(-128, 128, (n, k) if w_t else (k, n), generator=gen, dtype=torch.int8)
    w = w.t() if w_t else w  # (k, n), column-major when w_t
    with dispatch_at(isa):
        got = s32(a8, pack(w))
    assert torch.equal(got.long(), a8.long() @ w.long())


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_saturated_operands_at_k_16384_do_not_overflow(isa: str) -> None:
    k = 16384
    a8 = torch.full((3, k), 255, dtype=torch.uint8)
    w = torch.stack(
        [
            torch.full((k,), 127),
            torch.full((k,), -128),
            torch.full((k,), -127),
            torch.zeros(k),
            torch.tensor([127, -128] * (k // 2)),
        ],
        1,
    ).to(torch.int8)
    with dispatch_at(isa):
        got = s32(a8, pack(w))
    want = a8.long() @ w.long()
    assert int(want.abs().max()) == 255 * 128 * k  # 534,773,760: the extreme, inside int32
    assert torch.equal(got.long(), want)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("min_weight", [-127, -128])
def test_shifted_rows_at_the_extremes_at_k_16384(isa: str, min_weight: int) -> None:
    """The AVX2 kernel multiplies q - 128 (|q - 128| <= 128, vpmaddubsw) by B8 (<= 127, sign moved by vpsignb): pair
    sums reach 2 * 128 * 127 = 32512 at the extremes (q = 0 or 255 against weights of +-127), just inside int16.
    Rows: all q = 255 (z = 0), all q = 0 (z = 255), alternating 255 / 0, and ramps; a -128 in B (whose negation
    wraps) sends the GEMM to the widening kernel, which must agree too. Equal to the reference bit for bit."""
    k = 16384
    ramp = torch.linspace(-3.0, 5.0, k)
    a = torch.stack([torch.full((k,), 2.5), torch.full((k,), -2.5), torch.tensor([2.5, -2.5] * (k // 2)), ramp, -ramp])
    cols = [
        torch.full((k,), 127),
        torch.full((k,), -127),
        torch.tensor([127, -127] * (k // 2)),
        torch.tensor([-127, 127] * (k // 2)),
        torch.zeros(k),
        torch.tensor([min_weight, 127] * (k // 2)),
    ]
    wq = torch.stack(cols).to(torch.int8)  # (N, K)
    scale = torch.full((wq.shape[0],), 0.01)
    q, _, z = quantize_rows_u8(a)
    assert {int(q[0].min()), int(q[1].max()), int(q[2].min()), int(q[2].max())} == {255, 0}
    assert z.tolist()[:2] == [0, 255]
    with dispatch_at(isa):
        got = dynamic(a, pack(wq.t(), scale))
        got_static = static(a, pack(wq.t(), scale), 0.02, 128)
    assert torch.equal(got, qlinear(a, wq, scale, act="dynamic"))
    assert torch.equal(got_static, qlinear_static(a, wq, scale, 0.02, 128))
    ints = (q.long() - z.long().unsqueeze(1)) @ wq.long().t()
    assert int(ints.abs().max()) == 255 * 127 * k  # 530,595,840: the row sums reach the bound


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=M_SIZES,
    k=K_SIZES,
    pad=st.sampled_from([0, 5]),
    seed=st.integers(0, 99),
    kind=st.sampled_from(["randn", "positive", "negative", "zero", "constant", "spiky"]),
)
def test_row_quantizer_matches_the_reference(isa: str, m: int, k: int, pad: int, seed: int, kind: str) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = rows_view(m, k, pad, gen)
    if kind == "positive":
        a = a.abs()
    elif kind == "negative":
        a = -a.abs()
    elif kind == "zero":
        a = a * 0
    elif kind == "constant":
        a = torch.full_like(a, 0.37)
    elif kind == "spiky" and a.numel():
        a[:, 0] = 1000.0
    q = torch.empty(m, k, dtype=torch.uint8)
    s, z = torch.empty(m), torch.empty(m, dtype=torch.int32)
    with dispatch_at(isa):
        _C.quantize_rows_u8(
            a.data_ptr(), m, k, a.stride(0) if m > 1 else k, q.data_ptr(), k, s.data_ptr(), z.data_ptr()
        )
    rq, rs, rz = quantize_rows_u8(a)
    assert torch.equal(q, rq) and torch.equal(s, rs) and torch.equal(z, rz)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(m=M_SIZES, n=N_SIZES, k=K_SIZES, pad=st.sampled_from([0, 2]), seed=st.integers(0, 99))
def test_dynamic_gemm_equals_the_reference_bit_for_bit(isa: str, m: int, n: int, k: int, pad: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = rows_view(m, k, pad, gen)
    w = torch.randn(n, k, generator=gen)
    if n > 2:
        w[1] = 0.0  # an all-zero output channel (scale 1, int8 zeros)
        w[2] = 0.25  # a constant one
    wq, scale = quantize_weight_per_channel(w)
    with dispatch_at(isa):
        got = dynamic(a, pack(wq.t(), scale))
    want = qlinear(a, wq, scale, act="dynamic")
    assert torch.equal(got, want)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=st.sampled_from([1, 3, 13, 40]),
    n=st.sampled_from([5, 16, 33, 70]),
    k=st.sampled_from([1, 7, 64, 130]),
    act=st.sampled_from(sorted(ACTS)),
    bias=st.booleans(),
    residual=st.sampled_from([None, "before", "after"]),
    seed=st.integers(0, 99),
)
def test_dynamic_gemm_epilogues(
    isa: str, m: int, n: int, k: int, act: int, bias: bool, residual: str | None, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=gen)
    wq, scale = quantize_weight_per_channel(torch.randn(n, k, generator=gen))
    b = torch.randn(n, generator=gen) if bias else None
    r = torch.randn(m, n, generator=gen) if residual else None
    with dispatch_at(isa):
        got = dynamic(a, pack(wq.t(), scale), b, r, residual == "before", act)
    v = qlinear(a, wq, scale, act="dynamic").double()
    v = v + b.double() if b is not None else v
    v = v + r.double() if residual == "before" else v
    v = ACTS[act](v)
    v = v + r.double() if residual == "after" else v
    torch.testing.assert_close(got.double(), v, atol=2e-5 * float(v.abs().max().clamp_min(1)), rtol=1e-5)


def test_qlinear_lowering_matches_the_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 9, 40, generator=gen).transpose(0, 1)  # non-contiguous (9, 2, 40)
    wq, scale = quantize_weight_per_channel(torch.randn(24, 40, generator=gen))
    b = torch.randn(24, generator=gen)
    root = G._Root(0, 40, 24, G._Epi(), packed=G.pack_weight_s8(wq, scale))
    root.epi.add_bias(b)
    got = root.kernel()(x)
    torch.testing.assert_close(got, qlinear(x, wq, scale, b, act="dynamic"), atol=1e-5, rtol=1e-5)


def test_bad_arguments_are_named() -> None:
    w = torch.zeros(8, 4, dtype=torch.int8)
    s = torch.ones(4)
    p = pack(w, s)
    a = torch.zeros(2, 8)
    c = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="argument 'K' must equal the packed B's K = 8"):
        _C.gemm_u8s8_dynamic(a.data_ptr(), 2, 7, 8, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="argument 'lda' must be >= K"):
        _C.gemm_u8s8_dynamic(a.data_ptr(), 2, 8, 3, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="argument 'ldc' must be >= N"):
        _C.gemm_u8s8_dynamic(a.data_ptr(), 2, 8, 8, p, c.data_ptr(), 2)
    with pytest.raises(ValueError, match="argument 'act' must be in"):
        _C.gemm_u8s8_dynamic(a.data_ptr(), 2, 8, 8, p, c.data_ptr(), 4, act=9)
    with pytest.raises(ValueError, match="argument 'a_ptr' is null"):
        _C.gemm_u8s8_dynamic(0, 2, 8, 8, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="argument 'K' must be in \\[0, 65536\\]"):
        _C.gemm_pack_b_s8(w.data_ptr(), 65537, 4, 4, 1, s.data_ptr())
    with pytest.raises(ValueError, match="argument 'scales_ptr' is null"):
        _C.gemm_pack_b_s8(w.data_ptr(), 8, 4, 4, 1, 0)
    with pytest.raises(ValueError, match="int8 weight must be"):
        G.pack_weight_s8(w.float(), s)
    assert _C.GEMM_INT8_MAX_K == 65536 and p.k == 8 and p.n == 4 and p.nbytes >= 8 * 4


def static(a: torch.Tensor, packed, scale: float, zero: int, bias=None, act=0) -> torch.Tensor:
    m, k = a.shape
    c = torch.full((m, packed.n), float("nan"))
    lda = a.stride(0) if m > 1 else k
    _C.gemm_u8s8_static(
        a.data_ptr(),
        m,
        k,
        lda,
        packed,
        scale,
        zero,
        c.data_ptr(),
        packed.n,
        0 if bias is None else bias.data_ptr(),
        act=act,
    )
    return c


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=M_SIZES,
    n=N_SIZES,
    k=K_SIZES,
    pad=st.sampled_from([0, 2]),
    seed=st.integers(0, 99),
    zero=st.sampled_from([0, 1, 128, 255]),
    scale=st.sampled_from([0.01, 0.03, 1.0, 1e-4]),
)
def test_static_gemm_equals_the_reference_bit_for_bit(
    isa: str, m: int, n: int, k: int, pad: int, seed: int, zero: int, scale: float
) -> None:
    """int8-static: one calibrated (scale, zero point) for every row, values clamped at both ends of u8 (the small
    scales saturate), the same dequantisation as the dynamic path: equal to qlinear_static exactly."""
    gen = torch.Generator().manual_seed(seed)
    a = rows_view(m, k, pad, gen)
    w = torch.randn(n, k, generator=gen)
    wq, wscale = quantize_weight_per_channel(w)
    with dispatch_at(isa):
        got = static(a, pack(wq.t(), wscale), scale, zero)
    assert torch.equal(got, qlinear_static(a, wq, wscale, scale, zero))


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_static_gemm_epilogue_and_bad_arguments(isa: str) -> None:
    gen = torch.Generator().manual_seed(3)
    a, w, bias = torch.randn(37, 70, generator=gen), torch.randn(50, 70, generator=gen), torch.randn(50, generator=gen)
    wq, wscale = quantize_weight_per_channel(w)
    packed = pack(wq.t(), wscale)
    with dispatch_at(isa):
        got = static(a, packed, 0.02, 120, bias, act=1)
    assert torch.equal(got, torch.relu(qlinear_static(a, wq, wscale, 0.02, 120) + bias))
    with pytest.raises(ValueError, match="argument 'scale' must be a finite number > 0"):
        static(a, packed, 0.0, 0)
    with pytest.raises(ValueError, match=r"argument 'zero_point' must be in \[0, 255\]"):
        static(a, packed, 0.1, 256)
