"""Native weight-only GEMM (csrc/kernels/gemm_wo*.cpp) against the dequantized reference, on every ISA path.

The reference is ir/defs/quant.py's: the int8 / int4 weight dequantized in groups ((q - z) * s, fp32), multiplied in
float64. The kernels sum q * a per chunk and scale once per chunk (few rows) or dequantize a panel slice for the fp32
micro-kernel (more rows); both must agree with it to fp32 rounding of the products' magnitude. Shapes cover odd K,
K not a multiple of the group, 0 and 1, the few-row path (M <= 4) and the blocked one, both panel widths and strided
rows of A; values cover the int8 extremes at K = 16384, all-zero and constant groups and every epilogue.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends.cpu import native
from lepton_graph.ir.defs.quant import (
    dequantize_weight_groups,
    pack_int4,
    quantize_weight_groups,
    unpack_int4,
    wqlinear,
)

from .isa import ISA_PARAMS, dispatch_at
from .test_gemm import ACTS

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")

if native.available():
    from lepton_graph import _C


def pack(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, bits: int, group: int, k: int):
    scale = scale.contiguous()
    zp = 0 if zero is None or bits == 8 else zero.contiguous().data_ptr()
    return _C.gemm_pack_b_wo(
        q.data_ptr(), k, q.shape[0], q.stride(0) if q.shape[0] > 1 else q.shape[1], bits, group,
        scale.data_ptr(), scale.shape[1], zp,
    )  # fmt: skip


def run(a: torch.Tensor, packed, bias=None, res=None, before=False, act=0) -> torch.Tensor:
    m, k = a.shape
    c = torch.full((m, packed.n), float("nan"))
    _C.gemm_wo_packed(
        a.data_ptr(), m, k, a.stride(0) if m > 1 else k, packed, c.data_ptr(), packed.n,
        0 if bias is None else bias.data_ptr(), 0 if res is None else res.data_ptr(),
        0 if res is None else res.stride(0), before, act,
    )  # fmt: skip
    return c


def reference(a: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a @ w.T in float64, the magnitude |a| @ |w|.T each element's rounding error is measured against)."""
    return a.double() @ w.double().t(), a.double().abs() @ w.double().abs().t()


def assert_fp32_close(got: torch.Tensor, ref: torch.Tensor, mag: torch.Tensor) -> None:
    err = (got.double() - ref).abs()
    bound = 2e-6 * (mag + 1e-30) + 1e-30
    assert bool((err <= bound).all()), f"max error {float((err / bound).max()):.3g}x the fp32 bound"


def random_weight(n: int, k: int, bits: int, group: int, gen: torch.Generator):
    q, s, z = quantize_weight_groups(torch.randn(n, k, generator=gen), bits, group)
    return q, s, z, dequantize_weight_groups(q, s, z, bits, group, k)


GROUPS = st.sampled_from([(8, 0), (8, 32), (4, 8), (4, 32), (4, 64), (4, 128)])


@pytest.mark.parametrize("isa", ISA_PARAMS)
@settings(max_examples=80)
@given(
    m=st.sampled_from([0, 1, 2, 3, 4, 5, 13, 40]),
    n=st.sampled_from([0, 1, 7, 16, 17, 32, 33, 48, 65]),
    k=st.sampled_from([0, 1, 3, 8, 9, 63, 64, 100, 257, 1030]),
    bits_group=GROUPS,
    pad=st.sampled_from([0, 3]),
    seed=st.integers(0, 99),
)
def test_matches_the_dequantized_reference(isa: str, m, n, k, bits_group, pad, seed) -> None:
    bits, group = bits_group
    gen = torch.Generator().manual_seed(seed)
    q, s, z, w = random_weight(n, k, bits, group, gen)
    a = torch.randn(m, k + pad, generator=gen)[:, :k]  # strided rows when pad > 0
    with dispatch_at(isa):
        got = run(a, pack(q, s, z, bits, group, k))
    assert_fp32_close(got, *reference(a, w))


@pytest.mark.parametrize("isa", ISA_PARAMS)
@given(
    m=st.sampled_from([1, 3, 13]),
    n=st.sampled_from([5, 33]),
    k=st.sampled_from([7, 130]),
    bits_group=GROUPS,
    act=st.sampled_from(sorted(ACTS)),
    bias=st.booleans(),
    residual=st.sampled_from([None, "before", "after"]),
    seed=st.integers(0, 99),
)
def test_epilogues(isa: str, m, n, k, bits_group, act, bias, residual, seed) -> None:
    bits, group = bits_group
    gen = torch.Generator().manual_seed(seed)
    q, s, z, w = random_weight(n, k, bits, group, gen)
    a = torch.randn(m, k, generator=gen)
    b = torch.randn(n, generator=gen) if bias else None
    r = torch.randn(m, n, generator=gen) if residual else None
    with dispatch_at(isa):
        got = run(a, pack(q, s, z, bits, group, k), b, r, residual == "before", act)
    v = a.double() @ w.double().t()
    v = v + b.double() if b is not None else v
    v = v + r.double() if residual == "before" else v
    v = ACTS[act](v)
    v = v + r.double() if residual == "after" else v
    torch.testing.assert_close(got.double(), v, atol=2e-5 * float(v.abs().max().clamp_min(1)), rtol=1e-5)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("m", [1, 4, 9])
def test_extremes_at_k_16384(isa: str, m: int) -> None:
    """int8 at -128/127 and int4 at 0/15 with zero points 0 and 15 over K = 16384: the fp32 sums stay within the
    fp32 bound (no overflow, no lost chunk)."""
    k, n = 16384, 40
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(m, k, generator=gen) + 0.5
    q8 = torch.where(torch.rand(n, k, generator=gen) < 0.5, -128, 127).to(torch.int8)
    s8 = torch.rand(n, 1, generator=gen) + 0.5
    q4 = torch.where(torch.rand(n, k, generator=gen) < 0.5, 0, 15).to(torch.uint8)
    s4 = torch.rand(n, k // 128, generator=gen) + 0.5
    z4 = torch.where(torch.rand(n, k // 128, generator=gen) < 0.5, 0, 15).to(torch.uint8)
    cases = [(q8, s8, None, 8, 0), (pack_int4(q4), s4, z4, 4, 128)]
    for q, s, z, bits, group in cases:
        zz = torch.zeros_like(s, dtype=torch.uint8) if z is None else z
        w = dequantize_weight_groups(q, s, zz, bits, group, k)
        with dispatch_at(isa):
            got = run(a, pack(q, s, z, bits, group, k))
        assert_fp32_close(got, *reference(a, w))


def test_zero_and_constant_groups_are_exact() -> None:
    w = torch.randn(6, 96)
    w[0] = 0.0
    w[1] = 0.75
    w[2, :32] = -3.0
    for bits, group in ((8, 0), (8, 32), (4, 32)):
        q, s, z = quantize_weight_groups(w, bits, group)
        d = dequantize_weight_groups(q, s, z, bits, group, 96)
        assert torch.equal(d[0], w[0]) and torch.equal(d[1], w[1])
        if group == 32:  # a constant group of a row that is not constant
            assert torch.equal(d[2, :32], w[2, :32])
        step = s.repeat_interleave(group or 96, dim=1)[:, :96]
        assert bool(((d - w).abs() <= step / 2 + 1e-7).all()), (bits, group)


@given(n=st.integers(0, 5), k=st.integers(0, 21))
def test_int4_pairs_round_trip(n: int, k: int) -> None:
    q = torch.randint(0, 16, (n, k), dtype=torch.uint8)
    assert torch.equal(unpack_int4(pack_int4(q), k), q)


def test_group_size_that_does_not_divide_k() -> None:
    """K = 100 in groups of 32: the last group has 4 k; nothing past K is read or summed."""
    gen = torch.Generator().manual_seed(3)
    q, s, z, w = random_weight(24, 100, 4, 32, gen)
    assert s.shape == (24, 4)
    a = torch.randn(2, 100, generator=gen)
    assert_fp32_close(run(a, pack(q, s, z, 4, 32, 100)), *reference(a, w))
    torch.testing.assert_close(wqlinear(a, q, s, z, bits=4, group=32), a @ w.t(), atol=1e-5, rtol=1e-5)


def test_bad_arguments_are_named() -> None:
    q = torch.zeros(4, 64, dtype=torch.int8)
    s = torch.ones(4, 2)
    z = torch.zeros(4, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="argument 'bits' must be 8 or 4"):
        _C.gemm_pack_b_wo(q.data_ptr(), 64, 4, 64, 5, 32, s.data_ptr(), 2, 0)
    with pytest.raises(ValueError, match="argument 'group' must be a multiple of 8 for int4"):
        _C.gemm_pack_b_wo(q.data_ptr(), 64, 4, 32, 4, 12, s.data_ptr(), 6, z.data_ptr())
    with pytest.raises(ValueError, match="argument 'group' 0 .* int4 needs a group size"):
        _C.gemm_pack_b_wo(q.data_ptr(), 64, 4, 32, 4, 0, s.data_ptr(), 1, z.data_ptr())
    with pytest.raises(ValueError, match="argument 'n_groups' is 3 but K = 64 in groups of 32 makes 2"):
        _C.gemm_pack_b_wo(q.data_ptr(), 64, 4, 64, 8, 32, s.data_ptr(), 3, 0)
    with pytest.raises(ValueError, match="argument 'zeros' must be null for int8"):
        _C.gemm_pack_b_wo(q.data_ptr(), 64, 4, 64, 8, 32, s.data_ptr(), 2, z.data_ptr())
    p = _C.gemm_pack_b_wo(q.data_ptr(), 64, 4, 64, 8, 32, s.data_ptr(), 2, 0)
    a, c = torch.zeros(2, 64), torch.zeros(2, 4)
    with pytest.raises(ValueError, match="argument 'K' is 63 but the packed B has K = 64"):
        _C.gemm_wo_packed(a.data_ptr(), 2, 63, 64, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="argument 'lda' must be >= K"):
        _C.gemm_wo_packed(a.data_ptr(), 2, 64, 8, p, c.data_ptr(), 4)
    with pytest.raises(ValueError, match="argument 'act' must be in"):
        _C.gemm_wo_packed(a.data_ptr(), 2, 64, 64, p, c.data_ptr(), 4, act=9)
    assert (p.bits, p.group, p.k, p.n) == (8, 32, 64, 4)
