"""Fused attention (csrc/kernels/attention*.cpp, lowering in backends/cpu/attention.py) against torch eager SDPA.

Every ISA variant the machine has runs in-process (set_max_isa): shapes around the vector widths and block sizes,
q/k/v as the strided views a fused QKV projection produces, GQA, causal with L != S, bool / float masks in every
broadcast form, fully masked rows, and bad arguments (ValueError, not a crash).
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends.cpu import native
from lepton_graph.ir import DType, Graph, Op

from ..strategies import LAYOUTS, make_tensor
from .isa import ISA_PARAMS, ISAS, dispatch_at

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")

if native.available():
    from lepton_graph import _C
    from lepton_graph.backends import LowerOptions
    from lepton_graph.backends.cpu.attention import lower_sdpa


def reference(q, k, v, mask=None, causal=False, scale=None):
    """torch SDPA; causal + mask combined explicitly (some torch paths refuse both at once)."""
    L, S = q.shape[-2], k.shape[-2]
    if causal and mask is not None:
        keep = torch.ones(L, S, dtype=torch.bool).tril()
        mask = mask & keep if mask.dtype == torch.bool else mask.masked_fill(~keep, float("-inf"))
        causal = False
    gqa = q.dim() >= 3 and q.shape[-3] != k.shape[-3]
    return F.scaled_dot_product_attention(q, k, v, mask, is_causal=causal, scale=scale, enable_gqa=gqa)


def sdpa_kernel(
    q_shape, k_shape, v_shape, mask=None, *, causal=False, scale=None, gqa=None, consumer=None, precision=None
):
    """The lowered kernel for an SDPA node of these shapes (consumer: "transpose" adds a transpose(1, 2) user;
    precision: graph.meta["precision"], "bf16" for the mixed-precision kernel)."""
    g = Graph()
    if precision is not None:
        g.meta["precision"] = precision
    ins = [g.add_input(s, DType.f32) for s in (q_shape, k_shape, v_shape)]
    if mask is not None:
        ins.append(g.add_input(tuple(mask.shape), DType.from_torch(mask.dtype)))
    if gqa is None:
        gqa = len(q_shape) >= 3 and q_shape[-3] != k_shape[-3]
    node = g.add_node(Op.SDPA, ins, {"is_causal": causal, "scale": scale, "enable_gqa": gqa})
    if consumer == "transpose":
        t = g.add_node(Op.TRANSPOSE, [node.out], {"dim0": 1, "dim1": 2})
        g.outputs = [t.out]
    else:
        g.outputs = [node.out]
    return lower_sdpa(node, g, LowerOptions())


def qkv_views(B, H, Hkv, L, S, E, Ev, layout, seed):
    """q (B,H,L,E), k (B,Hkv,S,E), v (B,Hkv,S,Ev) as contiguous tensors, as split + view + transpose of fused
    projections (the layout HF models produce), or with padded strides on every dim."""
    gen = torch.Generator().manual_seed(seed)
    if layout == "fused" and L == S:
        x = torch.randn(B, L, H * E + Hkv * E + Hkv * Ev, generator=gen)
        q, k, v = x.split([H * E, Hkv * E, Hkv * Ev], dim=-1)
        return (
            q.view(B, L, H, E).transpose(1, 2),
            k.view(B, S, Hkv, E).transpose(1, 2),
            v.view(B, S, Hkv, Ev).transpose(1, 2),
        )
    if layout in ("fused", "padded"):
        return tuple(
            torch.randn(b + 1, h + 2, n + 3, e + 5, generator=gen)[:b, 1 : h + 1, 2 : n + 2, 3 : e + 3]
            for b, h, n, e in ((B, H, L, E), (B, Hkv, S, E), (B, Hkv, S, Ev))
        )
    if layout in LAYOUTS:  # the shared layouts: transposed (feature stride != 1), strided, offset
        return tuple(
            make_tensor(shape, torch.float32, layout, seed + i)
            for i, shape in enumerate(((B, H, L, E), (B, Hkv, S, E), (B, Hkv, S, Ev)))
        )
    return (
        torch.randn(B, H, L, E, generator=gen),
        torch.randn(B, Hkv, S, E, generator=gen),
        torch.randn(B, Hkv, S, Ev, generator=gen),
    )


def make_mask(kind, form, B, H, L, S, seed):
    if kind == "none":
        return None
    shape = {"LS": (L, S), "S": (1, S), "L": (L, 1), "full": (B, H, L, S), "B11S": (B, 1, 1, S)}[form]
    gen = torch.Generator().manual_seed(seed)
    if kind == "bool":
        return torch.rand(shape, generator=gen) > 0.3
    m = torch.randn(shape, generator=gen)
    return m.masked_fill(torch.rand(shape, generator=gen) < 0.2, float("-inf"))


def check(got, ref):
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert not torch.isnan(got).any() or torch.isnan(ref).any()
    denom = max(ref.abs().max().item(), 1e-6) if ref.numel() else 1.0
    err = (got - ref).abs().max().item() / denom if ref.numel() else 0.0
    assert err <= 1e-4, f"relative error {err}"


EDGE = [0, 1, 2, 7, 15, 16, 17, 31, 33, 63, 64, 65, 100, 130]


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(0, 2),
    Hkv=st.integers(1, 3),
    group=st.sampled_from([1, 1, 2, 3]),
    L=st.sampled_from(EDGE),
    S=st.sampled_from(EDGE),
    E=st.sampled_from([1, 3, 16, 17, 64]),
    Ev=st.sampled_from([1, 5, 16, 33, 64, 65]),
    causal=st.booleans(),
    mask_kind=st.sampled_from(["none", "bool", "float"]),
    mask_form=st.sampled_from(["LS", "S", "L", "full", "B11S"]),
    layout=st.sampled_from(["fused", "padded", *LAYOUTS]),
    scale=st.sampled_from([None, 0.3]),
    consumer=st.sampled_from([None, "transpose"]),
    seed=st.integers(0, 2**16),
)
def test_sdpa_matches_torch(B, Hkv, group, L, S, E, Ev, causal, mask_kind, mask_form, layout, scale, consumer, seed):
    H = Hkv * group
    q, k, v = qkv_views(B, H, Hkv, L, S, E, Ev, layout, seed)
    if causal:  # torch's SDPA (the op's spec) refuses an explicit mask with is_causal; see test_causal_and_mask
        mask_kind = "none"
    mask = make_mask(mask_kind, mask_form, B, H, L, S, seed)
    ref = reference(q, k, v, mask, causal, scale)
    kernel = sdpa_kernel(q.shape, k.shape, v.shape, mask, causal=causal, scale=scale, consumer=consumer)
    assert callable(kernel), kernel
    for isa in ISAS:
        with dispatch_at(isa):
            got = kernel(q, k, v) if mask is None else kernel(q, k, v, mask)
        check(got, ref)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize(
    "shape,causal",
    [((1, 12, 128, 64), False), ((1, 12, 197, 64), False), ((1, 12, 128, 64), True), ((1, 2, 700, 64), True)],
)
def test_zoo_shapes_fused_qkv(isa, shape, causal):
    B, H, L, E = shape
    q, k, v = qkv_views(B, H, H, L, L, E, E, "fused", 0)
    kernel = sdpa_kernel(q.shape, k.shape, v.shape, causal=causal, consumer="transpose")
    with dispatch_at(isa):
        got = kernel(q, k, v)
    check(got, reference(q, k, v, causal=causal))
    # written in (B, L, H, E) order: the transpose back to it is contiguous, the reshape after it a view
    assert got.transpose(1, 2).is_contiguous()


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_rows_are_zero_like_torch(isa, kind):
    B, H, L, S, E = 1, 2, 20, 37, 16
    q, k, v = qkv_views(B, H, H, L, S, E, E, "contiguous", 1)
    keep = torch.rand(B, H, L, S, generator=torch.Generator().manual_seed(3)) > 0.5
    keep[:, :, 3] = False  # every key masked for query 3
    keep[0, 1, 17] = False
    mask = keep if kind == "bool" else torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))
    ref = reference(q, k, v, mask)
    with dispatch_at(isa):
        got = sdpa_kernel(q.shape, k.shape, v.shape, mask)(q, k, v, mask)
    check(got, ref)
    assert (got[:, :, 3] == 0).all() and (ref[:, :, 3] == 0).all()


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_mask_values_and_trivial_masks(isa):
    """All-True / all-zero masks are dropped; huge finite negatives (finfo.min, HF style) are not -inf."""
    B, H, L, S, E = 2, 3, 33, 40, 24
    q, k, v = qkv_views(B, H, H, L, S, E, E, "padded", 2)
    masks = [
        torch.ones(L, S, dtype=torch.bool),
        torch.zeros(B, 1, 1, S),
        torch.zeros(B, 1, 1, S).index_fill_(-1, torch.tensor([5, 6, 39]), torch.finfo(torch.float32).min),
        torch.full((1, 1, L, S), torch.finfo(torch.float32).min),
    ]
    for mask in masks:
        ref = reference(q, k, v, mask)
        with dispatch_at(isa):
            got = sdpa_kernel(q.shape, k.shape, v.shape, mask)(q, k, v, mask)
        check(got, ref)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("rank", [2, 3])
def test_lower_ranks(isa, rank):
    g = torch.Generator().manual_seed(4)
    lead = (3,) if rank == 3 else ()
    q, k, v = (torch.randn(*lead, n, 20, generator=g) for n in (9, 30, 30))
    mask = torch.rand(9, 30, generator=g) > 0.2
    with dispatch_at(isa):
        got = sdpa_kernel(q.shape, k.shape, v.shape, mask)(q, k, v, mask)
        got_causal = sdpa_kernel(q.shape, k.shape, v.shape, causal=True)(q, k, v)
    check(got, reference(q, k, v, mask))
    check(got_causal, reference(q, k, v, causal=True))


def _raw_sdpa(q, k, v, mask=None, causal=False, scale=None, fn=None):
    B, H, L, E = q.shape
    Hkv, S, Ev = k.shape[1], k.shape[2], v.shape[3]
    out = torch.empty(B, H, L, Ev)
    m = mask.expand(B, H, L, S) if mask is not None else None
    (fn or _C.sdpa_f32)(
        q.data_ptr(),
        q.stride(),
        k.data_ptr(),
        k.stride(),
        v.data_ptr(),
        v.stride(),
        out.data_ptr(),
        out.stride(),
        0 if m is None else m.data_ptr(),
        0 if m is None else 1 if m.dtype == torch.bool else 2,
        (0, 0, 0, 0) if m is None else m.stride(),
        B,
        H,
        Hkv,
        L,
        S,
        E,
        Ev,
        causal,
        scale if scale is not None else 1 / math.sqrt(E),
    )
    return out


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("L,S", [(70, 70), (40, 90), (90, 40)])
def test_causal_and_mask(isa, kind, L, S):
    """The kernel combines is_causal with an explicit mask (top-left aligned), as torch's math path does."""
    q, k, v = qkv_views(2, 4, 2, L, S, 32, 40, "padded", 5)
    mask = make_mask(kind, "full", 2, 4, L, S, 6)
    with dispatch_at(isa):
        got = _raw_sdpa(q, k, v, mask, causal=True)
    check(got, reference(q, k, v, mask, causal=True))


def test_non_unit_feature_stride_is_copied():
    q, k, v = (torch.randn(1, 2, 20, 16).transpose(-1, -2) for _ in range(3))  # (1, 2, 16, 20), feature stride 16
    check(sdpa_kernel(q.shape, k.shape, v.shape)(q, k, v), reference(q, k, v))


def test_declines_unsupported():
    g = Graph()
    q = g.add_input((1, 2, 4, 8), DType.f64)
    node = g.add_node(Op.SDPA, [q, q, q])
    assert "float32" in lower_sdpa(node, g, LowerOptions())
    g = Graph()
    q = g.add_input((1, 1, 2, 4, 8), DType.f32)
    node = g.add_node(Op.SDPA, [q, q, q])
    assert "rank" in lower_sdpa(node, g, LowerOptions())
    g = Graph()
    q, kv = g.add_input((1, 4, 4, 8), DType.f32), g.add_input((1, 1, 4, 8), DType.f32)
    node = g.add_node(Op.SDPA, [q, kv, kv])  # heads broadcast by torch's matmul, without enable_gqa
    assert "head" in lower_sdpa(node, g, LowerOptions())


def _call(alias_out=False, **over):
    q = torch.randn(1, 2, 4, 8)
    out = q if alias_out else torch.empty(1, 2, 4, 8)
    args = dict(
        q_ptr=q.data_ptr(),
        q_strides=q.stride(),
        k_ptr=q.data_ptr(),
        k_strides=q.stride(),
        v_ptr=q.data_ptr(),
        v_strides=q.stride(),
        out_ptr=out.data_ptr(),
        out_strides=out.stride(),
        mask_ptr=0,
        mask_kind=0,
        mask_strides=(0, 0, 0, 0),
        B=1,
        Hq=2,
        Hkv=2,
        L=4,
        S=4,
        E=8,
        Ev=8,
        is_causal=False,
        scale=0.5,
    )
    args.update(over)
    _C.sdpa_f32(**args)
    return q, out


def test_bad_arguments_raise_value_error():
    q, out = _call()
    check(out, reference(q, q, q, scale=0.5))
    # each error names the argument at fault
    bad = [
        (dict(B=-1), "'B' must be >= 0"),
        (dict(Hkv=0), "'Hkv' must be >= 1"),
        (dict(Hq=3), "'Hq' must be a multiple of Hkv"),
        (dict(mask_kind=3), "'mask_kind' must be 0"),
        (dict(scale=math.inf), "'scale' must be finite"),
        (dict(q_strides=(64, 32, 8, 2)), "'q_strides'"),
        (dict(out_strides=(64, 32, 8, -1)), "'out_strides'"),
        (dict(q_ptr=0), "'q_ptr' is null"),
        (dict(q_ptr=q.data_ptr() + 2), "'q_ptr' is not aligned"),
        (dict(mask_kind=1), "'mask_ptr' is null"),
        (dict(alias_out=True), "'out_ptr' overlaps q"),
    ]
    for over, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            _call(**over)
    with pytest.raises(TypeError):
        _call(q_strides=(1, 2, 3))


class _Attention(torch.nn.Module):
    def __init__(self, dim=48, heads=3, causal=False):
        super().__init__()
        self.qkv, self.proj, self.heads, self.causal = (
            torch.nn.Linear(dim, 3 * dim),
            torch.nn.Linear(dim, dim),
            heads,
            causal,
        )

    def forward(self, x, mask):
        B, L, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, L, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))
        o = F.scaled_dot_product_attention(q, k, v, None if self.causal else mask, is_causal=self.causal)
        return self.proj(o.transpose(1, 2).reshape(B, L, D))


@pytest.mark.parametrize("causal", [False, True])
def test_compiled_model_runs_sdpa_natively(causal):
    import lepton_graph

    torch.manual_seed(0)
    model = _Attention(causal=causal).eval()
    x = torch.randn(2, 19, 48)
    mask = torch.rand(2, 1, 1, 19) > 0.2
    with torch.no_grad():
        ref = model(x, mask)
        compiled = lepton_graph.compile(model)
        got = compiled(x, mask)
    check(got, ref)
    report = compiled.report().as_dict()
    assert report["native_nodes"] >= 1
    assert not any("sdpa" in op for op in report.get("fallback_ops", {}))


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("threads", [1, 3, 16])
def test_query_block_sizes_and_threads(isa, threads):
    """More threads than (batch x head x block) tasks shrinks the query blocks (48, 32, 16 rows): causal trimming
    and masks must hold for every block size and alignment against the key blocks."""
    before = native.get_num_threads()
    q, k, v = qkv_views(1, 2, 1, 150, 170, 40, 24, "padded", 7)
    mask = make_mask("float", "LS", 1, 2, 150, 170, 8)
    try:
        native.set_num_threads(threads)
        with dispatch_at(isa):
            got_causal = sdpa_kernel(q.shape, k.shape, v.shape, causal=True)(q, k, v)
            got_mask = sdpa_kernel(q.shape, k.shape, v.shape, mask)(q, k, v, mask)
            got_both = _raw_sdpa(q, k, v, mask, causal=True)
    finally:
        native.set_num_threads(before)
    check(got_causal, reference(q, k, v, causal=True))
    check(got_mask, reference(q, k, v, mask))
    check(got_both, reference(q, k, v, mask, causal=True))


# ---------------------------------------------------------------------------------------------------- bf16 mode

# Tolerance of the bf16 kernel vs torch on the bf16-rounded q, k, v (fp64): what remains is the rounding of the
# pre-scaled Q and of P to bf16 (unit roundoff u = 2^-8 each; a score error of |s| u moves p by the same relative
# amount, |s| <~ 4 for these inputs) and fp32 accumulation: a few u of the output's scale. 2e-2 = 5u.
BF16_TOL = 5 * 2.0**-8


def _bf16_round(t):
    return t.to(torch.bfloat16).to(torch.float64)


def check_bf16(got, q, k, v, mask=None, causal=False, scale=None):
    ref = reference(
        _bf16_round(q),
        _bf16_round(k),
        _bf16_round(v),
        mask if mask is None or mask.dtype == torch.bool else mask.double(),
        causal,
        scale,
    )
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert torch.equal(torch.isnan(got), torch.isnan(ref))
    if ref.numel():
        err = (got.double() - ref).nan_to_num().abs().max().item() / max(ref.nan_to_num().abs().max().item(), 1e-6)
        assert err <= BF16_TOL, f"relative error {err}"


@settings(max_examples=20, deadline=None)
@given(
    B=st.integers(0, 2),
    Hkv=st.integers(1, 3),
    group=st.sampled_from([1, 1, 2, 3]),
    L=st.sampled_from(EDGE),
    S=st.sampled_from(EDGE),
    E=st.sampled_from([1, 3, 16, 17, 64, 80]),
    Ev=st.sampled_from([1, 5, 16, 33, 64, 65]),
    causal=st.booleans(),
    mask_kind=st.sampled_from(["none", "bool", "float"]),
    mask_form=st.sampled_from(["LS", "S", "L", "full", "B11S"]),
    layout=st.sampled_from(["contiguous", "fused", "padded"]),
    scale=st.sampled_from([None, 0.3]),
    consumer=st.sampled_from([None, "transpose"]),
    seed=st.integers(0, 2**16),
)
def test_sdpa_bf16_mode_matches_torch(
    B, Hkv, group, L, S, E, Ev, causal, mask_kind, mask_form, layout, scale, consumer, seed
):
    """precision="bf16": the vdpbf16ps kernel on AVX512_BF16 (bf16 tolerance), the exact fp32 kernel elsewhere."""
    H = Hkv * group
    q, k, v = qkv_views(B, H, Hkv, L, S, E, Ev, layout, seed)
    if causal:
        mask_kind = "none"
    mask = make_mask(mask_kind, mask_form, B, H, L, S, seed)
    kernel = sdpa_kernel(
        q.shape, k.shape, v.shape, mask, causal=causal, scale=scale, consumer=consumer, precision="bf16"
    )
    assert callable(kernel), kernel
    args = (q, k, v) if mask is None else (q, k, v, mask)
    for isa in ISAS:
        with dispatch_at(isa):
            got = kernel(*args)
            mixed = bool(_C.sdpa_bf16_supported())
        if mixed:
            check_bf16(got, q, k, v, mask, causal, scale)
        else:
            check(got, reference(q, k, v, mask, causal, scale))


@pytest.mark.skipif(not native.available() or not _C.sdpa_bf16_supported(), reason="no AVX512_BF16")
@pytest.mark.parametrize(
    "shape,causal",
    [((1, 12, 128, 64), False), ((1, 12, 197, 64), False), ((1, 12, 128, 64), True), ((2, 4, 300, 32), True)],
)
@pytest.mark.parametrize("kind", ["none", "bool", "float"])
def test_sdpa_bf16_zoo_shapes(shape, causal, kind):
    """Zoo shapes (BERT, ViT, GPT-2 causal, longer than one key block) with key-padding masks, combined with causal
    through the raw binding; the bf16 result differs from fp32 and stays within the bf16 tolerance."""
    B, H, L, E = shape
    q, k, v = qkv_views(B, H, H, L, L, E, E, "fused", 1)
    mask = make_mask(kind, "B11S", B, H, L, L, 2)
    got = _raw_sdpa(q, k, v, mask, causal=causal, fn=_C.sdpa_bf16)
    check_bf16(got, q, k, v, mask, causal)
    assert not torch.equal(got, _raw_sdpa(q, k, v, mask, causal=causal))


@pytest.mark.skipif(not native.available() or not _C.sdpa_bf16_supported(), reason="no AVX512_BF16")
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_bf16_fully_masked_rows_are_zero(kind):
    q, k, v = qkv_views(1, 2, 2, 20, 40, 16, 16, "contiguous", 3)
    if kind == "bool":
        mask = torch.rand(1, 2, 20, 40) > 0.5
        mask[:, :, 3] = False
    else:
        mask = torch.randn(1, 2, 20, 40)
        mask[:, :, 3] = float("-inf")
    got = _raw_sdpa(q, k, v, mask, fn=_C.sdpa_bf16)
    assert (got[:, :, 3] == 0).all()
    keep = torch.ones(20, dtype=torch.bool)
    keep[3] = False
    check_bf16(got[:, :, keep], q[:, :, keep], k, v, mask[:, :, keep])


@pytest.mark.parametrize("causal", [False, True])
def test_compiled_model_bf16_runs_sdpa_natively(causal):
    """compile(precision="bf16"): the SDPA node is native and the model matches eager within the bf16 bar."""
    import lepton_graph

    torch.manual_seed(0)
    model = _Attention(dim=64, heads=2, causal=causal).eval()
    x = torch.randn(2, 37, 64)
    mask = torch.rand(2, 1, 1, 37) > 0.2
    with torch.no_grad():
        ref = model(x, mask)
        compiled = lepton_graph.compile(model, precision="bf16")
        got = compiled(x, mask)
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    if _C.sdpa_bf16_supported():  # bf16 ran: its rounding shows, within the bf16 bar
        assert 1e-6 < err <= 2e-2, err
    else:  # no AVX512_BF16: fp32 ran, and must meet fp32's bar
        assert err <= 1e-4, err
    report = compiled.report().as_dict()
    assert report["native_nodes"] >= 1
    assert not any("sdpa" in op for op in report.get("fallback_ops", {}))


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_head_shared_general_mask(isa, kind, transposed, threads):
    """A (B, 1, L, S) mask (HF's extended attention mask) is converted once per batch into a key-major table shared
    by the heads: contiguous and transposed (key stride != 1) mask views, several batches, fp32 and bf16."""
    B, H, L, S = 2, 6, 45, 77
    q, k, v = qkv_views(B, H, H, L, S, 24, 20, "padded", 11)
    gen = torch.Generator().manual_seed(12)
    shape = (B, 1, S, L) if transposed else (B, 1, L, S)
    mask = torch.rand(shape, generator=gen) > 0.3 if kind == "bool" else torch.randn(shape, generator=gen)
    if transposed:
        mask = mask.transpose(-1, -2)
    before = native.get_num_threads()
    try:
        native.set_num_threads(threads)
        with dispatch_at(isa):
            got = _raw_sdpa(q, k, v, mask)
            got16 = _raw_sdpa(q, k, v, mask, fn=_C.sdpa_bf16)
            mixed = bool(_C.sdpa_bf16_supported())
    finally:
        native.set_num_threads(before)
    check(got, reference(q, k, v, mask))
    if mixed:
        check_bf16(got16, q, k, v, mask)
    else:
        check(got16, reference(q, k, v, mask))
