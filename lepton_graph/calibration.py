"""Calibration for int8-static: run the float model over the user's examples and fix each layer's input range.

``compile(model, quantize="int8-static", calibration=examples)`` calibrates once, when its first call compiles:
``calibrate_graph`` runs the examples through the graph the quantize pass is about to change, compiled for fp32 with
every int8-static layer's input as an extra output; examples that do not fit that call (other shapes without
``dynamic=True``) or a model Dynamo captures take ``calibrate`` instead: a forward pre-hook on every ``nn.Linear``
and ``nn.Conv2d`` (groups 1) the config quantizes statically. Either way each layer's inputs feed an observer keyed
by the layer's name (the module path, as ``named_modules()`` and the quantize pass name it). The observers:

- ``minmax``: the exact min and max seen (no value is clipped; one outlier widens every step);
- ``percentile``: the ``percentile`` / ``100 - percentile`` quantiles (outliers clip, the rest gets finer steps);
- ``mse``: the range, shrunk from min-max by a factor searched on a grid, that minimizes the mean squared error of
  quantizing then dequantizing the observed values.

With ``QuantConfig(smooth_alpha=...)`` (SmoothQuant) calibration makes two passes: the first takes each layer's
per-input-channel max |x|, from which the smoothing factors s follow (one s for the layers that read the same
tensor, such as Q/K/V, which the compiler merges into one GEMM); the second observes both x and x / s, so the
compiler can keep smoothing only for the layers it helps (passes/quantize.py compares each layer's own error both
ways).

Percentile and MSE work on a bounded random subsample of the observed values (seeded: the same examples give the
same ranges); min and max are always exact, and no estimate lies outside them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import InputError, UnsupportedError
from .ir import Graph, Op
from .ir.defs.quant import channel_absmax, quantize_u8_static, smooth_factors, static_qparams
from .passes.base import PassOptions
from .passes.quantize import OBSERVERS, QuantConfig, layer_names, static_layers

# values kept per layer for the percentile and MSE observers, and per example at most
_SAMPLE_CAP = 1 << 17
_PER_CALL = 1 << 14
_MSE_GRID = 40


class Observer:
    """Running range of one layer's input; ``range()`` is what int8-static quantizes over."""

    def __init__(self, kind: str, percentile: float, seed: int) -> None:
        self.kind, self.percentile = kind, percentile
        self.lo, self.hi = float("inf"), float("-inf")
        self.calls = 0
        self._kept: list[torch.Tensor] = []
        self._n_kept = 0
        self._gen = torch.Generator().manual_seed(seed)

    def observe(self, x: torch.Tensor) -> None:
        x = x.detach().reshape(-1)
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        self.calls += 1
        if x.numel() == 0:
            return
        lo, hi = (float(t) for t in torch.aminmax(x))
        if not (math.isfinite(lo) and math.isfinite(hi)):  # rare: only then pay for dropping inf / nan
            x = x[torch.isfinite(x)]
            if x.numel() == 0:
                return
            lo, hi = (float(t) for t in torch.aminmax(x))
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        if self.kind == "minmax" or self._n_kept >= _SAMPLE_CAP:
            return
        take = min(_PER_CALL, x.numel(), _SAMPLE_CAP - self._n_kept)
        if take == x.numel():
            kept = x.clone()
        else:  # drawn with replacement: a permutation of every index cost more than the forward it observes
            kept = x[torch.randint(x.numel(), (take,), generator=self._gen)]
        self._kept.append(kept)
        self._n_kept += take

    def range(self) -> tuple[float, float]:
        if self.lo > self.hi:  # called, but never with a finite value
            return 0.0, 0.0
        if self.kind == "minmax" or not self._kept:
            return self.lo, self.hi
        sample = torch.cat(self._kept)
        if self.kind == "percentile":
            p = self.percentile / 100.0
            q = torch.quantile(sample.double(), torch.tensor([1.0 - p, p], dtype=torch.float64))
            return max(self.lo, float(q[0])), min(self.hi, float(q[1]))
        return _mse_range(sample, self.lo, self.hi)


def _mse_range(sample: torch.Tensor, lo: float, hi: float) -> tuple[float, float]:
    """The shrink of [lo, hi] (factor in (0, 1]) whose u8 grid reproduces ``sample`` with the least squared error."""
    best, best_err = (lo, hi), float("inf")
    for i in range(_MSE_GRID):
        f = 1.0 - i / _MSE_GRID * 0.9  # 1.0 down to 0.1225
        cand = (lo * f, hi * f)
        scale, zero = static_qparams(*cand)
        deq = (quantize_u8_static(sample, scale, zero).to(torch.float32) - zero) * scale
        err = float((deq - sample).square().mean())
        if err < best_err:
            best, best_err = cand, err
    return best


def _input(args: tuple, kwargs: dict) -> torch.Tensor | None:
    x = args[0] if args else kwargs.get("input")
    return x if isinstance(x, torch.Tensor) else None


def _hook(obs: Observer, smooth: torch.Tensor | None = None) -> Any:
    def hook(_mod: Any, args: tuple, kwargs: dict) -> None:
        x = _input(args, kwargs)
        if x is not None:
            obs.observe(x if smooth is None else x.detach() / smooth)

    return hook


@dataclass
class Calibration:
    """What calibration fixed, by module path: input ranges, and with SmoothQuant each layer's factors s with the
    range of x / s."""

    ranges: dict[str, tuple[float, float]]
    smooth: dict[str, tuple[torch.Tensor, tuple[float, float]]] = field(default_factory=dict)
    # calibrate_graph given the example inputs: the fp32 graph's outputs on them, and each calibrated layer's input
    # (by Value of the graph calibrated), which the quantize pass measures layer errors on
    example_outputs: list[Any] | None = None
    layer_inputs: dict[Any, torch.Tensor] = field(default_factory=dict)


class Inputs:
    """One call's inputs, positional and keyword together: ``Inputs(ids, attention_mask=mask)`` is the call
    ``model(ids, attention_mask=mask)``. For ``calibration=``, ``eval=`` and example inputs, where a tuple says
    positional arguments only and a dict keyword arguments only."""

    __slots__ = ("args", "kwargs")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"Inputs({len(self.args)} positional, keywords {sorted(self.kwargs)})"


def as_call(example: Any, i: int) -> tuple[tuple, dict]:
    """One example as the model is called: ``Inputs(*args, **kwargs)``, a tuple of positional args, a dict of keyword
    args, or a single tensor (one positional arg)."""
    if isinstance(example, Inputs):
        return example.args, dict(example.kwargs)
    if isinstance(example, dict):
        return (), example
    if isinstance(example, tuple):
        return example, {}
    if isinstance(example, torch.Tensor):
        return (example,), {}
    raise InputError(
        f"calibration example {i} is a {type(example).__name__}: give a tuple of positional arguments, a dict of "
        "keyword arguments, a single tensor or lepton_graph.Inputs(*args, **kwargs), as the model is called"
    )


def _run(model: Any, calls: list[tuple[tuple, dict]]) -> None:
    with torch.no_grad():
        for i, (args, kwargs) in enumerate(calls):
            try:
                model(*args, **kwargs)
            except Exception as e:
                raise InputError(f"calibration example {i}: the model rejects it: {type(e).__name__}: {e}") from e


def _smoothing(
    model: Any, linears: dict[str, torch.nn.Linear], calls: list[tuple[tuple, dict]], alpha: float
) -> dict[str, Any]:
    """Pass 1 of SmoothQuant calibration: per layer, s from its inputs' per-channel max |x| and the weights of every
    layer reading the same tensor."""
    absmax: dict[str, torch.Tensor] = {}
    # the layers reading the same tensor object in the first example's forward; the tensors are held until the
    # pass ends, so a freed input's address (or id) cannot be reused by another layer's input and group them
    readers: dict[int, tuple[torch.Tensor, list[str]]] = {}
    seen: set[str] = set()

    def hook_for(name: str) -> Any:
        def hook(_mod: Any, args: tuple, kwargs: dict) -> None:
            x = _input(args, kwargs)
            if x is None or x.shape[-1] == 0:
                return
            if name not in seen:
                seen.add(name)
                readers.setdefault(id(x), (x, []))[1].append(name)
            a = channel_absmax(x)
            absmax[name] = torch.maximum(absmax[name], a) if name in absmax else a

        return hook

    handles = [mod.register_forward_pre_hook(hook_for(n), with_kwargs=True) for n, mod in linears.items()]
    try:
        _run(model, calls)
    finally:
        for h in handles:
            h.remove()
    groups = [names for _, names in readers.values()]
    readers.clear()
    smooth: dict[str, Any] = {}
    for names in groups:
        s = smooth_factors([absmax[n] for n in names], [linears[n].weight for n in names], alpha)
        smooth.update(dict.fromkeys(names, s))
    return smooth


def _calibrated(mod: Any) -> bool:
    """The modules whose inputs int8-static calibrates: what the quantize pass can turn into int8 kernels."""
    return isinstance(mod, torch.nn.Linear) or (isinstance(mod, torch.nn.Conv2d) and mod.groups == 1)


def calibration_calls(examples: Iterable[Any]) -> list[tuple[tuple, dict]]:
    """The calibration examples as (args, kwargs) calls; an empty set or an example of the wrong form raises."""
    calls = [as_call(e, i) for i, e in enumerate(examples)]
    if not calls:
        raise InputError("calibration is empty: int8-static needs at least one example input")
    return calls


def calibrate(model: Any, examples: Iterable[Any], cfg: QuantConfig) -> Calibration:
    """Each statically quantized nn.Linear's calibrated input range (and, with cfg.smooth_alpha, its smoothing
    factors), by module path, from forward hooks on the eager model (``calibrate_graph`` is the compiled path)."""
    return calibrate_calls(model, calibration_calls(examples), cfg)


def calibrate_calls(model: Any, calls: list[tuple[tuple, dict]], cfg: QuantConfig) -> Calibration:
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedError(
            "int8-static calibrates the inputs of nn.Linear modules: compile an nn.Module, not a plain function"
        )
    layers = {
        name: mod
        for name, mod in model.named_modules()
        if _calibrated(mod) and cfg.scheme_for([name])[0] == "int8-static"
    }
    if not layers:
        raise UnsupportedError(
            "int8-static: the model has no nn.Linear or nn.Conv2d (groups 1) layer the config quantizes statically"
        )
    linears = {name: mod for name, mod in layers.items() if isinstance(mod, torch.nn.Linear)}
    smooth = _smoothing(model, linears, calls, cfg.smooth_alpha) if cfg.smooth_alpha is not None else {}
    seeds = {name: i for i, (name, _) in enumerate(model.named_modules())}
    observers: dict[str, Observer] = {}
    smoothed: dict[str, Observer] = {}
    handles = []
    for name, mod in layers.items():
        seed = seeds[name]
        obs = observers[name] = Observer(cfg.observer, cfg.percentile, seed)
        handles.append(mod.register_forward_pre_hook(_hook(obs), with_kwargs=True))
        if name in smooth:
            sob = smoothed[name] = Observer(cfg.observer, cfg.percentile, seed)
            handles.append(mod.register_forward_pre_hook(_hook(sob, smooth[name]), with_kwargs=True))
    try:
        _run(model, calls)
    finally:
        for h in handles:
            h.remove()
    ranges = {name: obs.range() for name, obs in observers.items() if obs.calls}
    return Calibration(ranges, {n: (smooth[n], obs.range()) for n, obs in smoothed.items() if n in ranges})


@dataclass
class CalibrationRun:
    """Calibration on the compiled fp32 graph (``calibrate_graph``): every example as the graph inputs of the
    variant being compiled; compile_captured fills in what they fixed and how it went (for the report)."""

    inputs: list[list[Any]]
    result: Calibration | None = None
    info: dict[str, Any] = field(default_factory=dict)


def calibrate_graph(
    graph: Graph,
    opts: PassOptions,
    inputs: Sequence[Sequence[Any]],
    lower: Callable[[Graph], Callable[..., tuple[Any, ...]]],
    example: Sequence[Any] | None = None,
) -> Calibration:
    """``calibrate``'s ranges and SmoothQuant factors, by layer name, measured on the graph the quantize pass is
    about to change rather than on the eager model: a copy of the graph returns the input of every layer the pass
    will make int8-static as an extra output, ``lower`` compiles it for fp32 (the rest of the pipeline and our
    kernels) and each example runs once (twice with SmoothQuant: factors first, then ranges). Layers are found in
    the IR, so functional linears calibrate too, and layers that read one value share one set of factors. Given
    ``example`` (the inputs the variant is compiled for, not a calibration example), it runs once more for the
    fp32 outputs and layer inputs the quantize pass measures errors on."""
    cfg: QuantConfig = opts.quantize
    nodes = static_layers(graph, opts)
    if not nodes:
        return Calibration({})
    taps = list(dict.fromkeys(n.inputs[0] for n in nodes))
    # the layer names reading each tap, once each (a layer called twice on one value is one name)
    names = [
        list(dict.fromkeys(name for n in nodes if n.inputs[0] is t for name in layer_names(graph, n))) for t in taps
    ]
    copy, vmap = graph.copy()
    first = len(copy.outputs)
    copy.outputs = [*copy.outputs, *(vmap[t] for t in taps)]
    run = lower(copy)
    example_outputs, layer_inputs = None, {}
    if example is not None:
        with torch.no_grad():
            outs = run(*example)
        example_outputs, layer_inputs = list(outs[:first]), dict(zip(taps, outs[first:]))

    def forwards() -> Iterator[tuple[torch.Tensor, ...]]:
        with torch.no_grad():
            for i, xs in enumerate(inputs):
                try:
                    yield run(*xs)[first:]
                except Exception as e:
                    raise InputError(f"calibration example {i}: {type(e).__name__}: {e}") from e

    factors: dict[int, torch.Tensor] = {}
    if cfg.smooth_alpha is not None:
        counts: dict[str, int] = {}
        for group in names:
            for name in group:
                counts[name] = counts.get(name, 0) + 1
        readers = [[n for n in nodes if n.inputs[0] is t and n.op is Op.LINEAR] for t in taps]
        absmax: dict[int, torch.Tensor] = {}
        for outs in forwards():
            for j, x in enumerate(outs):
                if readers[j] and x.shape[-1]:
                    a = channel_absmax(x)
                    absmax[j] = torch.maximum(absmax[j], a) if j in absmax else a
        for j, a in absmax.items():
            if all(counts[name] == 1 for name in names[j]):  # a layer called on two values has no one s
                weights = [graph.constant(n.inputs[1]) for n in readers[j]]
                factors[j] = smooth_factors([a], weights, cfg.smooth_alpha)  # type: ignore[arg-type]
    order = {name: i for i, name in enumerate(dict.fromkeys(name for group in names for name in group))}
    observers = {name: Observer(cfg.observer, cfg.percentile, seed) for name, seed in order.items()}
    smoothed = {name: Observer(cfg.observer, cfg.percentile, order[name]) for j in factors for name in names[j]}
    for outs in forwards():
        for j, x in enumerate(outs):
            for name in names[j]:
                observers[name].observe(x)
            if j in factors:
                xs = x / factors[j]
                for name in names[j]:
                    smoothed[name].observe(xs)
    ranges = {name: obs.range() for name, obs in observers.items() if obs.calls}
    smooth = {name: (factors[j], smoothed[name].range()) for j in factors for name in names[j] if name in ranges}
    return Calibration(ranges, smooth, example_outputs, layer_inputs)


def check_calibration(quantize: QuantConfig | None, calibration: Any) -> None:
    """int8-static needs calibration data; other schemes take none (a silently unused argument hides a mistake)."""
    static = quantize is not None and quantize.uses("int8-static")
    if static and calibration is None:
        raise UnsupportedError(
            "quantize='int8-static' needs calibration=: an iterable of example inputs, each a tuple of positional "
            "args or a dict of keyword args as the model is called"
        )
    if not static and calibration is not None:
        raise UnsupportedError("calibration= is only used by quantize='int8-static' (a QuantConfig that uses it)")


__all__ = [
    "OBSERVERS",
    "Calibration",
    "CalibrationRun",
    "Inputs",
    "Observer",
    "as_call",
    "calibrate",
    "calibrate_calls",
    "calibrate_graph",
    "calibration_calls",
    "check_calibration",
]
