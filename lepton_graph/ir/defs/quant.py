"""Quantized ops: registry entries whose references are the exact integer semantics the native kernels compute.

QLINEAR with act="dynamic" (int8-dynamic): each row of x (the last dim) is quantized at run time to u8, asymmetric
over [min(0, min), max(0, max)] (fp32 arithmetic, round half to even); the weight is int8 with one scale per output
channel (symmetric). The integer product is exact (summed in float64 here: every partial sum is an integer below
2^53), and the dequantized value is float32(sum) * float32(s_row * s_w). csrc/kernels/gemm_int8.h states the same
formula; tests/csrc/test_gemm_int8.py holds the kernels to it bit for bit.

QLINEAR with act="static" (int8-static): every row of x is quantized with one scale and zero point calibrated ahead
of time (attrs ``scale``, ``zero_point``; ``static_qparams`` turns a calibrated range into them); the rest as above.

QCONV2D (int8-dynamic / int8-static convolution, groups 1): x quantized like QLINEAR's, but with one scale and zero
point per image (act="dynamic": over the image's range extended to include 0) or per tensor (act="static"); the
weight is int8 (OC, C, KH, KW) with one scale per output channel. Padding taps hold the zero point, so they add
exactly 0: y = float32(conv(q - z, w8)) * float32(s * s_w) + b.

WQLINEAR (int8-weight, int4-weight): weight-only; x stays float32 and the weight is dequantized in groups of
``group`` consecutive k per output channel, w = (q - z) * s (fp32, one rounding); int8 symmetric (z = 0), int4
asymmetric over the group's range extended to include 0 (q, z in [0, 15]), stored two per byte (k even in the low
nibble). csrc/kernels/gemm_wo.h computes the same product in fp32 (another summation order).
"""

from __future__ import annotations

import torch

from ..ops import Op
from ..registry import register_op

Tensor = torch.Tensor


def quantize_rows_u8(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(q u8, scale f32, zero point i32) per row of ``x`` (..., K), as the native row quantizer computes them."""
    x = x.to(torch.float32)
    if x.shape[-1] == 0:
        lead = x.shape[:-1]
        return (
            torch.zeros(x.shape, dtype=torch.uint8, device=x.device),
            torch.ones(lead, device=x.device),
            torch.zeros(lead, dtype=torch.int32, device=x.device),
        )
    mn = torch.clamp(x.amin(-1), max=0.0)
    mx = torch.clamp(x.amax(-1), min=0.0)
    s = (mx - mn) / 255.0
    s = torch.where((s > 0) & torch.isfinite(s), s, torch.ones_like(s))
    inv = 1.0 / s
    z = torch.clamp(torch.round(-mn / s), 0, 255)
    v = torch.nan_to_num(x * inv.unsqueeze(-1), nan=-256.0).clamp(-256.0, 511.0)
    q = torch.clamp(torch.round(v) + z.unsqueeze(-1), 0, 255)
    return q.to(torch.uint8), s, z.to(torch.int32)


def quantize_u8_static(x: Tensor, scale: float, zero_point: int) -> Tensor:
    """u8 of ``x`` with one calibrated scale and zero point (int8-static), as the native static GEMM computes it:
    clamp(rint(x * (1 / scale)) + zero_point, 0, 255) in fp32, NaN as the lowest value."""
    inv = torch.tensor(1.0, dtype=torch.float32) / torch.tensor(scale, dtype=torch.float32)
    v = torch.nan_to_num(x.to(torch.float32) * inv, nan=-256.0).clamp(-256.0, 511.0)
    return torch.clamp(torch.round(v) + zero_point, 0, 255).to(torch.uint8)


def static_qparams(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) of the asymmetric u8 grid over a calibrated range [lo, hi], extended to include 0 (so
    zero padding and ReLU zeros are exact), by the same fp32 formula as the dynamic row quantizer."""
    mn = torch.tensor(min(float(lo), 0.0), dtype=torch.float32)
    mx = torch.tensor(max(float(hi), 0.0), dtype=torch.float32)
    s = (mx - mn) / 255.0
    if not (float(s) > 0 and torch.isfinite(s)):
        return 1.0, 0
    z = torch.clamp(torch.round(-mn / s), 0, 255)
    return float(s), int(z)


def channel_absmax(x: Tensor) -> Tensor:
    """max |x| over every dim but the last (per input channel), NaN and inf read as 0."""
    a = x.detach().to(torch.float32).reshape(-1, x.shape[-1]).abs().amax(0)
    return torch.nan_to_num(a, nan=0.0, posinf=0.0)


def smooth_factors(act_absmax: list[Tensor], weights: list[Tensor], alpha: float) -> Tensor:
    """SmoothQuant's per-input-channel factors s = max|x_j|^alpha / max|W_j|^(1 - alpha), the maxima over the given
    per-channel activation maxima and (N, K) weights (the layers reading one input share s): each layer then
    computes (x / s) @ (W * s).T, which moves activation outliers into the weights (alpha is how much). Channels
    with a zero on either side keep s = 1."""
    a = torch.stack(act_absmax).amax(0)
    w = torch.stack([channel_absmax(t) for t in weights]).amax(0)
    s = a.pow(alpha) / w.pow(1.0 - alpha)
    ok = (a > 0) & (w > 0) & torch.isfinite(s) & (s > 0)
    return torch.where(ok, s, torch.ones_like(s)).clamp(1e-4, 1e4)


def qlinear_static(
    x: Tensor, w: Tensor, w_scale: Tensor, scale: float, zero_point: int, b: Tensor | None = None
) -> Tensor:
    """y = dequant(quant_u8_static(x) @ w.T) + b: the int8-static linear (w int8 (N, K), w_scale (N,) float32)."""
    q = quantize_u8_static(x, scale, zero_point)
    acc = (q.to(torch.float64) - zero_point) @ w.to(torch.float64).t()
    y = acc.to(torch.float32) * (torch.tensor(scale, dtype=torch.float32) * w_scale.to(torch.float32))
    return y if b is None else y + b


def quantize_weight_per_channel(w: Tensor) -> tuple[Tensor, Tensor]:
    """(int8 weight, f32 scale per output channel) for a float (N, K) weight: symmetric, range [-127, 127]."""
    scale = weight_scale_per_channel(w)
    return quantize_per_channel(w, scale), scale


def weight_scale_per_channel(w: Tensor) -> Tensor:
    """The symmetric int8 scale of each output channel of a float weight (dim 0: (N, K) linear, (OC, C, KH, KW)
    conv): max |w| / 127."""
    w = w.detach().to(torch.float32).flatten(1)
    amax = w.abs().amax(dim=1) if w.shape[1] else torch.zeros(w.shape[0])
    return torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))


def quantize_per_channel(w: Tensor, scale: Tensor) -> Tensor:
    """A float weight as int8 with one scale per output channel (dim 0), rounded and clamped to [-127, 127]."""
    s = scale.reshape(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w.detach().to(torch.float32) / s), -127, 127).to(torch.int8)


@register_op(Op.QLINEAR, inputs=(3, 4), attrs={"act": "dynamic", "scale": 1.0, "zero_point": 0})
def qlinear(
    x: Tensor,
    w: Tensor,
    w_scale: Tensor,
    b: Tensor | None = None,
    *,
    act: str,
    scale: float = 1.0,
    zero_point: int = 0,
) -> Tensor:
    """y = dequant(quant(x) @ w.T) + b, with w int8 (N, K) and w_scale (N,) float32; x quantized per row at run
    time (act="dynamic") or with the calibrated ``scale`` and ``zero_point`` (act="static")."""
    if act not in ("dynamic", "static"):
        raise ValueError(f"qlinear: activation scheme {act!r} is not supported ('dynamic' or 'static')")
    if x.device.type == "meta":
        out = torch.empty((*x.shape[:-1], w.shape[0]), dtype=torch.float32, device="meta")
        return out if b is None else out + b
    if act == "static":
        return qlinear_static(x, w, w_scale, scale, zero_point, b)
    q, s, z = quantize_rows_u8(x)
    acc = (q.to(torch.float64) - z.unsqueeze(-1).to(torch.float64)) @ w.to(torch.float64).t()
    y = acc.to(torch.float32) * (s.unsqueeze(-1) * w_scale.to(torch.float32))
    return y if b is None else y + b


@register_op(
    Op.QCONV2D,
    inputs=(3, 4),
    attrs={
        "stride": (1, 1),
        "padding": (0, 0),
        "dilation": (1, 1),
        "groups": 1,
        "act": "dynamic",
        "scale": 1.0,
        "zero_point": 0,
    },
)
def qconv2d(
    x: Tensor,
    w: Tensor,
    w_scale: Tensor,
    b: Tensor | None = None,
    *,
    stride: tuple[int, int],
    padding: tuple[int, int] | str,
    dilation: tuple[int, int],
    groups: int,
    act: str,
    scale: float = 1.0,
    zero_point: int = 0,
) -> Tensor:
    """The int8 conv2d (see the module docstring): x (N, C, H, W) or unbatched (C, H, W) float32."""
    if act not in ("dynamic", "static"):
        raise ValueError(f"qconv2d: activation scheme {act!r} is not supported ('dynamic' or 'static')")
    if groups != 1:
        raise ValueError(f"qconv2d: groups must be 1, got {groups}")
    wf = w.to(torch.float64 if x.device.type != "meta" else torch.float32)
    if x.device.type == "meta":
        out = torch.conv2d(x.to(torch.float32), wf, None, stride, padding, dilation)
        return out if b is None else out + b.reshape(-1, 1, 1)
    unbatched = x.dim() == 3
    xb = (x.unsqueeze(0) if unbatched else x).to(torch.float32)
    if act == "static":
        s = torch.full((xb.shape[0],), scale, dtype=torch.float32)
        z = torch.full((xb.shape[0],), zero_point, dtype=torch.float64)
        q = quantize_u8_static(xb, scale, zero_point).to(torch.float64)
    else:
        q8, s, zi = quantize_rows_u8(xb.flatten(1))
        q, z = q8.reshape(xb.shape).to(torch.float64), zi.to(torch.float64)
    acc = torch.conv2d(q - z.reshape(-1, 1, 1, 1), wf, None, stride, padding, dilation)
    y = acc.to(torch.float32) * (s.reshape(-1, 1, 1, 1) * w_scale.to(torch.float32).reshape(1, -1, 1, 1))
    if b is not None:
        y = y + b.reshape(-1, 1, 1)
    return y.squeeze(0) if unbatched else y


def _groups(k: int, group: int) -> tuple[int, int]:
    """(group size, number of groups) for k columns; group 0 means one group per channel."""
    g = k if group == 0 or group >= k else group
    return max(g, 1), max(1, -(-k // max(g, 1)))


def quantize_weight_groups(w: Tensor, bits: int, group: int) -> tuple[Tensor, Tensor, Tensor]:
    """(q, scale (N, G) f32, zero (N, G) u8) of a float (N, K) weight for WQLINEAR: int8 symmetric ([-127, 127],
    zero 0), int4 asymmetric over each group's range extended to include 0 (so zero and constant groups are exact),
    q packed two per byte."""
    if bits not in (8, 4):
        raise ValueError(f"weight-only quantization: bits must be 8 or 4, got {bits}")
    w = w.detach().to(torch.float32)
    n, k = w.shape
    g, ng = _groups(k, group)
    wp = torch.nn.functional.pad(w, (0, g * ng - k)).reshape(n, ng, g)
    if bits == 8:
        amax = wp.abs().amax(-1) if k else torch.zeros(n, ng)
        scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))
        q = torch.clamp(torch.round(wp / scale.unsqueeze(-1)), -127, 127).reshape(n, ng * g)[:, :k].to(torch.int8)
        return q.contiguous(), scale.contiguous(), torch.zeros(n, ng, dtype=torch.uint8)
    mn = torch.clamp(wp.amin(-1), max=0.0) if k else torch.zeros(n, ng)
    mx = torch.clamp(wp.amax(-1), min=0.0) if k else torch.zeros(n, ng)
    scale = (mx - mn) / 15.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.clamp(torch.round(-mn / scale), 0, 15)
    q = torch.clamp(torch.round(wp / scale.unsqueeze(-1)) + zero.unsqueeze(-1), 0, 15).reshape(n, ng * g)[:, :k]
    return pack_int4(q.to(torch.uint8)), scale.contiguous(), zero.to(torch.uint8).contiguous()


def pack_int4(q: Tensor) -> Tensor:
    """(N, K) values in [0, 15] as (N, ceil(K / 2)) bytes, k even in the low nibble."""
    q = torch.nn.functional.pad(q.to(torch.uint8), (0, q.shape[1] % 2))
    return (q[:, 0::2] | (q[:, 1::2] << 4)).contiguous()


def unpack_int4(qp: Tensor, k: int) -> Tensor:
    """The inverse of pack_int4 for K = k columns."""
    return torch.stack([qp & 15, qp >> 4], dim=-1).reshape(qp.shape[0], 2 * qp.shape[1])[:, :k]


def dequantize_weight_groups(q: Tensor, scale: Tensor, zero: Tensor, bits: int, group: int, k: int) -> Tensor:
    """The float32 (N, K) weight WQLINEAR multiplies: (q - z) * s per group, one fp32 rounding."""
    qi = (q.to(torch.int32) if bits == 8 else unpack_int4(q, k).to(torch.int32)) if k else torch.zeros(q.shape[0], 0)
    g, _ = _groups(k, group)
    idx = torch.arange(k, device=q.device) // g
    return (qi - zero.to(torch.int32)[:, idx]).to(torch.float32) * scale.to(torch.float32)[:, idx]


@register_op(Op.WQLINEAR, inputs=(4, 5), attrs={"bits": 8, "group": 0})
def wqlinear(
    x: Tensor, q: Tensor, scale: Tensor, zero: Tensor, b: Tensor | None = None, *, bits: int, group: int
) -> Tensor:
    """y = x @ dequant(q).T + b: the weight-only quantized linear (see the module docstring)."""
    k = x.shape[-1]
    if x.device.type == "meta":
        out = torch.empty((*x.shape[:-1], q.shape[0]), dtype=torch.float32, device="meta")
        return out if b is None else out + b
    w = dequantize_weight_groups(q, scale, zero, bits, group, k)
    return torch.nn.functional.linear(x.to(torch.float32), w, b)
