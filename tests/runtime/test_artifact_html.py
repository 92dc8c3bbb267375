"""`lepton-graph inspect FILE --html`: the page draws every node of the loaded graph (checked in the SVG it holds,
and rendered in a real headless Chromium, driven by playwright, where one is installed: .ci/chromium.sh)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

import lepton_graph
from lepton_graph import zoo
from lepton_graph.backends.cpu import native

pytestmark = pytest.mark.skipif(not native.available(), reason="lepton_graph._C is not built")


def _chromium() -> Path | None:
    path = Path(os.environ.get("LEPTON_CHROMIUM") or Path(sys.prefix) / "chromium" / "chromium")
    return path if path.is_file() and os.access(path, os.X_OK) else None


@pytest.fixture(scope="module")
def page_of(tmp_path_factory: pytest.TempPathFactory):
    """(artifact, page path, loaded model) for bert_tiny with a fallback node (a cumsum: no native kernel)."""
    import torch

    from lepton_graph.artifact import html

    class WithFallback(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert, _ = zoo.build("bert_tiny")

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return torch.cumsum(h, dim=1)

    _, (_, kwargs) = zoo.build("bert_tiny")
    d = tmp_path_factory.mktemp("html")
    c = lepton_graph.compile(WithFallback().eval())
    c(**kwargs)
    art = d / "bert.lgraph"
    c.export(art)
    out = d / "bert.html"
    boxes = html.write(art, out)
    loaded = lepton_graph.load(art)
    g = loaded._compiled.graph
    assert boxes == len(g.inputs) + len(g.nodes) + len(g.outputs)
    return art, out, loaded


def _rects(page: str) -> list[tuple[float, float, float, float]]:
    return [
        tuple(float(v) for v in m.groups())  # type: ignore[misc]
        for m in re.finditer(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"', page)
    ]


def test_the_page_draws_every_node_with_its_kernel_and_cost(page_of) -> None:
    art, out, loaded = page_of
    page = out.read_text()
    g = loaded._compiled.graph
    rects = _rects(page)
    assert len(rects) == len(g.inputs) + len(g.nodes) + len(g.outputs)
    # laid out: no two boxes overlap, all inside the drawing
    w, h = (float(x) for x in re.search(r'<svg [^>]*width="(\d+)" height="(\d+)"', page).groups())  # type: ignore[union-attr]
    for i, (x, y, bw, bh) in enumerate(rects):
        assert 0 <= x and x + bw <= w + 1 and 0 <= y and y + bh <= h + 1
        for x2, y2, bw2, bh2 in rects[i + 1 :]:
            assert x + bw <= x2 or x2 + bw2 <= x or y + bh <= y2 or y2 + bh2 <= y
    assert page.count('class="edge"') >= len(g.nodes)
    # what each box says: op, shape, where it runs, cost; the fallback is drawn as one
    assert "linear" in page and "sdpa" in page and "f32[1, 16, 64]" in page and "FLOP" in page
    assert page.count('class="node fallback"') == loaded.report().fallback_nodes >= 1
    assert "cumsum" in page and "torch fallback" in page
    assert "fused body: " in page  # a fused group's tooltip lists its body
    # self-contained: nothing is fetched
    assert not re.search(r'(src|href)="(https?:)?//', page) and "<script" not in page


def test_cli_writes_the_page(page_of, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lepton_graph.cli import main

    art, _, loaded = page_of
    out = tmp_path / "p.html"
    assert main(["inspect", str(art), "--html", str(out)]) == 0
    text = capsys.readouterr().out
    g = loaded._compiled.graph
    assert f"as {len(g.inputs) + len(g.nodes) + len(g.outputs)} boxes" in text and out.stat().st_size > 10_000


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium (.ci/chromium.sh fetches one)")
def test_the_page_renders_in_a_real_browser(page_of, tmp_path: Path) -> None:
    """Chromium lays the page out: every node box is drawn with a non-empty size, its text is laid out inside it,
    and a screenshot of the graph is not blank."""
    playwright = pytest.importorskip("playwright.sync_api")
    _, out, loaded = page_of
    chromium = _chromium()
    assert chromium is not None
    env = {**os.environ, "HOME": str(tmp_path), "LD_LIBRARY_PATH": f"{chromium.parent / 'lib'}:{chromium.parent}"}
    args = ["--no-sandbox", "--no-zygote", "--disable-gpu", "--disable-dev-shm-usage"]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args, env=env, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(out.as_uri())
            boxes = page.evaluate(
                """() => [...document.querySelectorAll('g.node')].map(g => {
                     const r = g.querySelector('rect').getBoundingClientRect();
                     const t = g.querySelector('text').getBoundingClientRect();
                     return [r.width, r.height, t.width, t.left >= r.left - 1 && t.right <= r.right + 1];
                   })"""
            )
            shot = page.locator("#graph").screenshot(path=str(tmp_path / "graph.png"))
        finally:
            browser.close()
    g = loaded._compiled.graph
    assert len(boxes) == len(g.inputs) + len(g.nodes) + len(g.outputs)
    assert all(w > 20 and h > 20 and tw > 0 and inside for w, h, tw, inside in boxes)
    assert len(shot) > 10_000  # a PNG of drawn boxes, not an empty frame
