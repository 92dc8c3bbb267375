"""Data movement lowerings (lepton_graph.backends.cpu.movement) and their kernels against torch eager."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_graph.backends import LowerOptions
from lepton_graph.backends.cpu import movement, native
from lepton_graph.backends.cpu.native import _C
from lepton_graph.backends.cpu.registry import lowering_for
from lepton_graph.ir import DType, Graph, Op
from lepton_graph.ir.interpret import interpret

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")
SETTINGS = settings(max_examples=25, deadline=None)
DTYPES = [torch.float32, torch.bfloat16, torch.int64, torch.bool, torch.uint8]


def lower(op: Op, xs: list[torch.Tensor], attrs: dict) -> tuple[Graph, object]:
    g = Graph()
    ins = [g.add_input(tuple(x.shape), DType.from_torch(x.dtype)) for x in xs]
    n = g.add_node(op, ins, attrs)
    g.outputs = n.outputs
    k = lowering_for(n)(n, g, LowerOptions())
    assert not isinstance(k, str), k
    return g, k


def rand(shape: tuple, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 50
    return x > 0 if dtype == torch.bool else x.to(dtype)


@st.composite
def permuted(draw: st.DrawFn) -> tuple:
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.sampled_from([0, 1, 2, 3, 5, 16, 31])) for _ in range(rank))
    perm = draw(st.permutations(range(rank)))
    return shape, tuple(perm)


@SETTINGS
@given(case=permuted(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 1000))
def test_contiguous_and_reshape_of_permuted(case: tuple, dtype: torch.dtype, seed: int) -> None:
    shape, perm = case
    x = rand(shape, dtype, seed).permute(perm)
    _, kc = lower(Op.CONTIGUOUS, [x], {})
    y = kc(x)
    assert y.is_contiguous() and torch.equal(y, x.contiguous())
    _, kr = lower(Op.RESHAPE, [x], {"shape": (-1,)})
    for _ in range(2):  # second call takes the cached view/copy decision
        assert torch.equal(kr(x), x.reshape(-1))


def test_reshape_of_viewable_input_is_zero_copy() -> None:
    x = torch.randn(4, 6, 8)[:, :, :4]  # non-contiguous but the first two dims merge
    _, k = lower(Op.RESHAPE, [x], {"shape": (24, 4)})
    y = k(x)
    assert y.data_ptr() == x.data_ptr() and torch.equal(y, x.reshape(24, 4))


@pytest.mark.parametrize(
    "op,attrs",
    [
        (Op.PERMUTE, {"dims": (2, 0, 1)}),
        (Op.TRANSPOSE, {"dim0": 0, "dim1": 2}),
        (Op.EXPAND, {"shape": (2, 3, 4, 5)}),
        (Op.SQUEEZE, {"dims": None}),
        (Op.SQUEEZE, {"dims": (0,)}),
        (Op.UNSQUEEZE, {"dim": -1}),
        (Op.SLICE, {"dim": 1, "start": 1, "end": 100, "step": 1}),
        (Op.SLICE, {"dim": 2, "start": -3, "end": None, "step": 2}),
        (Op.SELECT, {"dim": 2, "index": -1}),
        (Op.SPLIT, {"sizes": (1, 3), "dim": 1}),
    ],
)
def test_views_match_torch(op: Op, attrs: dict) -> None:
    x = torch.randn(1, 3, 4, 5)[0] if op is not Op.EXPAND else torch.randn(3, 1, 5)
    if op is Op.SQUEEZE:
        x = torch.randn(1, 3, 1, 5)
    g, k = lower(op, [x], attrs)
    got, ref = k(x), interpret(g, [x])
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert torch.equal(a, b) and a.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()


@SETTINGS
@given(
    n=st.integers(1, 4),
    dim=st.integers(0, 2),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 1000),
    sizes=st.lists(st.sampled_from([0, 1, 3, 17]), min_size=4, max_size=4),
    t=st.booleans(),
)
def test_cat_matches_torch(n: int, dim: int, dtype: torch.dtype, seed: int, sizes: list, t: bool) -> None:
    xs = []
    for i in range(n):
        shape = [2, 5, 7]
        shape[dim] = sizes[i]
        x = rand(tuple(shape), dtype, seed + i)
        xs.append(x.transpose(0, 2).contiguous().transpose(0, 2) if t else x)
    g, k = lower(Op.CAT, xs, {"dim": dim})
    assert torch.equal(k(*xs), interpret(g, xs)[0])


@pytest.mark.parametrize("idx_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("idx_shape", [(), (0,), (7,), (2, 9)])
def test_embedding_matches_torch(idx_dtype: torch.dtype, idx_shape: tuple) -> None:
    w = torch.randn(50, 33)
    idx = torch.randint(0, 50, idx_shape, dtype=idx_dtype)
    g, k = lower(Op.EMBEDDING, [w, idx], {})
    assert torch.equal(k(w, idx), interpret(g, [w, idx])[0])
    bad = torch.full(idx_shape if idx_shape not in ((), (0,)) else (1,), 50, dtype=idx_dtype)
    with pytest.raises(ValueError):
        k(w, bad)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_index_select_matches_torch(dim: int) -> None:
    x = torch.randn(4, 5, 6).transpose(0, 1)
    idx = torch.tensor([3, 0, 0, 2])
    g, k = lower(Op.INDEX_SELECT, [x, idx], {"dim": dim})
    assert torch.equal(k(x, idx), interpret(g, [x, idx])[0])


@pytest.mark.parametrize(
    "value,dtype",
    [
        (1.5, DType.f32),
        (-3, DType.i64),
        (True, DType.bool),
        (0.1, DType.bf16),
        (7, DType.i32),
        (float("-inf"), DType.f32),
    ],
)
@pytest.mark.parametrize("shape", [(), (0,), (3, 70000)])
def test_full_matches_torch(value: object, dtype: DType, shape: tuple) -> None:
    g = Graph()
    n = g.add_node(Op.FULL, [], {"shape": shape, "value": value, "dtype": dtype})
    g.outputs = n.outputs
    k = movement.lower_full(n, g, LowerOptions())
    assert not isinstance(k, str), k
    assert torch.equal(k(), interpret(g, [])[0])


@pytest.mark.parametrize(
    "start,end,step,dtype",
    [
        (0, 16, 1, None),
        (2, 100, 3, DType.i64),
        (0.0, 1.0, 0.1, None),
        (-5, 5, 0.5, DType.f32),
        (0, 0, 1, None),
        (10, 0, -3, DType.i32),
    ],
)
def test_arange_matches_torch(start: float, end: float, step: float, dtype: DType | None) -> None:
    g = Graph()
    n = g.add_node(Op.ARANGE, [], {"start": start, "end": end, "step": step, "dtype": dtype})
    g.outputs = n.outputs
    k = movement.lower_arange(n, g, LowerOptions())
    assert not isinstance(k, str), k
    assert torch.equal(k(), interpret(g, [])[0])


def test_copy_kernels_reject_bad_arguments() -> None:
    x, y = torch.randn(4, 4), torch.empty(4, 4)
    with pytest.raises(ValueError):
        _C.copy_strided(x.data_ptr(), y.data_ptr(), 3, [4, 4], [4, 1], [4, 1])
    with pytest.raises(ValueError):
        _C.copy_strided(x.data_ptr(), y.data_ptr(), 4, [4, 4], [4], [4, 1])
    with pytest.raises(ValueError):
        _C.copy_strided(x.data_ptr(), 0, 4, [4, 4], [4, 1], [4, 1])
    with pytest.raises(ValueError):
        _C.copy_strided(x.data_ptr(), y.data_ptr(), 4, [-4, 4], [4, 1], [4, 1])
    idx = torch.tensor([0, -9])
    with pytest.raises(ValueError):
        _C.gather_rows(x.data_ptr(), idx.data_ptr(), y.data_ptr(), 4, 1, 4, 4, 2, True, True)
    with pytest.raises(ValueError):
        _C.fill(y.data_ptr(), 16, 4, 0)
    with pytest.raises(ValueError):
        _C.arange(y.data_ptr(), "bool", 4, 0.0, 1.0)


def test_large_strided_copy_is_threaded_and_correct() -> None:
    x = torch.randn(512, 1024).t()
    y = movement.contiguous(x)
    assert torch.equal(y, x.contiguous()) and y.is_contiguous() and y.stride() == (512, 1)


def test_compiled_model_movement_is_native() -> None:
    import lepton_graph

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(100, 16)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            h = self.emb(ids)  # [b, s, 16]
            h = h.view(2, 4, 2, 8).transpose(1, 2).reshape(2, 2, 32)
            return torch.cat([h, h[:, :1]], dim=1).permute(0, 2, 1).contiguous()

    m = M().eval()
    ids = torch.randint(0, 100, (2, 4))
    c = lepton_graph.compile(m)
    with torch.no_grad():
        got, ref = c(ids), m(ids)
    assert torch.equal(got, ref)
    d = c.report().as_dict()
    assert d["fallback_nodes"] == 0 and d["native_nodes"] >= 4, d
