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


def test_symbolic_sizes_derived_by_an_op_stay_symbolic():
    """A node a pass creates on symbolic inputs (a conv after BatchNorm folding) gets its output sizes as
    expressions of the input's symbols, never the number one sample of them gave."""
    import torch

    g = Graph()
    x = g.add_input(("s0", 3, "s1", "s2"), DType.f32)
    w = g.add_constant(torch.randn(8, 3, 7, 7), "w")
    conv = g.add_node(Op.CONV2D, [x, w], {"stride": (2, 2), "padding": (3, 3)})
    assert conv.out.shape == ("s0", 8, "(((s1 - 1)//2)) + 1", "(((s2 - 1)//2)) + 1")
    pool = g.add_node(Op.MAX_POOL2D, [conv.out], {"kernel_size": (3, 3), "stride": (2, 2), "padding": (1, 1)})
    assert pool.out.shape == ("s0", 8, "(((s1 - 1)//4)) + 1", "(((s2 - 1)//4)) + 1")
    y = g.add_node(Op.ADD, [pool.out, pool.out], {})
    assert y.out.shape == pool.out.shape


def test_symbolic_size_expressions_are_arithmetic_only():
    import pytest

    from lepton_graph.ir.registry import eval_dim

    assert eval_dim("(((s1 - 1)//4)) + 1", {"s1": 33}.__getitem__) == 9
    for bad in ("__import__('os')", "s0.real", "s0 ** 2", "[s0]"):
        with pytest.raises(ValueError, match="unsupported expression"):
            eval_dim(bad, {"s0": 2}.__getitem__)
