"""Winograd F(2x2, 3x3) / F(4x4, 3x3) conv and the bf16 conv paths (csrc/kernels/winograd*, conv*) against torch.

fp32: max |got - ref| <= 1e-4 * max |ref| (the pre-activation magnitude, as in test_conv.py), on every ISA variant.

bf16 tolerance, derived from the rounding: bf16 keeps 8 significant bits, so rounding to nearest has relative error
u <= 2^-8, and a product of two rounded operands is off by at most 2u |x w| (fp32 accumulation adds ~1e-7). The
direct bf16 conv therefore satisfies |got - ref| <= 2^-7 * conv(|x|, |w|) elementwise. Winograd F(2x2) rounds the
*transformed* operands V_e = (B^T d B)_e and U_e = (G g G^T)_e instead: every entry of B^T and G is at most 1 in
magnitude, so |V_e| <= S = sum of |d| over the tile's 4x4 input patch and |U_e| <= l1(g) (all 9 taps: with
padding, taps outside the window still enter U and cancel only in exact arithmetic); each output sums at most 9
products m_e with coefficients +-1, so |got - ref| <= 9 * 2u * sum_c S_c * l1(g_c) = 18 * 2^-8 * that sum. The test
takes S over the 5x5 input box that holds every tile patch of an output (a superset). This worst case is loose
(observed errors are ~50x smaller); the ResNet checks bound the typical error (2e-2 of the logits).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends.cpu import native

from .isa import ISA_PARAMS, ISAS, dispatch_at

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")

if native.available():
    from lepton_graph import _C
    from lepton_graph.backends.cpu import conv as cconv

BF16 = native.available() and bool(_C.gemm_bf16_supported())
LAYOUTS = ("contiguous", "channels_last", "sliced", "permuted")
_ACTS = {"none": lambda t: t, "relu": torch.relu, "gelu": F.gelu, "silu": F.silu, "sigmoid": torch.sigmoid}
DIRECT_BF16_TOL = 2.0**-7
WINOGRAD_BF16_TOL = 18 * 2.0**-8


def _layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "sliced":  # every other channel of a wider tensor, and a wider row
        n, c, h, w = x.shape
        big = torch.zeros(n, 2 * c, h, w + 1)
        big[:, ::2, :, :w] = x
        return big[:, ::2, :, :w]
    if layout == "permuted":
        return x.transpose(2, 3).contiguous().transpose(2, 3)
    return x.contiguous()


def _close(got: torch.Tensor, ref: torch.Tensor, scale: float, tol: float = 1e-4) -> None:
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if ref.numel() == 0:
        return
    scale = max(ref.abs().max().item(), scale, 1e-6)
    err = (got - ref).abs().max().item() / scale
    assert err <= tol, f"relative error {err:.3g}"


def _within_bound(got: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor, tol: float) -> None:
    """|got - ref| <= tol * bound elementwise (bound = conv(|x|, |w|) + |bias| + |residual|), + 1e-5 of the scale."""
    assert got.shape == ref.shape
    if ref.numel() == 0:
        return
    slack = 1e-5 * bound.abs().max().item()
    excess = ((got - ref).abs() - tol * bound - slack).max().item()
    assert excess <= 0, f"error exceeds the bf16 bound by {excess:.3g}"


@st.composite
def cases(draw: st.DrawFn) -> dict:
    pads = [draw(st.integers(0, 2)) for _ in range(4)]  # top, bottom, left, right
    h = draw(st.integers(max(1, 3 - pads[0] - pads[1]), 13))
    w = draw(st.integers(max(1, 3 - pads[2] - pads[3]), 13))
    return dict(
        n=draw(st.sampled_from([0, 1, 1, 3])),
        c=draw(st.sampled_from([1, 2, 3, 7, 16, 33])),
        oc=draw(st.sampled_from([1, 5, 16, 33, 40])),
        h=h,
        w=w,
        pad=pads,
        tile=draw(st.sampled_from([2, 4])),
        bias=draw(st.booleans()),
        act=draw(st.sampled_from(list(_ACTS))),
        res=draw(st.sampled_from([None, "before", "after"])),
        layout=draw(st.sampled_from(LAYOUTS)),
        res_layout=draw(st.sampled_from(LAYOUTS)),
        isa=draw(st.sampled_from(ISAS)),
        seed=draw(st.integers(0, 2**16)),
    )


def _reference(
    case: dict,
    x: torch.Tensor,
    wt: torch.Tensor,
    b: torch.Tensor | None,
    res: torch.Tensor | None,
) -> tuple[torch.Tensor, float]:
    t, bt, lf, rt = case["pad"]
    ref = F.conv2d(F.pad(x, (lf, rt, t, bt)), wt, b)
    scale = ref.abs().amax().item() + 1.0 if ref.numel() else 0.0
    if case["res"] == "before":
        ref = ref + res
    ref = _ACTS[case["act"]](ref)
    if case["res"] == "after":
        ref = ref + res
    return ref, scale


def _inputs(case: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["n"], case["c"], case["h"], case["w"], generator=g)
    wt = torch.randn(case["oc"], case["c"], 3, 3, generator=g)
    b = torch.randn(case["oc"], generator=g) if case["bias"] else None
    t, bt, lf, rt = case["pad"]
    res = torch.randn(case["n"], case["oc"], case["h"] + t + bt - 2, case["w"] + lf + rt - 2, generator=g)
    return x, wt, b, res


def _run(case: dict, x, wt, b, res, bf16: bool, winograd: int) -> torch.Tensor:
    return cconv.conv2d_f32(
        _layout(x, case["layout"]),
        wt,
        b,
        1,
        case["pad"],
        1,
        1,
        case["act"],
        None if case["res"] is None else _layout(res, case["res_layout"]),
        case["res"] != "after",
        bf16=bf16,
        winograd=winograd,
    )


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_winograd_matches_torch(case: dict) -> None:
    x, wt, b, res = _inputs(case)
    ref, scale = _reference(case, x, wt, b, res)
    with dispatch_at(case["isa"]):
        got = _run(case, x, wt, b, res, False, case["tile"])
    _close(got, ref, scale)
    assert got.is_contiguous(memory_format=torch.channels_last) or got.numel() == 0 or got.shape[1] == 1


@pytest.mark.skipif(not BF16, reason="no AVX512_BF16 (the bf16 paths would run emulated)")
@settings(max_examples=25, deadline=None)
@given(case=cases(), winograd=st.sampled_from([0, 2]))
def test_bf16_conv_within_rounding_bound(case: dict, winograd: int) -> None:
    case = dict(case, act="none" if case["act"] not in ("none", "relu") else case["act"])
    x, wt, b, res = _inputs(case)
    ref, _ = _reference(case, x, wt, b, res)
    t, bt, lf, rt = case["pad"]
    xp = F.pad(x, (lf, rt, t, bt)).abs()
    if winograd:  # sum_c (|x_c| over the 5x5 box from (y-1, x-1)) * l1(w[oc, c]); relu is 1-Lipschitz
        box = F.avg_pool2d(F.pad(xp, (1, 1, 1, 1)), 5, 1, count_include_pad=True) * 25
        bound = F.conv2d(box, wt.abs().sum((2, 3), keepdim=True))
    else:
        bound = F.conv2d(xp, wt.abs())
    with dispatch_at(case["isa"]):  # below AVX-512 the bf16 paths run their portable emulation
        got = _run(case, x, wt, b, res, True, winograd)
    _within_bound(got, ref, bound, WINOGRAD_BF16_TOL if winograd else DIRECT_BF16_TOL)


@pytest.mark.skipif(not BF16, reason="no AVX512_BF16")
@pytest.mark.parametrize(
    ("c", "hw", "oc", "k", "s", "p"),
    [
        (3, 40, 64, 7, 2, 3),  # ResNet stem (NCHW input, 3 channels padded to 4)
        (64, 16, 128, 3, 2, 1),  # strided 3x3
        (64, 14, 128, 1, 2, 0),  # 1x1/2 downsample
        (5, 9, 7, 3, 1, 2),  # odd channels
    ],
)
def test_bf16_direct_conv_resnet_shapes(c: int, hw: int, oc: int, k: int, s: int, p: int) -> None:
    g = torch.Generator().manual_seed(c + oc)
    x, wt, b = torch.randn(1, c, hw, hw, generator=g), torch.randn(oc, c, k, k, generator=g), torch.randn(oc)
    ref = torch.relu(F.conv2d(x, wt, b, s, p))
    bound = F.conv2d(x.abs(), wt.abs(), None, s, p)
    for layout in ("contiguous", "channels_last"):
        got = cconv.conv2d_f32(_layout(x, layout), wt, b, s, p, act="relu", bf16=True)
        _within_bound(got, ref, bound, DIRECT_BF16_TOL)


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize(("c", "hw", "n"), [(64, 56, 1), (128, 28, 1), (256, 14, 3), (512, 7, 1)])
def test_winograd_resnet_layers(isa: str, c: int, hw: int, n: int) -> None:
    """ResNet-18's 3x3 block convs, with the residual block's epilogue (bias + residual, relu)."""
    if isa == "scalar" and c > 64:
        pytest.skip("the portable path is slow; covered by the hypothesis shapes")
    g = torch.Generator().manual_seed(c)
    x = torch.randn(n, c, hw, hw, generator=g).contiguous(memory_format=torch.channels_last)
    wt, b = torch.randn(c, c, 3, 3, generator=g) * (2.0 / (9 * c)) ** 0.5, torch.randn(c, generator=g)
    res = torch.randn(n, c, hw, hw, generator=g).contiguous(memory_format=torch.channels_last)
    ref = F.conv2d(x, wt, b, 1, 1)
    with dispatch_at(isa):
        for tile in (2, 4):
            got = cconv.conv2d_f32(x, wt, b, 1, 1, act="relu", residual=res, winograd=tile)
            _close(got, torch.relu(ref + res), ref.abs().max().item())


def test_bad_arguments_raise_value_error() -> None:
    w = torch.randn(4, 3, 3, 3)
    mk = _C.Conv2dWinograd
    with pytest.raises(ValueError, match="tile"):
        mk(w.data_ptr(), list(w.shape), list(w.stride()), [1, 1, 1, 1], 0, True, 3, False)
    w5 = torch.randn(4, 3, 5, 5)
    with pytest.raises(ValueError, match="w_shape"):
        mk(w5.data_ptr(), list(w5.shape), list(w5.stride()), [1, 1, 1, 1], 0, True, 2, False)
    with pytest.raises(ValueError, match="padding"):
        mk(w.data_ptr(), list(w.shape), list(w.stride()), [1, 1], 0, True, 2, False)
    with pytest.raises(ValueError, match="act"):
        mk(w.data_ptr(), list(w.shape), list(w.stride()), [1, 1, 1, 1], 42, True, 2, False)
    conv = mk(w.data_ptr(), list(w.shape), list(w.stride()), [1, 1, 1, 1], 0, True, 4, False)
    assert conv.output_shape([2, 3, 5, 7]) == [2, 4, 5, 7]
    x, y = torch.randn(1, 3, 8, 8), torch.empty(1, 4, 8, 8)
    with pytest.raises(ValueError, match="channels"):
        conv.run(
            x.data_ptr(),
            [1, 2, 8, 8],
            list(x.stride()),
            y.data_ptr(),
            [1, 4, 8, 8],
            list(y.stride()),
            0,
            0,
            [0, 0, 0, 0],
        )
    with pytest.raises(ValueError, match="y_shape"):
        conv.run(
            x.data_ptr(),
            list(x.shape),
            list(x.stride()),
            y.data_ptr(),
            [1, 4, 6, 6],
            list(y.stride()),
            0,
            0,
            [0, 0, 0, 0],
        )


def test_lowering_picks_winograd_tiles() -> None:
    pick = cconv.winograd_tile
    assert pick((64, 64, 3, 3), (1, 64, 56, 56), (1, 1), (1, 1), 1, False) == 4
    assert pick((512, 512, 3, 3), (1, 512, 7, 7), (1, 1), (1, 1), 1, False) == 2
    assert pick((512, 512, 3, 3), (1, 512, 7, 7), (1, 1), (1, 1), 1, True) == 2
    assert pick((64, 64, 3, 3), (1, 64, 56, 56), (2, 2), (1, 1), 1, False) == 0
    assert pick((64, 64, 3, 3), (1, 64, 56, 56), (1, 1), (2, 2), 1, False) == 0
    assert pick((64, 32, 3, 3), (1, 64, 56, 56), (1, 1), (1, 1), 2, False) == 0
    assert pick((8, 8, 3, 3), (1, 8, 56, 56), (1, 1), (1, 1), 1, False) == 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resnet18_compiles_native_with_winograd(precision: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """ResNet-18 runs every conv natively, its 3x3 stride-1 convs by Winograd; fp32 within 1e-4 of eager,
    bf16 (AVX512_BF16 only) within 2e-2."""
    import lepton_graph
    from lepton_graph import zoo

    if precision == "bf16" and not BF16:
        pytest.skip("no AVX512_BF16")
    picked: list[int] = []
    pick = cconv.winograd_tile

    def spy(*args):
        picked.append(pick(*args))
        return picked[-1]

    monkeypatch.setattr(cconv, "winograd_tile", spy)
    model, (args, _) = zoo.build("resnet18_b1")
    with torch.no_grad():
        compiled = lepton_graph.compile(model, precision=precision)
        got, ref = compiled(*args), model(*args)
    report = compiled.report().as_dict()
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    assert err <= (1e-4 if precision == "fp32" else 2e-2), err
    ops = report.get("fallback_ops") or {}
    assert not any("conv2d" in k for k in ops), ops
    assert sorted(t for t in picked if t) == ([2] * 3 + [4] * 10 if precision == "fp32" else [2] * 13), picked


@pytest.mark.parametrize("isa", ISA_PARAMS)
@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_writes_strided_outputs(isa: str, tile: int) -> None:
    """y and the residual in NCHW (channel stride H*W): the transforms' strided store/load path."""
    g = torch.Generator().manual_seed(tile)
    x, wt, b = torch.randn(2, 5, 9, 6, generator=g), torch.randn(19, 5, 3, 3, generator=g), torch.randn(19)
    res = torch.randn(2, 19, 9, 6, generator=g)
    ref = F.conv2d(x, wt, b, 1, 1)
    conv = _C.Conv2dWinograd(wt.data_ptr(), list(wt.shape), list(wt.stride()), [1, 1, 1, 1], 1, False, tile, False)
    y = torch.empty(2, 19, 9, 6)
    with dispatch_at(isa):
        conv.run(
            x.data_ptr(),
            list(x.shape),
            list(x.stride()),
            y.data_ptr(),
            list(y.shape),
            list(y.stride()),
            b.data_ptr(),
            res.data_ptr(),
            list(res.stride()),
        )
    _close(y, torch.relu(ref) + res, ref.abs().max().item())
