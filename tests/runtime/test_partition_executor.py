"""Partitioner and executor with a second backend in the chain: partitions, dependencies and results."""

from __future__ import annotations

import torch

from lepton_graph.backends.fallback import TorchFallback
from lepton_graph.ir import DType, Graph, Op, interpret
from lepton_graph.passes.partition import partition_graph
from lepton_graph.runtime import Executor, Step
from lepton_graph.runtime.codegen import generate_function


class ReluOnly:
    """A stand-in native backend that claims RELU nodes (runs them with torch, counting calls)."""

    name = "test-native"

    def __init__(self) -> None:
        self.calls = 0

    def supports(self, node, graph):
        return None if node.op is Op.RELU else "only relu"

    def lower(self, partition, graph):
        inner = generate_function(partition.nodes, partition.inputs, partition.outputs, graph, "native")

        def run(*xs):
            self.calls += 1
            return inner(*xs)

        return run

    def kernels(self, partition):
        return len(partition.nodes)


def build() -> tuple[Graph, torch.Tensor]:
    g = Graph()
    x = g.add_input((4, 6), DType.f32)
    w = g.add_constant(torch.randn(6, 6), "w")
    a = g.add_node(Op.LINEAR, [x, w]).out
    r = g.add_node(Op.RELU, [a]).out
    b = g.add_node(Op.ADD, [r, x]).out
    r2 = g.add_node(Op.RELU, [b]).out
    g.outputs = [r2, a]
    return g, torch.randn(4, 6)


def test_partitions_alternate_and_record_dependencies_and_reasons():
    g, _ = build()
    plan = partition_graph(g, [ReluOnly(), TorchFallback()])
    assert [p.target for p in plan.partitions] == ["fallback-torch", "test-native", "fallback-torch", "test-native"]
    assert [sorted(p.deps) for p in plan.partitions] == [[], [0], [1], [2]]
    assert plan.reasons["linear"] == {"test-native: only relu": 1}
    first = plan.partitions[0]
    assert first.inputs == [g.inputs[0]] and first.outputs == [g.nodes[0].out]


def test_executor_runs_partitions_in_order_and_matches_interpreter():
    g, x = build()
    native = ReluOnly()
    backends = {"test-native": native, "fallback-torch": TorchFallback()}
    plan = partition_graph(g, list(backends.values()))
    steps = [Step(p, backends[p.target].lower(p, g), backends[p.target].kernels(p)) for p in plan.partitions]
    ex = Executor(g, steps)
    got = ex(x)
    want = interpret(g, [x])
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert native.calls == 2 and ex.kernels_per_call == 4


def test_single_fallback_partition_is_called_directly():
    g, x = build()
    plan = partition_graph(g, [TorchFallback()])
    p = plan.partitions[0]
    fn = TorchFallback().lower(p, g)
    ex = Executor(g, [Step(p, fn, 4)])
    assert ex.run is fn  # no dispatch wrapper around a single partition with the graph's signature
    src = fn.__lepton_source__
    assert "del " in src  # intermediates are released after their last use
