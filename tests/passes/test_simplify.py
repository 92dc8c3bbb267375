"""simplify (algebraic identities, view chains, canonical GEMMs, activation recognition) and CSE."""

from __future__ import annotations

import math

import torch

from lepton_graph.ir import DType, Graph, Op
from lepton_graph.passes.simplify import eliminate_common_subexpressions, simplify

from .helpers import check_pass, ops


def test_identities_are_removed():
    g = Graph()
    x = g.add_input((3, 4), DType.f32)
    a = g.add_node(Op.MUL, [x], {"scalar": 1}).out
    b = g.add_node(Op.ADD, [a], {"scalar": 0}).out
    c = g.add_node(Op.RESHAPE, [b], {"shape": (3, 4)}).out
    d = g.add_node(Op.TRANSPOSE, [c], {"dim0": 0, "dim1": 1}).out
    e = g.add_node(Op.TRANSPOSE, [d], {"dim0": 1, "dim1": 0}).out
    f = g.add_node(Op.CAST, [e], {"dtype": DType.f32}).out
    g.outputs = [g.add_node(Op.RELU, [f]).out]
    g = check_pass(simplify, g, [torch.randn(3, 4)])
    assert ops(g) == ["relu"]


def test_int_times_float_one_is_not_an_identity():
    g = Graph()
    x = g.add_input((5,), DType.i64)
    g.outputs = [g.add_node(Op.MUL, [x], {"scalar": 1.0}).out]  # promotes to float: must stay
    g = check_pass(simplify, g, [torch.arange(5)], fired=False)
    assert ops(g) == ["mul"] and g.outputs[0].dtype is DType.f32


def test_reshape_chain_and_permute_composition():
    g = Graph()
    x = g.add_input((2, 3, 4), DType.f32)
    r = g.add_node(Op.RESHAPE, [x], {"shape": (6, 4)}).out
    r = g.add_node(Op.RESHAPE, [r], {"shape": (24,)}).out
    p = g.add_node(Op.PERMUTE, [x], {"dims": (2, 0, 1)}).out
    p = g.add_node(Op.PERMUTE, [p], {"dims": (1, 2, 0)}).out  # composes to the identity
    g.outputs = [r, g.add_node(Op.NEG, [p]).out]
    g = check_pass(simplify, g, [torch.randn(2, 3, 4)])
    assert ops(g) == ["reshape", "neg"]


def test_addmm_with_transposed_weight_becomes_linear():
    g = Graph()
    x = g.add_input((5, 8), DType.f32)
    w = g.add_constant(torch.randn(6, 8), "w")
    b = g.add_constant(torch.randn(6), "b")
    t = g.add_node(Op.TRANSPOSE, [w], {"dim0": 0, "dim1": 1}).out
    g.outputs = [g.add_node(Op.ADDMM, [b, x, t]).out]
    g = check_pass(simplify, g, [torch.randn(5, 8)])
    assert ops(g) == ["linear"] and g.nodes[0].inputs[1].const == "w"


def test_flattened_conv1d_style_addmm_becomes_one_linear_on_3d_input():
    g = Graph()
    x = g.add_input((2, 7, 8), DType.f32)
    w = g.add_constant(torch.randn(8, 12), "w")  # (in, out) as GPT-2's Conv1D stores it
    b = g.add_constant(torch.randn(12), "b")
    flat = g.add_node(Op.RESHAPE, [x], {"shape": (-1, 8)}).out
    mm = g.add_node(Op.ADDMM, [b, flat, w]).out
    g.outputs = [g.add_node(Op.RESHAPE, [mm], {"shape": (2, 7, 12)}).out]
    g = check_pass(simplify, g, [torch.randn(2, 7, 8)])
    assert ops(g) == ["linear"] and g.nodes[0].inputs[0] is g.inputs[0]


def test_written_out_gelu_tanh_is_recognised():
    g = Graph()
    x = g.add_input((4, 9), DType.f32)
    half = g.add_node(Op.MUL, [x], {"scalar": 0.5}).out
    cube = g.add_node(Op.POW, [x], {"scalar": 3.0}).out
    inner = g.add_node(Op.ADD, [x, g.add_node(Op.MUL, [cube], {"scalar": 0.044715}).out]).out
    th = g.add_node(Op.TANH, [g.add_node(Op.MUL, [inner], {"scalar": math.sqrt(2 / math.pi)}).out]).out
    g.outputs = [g.add_node(Op.MUL, [half, g.add_node(Op.ADD, [th], {"scalar": 1.0}).out]).out]
    g = check_pass(simplify, g, [torch.randn(4, 9)])
    assert ops(g) == ["gelu"] and g.nodes[0].attrs["approximate"] == "tanh"


def test_cat_with_empty_past_is_dropped():
    g = Graph()
    past = g.add_input((0,), DType.f32)
    k = g.add_input((1, 2, 5, 4), DType.f32)
    g.outputs = [g.add_node(Op.CAT, [past, k], {"dim": -2}).out]
    g = check_pass(simplify, g, [torch.empty(0), torch.randn(1, 2, 5, 4)])
    assert g.outputs[0] is g.inputs[1]


def test_cse_merges_identical_nodes_only():
    g = Graph()
    x = g.add_input((3,), DType.f32)
    a = g.add_node(Op.EXP, [x]).out
    b = g.add_node(Op.EXP, [x]).out
    c = g.add_node(Op.ADD, [x], {"scalar": 2.0}).out
    d = g.add_node(Op.ADD, [x], {"scalar": 3.0}).out
    g.outputs = [g.add_node(Op.ADD, [a, b]).out, c, d]
    g = check_pass(eliminate_common_subexpressions, g, [torch.randn(3)])
    assert ops(g) == ["exp", "add", "add", "add"]
