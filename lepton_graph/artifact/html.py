"""``lepton-graph inspect FILE --html out.html``: one self-contained page drawing an artifact's graph.

The artifact is loaded as ``lepton_graph.load`` would (so the partitions and kernels are the ones this machine
runs); every top-level node is a box with its op (a fused group: its kind and body ops), output shape and dtype, the
kernel that runs it (native partition or torch fallback) and the cost model's estimate (FLOPs, bytes moved). Boxes
are placed by grandalf's Sugiyama layered layout (the algorithm Graphviz ``dot`` uses), edges follow its routes;
the page holds the SVG, a summary table and CSS, and loads nothing from anywhere.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from ..ir import Graph, Node, Op, OpGroup, Value

CHAR_W, LINE_H, PAD = 7.4, 15.0, 8.0  # monospace 12px text (7.2 px a glyph), box padding
GAP_X, GAP_Y, MARGIN = 24.0, 36.0, 20.0


@dataclass
class _Box:
    key: str
    lines: list[str]
    tip: str
    cls: str
    w: float = 0.0
    h: float = 0.0
    x: float = 0.0  # centre
    y: float = 0.0

    def __post_init__(self) -> None:
        self.w = max(len(s) for s in self.lines) * CHAR_W + 2 * PAD
        self.h = len(self.lines) * LINE_H + 2 * PAD


class _View:
    """What grandalf reads and writes on a vertex (w, h, xy) or an edge (setpath)."""

    def __init__(self, w: float = 0.0, h: float = 0.0) -> None:
        self.w, self.h, self.xy = w, h, (0.0, 0.0)
        self.path: list[tuple[float, float]] = []

    def setpath(self, pts: list[tuple[float, float]]) -> None:
        self.path = list(pts)


def _shape(v: Value) -> str:
    return f"{v.dtype.value}[{', '.join(str(d) for d in v.shape)}]"


def _numel(v: Value) -> int:
    n = 1
    for d in v.shape:
        n *= d if isinstance(d, int) else 1
    return n


def node_flops(node: Node) -> int:
    """Multiply-adds x 2 of the compute ops (GEMMs, convolutions, attention), summed over a fused group's body;
    0 for the rest (elementwise and data movement are counted by their bytes)."""
    if node.op is Op.FUSED:
        return sum(node_flops(n) for n in node.attrs["body"].nodes)
    out = node.outputs[0] if node.outputs else None
    if out is None:
        return 0
    if node.op in OpGroup.GEMM:
        a = node.inputs[1] if node.op is Op.ADDMM else node.inputs[0]
        depth = a.shape[-1] if a.shape and isinstance(a.shape[-1], int) else 1
        return 2 * _numel(out) * depth
    if node.op in (Op.CONV2D, Op.QCONV2D):
        w = node.inputs[1]
        per = 1
        for d in w.shape[1:]:
            per *= d if isinstance(d, int) else 1
        return 2 * _numel(out) * per
    if node.op is Op.SDPA:
        q, k = node.inputs[0], node.inputs[1]
        s = k.shape[-2] if isinstance(k.shape[-2], int) else 1
        return 4 * _numel(q) * s
    return 0


def node_bytes(node: Node) -> int:
    return int(sum(_numel(v) * v.dtype.itemsize for v in (*node.inputs, *node.outputs) if v is not None))


def _si(x: float, unit: str) -> str:
    for scale, p in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.1f} {p}{unit}"
    return f"{x:.0f} {unit}"


def _boxes(graph: Graph, where: dict[int, str]) -> tuple[list[_Box], list[tuple[str, str]]]:
    """One box per graph input, node and output; edges (producer key, consumer key)."""
    boxes: list[_Box] = []
    made: dict[Value, str] = {}
    for i, v in enumerate(graph.inputs):
        key = f"in{i}"
        boxes.append(_Box(key, [f"input {v.name}", _shape(v)], f"graph input {v.name}: {_shape(v)}", "io"))
        made[v] = key
    edges: list[tuple[str, str]] = []
    for j, n in enumerate(graph.nodes):
        key = f"n{j}"
        kind = n.attrs.get("kind") if n.op is Op.FUSED else None
        title = f"{n.op.value}[{kind}]" if kind else n.op.value
        outs = ", ".join(_shape(v) for v in n.outputs[:2]) + (" ..." if len(n.outputs) > 2 else "")
        runs = where.get(id(n), "?")
        flops, nbytes = node_flops(n), node_bytes(n)
        cost = (_si(flops, "FLOP") + ", " if flops else "") + _si(nbytes, "B")
        lines = [f"{title}  {n.name}", outs, f"{runs} | {cost}"]
        tip = [f"{title} {n.name}", "inputs: " + ", ".join(_shape(v) for v in n.inputs if v is not None)]
        tip += [f"outputs: {outs}", f"runs on: {runs}", f"estimated: {cost}"]
        if kind:
            body = [b.op.value for b in n.attrs["body"].nodes]
            lines.insert(1, "+".join(body) if len("+".join(body)) <= 48 else f"{body[0]} + {len(body) - 1} fused ops")
            tip.append("fused body: " + " -> ".join(body))
        cls = "native" if runs.startswith("native") else "fallback" if runs.startswith("torch") else "other"
        boxes.append(_Box(key, lines, "\n".join(tip), cls))
        for v in n.inputs:
            if v is not None and v in made:
                edges.append((made[v], key))
        for v in n.outputs:
            made[v] = key
    for i, v in enumerate(graph.outputs):
        key = f"out{i}"
        boxes.append(_Box(key, [f"output {i}", _shape(v)], f"graph output {i}: {_shape(v)}", "io"))
        if v in made:
            edges.append((made[v], key))
    return boxes, list(dict.fromkeys(edges))


def _layout(boxes: list[_Box], edges: list[tuple[str, str]]) -> tuple[dict[tuple[str, str], list], float, float]:
    """Place the boxes (Sugiyama, per connected component, side by side); returns edge paths and the size."""
    from grandalf.graphs import Edge, Vertex
    from grandalf.graphs import Graph as GGraph
    from grandalf.layouts import SugiyamaLayout

    verts = {b.key: Vertex(b) for b in boxes}
    for v in verts.values():
        v.view = _View(v.data.w, v.data.h)
    gedges = []
    for a, b in edges:
        e = Edge(verts[a], verts[b])
        e.view = _View()
        gedges.append(e)
    g = GGraph(list(verts.values()), gedges)
    paths: dict[tuple[str, str], list] = {}
    x0, height = MARGIN, 0.0
    for comp in g.C:
        sug = SugiyamaLayout(comp)
        sug.xspace, sug.yspace = GAP_X, GAP_Y
        sug.init_all()
        sug.draw()
        vs = list(comp.sV)
        left = min(v.view.xy[0] - v.view.w / 2 for v in vs)
        top = min(v.view.xy[1] - v.view.h / 2 for v in vs)
        right = max(v.view.xy[0] + v.view.w / 2 for v in vs)
        bottom = max(v.view.xy[1] + v.view.h / 2 for v in vs)
        dx, dy = x0 - left, MARGIN - top
        for v in vs:
            v.data.x, v.data.y = v.view.xy[0] + dx, v.view.xy[1] + dy
        for e in comp.sE:
            pts = [(px + dx, py + dy) for px, py in e.view.path] or [
                (e.v[0].data.x, e.v[0].data.y),
                (e.v[1].data.x, e.v[1].data.y),
            ]
            paths[(e.v[0].data.key, e.v[1].data.key)] = pts
        x0 += right - left + 3 * GAP_X
        height = max(height, bottom - top + 2 * MARGIN)
    return paths, x0 - 3 * GAP_X + MARGIN, height


def _svg(boxes: list[_Box], paths: dict[tuple[str, str], list], width: float, height: float) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#667"/></marker></defs>',
    ]
    by_key = {b.key: b for b in boxes}
    for (a_key, b_key), pts in paths.items():
        # start at the producer's bottom edge, end at the consumer's top edge
        src, dst = by_key[a_key], by_key[b_key]
        pts = [(src.x, src.y + src.h / 2), *pts[1:-1], (dst.x, dst.y - dst.h / 2)]
        d = " ".join(f"{'M' if i == 0 else 'L'} {x:.1f} {y:.1f}" for i, (x, y) in enumerate(pts))
        out.append(f'<path class="edge" d="{d}" marker-end="url(#arrow)"/>')
    for b in boxes:
        x, y = b.x - b.w / 2, b.y - b.h / 2
        out.append(f'<g class="node {b.cls}" id="{b.key}"><title>{html.escape(b.tip)}</title>')
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{b.w:.1f}" height="{b.h:.1f}" rx="5"/>')
        for i, line in enumerate(b.lines):
            ty = y + PAD + (i + 0.8) * LINE_H
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{x + PAD:.1f}" y="{ty:.1f}"{weight}>{html.escape(line)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 16px; color: #222; }
pre { background: #f6f6f8; padding: 10px; font-size: 12px; overflow-x: auto; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 8px; border-radius: 4px; font-size: 12px;
  border: 1px solid #444; }
.legend .native { background: #d8f0dc; } .legend .fallback { background: #ffd9b3; } .legend .io { background: #e4e4ee; }
svg text { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; fill: #111; }
.edge { fill: none; stroke: #667; stroke-width: 1.2; }
.node rect { stroke: #444; stroke-width: 1; }
.native rect { fill: #d8f0dc; }
.fallback rect { fill: #ffd9b3; }
.io rect { fill: #e4e4ee; }
.other rect { fill: #fff; }
.node:hover rect { stroke: #06c; stroke-width: 2.5; }
#graph { overflow: auto; border: 1px solid #ddd; }
"""


def render(path: str | Path) -> str:
    """The page for the artifact at ``path`` (it is loaded and lowered for this machine to show its plan)."""
    from . import load
    from .commands import inspect_artifact
    from .panels import NATIVE

    model = load(path)
    compiled = model._compiled
    graph, plan = compiled.graph, compiled.plan
    where: dict[int, str] = {}
    for p in plan.partitions:
        label = f"native p{p.index}" if p.target == NATIVE else f"torch fallback p{p.index}"
        for n in p.nodes:
            where[id(n)] = label
    boxes, edges = _boxes(graph, where)
    paths, width, height = _layout(boxes, edges)
    summary = inspect_artifact(str(path)) + "\n" + str(model.report()).split("\n", 1)[1]
    n_native = sum(1 for b in boxes if b.cls == "native")
    n_fallback = sum(1 for b in boxes if b.cls == "fallback")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>lepton_graph: {html.escape(Path(path).name)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(Path(path).name)}</h1>",
            f'<p class="legend"><span class="native">native kernel ({n_native})</span>'
            f'<span class="fallback">torch fallback ({n_fallback})</span>'
            '<span class="io">graph input / output</span> hover a box for its inputs, fused body and cost</p>',
            f'<div id="graph">{_svg(boxes, paths, width, height)}</div>',
            f"<h2>Summary</h2><pre>{html.escape(summary)}</pre>",
            "</body></html>",
        ]
    )


def write(path: str | Path, out: str | Path) -> int:
    """Write the page for ``path`` to ``out``; returns the number of node boxes drawn."""
    page = render(path)
    Path(out).write_text(page, encoding="utf-8")
    return page.count('<g class="node ')


__all__ = ["node_bytes", "node_flops", "render", "write"]
