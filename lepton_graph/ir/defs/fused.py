"""FUSED: a group of nodes a pass decided to run as one kernel. ``body`` is a sub-graph whose inputs and outputs
line up with the node's; ``kind`` tells backends which kernel family it belongs to ("gemm", "elementwise",
"norm", "softmax"). The reference runs the body op by op, so a fused node is always runnable by torch."""

from __future__ import annotations

from typing import Any

from ..graph import Node
from ..interpret import interpret
from ..ops import Op
from ..registry import REQUIRED, OutSpec, register_op


def _infer(node: Node) -> list[OutSpec]:
    body = node.attrs["body"]
    return [(v.shape, v.dtype, v.device, v.kind) for v in body.outputs]


@register_op(Op.FUSED, inputs=(0, 1 << 16), attrs={"kind": REQUIRED, "body": REQUIRED}, infer=_infer)
def fused(*inputs: Any, kind: str, body: Any) -> Any:
    """Run the body with the torch references; a single-output group returns a tensor, else a tuple."""
    outs = interpret(body, inputs)
    return outs[0] if len(outs) == 1 else tuple(outs)
