"""Reference interpreter: runs a Graph node by node with each op's torch reference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .graph import Graph, Value
from .registry import run_reference


def interpret(graph: Graph, inputs: Sequence[Any]) -> list[Any]:
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"graph takes {len(graph.inputs)} inputs, got {len(inputs)}")
    env: dict[Value, Any] = dict(zip(graph.inputs, inputs))
    for v in graph.const_values.values():
        env[v] = graph.constants[v.const]  # type: ignore[index]
    for node in graph.nodes:
        out = run_reference(node, [env[v] for v in node.inputs], [env[v] for v in node.syms])
        if len(node.outputs) == 1:
            env[node.outputs[0]] = out[0] if isinstance(out, (tuple, list)) else out
        else:
            env.update(zip(node.outputs, out))
    return [env[v] for v in graph.outputs]
