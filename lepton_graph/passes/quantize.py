"""Quantization (opt-in): linear layers and convolutions with constant weights become QLINEAR / QCONV2D nodes with int8
weights (WQLINEAR for the weight-only schemes, which apply to linear layers only). Convolutions: groups 1; int8-dynamic
quantizes each image at run time (per row makes no sense for a window over rows).

``int8-dynamic``: weights int8, symmetric, one scale per output channel, quantized here once; activations quantized per
row at run time by the kernel (ir/defs/quant.py has the exact semantics). ``int8-weight`` / ``int4-weight``
(weight-only, WQLINEAR): activations stay float32; int8 weights symmetric per output channel (or per group), int4
asymmetric per group of ``QuantConfig.group`` k (default 128), two per byte. ``int8-static``: the same weights;
activations quantized with one scale and zero point per layer, from the input range calibrated before compiling
(``PassOptions.act_ranges``, lepton_graph/calibration.py); a layer without a calibrated range (not called as an
nn.Linear or nn.Conv2d during calibration) takes int8-dynamic, and the report says so. Layers are named by their
weight's parameter path without ``.weight`` (``encoder.layer.0.attention.output.dense``; merged Q/K/V siblings as
``...query+key+value``; a conv with a folded BatchNorm by the conv's path) and matched by ``exclude`` / ``layers``
patterns (fnmatch) against any of those names.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..ir import DType, Graph, Node, Op, interpret
from ..ir.defs.quant import (
    channel_absmax,
    quantize_per_channel,
    quantize_weight_groups,
    smooth_factors,
    static_qparams,
    weight_scale_per_channel,
)
from ..ir.metrics import output_error
from ..ir.registry import run_reference
from .base import PassOptions, PassResult
from .quant_budget import AccuracyBudget, fake_quant_layer, fit_budget, per_channel_int8

SCHEMES = ("int8-dynamic", "int8-static", "int8-weight", "int4-weight")
AVAILABLE = SCHEMES
WEIGHT_ONLY = {"int8-weight": 8, "int4-weight": 4}  # scheme -> bits
DEFAULT_INT4_GROUP = 128
OBSERVERS = ("minmax", "percentile", "mse")
FLOAT = ("fp32",)  # a per-layer choice that keeps the layer unquantized


@dataclass(frozen=True)
class QuantConfig:
    """What to quantize and how. ``lepton_graph.compile(model, quantize="int8-dynamic")`` is
    ``QuantConfig("int8-dynamic")``.

    scheme: the default scheme of every linear layer with a constant weight.
    exclude: layer-name patterns kept in float (fnmatch, e.g. ``"*.classifier"``).
    layers: per-layer scheme overrides, pattern -> scheme or "fp32"; the first matching pattern wins.
    min_weight_elements: smaller weights stay float (their GEMMs are too small for quantization to pay).
    observer: how int8-static fixes an input range from the calibration examples: "minmax", "percentile" (the
    ``percentile`` and ``100 - percentile`` quantiles) or "mse" (the clipped range with the least quantization
    error); see lepton_graph/calibration.py.
    group: k per scale of the weight-only schemes: int4-weight 32, 64, 128 (the default) or another multiple of 8;
    int8-weight 0 (one scale per output channel, the default) or a multiple of 4.
    smooth_alpha: each layer's input channels are divided by s = max|x_j|^alpha / max|W_j|^(1 - alpha) and its
    weight's columns multiplied by it (0.5 is the usual choice; None: off). For int8 activations (SmoothQuant) it
    moves activation outliers into the weights; for the weight-only schemes (AWQ-style) it gives the channels that
    carry large activations finer weight steps. s comes from the calibration (int8-static) or the example inputs;
    layers reading the same tensor share it; a layer keeps it only where it lowers its own error.
    accuracy_budget: a bound on the outputs' error against fp32 on the example inputs, ``{"rel_l2": 0.01}`` (or
    max_abs / max_rel) or ``(fn(outputs_fp32, outputs_quant) -> float, threshold)``; the most sensitive layers stay
    float until it holds (passes/quant_budget.py). None: every layer as configured; the error is still reported.
    """

    scheme: str = "int8-dynamic"
    exclude: tuple[str, ...] = ()
    layers: dict[str, str] = field(default_factory=dict)
    min_weight_elements: int = 0
    observer: str = "minmax"
    percentile: float = 99.99
    group: int | None = None
    smooth_alpha: float | None = None
    accuracy_budget: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "accuracy_budget", AccuracyBudget.of(self.accuracy_budget))
        if self.smooth_alpha is not None and not 0.0 < float(self.smooth_alpha) < 1.0:
            raise ValueError(f"quantize: smooth_alpha must be in (0, 1), got {self.smooth_alpha!r}")
        if self.group is not None and (not isinstance(self.group, int) or self.group < 0):
            raise ValueError(f"quantize: group must be a non-negative int, got {self.group!r}")
        if self.group is not None and self.uses("int4-weight") and (self.group == 0 or self.group % 8):
            raise ValueError(
                f"quantize: int4-weight needs a group size that is a positive multiple of 8 (32, 64, 128), "
                f"got {self.group}"
            )
        if self.group is not None and self.uses("int8-weight") and self.group % 4:
            raise ValueError(
                f"quantize: int8-weight's group must be 0 (per channel) or a multiple of 4, got {self.group}"
            )
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if self.observer not in OBSERVERS:
            raise ValueError(f"quantize: observer is {self.observer!r}; known observers: {', '.join(OBSERVERS)}")
        if not 50.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"quantize: percentile must be in (50, 100], got {self.percentile}")
        for where, s in [("scheme", self.scheme), *((f"layers[{k!r}]", v) for k, v in self.layers.items())]:
            if s not in SCHEMES + FLOAT:
                raise ValueError(
                    f"quantize: {where} is {s!r}; known schemes: {', '.join(SCHEMES)} (or 'fp32' per layer)"
                )
            if s in SCHEMES and s not in AVAILABLE:
                raise NotImplementedError(
                    f"quantize: scheme {s!r} ({where}) is not available in this version; "
                    f"available: {', '.join(AVAILABLE)}"
                )

    @staticmethod
    def of(spec: Any) -> QuantConfig | None:
        """None, a scheme name or a QuantConfig -> a QuantConfig (or None: no quantization)."""
        if spec is None or isinstance(spec, QuantConfig):
            return spec
        if isinstance(spec, str):
            return QuantConfig(spec)
        raise TypeError(
            f"quantize must be a scheme name ({', '.join(SCHEMES)}) or a lepton_graph.QuantConfig, "
            f"not {type(spec).__name__}"
        )

    def group_for(self, scheme: str) -> int:
        """k per scale of a weight-only scheme (0: one scale per output channel)."""
        if self.group is not None:
            return self.group
        return DEFAULT_INT4_GROUP if scheme == "int4-weight" else 0

    def uses(self, scheme: str) -> bool:
        """Whether any layer can get ``scheme`` (the default or a per-layer override)."""
        return self.scheme == scheme or scheme in self.layers.values()

    def scheme_for(self, names: list[str]) -> tuple[str, str]:
        """(scheme, why) for a layer known by ``names``."""
        for pat in self.exclude:
            if any(fnmatch.fnmatchcase(n, pat) for n in names):
                return "fp32", f"excluded by {pat!r}"
        for pat, scheme in self.layers.items():
            if any(fnmatch.fnmatchcase(n, pat) for n in names):
                return scheme, f"layers[{pat!r}]"
        return self.scheme, "default scheme"


def layer_names(graph: Graph, node: Node) -> list[str]:
    """The module paths a linear node comes from, from its weight's constant key."""
    key = node.inputs[1].const or node.name
    return [part.removesuffix(".bnfold").removesuffix(".merged").removesuffix(".weight") for part in key.split("+")]


LAYERS = (Op.LINEAR, Op.CONV2D)  # the ops this pass quantizes


def _quantizable(graph: Graph, node: Node) -> str | None:
    x, w = node.inputs[0], node.inputs[1]
    if node.op not in LAYERS:
        return "not a linear layer or convolution"
    if graph.constant(w) is None:
        return "weight is not a constant"
    if w.dtype is not DType.f32 or x.dtype is not DType.f32:
        return "not float32"
    if w.rank != (2 if node.op is Op.LINEAR else 4) or not w.is_static:
        return f"weight is not a static {2 if node.op is Op.LINEAR else 4}-D tensor"
    if node.op is Op.CONV2D and node.attrs.get("groups", 1) != 1:
        return f"grouped conv (groups={node.attrs.get('groups')}): no int8 kernel; stays float"
    if not str(w.device).startswith("cpu"):
        return f"weight is on {w.device}"
    return None


def _fakes(
    graph: Graph,
    attrs: dict[Node, dict[str, Any]],
    smooth: dict[Node, torch.Tensor] | None = None,
    int8: dict[Node, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[Node, Callable[[list[Any]], torch.Tensor]]:
    """Each layer's quantized form as an fp32 computation (quant_budget.fake_quant_layer: what the native kernels
    compute, to fp32 rounding; the exact float64 references cost ~10x as much), its weight quantized once: int8
    weights without smoothing are quantized into ``int8`` (per node), where the pass takes them from."""
    smooth = smooth or {}
    fakes = {}
    for n, a in attrs.items():
        w: torch.Tensor = graph.constant(n.inputs[1])  # type: ignore[assignment]
        per_channel = None
        if int8 is not None and "bits" not in a and n not in smooth:
            per_channel = int8[n] = per_channel_int8(w)
        fakes[n] = fake_quant_layer(w, a, smooth.get(n), per_channel)
    return fakes


def _layer_errors(
    graph: Graph,
    inputs: Sequence[Any],
    fakes: dict[Node, Callable[[list[Any]], torch.Tensor]],
    layer_inputs: Mapping[Any, Any] | None = None,
) -> dict[Node, float]:
    """Each layer's own quantization error: rel. L2 of its quantized form (``fakes``) vs the float layer, on the fp32
    model's activations: each layer alone on its input from ``layer_inputs`` when every layer has one (calibration
    on the compiled graph recorded them), else one run of the reference interpreter."""
    errors: dict[Node, float] = {}
    if layer_inputs is not None and all(
        n.inputs[0] in layer_inputs and not n.syms and all(graph.constant(v) is not None for v in n.inputs[1:])
        for n in fakes
    ):
        with torch.no_grad():
            for n, fake in fakes.items():
                args = [layer_inputs[n.inputs[0]], *(graph.constant(v) for v in n.inputs[1:])]
                out = run_reference(n, args, [])
                errors[n] = output_error([out], [fake(args)])["rel_l2"]
        return errors

    def observe(node: Node, args: list[Any], out: Any) -> None:
        if node in fakes:
            errors[node] = output_error([out], [fakes[node](args)])["rel_l2"]

    with torch.no_grad():
        interpret(graph, inputs, observe)
    return errors


def _nbytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else int(t.nbytes)


def _smoothing(
    graph: Graph, chosen: dict[Node, dict[str, Any]], opts: PassOptions, alpha: float
) -> tuple[dict[Node, tuple[torch.Tensor, dict[str, Any]]], dict[Node, str]]:
    """Each int8-activation layer's SmoothQuant candidate (s, its QLINEAR attrs with s): calibrated (int8-static:
    s and the range of x / s), else measured on the example inputs, one s per input tensor (over the weights of
    every layer reading it); and why a layer has none."""
    cands: dict[Node, tuple[torch.Tensor, dict[str, Any]]] = {}
    why_not: dict[Node, str] = {}
    calibrated = opts.act_smooth or {}
    measure: list[Node] = []
    for n in chosen:
        names = layer_names(graph, n)
        if n.op is not Op.LINEAR:
            why_not[n] = "SmoothQuant applies to linear layers"
            continue
        if chosen[n].get("act") == "static":
            if not all(name in calibrated for name in names):
                why_not[n] = "no calibrated smoothing factors"
                continue
            scale, zero = static_qparams(
                min(calibrated[name][1][0] for name in names), max(calibrated[name][1][1] for name in names)
            )
            cands[n] = (calibrated[names[0]][0], {**chosen[n], "scale": scale, "zero_point": zero})
        else:
            measure.append(n)
    if measure:
        absmax: dict[Node, torch.Tensor] = {}

        def observe(node: Node, args: list[Any], out: Any) -> None:
            if node in measure and args[0].shape[-1]:
                absmax[node] = channel_absmax(args[0])

        with torch.no_grad():
            interpret(graph, opts.example_inputs, observe)  # type: ignore[arg-type]
        by_input: dict[Any, list[Node]] = {}
        for n in absmax:
            by_input.setdefault(n.inputs[0], []).append(n)
        for nodes in by_input.values():
            s = smooth_factors([absmax[nodes[0]]], [graph.constant(n.inputs[1]) for n in nodes], alpha)  # type: ignore[misc]
            cands.update({n: (s, chosen[n]) for n in nodes})
    return cands, why_not


def _smoothed(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """W * s (columns scaled by the smoothing factors), for graph.add_derived."""
    return (w.detach().to(torch.float32) * s).contiguous()


def weight_only_part(w: torch.Tensor, *, bits: int, group: int, part: int) -> torch.Tensor:
    """One of (q, scale, zero) of quantize_weight_groups, for graph.add_derived (one tensor per constant); the last
    weight's three parts are kept, so quantizing a weight costs one pass, not three."""
    key = (w._version, bits, group)
    if _last_weight_only[0] is not w or _last_weight_only[1] != key:  # the tensor itself, never a reused address
        _last_weight_only[:] = [w, key, quantize_weight_groups(w, bits, group)]
    return _last_weight_only[2][part]


_last_weight_only: list[Any] = [None, None, None]


def _choice(graph: Graph, node: Node, cfg: QuantConfig, opts: PassOptions) -> tuple[str, str]:
    """(scheme, why) for one LINEAR or CONV2D: not quantizable, the config's scheme for its names, too small, or
    faster in float on the target (for the default scheme only: an explicit per-layer choice is kept)."""
    why_not = _quantizable(graph, node)
    if why_not:
        return "fp32", why_not
    scheme, why = cfg.scheme_for(layer_names(graph, node))
    if scheme != "fp32" and why == "default scheme" and opts.prefers_float is not None:
        faster = opts.prefers_float(node, graph)
        if faster:
            return "fp32", faster
    if scheme in WEIGHT_ONLY and node.op is Op.CONV2D:
        return "fp32", f"{scheme} quantizes linear layers only (a conv's weights are not what bounds its speed)"
    w = graph.constant(node.inputs[1])
    if scheme != "fp32" and w is not None and w.numel() < cfg.min_weight_elements:
        return "fp32", f"weight has {w.numel()} < min_weight_elements = {cfg.min_weight_elements}"
    return scheme, why


def static_layers(graph: Graph, opts: PassOptions) -> list[Node]:
    """The layers this pass will give calibrated (int8-static) activations: what calibration observes."""
    cfg: QuantConfig | None = opts.quantize
    if cfg is None:
        return []
    return [n for n in graph.nodes if n.op in LAYERS and _choice(graph, n, cfg, opts)[0] == "int8-static"]


def _static_range(names: list[str], ranges: Any) -> tuple[float, float] | str:
    """The calibrated input range of a layer (the union over merged siblings, which share the input), or why not."""
    found = [ranges[n] for n in names if ranges is not None and n in ranges]
    if len(found) < len(names):
        missing = next(n for n in names if ranges is None or n not in ranges)
        return (
            f"int8-static: no calibrated range for {missing!r} (not called as an nn.Linear or nn.Conv2d during "
            "calibration)"
        )
    return min(lo for lo, _ in found), max(hi for _, hi in found)


def _qlayer_attrs(graph: Graph, node: Node, scheme: str, opts: PassOptions) -> tuple[str, dict[str, Any], str | None]:
    """(scheme taken, the QLINEAR / WQLINEAR / QCONV2D attrs, why it differs from the one asked for)."""
    if scheme in WEIGHT_ONLY:
        cfg: QuantConfig = opts.quantize
        return scheme, {"bits": WEIGHT_ONLY[scheme], "group": cfg.group_for(scheme)}, None
    window = dict(node.attrs) if node.op is Op.CONV2D else {}
    if scheme == "int8-static":
        r = _static_range(layer_names(graph, node), opts.act_ranges)
        if isinstance(r, str):
            return "int8-dynamic", {**window, "act": "dynamic"}, r + "; int8-dynamic instead"
        scale, zero = static_qparams(*r)
        return scheme, {**window, "act": "static", "scale": scale, "zero_point": zero}, None
    return scheme, {**window, "act": "dynamic"}, None


def quantize_layers(graph: Graph, opts: PassOptions) -> PassResult:
    """LINEAR(x, W, b) -> QLINEAR(x, int8(W), scale(W), b) (or WQLINEAR), CONV2D(x, W, b) -> QCONV2D(x, int8(W),
    scale(W), b) per QuantConfig; records every layer's choice in graph.meta["quantization"] (and its own error,
    given ``opts.example_inputs``)."""
    cfg: QuantConfig | None = opts.quantize
    if cfg is None:
        return PassResult(graph, False)
    examples = opts.example_inputs
    choices = {n: _choice(graph, n, cfg, opts) for n in graph.nodes if n.op in LAYERS}
    chosen: dict[Node, dict[str, Any]] = {}  # quantized layers' node attrs; only these are measured
    for n, (scheme, why) in list(choices.items()):
        if scheme != "fp32":
            taken, chosen[n], changed = _qlayer_attrs(graph, n, scheme, opts)
            choices[n] = (taken, changed or why)
    errors: dict[Node, float] = {}
    int8: dict[Node, tuple[torch.Tensor, torch.Tensor]] = {}  # (scale, int8 weight) the fakes computed
    fakes = _fakes(graph, chosen, int8=int8) if examples is not None and chosen else {}
    if fakes:
        errors = _layer_errors(graph, examples, fakes, opts.layer_inputs)  # type: ignore[arg-type]
    # SmoothQuant where it lowers the layer's own error (dividing channels by s can also widen the steps of a
    # per-tensor static range for a layer without outliers: measured, not assumed)
    smooth: dict[Node, torch.Tensor] = {}
    if cfg.smooth_alpha is not None and chosen and examples is not None:
        cands, unsmoothed = _smoothing(graph, chosen, opts, cfg.smooth_alpha)
        for n, why in unsmoothed.items():
            choices[n] = (choices[n][0], f"{choices[n][1]}; not smoothed: {why}")
        alt_fakes = _fakes(graph, {n: a for n, (_, a) in cands.items()}, {n: s for n, (s, _) in cands.items()})
        alt = _layer_errors(graph, examples, alt_fakes, opts.layer_inputs) if cands else {}
        for n, (s, a) in cands.items():
            scheme, why = choices[n]
            if alt[n] < errors[n]:
                smooth[n], chosen[n], fakes[n] = s, a, alt_fakes[n]
                choices[n] = (scheme, f"{why}; smoothed (own rel_l2 {errors[n]:.3g} -> {alt[n]:.3g})")
                errors[n] = alt[n]
            else:
                choices[n] = (scheme, f"{why}; not smoothed (own rel_l2 {alt[n]:.3g} if smoothed)")
    budget_report: dict[str, Any] | None = None
    if cfg.accuracy_budget is not None and examples is not None and chosen:
        input_sets = list(opts.budget_inputs) if opts.budget_inputs else [examples]
        fit = fit_budget(graph, input_sets, fakes, errors, cfg.accuracy_budget)
        for n in fit.kept_float:
            choices[n] = ("fp32", f"accuracy budget: among the most sensitive (own rel_l2 {errors.get(n, 0.0):.3g})")
            del chosen[n]
            smooth.pop(n, None)
        budget_report = {
            "metric": cfg.accuracy_budget.name,
            "bound": cfg.accuracy_budget.bound,
            "achieved": fit.achieved,
            "met": fit.met,
            "kept_float": ["+".join(layer_names(graph, n)) for n in fit.kept_float],
            "forwards": fit.forwards,
            "inputs": "eval" if opts.budget_inputs else "example",
            "input_sets": len(input_sets),
        }
    layers: list[dict[str, Any]] = []
    for node in list(graph.nodes):
        if node.op not in LAYERS:
            continue
        names = layer_names(graph, node)
        entry: dict[str, Any] = {"layer": "+".join(names), "shape": list(node.inputs[1].shape)}
        layers.append(entry)
        scheme, why = choices[node]
        w = graph.constant(node.inputs[1])
        entry.update(scheme=scheme, why=why, weight_bytes=int(w.numel() * 4) if w is not None else 0)
        if scheme == "fp32" or w is None:
            entry["quant_bytes"] = entry["weight_bytes"]
            if node in errors:  # measured, then kept float by the accuracy budget
                entry["rel_l2_if_quantized"] = errors[node]
            continue
        key, wv = node.inputs[1].const, node.inputs[1]
        attrs = chosen[node]
        x = node.inputs[0]
        if node in smooth:  # x / s into the layer, its weight's columns times s
            sv = graph.add_constant(smooth[node], f"{key}.smooth")
            inv = graph.add_constant((1.0 / smooth[node]).contiguous(), f"{key}.smooth_inv")
            x = graph.add_node(Op.MUL, [x, inv], {}, before=node).out
            wv = graph.add_derived(_smoothed, [wv, sv], f"{key}.smoothed")
            entry["smoothed"] = True
        if "bits" in attrs:
            parts = [
                graph.add_derived(functools.partial(weight_only_part, part=i, **attrs), [wv], f"{key}.{name}")
                for i, name in enumerate((f"int{attrs['bits']}", "wscale", "wzero"))
            ]
            q = graph.add_node(Op.WQLINEAR, [x, *parts, *node.inputs[2:]], attrs, before=node)
            entry["quant_bytes"] = sum(_nbytes(graph.constant(v)) for v in parts)
            entry["group"] = attrs["group"]
        else:
            done = int8.get(node) if node not in smooth else None  # the fakes' quantization of this weight
            scale = graph.add_derived(weight_scale_per_channel, [wv], f"{key}.scale", None if done is None else done[0])
            wq = graph.add_derived(quantize_per_channel, [wv, scale], f"{key}.int8", None if done is None else done[1])
            op = Op.QCONV2D if node.op is Op.CONV2D else Op.QLINEAR
            q = graph.add_node(op, [x, wq, scale, *node.inputs[2:]], attrs, before=node)
            entry["quant_bytes"] = int(graph.constants[wq.const].numel() + graph.constants[scale.const].numel() * 4)  # type: ignore[index]
            if attrs["act"] == "static":
                entry.update(act_scale=attrs["scale"], act_zero_point=attrs["zero_point"])
        graph.replace_all_uses(node.out, q.out)
        entry["node"] = q.name
        if node in errors:
            entry["rel_l2"] = errors[node]
    if any(e["scheme"] != "fp32" for e in layers):
        graph.remove_dead()
    graph.meta["quantization"] = {"scheme": cfg.scheme, "layers": layers}
    if budget_report is not None:
        graph.meta["quantization"]["budget"] = budget_report
    return PassResult(
        graph,
        any(e["scheme"] != "fp32" for e in layers),
        {"quantized": sum(e["scheme"] != "fp32" for e in layers), "layers": len(layers)},
    )
