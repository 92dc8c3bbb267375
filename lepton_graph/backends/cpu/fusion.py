"""What the CPU backend can fuse: the fusion pass proposes a group, this says whether one native kernel runs it.

The answer comes from the same epilogue parsers the lowerings use (``gemm_epilogue``, ``conv_epilogue``), run on
the proposed nodes without packing anything, so a group the pass forms is one the lowering accepts: a GEMM is
never sent to torch because of its epilogue.
"""

from __future__ import annotations

from ...ir import Graph, Node, Op, OpGroup
from .. import LowerOptions
from .conv import _ConvSpec, conv_epilogue
from .gemm import _const, _Epi, gemm_epilogue

_GEMM_ROOTS = frozenset({Op.LINEAR, Op.QLINEAR, Op.WQLINEAR, Op.MATMUL, Op.ADDMM})


def can_fuse(kind: str, group: list[Node], graph: Graph) -> str | None:
    """None when one native kernel runs ``group`` (root first, then its chain), else the reason it cannot."""
    if kind != "gemm" or len(group) < 2:
        return None
    root, chain = group[0], group[1:]
    if root.op in OpGroup.CONV:
        produced = {v for n in chain for v in n.outputs}
        spec = _ConvSpec(root, graph, LowerOptions())  # acceptance does not depend on precision
        why, _, _ = conv_epilogue(chain, root.out, spec, int(root.inputs[1].shape[0]), lambda v: v, graph, produced)
        return why
    if root.op not in _GEMM_ROOTS or root.out.rank < 1 or not isinstance(root.out.shape[-1], int):
        return f"no native epilogue for a {root.op.value} root"
    epi = _Epi()
    if root.op is Op.LINEAR and len(root.inputs) == 3 and root.inputs[2].const is None:
        epi.bias_input = 2  # a runtime bias already takes the epilogue's bias slot
    return gemm_epilogue(chain, root.out, int(root.out.shape[-1]), epi, lambda v: 0, lambda v: _const(graph, v))
