"""Value, Node and Graph: the IR's data structures.

A Graph holds its nodes in topological order. Values are produced by exactly one node, or are graph inputs,
or are constants (weights held by reference in ``Graph.constants``). Attributes are plain data (ints, floats,
strings, tuples, DType, Ref) so the IR serializes to JSON.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import torch

from .dtype import DType
from .ops import Op

# A dimension is a concrete size or the name of a symbolic size ("s0", "12*s0").
Dim = Union[int, str]  # noqa: UP007 (a runtime alias; kept for Python 3.10)
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class Ref:
    """An attribute entry that stands for a node's ``syms[index]`` (a symbolic size known only at run time)."""

    index: int


@dataclass(frozen=True)
class Arg:
    """In a FALLBACK node's argument template: stands for the node's ``inputs[index]``."""

    index: int


@dataclass(frozen=True)
class TorchObj:
    """A torch enum-like argument kept as plain data: kind is "device", "memory_format" or "layout"."""

    kind: str
    value: str


@dataclass(frozen=True)
class QParams:
    """Quantization parameters carried by a quantized value (scales/zero points are constant keys)."""

    scheme: str  # "per_tensor" | "per_channel" | "per_group"
    scale: str
    zero_point: str | None = None
    axis: int | None = None
    group_size: int | None = None


@dataclass(frozen=True)
class Derivation:
    """A constant a pass computed from other constants: ``fn(*inputs)``, replayed when one of them changes."""

    fn: Callable[..., torch.Tensor]
    inputs: tuple[str, ...]


class StructureChanged(Exception):
    """A changed weight is one whose values a pass relied on to choose the graph's structure: recompile."""


@dataclass(eq=False)
class Value:
    name: str
    shape: Shape
    dtype: DType
    device: str = "cpu"
    kind: str = "tensor"  # "tensor" | "sym" (a Python int at run time, e.g. a dynamic size)
    layout: str = "strided"  # "strided" | "nhwc" | "packed" | "sparse_csr" ...
    qparams: QParams | None = None
    const: str | None = None  # key into Graph.constants when this value is a weight
    producer: Node | None = field(default=None, repr=False)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def numel(self) -> int | None:
        n = 1
        for d in self.shape:
            if not isinstance(d, int):
                return None
            n *= d
        return n

    def type_str(self) -> str:
        if self.kind == "sym":
            return "sym"
        dims = ",".join(str(d) for d in self.shape)
        extra = f" @{self.device}" if self.device != "cpu" else ""
        extra += f" {self.layout}" if self.layout != "strided" else ""
        return f"{self.dtype.value}[{dims}]{extra}"

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type_str()}"


@dataclass(eq=False)
class Node:
    op: Op
    inputs: list[Value]
    attrs: dict[str, Any]
    outputs: list[Value]
    name: str = ""
    syms: list[Value] = field(default_factory=list)  # sym values referenced by Ref(i) in attrs

    @property
    def out(self) -> Value:
        if len(self.outputs) != 1:
            raise ValueError(f"node {self.name} ({self.op.value}) has {len(self.outputs)} outputs")
        return self.outputs[0]

    def deps(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.syms

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op.value})"


class Graph:
    def __init__(self) -> None:
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.constants: dict[str, torch.Tensor] = {}
        self.const_values: dict[str, Value] = {}
        # lineage of the constants, so a changed weight re-derives exactly what was computed from it:
        # the captured tensors (by reference) and the constants passes derived from them, in creation order
        self.sources: dict[str, torch.Tensor] = {}
        self.derivations: dict[str, Derivation] = {}
        self.pinned: set[str] = set()  # constants whose values chose structure (e.g. a mask found all-True)
        self.meta: dict[str, Any] = {}
        self._ids = itertools.count()

    # -- construction
    def fresh(self, prefix: str = "v") -> str:
        return f"{prefix}{next(self._ids)}"

    def add_input(
        self, shape: Iterable[Dim], dtype: DType, device: str = "cpu", kind: str = "tensor", name: str | None = None
    ) -> Value:
        v = Value(name or self.fresh("in"), tuple(shape), dtype, device, kind=kind)
        self.inputs.append(v)
        return v

    def add_constant(self, tensor: torch.Tensor, name: str | None = None) -> Value:
        """Register a weight by reference; the same tensor object is shared, never copied."""
        key = name or self.fresh("c")
        while key in self.constants and self.constants[key] is not tensor:
            key = self.fresh(key + "_")
        if key in self.const_values:
            return self.const_values[key]
        self.constants[key] = tensor
        self.sources[key] = tensor
        v = Value(key, tuple(tensor.shape), DType.from_torch(tensor.dtype), device_str(tensor.device), const=key)
        self.const_values[key] = v
        return v

    def add_derived(
        self, fn: Callable[..., torch.Tensor], inputs: Sequence[Value], name: str, value: torch.Tensor | None = None
    ) -> Value:
        """A constant computed now as ``fn(*input constants)`` (or ``value``, when the caller computed exactly that
        already); recorded so it is recomputed when they change. ``fn`` must be a pure function of its tensor
        arguments."""
        keys = tuple(v.const for v in inputs)
        if None in keys:
            raise ValueError(f"derived constant {name}: every input must be a constant")
        if value is None:
            value = fn(*(self.constants[k] for k in keys))  # type: ignore[index]
        v = self.add_constant(value, name)
        self.sources.pop(v.const, None)  # type: ignore[arg-type]
        self.derivations[v.const] = Derivation(fn, keys)  # type: ignore[arg-type, index]
        return v

    def pin(self, v: Value) -> None:
        """Record that a pass chose structure from ``v``'s values: a change to them needs a recompile."""
        if v.const is not None:
            self.pinned.add(v.const)

    def update_sources(self, new: Mapping[str, torch.Tensor]) -> set[str]:
        """Captured tensors that changed (in place or replaced, by key): every constant derived from them is
        computed again. Returns the keys whose values changed; raises StructureChanged if a pinned one did."""
        dirty = set(new)
        for key, t in new.items():
            self.sources[key] = t
            if key in self.constants:
                self.constants[key] = t
        dead: dict[str, torch.Tensor] = {}

        def current(key: str) -> torch.Tensor:
            if key in self.constants:
                return self.constants[key]
            if key in self.sources:
                return self.sources[key]
            if key not in dead:  # an intermediate no node reads any more (e.g. w.T before a merge)
                d = self.derivations[key]
                dead[key] = d.fn(*(current(i) for i in d.inputs))
            return dead[key]

        for key, d in self.derivations.items():  # creation order: inputs before what is derived from them
            if not dirty.isdisjoint(d.inputs):
                dirty.add(key)
                if key in self.constants:
                    self.constants[key] = d.fn(*(current(i) for i in d.inputs))
        if not dirty.isdisjoint(self.pinned):
            raise StructureChanged(f"the graph's structure depends on the values of {sorted(dirty & self.pinned)}")
        return dirty

    def make_node(
        self,
        op: Op,
        inputs: Iterable[Value],
        attrs: Mapping[str, Any] | None = None,
        outputs: list[Value] | None = None,
        syms: Iterable[Value] = (),
    ) -> Node:
        """Create a node (not yet placed); outputs are inferred from the op registry unless given."""
        from .registry import OPS, infer_outputs

        node = Node(op, list(inputs), dict(attrs or {}), [], name=self.fresh("n"), syms=list(syms))
        if op not in OPS:
            raise KeyError(f"op {op.value} is not registered")
        node.attrs = OPS[op].normalize_attrs(node.attrs, f"node {node.name}")
        if outputs is None:
            outputs = [
                Value(self.fresh(), s, dt, dev)
                if kind == "tensor"
                else Value(self.fresh(), (), DType.i64, dev, kind="sym")
                for s, dt, dev, kind in infer_outputs(node)
            ]
        for v in outputs:
            v.producer = node
        node.outputs = outputs
        return node

    def add_node(
        self,
        op: Op,
        inputs: Iterable[Value],
        attrs: Mapping[str, Any] | None = None,
        outputs: list[Value] | None = None,
        syms: Iterable[Value] = (),
        before: Node | None = None,
    ) -> Node:
        node = self.make_node(op, inputs, attrs, outputs, syms)
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    # -- queries
    def users(self) -> dict[Value, list[Node]]:
        out: dict[Value, list[Node]] = {}
        for n in self.nodes:
            for v in n.deps():
                out.setdefault(v, []).append(n)
        return out

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            key = n.attrs.get("target", n.op.value) if n.op is Op.FALLBACK else n.op.value
            counts[key] = counts.get(key, 0) + 1
        return counts

    def constant(self, v: Value) -> torch.Tensor | None:
        return self.constants.get(v.const) if v.const is not None else None

    def copy(self) -> tuple[Graph, dict[Value, Value]]:
        """A graph with the same nodes, values and constants (tensors shared, never copied) that passes can change
        without touching this one; and the map from this graph's values to the copy's."""
        g = Graph()
        vmap: dict[Value, Value] = {}

        def fresh(v: Value) -> Value:
            if v not in vmap:
                vmap[v] = replace(v, producer=None)
            return vmap[v]

        g.inputs = [fresh(v) for v in self.inputs]
        g.constants = dict(self.constants)
        g.const_values = {k: fresh(v) for k, v in self.const_values.items()}
        g.sources, g.derivations, g.pinned = dict(self.sources), dict(self.derivations), set(self.pinned)
        g.meta = dict(self.meta)
        for n in self.nodes:
            outs = [fresh(v) for v in n.outputs]
            node = Node(n.op, [fresh(v) for v in n.inputs], dict(n.attrs), outs, n.name, [fresh(v) for v in n.syms])
            for v in outs:
                v.producer = node
            g.nodes.append(node)
        g.outputs = [fresh(v) for v in self.outputs]
        g._ids = itertools.count(next(self._ids))  # names the copy makes never clash with this graph's
        return g, vmap

    # -- mutation
    def replace_all_uses(self, old: Value, new: Value) -> None:
        for n in self.nodes:
            n.inputs = [new if v is old else v for v in n.inputs]
            n.syms = [new if v is old else v for v in n.syms]
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_dead(self) -> int:
        """Drop nodes whose outputs nobody uses; returns how many were removed."""
        live = set(self.outputs)
        kept: list[Node] = []
        for n in reversed(self.nodes):
            if any(v in live for v in n.outputs):
                kept.append(n)
                live.update(n.deps())
        removed = len(self.nodes) - len(kept)
        self.nodes = kept[::-1]
        used = {v.const for v in live if v.const is not None}
        for key in [k for k in self.constants if k not in used]:
            del self.constants[key]
            self.const_values.pop(key, None)
        return removed

    def __str__(self) -> str:
        from .printer import format_graph

        return format_graph(self)


def device_str(device: torch.device) -> str:
    return device.type if device.index is None else f"{device.type}:{device.index}"


def toposort(graph: Graph) -> None:
    """Stable topological sort of graph.nodes (keeps the current order wherever dependencies allow)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    producers = {v: n for n in graph.nodes for v in n.outputs}
    indeg = {n: 0 for n in graph.nodes}
    users: dict[Node, list[Node]] = {n: [] for n in graph.nodes}
    for n in graph.nodes:
        for p in {producers[v] for v in n.deps() if v in producers}:
            indeg[n] += 1
            users[p].append(n)
    import heapq

    ready = [(order[n], id(n), n) for n in graph.nodes if indeg[n] == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        _, _, n = heapq.heappop(ready)
        out.append(n)
        for u in users[n]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, (order[u], id(u), u))
    if len(out) != len(graph.nodes):
        raise ValueError("graph has a cycle")
    graph.nodes = out
