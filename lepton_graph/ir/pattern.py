"""The pattern matcher: declarative rewrite rules over the IR.

    rules = Rules([
        (P(Op.MUL, P.var("x"), scalar=1), lambda m: m["x"]),            # x*1 -> x
    ])
    rewrite(graph, rules)

A pattern is an op with input sub-patterns and attribute constraints (a literal to compare, or a predicate).
``P.var`` binds any value, ``P.const`` binds a weight, ``P.any_of`` tries alternatives. Inner nodes of a
pattern must have no users outside the match unless the pattern says ``shared=True``, so a replacement never
duplicates work. A rule's function gets the Match and returns the replacement value(s) or None (decline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .graph import Graph, Node, Value
from .ops import Op


class P:
    """A pattern node."""

    def __init__(
        self,
        op: Op | Iterable[Op] | None,
        *inputs: P,
        name: str | None = None,
        shared: bool = False,
        nargs: int | None = None,
        variadic: bool = False,
        **attrs: Any,
    ) -> None:
        self.ops = None if op is None else frozenset([op] if isinstance(op, Op) else op)
        self.inputs = inputs
        self.name = name
        self.shared = shared
        self.nargs = len(inputs) if nargs is None else nargs  # exact input count...
        self.variadic = variadic  # ...or, if variadic, at least the sub-patterns (extra inputs unconstrained)
        self.attrs = attrs
        self.kind = "op"
        self.alternatives: tuple[P, ...] = ()
        self.pred: Callable[[Value], bool] | None = None

    @staticmethod
    def var(name: str | None = None, pred: Callable[[Value], bool] | None = None) -> P:
        p = P(None, name=name)
        p.kind, p.pred = "var", pred
        return p

    @staticmethod
    def const(name: str | None = None, pred: Callable[[Value], bool] | None = None) -> P:
        p = P(None, name=name)
        p.kind, p.pred = "const", pred
        return p

    @staticmethod
    def any_of(*alternatives: P, name: str | None = None) -> P:
        p = P(None, name=name)
        p.kind, p.alternatives = "any", alternatives
        return p

    def __repr__(self) -> str:
        if self.kind != "op":
            return f"P.{self.kind}({self.name})"
        ops = "|".join(sorted(o.value for o in self.ops or ()))
        return f"P({ops}, {', '.join(map(repr, self.inputs))})"


@dataclass
class Match:
    graph: Graph
    root: Node
    values: dict[str, Value] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    inner: list[Node] = field(default_factory=list)  # matched nodes, root last

    def __getitem__(self, name: str) -> Value:
        return self.values[name]

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def emit(
        self, op: Op, inputs: Sequence[Value], attrs: dict[str, Any] | None = None, syms: Sequence[Value] = ()
    ) -> Value:
        """Add a node just before the match's root (so its inputs are already defined) and return its output."""
        return self.graph.add_node(op, inputs, attrs, syms=syms, before=self.root).out


def _match(p: P, v: Value, m: Match, users: dict[Value, list[Node]], is_root: bool) -> bool:
    if p.kind == "var":
        ok = p.pred is None or p.pred(v)
    elif p.kind == "const":
        ok = v.const is not None and (p.pred is None or p.pred(v))
    elif p.kind == "any":
        for alt in p.alternatives:
            trial = Match(m.graph, m.root, dict(m.values), dict(m.nodes), list(m.inner))
            if _match(alt, v, trial, users, is_root):
                m.values, m.nodes, m.inner = trial.values, trial.nodes, trial.inner
                ok = True
                break
        else:
            return False
    else:
        n = v.producer
        if n is None or (p.ops is not None and n.op not in p.ops):
            return False
        if len(n.inputs) < len(p.inputs) or (not p.variadic and len(n.inputs) != p.nargs):
            return False
        if not is_root and not p.shared and (len(n.outputs) != 1 or len(users.get(v, ())) != 1):
            return False
        for key, want in p.attrs.items():
            have = n.attrs.get(key)
            if callable(want) and not isinstance(want, type):
                if not want(have):
                    return False
            elif have != want:
                return False
        for sub, inp in zip(p.inputs, n.inputs):
            if not _match(sub, inp, m, users, False):
                return False
        if p.name:
            m.nodes[p.name] = n
        m.inner.append(n)
        ok = True
    if not ok:
        return False
    if p.name:
        if p.name in m.values and m.values[p.name] is not v:
            return False  # the same name must bind the same value everywhere in the pattern
        m.values[p.name] = v
    return True


RuleFn = Callable[[Match], "Value | Sequence[Value] | None"]


@dataclass
class Rule:
    pattern: P
    fn: RuleFn
    name: str = ""


class Rules:
    """An ordered, composable rule table (``rules_a + rules_b``)."""

    def __init__(self, rules: Iterable[tuple[P, RuleFn] | tuple[P, RuleFn, str] | Rule]) -> None:
        self.rules = [r if isinstance(r, Rule) else Rule(*r) for r in rules]
        self.by_op: dict[Op | None, list[Rule]] = {}
        for r in self.rules:
            for op in r.pattern.ops or [None]:
                self.by_op.setdefault(op, []).append(r)

    def __add__(self, other: Rules) -> Rules:
        return Rules(self.rules + other.rules)

    def for_op(self, op: Op) -> list[Rule]:
        return self.by_op.get(op, []) + self.by_op.get(None, [])


def match(pattern: P, node: Node, graph: Graph, users: dict[Value, list[Node]] | None = None) -> Match | None:
    if len(node.outputs) != 1:
        return None
    m = Match(graph, node)
    return m if _match(pattern, node.out, m, users if users is not None else graph.users(), True) else None


def rewrite(graph: Graph, rules: Rules, max_steps: int = 20) -> dict[str, int]:
    """Apply rules at every node, in topological order, until nothing changes; returns fires per rule."""
    fired: dict[str, int] = {}
    for _ in range(max_steps):
        changed = False
        users = graph.users()
        for node in list(graph.nodes):
            if node.op is Op.FUSED or len(node.outputs) != 1:
                continue
            for rule in rules.for_op(node.op):
                m = match(rule.pattern, node, graph, users)
                if m is None:
                    continue
                out = rule.fn(m)
                if out is None:
                    continue
                new = out[0] if isinstance(out, (list, tuple)) else out
                assert isinstance(new, Value), new
                if new is node.out:
                    continue
                graph.replace_all_uses(node.out, new)
                fired[rule.name or repr(rule.pattern)] = fired.get(rule.name or repr(rule.pattern), 0) + 1
                changed = True
                users = graph.users()
                break
        graph.remove_dead()
        if not changed:
            break
    return fired
