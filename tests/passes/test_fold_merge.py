"""Constant folding, BatchNorm folding, linear-chain and sibling merging."""

from __future__ import annotations

import pytest
import torch

from lepton_graph.ir import DType, Graph, Op
from lepton_graph.passes.fold import fold_batchnorm, fold_constants
from lepton_graph.passes.merge import merge_linear_chains, merge_sibling_linears

from .helpers import check_pass, ops


def test_constant_subgraph_is_folded_once():
    g = Graph()
    x = g.add_input((4,), DType.f32)
    c = g.add_constant(torch.arange(4.0), "c")
    e = g.add_node(Op.EXP, [g.add_node(Op.MUL, [c], {"scalar": 2.0}).out]).out
    g.outputs = [g.add_node(Op.ADD, [x, e]).out]
    g = check_pass(fold_constants, g, [torch.randn(4)])
    assert ops(g) == ["add"] and g.nodes[0].inputs[1].const is not None


def test_expand_of_constant_is_not_materialised():
    g = Graph()
    x = g.add_input((512, 512), DType.f32)
    c = g.add_constant(torch.randn(512), "c")
    e = g.add_node(Op.EXPAND, [c], {"shape": (512, 512)}).out
    g.outputs = [g.add_node(Op.ADD, [x, e]).out]
    check_pass(fold_constants, g, [torch.randn(512, 512)], fired=False)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("conv_bias", [True, False])
def test_batchnorm_folds_into_conv(affine, conv_bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=conv_bias)
    bn = torch.nn.BatchNorm2d(8, affine=affine).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    if affine:
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-1, 1)
    g = Graph()
    x = g.add_input((2, 3, 9, 9), DType.f32)
    inputs = [x, g.add_constant(conv.weight.detach(), "w")] + (
        [g.add_constant(conv.bias.detach(), "b")] if conv_bias else []
    )
    y = g.add_node(Op.CONV2D, inputs, {"padding": (1, 1)}).out
    bn_in = [y, g.add_constant(bn.running_mean, "mean"), g.add_constant(bn.running_var, "var")]
    if affine:
        bn_in += [g.add_constant(bn.weight.detach(), "gamma"), g.add_constant(bn.bias.detach(), "beta")]
    g.outputs = [g.add_node(Op.BATCH_NORM, bn_in, {"eps": bn.eps, "has_weight": affine, "has_bias": affine}).out]
    g = check_pass(fold_batchnorm, g, [torch.randn(2, 3, 9, 9)], rtol=1e-5)
    assert ops(g) == ["conv2d"] and len(g.nodes[0].inputs) == 3


def test_batchnorm_after_linear_folds():
    g = Graph()
    x = g.add_input((6, 5), DType.f32)
    y = g.add_node(Op.LINEAR, [x, g.add_constant(torch.randn(4, 5), "w"), g.add_constant(torch.randn(4), "b")]).out
    bn = [
        y,
        g.add_constant(torch.rand(4), "m"),
        g.add_constant(torch.rand(4) + 0.5, "v"),
        g.add_constant(torch.rand(4), "g"),
        g.add_constant(torch.rand(4), "be"),
    ]
    g.outputs = [g.add_node(Op.BATCH_NORM, bn, {"eps": 1e-5}).out]
    g = check_pass(fold_batchnorm, g, [torch.randn(6, 5)])
    assert ops(g) == ["linear"]


def test_batchnorm_with_non_constant_stats_is_left_alone():
    g = Graph()
    x = g.add_input((2, 3, 4, 4), DType.f32)
    mean = g.add_input((3,), DType.f32)
    y = g.add_node(Op.CONV2D, [x, g.add_constant(torch.randn(3, 3, 1, 1), "w")]).out
    g.outputs = [
        g.add_node(
            Op.BATCH_NORM, [y, mean, g.add_constant(torch.ones(3), "v")], {"has_weight": False, "has_bias": False}
        ).out
    ]
    check_pass(fold_batchnorm, g, [torch.randn(2, 3, 4, 4), torch.randn(3)], fired=False)


def test_linear_chain_merges_when_it_saves_flops():
    g = Graph()
    x = g.add_input((3, 16), DType.f32)
    a = g.add_node(Op.LINEAR, [x, g.add_constant(torch.randn(16, 16), "w1"), g.add_constant(torch.randn(16), "b1")])
    b = g.add_node(Op.LINEAR, [a.out, g.add_constant(torch.randn(8, 16), "w2"), g.add_constant(torch.randn(8), "b2")])
    g.outputs = [b.out]
    g = check_pass(merge_linear_chains, g, [torch.randn(3, 16)], rtol=1e-5)
    assert ops(g) == ["linear"]


def test_low_rank_bottleneck_is_not_merged():
    g = Graph()
    x = g.add_input((3, 64), DType.f32)
    a = g.add_node(Op.LINEAR, [x, g.add_constant(torch.randn(4, 64), "down")]).out
    g.outputs = [g.add_node(Op.LINEAR, [a, g.add_constant(torch.randn(64, 4), "up")]).out]
    check_pass(merge_linear_chains, g, [torch.randn(3, 64)], fired=False)


def test_linear_with_activation_between_is_not_merged():
    g = Graph()
    x = g.add_input((3, 8), DType.f32)
    a = g.add_node(Op.LINEAR, [x, g.add_constant(torch.randn(8, 8), "w1")]).out
    r = g.add_node(Op.RELU, [a]).out
    g.outputs = [g.add_node(Op.LINEAR, [r, g.add_constant(torch.randn(8, 8), "w2")]).out]
    check_pass(merge_linear_chains, g, [torch.randn(3, 8)], fired=False)


def test_qkv_siblings_become_one_gemm_and_split():
    g = Graph()
    x = g.add_input((2, 5, 12), DType.f32)
    outs = []
    for name, n in (("q", 12), ("k", 12), ("v", 6)):
        w, b = g.add_constant(torch.randn(n, 12), name), g.add_constant(torch.randn(n), name + "_b")
        outs.append(g.add_node(Op.TANH, [g.add_node(Op.LINEAR, [x, w, b]).out]).out)
    g.outputs = outs
    g = check_pass(merge_sibling_linears, g, [torch.randn(2, 5, 12)])
    assert ops(g) == ["linear", "split", "tanh", "tanh", "tanh"]
    assert g.nodes[0].inputs[1].shape == (30, 12) and g.nodes[1].attrs["sizes"] == (12, 12, 6)


class _ConstIndex(torch.nn.Module):
    def __init__(self, *index: torch.Tensor):
        super().__init__()
        for i, t in enumerate(index):
            self.register_buffer(f"i{i}", t)
        self.n = len(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[tuple(getattr(self, f"i{i}") for i in range(self.n))] * 2


@pytest.mark.parametrize(
    "index",
    [
        (torch.tensor([[0], [2]]), torch.tensor([1, -1, 3])),  # broadcast (2,1) x (3,), a negative index
        (torch.arange(1)[:, None, None], torch.arange(5)[None, None, :]),  # BERT's mask-preparation pattern
        (torch.tensor([3, 0, 0], dtype=torch.int32),),  # one int32 index on dim 0, trailing dims kept
    ],
)
def test_constant_advanced_index_becomes_index_select(index):
    import lepton_graph as lg

    m = _ConstIndex(*index).eval()
    x = torch.randn(4, 5, 3)
    c = lg.compile(m, native=False)
    assert torch.equal(c(x), m(x))
    rep = c.report().as_dict()
    ops_run = rep["fallback_ops"]
    assert "index_select" in ops_run and "aten::index.Tensor" not in ops_run, ops_run


def test_out_of_range_constant_index_still_raises_like_eager():
    import lepton_graph as lg

    m = _ConstIndex(torch.tensor([0, 7])).eval()
    with pytest.raises(IndexError):
        m(torch.randn(4, 3))
    c = lg.compile(m, native=False)
    with pytest.raises((IndexError, RuntimeError)):
        c(torch.randn(4, 3))


def test_lepton_verify_names_the_pass_that_moved_the_outputs(monkeypatch) -> None:
    """LEPTON_VERIFY: every pass's drift is measured and the first one beyond 1e-4 is named in the report."""
    import lepton_graph
    import lepton_graph.passes as passes
    from lepton_graph.config import config
    from lepton_graph.ir import Op
    from lepton_graph.passes import PassResult

    def perturb_outputs(graph, opts):  # a broken pass: scales the output by 1.01
        graph.outputs[0] = graph.add_node(Op.MUL, [graph.outputs[0]], {"scalar": 1.01}).out
        return PassResult(graph, True)

    pipeline = list(passes.PIPELINE)
    pipeline.insert(pipeline.index(passes.fold_constants) + 1, perturb_outputs)
    monkeypatch.setattr(passes, "PIPELINE", pipeline)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval()
    with config.patch(verify=True):
        c = lepton_graph.compile(model)
        c(torch.randn(3, 8))
    region = c.report().latest.regions[0]
    assert region.first_drifting_pass == "perturb_outputs"
    drift = {p["name"]: p["drift"] for p in region.passes}
    assert drift["fold_constants"] <= 1e-6 and drift["perturb_outputs"] > 5e-3
    assert "numeric drift beyond tolerance first introduced by: perturb_outputs" in str(c.report())
