"""Compile reports: what was captured, how it was partitioned, what fell back to torch and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RegionReport:
    """One compiled graph (the whole model via torch.export, or one Dynamo region)."""

    frontend: str
    nodes: int = 0
    partitions: int = 0
    native_nodes: int = 0
    fallback_nodes: int = 0
    fallback_ops: dict[str, int] = field(default_factory=dict)  # op -> nodes run by torch
    unregistered_ops: dict[str, int] = field(default_factory=dict)  # torch operators the IR does not model
    fallback_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    kernels_per_call: int = 0
    capture_s: float = 0.0
    passes_s: float = 0.0
    lower_s: float = 0.0
    passes: list[dict[str, Any]] = field(default_factory=list)
    kernels_before: int = 0  # kernels per forward of the captured graph, and after the pass pipeline
    kernels_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    first_drifting_pass: str | None = None  # LEPTON_VERIFY: the first pass moving outputs beyond tolerance
    lowering_drift: float | None = None
    partition_table: list[dict[str, Any]] = field(default_factory=list)
    # compile(quantize=...): scheme, per layer {layer, scheme, why, weight_bytes, quant_bytes, rel_l2}, and
    # model_error {rel_l2, max_rel} of the outputs against the fp32 graph on the example inputs
    quantization: dict[str, Any] | None = None


@dataclass
class VariantReport:
    signature: str
    reason: str  # why this variant was compiled ("first call", "args[0] shape [1, 8] -> [2, 8]", ...)
    frontend: str = ""
    compile_s: float = 0.0
    regions: list[RegionReport] = field(default_factory=list)
    capture_fallback: str | None = None  # why the export frontend was not used, if it was not
    compile_error: str | None = None  # set when compiling failed and this signature runs through torch

    def total(self, key: str) -> Any:
        return sum(getattr(r, key) for r in self.regions)


@dataclass
class CompileReport:
    variants: list[VariantReport] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)  # signatures sent to the fallback path (cache full)
    cache_limit: int = 0

    @property
    def latest(self) -> VariantReport | None:
        return self.variants[-1] if self.variants else None

    def as_dict(self) -> dict[str, Any]:
        v = self.latest
        fallback_ops: dict[str, int] = {}
        unregistered: dict[str, int] = {}
        reasons: dict[str, dict[str, int]] = {}
        for r in v.regions if v else []:
            for op, c in r.fallback_ops.items():
                fallback_ops[op] = fallback_ops.get(op, 0) + c
            for op, why in r.fallback_reasons.items():
                for text, c in why.items():
                    reasons.setdefault(op, {})[text] = reasons.get(op, {}).get(text, 0) + c
            for op, c in r.unregistered_ops.items():
                unregistered[op] = unregistered.get(op, 0) + c
        return {
            "frontend": v.frontend if v else None,
            "signature": v.signature if v else None,
            "regions": len(v.regions) if v else 0,
            "partitions": v.total("partitions") if v else 0,
            "nodes": v.total("nodes") if v else 0,
            "native_nodes": v.total("native_nodes") if v else 0,
            "fallback_nodes": v.total("fallback_nodes") if v else 0,
            "fallback_ops": fallback_ops,
            "fallback_reasons": reasons,
            "unregistered_ops": unregistered,
            "kernels_per_call": v.total("kernels_per_call") if v else 0,
            "kernels_before_passes": v.total("kernels_before") if v else 0,
            "kernels_after_passes": v.total("kernels_after") if v else 0,
            "first_drifting_pass": next((r.first_drifting_pass for r in v.regions if r.first_drifting_pass), None)
            if v
            else None,
            "compile_s": v.compile_s if v else 0.0,
            "capture_fallback": v.capture_fallback if v else None,
            "compile_error": v.compile_error if v else None,
            "recompiles": [{"signature": x.signature, "reason": x.reason} for x in self.variants],
            "cache_overflow": list(self.overflow),
            "cache_limit": self.cache_limit,
            "variants": [asdict(x) for x in self.variants],
            "quantization": _merge_quantization(v.regions) if v else None,
        }

    def __str__(self) -> str:
        d = self.as_dict()
        rows = [
            ("frontend", d["frontend"]),
            ("signature", d["signature"]),
            ("graph regions", d["regions"]),
            ("nodes", d["nodes"]),
            ("partitions", d["partitions"]),
            ("native nodes", d["native_nodes"]),
            ("fallback nodes", d["fallback_nodes"]),
            ("kernels per call", d["kernels_per_call"]),
            ("planned kernels", f"{d['kernels_before_passes']} captured -> {d['kernels_after_passes']} after passes"),
            ("compile s", f"{d['compile_s']:.3f}"),
        ]
        if d["capture_fallback"]:
            rows.append(("export not used", d["capture_fallback"]))
        if d["compile_error"]:
            rows.append(("COMPILE FAILED", f"runs through torch: {d['compile_error']}"))
        w = max(len(k) for k, _ in rows)
        lines = ["lepton_graph compile report", "-" * 60]
        lines += [f"{k:<{w}}  {v}" for k, v in rows]
        if d["first_drifting_pass"]:
            lines.append(f"numeric drift beyond tolerance first introduced by: {d['first_drifting_pass']}")
        v = self.latest
        if v and v.regions and v.regions[0].passes:
            lines.append("passes:                          s    nodes     kernels(est)  drift")
            for p in v.regions[0].passes:
                drift = "" if p["drift"] is None else f"{p['drift']:.1e}"
                lines.append(
                    f"  {p['name']:<28} {p['seconds']:6.3f} {p['nodes_before']:4}->{p['nodes_after']:<4} "
                    f"{p['kernels_before']:5}->{p['kernels_after']:<5} {drift}"
                )
        if d["unregistered_ops"]:
            lines.append("operators the IR does not model (FALLBACK nodes):")
            lines += [f"  {op:<40} x{c}" for op, c in sorted(d["unregistered_ops"].items(), key=lambda t: -t[1])]
        if d["fallback_reasons"]:
            lines.append("fallback ops (run by torch), and why:")
            lines += [
                f"  {op:<40} x{c:<3} {why}"
                for op, whys in d["fallback_reasons"].items()
                for why, c in sorted(whys.items(), key=lambda t: -t[1])
            ]
        if d["quantization"]:
            lines += _quantization_lines(d["quantization"])
        if len(self.variants) > 1 or self.overflow:
            lines.append(f"compiled variants ({len(self.variants)} of at most {self.cache_limit}):")
            lines += [f"  {x.signature}  <- {x.reason}" for x in self.variants]
            lines += [f"  fallback path (cache full): {s}" for s in self.overflow]
        return "\n".join(lines)


def _merge_quantization(regions: list[RegionReport]) -> dict[str, Any] | None:
    """The quantization sections of a variant's regions as one: layers concatenated, the worst model error."""
    qs = [r.quantization for r in regions if r.quantization]
    if not qs:
        return None
    layers = [layer for q in qs for layer in q["layers"]]
    errors = [q["model_error"] for q in qs if q.get("model_error")]
    worst = max(errors, key=lambda e: e["rel_l2"]) if errors else None
    budgets = [q["budget"] for q in qs if q.get("budget")]
    measured = [layer for layer in layers if layer["scheme"] != "fp32" and "rel_l2" in layer]
    worst_layer = max(measured, key=lambda layer: layer["rel_l2"]) if measured else None
    return {
        "worst_layer": None
        if worst_layer is None
        else {"layer": worst_layer["layer"], "rel_l2": worst_layer["rel_l2"]},
        "scheme": qs[0]["scheme"],
        "calibration": next((q["calibration"] for q in qs if q.get("calibration")), None),
        "budget": budgets[0] if len(budgets) == 1 else (budgets or None),
        "layers": layers,
        "model_error": worst,
        "quantized_layers": sum(layer["scheme"] != "fp32" for layer in layers),
        "weight_bytes": sum(layer["weight_bytes"] for layer in layers),
        "quant_bytes": sum(layer["quant_bytes"] for layer in layers),
    }


def _quantization_lines(q: dict[str, Any]) -> list[str]:
    err = q["model_error"]
    lines = [
        f"quantization: {q['scheme']}, {q['quantized_layers']} of {len(q['layers'])} layers; weights "
        f"{_size(q['weight_bytes'])} -> {_size(q['quant_bytes'])}"
        + (f"; outputs vs fp32: rel L2 {err['rel_l2']:.2e}, max rel {err['max_rel']:.2e}" if err else "")
    ]
    cal = q.get("calibration")
    if cal:
        lines.append(
            f"calibration: {cal['examples']} examples on the {cal['on']} in {cal['seconds']:.3g} s"
            + (f" ({cal['why']})" if cal.get("why") else "")
        )
    if q.get("worst_layer"):
        w = q["worst_layer"]
        lines.append(f"largest own error: {w['layer']} (rel L2 {w['rel_l2']:.2e})")
    b = q.get("budget")
    for one in b if isinstance(b, list) else [b] if b else []:
        lines.append(
            f"accuracy budget {one['metric']} <= {one['bound']:.3g}: {'met' if one['met'] else 'NOT met'} at "
            f"{one['achieved']:.3g}, {len(one['kept_float'])} layers kept float ({one['forwards']} forwards)"
        )
    lines.append("  layer                                              scheme        rel L2  why")
    for layer in q["layers"]:
        e = layer.get("rel_l2")
        lines.append(
            f"  {layer['layer'][-50:]:<50} {layer['scheme']:<12} {'' if e is None else f'{e:.1e}':>7}  {layer['why']}"
        )
    return lines


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"
