"""Fusion groups (GEMM epilogues, norms, elementwise) and attention recognition."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends import default_backends
from lepton_graph.compiler import CompiledGraph
from lepton_graph.ir import DType, Graph, Op, interpret, verify
from lepton_graph.passes import PassOptions, run_pipeline
from lepton_graph.passes.attention import recognize_attention
from lepton_graph.passes.fuse import fuse

from .helpers import check_pass, ops


def test_gemm_bias_gelu_residual_form_one_epilogue_group():
    g = Graph()
    x = g.add_input((4, 8), DType.f32)
    res = g.add_input((4, 16), DType.f32)
    y = g.add_node(Op.LINEAR, [x, g.add_constant(torch.randn(16, 8), "w"), g.add_constant(torch.randn(16), "b")]).out
    y = g.add_node(Op.GELU, [y]).out
    g.outputs = [g.add_node(Op.ADD, [y, res]).out]
    g = check_pass(fuse, g, [torch.randn(4, 8), torch.randn(4, 16)])
    assert ops(g) == ["fused[gemm:linear+gelu+add]"]


def test_epilogue_stops_at_a_value_with_two_users():
    g = Graph()
    x = g.add_input((4, 8), DType.f32)
    y = g.add_node(Op.LINEAR, [x, g.add_constant(torch.randn(8, 8), "w")]).out
    a = g.add_node(Op.RELU, [y]).out
    b = g.add_node(Op.TANH, [y]).out
    g.outputs = [a, b]
    g = check_pass(fuse, g, [torch.randn(4, 8)], fired=False)
    # relu and tanh both read y: the GEMM absorbs neither (that would compute y twice or need two outputs)
    assert ops(g) == ["linear", "relu", "tanh"]


def test_residual_add_fuses_into_layer_norm():
    g = Graph()
    x = g.add_input((3, 10), DType.f32)
    r = g.add_input((3, 10), DType.f32)
    s = g.add_node(Op.ADD, [x, r]).out
    w, b = g.add_constant(torch.randn(10), "w"), g.add_constant(torch.randn(10), "b")
    g.outputs = [g.add_node(Op.LAYER_NORM, [s, w, b], {"normalized_shape": (10,)}).out]
    g = check_pass(fuse, g, [torch.randn(3, 10), torch.randn(3, 10)])
    assert ops(g) == ["fused[norm:add+layer_norm]"]


def test_elementwise_tree_with_broadcast_is_one_group_with_shared_output():
    g = Graph()
    x = g.add_input((5, 7), DType.f32)
    b = g.add_input((7,), DType.f32)
    a = g.add_node(Op.ADD, [x, b]).out
    e = g.add_node(Op.EXP, [a]).out
    m = g.add_node(Op.MUL, [e, a]).out
    g.outputs = [m, e]  # e is also a graph output: the group exports it
    g = check_pass(fuse, g, [torch.randn(5, 7), torch.randn(7)])
    assert ops(g) == ["fused[elementwise:add+exp+mul]"] and len(g.nodes[0].outputs) == 2


def test_fusion_never_creates_a_cycle():
    # a -> (outside: softmax reduction) -> c, and a -> c directly: fusing a and c would need softmax inside
    g = Graph()
    x = g.add_input((4, 6), DType.f32)
    a = g.add_node(Op.EXP, [x]).out
    s = g.add_node(Op.SUM, [a], {"dims": (1,), "keepdim": True}).out
    g.outputs = [g.add_node(Op.DIV, [a, s]).out]
    g = check_pass(fuse, g, [torch.randn(4, 6)], fired=False)
    assert ops(g) == ["exp", "sum", "div"]


def _attention_graph(mask: bool, scale_op: Op) -> Graph:
    g = Graph()
    q = g.add_input((2, 3, 5, 8), DType.f32)
    k = g.add_input((2, 3, 5, 8), DType.f32)
    v = g.add_input((2, 3, 5, 8), DType.f32)
    kt = g.add_node(Op.TRANSPOSE, [k], {"dim0": -1, "dim1": -2}).out
    s = g.add_node(Op.MATMUL, [q, kt]).out
    s = g.add_node(scale_op, [s], {"scalar": 8**0.5 if scale_op is Op.DIV else 8**-0.5}).out
    if mask:
        m = g.add_input((2, 1, 1, 5), DType.f32)
        s = g.add_node(Op.ADD, [s, m]).out
    p = g.add_node(Op.SOFTMAX, [s], {"dim": -1}).out
    g.outputs = [g.add_node(Op.MATMUL, [p, v]).out]
    return g


def test_explicit_attention_becomes_sdpa():
    for mask in (False, True):
        for scale_op in (Op.DIV, Op.MUL):
            g = _attention_graph(mask, scale_op)
            inputs = [torch.randn(2, 3, 5, 8) for _ in range(3)]
            if mask:
                inputs.append(torch.where(torch.rand(2, 1, 1, 5) > 0.3, 0.0, -1e9))
            g = check_pass(recognize_attention, g, inputs)
            assert ops(g) == ["sdpa"]


_UNARY = [Op.RELU, Op.TANH, Op.EXP, Op.NEG, Op.SIGMOID, Op.GELU]
_BINARY = [Op.ADD, Op.MUL, Op.SUB, Op.MAXIMUM]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["u", "b", "lin", "norm", "sm"]), st.integers(0, 100), st.integers(0, 100)),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 5),
)
def test_random_graphs_through_the_whole_pipeline(program, rows):
    """Random graphs of registered ops: the pipeline (fusion included) keeps eager's numbers, in the reference
    interpreter and through the native kernels; no GEMM runs through torch."""
    torch.manual_seed(0)
    g = Graph()
    width = 6
    vals = [g.add_input((rows, width), DType.f32)]
    for kind, i, j in program:
        a, b = vals[i % len(vals)], vals[j % len(vals)]
        if kind == "u":
            v = g.add_node(_UNARY[j % len(_UNARY)], [a]).out
        elif kind == "b":
            v = g.add_node(_BINARY[j % len(_BINARY)], [a, b]).out
        elif kind == "lin":
            w = g.add_constant(torch.randn(width, width) / 3)
            v = g.add_node(Op.LINEAR, [a, w, g.add_constant(torch.randn(width))]).out
        elif kind == "norm":
            v = g.add_node(Op.LAYER_NORM, [a], {"normalized_shape": (width,)}).out
        else:
            v = g.add_node(Op.SOFTMAX, [a], {"dim": -1}).out
        vals.append(v)
    g.outputs = vals[-2:] if len(vals) > 2 else vals[-1:]
    x = torch.randn(rows, width)
    with torch.no_grad():
        want = [t.clone() for t in interpret(g, [x])]
        backends = default_backends("cpu", True)
        g2, _ = run_pipeline(g, PassOptions(can_fuse=getattr(backends[0], "can_fuse", None)))
        verify(g2)
        got = interpret(g2, [x])
        compiled = CompiledGraph(g2, backends)  # and through the native kernels, as compile() runs it
        native = compiled.run(x)
    for a, b, c in zip(want, got, native, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        assert torch.allclose(a, c, rtol=1e-4, atol=1e-5), (a, c)
    in_torch = [n.op for p in compiled.plan.partitions if p.target == "fallback-torch" for n in p.nodes]
    assert Op.LINEAR not in in_torch and not any(
        n.attrs.get("kind") == "gemm"
        for p in compiled.plan.partitions
        if p.target == "fallback-torch"
        for n in p.nodes
        if n.op is Op.FUSED
    ), in_torch


def _repeat_kv(g: Graph, x, rep: int):
    b, h, s, d = x.shape
    u = g.add_node(Op.UNSQUEEZE, [x], {"dim": 2}).out
    e = g.add_node(Op.EXPAND, [u], {"shape": (b, h, rep, s, d)}).out
    return g.add_node(Op.RESHAPE, [e], {"shape": (b, h * rep, s, d)}).out


def test_repeat_kv_before_attention_becomes_gqa_sdpa():
    for explicit in (False, True):
        g = Graph()
        q = g.add_input((1, 8, 5, 16), DType.f32)
        k = g.add_input((1, 2, 5, 16), DType.f32)
        v = g.add_input((1, 2, 5, 16), DType.f32)
        kr, vr = _repeat_kv(g, k, 4), _repeat_kv(g, v, 4)
        if explicit:  # eager attention written out, as HF's eager path does
            kt = g.add_node(Op.TRANSPOSE, [kr], {"dim0": 2, "dim1": 3}).out
            s = g.add_node(Op.MUL, [g.add_node(Op.MATMUL, [q, kt]).out], {"scalar": 0.25}).out
            p = g.add_node(Op.SOFTMAX, [s], {"dim": -1}).out
            g.outputs = [g.add_node(Op.MATMUL, [p, vr]).out]
        else:
            g.outputs = [g.add_node(Op.SDPA, [q, kr, vr], {"is_causal": True}).out]
        g = check_pass(
            recognize_attention, g, [torch.randn(1, 8, 5, 16), torch.randn(1, 2, 5, 16), torch.randn(1, 2, 5, 16)]
        )
        assert ops(g) == ["sdpa"] and g.nodes[0].attrs["enable_gqa"] is True
        assert g.nodes[0].inputs[1] is g.inputs[1]


@pytest.mark.parametrize(
    "mask,dropped",
    [
        (torch.ones(1, 1, 7, 1, dtype=torch.bool), True),
        (torch.zeros(1, 1, 1, 7), True),
        (torch.tensor([True] * 6 + [False]).reshape(1, 1, 1, 7), False),
        (torch.full((1, 1, 1, 7), -1.0), False),
    ],
)
def test_constant_keep_all_mask_is_dropped_from_sdpa(mask, dropped):
    g = Graph()
    q, k, v = (g.add_input((1, 2, 7, 4), DType.f32) for _ in range(3))
    mk = g.add_constant(mask, "mask")
    ex = g.add_node(Op.EXPAND, [mk], {"shape": (1, 1, 7, 7)}).out
    g.outputs = [g.add_node(Op.SDPA, [q, k, v, ex]).out]
    g = check_pass(recognize_attention, g, [torch.randn(1, 2, 7, 4) for _ in range(3)], fired=dropped)
    sdpa = next(n for n in g.nodes if n.op is Op.SDPA)
    assert len(sdpa.inputs) == (3 if dropped else 4)
