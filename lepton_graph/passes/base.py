"""What a pass is, and the instruments run around each one (timing, verifier, logging, numeric check)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ir import Graph


@dataclass
class PassResult:
    graph: Graph
    changed: bool
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class PassOptions:
    """Options every pass may read; opt-in passes skip themselves unless enabled here."""

    prune: Any = None
    quantize: Any = None
    # the target backend's answer to "can one kernel run this group?" (kind, nodes, graph) -> None | reason;
    # None here: every group the pass can form is accepted (the torch backend runs any)
    can_fuse: Callable[[str, list[Any], Graph], str | None] | None = None
    # the target backend's reason to keep a layer float under a default quantization scheme because its float
    # kernel is the faster one on this machine, (node, graph) -> None | reason; None: quantize as configured
    prefers_float: Callable[[Any, Graph], str | None] | None = None
    # real inputs of the captured graph, when the caller has them (quantize measures each layer's error on them)
    example_inputs: Sequence[Any] | None = None
    # int8-static: each calibrated linear layer's input range (lo, hi), by module path (lepton_graph/calibration.py)
    act_ranges: Mapping[str, tuple[float, float]] | None = None
    # SmoothQuant: a calibrated layer's per-input-channel factors s (its input runs as x / s, its weight as W * s)
    # and the calibrated range of x / s, by module path
    act_smooth: Mapping[str, Any] | None = None
    # the accuracy budget's inputs (graph inputs of each compile(eval=...) example that fits); None: example_inputs
    budget_inputs: Sequence[Sequence[Any]] | None = None
    # int8-static calibrated on the compiled graph: each calibrated layer's input (a Value of the graph the
    # quantize pass receives) on the example inputs, so layer errors need no run of the reference interpreter
    layer_inputs: Mapping[Any, Any] | None = None


Pass = Callable[[Graph, PassOptions], PassResult]


@dataclass
class PassRecord:
    name: str
    seconds: float
    nodes_before: int
    nodes_after: int
    changed: bool
    stats: dict[str, Any]
    kernels_before: int = 0  # static estimates (analysis.estimate); the report also has exact totals
    kernels_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    drift: float | None = None  # max relative output change vs. the graph before the pass (LEPTON_VERIFY)
