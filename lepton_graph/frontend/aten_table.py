"""ATen -> IR converter table, used by fx_import for both capture paths (torch.export training IR and
AOTAutograd / core-ATen inference graphs).

Each converter mirrors its ATen schema's argument names and defaults and returns the IR value(s), or None to
decline: the node then becomes a FALLBACK that calls the ATen operator itself, which is always correct. So a
converter declines whenever the arguments leave the exact eager semantics of the IR op (training-mode dropout or
batch norm, a device change, an auxiliary output somebody uses, ...). Output types always come from the FX node.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx as fx

from ..ir import DType, Op, Ref, Value
from ..ir.graph import device_str
from .fx_import import Importer, converts, dim_of

aten = torch.ops.aten
Converter = Callable[..., Any]
_NUMBER = (bool, int, float)


def _overloads(*names: str) -> list[Any]:
    """aten overloads by "name.overload" (".default" implied); a misspelt name fails at import."""
    out = []
    for full in names:
        name, _, overload = full.partition(".")
        out.append(getattr(getattr(aten, name), overload or "default"))
    return out


def _on(*names: str) -> Callable[[Converter], Converter]:
    return converts(*_overloads(*names))


# -- helpers ------------------------------------------------------------------------------------------------------


def _tensor(b: Importer, x: Any) -> Value | None:
    """The IR tensor value of an argument, or None if it is not a tensor (a number, a sym int, None)."""
    if isinstance(x, torch.Tensor):
        return b.value(x)
    if isinstance(x, fx.Node) and isinstance(b.env.get(x), Value) and b.env[x].kind == "tensor":
        return b.env[x]
    return None


def _out_val(b: Importer) -> Any:
    assert b.node is not None
    return b.node.meta.get("val")


def _only_first_used(b: Importer) -> bool:
    """True if, of the converted multi-output node, only output 0 is read (other getitems may exist, unused)."""
    assert b.node is not None
    return all(u.target is operator.getitem and (u.args[1] == 0 or not u.users) for u in b.node.users)


def _emit_first(
    b: Importer, op: Op, inputs: Sequence[Value], attrs: dict[str, Any] | None = None, syms: Sequence[Value] = ()
) -> list[Value | None] | None:
    """Emit ``op`` for output 0 of a tuple-returning ATen op whose other outputs are unused; else decline."""
    if not _only_first_used(b):
        return None
    first = _out_val(b)[0]  # the other outputs may have types the IR lacks (a CUDA rng state is uint64)
    shape = tuple(dim_of(d) for d in first.shape)
    out = Value(b.g.fresh(), shape, DType.from_torch(first.dtype), device_str(first.device))
    b.g.add_node(op, inputs, attrs, outputs=[out], syms=syms)
    return [out] + [None] * (len(_out_val(b)) - 1)


def _sym_dim(b: Importer, v: Value, dim: int, syms: list[Value]) -> int | Ref:
    """Dimension ``dim`` of ``v``: the int if static, else a Ref to a new SYM_SIZE value appended to ``syms``."""
    d = v.shape[dim]
    if isinstance(d, int):
        return d
    syms.append(b.g.add_node(Op.SYM_SIZE, [v], {"dim": dim}).out)
    return Ref(len(syms) - 1)


def _pair(x: Any) -> tuple[int, int]:
    if isinstance(x, int):
        return (x, x)
    return (x[0], x[0]) if len(x) == 1 else (x[0], x[1])


def _dims(dim: Any) -> tuple[int, ...] | None:
    """ATen reduction dims (int, list, None or [] = all) -> the IR's tuple or None."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return None
    return (dim,) if isinstance(dim, int) else tuple(dim)


def _dtype(dt: torch.dtype | None) -> DType | None:
    return None if dt is None else DType.from_torch(dt)


def _same_device(b: Importer, v: Value) -> bool:
    val = _out_val(b)
    return isinstance(val, torch.Tensor) and device_str(val.device) == v.device


# -- elementwise --------------------------------------------------------------------------------------------------


def _unary(op: Op, *names: str) -> None:
    def convert(b: Importer, self: Any) -> Any:
        x = _tensor(b, self)
        return None if x is None else b.emit(op, [x])

    _on(*names)(convert)


for _op, _name in [
    (Op.NEG, "neg"),
    (Op.ABS, "abs"),
    (Op.EXP, "exp"),
    (Op.LOG, "log"),
    (Op.SQRT, "sqrt"),
    (Op.RSQRT, "rsqrt"),
    (Op.ERF, "erf"),
    (Op.TANH, "tanh"),
    (Op.SIGMOID, "sigmoid"),
    (Op.RELU, "relu"),
    (Op.SILU, "silu"),
    (Op.SIN, "sin"),
    (Op.COS, "cos"),
    (Op.RECIPROCAL, "reciprocal"),
    (Op.LOGICAL_NOT, "logical_not"),
]:
    _unary(_op, _name)


@_on("gelu")
def _gelu(b: Importer, self: Any, *, approximate: str = "none") -> Any:
    return b.emit(Op.GELU, [b.value(self)], {"approximate": approximate})


def _clamp(b: Importer, self: Any, lo: Any, hi: Any) -> Any:
    if not all(x is None or isinstance(x, _NUMBER) for x in (lo, hi)) or (lo is None and hi is None):
        return None  # tensor or symbolic bounds
    return b.emit(Op.CLAMP, [b.value(self)], {"min": lo, "max": hi})


@_on("clamp")
def _clamp_default(b: Importer, self: Any, min: Any = None, max: Any = None) -> Any:
    return _clamp(b, self, min, max)


@_on("clamp_min")
def _clamp_min(b: Importer, self: Any, min: Any) -> Any:
    return _clamp(b, self, min, None)


@_on("clamp_max")
def _clamp_max(b: Importer, self: Any, max: Any) -> Any:
    return _clamp(b, self, None, max)


@_on("hardtanh")
def _hardtanh(b: Importer, self: Any, min_val: float = -1.0, max_val: float = 1.0) -> Any:
    # hardtanh == clamp on floating inputs (relu6 is hardtanh(0, 6))
    return _clamp(b, self, min_val, max_val) if b.value(self).dtype.is_float else None


@_on("relu6")
def _relu6(b: Importer, self: Any) -> Any:
    return _clamp(b, self, 0.0, 6.0) if b.value(self).dtype.is_float else None


@_on("bitwise_not")
def _bitwise_not(b: Importer, self: Any) -> Any:
    x = b.value(self)
    return b.emit(Op.LOGICAL_NOT, [x]) if x.dtype is DType.bool else None


def _binary(b: Importer, op: Op, self: Any, other: Any, **attrs: Any) -> Any:
    """``self OP other`` where either side may be a tensor, a Python number or a symbolic int."""
    a, c = _tensor(b, self), _tensor(b, other)
    if a is not None and c is not None:
        return b.emit(op, [a, c], attrs)
    reverse = a is None
    tensor, scalar = (c, self) if reverse else (a, other)
    if tensor is None:
        return None
    syms: list[Value] = []
    if b.is_sym(scalar):
        scalar = b.ints(scalar, syms)
    elif not isinstance(scalar, _NUMBER):
        return None
    return b.emit(op, [tensor], {**attrs, "scalar": scalar, "reverse": reverse}, syms)


def _binaries(op: Op, *names: str, alpha: bool = False) -> None:
    def convert_alpha(b: Importer, self: Any, other: Any, alpha: Any = 1) -> Any:
        return _binary(b, op, self, other, alpha=alpha)

    def convert(b: Importer, self: Any, other: Any) -> Any:
        return _binary(b, op, self, other)

    _on(*names)(convert_alpha if alpha else convert)


_binaries(Op.ADD, "add.Tensor", "add.Scalar", alpha=True)
_binaries(Op.SUB, "sub.Tensor", "sub.Scalar", alpha=True)
_binaries(Op.MUL, "mul.Tensor", "mul.Scalar")
_binaries(Op.DIV, "div.Tensor", "div.Scalar", "true_divide.Tensor", "true_divide.Scalar")
_binaries(Op.MAXIMUM, "maximum")
_binaries(Op.MINIMUM, "minimum")
_binaries(Op.LOGICAL_AND, "logical_and")
_binaries(Op.LOGICAL_OR, "logical_or")
for _op, _name in [(Op.EQ, "eq"), (Op.NE, "ne"), (Op.LT, "lt"), (Op.LE, "le"), (Op.GT, "gt"), (Op.GE, "ge")]:
    _binaries(_op, f"{_name}.Tensor", f"{_name}.Scalar")


@_on("rsub.Tensor", "rsub.Scalar")
def _rsub(b: Importer, self: Any, other: Any, alpha: Any = 1) -> Any:
    # other - alpha*self
    return _binary(b, Op.SUB, other, self, alpha=alpha)


@_on("div.Tensor_mode", "div.Scalar_mode")
def _div_mode(b: Importer, self: Any, other: Any, *, rounding_mode: str | None) -> Any:
    return _binary(b, Op.DIV, self, other, rounding_mode=rounding_mode)


@_on("floor_divide", "floor_divide.Scalar")
def _floor_divide(b: Importer, self: Any, other: Any) -> Any:
    return _binary(b, Op.DIV, self, other, rounding_mode="floor")


@_on("pow.Tensor_Tensor", "pow.Tensor_Scalar", "pow.Scalar")
def _pow(b: Importer, self: Any, exponent: Any) -> Any:
    return _binary(b, Op.POW, self, exponent)


@_on("bitwise_and.Tensor", "bitwise_or.Tensor", "__and__.Tensor", "__or__.Tensor")
def _bitwise_bool(b: Importer, self: Any, other: Any) -> Any:
    a, c = _tensor(b, self), _tensor(b, other)
    if a is None or c is None or a.dtype is not DType.bool or c.dtype is not DType.bool:
        return None
    assert b.node is not None
    op = Op.LOGICAL_AND if b.node.target in (aten.bitwise_and.Tensor, aten.__and__.Tensor) else Op.LOGICAL_OR
    return b.emit(op, [a, c])


@_on("where.self", "where.ScalarSelf", "where.ScalarOther", "where.Scalar")
def _where(b: Importer, condition: Any, self: Any, other: Any) -> Any:
    inputs, attrs = [b.value(condition)], {}
    for arg, key in ((self, "scalar_a"), (other, "scalar_b")):
        v = _tensor(b, arg)
        if v is not None:
            inputs.append(v)
        elif isinstance(arg, _NUMBER):
            attrs[key] = arg
        else:
            return None
    return b.emit(Op.WHERE, inputs, attrs)


@_on("masked_fill.Scalar", "masked_fill.Tensor")
def _masked_fill(b: Importer, self: Any, mask: Any, value: Any) -> Any:
    # x.masked_fill(m, v) == where(m, v, x) when v does not promote x's dtype
    x, m, v = b.value(self), b.value(mask), _tensor(b, value)
    if v is not None:
        return b.emit(Op.WHERE, [m, v, x]) if v.dtype == x.dtype and v.rank == 0 else None
    meta = torch.empty((), dtype=x.dtype.to_torch())
    if not isinstance(value, _NUMBER) or torch.result_type(meta, value) != meta.dtype:
        return None
    return b.emit(Op.WHERE, [m, x], {"scalar_a": value})


def _cast(b: Importer, self: Any) -> Any:
    """A dtype conversion on the same device (the output dtype comes from the FX node)."""
    x = _tensor(b, self)
    if x is None or not _same_device(b, x):
        return None
    dtype = DType.from_torch(_out_val(b).dtype)
    return x if dtype is x.dtype else b.emit(Op.CAST, [x], {"dtype": dtype})


@_on("_to_copy")
def _to_copy(
    b: Importer,
    self: Any,
    *,
    dtype: Any = None,
    layout: Any = None,
    device: Any = None,
    pin_memory: Any = None,
    non_blocking: bool = False,
    memory_format: Any = None,
) -> Any:
    return _cast(b, self) if layout in (None, torch.strided) else None


@_on("to.dtype", "to.dtype_layout", "to.device", "to.other", "type_as")
def _to(b: Importer, self: Any, *args: Any, **kwargs: Any) -> Any:
    return _cast(b, self) if kwargs.get("layout") in (None, torch.strided) else None


@converts(torch.ops.prims.convert_element_type.default)
def _convert_element_type(b: Importer, a: Any, dtype: torch.dtype) -> Any:
    return _cast(b, a)


# -- reductions ---------------------------------------------------------------------------------------------------


@_on("sum.dim_IntList", "sum.default", "mean.dim", "mean.default")
def _sum_mean(b: Importer, self: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Any:
    assert b.node is not None
    op = Op.SUM if b.node.target in (aten.sum.dim_IntList, aten.sum.default) else Op.MEAN
    return b.emit(op, [b.value(self)], {"dims": _dims(dim), "keepdim": keepdim, "dtype": _dtype(dtype)})


@_on("amax", "amin")
def _amax(b: Importer, self: Any, dim: Any = (), keepdim: bool = False) -> Any:
    assert b.node is not None
    op = Op.AMAX if b.node.target is aten.amax.default else Op.AMIN
    return b.emit(op, [b.value(self)], {"dims": _dims(dim), "keepdim": keepdim})


@_on("max.dim", "min.dim")
def _max_dim(b: Importer, self: Any, dim: int, keepdim: bool = False) -> Any:
    # the values of max.dim are amax over that dim (both propagate NaN); the indices must be unused
    assert b.node is not None
    op = Op.AMAX if b.node.target is aten.max.dim else Op.AMIN
    return _emit_first(b, op, [b.value(self)], {"dims": (dim,), "keepdim": keepdim})


@_on("any.dim", "any.dims")
def _any(b: Importer, self: Any, dim: Any = None, keepdim: bool = False) -> Any:
    # any == amax on bools, except that amax rejects empty reductions: only static non-empty dims qualify
    x = b.value(self)
    if x.dtype is not DType.bool:
        return None
    if isinstance(dim, (list, tuple)) and not dim:
        return x  # unlike sum/amax, any.dims over an empty list reduces nothing
    dims = _dims(dim)
    reduced = [x.shape[d] for d in dims] if dims is not None else list(x.shape)
    if not all(isinstance(n, int) and n > 0 for n in reduced):
        return None
    return b.emit(Op.AMAX, [x], {"dims": dims, "keepdim": keepdim})


@_on("argmax")
def _argmax(b: Importer, self: Any, dim: int | None = None, keepdim: bool = False) -> Any:
    return b.emit(Op.ARGMAX, [b.value(self)], {"dim": dim, "keepdim": keepdim})


@_on("_softmax", "_log_softmax")
def _softmax_internal(b: Importer, self: Any, dim: int, half_to_float: bool) -> Any:
    assert b.node is not None
    op = Op.SOFTMAX if b.node.target is aten._softmax.default else Op.LOG_SOFTMAX
    dtype = DType.f32 if half_to_float else None
    return b.emit(op, [b.value(self)], {"dim": dim, "dtype": dtype})


@_on("softmax.int", "log_softmax.int")
def _softmax(b: Importer, self: Any, dim: int, dtype: Any = None) -> Any:
    assert b.node is not None
    op = Op.SOFTMAX if b.node.target is aten.softmax.int else Op.LOG_SOFTMAX
    return b.emit(op, [b.value(self)], {"dim": dim, "dtype": _dtype(dtype)})


# -- linear algebra -----------------------------------------------------------------------------------------------


@_on("linear")
def _linear(b: Importer, input: Any, weight: Any, bias: Any = None) -> Any:
    ins = [b.value(input), b.value(weight)] + ([b.value(bias)] if bias is not None else [])
    return b.emit(Op.LINEAR, ins)


@_on("mm", "bmm", "matmul")
def _matmul(b: Importer, self: Any, other: Any) -> Any:
    return b.emit(Op.MATMUL, [b.value(self), b.value(other)])


@_on("addmm")
def _addmm(b: Importer, self: Any, mat1: Any, mat2: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
    return b.emit(Op.ADDMM, [b.value(self), b.value(mat1), b.value(mat2)], {"beta": beta, "alpha": alpha})


@_on("t")
def _t(b: Importer, self: Any) -> Any:
    x = b.value(self)
    return b.emit(Op.TRANSPOSE, [x], {"dim0": 0, "dim1": 1}) if x.rank == 2 else x


# -- convolution and pooling --------------------------------------------------------------------------------------


@_on("conv2d", "conv2d.padding")
def _conv2d(
    b: Importer,
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Any:
    ins = [b.value(input), b.value(weight)] + ([b.value(bias)] if bias is not None else [])
    pad = padding if isinstance(padding, str) else _pair(padding)
    return b.emit(
        Op.CONV2D, ins, {"stride": _pair(stride), "padding": pad, "dilation": _pair(dilation), "groups": groups}
    )


@_on("convolution")
def _convolution(
    b: Importer,
    input: Any,
    weight: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
) -> Any:
    if transposed or b.value(weight).rank != 4 or b.value(input).rank != 4:
        return None  # transposed, 1-d or 3-d convolutions have no IR op yet
    return _conv2d(b, input, weight, bias, stride, padding, dilation, groups)


@_on("max_pool2d", "max_pool2d_with_indices")
def _max_pool2d(
    b: Importer,
    self: Any,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Any:
    attrs = {
        "kernel_size": _pair(kernel_size),
        "stride": _pair(stride) if stride else None,
        "padding": _pair(padding),
        "dilation": _pair(dilation),
        "ceil_mode": ceil_mode,
    }
    assert b.node is not None
    if b.node.target is aten.max_pool2d_with_indices.default:
        return _emit_first(b, Op.MAX_POOL2D, [b.value(self)], attrs)
    return b.emit(Op.MAX_POOL2D, [b.value(self)], attrs)


@_on("avg_pool2d")
def _avg_pool2d(
    b: Importer,
    self: Any,
    kernel_size: Any,
    stride: Any = (),
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Any:
    return b.emit(
        Op.AVG_POOL2D,
        [b.value(self)],
        {
            "kernel_size": _pair(kernel_size),
            "stride": _pair(stride) if stride else None,
            "padding": _pair(padding),
            "ceil_mode": ceil_mode,
            "count_include_pad": count_include_pad,
            "divisor_override": divisor_override,
        },
    )


@_on("adaptive_avg_pool2d", "_adaptive_avg_pool2d")
def _adaptive_avg_pool2d(b: Importer, self: Any, output_size: Any) -> Any:
    if not all(isinstance(s, int) for s in output_size):
        return None
    return b.emit(Op.ADAPTIVE_AVG_POOL2D, [b.value(self)], {"output_size": _pair(output_size)})


# -- normalisation ------------------------------------------------------------------------------------------------


def _layer_norm(
    b: Importer, input: Any, normalized_shape: Any, weight: Any, bias: Any, eps: float, first_only: bool
) -> Any:
    if weight is None and bias is not None:
        return None  # LAYER_NORM's inputs are (x[, w[, b]])
    ins = [b.value(a) for a in (input, weight, bias) if a is not None]
    syms: list[Value] = []
    attrs = {"normalized_shape": b.ints(tuple(normalized_shape), syms), "eps": eps}
    if first_only:
        return _emit_first(b, Op.LAYER_NORM, ins, attrs, syms)
    return b.emit(Op.LAYER_NORM, ins, attrs, syms)


@_on("layer_norm")
def _layer_norm_default(
    b: Importer,
    input: Any,
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
    cudnn_enable: bool = True,
) -> Any:
    return _layer_norm(b, input, normalized_shape, weight, bias, eps, False)


@_on("native_layer_norm")
def _native_layer_norm(b: Importer, input: Any, normalized_shape: Any, weight: Any, bias: Any, eps: float) -> Any:
    return _layer_norm(b, input, normalized_shape, weight, bias, eps, True)


@_on("rms_norm")
def _rms_norm(b: Importer, input: Any, normalized_shape: Any, weight: Any = None, eps: float | None = None) -> Any:
    ins = [b.value(input)] + ([b.value(weight)] if weight is not None else [])
    syms: list[Value] = []
    return b.emit(Op.RMS_NORM, ins, {"normalized_shape": b.ints(tuple(normalized_shape), syms), "eps": eps}, syms)


def _batch_norm(
    b: Importer, input: Any, weight: Any, bias: Any, mean: Any, var: Any, eps: float, first_only: bool
) -> Any:
    if mean is None or var is None:
        return None  # batch statistics: not the inference form
    ins = [b.value(a) for a in (input, mean, var, weight, bias) if a is not None]
    attrs = {"eps": eps, "has_weight": weight is not None, "has_bias": bias is not None}
    return _emit_first(b, Op.BATCH_NORM, ins, attrs) if first_only else b.emit(Op.BATCH_NORM, ins, attrs)


@_on("batch_norm")
def _batch_norm_default(
    b: Importer,
    input: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float,
    eps: float,
    cudnn_enabled: bool,
) -> Any:
    return None if training else _batch_norm(b, input, weight, bias, running_mean, running_var, eps, False)


@_on("_native_batch_norm_legit_no_training")
def _bn_no_training(
    b: Importer, input: Any, weight: Any, bias: Any, running_mean: Any, running_var: Any, momentum: float, eps: float
) -> Any:
    return _batch_norm(b, input, weight, bias, running_mean, running_var, eps, True)


@_on("native_batch_norm")
def _native_batch_norm(
    b: Importer,
    input: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    training: bool,
    momentum: float,
    eps: float,
) -> Any:
    return None if training else _batch_norm(b, input, weight, bias, running_mean, running_var, eps, True)


# -- attention ----------------------------------------------------------------------------------------------------


def _sdpa(
    b: Importer,
    q: Any,
    k: Any,
    v: Any,
    mask: Any,
    dropout_p: float,
    is_causal: bool,
    scale: Any,
    enable_gqa: bool,
    first_only: bool,
) -> Any:
    if dropout_p != 0.0 or not (scale is None or isinstance(scale, (int, float))):
        return None
    ins = [b.value(a) for a in (q, k, v, mask) if a is not None]
    if first_only and ins[0].rank >= 3 and ins[1].rank >= 3 and ins[0].shape[-3] != ins[1].shape[-3]:
        enable_gqa = True  # the CPU flash kernel takes fewer k/v heads than q heads (GQA) without the flag
    attrs = {"is_causal": is_causal, "scale": scale, "enable_gqa": enable_gqa}
    return _emit_first(b, Op.SDPA, ins, attrs) if first_only else b.emit(Op.SDPA, ins, attrs)


@_on("scaled_dot_product_attention")
def _sdpa_default(
    b: Importer,
    query: Any,
    key: Any,
    value: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Any:
    return _sdpa(b, query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa, False)


@_on("_scaled_dot_product_flash_attention_for_cpu")
def _sdpa_flash_cpu(
    b: Importer,
    query: Any,
    key: Any,
    value: Any,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    attn_mask: Any = None,
    scale: float | None = None,
) -> Any:
    return _sdpa(b, query, key, value, attn_mask, dropout_p, is_causal, scale, False, True)


@_on("_scaled_dot_product_flash_attention")
def _sdpa_flash(
    b: Importer,
    query: Any,
    key: Any,
    value: Any,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    return_debug_mask: bool = False,
    *,
    scale: float | None = None,
) -> Any:
    return _sdpa(b, query, key, value, None, dropout_p, is_causal, scale, False, True)


@_on("_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")
def _sdpa_bias(
    b: Importer,
    query: Any,
    key: Any,
    value: Any,
    attn_bias: Any,
    compute_log_sumexp: bool,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    return_debug_mask: bool = False,
    *,
    scale: float | None = None,
) -> Any:
    return _sdpa(b, query, key, value, attn_bias, dropout_p, is_causal, scale, False, True)


# -- shape and data movement --------------------------------------------------------------------------------------


@_on("view", "reshape", "_unsafe_view", "view_copy")
def _reshape(b: Importer, self: Any, size: Any) -> Any:
    syms: list[Value] = []
    return b.emit(Op.RESHAPE, [b.value(self)], {"shape": b.ints(tuple(size), syms)}, syms)


def _sym_mul(b: Importer, a: int | Ref, c: int | Ref, syms: list[Value]) -> int | Ref:
    """a * c where either may be a Ref into ``syms``; a symbolic product becomes a SYM_ARITH value in ``syms``."""
    if isinstance(a, int) and isinstance(c, int):
        return a * c
    local: list[Value] = []

    def rebase(x: int | Ref) -> int | Ref:
        if isinstance(x, Ref):
            local.append(syms[x.index])
            return Ref(len(local) - 1)
        return x

    syms.append(b.g.add_node(Op.SYM_ARITH, [], {"fn": "mul", "a": rebase(a), "b": rebase(c)}, syms=local).out)
    return Ref(len(syms) - 1)


@_on("flatten.using_ints")
def _flatten(b: Importer, self: Any, start_dim: int = 0, end_dim: int = -1) -> Any:
    x = b.value(self)
    if x.rank == 0:
        return b.emit(Op.RESHAPE, [x], {"shape": (1,)})
    lo, hi = start_dim % x.rank, end_dim % x.rank
    syms: list[Value] = []
    dims = [_sym_dim(b, x, i, syms) for i in range(x.rank)]
    merged: int | Ref = math.prod(d for d in dims[lo : hi + 1] if isinstance(d, int))
    for d in dims[lo : hi + 1]:
        if isinstance(d, Ref):
            merged = _sym_mul(b, merged, d, syms)
    return b.emit(Op.RESHAPE, [x], {"shape": (*dims[:lo], merged, *dims[hi + 1 :])}, syms)


@_on("permute")
def _permute(b: Importer, self: Any, dims: Any) -> Any:
    return b.emit(Op.PERMUTE, [b.value(self)], {"dims": tuple(dims)})


@_on("transpose.int")
def _transpose(b: Importer, self: Any, dim0: int, dim1: int) -> Any:
    return b.emit(Op.TRANSPOSE, [b.value(self)], {"dim0": dim0, "dim1": dim1})


@_on("expand")
def _expand(b: Importer, self: Any, size: Any, *, implicit: bool = False) -> Any:
    syms: list[Value] = []
    return b.emit(Op.EXPAND, [b.value(self)], {"shape": b.ints(tuple(size), syms)}, syms)


@_on("squeeze", "squeeze.dim", "squeeze.dims")
def _squeeze(b: Importer, self: Any, dim: Any = None) -> Any:
    return b.emit(Op.SQUEEZE, [b.value(self)], {"dims": None if dim is None else _dims(dim) or ()})


@_on("unsqueeze")
def _unsqueeze(b: Importer, self: Any, dim: int) -> Any:
    return b.emit(Op.UNSQUEEZE, [b.value(self)], {"dim": dim})


@_on("slice.Tensor")
def _slice(b: Importer, self: Any, dim: int = 0, start: Any = None, end: Any = None, step: int = 1) -> Any:
    syms: list[Value] = []
    attrs = {"dim": dim, "start": b.ints(start, syms), "end": b.ints(end, syms), "step": b.ints(step, syms)}
    return b.emit(Op.SLICE, [b.value(self)], attrs, syms)


@_on("select.int")
def _select(b: Importer, self: Any, dim: int, index: Any) -> Any:
    syms: list[Value] = []
    return b.emit(Op.SELECT, [b.value(self)], {"dim": dim, "index": b.ints(index, syms)}, syms)


@_on("cat")
def _cat(b: Importer, tensors: Any, dim: int = 0) -> Any:
    return b.emit(Op.CAT, [b.value(t) for t in tensors], {"dim": dim})


@_on("split_with_sizes", "split.sizes")
def _split_with_sizes(b: Importer, self: Any, split_sizes: Any, dim: int = 0) -> Any:
    if len(split_sizes) == 1:
        return [b.value(self)]  # one piece: the tensor itself
    syms: list[Value] = []
    return b.emit(Op.SPLIT, [b.value(self)], {"sizes": b.ints(tuple(split_sizes), syms), "dim": dim}, syms)


def _split_static(b: Importer, self: Any, dim: int, pieces: Callable[[torch.Tensor], Sequence[torch.Tensor]]) -> Any:
    """SPLIT with the sizes torch itself picks for a dim of static size (``pieces`` runs on a meta tensor)."""
    x = b.value(self)
    total = x.shape[dim]
    if not isinstance(total, int):
        return None  # the number of pieces would depend on a symbolic size
    sizes = tuple(int(t.shape[0]) for t in pieces(torch.empty(total, device="meta")))
    if len(sizes) != len(_out_val(b)):
        return None
    return [x] if len(sizes) == 1 else b.emit(Op.SPLIT, [x], {"sizes": sizes, "dim": dim})


@_on("split.Tensor")
def _split(b: Importer, self: Any, split_size: Any, dim: int = 0) -> Any:
    if not isinstance(split_size, int):
        return None
    return _split_static(b, self, dim, lambda t: torch.split(t, split_size))


@_on("chunk")
def _chunk(b: Importer, self: Any, chunks: int, dim: int = 0) -> Any:
    return _split_static(b, self, dim, lambda t: torch.chunk(t, chunks))


@_on("unbind.int")
def _unbind(b: Importer, self: Any, dim: int = 0) -> Any:
    # unbind == split into size-1 pieces, each squeezed
    x = b.value(self)
    n = x.shape[dim]
    if not isinstance(n, int) or n == 0:
        return None
    if n == 1:
        return [b.g.add_node(Op.SQUEEZE, [x], {"dims": (dim,)}).out]
    pieces = b.g.add_node(Op.SPLIT, [x], {"sizes": (1,) * n, "dim": dim}).outputs
    return [b.g.add_node(Op.SQUEEZE, [p], {"dims": (dim,)}).out for p in pieces]


@_on("contiguous")
def _contiguous(b: Importer, self: Any, *, memory_format: Any = torch.contiguous_format) -> Any:
    fmt = str(memory_format).removeprefix("torch.")
    return b.emit(Op.CONTIGUOUS, [b.value(self)], {"memory_format": None if fmt == "contiguous_format" else fmt})


@_on("clone")
def _clone(b: Importer, self: Any, *, memory_format: Any = None) -> Any:
    # the IR has no mutation, so a copy is the value itself; only a layout change is kept
    if memory_format in (torch.channels_last, torch.channels_last_3d):
        return b.emit(Op.CONTIGUOUS, [b.value(self)], {"memory_format": str(memory_format).removeprefix("torch.")})
    return _tensor(b, self)


@_on("alias", "lift_fresh_copy", "detach")
def _identity(b: Importer, self: Any) -> Any:
    return _tensor(b, self)


@_on("dropout", "feature_dropout", "alpha_dropout")
def _dropout(b: Importer, input: Any, p: float, train: bool | None) -> Any:
    return _tensor(b, input) if not train or p == 0 else None


@_on("native_dropout")
def _native_dropout(b: Importer, input: Any, p: float, train: bool | None) -> Any:
    x = _tensor(b, input)
    if x is None or (train and p != 0) or not _only_first_used(b):
        return None
    return [x, None]


@_on("embedding")
def _embedding(
    b: Importer,
    weight: Any,
    indices: Any,
    padding_idx: int = -1,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Any:
    return b.emit(
        Op.EMBEDDING,
        [b.value(weight), b.value(indices)],
        {
            "padding_idx": None if padding_idx == -1 else padding_idx,
            "scale_grad_by_freq": scale_grad_by_freq,
            "sparse": sparse,
        },
    )


@_on("gather")
def _gather(b: Importer, self: Any, dim: int, index: Any, *, sparse_grad: bool = False) -> Any:
    return b.emit(Op.GATHER, [b.value(self), b.value(index)], {"dim": dim})


@_on("index_select")
def _index_select(b: Importer, self: Any, dim: int, index: Any) -> Any:
    return b.emit(Op.INDEX_SELECT, [b.value(self), b.value(index)], {"dim": dim})


# -- creation -----------------------------------------------------------------------------------------------------


def _creation(b: Importer, op: Op, attrs: dict[str, Any], syms: list[Value]) -> Any:
    """Emit a creation op with dtype and device taken from the FX node's result."""
    val = _out_val(b)
    if not isinstance(val, torch.Tensor) or val.layout != torch.strided:
        return None
    attrs = {**attrs, "dtype": DType.from_torch(val.dtype), "device": device_str(val.device)}
    return b.emit(op, [], attrs, syms)


def _arange(b: Importer, start: Any, end: Any, step: Any) -> Any:
    syms: list[Value] = []
    attrs = {"start": b.ints(start, syms), "end": b.ints(end, syms), "step": b.ints(step, syms)}
    return _creation(b, Op.ARANGE, attrs, syms)


@_on("arange")
def _arange_default(b: Importer, end: Any, **kwargs: Any) -> Any:
    return _arange(b, 0, end, 1)


@_on("arange.start")
def _arange_start(b: Importer, start: Any, end: Any, **kwargs: Any) -> Any:
    return _arange(b, start, end, 1)


@_on("arange.start_step")
def _arange_start_step(b: Importer, start: Any, end: Any, step: Any = 1, **kwargs: Any) -> Any:
    return _arange(b, start, end, step)


def _full(b: Importer, size: Any, value: Any) -> Any:
    syms: list[Value] = []
    if b.is_sym(value):
        value = b.ints(value, syms)
    elif not isinstance(value, _NUMBER):
        return None
    return _creation(b, Op.FULL, {"shape": b.ints(tuple(size), syms), "value": value}, syms)


def _full_like(b: Importer, self: Any, value: Any) -> Any:
    if not isinstance(value, _NUMBER):
        return None
    x = b.value(self)
    syms: list[Value] = []
    shape = tuple(_sym_dim(b, x, i, syms) for i in range(x.rank))
    return _creation(b, Op.FULL, {"shape": shape, "value": value}, syms)


@_on("full")
def _full_default(b: Importer, size: Any, fill_value: Any, **kwargs: Any) -> Any:
    return _full(b, size, fill_value)


@_on("zeros", "ones")
def _zeros(b: Importer, size: Any, **kwargs: Any) -> Any:
    assert b.node is not None
    return _full(b, size, 0 if b.node.target is aten.zeros.default else 1)


@_on("empty.memory_format")
def _empty(b: Importer, size: Any, **kwargs: Any) -> Any:
    return _full(b, size, 0)  # the contents of empty are unspecified, so zeros are one valid choice


@_on("empty_like")
def _empty_like(b: Importer, self: Any, **kwargs: Any) -> Any:
    return _full_like(b, self, 0)


@_on("scalar_tensor")
def _scalar_tensor(b: Importer, s: Any, **kwargs: Any) -> Any:
    return _full(b, (), s)


@_on("new_zeros", "new_ones")
def _new_zeros(b: Importer, self: Any, size: Any, **kwargs: Any) -> Any:
    assert b.node is not None
    return _full(b, size, 0 if b.node.target is aten.new_zeros.default else 1)


@_on("new_full")
def _new_full(b: Importer, self: Any, size: Any, fill_value: Any, **kwargs: Any) -> Any:
    return _full(b, size, fill_value)


@_on("full_like")
def _full_like_default(b: Importer, self: Any, fill_value: Any, **kwargs: Any) -> Any:
    return _full_like(b, self, fill_value)


@_on("zeros_like", "ones_like")
def _zeros_like(b: Importer, self: Any, **kwargs: Any) -> Any:
    assert b.node is not None
    return _full_like(b, self, 0 if b.node.target is aten.zeros_like.default else 1)


# -- symbolic sizes -----------------------------------------------------------------------------------------------


@_on("sym_size.int")
def _sym_size(b: Importer, self: Any, dim: int) -> Any:
    return b.emit(Op.SYM_SIZE, [b.value(self)], {"dim": dim})
