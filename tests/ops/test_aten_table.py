"""The ATen -> IR converter table: small modules captured by torch.export (training IR and, decomposed, core
ATen) and by AOTAutograd are imported, verified and interpreted against eager; converted ops must not fall back,
and an operator without a converter must fall back and still give the right answer."""

from __future__ import annotations

import collections
import operator
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
import torch.fx as fx
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import nn
from torch.export import Dim
from torch.export.graph_signature import InputKind

from lepton_graph.frontend.dynamo import import_aot_graph
from lepton_graph.frontend.fx_import import dim_of, import_fx
from lepton_graph.ir import DType, Graph, Op, interpret, verify

# torch-internal deprecation noise from ExportedProgram.run_decompositions
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning")

# -- capture helpers ----------------------------------------------------------------------------------------------


class Fn(nn.Module):
    """Wrap a plain function so torch.export can take it."""

    def __init__(self, fn: Callable) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def export_graph(
    module: nn.Module, args: Sequence[torch.Tensor], *, decompose: bool = False, dynamic: Any = None
) -> Graph:
    """torch.export (non-strict) -> our IR; user inputs become graph inputs, weights constants."""
    module.eval()
    with torch.no_grad():
        ep = torch.export.export(module, tuple(args), strict=False, dynamic_shapes=dynamic)
    if decompose:
        ep = ep.run_decompositions()
    graph, placeholders = Graph(), {}
    nodes = [n for n in ep.graph.nodes if n.op == "placeholder"]
    for spec, node in zip(ep.graph_signature.input_specs, nodes):
        if spec.kind == InputKind.USER_INPUT:
            val = node.meta["val"]
            placeholders[node.name] = graph.add_input(
                [dim_of(d) for d in val.shape], DType.from_torch(val.dtype), name=node.name
            )
        else:
            assert spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)
            placeholders[node.name] = (
                ep.state_dict[spec.target] if spec.target in ep.state_dict else ep.constants[spec.target]
            )
    outs, _ = import_fx(ep.graph_module, placeholders, graph)
    graph.outputs = list(outs)
    verify(graph)
    return graph


def aot_graphs(module: nn.Module, args: Sequence[torch.Tensor]) -> tuple[list[Graph], Any]:
    """Run ``module`` under torch.compile with AOTAutograd; every forward graph is imported, verified and then
    executed by the reference interpreter. Returns the graphs and the compiled call's output."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    graphs: list[Graph] = []

    def fw(gm: torch.fx.GraphModule, example: list) -> Callable:
        g = import_aot_graph(gm, example).graph
        verify(g)
        graphs.append(g)
        return make_boxed_func(lambda *a: interpret(g, list(a)))

    module.eval()
    torch._dynamo.reset()
    with torch.no_grad():
        out = torch.compile(module, backend=aot_autograd(fw_compiler=fw), dynamic=False)(*args)
    return graphs, out


def fallbacks(*graphs: Graph) -> collections.Counter:
    return collections.Counter(n.attrs["target"] for g in graphs for n in g.nodes if n.op is Op.FALLBACK)


def run(graph: Graph, args: Sequence[torch.Tensor]) -> list[Any]:
    with torch.no_grad():
        return interpret(graph, list(args))


def assert_matches(got: Sequence[Any], want: Any, tol: float = 1e-5) -> None:
    """``got``: the flat graph outputs; ``want``: eager's (possibly nested) result."""
    want = pytree.tree_leaves(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=tol, rtol=tol)


def check_export(
    module: nn.Module, args: Sequence[torch.Tensor], *, decompose: bool = False, tol: float = 1e-5
) -> Graph:
    graph = export_graph(module, args, decompose=decompose)
    assert fallbacks(graph) == {}, f"unexpected fallbacks:\n{graph}"
    with torch.no_grad():
        assert_matches(run(graph, args), module(*args), tol)
    return graph


def single_op(
    target: Any,
    args: Sequence[Any],
    kwargs: dict | None = None,
    outputs: Sequence[int] | None = None,
    on_meta: bool = False,
) -> tuple[Graph, list[torch.Tensor], list[Any]]:
    """Import an FX graph that calls ``target`` once, its tensor arguments being placeholders (with meta["val"]
    set as export sets it); ``outputs`` picks the results of a tuple-returning op. Returns the IR graph, the input
    tensors and the op's results. With ``on_meta`` the op runs on meta copies only (CUDA-only kernels)."""
    g, tensors = fx.Graph(), []

    def placeholder(a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            n = g.placeholder(f"x{len(tensors)}")
            n.meta["val"] = a
            tensors.append(a)
            return n
        return type(a)(placeholder(x) for x in a) if isinstance(a, (list, tuple)) else a

    kwargs = kwargs or {}
    node = g.call_function(target, placeholder(tuple(args)), {k: placeholder(v) for k, v in kwargs.items()})
    meta = (lambda a: a.to("meta") if isinstance(a, torch.Tensor) else a) if on_meta else (lambda a: a)
    val = node.meta["val"] = target(*pytree.tree_map(meta, tuple(args)), **pytree.tree_map(meta, kwargs))
    if isinstance(val, (tuple, list)):
        picks = []
        for i in range(len(val)) if outputs is None else outputs:
            picks.append(g.call_function(operator.getitem, (node, i)))
            picks[-1].meta["val"] = val[i]
        g.output(tuple(picks))
        want = [val[i] for i in (range(len(val)) if outputs is None else outputs)]
    else:
        g.output((node,))
        want = [val]
    graph = Graph()
    ins = {f"x{i}": graph.add_input(t.shape, DType.from_torch(t.dtype), name=f"x{i}") for i, t in enumerate(tensors)}
    outs, _ = import_fx(fx.GraphModule(nn.Module(), g), ins, graph)
    graph.outputs = list(outs)
    verify(graph)
    return graph, tensors, want


# -- test modules -------------------------------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(12, 16), nn.Linear(16, 16, bias=False), nn.Linear(16, 5)
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.l1(x)))
        x = F.gelu(self.l2(x), approximate="tanh") + F.silu(x) * torch.sigmoid(x)
        return torch.log_softmax(self.l3(x), -1), torch.softmax(x, dim=1), torch.tanh(x).clamp(-0.5, 0.5)


class Block(nn.Module):
    """A ResNet basic block."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    """ResNet-18's shape (stem, 4 stages of 2 basic blocks, pool, fc) at a configurable width, no torchvision."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        )
        layers, c = [], width
        for mult, stride in [(1, 1), (2, 2), (4, 2), (8, 2)]:
            layers += [Block(c, width * mult, stride), Block(width * mult, width * mult, 1)]
            c = width * mult
        self.layers = nn.Sequential(*layers)
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _randomize_bn(m: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so batch norm is not the identity."""
    g = torch.Generator().manual_seed(0)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            if bn.weight is not None:
                bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
    return m


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding="same")
        self.c2 = nn.Conv2d(3, 6, 3, stride=2, groups=3, dilation=2, padding=2)
        self.bn = nn.BatchNorm2d(6, affine=False)

    def forward(self, x: torch.Tensor) -> Any:
        y = F.avg_pool2d(self.bn(F.relu6(self.c1(x))), 2, ceil_mode=True, count_include_pad=False)
        z = F.adaptive_avg_pool2d(self.c2(x), (2, 3))
        return y, z.contiguous(memory_format=torch.channels_last), F.max_pool2d(x, 3, 2, 1)


class Attention(nn.Module):
    """A GPT-style block: embeddings + positions, pre-norm causal attention with a padding mask, MLP."""

    def __init__(self, vocab: int = 50, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.tok, self.pos = nn.Embedding(vocab, d, padding_idx=0), nn.Embedding(32, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d, elementwise_affine=False)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.norm = nn.RMSNorm(d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, t = ids.shape
        pos = torch.arange(t, device=ids.device).unsqueeze(0).expand(b, t)
        x = self.tok(ids) + self.pos(pos)
        q, k, v = self.qkv(self.ln1(x)).split(x.shape[-1], dim=-1)
        q, k, v = (y.view(b, t, self.heads, -1).transpose(1, 2) for y in (q, k, v))
        keep = (ids != 0)[:, None, None, :]
        causal = torch.arange(t)[:, None] >= torch.arange(t)[None, :]
        mask = torch.where(keep & causal, 0.0, float("-inf"))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        a = F.scaled_dot_product_attention(q, k, a, is_causal=True) + a
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, -1))
        x = x + self.down(F.gelu(self.up(self.ln2(x))))
        return self.norm(x)


def _elementwise(x: torch.Tensor, i: torch.Tensor) -> tuple:
    f = i.float()
    y = (2 - x) * 3 + x / 4 - 1.5 / (x.abs() + 1) + x**2 + 2**x + torch.maximum(x, f) + torch.minimum(x, -f)
    y = y + torch.where(x > 0, x, 0.5) + torch.where(i >= 2, 1, -1) + torch.where(x < f, f, x)
    y = y + (x.exp() + 1).log() + x.abs().sqrt() + (x.abs() + 1).rsqrt() + x.sin() * x.cos() + torch.erf(x) + (-x)
    y = y + x.reciprocal().clamp(min=-3) + x.clamp(max=2) + x.masked_fill(x > 1, 0.25)
    ints = (i + 2, i * 2, i // 2, torch.div(i, 2, rounding_mode="trunc"), i.to(torch.int32) + 2.5, i + 2.0)
    bools = ((x > 0) & (f <= 1), (x != 0) | (f == 2), ~(x >= 0), torch.logical_not(i > 1))
    return y, ints, bools, x.type_as(i), x.double().float(), i.to(torch.bool)


def _reductions(x: torch.Tensor) -> tuple:
    return (
        x.sum(),
        x.sum((0, 2), keepdim=True),
        x.mean(-1),
        x.mean(dim=(1,), dtype=torch.float64),
        x.amax(1),
        x.amin((0, 1)),
        x.argmax(-1),
        x.argmax(),
        x.max(dim=1).values,
        x.softmax(0),
    )


def _shapes(x: torch.Tensor, idx: torch.Tensor) -> tuple:
    y = x.permute(2, 0, 1).unsqueeze(0).squeeze(0)[1:, :, ::2].contiguous().view(-1)
    z = x[:, 1] + x.select(1, -1) + x.gather(1, idx).sum(1) + x.index_select(0, idx[:, 0, 0]).mean(1)
    a, b, c = torch.chunk(x, 3, dim=2)
    w = torch.cat([a, b * 2, c], dim=1).flatten(1).t().reshape(6, -1)
    full = torch.full((2, 3), 1.5) + torch.zeros(2, 3) - torch.ones(3) + torch.full_like(x[:, :, 0], 2)[:2, :3]
    made = torch.zeros_like(x) + x.new_ones(6) + torch.arange(2, 8) + torch.ones_like(x, dtype=torch.int32)
    pieces = x.unbind(2)[1] + x.split(6, dim=2)[0][..., 0] + x[:1].unbind(0)[0][:, 0]
    return y, z, w, x.expand(2, -1, -1, -1), x.transpose(0, 1).clone(), full, torch.arange(1, 7, 2) * 1.5, made, pieces


# -- tests --------------------------------------------------------------------------------------------------------

X3 = torch.randn(4, 5, 6, generator=torch.Generator().manual_seed(1))
IDX = torch.randint(0, 4, (4, 2, 6), generator=torch.Generator().manual_seed(2))
IDS = torch.tensor([[5, 7, 1, 9, 0, 0], [3, 4, 8, 2, 6, 0]])


@pytest.mark.parametrize("decompose", [False, True], ids=["training_ir", "core_aten"])
@pytest.mark.parametrize("name", ["mlp", "resnet18", "cnn", "attention", "elementwise", "reductions", "shapes"])
def test_export_converts_without_fallback(name: str, decompose: bool) -> None:
    torch.manual_seed(0)
    module, args = {
        "mlp": lambda: (MLP(), (torch.randn(3, 12),)),
        "resnet18": lambda: (_randomize_bn(ResNet18()), (torch.randn(2, 3, 32, 32),)),
        "cnn": lambda: (_randomize_bn(SmallCNN()), (torch.randn(2, 3, 9, 11),)),
        "attention": lambda: (Attention(), (IDS,)),
        "elementwise": lambda: (Fn(_elementwise), (X3[:, :, 0].contiguous(), IDX[:, 0, :5].contiguous())),
        "reductions": lambda: (Fn(_reductions), (X3,)),
        "shapes": lambda: (Fn(_shapes), (X3, IDX)),
    }[name]()
    check_export(module, args, decompose=decompose, tol=1e-4)


@pytest.mark.parametrize("name", ["resnet18", "attention", "mlp"])
def test_aot_graphs_convert_without_fallback(name: str) -> None:
    torch.manual_seed(0)
    module, args = {
        "resnet18": lambda: (_randomize_bn(ResNet18()), (torch.randn(2, 3, 32, 32),)),
        "attention": lambda: (Attention(), (IDS,)),
        "mlp": lambda: (MLP(), (torch.randn(3, 12),)),
    }[name]()
    graphs, out = aot_graphs(module, args)
    assert graphs and fallbacks(*graphs) == {}
    with torch.no_grad():
        assert_matches(list(out) if isinstance(out, tuple) else [out], module(*args), 1e-4)


def test_dynamic_flatten_and_batch() -> None:
    # flatten over two symbolic dims needs SYM_SIZE * SYM_SIZE; ResNet's flatten keeps a symbolic batch
    graph = export_graph(
        Fn(lambda x: torch.flatten(x, 0, 1) * 2), (torch.randn(3, 4, 5),), dynamic=(({0: Dim.AUTO, 1: Dim.AUTO},),)
    )
    assert fallbacks(graph) == {} and Op.SYM_ARITH in {n.op for n in graph.nodes}
    x = torch.randn(2, 7, 5)
    assert_matches(run(graph, (x,)), torch.flatten(x, 0, 1) * 2)
    net = _randomize_bn(ResNet18()).eval()
    graph = export_graph(net, (torch.randn(2, 3, 32, 32),), dynamic=({0: Dim.AUTO},))
    assert fallbacks(graph) == {}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert_matches(run(graph, (x,)), net(x), 1e-4)


def test_aot_style_batch_norm_and_make_fx() -> None:
    # make_fx (no AOT decomposition table) keeps native_batch_norm and empty.memory_format
    from torch.fx.experimental.proxy_tensor import make_fx

    net = _randomize_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())).eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        gm = make_fx(lambda x: (net(x),))(x)  # AOT graphs return tuples
    graph = import_aot_graph(gm, [x]).graph
    verify(graph)
    assert Op.BATCH_NORM in {n.op for n in graph.nodes} and not fallbacks(graph)
    with torch.no_grad():
        assert_matches(run(graph, (x,)), net(x), 1e-5)


def test_dynamic_shapes_run_at_other_sizes() -> None:
    module = Attention().eval()
    ids = torch.randint(1, 50, (3, 7))
    graph = export_graph(module, (ids,), dynamic=({0: Dim.AUTO, 1: Dim.AUTO},))
    assert fallbacks(graph) == {}
    assert any(isinstance(d, str) for v in graph.inputs for d in v.shape), "export kept the shapes static"
    for shape in [(3, 7), (2, 5), (5, 11)]:
        other = torch.randint(1, 50, shape)
        with torch.no_grad():
            assert_matches(run(graph, (other,)), module(other), 1e-4)


@pytest.mark.parametrize("fn", [torch.special.bessel_j0, lambda x: torch.cumsum(x, 1)], ids=["bessel_j0", "cumsum"])
def test_unconverted_op_falls_back(fn: Callable) -> None:
    x = torch.randn(3, 4)
    graph = export_graph(Fn(lambda x: fn(x * 2) + 1), (x,))
    fb = fallbacks(graph)
    assert sum(fb.values()) == 1 and next(iter(fb)).startswith(("aten::special_bessel_j0", "aten::cumsum"))
    assert {n.op for n in graph.nodes} == {Op.MUL, Op.FALLBACK, Op.ADD}
    assert_matches(run(graph, (x,)), fn(x * 2) + 1)


def test_declined_conversion_falls_back() -> None:
    # training-mode dropout is random, and a layer norm with a bias but no weight is not (x[, w[, b]])
    x, b = torch.randn(4, 8), torch.randn(8)
    graph = export_graph(Fn(lambda x: F.layer_norm(x, (8,), None, b)), (x,))
    assert list(fallbacks(graph)) == ["aten::layer_norm"]
    assert_matches(run(graph, (x,)), F.layer_norm(x, (8,), None, b))
    graph = export_graph(Fn(lambda x: F.dropout(x, 0.5, training=True)), (x,))
    assert list(fallbacks(graph)) == ["aten::dropout"]


def test_scalar_operands_keep_eager_promotion() -> None:
    i = torch.arange(6).reshape(2, 3)
    graph = export_graph(Fn(lambda i: (i + 2.0, 3 - i, i * True, i / 2, i > 1.5, torch.rsub(i, 1, alpha=2))), (i,))
    assert fallbacks(graph) == {}
    got = run(graph, (i,))
    want = (i + 2.0, 3 - i, i * True, i / 2, i > 1.5, torch.rsub(i, 1, alpha=2))
    assert [g.dtype for g in got] == [w.dtype for w in want]
    assert_matches(got, want)
    assert [v.dtype for v in graph.outputs] == [DType.from_torch(w.dtype) for w in want]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert", "gpt2", "vit"])
def test_transformers_zoo_converts_without_fallback(name: str) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    if name == "bert":
        module, args = transformers.BertModel(transformers.BertConfig(**small)), (IDS.clamp(min=1),)
    elif name == "vit":
        cfg = transformers.ViTConfig(**small, image_size=32, patch_size=8)
        module, args = transformers.ViTModel(cfg), (torch.randn(1, 3, 32, 32),)
    else:
        cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100)
        module, args = transformers.GPT2LMHeadModel(cfg), (IDS,)
    module.eval()
    graphs, out = aot_graphs(module, args)
    assert graphs and fallbacks(*graphs) == {}
    with torch.no_grad():
        want = module(*args)[0]
    torch.testing.assert_close(out[0], want, atol=1e-4, rtol=1e-4)
    if name != "gpt2":  # export rejects GPT-2's DynamicCache output
        check_export(module, args, tol=1e-4)


def _t(*shape: int, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if not dtype.is_floating_point:
        return torch.randint(1, 5, shape, generator=g).to(dtype)
    return torch.randn(shape, generator=g, dtype=dtype)


A, B, IT, M = _t(3, 4), _t(3, 4, seed=1), _t(3, 4, dtype=torch.int64), _t(3, 4, dtype=torch.bool)
aten = torch.ops.aten
# (target, args, kwargs, outputs, the IR op it must become)
SINGLE_OPS = [
    (aten.clamp_min.default, (A, -0.5), {}, None, Op.CLAMP),
    (aten.clamp_max.default, (IT, 2), {}, None, Op.CLAMP),
    (aten.div.Scalar, (IT, 2), {}, None, Op.DIV),
    (aten.div.Scalar_mode, (IT, 2), {"rounding_mode": "floor"}, None, Op.DIV),
    (aten.true_divide.Tensor, (IT, A), {}, None, Op.DIV),
    (aten.true_divide.Scalar, (A, 3), {}, None, Op.DIV),
    (aten.floor_divide.Scalar, (A, 0.7), {}, None, Op.DIV),
    (aten.floor_divide.default, (-IT, IT + 1), {}, None, Op.DIV),
    (aten.sub.Scalar, (IT, 2.5, 2), {}, None, Op.SUB),
    (aten.rsub.Tensor, (A, B), {"alpha": 3}, None, Op.SUB),
    (aten.pow.Tensor_Tensor, (A.abs(), B), {}, None, Op.POW),
    (aten.pow.Scalar, (2, IT), {}, None, Op.POW),
    (aten.eq.Tensor, (IT, IT.flip(0)), {}, None, Op.EQ),
    (aten.ne.Tensor, (A, B), {}, None, Op.NE),
    (aten.gt.Tensor, (A, B), {}, None, Op.GT),
    (aten.le.Tensor, (IT, IT.flip(1)), {}, None, Op.LE),
    (aten.lt.Scalar, (A, 0), {}, None, Op.LT),
    (aten.logical_or.default, (A, M), {}, None, Op.LOGICAL_OR),
    (aten.bitwise_not.default, (M,), {}, None, Op.LOGICAL_NOT),
    (aten.bitwise_or.Tensor, (M, M.flip(0)), {}, None, Op.LOGICAL_OR),
    (aten.where.ScalarSelf, (M, 1.5, IT), {}, None, Op.WHERE),
    (aten.masked_fill.Tensor, (A, M, torch.tensor(2.0)), {}, None, Op.WHERE),
    (aten.hardtanh.default, (A, -0.5, 0.5), {}, None, Op.CLAMP),
    (aten.matmul.default, (A, B.t()), {}, None, Op.MATMUL),
    (aten.mean.default, (A,), {"dtype": torch.float64}, None, Op.MEAN),
    (aten.min.dim, (A, 1, True), {}, [0], Op.AMIN),
    (aten.any.dims, (M, [0, 1]), {}, None, Op.AMAX),
    (aten.any.dims, (M, []), {}, None, None),  # an empty dim list reduces nothing
    (aten.squeeze.default, (A[:1, None],), {}, None, Op.SQUEEZE),
    (aten.view_copy.default, (A, [2, -1]), {}, None, Op.RESHAPE),
    (aten.split.sizes, (A, [1, 3], 1), {}, None, Op.SPLIT),
    (aten.new_full.default, (A, [2, 2], 7), {}, None, Op.FULL),
    (aten.new_zeros.default, (IT, [3]), {}, None, Op.FULL),
    (aten.empty_like.default, (A,), {}, None, Op.FULL),
    (aten.to.device, (IT, torch.device("cpu"), torch.float16), {}, None, Op.CAST),
    (aten.to.dtype_layout, (A,), {"dtype": torch.int32}, None, Op.CAST),
    (aten.to.other, (IT, A), {}, None, Op.CAST),
    (torch.ops.prims.convert_element_type.default, (A, torch.float64), {}, None, Op.CAST),
    (aten._to_copy.default, (A,), {"dtype": torch.bfloat16}, None, Op.CAST),
    (aten.native_dropout.default, (A, 0.5, False), {}, [0], None),
    (aten.alpha_dropout.default, (A, 0.5, False), {}, None, None),
    (aten.feature_dropout.default, (A[None], 0.5, False), {}, None, None),
    (aten.detach.default, (A,), {}, None, None),
    (aten.native_layer_norm.default, (A, [4], None, None, 1e-5), {}, [0], Op.LAYER_NORM),
    (aten.max_pool2d_with_indices.default, (_t(1, 2, 5, 5), [2, 2]), {}, [0], Op.MAX_POOL2D),
    (aten._softmax.default, (A, 0, False), {}, None, Op.SOFTMAX),
]
# converters that must decline these arguments (the node falls back and stays exact)
DECLINED = [
    (aten.clamp.Tensor, (A, B), {}, None),  # no converter for tensor bounds
    (aten.masked_fill.Scalar, (IT, M, 2.5), {}, None),  # 2.5 would promote an int tensor in where()
    (aten.native_layer_norm.default, (A, [4], None, None, 1e-5), {}, None),  # mean and rstd are used
    (aten.max_pool2d_with_indices.default, (_t(1, 2, 5, 5), [2, 2]), {}, None),  # indices are used
    (
        aten.convolution.default,
        (_t(1, 2, 5, 5), _t(2, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], True, [0, 0], 1),
        {},
        None,
    ),  # transposed
    (aten.batch_norm.default, (_t(2, 3, 4), None, None, _t(3), _t(3).abs(), True, 0.1, 1e-5, False), {}, None),
    (aten._to_copy.default, (A,), {"device": torch.device("meta")}, None),  # a device change
]


@pytest.mark.parametrize(("target", "args", "kwargs", "outputs", "op"), SINGLE_OPS, ids=[f"{c[0]}" for c in SINGLE_OPS])
def test_single_op_converts(target: Any, args: tuple, kwargs: dict, outputs: Any, op: Op | None) -> None:
    graph, inputs, want = single_op(target, args, kwargs, outputs)
    assert not fallbacks(graph)
    assert [n.op for n in graph.nodes] == ([op] if op is not None else [])
    got = run(graph, inputs)
    if target is aten.empty_like.default:  # unspecified contents
        assert [g.shape for g in got] == [w.shape for w in want]
    else:
        assert_matches(got, want)
    assert [v.dtype for v in graph.outputs] == [DType.from_torch(w.dtype) for w in want]


@pytest.mark.parametrize(("target", "args", "kwargs", "outputs"), DECLINED, ids=[f"{c[0]}" for c in DECLINED])
def test_single_op_declines(target: Any, args: tuple, kwargs: dict, outputs: Any) -> None:
    graph, inputs, want = single_op(target, args, kwargs, outputs)
    assert [n.op for n in graph.nodes] == [Op.FALLBACK]
    if not any(w.device.type == "meta" for w in want):
        assert_matches(run(graph, inputs), want)


@pytest.mark.parametrize(
    "target",
    [
        aten._scaled_dot_product_flash_attention.default,
        aten._scaled_dot_product_efficient_attention.default,
        aten._scaled_dot_product_cudnn_attention.default,
    ],
    ids=["flash", "efficient", "cudnn"],
)
def test_cuda_attention_kernels_become_sdpa(target: Any) -> None:
    # traced on meta (these kernels are CUDA-only); the IR's reference is checked against F.sdpa on CPU
    q, k, v = _t(2, 2, 5, 8), _t(2, 2, 6, 8, seed=1), _t(2, 2, 6, 8, seed=2)
    extra = () if target is aten._scaled_dot_product_flash_attention.default else (None, False)
    graph, inputs, _ = single_op(target, (q, k, v, *extra), {"is_causal": True, "scale": 0.2}, [0], on_meta=True)
    assert [n.op for n in graph.nodes] == [Op.SDPA]
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.2)
    assert_matches(run(graph, inputs), want)
