"""The accuracy budget of quantization: keep the most sensitive layers in float until the model's error holds.

``compile(model, quantize=..., accuracy_budget={"rel_l2": 0.01})`` (or ``QuantConfig(accuracy_budget=...)``)
bounds the error of the quantized model's outputs against the fp32 graph's on the example inputs the variant is
compiled for, or on every input of ``compile(..., eval=[...])`` that fits the variant (the worst one counts). A
layer's sensitivity is its own error (rel. L2 of its quantized output vs its float output on the fp32 model's
activations, measured in one forward); layers are returned to float most sensitive first, and a binary search over
how many finds the fewest that meet the budget (about log2(layers) forwards of the graph per input set, each layer
either float or quantized: the quantized ones run as fake-quantized fp32 linears, which the native kernels equal to
fp32 rounding). The result (layers kept float, error reached, forwards run) goes into the quantization report; a
budget that even the all-float graph misses (a user metric) keeps every layer float and says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..ir import Graph, Node, interpret
from ..ir.defs.quant import (
    dequantize_weight_groups,
    quantize_per_channel,
    quantize_rows_u8,
    quantize_u8_static,
    quantize_weight_groups,
    weight_scale_per_channel,
)
from ..ir.metrics import output_error

METRICS = ("rel_l2", "max_abs", "max_rel")
Metric = Callable[[Sequence[Any], Sequence[Any]], float]


@dataclass(frozen=True)
class AccuracyBudget:
    """An upper bound on an error metric of the outputs (lower is better): one of METRICS (from
    ir/metrics.output_error) or a user function ``fn(outputs_fp32, outputs_quant) -> float``."""

    metric: str | Metric
    bound: float

    @staticmethod
    def of(spec: Any) -> AccuracyBudget | None:
        """None, ``{"rel_l2": 0.01}`` (one of METRICS), ``(fn, threshold)`` or an AccuracyBudget."""
        if spec is None or isinstance(spec, AccuracyBudget):
            return spec
        if isinstance(spec, Mapping) and len(spec) == 1:
            ((metric, bound),) = spec.items()
            if metric not in METRICS:
                raise ValueError(f"accuracy_budget: unknown metric {metric!r}; known: {', '.join(METRICS)}")
            return AccuracyBudget(metric, _bound(bound))
        if isinstance(spec, tuple) and len(spec) == 2 and callable(spec[0]):
            return AccuracyBudget(spec[0], _bound(spec[1]))
        raise ValueError(
            "accuracy_budget must be a one-entry dict such as {'rel_l2': 0.01} (metrics: "
            f"{', '.join(METRICS)}) or a pair (fn(outputs_fp32, outputs_quant) -> float, threshold), got {spec!r}"
        )

    @property
    def name(self) -> str:
        return self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", "metric")

    def measure(self, ref: Sequence[Any], out: Sequence[Any]) -> float:
        if isinstance(self.metric, str):
            return output_error(ref, out)[self.metric]
        return float(self.metric(list(ref), list(out)))


def _bound(v: Any) -> float:
    b = float(v)
    if not (math.isfinite(b) and b >= 0):
        raise ValueError(f"accuracy_budget: the bound must be a finite number >= 0, got {v!r}")
    return b


def fake_quant_layer(
    w: torch.Tensor,
    attrs: dict[str, Any],
    smooth: torch.Tensor | None = None,
    per_channel: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Callable[[list[Any]], torch.Tensor]:
    """The quantized layer (a linear, or a conv when ``attrs`` holds its window) as an fp32 computation (weights
    dequantized once, activations fake-quantized per call; with SmoothQuant factors, x / s through W * s).
    ``per_channel``: (scale, int8 weight) of ``w`` when the caller has them (int8 schemes without smoothing)."""
    conv = "stride" in attrs
    if smooth is not None:
        w = w * smooth
    if "bits" in attrs:
        q, s, z = quantize_weight_groups(w, attrs["bits"], attrs["group"])
        wd = dequantize_weight_groups(q, s, z, attrs["bits"], attrs["group"], w.shape[1])
    else:
        scale, q8 = per_channel if per_channel is not None and smooth is None else per_channel_int8(w)
        wd = q8.to(torch.float32) * scale.reshape(-1, *([1] * (w.dim() - 1)))
    act = attrs.get("act")

    def run(args: list[Any]) -> torch.Tensor:
        x = args[0].to(torch.float32)
        if smooth is not None:
            x = x / smooth
        if act == "dynamic":  # per row; a conv's rows are its images
            rows = (x.flatten(1) if x.dim() == 4 else x.reshape(1, x.numel())) if conv else x
            q8, s8, z8 = quantize_rows_u8(rows)
            x = ((q8.to(torch.float32) - z8.unsqueeze(-1).to(torch.float32)) * s8.unsqueeze(-1)).reshape(x.shape)
        elif act == "static":
            x = quantize_u8_static(x, attrs["scale"], attrs["zero_point"]).to(torch.float32) - attrs["zero_point"]
            x = x * attrs["scale"]
        if conv:
            bias = args[2] if len(args) > 2 else None
            return torch.conv2d(x, wd, bias, attrs["stride"], attrs["padding"], attrs["dilation"], 1)
        return torch.nn.functional.linear(x, wd, *args[2:])

    return run


def per_channel_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, int8 weight): symmetric per output channel, as QLINEAR / QCONV2D store it."""
    scale = weight_scale_per_channel(w)
    return scale, quantize_per_channel(w, scale)


@dataclass
class BudgetResult:
    kept_float: list[Node]
    achieved: float
    met: bool
    forwards: int


def fit_budget(
    graph: Graph,
    input_sets: Sequence[Sequence[Any]],
    fake: Mapping[Node, Callable[[list[Any]], torch.Tensor]],
    sensitivity: Mapping[Node, float],
    budget: AccuracyBudget,
) -> BudgetResult:
    """The fewest of the quantized layers (``fake``: each one's fake_quant_layer; most sensitive first) to keep
    float so that the outputs meet ``budget`` on every one of ``input_sets`` (the graph's inputs: the example
    call's, or an ``eval=`` set's)."""
    with torch.no_grad():
        refs = [interpret(graph, inputs) for inputs in input_sets]
        order = sorted(fake, key=lambda n: -sensitivity.get(n, 0.0))
        errors: dict[int, float] = {}

        def error_keeping(k: int) -> float:
            if k not in errors:
                keep = set(order[:k])
                sub = {n: f for n, f in fake.items() if n not in keep}
                errors[k] = max(
                    budget.measure(ref, interpret(graph, inputs, substitute=sub))
                    for ref, inputs in zip(refs, input_sets, strict=True)
                )
            return errors[k]

        if error_keeping(0) <= budget.bound:
            return BudgetResult([], errors[0], True, 1)
        lo, hi = 0, len(order)  # error_keeping(lo) misses; find the smallest hi that meets it
        if error_keeping(hi) > budget.bound:
            return BudgetResult(order, errors[hi], False, len(errors))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if error_keeping(mid) <= budget.bound:
                hi = mid
            else:
                lo = mid
        return BudgetResult(order[:hi], errors[hi], True, len(errors))
