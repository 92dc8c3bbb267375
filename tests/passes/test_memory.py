"""mark_lifetimes: where values die and the peak of live activation bytes."""

from __future__ import annotations

from lepton_graph.ir import DType, Graph, Op
from lepton_graph.passes import PassOptions
from lepton_graph.passes.memory import mark_lifetimes


def test_values_die_at_their_last_use_and_peak_counts_live_bytes():
    g = Graph()
    x = g.add_input((256,), DType.f32)  # 1 KiB each
    a = g.add_node(Op.EXP, [x])
    b = g.add_node(Op.NEG, [a.out])
    c = g.add_node(Op.ADD, [a.out, b.out])
    d = g.add_node(Op.RELU, [c.out])
    g.outputs = [d.out]
    res = mark_lifetimes(g, PassOptions())
    dies = g.meta["dies_after"]
    assert dies == {c.name: [a.out.name, b.out.name], d.name: [c.out.name]}
    # a and b live together, then c is made before they are freed: a + b + c = 3 KiB at the peak
    assert g.meta["peak_bytes"] == 3 * 1024 == res.stats["peak_activation_bytes"]
