"""IR data structures: construction, inference, printer, verifier."""

from __future__ import annotations

import pytest
import torch

from lepton_graph.ir import DType, Graph, Op, Ref, VerifyError, format_graph, interpret, verify


def test_add_node_infers_types_and_prints():
    g = Graph()
    x = g.add_input((2, "s0", 8), DType.f32, name="x")
    w = g.add_constant(torch.randn(4, 8), "w")
    y = g.add_node(Op.LINEAR, [x, w]).out
    assert y.shape == (2, "s0", 4) and y.dtype is DType.f32
    g.outputs = [y]
    verify(g)
    text = format_graph(g)
    assert "linear(%x, %w) : f32[2,s0,4]" in text and "%w = const : f32[4,8]" in text


def test_constants_are_held_by_reference():
    g = Graph()
    t = torch.randn(3)
    v = g.add_constant(t, "t")
    assert g.constants["t"] is t and g.add_constant(t, "t") is v


def test_unknown_attribute_is_rejected():
    g = Graph()
    x = g.add_input((2,), DType.f32)
    with pytest.raises(TypeError, match="no attribute"):
        g.add_node(Op.RELU, [x], {"alpha": 2})


def test_verifier_names_use_before_definition():
    g = Graph()
    x = g.add_input((2, 3), DType.f32)
    a = g.add_node(Op.RELU, [x])
    b = g.add_node(Op.NEG, [a.out])
    g.nodes = [b, a]
    g.outputs = [b.out]
    with pytest.raises(VerifyError, match=r"neg.*used before definition"):
        verify(g)


def test_verifier_catches_wrong_stored_type():
    g = Graph()
    x = g.add_input((2, 3), DType.f32)
    n = g.add_node(Op.RELU, [x])
    n.out.shape = (3, 2)
    g.outputs = [n.out]
    with pytest.raises(VerifyError, match="inferred shape"):
        verify(g)


def test_verifier_catches_dangling_output():
    g = Graph()
    x = g.add_input((2,), DType.f32)
    other = Graph().add_input((2,), DType.f32)
    g.add_node(Op.RELU, [x])
    g.outputs = [other]
    with pytest.raises(VerifyError, match="never defined"):
        verify(g)


def test_dead_code_removal_drops_unused_nodes_and_weights():
    g = Graph()
    x = g.add_input((2, 4), DType.f32)
    w = g.add_constant(torch.randn(4, 4), "unused_w")
    g.add_node(Op.LINEAR, [x, w])
    keep = g.add_node(Op.RELU, [x]).out
    g.outputs = [keep]
    assert g.remove_dead() == 1 and "unused_w" not in g.constants


def test_symbolic_reshape_through_ref():
    g = Graph()
    x = g.add_input(("s0", 6), DType.f32)
    n = g.add_node(Op.SYM_SIZE, [x], {"dim": 0}).out
    r = g.add_node(Op.RESHAPE, [x], {"shape": (Ref(0), 2, 3)}, syms=[n]).out
    g.outputs = [r]
    verify(g)
    assert r.shape[1:] == (2, 3)
    t = torch.randn(5, 6)
    assert torch.equal(interpret(g, [t])[0], t.reshape(5, 2, 3))
