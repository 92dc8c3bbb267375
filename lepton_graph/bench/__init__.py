"""The benchmark harness, installed with the package (`lepton-graph bench`): zoo models (models.py) run by every
backend (peers.py) in interleaved rounds (timing.py), each backend in its own process (isolation.py), accuracy
against eager (accuracy.py), the machine it ran on (machine.py), tables and a chart (render.py); harness.py drives,
cli.py parses. The repository's bench/ keeps entry scripts and the committed result tables."""

from __future__ import annotations

from .accuracy import compare, snapshot
from .cli import add_arguments, main, run_from_args
from .harness import attach_anchors, run_bench, write_json
from .render import render_markdown
from .timing import Settings

__all__ = [
    "Settings",
    "add_arguments",
    "attach_anchors",
    "compare",
    "main",
    "render_markdown",
    "run_bench",
    "run_from_args",
    "snapshot",
    "write_json",
]
