"""Reference interpreter: runs a Graph node by node with each op's torch reference."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .graph import Graph, Node, Value
from .registry import run_reference


def interpret(
    graph: Graph,
    inputs: Sequence[Any],
    observe: Callable[[Node, list[Any], Any], None] | None = None,
    substitute: Mapping[Node, Callable[[list[Any]], Any]] | None = None,
) -> list[Any]:
    """Run ``graph`` on ``inputs``; ``observe(node, args, out)`` sees every node's arguments and result;
    ``substitute[node](args)`` computes a node's result instead of its reference (what-if runs, such as a layer
    quantized or not)."""
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"graph takes {len(graph.inputs)} inputs, got {len(inputs)}")
    env: dict[Value, Any] = dict(zip(graph.inputs, inputs))
    for v in graph.const_values.values():
        env[v] = graph.constants[v.const]  # type: ignore[index]
    for node in graph.nodes:
        args = [env[v] for v in node.inputs]
        if substitute is not None and node in substitute:
            out = substitute[node](args)
        else:
            out = run_reference(node, args, [env[v] for v in node.syms])
        if observe is not None:
            observe(node, args, out)
        if len(node.outputs) == 1:
            env[node.outputs[0]] = out[0] if isinstance(out, (tuple, list)) else out
        else:
            env.update(zip(node.outputs, out))
    return [env[v] for v in graph.outputs]
