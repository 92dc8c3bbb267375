"""The IR: values, nodes, graphs, the op registry and the tools around them."""

from . import defs  # noqa: F401  (fills OPS)
from .defs import fused as _fused  # noqa: F401  (FUSED needs the interpreter, so it registers last)
from .dtype import DType
from .graph import Arg, Derivation, Dim, Graph, Node, QParams, Ref, Shape, StructureChanged, TorchObj, Value, toposort
from .interpret import interpret
from .ops import Op, OpGroup
from .printer import format_graph, format_node
from .registry import OPS, OpDef, register_op, run_reference
from .verify import VerifyError, verify

__all__ = [
    "Arg",
    "DType",
    "Derivation",
    "Dim",
    "Graph",
    "Node",
    "OPS",
    "Op",
    "OpDef",
    "OpGroup",
    "QParams",
    "Ref",
    "Shape",
    "StructureChanged",
    "TorchObj",
    "Value",
    "VerifyError",
    "format_graph",
    "format_node",
    "interpret",
    "register_op",
    "run_reference",
    "toposort",
    "verify",
]
