"""One parser for the elementwise chain a GEMM or conv runs as its epilogue (bias adds, one residual add, one
activation), shared by the GEMM and conv lowerings and by the fusion pass's question (``fusion.can_fuse``).

What differs between the kernels is a capability, not a second parser: the GEMM's epilogue also takes a scalar add,
a runtime per-column bias and a bias after the residual; the conv's takes neither, and its residual must come from
outside the group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...ir import DType, Node, Op, Value
from .native import act_enum

# The codes the GEMM and conv kernels take (_C.Act, from csrc/kernels/activation.h).
Act = act_enum()
ACT_OF_OP = {Op.RELU: "relu", Op.SILU: "silu", Op.TANH: "tanh", Op.SIGMOID: "sigmoid"}
GELU_OF_APPROXIMATE = {"none": "gelu", "tanh": "gelu_tanh"}


@dataclass(frozen=True)
class Caps:
    """What one kernel's epilogue can take."""

    kernel: str  # "gemm" | "conv", for the reasons
    # a constant operand of an ADD as a per-output-channel bias (N,), or None when it is not one
    channel_bias: Callable[[Value], torch.Tensor | None]
    # a runtime operand of an ADD that the kernel takes as a per-column bias (None: no runtime bias)
    runtime_bias: Callable[[Value], bool] | None = None
    scalar_add: bool = False  # x + 2.0 before the activation
    bias_after_residual: bool = False
    # the residual operand must come from outside the group (it is read while the group's outputs are written)
    residual_from_outside: bool = False
    check_operand: Callable[[Value, str], str | None] | None = None  # dtype/device of an addend or residual


@dataclass
class Epilogue:
    bias: torch.Tensor | None = None  # constant, (N,), fp32
    bias_input: Value | None = None  # runtime per-column bias
    residual: Value | None = None
    residual_before_act: bool = True
    act: int = 0  # Act.none
    last: Value | None = None  # the chain's last value


def parse_epilogue(
    chain: list[Node], root_out: Value, caps: Caps, group_outputs: set[Value] | frozenset[Value] = frozenset()
) -> Epilogue | str:
    """The epilogue the chain after a GEMM/conv computes, or why the kernel cannot run it."""
    epi = Epilogue(last=root_out)
    out_shape = tuple(root_out.shape)
    cur = root_out
    act_seen = False
    for n in chain:
        if cur not in n.inputs or len(n.outputs) != 1:
            return f"{n.op.value} does not continue the {caps.kernel}'s chain"
        if n.out.dtype is not DType.f32:
            return f"{n.op.value} output is {n.out.dtype.value}"
        if n.op is Op.ADD:
            why = _add(n, cur, epi, caps, act_seen, out_shape, group_outputs)
            if why is not None:
                return why
        elif n.op in ACT_OF_OP or n.op is Op.GELU:
            if act_seen:
                return "two activations"
            if n.op is Op.GELU:
                approx = n.attrs.get("approximate", "none")
                if approx not in GELU_OF_APPROXIMATE:
                    return f"gelu approximate={approx!r}"
                epi.act = Act[GELU_OF_APPROXIMATE[approx]]
            else:
                epi.act = Act[ACT_OF_OP[n.op]]
            act_seen = True
        else:
            return f"{n.op.value} in a {caps.kernel} epilogue"
        if tuple(n.out.shape) != out_shape:
            return "epilogue changes the shape"
        cur = n.out
    epi.last = cur
    return epi


def _add(
    n: Node,
    cur: Value,
    epi: Epilogue,
    caps: Caps,
    act_seen: bool,
    out_shape: tuple,
    group_outputs: set[Value] | frozenset[Value],
) -> str | None:
    if n.attrs.get("alpha", 1) != 1:
        return "add with alpha != 1"
    if len(n.inputs) == 1:  # x + scalar
        s = n.attrs.get("scalar")
        if not caps.scalar_add:
            return f"add of a scalar in a {caps.kernel} epilogue"
        if not isinstance(s, (int, float)) or isinstance(s, bool) or act_seen:
            return "scalar add after the activation" if act_seen else f"add of {s!r}"
        _add_bias(epi, torch.full((int(out_shape[-1]),), float(s)))
        return None
    others = [v for v in n.inputs if v is not cur]
    if len(others) != 1:
        return "x + x in the epilogue"
    o = others[0]
    if caps.check_operand is not None and (why := caps.check_operand(o, "addend")):
        return why
    bias = caps.channel_bias(o)
    same_shape = tuple(o.shape) == out_shape
    if bias is not None and not act_seen and (epi.residual is None or caps.bias_after_residual):
        _add_bias(epi, bias)
    elif same_shape and epi.residual is None and not (caps.residual_from_outside and o in group_outputs):
        epi.residual, epi.residual_before_act = o, not act_seen
    elif same_shape and epi.residual is not None:
        return "two residual adds"
    elif caps.runtime_bias is not None and caps.runtime_bias(o) and not act_seen and epi.bias_input is None:
        epi.bias_input = o
    else:
        return f"add of a {tuple(o.shape)} tensor to the {out_shape} {caps.kernel} output"
    return None


def _add_bias(epi: Epilogue, t: torch.Tensor) -> None:
    t = t.to(torch.float32).reshape(-1)
    epi.bias = t.clone() if epi.bias is None else epi.bias + t
