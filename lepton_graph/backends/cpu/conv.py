"""CPU lowerings of convolution and pooling onto the native kernels (csrc/kernels/conv*, pool*).

Conv2d runs as an implicit GEMM over channels-last pixels with the weights packed once here, at lowering time, and
the epilogue (bias, residual add, activation) fused into the register tile; 3x3 stride-1 convs with enough channels
run as Winograd F(4x4, 3x3) or F(2x2, 3x3) instead (``winograd_tile`` picks), with the same epilogue. In
``compile(precision="bf16")`` on AVX512_BF16 CPUs, groups-1 convs take bf16 operands with fp32 accumulation
(Winograd F(2x2) or the direct conv); depthwise/grouped convs stay fp32. Outputs are channels_last tensors (NCHW
shape, NHWC strides): the next conv, pool or residual add reads them without any layout conversion, and every
consumer accepts strided tensors. ``lower_conv_group`` lowers FUSED "gemm" groups rooted at a conv (the "gemm"
fused lowering delegates those here). QCONV2D (int8-dynamic / int8-static, ir/defs/quant.py) runs on the int8 conv
(csrc/kernels/conv_int8.cpp) with the same epilogues and the same channels_last output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...ir import DType, Graph, Node, Op, OpGroup, Value
from .. import LowerOptions
from . import epilogue as ep
from .epilogue import Caps, parse_epilogue
from .gemm import quant_activation
from .native import _lib, kernel_variants
from .registry import Kernel, lowers

# lg::gemm::Act
_CL = torch.channels_last


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))
    return int(v), int(v)


def _f32_cpu(v: Value, what: str) -> str | None:
    if v.dtype is not DType.f32:
        return f"{what} is {v.dtype.value}, only float32 is native"
    if not str(v.device).startswith("cpu"):
        return f"{what} is on {v.device}"
    return None


def _static(shape: tuple) -> bool:
    return all(isinstance(d, int) for d in shape)


def _padding(attrs: dict[str, Any], kernel: tuple[int, int], dilation: tuple[int, int]) -> list[int] | str:
    """(top, bottom, left, right) for CONV2D's padding attribute."""
    pad = attrs.get("padding", (0, 0))
    if pad == "valid":
        return [0, 0, 0, 0]
    if pad == "same":
        out: list[int] = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return out
    if isinstance(pad, str):
        return f"padding {pad!r}"
    ph, pw = _pair(pad)
    return [ph, ph, pw, pw]


class _ConvSpec:
    """What one native conv call computes: conv(x) + bias (+ residual), activation, (+ residual)."""

    def __init__(self, conv: Node, graph: Graph, opts: LowerOptions):
        self.conv = conv
        self.graph = graph
        self.opts = opts
        self.bias: torch.Tensor | None = None
        self.act = 0
        self.residual: Value | None = None
        self.residual_before_act = True


def _bias_index(node: Node) -> int:
    return 3 if node.op is Op.QCONV2D else 2


def _check_conv(node: Node, graph: Graph) -> str | None:
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[_bias_index(node)] if len(node.inputs) > _bias_index(node) else None
    float_operands = [(x, "input"), (b, "bias")] + ([] if node.op is Op.QCONV2D else [(w, "weight")])
    for v, what in float_operands:
        why = _f32_cpu(v, what) if v is not None else None
        if why:
            return why
    if x.rank not in (3, 4):
        return f"input rank {x.rank}"
    if w.const is None or graph.constant(w) is None:
        return "weight is not a constant (packed at compile time)"
    if b is not None and b.const is None:
        return "bias is not a constant"
    if not _static(tuple(w.shape)):
        return "symbolic weight shape"
    if node.op is Op.QCONV2D:
        return _check_qconv(node, graph)
    return None


def _check_qconv(node: Node, graph: Graph) -> str | None:
    w, scale = graph.constant(node.inputs[1]), graph.constant(node.inputs[2])
    if w is None or w.dtype != torch.int8 or w.dim() != 4:
        return "qconv2d weight is not a constant 4-D int8 tensor"
    if scale is None or scale.dtype != torch.float32 or tuple(scale.shape) != (w.shape[0],):
        return "qconv2d weight scales are not a constant (OC,) float32 tensor"
    if node.attrs.get("groups", 1) != 1:
        return f"qconv2d groups={node.attrs.get('groups')} (the int8 conv is groups 1)"
    if w.shape[1] * w.shape[2] * w.shape[3] > _lib().GEMM_INT8_MAX_K:
        return f"C * KH * KW > {_lib().GEMM_INT8_MAX_K} (int32 accumulators could overflow)"
    act = quant_activation(node)
    return act if isinstance(act, str) else None


def _const(graph: Graph, v: Value) -> torch.Tensor:
    t = graph.constant(v)
    assert t is not None, f"{v} is not a constant (_check_conv admitted it)"
    return t


def _bias_of(node: Node, graph: Graph) -> torch.Tensor | None:
    if len(node.inputs) > _bias_index(node):
        return _const(graph, node.inputs[_bias_index(node)]).detach().float().contiguous()
    return None


def _broadcast_bias(v: Value, graph: Graph, oc: int) -> torch.Tensor | None:
    """A constant operand of an ADD that is a per-output-channel bias: shape (OC, 1, 1) or (1, OC, 1, 1)."""
    t = graph.constant(v)
    if t is None or t.dtype != torch.float32:
        return None
    shape = tuple(t.shape)
    while shape and shape[0] == 1 and len(shape) > 3:
        shape = shape[1:]
    if shape in ((oc, 1, 1),) or (oc == 1 and all(d == 1 for d in shape)):
        return t.detach().reshape(oc).contiguous()
    return None


def _use_bf16(opts: LowerOptions) -> bool:
    """compile(precision="bf16"): conv operands in bf16 (vdpbf16ps) when the CPU has AVX512_BF16."""
    return opts.precision == "bf16" and bool(_lib().gemm_bf16_supported())


# Winograd for 3x3 stride-1 convs (csrc/kernels/winograd*): F(4x4, 3x3) does 36/144 of the direct conv's
# multiply-adds, F(2x2, 3x3) 16/36, both paying input/output transforms that amortise over the channels. F(4x4)'s
# transformed weights are 4x the direct ones, so a layer with big weights and few tiles (ResNet's 512ch@7x7 at batch
# 1: 38 MB of weights for 4 tiles) is memory-bound there and takes F(2x2). bf16 runs F(2x2) only: F(4x4)'s larger
# transform coefficients amplify the bf16 rounding of the transformed operands (ResNet-18 logits 4e-2 off vs 1.3e-2).
# Measured on Zen 4 (thread CPU time vs the direct conv): fp32 F(4x4) 0.33-0.62x from 16 channels up (F(2x2)
# 0.5-0.9x), 8 channels ~0.94x; 512ch@7x7 b1 F(2x2) 0.66x, F(4x4) 0.68x; bf16 F(2x2) beats the bf16 direct conv
# from 32 channels.
_WINOGRAD_MIN_CHANNELS = 16
_WINOGRAD_MIN_CHANNELS_BF16 = 32
_F4_MAX_WEIGHT_BYTES = 10 << 20


def winograd_tile(
    w_shape: tuple[int, ...],
    x_shape: tuple[Any, ...] | None,
    stride: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    bf16: bool,
) -> int:
    """The Winograd output tile (4 or 2) the lowering picks for this conv, 0 for the direct conv."""
    oc, c, kh, kw = w_shape
    if (kh, kw) != (3, 3) or stride != (1, 1) or dilation != (1, 1) or groups != 1:
        return 0
    if min(c, oc) < (_WINOGRAD_MIN_CHANNELS_BF16 if bf16 else _WINOGRAD_MIN_CHANNELS):
        return 0
    if bf16:
        return 2
    tiles = 0
    if x_shape is not None and len(x_shape) == 4 and all(isinstance(d, int) for d in x_shape):
        tiles = x_shape[0] * -(-x_shape[2] // 4) * -(-x_shape[3] // 4)
    return 4 if 36 * c * oc * 4 <= _F4_MAX_WEIGHT_BYTES or tiles >= 8 else 2


def float_conv_is_faster(node: Node, graph: Graph, opts: LowerOptions) -> str | None:
    """Why this CONV2D runs faster in fp32 than as an int8 conv on this CPU, or None. Without AVX512-VNNI the int8
    conv multiplies with vpmaddubsw at ~1.3x the fp32 FMA rate, while Winograd F(4x4, 3x3) does 1/4 of the direct
    conv's multiplies: measured on Zen 3 (ResNet-18's 3x3 stride-1 convs, b1), fp32 Winograd 0.54-0.94 ms against
    int8 0.99-1.77 ms. F(2x2) (big weights, few tiles: 512ch@7x7) loses to int8 there, and with VNNI (4x the FMA
    rate) int8 is kept everywhere."""
    w, x = node.inputs[1], node.inputs[0]
    if _check_conv(node, graph) or kernel_variants().get("gemm_int8") == "avx512vnni" or _use_bf16(opts):
        return None
    w_shape = tuple(int(d) for d in w.shape)  # static (_check_conv)
    x_shape = tuple(x.shape) if x.rank == 4 else (1, *x.shape)
    stride, dilation = _pair(node.attrs.get("stride", 1)), _pair(node.attrs.get("dilation", 1))
    tile = winograd_tile(w_shape, x_shape, stride, dilation, int(node.attrs.get("groups", 1)), False)
    if tile != 4:
        return None
    return "fp32 Winograd F(4x4, 3x3) is faster than the int8 conv on this CPU (no AVX512-VNNI)"


def make_conv(
    w: torch.Tensor,
    stride: tuple[int, int],
    padding: list[int],
    dilation: tuple[int, int],
    groups: int,
    act: int,
    residual_before_act: bool,
    bf16: bool = False,
    winograd: int = 0,
) -> Any:
    """The native conv object for these weights: Winograd F(winograd x winograd, 3x3) when ``winograd`` is 2 or 4
    (3x3 stride-1 dilation-1 groups-1 convs), bf16 operands when ``bf16`` (groups 1 only), else the fp32 implicit
    GEMM."""
    lib = _lib()
    wl = (list(w.shape), list(w.stride()))
    if winograd:
        return lib.Conv2dWinograd(w.data_ptr(), *wl, padding, act, residual_before_act, winograd, bf16)
    if bf16 and groups == 1:
        return lib.Conv2dBf16(w.data_ptr(), *wl, list(stride), padding, list(dilation), act, residual_before_act)
    return lib.Conv2dF32(w.data_ptr(), *wl, groups, list(stride), padding, list(dilation), act, residual_before_act)


def make_qconv(
    w: torch.Tensor,
    scale: torch.Tensor,
    stride: tuple[int, int],
    padding: list[int],
    dilation: tuple[int, int],
    act: int,
    residual_before_act: bool,
    static: tuple[float, int] | None,
) -> Any:
    """The native int8 conv object: int8 (OC, C, KH, KW) weights with OC float32 scales; the input quantized with
    ``static`` = (scale, zero point), or per image at run time when None."""
    if w.dtype != torch.int8 or w.dim() != 4 or tuple(scale.shape) != (w.shape[0],):
        raise ValueError(
            f"int8 conv weight must be (OC, C, KH, KW) int8 with OC scales, got {w.dtype} {tuple(w.shape)} and "
            f"{tuple(scale.shape)} scales"
        )
    scale = scale.detach().to(torch.float32).contiguous()
    conv = _lib().Conv2dU8S8(
        w.data_ptr(),
        list(w.shape),
        list(w.stride()),
        scale.data_ptr(),
        list(stride),
        padding,
        list(dilation),
        act,
        residual_before_act,
        static is None,
        *(static or (1.0, 0)),
    )
    return conv


def _make_kernel(spec: _ConvSpec, x_index: int, res_index: int | None) -> Kernel:
    node, graph = spec.conv, spec.graph
    w = _const(graph, node.inputs[1]).detach()
    kernel = _pair(node.attrs.get("kernel_size", tuple(w.shape[2:])))
    stride, dilation = _pair(node.attrs.get("stride", 1)), _pair(node.attrs.get("dilation", 1))
    padding = _padding(node.attrs, kernel, dilation)
    if isinstance(padding, str):
        raise NotImplementedError(padding)
    if node.op is Op.QCONV2D:
        static = quant_activation(node)
        assert not isinstance(static, str), static  # _check_qconv admitted it
        scale = _const(graph, node.inputs[2])
        conv = make_qconv(w, scale, stride, padding, dilation, spec.act, spec.residual_before_act, static)
    else:
        w = w.float()
        groups, bf16 = int(node.attrs.get("groups", 1)), _use_bf16(spec.opts)
        x_shape = tuple(node.inputs[0].shape)
        tile = winograd_tile(
            tuple(w.shape), x_shape if len(x_shape) == 4 else (1, *x_shape), stride, dilation, groups, bf16
        )
        conv = make_conv(w, stride, padding, dilation, groups, spec.act, spec.residual_before_act, bf16, tile)
    bias = spec.bias
    bias_ptr = bias.data_ptr() if bias is not None else 0
    x_val = node.inputs[0]
    unbatched = x_val.rank == 3
    out_shape = None
    if _static(tuple(x_val.shape)):
        xs = list(x_val.shape)
        out_shape = tuple(conv.output_shape([1, *xs] if unbatched else xs))
    empty = torch.empty
    run = conv.run

    def conv2d(*args: torch.Tensor) -> torch.Tensor:
        x = args[x_index]
        if unbatched:
            x = x.unsqueeze(0)
        shape = out_shape or conv.output_shape(list(x.shape))
        y = empty(shape, memory_format=_CL)
        if res_index is None:
            run(x.data_ptr(), x.shape, x.stride(), y.data_ptr(), shape, y.stride(), bias_ptr, 0, (0, 0, 0, 0))
        else:
            r = args[res_index]
            if unbatched:
                r = r.unsqueeze(0)
            run(x.data_ptr(), x.shape, x.stride(), y.data_ptr(), shape, y.stride(), bias_ptr, r.data_ptr(), r.stride())
        return y.squeeze(0) if unbatched else y

    conv2d.__lepton_keepalive__ = (conv, bias)  # type: ignore[attr-defined]
    return conv2d


@lowers(Op.CONV2D, Op.QCONV2D)
def lower_conv2d(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    why = _check_conv(node, graph)
    if why:
        return why
    spec = _ConvSpec(node, graph, opts)
    spec.bias = _bias_of(node, graph)
    return _make_kernel(spec, 0, None)


def conv_epilogue(
    chain: list[Node],
    conv_out: Value,
    spec: _ConvSpec,
    oc: int,
    ext: Callable[[Value], Value],
    graph: Graph,
    group_outputs: set[Value],
) -> tuple[str | None, Value | None, Value]:
    """Fill ``spec`` (bias, activation, residual) from the elementwise chain after a conv (epilogue.parse_epilogue
    with the conv's capabilities), or say why the chain cannot be its epilogue; returns (reason, the residual
    operand, the chain's last value)."""
    caps = Caps(
        "conv",
        channel_bias=lambda v: _broadcast_bias(ext(v), graph, oc),
        residual_from_outside=True,
        check_operand=_f32_cpu,
    )
    e = parse_epilogue(chain, conv_out, caps, group_outputs)
    if isinstance(e, str):
        return e, None, conv_out
    if e.bias is not None:
        spec.bias = e.bias if spec.bias is None else spec.bias + e.bias
    spec.act, spec.residual_before_act = e.act, e.residual_before_act
    return None, e.residual, e.last  # type: ignore[return-value]


def lower_conv_group(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    """A FUSED "gemm" node whose body is CONV2D followed by bias/residual ADDs and at most one activation."""
    body: Graph = node.attrs["body"]
    if not body.nodes or body.nodes[0].op not in OpGroup.CONV:
        return "not a conv-rooted group"
    if len(body.outputs) != 1 or len(node.outputs) != 1:
        return "group has several outputs"
    conv = body.nodes[0]
    # body inputs stand for the fused node's inputs; constants are looked up through the node's own inputs
    outer = dict(zip(body.inputs, node.inputs, strict=True))

    def ext(v: Value) -> Value:
        return outer.get(v, v)

    inner_conv = Node(conv.op, [ext(v) for v in conv.inputs], conv.attrs, conv.outputs, conv.name)
    why = _check_conv(inner_conv, graph)
    if why:
        return why
    spec = _ConvSpec(inner_conv, graph, opts)
    spec.bias = _bias_of(inner_conv, graph)
    oc = int(inner_conv.inputs[1].shape[0])
    why, res_inner, cur = conv_epilogue(body.nodes[1:], conv.out, spec, oc, ext, graph, set(body.outputs))
    if why is not None:
        return why
    if cur is not body.outputs[0]:
        return "group output is not the end of the chain"
    ins = list(body.inputs)
    x_inner = conv.inputs[0]
    if x_inner not in ins or (res_inner is not None and res_inner not in ins):
        return "conv input produced inside the group"
    return _make_kernel(spec, ins.index(x_inner), None if res_inner is None else ins.index(res_inner))


# ---------------------------------------------------------------------------------------------------- pooling


def _pool_kernel(
    node: Node, call: Callable[[torch.Tensor, torch.Tensor], None], out_hw: Callable[[int, int], tuple[int, int]]
) -> Kernel:
    x_val = node.inputs[0]
    unbatched = x_val.rank == 3
    empty = torch.empty

    def pool(x: torch.Tensor) -> torch.Tensor:
        if unbatched:
            x = x.unsqueeze(0)
        n, c, h, w = x.shape
        oh, ow = out_hw(h, w)
        fmt = _CL if x.stride(1) == 1 and c > 1 else torch.contiguous_format
        y = empty((n, c, oh, ow), memory_format=fmt)
        call(x, y)
        return y.squeeze(0) if unbatched else y

    return pool


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return max(out, 0)


@lowers(Op.MAX_POOL2D, Op.AVG_POOL2D, Op.ADAPTIVE_AVG_POOL2D)
def lower_pool2d(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    x_val = node.inputs[0]
    why = _f32_cpu(x_val, "input")
    if why:
        return why
    if x_val.rank not in (3, 4):
        return f"input rank {x_val.rank}"
    lib = _lib()
    a = node.attrs
    if node.op is Op.ADAPTIVE_AVG_POOL2D:
        osz = a["output_size"]
        osz = (osz, osz) if isinstance(osz, int) else tuple(osz)
        if any(not isinstance(o, int) for o in osz):
            return "output_size with None entries"
        fn = lib.adaptive_avg_pool2d_f32
        return _pool_kernel(
            node,
            lambda x, y: fn(x.data_ptr(), x.shape, x.stride(), y.data_ptr(), y.shape, y.stride()),
            lambda h, w: osz,
        )
    k = _pair(a["kernel_size"])
    s = k if a.get("stride") in (None, (), []) else _pair(a["stride"])
    p = _pair(a.get("padding", 0))
    ceil_mode = bool(a.get("ceil_mode", False))
    if node.op is Op.MAX_POOL2D:
        d = _pair(a.get("dilation", 1))
        mp = lib.max_pool2d_f32
        args = (list(k), list(s), list(p), list(d), ceil_mode)
        return _pool_kernel(
            node,
            lambda x, y: mp(x.data_ptr(), x.shape, x.stride(), y.data_ptr(), y.shape, y.stride(), *args),
            lambda h, w: (
                _pool_out(h, k[0], s[0], p[0], d[0], ceil_mode),
                _pool_out(w, k[1], s[1], p[1], d[1], ceil_mode),
            ),
        )
    div = a.get("divisor_override")
    if div is not None and int(div) <= 0:
        return f"divisor_override {div}"
    ap = lib.avg_pool2d_f32
    args2 = (list(k), list(s), list(p), ceil_mode, bool(a.get("count_include_pad", True)), int(div or 0))
    return _pool_kernel(
        node,
        lambda x, y: ap(x.data_ptr(), x.shape, x.stride(), y.data_ptr(), y.shape, y.stride(), *args2),
        lambda h, w: (_pool_out(h, k[0], s[0], p[0], 1, ceil_mode), _pool_out(w, k[1], s[1], p[1], 1, ceil_mode)),
    )


# ---------------------------------------------------------------------------------------------------- direct calls


def _direct_pads(padding: Any, act: str) -> list[int]:
    """(top, bottom, left, right) of a direct call's padding (an int, a pair or four ints); checks ``act``."""
    if act not in ep.Act.__members__:
        raise ValueError(f"act must be one of {', '.join(ep.Act.__members__)}, got {act!r}")
    if isinstance(padding, (list, tuple)) and len(padding) == 4:
        return [int(p) for p in padding]
    ph, pw = _pair(padding)
    return [ph, ph, pw, pw]


def _direct_run(conv: Any, x: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None) -> torch.Tensor:
    """One call of a native conv object into a new channels_last output."""
    shape = conv.output_shape(list(x.shape))
    y = torch.empty(shape, memory_format=_CL)
    conv.run(
        x.data_ptr(),
        list(x.shape),
        list(x.stride()),
        y.data_ptr(),
        shape,
        list(y.stride()),
        0 if bias is None else bias.data_ptr(),
        0 if residual is None else residual.data_ptr(),
        [0, 0, 0, 0] if residual is None else list(residual.stride()),
    )
    return y


def conv2d_f32(
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    act: str = "none",
    residual: torch.Tensor | None = None,
    residual_before_act: bool = True,
    bf16: bool = False,
    winograd: int = 0,
) -> torch.Tensor:
    """``act(F.conv2d(x, w, bias, ...) (+ residual)) (+ residual)`` with the native kernel (packs ``w`` per call;
    lowered graphs pack once). ``x`` is (N, C, H, W) float32 with any strides; the result is channels_last.
    ``padding`` is an int, a pair, or (top, bottom, left, right). ``winograd``: 2 or 4 runs Winograd
    F(winograd x winograd, 3x3) (3x3 stride-1 dilation-1 groups-1 only), 0 the direct conv; ``bf16``: bf16 operands
    with fp32 accumulation."""
    pad = _direct_pads(padding, act)
    conv = make_conv(w, _pair(stride), pad, _pair(dilation), groups, ep.Act[act], residual_before_act, bf16, winograd)
    return _direct_run(conv, x, bias, residual)


def conv2d_u8s8(
    x: torch.Tensor,
    w: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    act: str = "none",
    residual: torch.Tensor | None = None,
    residual_before_act: bool = True,
    static: tuple[float, int] | None = None,
) -> torch.Tensor:
    """QCONV2D with the native int8 conv (packs ``w`` per call): ``w`` int8 (OC, C, KH, KW) with (OC,) float32
    scales; ``x`` (N, C, H, W) float32, any strides, quantized with ``static`` = (scale, zero point) or per image when
    None; then the epilogue as in conv2d_f32. The result is channels_last."""
    pad = _direct_pads(padding, act)
    conv = make_qconv(w, w_scale, _pair(stride), pad, _pair(dilation), ep.Act[act], residual_before_act, static)
    return _direct_run(conv, x, bias, residual)


def _pool_out_like(x: torch.Tensor, oh: int, ow: int) -> torch.Tensor:
    n, c = x.shape[:2]
    fmt = _CL if x.stride(1) == 1 and c > 1 else torch.contiguous_format
    return torch.empty((n, c, oh, ow), memory_format=fmt)


def max_pool2d_f32(
    x: torch.Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False
) -> torch.Tensor:
    """``F.max_pool2d`` on a float32 (N, C, H, W) tensor with any strides (output in the input's memory format)."""
    k = _pair(kernel_size)
    s = k if stride is None else _pair(stride)
    p, d = _pair(padding), _pair(dilation)
    y = _pool_out_like(
        x,
        _pool_out(x.shape[2], k[0], s[0], p[0], d[0], ceil_mode),
        _pool_out(x.shape[3], k[1], s[1], p[1], d[1], ceil_mode),
    )
    _lib().max_pool2d_f32(
        x.data_ptr(),
        list(x.shape),
        list(x.stride()),
        y.data_ptr(),
        list(y.shape),
        list(y.stride()),
        list(k),
        list(s),
        list(p),
        list(d),
        ceil_mode,
    )
    return y


def avg_pool2d_f32(
    x: torch.Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """``F.avg_pool2d`` on a float32 (N, C, H, W) tensor with any strides."""
    k = _pair(kernel_size)
    s = k if stride is None else _pair(stride)
    p = _pair(padding)
    y = _pool_out_like(
        x, _pool_out(x.shape[2], k[0], s[0], p[0], 1, ceil_mode), _pool_out(x.shape[3], k[1], s[1], p[1], 1, ceil_mode)
    )
    _lib().avg_pool2d_f32(
        x.data_ptr(),
        list(x.shape),
        list(x.stride()),
        y.data_ptr(),
        list(y.shape),
        list(y.stride()),
        list(k),
        list(s),
        list(p),
        ceil_mode,
        count_include_pad,
        int(divisor_override or 0),
    )
    return y


def adaptive_avg_pool2d_f32(x: torch.Tensor, output_size: Any) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` on a float32 (N, C, H, W) tensor with any strides."""
    oh, ow = _pair(output_size)
    y = _pool_out_like(x, oh, ow)
    _lib().adaptive_avg_pool2d_f32(
        x.data_ptr(), list(x.shape), list(x.stride()), y.data_ptr(), list(y.shape), list(y.stride())
    )
    return y
