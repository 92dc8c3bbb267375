"""Native int8 conv (csrc/kernels/conv_int8.cpp on the int8 GEMM driver) against the registry's exact reference.

The reference (ir/defs/quant.py's qconv2d) sums the integer products exactly in float64; without an epilogue that
needs rounding (no activation, no residual) the kernel must equal it bit for bit, on every ISA path, for static and
per-image dynamic quantization, any input layout, odd channel counts, windows, strides, dilations and paddings, and
empty batches. With activations and residuals it must match to fp32 rounding. Saturation (u8 255 x s8 127 at
K = 9216) is exact; a K past the int32 bound is refused.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends.cpu import native
from lepton_graph.ir.defs.quant import qconv2d, quantize_weight_per_channel

from .isa import ISA_PARAMS, ISAS, dispatch_at
from .test_conv import _ACTS, LAYOUTS, _close, _layout

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")

if native.available():
    from lepton_graph.backends.cpu import conv as cconv


def _weights(oc: int, c: int, kh: int, kw: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    w8, scale = quantize_weight_per_channel(torch.randn(oc, c * kh * kw, generator=g))
    return w8.reshape(oc, c, kh, kw), scale


def _reference(x, w8, scale, b, case: dict) -> torch.Tensor:
    static = case["static"]
    return qconv2d(
        x,
        w8,
        scale,
        b,
        stride=case["s"],
        padding=case["p"],
        dilation=case["d"],
        groups=1,
        act="static" if static else "dynamic",
        scale=static[0] if static else 1.0,
        zero_point=static[1] if static else 0,
    )


@st.composite
def qconv_cases(draw: st.DrawFn) -> dict:
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.sampled_from([1, 1, 2])), draw(st.sampled_from([1, 1, 2]))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    return dict(
        n=draw(st.sampled_from([0, 1, 1, 2, 3])),
        c=draw(st.sampled_from([1, 2, 3, 5, 8, 17, 40])),
        h=draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 12)),
        w=draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 12)),
        oc=draw(st.sampled_from([1, 2, 5, 16, 17, 33, 64])),
        k=(kh, kw),
        s=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        p=(ph, pw),
        d=(dh, dw),
        static=draw(st.sampled_from([None, (0.02, 128), (0.011, 3), (0.05, 250)])),
        bias=draw(st.booleans()),
        act=draw(st.sampled_from(["none", "none", "relu", "gelu", "sigmoid"])),
        res=draw(st.sampled_from([None, None, "before", "after"])),
        layout=draw(st.sampled_from(LAYOUTS)),
        res_layout=draw(st.sampled_from(LAYOUTS)),
        isa=draw(st.sampled_from(ISAS)),
        seed=draw(st.integers(0, 2**16)),
    )


@settings(max_examples=80)
@given(case=qconv_cases())
def test_qconv2d_matches_reference(case: dict) -> None:
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["n"], case["c"], case["h"], case["w"], generator=g) * 1.5
    w8, scale = _weights(case["oc"], case["c"], *case["k"], g)
    b = torch.randn(case["oc"], generator=g) if case["bias"] else None
    ref = _reference(x, w8, scale, b, case)
    res = torch.randn(ref.shape, generator=g)
    pre = ref.abs().amax().item() + 1.0 if ref.numel() else 0.0
    if case["res"] == "before":
        ref = ref + res
    ref = _ACTS[case["act"]](ref)
    if case["res"] == "after":
        ref = ref + res
    with dispatch_at(case["isa"]):
        got = cconv.conv2d_u8s8(
            _layout(x, case["layout"]),
            w8,
            scale,
            b,
            case["s"],
            case["p"],
            case["d"],
            case["act"],
            None if case["res"] is None else _layout(res, case["res_layout"]),
            case["res"] != "after",
            case["static"],
        )
    assert got.is_contiguous(memory_format=torch.channels_last) or got.numel() == 0
    if case["act"] == "none" and case["res"] is None:
        assert torch.equal(got, ref), (got - ref).abs().max()
    else:
        _close(got, ref, tol=1e-5, scale=pre)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize(
    ("c", "hw", "oc", "k", "s", "p"),
    [
        (3, 30, 64, 7, 2, 3),  # ResNet stem (NCHW input, C = 3: K = 147, not a multiple of 4)
        (64, 15, 64, 3, 1, 1),  # 3x3 block conv
        (64, 16, 128, 3, 2, 1),  # strided 3x3
        (64, 14, 128, 1, 2, 0),  # 1x1/2 downsample
        (48, 9, 40, 3, 1, 1),  # channel tails
    ],
)
def test_qconv2d_resnet_shapes(isa: str, c: int, hw: int, oc: int, k: int, s: int, p: int) -> None:
    g = torch.Generator().manual_seed(c * hw + oc)
    x = torch.randn(2, c, hw, hw, generator=g)
    w8, scale = _weights(oc, c, k, k, g)
    b = torch.randn(oc, generator=g)
    for static in (None, (0.03, 120)):
        case = dict(s=(s, s), p=(p, p), d=(1, 1), static=static)
        with dispatch_at(isa):
            got = cconv.conv2d_u8s8(x, w8, scale, b, s, p, 1, static=static)
        assert torch.equal(got, _reference(x, w8, scale, b, case))


@pytest.mark.parametrize("isa", ISA_PARAMS)
def test_qconv2d_saturation_is_exact(isa: str) -> None:
    """u8 255 (x at the top of the static range) x s8 +-127 over K = 1024 * 3 * 3: sums of 2.98e8, exact."""
    c, oc = 1024, 20
    x = torch.full((1, c, 4, 4), 255.0)
    w8 = torch.full((oc, c, 3, 3), 127, dtype=torch.int8)
    w8[1::2] = -127
    scale = torch.full((oc,), 1e-3)
    case = dict(s=(1, 1), p=(1, 1), d=(1, 1), static=(1.0, 0))
    with dispatch_at(isa):
        got = cconv.conv2d_u8s8(x, w8, scale, None, 1, 1, static=(1.0, 0))
    ref = _reference(x, w8, scale, None, case)
    assert torch.equal(got, ref)
    assert ref[0, 0, 1, 1].item() == pytest.approx(255 * 127 * c * 9 * 1e-3, rel=1e-6)


def test_qconv2d_zero_and_constant_images() -> None:
    """Dynamic quantization of an all-zero image (scale 1, zero point 0) gives the bias; a constant image is exact."""
    w8, scale = _weights(8, 3, 3, 3, torch.Generator().manual_seed(0))
    b = torch.arange(8.0)
    x = torch.zeros(2, 3, 5, 5)
    x[1] = 0.75
    got = cconv.conv2d_u8s8(x, w8, scale, b, 1, 1)
    assert torch.equal(got[0], b.reshape(8, 1, 1).expand(8, 5, 5))
    case = dict(s=(1, 1), p=(1, 1), d=(1, 1), static=None)
    assert torch.equal(got, _reference(x, w8, scale, b, case))
    wf = w8.float() * scale.reshape(-1, 1, 1, 1)
    _close(got[1:], F.conv2d(x[1:], wf, b, 1, 1), tol=1e-2)


def test_qconv2d_bad_arguments() -> None:
    w8 = torch.ones(4, 8192, 3, 3, dtype=torch.int8)
    with pytest.raises(ValueError, match="65536"):
        cconv.conv2d_u8s8(torch.zeros(1, 8192, 3, 3), w8, torch.ones(4), padding=1)
    w8, scale = _weights(4, 3, 3, 3, torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="channels"):
        cconv.conv2d_u8s8(torch.zeros(1, 5, 6, 6), w8, scale)
    with pytest.raises(ValueError, match="scale"):
        cconv.conv2d_u8s8(torch.zeros(1, 3, 6, 6), w8, scale, static=(0.0, 10))
    with pytest.raises(ValueError, match="zero_point"):
        cconv.conv2d_u8s8(torch.zeros(1, 3, 6, 6), w8, scale, static=(0.1, 300))
    with pytest.raises(ValueError):
        cconv.conv2d_u8s8(torch.zeros(1, 3, 6, 6), w8.float(), scale)
