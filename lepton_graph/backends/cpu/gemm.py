"""CPU lowerings of LINEAR, QLINEAR, WQLINEAR, MATMUL, ADDMM and FUSED "gemm" groups onto the native GEMMs
(csrc/kernels/gemm*).

Constant weights are packed once here, at lowering time, into the micro-kernel's panel layout (``_C.PackedB``,
kept alive by the kernel closure); bias, residual add and one activation of a fused group run as the GEMM's
epilogue on the register tile. Inputs may be any strided view: x is flattened to (M, K) as a view when it can be,
copied otherwise. Groups rooted at CONV2D belong to the conv family (``conv.lower_conv_group``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from ...ir import DType, Graph, Node, Op, OpGroup, Value
from .. import LowerOptions
from .epilogue import Caps, parse_epilogue
from .native import _lib
from .registry import Kernel, lowers, lowers_fused


def _f32_cpu(v: Value, what: str) -> str | None:
    if v.kind != "tensor":
        return f"{what} is a {v.kind}"
    if v.dtype is not DType.f32:
        return f"{what} is {v.dtype.value}, only float32 is native"
    if not str(v.device).startswith("cpu"):
        return f"{what} is on {v.device}"
    return None


def _const(graph: Graph, v: Value) -> torch.Tensor | None:
    t = graph.constant(v)
    return None if t is None else t.detach()


class Consts:
    """Constant lookup for lowering: ``consts(v)`` is the tensor behind a value (None for run-time values) and
    ``consts.key(v)`` its graph key; inside a fused group, body values are first mapped to the group's inputs."""

    def __init__(self, graph: Graph, outer: dict[Value, Value] | None = None) -> None:
        self.graph, self.outer = graph, outer

    def _value(self, v: Value) -> Value | None:
        return v if self.outer is None else self.outer.get(v)

    def __call__(self, v: Value) -> torch.Tensor | None:
        o = self._value(v)
        return None if o is None else _const(self.graph, o)

    def key(self, v: Value) -> str | None:
        o = self._value(v)
        return None if o is None else o.const


def _rows(t: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """t viewed as (m, k) with unit column stride and a row stride >= k (a copy only when no such view exists)."""
    t2 = t.reshape(m, k)
    if (k > 1 and t2.stride(1) != 1) or (m > 1 and t2.stride(0) < k):
        t2 = t2.contiguous()
    return t2


# Rows of A up to which a GEMM streams its weight (GEMV-like, TLB-bound): only those weights get huge pages.
_STREAMING_ROWS = 16


def _streams_weight(a: Value) -> bool:
    """True unless A's row count (all dims but the last) is static and large: huge pages pay off only when the
    weight is streamed, and faulting them in at compile time can be slow (synchronous compaction)."""
    rows = 1
    for d in a.shape[:-1]:
        if not isinstance(d, int):
            return True  # dynamic batch: may be 1 at run time
        rows *= d
    return rows <= _STREAMING_ROWS


def pack_weight(w: torch.Tensor, transposed: bool, bf16: bool = False, huge_pages: bool = True) -> Any:
    """Pack a 2-D float32 weight as the GEMM's B operand: ``w`` is (N, K) when ``transposed`` (nn.Linear), else
    (K, N). The packed copy is independent of ``w``; ``huge_pages`` puts it on transparent huge pages."""
    lib = _lib()
    w = w.detach()
    if w.dtype != torch.float32 or w.device.type != "cpu" or w.dim() != 2:
        raise ValueError(f"weight must be a 2-D float32 cpu tensor, got {w.dtype} {tuple(w.shape)} on {w.device}")
    k, n = (w.shape[1], w.shape[0]) if transposed else (w.shape[0], w.shape[1])
    sk, sn = (w.stride(1), w.stride(0)) if transposed else (w.stride(0), w.stride(1))
    pack = lib.gemm_pack_b_bf16 if bf16 else lib.gemm_pack_b_f32
    return pack(w.data_ptr(), k, n, sk, sn, huge_pages)


def _runtime_bias(b: torch.Tensor, scale: float, const_bias: torch.Tensor | None, n: int) -> torch.Tensor:
    """A bias that is a graph input: scaled, broadcast to (n,), plus any constant bias, contiguous fp32."""
    b = (b * scale if scale != 1.0 else b).to(torch.float32).reshape(-1).expand(n)
    return (b + const_bias if const_bias is not None else b).contiguous()


class _Epi:
    """The epilogue of a GEMM: constant per-column bias, one runtime residual (input index), one activation."""

    def __init__(self) -> None:
        self.bias: torch.Tensor | None = None  # constant, (N,) contiguous
        self.bias_input: int | None = None  # runtime per-column bias (node input index)
        self.bias_scale: float = 1.0
        self.residual: int | None = None  # node input index
        self.residual_before_act = False
        self.act: int = 0  # Act.none

    def add_bias(self, t: torch.Tensor) -> None:
        t = t.to(torch.float32).reshape(-1)
        self.bias = t.clone() if self.bias is None else self.bias + t


def keep_alive(kernel: Kernel, *objs: Any) -> Kernel:
    """The kernel passes raw addresses of these (packed weight, bias) to C++: nothing in its body refers to the
    objects themselves, so they are tied to its lifetime here (no one reads the attribute)."""
    kernel.__lepton_keep__ = objs  # type: ignore[attr-defined]
    return kernel


def _make_linear_kernel(
    packed: Any, k: int, n: int, epi: _Epi, x_index: int, static: tuple[float, int] | None = None
) -> Kernel:
    """out = epilogue(x @ B) for x (..., k) at node input ``x_index``; B packed (f32/bf16; int8: x quantized
    per row at run time, or with the calibrated ``static`` (scale, zero point); weight-only int8/int4: the same
    arguments)."""
    lib = _lib()
    call = lib.gemm_packed
    if isinstance(packed, lib.PackedS8):
        call = lib.gemm_u8s8_dynamic
    elif isinstance(packed, lib.PackedWo):
        call = lib.gemm_wo_packed
    if static is not None:
        call = functools.partial(_static_call, lib.gemm_u8s8_static, *static)
    empty = torch.empty
    bias = None if epi.bias is None else epi.bias.contiguous()
    bias_ptr = 0 if bias is None else bias.data_ptr()
    act, res_idx, before = epi.act, epi.residual, epi.residual_before_act
    bias_idx, bias_scale = epi.bias_input, epi.bias_scale

    def rows_of(x: torch.Tensor) -> tuple[torch.Tensor, int, int, torch.Tensor]:
        """(x as rows, M, row stride, output)."""
        if x.is_contiguous() and k:
            m = x.numel() // k
            out = empty(m, n) if x.dim() == 2 else empty((*x.shape[:-1], n))
            return x, m, k, out
        m = math.prod(x.shape[:-1])
        x2 = _rows(x, m, k)
        return x2, m, x2.stride(0), empty((*x.shape[:-1], n))

    if res_idx is None and bias_idx is None and x_index == 0:

        def linear_kernel(x: torch.Tensor, *_: Any) -> torch.Tensor:  # the common case: x, constant W, b
            x2, m, lda, out = rows_of(x)
            call(x2.data_ptr(), m, k, lda, packed, out.data_ptr(), n, bias_ptr, 0, 0, False, act)
            return out

        return keep_alive(linear_kernel, packed, bias)

    def gemm_kernel(*args: torch.Tensor) -> torch.Tensor:
        x2, m, lda, out = rows_of(args[x_index])
        bp = bias_ptr
        if bias_idx is not None:
            b = _runtime_bias(args[bias_idx], bias_scale, bias, n)  # kept alive across the call
            bp = b.data_ptr()
        if res_idx is None:
            call(x2.data_ptr(), m, k, lda, packed, out.data_ptr(), n, bp, 0, 0, False, act)
        else:
            r = args[res_idx]
            if not r.is_contiguous() or r.shape != out.shape:
                r = _rows(r.expand(out.shape), m, n)
                ldr = r.stride(0)
            else:
                ldr = n
            call(x2.data_ptr(), m, k, lda, packed, out.data_ptr(), n, bp, r.data_ptr(), ldr, before, act)
        return out

    keep_alive(gemm_kernel, packed, bias)
    return gemm_kernel


def _static_call(gemm: Any, scale: float, zero: int, a: int, m: int, k: int, lda: int, b: Any, *rest: Any) -> None:
    """gemm_u8s8_dynamic's argument order onto gemm_u8s8_static (scale and zero point after B)."""
    gemm(a, m, k, lda, b, scale, zero, *rest)


def _make_runtime_kernel(
    k: int, n: int, epi: _Epi, x_index: int, w_index: int, w_transposed: bool, alpha: float = 1.0
) -> Kernel:
    """out = epilogue(alpha * x @ W) with W a runtime input: (N, K) when ``w_transposed`` else (K, N)."""
    lib = _lib()
    call = lib.gemm_f32
    bias = None if epi.bias is None else epi.bias.contiguous()
    bias_ptr = 0 if bias is None else bias.data_ptr()
    act, res_idx, before = epi.act, epi.residual, epi.residual_before_act
    bias_idx, bias_scale = epi.bias_input, epi.bias_scale

    def gemm_kernel(*args: torch.Tensor) -> torch.Tensor:
        x, w = args[x_index], args[w_index]
        if alpha != 1.0:
            x = x * alpha
        lead = x.shape[:-1]
        m = math.prod(lead)
        x2 = x.reshape(m, k)
        out = torch.empty((*lead, n), dtype=torch.float32)
        sk, sn = (w.stride(1), w.stride(0)) if w_transposed else (w.stride(0), w.stride(1))
        bp = bias_ptr
        if bias_idx is not None:
            b = _runtime_bias(args[bias_idx], bias_scale, bias, n)  # kept alive across the call
            bp = b.data_ptr()
        rp, ldr = 0, 0
        if res_idx is not None:
            r = _rows(args[res_idx].expand(out.shape), m, n)
            rp, ldr = r.data_ptr(), r.stride(0)
        call(
            x2.data_ptr(),
            x2.stride(0),
            x2.stride(1),
            w.data_ptr(),
            sk,
            sn,
            out.data_ptr(),
            n,
            m,
            n,
            k,
            bp,
            rp,
            ldr,
            before,
            act,
        )
        return out

    keep_alive(gemm_kernel, bias)
    return gemm_kernel


# ---------------------------------------------------------------------------------------------------- roots


class _Root:
    """A GEMM-like root node reduced to: x input index, constant packed B or runtime B, K, N, epilogue seed."""

    def __init__(
        self,
        x_index: int,
        k: int,
        n: int,
        epi: _Epi,
        packed: Any = None,
        w_index: int | None = None,
        w_transposed: bool = False,
        alpha: float = 1.0,
        static: tuple[float, int] | None = None,
    ):
        self.x_index, self.k, self.n, self.epi = x_index, k, n, epi
        self.packed, self.w_index, self.w_transposed, self.alpha = packed, w_index, w_transposed, alpha
        self.static = static  # int8-static: the calibrated activation (scale, zero point)

    def kernel(self) -> Kernel:
        if self.packed is not None:
            return _make_linear_kernel(self.packed, self.k, self.n, self.epi, self.x_index, self.static)
        assert self.w_index is not None
        return _make_runtime_kernel(self.k, self.n, self.epi, self.x_index, self.w_index, self.w_transposed, self.alpha)


def _linear_root(node: Node, opts: LowerOptions, index_of: Callable[[Value], int], const_of: Consts) -> _Root | str:
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    for v, what in ((x, "input"), (w, "weight"), (b, "bias")):
        if v is not None and (why := _f32_cpu(v, what)):
            return why
    if w.rank != 2 or not all(isinstance(d, int) for d in w.shape):
        return "weight is not a static 2-D tensor"
    if x.rank < 1:
        return "input is a scalar"
    n, k = (int(d) for d in w.shape)  # static: checked above
    if x.shape[-1] != k:
        return f"input's last dim {x.shape[-1]} != in_features {k}"
    epi = _Epi()
    if b is not None:
        if b.shape != (n,):
            return f"bias shape {b.shape} is not ({n},)"
        bt = const_of(b)
        if bt is not None:
            epi.add_bias(bt)
        else:
            epi.bias_input = index_of(b)
    wt = const_of(w)
    if wt is not None:
        return _Root(index_of(x), k, n, epi, packed=_weight_b(opts, const_of.key(w), wt, True, _streams_weight(x)))
    return _Root(index_of(x), k, n, epi, w_index=index_of(w), w_transposed=True)


def quant_activation(node: Node) -> tuple[float, int] | None | str:
    """How a QLINEAR / QCONV2D quantizes its input: (scale, zero point) calibrated (act="static"), None at run time
    (act="dynamic"), or why the native kernels cannot take it."""
    op, act = node.op.value, node.attrs.get("act")
    if act == "dynamic":
        return None
    if act != "static":
        return f"{op} activation scheme {act!r}"
    scale, zero = float(node.attrs["scale"]), int(node.attrs["zero_point"])
    if not (math.isfinite(scale) and scale > 0 and 0 <= zero <= 255):
        return f"{op} static scale {scale} / zero point {zero} out of range"
    return scale, zero


def _qlinear_root(
    node: Node, opts: LowerOptions, index_of: Callable[[Value], int], const_of: Callable[[Value], Any]
) -> _Root | str:
    """QLINEAR (int8 weight, per-channel scales; activations per row at run time, or calibrated) onto the int8
    GEMM (gemm_u8s8_dynamic / gemm_u8s8_static)."""
    x, w, scale = node.inputs[:3]
    b = node.inputs[3] if len(node.inputs) > 3 else None
    static = quant_activation(node)
    if isinstance(static, str):
        return static
    for v, what in ((x, "input"), (b, "bias")):
        if v is not None and (why := _f32_cpu(v, what)):
            return why
    wt, st = const_of(w), const_of(scale)
    if wt is None or st is None or wt.dtype != torch.int8 or wt.dim() != 2:
        return "qlinear weight is not a constant 2-D int8 tensor"
    n, k = wt.shape
    if x.rank < 1 or x.shape[-1] != k:
        return f"input's last dim {x.shape[-1] if x.rank else None} != in_features {k}"
    if k > _lib().GEMM_INT8_MAX_K:
        return f"in_features {k} > {_lib().GEMM_INT8_MAX_K} (int32 accumulators could overflow)"
    epi = _const_bias_epi(b, n, const_of, "qlinear")
    if isinstance(epi, str):
        return epi
    return _Root(index_of(x), k, n, epi, packed=pack_weight_s8(wt, st.to(torch.float32)), static=static)


def _const_bias_epi(b: Value | None, n: int, const_of: Callable[[Value], Any], op: str) -> _Epi | str:
    """The epilogue of a quantized linear: its constant (N,) bias, or why not."""
    epi = _Epi()
    if b is not None:
        bt = const_of(b)
        if bt is None or b.shape != (n,):
            return f"{op} bias is not a constant (N,) tensor"
        epi.add_bias(bt)
    return epi


def pack_weight_s8(w: torch.Tensor, scale: torch.Tensor) -> Any:
    """Pack an int8 (N, K) weight (nn.Linear layout) and its N per-channel scales for the int8 GEMM."""
    lib = _lib()
    if w.dtype != torch.int8 or w.dim() != 2 or scale.shape != (w.shape[0],) or scale.dtype != torch.float32:
        raise ValueError(
            f"int8 weight must be (N, K) int8 with N float32 scales, got {w.dtype} {tuple(w.shape)} "
            f"and {scale.dtype} {tuple(scale.shape)}"
        )
    scale = scale.contiguous()
    return lib.gemm_pack_b_s8(w.data_ptr(), w.shape[1], w.shape[0], w.stride(1), w.stride(0), scale.data_ptr())


def _wqlinear_root(
    node: Node, opts: LowerOptions, index_of: Callable[[Value], int], const_of: Callable[[Value], Any]
) -> _Root | str:
    """WQLINEAR (weight-only int8 / int4, per-group scales) onto gemm_wo_packed."""
    x, q, scale, zero = node.inputs[:4]
    b = node.inputs[4] if len(node.inputs) > 4 else None
    bits, group = node.attrs.get("bits"), node.attrs.get("group")
    if bits not in (8, 4) or not isinstance(group, int) or group < 0:
        return f"wqlinear bits {bits!r} / group {group!r}"
    for v, what in ((x, "input"), (b, "bias")):
        if v is not None and (why := _f32_cpu(v, what)):
            return why
    if x.rank < 1 or not isinstance(x.shape[-1], int):
        return "wqlinear input has no static last dim"
    k = int(x.shape[-1])
    qt, st, zt = const_of(q), const_of(scale), const_of(zero)
    if qt is None or st is None or zt is None or qt.dim() != 2 or st.dim() != 2:
        return "wqlinear weight, scales or zero points are not constant 2-D tensors"
    n = qt.shape[0]
    want = (torch.int8, k) if bits == 8 else (torch.uint8, (k + 1) // 2)
    if (qt.dtype, qt.shape[1]) != want or st.shape[0] != n or zt.shape != st.shape:
        return f"wqlinear int{bits} weight {tuple(qt.shape)} {qt.dtype} does not fit in_features {k}"
    epi = _const_bias_epi(b, n, const_of, "wqlinear")
    if isinstance(epi, str):
        return epi
    try:
        packed = pack_weight_wo(qt, st, zt, bits, group, k)
    except ValueError as e:
        return f"kernel rejected: {e}"
    return _Root(index_of(x), k, n, epi, packed=packed)


def pack_weight_wo(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int, group: int, k: int) -> Any:
    """Pack a weight-only quantized weight (ir/defs/quant.py's WQLINEAR operands) for gemm_wo_packed."""
    q, scale, zero = q.contiguous(), scale.to(torch.float32).contiguous(), zero.to(torch.uint8).contiguous()
    return _lib().gemm_pack_b_wo(
        q.data_ptr(),
        k,
        q.shape[0],
        q.shape[1],
        bits,
        group,
        scale.data_ptr(),
        scale.shape[1],
        zero.data_ptr() if bits == 4 else 0,
    )


def _matmul_const_root(
    node: Node, opts: LowerOptions, index_of: Callable[[Value], int], const_of: Consts
) -> _Root | str:
    """MATMUL with a constant 2-D B and a >= 2-D A: the same as a LINEAR without bias."""
    a, b = node.inputs
    for v, what in ((a, "a"), (b, "b")):
        if why := _f32_cpu(v, what):
            return why
    bt = const_of(b)
    if bt is None or b.rank != 2 or a.rank < 1:
        return "matmul B is not a constant 2-D tensor"
    k, n = bt.shape
    if a.shape[-1] != k:
        return f"a's last dim {a.shape[-1]} != {k}"
    if a.rank == 1:
        return "1-D a"
    return _Root(index_of(a), k, n, _Epi(), packed=_weight_b(opts, const_of.key(b), bt, False, _streams_weight(a)))


def _weight_b(opts: LowerOptions, key: str | None, w: torch.Tensor, transposed: bool, huge_pages: bool) -> Any:
    """The packed B of a constant weight: the panels a loaded artifact stored for it when it has them (read in place
    unless the weight is streamed, which wants huge pages: then copied), else packed now."""
    bf16 = _use_bf16(opts)
    words = opts.prepacked.take(key, transposed) if opts.prepacked is not None and key and not bf16 else None
    if words is None:
        return pack_weight(w, transposed=transposed, bf16=bf16, huge_pages=huge_pages)
    k, n = (w.shape[1], w.shape[0]) if transposed else (w.shape[0], w.shape[1])
    borrow = not huge_pages and words.data_ptr() % 64 == 0
    return _lib().gemm_packed_b_f32_from(words.data_ptr(), words.numel(), k, n, borrow, huge_pages)


def _use_bf16(opts: LowerOptions) -> bool:
    """compile(precision="bf16"): constant weights packed as bf16 (vdpbf16ps) when the CPU has AVX512_BF16."""
    return opts.precision == "bf16" and bool(_lib().gemm_bf16_supported())


def _identity_index(node: Node) -> Callable[[Value], int]:
    idx = {v: i for i, v in enumerate(node.inputs)}
    return lambda v: idx[v]


def _graph_const(graph: Graph) -> Consts:
    return Consts(graph)


@lowers(Op.LINEAR)
def lower_linear(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    root = _linear_root(node, opts, _identity_index(node), _graph_const(graph))
    return root if isinstance(root, str) else root.kernel()


@lowers(Op.QLINEAR)
def lower_qlinear(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    root = _qlinear_root(node, opts, _identity_index(node), _graph_const(graph))
    return root if isinstance(root, str) else root.kernel()


@lowers(Op.WQLINEAR)
def lower_wqlinear(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    root = _wqlinear_root(node, opts, _identity_index(node), _graph_const(graph))
    return root if isinstance(root, str) else root.kernel()


# ---------------------------------------------------------------------------------------------------- matmul


def _matmul_general() -> Kernel:
    lib = _lib()
    batched, gemm = lib.gemm_f32_batched, lib.gemm_f32

    def matmul_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        squeeze_m = a.dim() == 1
        squeeze_n = b.dim() == 1
        if squeeze_m:
            a = a.unsqueeze(0)
        if squeeze_n:
            b = b.unsqueeze(1)
        m, k = a.shape[-2:]
        n = b.shape[-1]
        if b.shape[-2] != k:
            raise ValueError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not match")
        batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = torch.empty((*batch, m, n), dtype=torch.float32)
        if b.dim() == 2 and a.dim() > 2:  # one GEMM over all of a's rows when they form a matrix
            a2 = a.reshape(-1, k)
            mm = a2.shape[0]
            gemm(
                a2.data_ptr(),
                a2.stride(0),
                a2.stride(1),
                b.data_ptr(),
                b.stride(0),
                b.stride(1),
                out.data_ptr(),
                n,
                mm,
                n,
                k,
            )
        elif not batch:
            gemm(
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
            )
        else:
            ae = a.expand(*batch, m, k)
            be = b.expand(*batch, k, n)
            nb = len(batch)
            batched(
                list(batch),
                ae.data_ptr(),
                list(ae.stride()[:nb]),
                ae.stride(-2),
                ae.stride(-1),
                be.data_ptr(),
                list(be.stride()[:nb]),
                be.stride(-2),
                be.stride(-1),
                out.data_ptr(),
                list(out.stride()[:nb]),
                n,
                m,
                n,
                k,
            )
        if squeeze_m:
            out = out.squeeze(-2)
        if squeeze_n:
            out = out.squeeze(-1)
        return out

    return matmul_kernel


@lowers(Op.MATMUL)
def lower_matmul(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    a, b = node.inputs
    for v, what in ((a, "a"), (b, "b")):
        if why := _f32_cpu(v, what):
            return why
    if a.rank == 0 or b.rank == 0:
        return "matmul of a scalar"
    if a.rank == 1 and b.rank == 1:
        return "1-D x 1-D matmul (a dot product)"
    if b.const is not None and b.rank == 2 and a.rank >= 2:
        root = _matmul_const_root(node, opts, _identity_index(node), _graph_const(graph))
        if not isinstance(root, str):
            return root.kernel()
    return _matmul_general()


# ---------------------------------------------------------------------------------------------------- addmm


def _addmm_root(
    node: Node, opts: LowerOptions, index_of: Callable[[Value], int], const_of: Callable[[Value], Any]
) -> _Root | str:
    bias, a, b = node.inputs
    for v, what in ((bias, "bias"), (a, "a"), (b, "b")):
        if why := _f32_cpu(v, what):
            return why
    if a.rank != 2 or b.rank != 2:
        return "addmm operands are not 2-D"
    beta, alpha = node.attrs.get("beta", 1), node.attrs.get("alpha", 1)
    if not isinstance(beta, (int, float)) or not isinstance(alpha, (int, float)):
        return "symbolic beta/alpha"
    k, n = b.shape
    if not isinstance(n, int) or not isinstance(k, int):
        return "B is not static"
    epi = _Epi()
    if beta != 0:
        bt = const_of(bias)
        per_col = bias.rank <= 1 or all(d == 1 for d in bias.shape[:-1])
        if per_col and bias.numel() in (1, n):
            if bt is not None:
                epi.add_bias(bt.reshape(-1).expand(n) * beta)
            else:
                epi.bias_input, epi.bias_scale = index_of(bias), float(beta)
        else:  # a full (M, N) (or column) bias: the residual
            if beta != 1:
                return "addmm with a non-per-column bias and beta != 1"
            epi.residual, epi.residual_before_act = index_of(bias), True
    btc = const_of(b)
    if btc is not None:
        w = btc * alpha if alpha != 1 else btc
        return _Root(
            index_of(a),
            k,
            n,
            epi,
            packed=pack_weight(w, transposed=False, bf16=_use_bf16(opts), huge_pages=_streams_weight(a)),
        )
    return _Root(index_of(a), k, n, epi, w_index=index_of(b), w_transposed=False, alpha=float(alpha))


def _matmul_runtime_root(node: Node, index_of: Callable[[Value], int]) -> _Root | str:
    """MATMUL of a >= 2-D A by a run-time 2-D B (in a fused group: the epilogue applies)."""
    a, b = node.inputs
    for v, what in ((a, "a"), (b, "b")):
        if why := _f32_cpu(v, what):
            return why
    if a.rank < 2 or b.rank != 2:
        return "batched matmul in a gemm group"
    k, n = b.shape
    if not isinstance(n, int) or not isinstance(k, int) or a.shape[-1] != k:
        return "matmul B is not static"
    return _Root(index_of(a), k, n, _Epi(), w_index=index_of(b), w_transposed=False)


@lowers(Op.ADDMM)
def lower_addmm(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    root = _addmm_root(node, opts, _identity_index(node), _graph_const(graph))
    return root if isinstance(root, str) else root.kernel()


# ---------------------------------------------------------------------------------------------------- fused


def _is_per_column(v: Value, n: int) -> bool:
    return v.rank >= 1 and v.shape[-1] == n and all(d == 1 for d in v.shape[:-1])


def gemm_epilogue(
    chain: list[Node],
    root_out: Value,
    n: int,
    epi: _Epi,
    index_of: Callable[[Value], int],
    const_of: Callable[[Value], Any],
) -> str | None:
    """Fill ``epi`` from the elementwise chain after a GEMM (epilogue.parse_epilogue with the GEMM's
    capabilities), or say why the chain cannot be this GEMM's epilogue."""
    caps = Caps(
        "gemm",
        channel_bias=lambda v: const_of(v) if _is_per_column(v, n) else None,
        runtime_bias=lambda v: _is_per_column(v, n) and v.rank == 1,
        scalar_add=True,
        bias_after_residual=True,
        check_operand=_f32_cpu,
    )
    e = parse_epilogue(chain, root_out, caps)
    if isinstance(e, str):
        return e
    if e.bias is not None:
        epi.add_bias(e.bias)
    if e.bias_input is not None:
        if epi.bias_input is not None:
            return "a runtime bias in the epilogue after the GEMM's own"
        epi.bias_input = index_of(e.bias_input)
    if e.residual is not None:
        epi.residual, epi.residual_before_act = index_of(e.residual), e.residual_before_act
    epi.act = e.act
    return None


@lowers_fused("gemm")
def lower_gemm_group(node: Node, graph: Graph, opts: LowerOptions) -> Kernel | str:
    body: Graph = node.attrs["body"]
    if not body.nodes:
        return "empty body"
    root = body.nodes[0]
    if root.op in OpGroup.CONV:
        try:
            from .conv import lower_conv_group
        except ImportError:
            return "conv-rooted gemm group: no conv lowering available"
        return lower_conv_group(node, graph, opts)
    if len(node.outputs) != 1 or len(body.outputs) != 1 or body.outputs[0] is not body.nodes[-1].outputs[0]:
        return "gemm group with more than one output"
    outer = dict(zip(body.inputs, node.inputs))
    index = {v: i for i, v in enumerate(body.inputs)}

    def index_of(v: Value) -> int:
        return index[v]

    const_of = Consts(graph, outer)

    if root.op is Op.LINEAR:
        r = _linear_root(root, opts, index_of, const_of)
    elif root.op is Op.QLINEAR:
        r = _qlinear_root(root, opts, index_of, const_of)
    elif root.op is Op.WQLINEAR:
        r = _wqlinear_root(root, opts, index_of, const_of)
    elif root.op is Op.MATMUL:
        b = root.inputs[1]
        r = (
            _matmul_const_root(root, opts, index_of, const_of)
            if const_of(b) is not None
            else _matmul_runtime_root(root, index_of)
        )
    elif root.op is Op.ADDMM:
        r = _addmm_root(root, opts, index_of, const_of)
    else:
        return f"gemm group rooted at {root.op.value}"
    if isinstance(r, str):
        return r
    why = gemm_epilogue(body.nodes[1:], root.out, r.n, r.epi, index_of, const_of)
    return why if why is not None else r.kernel()
