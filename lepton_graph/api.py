"""compile(): the public entry point, as a call or a decorator; and the torch.compile backend "lepton"."""

from __future__ import annotations

import collections
import functools
import inspect
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from . import log
from .artifact import ExportPiece, input_leaves
from .artifact import write as write_artifact
from .calibration import Calibration, CalibrationRun, as_call, calibrate_calls, calibration_calls, check_calibration
from .compiler import compile_captured
from .config import config
from .errors import CaptureError, CompileFailedWarning, InputError, UnsupportedError
from .frontend.export import Captured, capture_export
from .ir import StructureChanged
from .passes.quantize import QuantConfig
from .report import CompileReport, RegionReport, VariantReport
from .runtime.guards import (
    Signature,
    Variant,
    VariantCache,
    call_items,
    check_compatible,
    explain_change,
    fast_key,
    flatten_call,
)
from .runtime.weights import CaptureInProgress, ModuleWeights, WeightWatch

# reports of graphs compiled through torch.compile(backend="lepton"), newest last
DYNAMO_REPORTS: collections.deque[RegionReport] = collections.deque(maxlen=64)


@dataclass(frozen=True)
class CompileOptions:
    device: str | None = None
    dynamic: bool = False
    cache_limit: int = 8
    frontend: str = "auto"  # auto | export | dynamo
    native: bool = True
    precision: str = "fp32"  # "fp32" | "bf16": bf16 lets native GEMMs use bf16 weights with fp32 accumulation
    quantize: QuantConfig | None = None
    freeze: bool = False  # weights never change: no per-call check
    # int8-static's calibration examples, as (args, kwargs) calls; run when the first variant compiles
    calibration_calls: tuple[tuple[tuple, dict], ...] = ()
    # int8-static: each calibrated layer's input range, by layer name (calibration.calibrate_graph / calibrate)
    act_ranges: dict[str, tuple[float, float]] | None = None
    # SmoothQuant: each calibrated layer's per-input-channel smoothing factors
    act_smooth: dict[str, tuple[torch.Tensor, tuple[float, float]]] | None = None
    # accuracy_budget's eval= set, as (args, kwargs) calls
    eval_calls: tuple[tuple[tuple, dict], ...] = ()


def _quant_config(spec: Any) -> QuantConfig | None:
    try:
        return QuantConfig.of(spec)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise UnsupportedError(str(e)) from e


def _fits(leaf: tuple, want: tuple, dynamic: bool) -> bool:
    """An eval= call's leaf against the compiled signature's: equal, or (dynamic) a tensor of the same rank, dtype
    and device."""
    if leaf == want:
        return True
    if not dynamic or leaf[0] == "py" or want[0] == "py":
        return False
    return len(leaf[0]) == len(want[0]) and leaf[1:] == want[1:]


def _with_budget(cfg: QuantConfig | None, budget: Any) -> QuantConfig | None:
    if budget is None:
        return cfg
    if cfg is None:
        raise UnsupportedError("accuracy_budget applies to quantization: pass quantize=... with it")
    try:
        return replace(cfg, accuracy_budget=budget)
    except ValueError as e:
        raise UnsupportedError(str(e)) from None


def _zeros_call(sig: Signature) -> tuple[tuple, dict]:
    """A call with ``sig``'s structure, Python values, dtypes and shapes, tensors all zeros (to compile a variant)."""
    flat = [leaf[2] if leaf[0] == "py" else torch.zeros(leaf[0], dtype=leaf[1], device=leaf[2]) for leaf in sig.leaves]
    args, kwargs = pytree.tree_unflatten(flat, sig.structure)  # type: ignore[arg-type]
    return tuple(args), dict(kwargs)


def compile(
    model: Any = None,
    /,
    *,
    device: str | torch.device | None = None,
    dynamic: bool = False,
    cache_limit: int | None = None,
    frontend: str | None = None,
    native: bool | None = None,
    precision: str = "fp32",
    quantize: str | QuantConfig | None = None,
    calibration: Iterable[Any] | None = None,
    accuracy_budget: Any = None,
    eval: Iterable[Any] | None = None,
    freeze: bool = False,
) -> Any:
    """Compile a model or function for inference.

    Use as ``compile(model)``, ``@compile`` or ``@compile(dynamic=True)`` on a function, an ``nn.Module``
    instance or an ``nn.Module`` subclass. The result has the model's call signature and keeps one compiled
    variant per input signature (shapes, dtypes, devices), at most ``cache_limit``; with ``dynamic=True``,
    sizes > 1 are compiled symbolically so one variant serves many batch sizes / sequence lengths.
    ``native=False`` runs everything through torch (the fallback path); ``precision="bf16"`` is the opt-in mixed
    precision mode (bf16 weights and products, fp32 accumulation and activations) where the CPU supports it.
    ``quantize="int8-dynamic"`` (or a ``QuantConfig``) runs linear layers on int8 weights with activations
    quantized per row at run time; ``report()`` then lists each layer's choice and the measured error vs fp32.
    ``quantize="int8-static"`` fixes each layer's activation scale ahead of time instead: ``calibration`` is an
    iterable of example inputs (each a tuple of positional args, a dict of keyword args or one tensor, as the model
    is called), run once when the first call compiles, through that call's graph compiled for fp32 (in eager
    instead when an example has other shapes than that call and ``dynamic`` is off, or Dynamo captures the model);
    ``QuantConfig(observer=...)`` picks how a range is chosen.
    ``quantize="int8-weight"`` / ``"int4-weight"`` quantize only the weights (int4 in groups of 128 by default,
    ``QuantConfig(group=...)``); activations stay float32. ``accuracy_budget={"rel_l2": 0.01}`` (or
    ``(fn, threshold)``) keeps the most sensitive layers float until the outputs' error against fp32 on the inputs
    being compiled for holds (or on every input of ``eval=[...]`` that fits the call: the worst counts); the report
    says which and the error reached.

    The compiled model follows its module: before each call, the parameters and buffers it was compiled from are
    compared with what they were (identity, version counter, storage), and what changed is re-folded and re-packed
    (an optimizer step, an in-place update, a replaced ``nn.Parameter``). ``freeze=True`` skips that check, for
    deployments whose weights never change: later updates are then NOT seen.
    """
    opts = CompileOptions(
        device=None if device is None else str(torch.device(device)),
        dynamic=bool(dynamic),
        cache_limit=config.cache_limit if cache_limit is None else int(cache_limit),
        frontend=frontend or config.frontend,
        native=config.native if native is None else bool(native),
        precision=precision,
        quantize=_with_budget(_quant_config(quantize), accuracy_budget),
        freeze=bool(freeze),
    )
    check_calibration(opts.quantize, calibration)
    if eval is not None:
        if opts.quantize is None or opts.quantize.accuracy_budget is None:
            raise UnsupportedError("eval= is the accuracy budget's input set: pass accuracy_budget=... with it")
        opts = replace(opts, eval_calls=tuple(as_call(e, i) for i, e in enumerate(eval)))
        if not opts.eval_calls:
            raise UnsupportedError("eval= is empty: give at least one example input")
    if opts.precision not in ("fp32", "bf16"):
        raise UnsupportedError(f"precision must be 'fp32' or 'bf16', not {opts.precision!r}")
    if opts.frontend not in ("auto", "export", "dynamo"):
        raise UnsupportedError(f"frontend must be 'auto', 'export' or 'dynamo', not {opts.frontend!r}")
    if opts.cache_limit < 1:
        raise UnsupportedError(f"cache_limit must be >= 1, got {opts.cache_limit}")
    if opts.device is not None and opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise UnsupportedError(f"device {opts.device!r} requested but torch sees no CUDA device")
    if model is None:
        return lambda m: _compile(m, opts, calibration)
    return _compile(model, opts, calibration)


def _compile(model: Any, opts: CompileOptions, calibration: Iterable[Any] | None = None) -> Any:
    if calibration is not None:
        if isinstance(model, type):
            raise UnsupportedError("int8-static calibrates a model instance: compile the instance, not its class")
        opts = replace(opts, calibration_calls=tuple(calibration_calls(calibration)))
    if isinstance(model, type) and issubclass(model, torch.nn.Module):

        @functools.wraps(model, updated=())
        def build(*args: Any, **kwargs: Any) -> CompiledModel:
            return CompiledModel(model(*args, **kwargs), opts)

        return build
    if isinstance(model, torch.nn.Module) or callable(model):
        return CompiledModel(model, opts)
    raise TypeError(f"compile() expects an nn.Module, an nn.Module subclass or a function, got {type(model).__name__}")


class _FunctionModule(torch.nn.Module):
    """Lets torch.export trace a plain function."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


# torch's tracing (fake tensor mode, torch.export, Dynamo) keeps process-global state, so two compiles at once fail
# each other's capture (measured: 8 threads' concurrent first calls of one model all raised "rejects these inputs").
# One compile at a time in a process; compiled variants run concurrently (tests/runtime/test_concurrency.py).
_COMPILE_LOCK = threading.RLock()


class CompiledModel:
    """The compiled callable. ``report()`` says what was compiled, what fell back to torch and why."""

    def __init__(self, model: Any, opts: CompileOptions) -> None:
        self.model = model
        self.options = opts
        self._module = model if isinstance(model, torch.nn.Module) else _FunctionModule(model)
        target = model.forward if isinstance(model, torch.nn.Module) else model
        try:
            self._signature: inspect.Signature | None = inspect.signature(target)
        except (TypeError, ValueError):
            self._signature = None
        if not isinstance(model, torch.nn.Module):
            functools.update_wrapper(self, model)
        self._cache = VariantCache(opts.cache_limit)
        self._report = CompileReport(cache_limit=opts.cache_limit)
        self._first: Signature | None = None
        self._overflow: set[Signature] = set()
        self._dynamo: Callable[..., Any] | None = None
        self._export_failed: str | None = None
        self._regions: list[RegionReport] | None = None
        self._recompiling: str | None = None  # why the next compile happens, when weights forced it
        self._dynamo_report: VariantReport | None = None  # where regions Dynamo compiles during a call report
        self._compile_output: list[Any] = []  # the result of a call that compiling already ran
        self._calibration_info: dict[str, Any] | None = None  # where int8-static's ranges came from
        self._update_lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = fast_key(args, kwargs)
        if key is not None:
            var = self._cache.fast.get(key)
            if var is not None:  # plain tensors: leaves are args then kwargs by name, as flatten_call orders them
                return var.run(args, kwargs, [*args, *(kwargs[k] for k in sorted(kwargs))] if kwargs else args)
        leaves, sig = flatten_call(args, kwargs)
        var = self._cache.lookup(sig)
        ran: list[Any] = []  # this call's result when compiling already ran it
        if var is None:
            with _COMPILE_LOCK:
                var = self._cache.lookup(sig)  # another thread's compile may have made it while this one waited
                if var is None:
                    var = self._miss(args, kwargs, leaves, sig)
                    ran, self._compile_output = self._compile_output, []
            if var is None:  # cache full: this signature alone runs through torch
                with torch.no_grad():
                    return self.model(*args, **kwargs)
        if key is not None and len(self._cache.fast) < 64 * self._cache.limit:
            self._cache.fast[key] = var
        if ran:  # compiling ran this call already (Dynamo): running it again would redo its side effects (a
            return ran.pop()  # second draw from the RNG)
        return var.run(args, kwargs, leaves)

    def report(self) -> CompileReport:
        return self._report

    def export(self, path: str | Path, example_inputs: Any = None) -> int:
        """Write the variant compiled for ``example_inputs`` (a tuple of positional arguments, a dict of keyword
        arguments or one tensor; default: the only variant) to one artifact file, loadable by
        ``lepton_graph.load`` without the model's code (lepton_graph/artifact/). Returns the file size in bytes."""
        if example_inputs is not None:
            args, kwargs = as_call(example_inputs, 0)
            _, sig = flatten_call(args, kwargs)
            var = self._cache.lookup(sig)
            if var is None:
                raise UnsupportedError("export: no variant was compiled for these inputs; call the model on them first")
        elif len(self._cache.variants) == 1:
            var = self._cache.variants[0]
        else:
            raise UnsupportedError(
                f"export: {len(self._cache.variants)} variants are compiled; pass the example inputs of the one "
                "to export"
            )
        if var.export is None:
            why = var.report.compile_error or var.report.capture_fallback or "captured by Dynamo (graph breaks)"
            raise UnsupportedError(f"export: this variant cannot be exported yet: {why}")
        return write_artifact(var.export, path)

    # -- compilation of a new variant
    def _miss(self, args: tuple, kwargs: dict, leaves: list[Any], sig: Signature) -> Variant | None:
        self._check_inputs(args, kwargs, sig)
        if self._cache.full():
            if sig not in self._overflow:
                self._overflow.add(sig)
                self._report.overflow.append(sig.describe())
                log.log("guards", "variant cache full (%d): %s runs through torch", self._cache.limit, sig.describe())
            return None
        if self._recompiling is not None:
            reason, self._recompiling = self._recompiling, None
        else:
            reason = "first call" if self._first is None else explain_change(self._closest(sig), sig)
        log.log("guards", "compiling variant for %s (%s)", sig.describe(), reason)
        t0 = time.perf_counter()
        vrep = VariantReport(sig.describe(), reason)
        try:
            var = self._compile_variant(args, kwargs, leaves, sig, vrep)
        except (InputError, UnsupportedError):
            raise
        except Exception as e:  # never a crash: this signature runs through torch, and says why
            self._reject_bad_inputs(args, kwargs, e)
            vrep.compile_error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            vrep.frontend = "torch (compile failed)"
            warnings.warn(
                f"lepton_graph could not compile {_name(self.model)} for {sig.describe()}; this input "
                f"signature runs through torch ({vrep.compile_error})",
                CompileFailedWarning,
                stacklevel=3,
            )
            var = Variant(sig, self._run_eager, vrep)
        vrep.compile_s = time.perf_counter() - t0
        if self._first is None:
            self._first = sig
        self._report.variants.append(vrep)
        self._cache.add(var)
        return var

    def _outgrown(self, sig: Signature, err: Exception, args: tuple, kwargs: dict) -> Any:
        """The dynamic variant ``sig`` matched failed on sizes it claimed to take (torch.export kept a dim symbolic
        but baked the first example's size into an op): ``sig`` gets a variant of its own, compiled now."""
        var = self._cache.lookup(sig)
        if var is None:
            raise err
        why = f"the dynamic variant for {var.signature.describe()} does not hold here ({type(err).__name__})"
        log.log("guards", "%s: %s", sig.describe(), why)
        self._cache.exclude(var, sig)
        self._recompiling = why
        return self(*args, **kwargs)

    def _recompile(self, sig: Signature, why: str, args: tuple, kwargs: dict) -> Any:
        """A weight changed that the compiled structure relied on: this signature is compiled again."""
        log.log("guards", "recompiling %s: %s", sig.describe(), why)
        self._cache.drop(sig)
        self._recompiling = f"weights changed: {why}"
        return self(*args, **kwargs)

    def update_weights(self, weights: Any, example_inputs: Any = None) -> int:
        """Serve new weights without stopping: ``weights`` is a state dict (name -> tensor, any subset of the
        model's) or the path of a safetensors file of one. They are checked (every name a weight of the model, the
        same shape and dtype), loaded into a copy of the model, compiled for every signature compiled so far (or for
        ``example_inputs``; int8-static calibrates again) and warmed, then switched in: calls in flight finish on
        the weights they started with, later calls get the new ones, no call sees a mix. The module you compiled is
        left as it was; from now on ``self.model`` is the copy (the one whose later updates are followed). A bad
        update raises InputError naming the weight, and the old weights keep serving. Returns the number of
        variants compiled for the new weights."""
        import copy

        if not isinstance(self.model, torch.nn.Module):
            raise UnsupportedError("update_weights: the compiled model is a function, not an nn.Module with weights")
        if isinstance(weights, (str, Path)):
            from safetensors.torch import load_file

            try:
                weights = load_file(str(weights))
            except Exception as e:  # noqa: BLE001 - a missing or malformed file is the caller's input
                raise InputError(f"update_weights: cannot read {str(weights)!r}: {e}") from None
        current = self.model.state_dict()
        for name, t in dict(weights).items():
            if name not in current:
                known = ", ".join(list(current)[:4])
                raise InputError(f"update_weights: {name!r} is not a weight of the model (its names: {known}, ...)")
            want = current[name]
            if not isinstance(t, torch.Tensor) or t.shape != want.shape or t.dtype != want.dtype:
                got = f"{t.dtype}{list(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
                raise InputError(f"update_weights: {name!r} is {got}, the model's is {want.dtype}{list(want.shape)}")
        with self._update_lock:  # one update at a time; calls never wait for it
            with _COMPILE_LOCK:  # a capture in progress swaps the module's parameters for stand-ins: not those
                module = copy.deepcopy(self.model)
            with torch.no_grad():
                module.load_state_dict(dict(weights), strict=False)
            opts = replace(self.options, act_ranges=None, act_smooth=None)  # int8-static: ranges of the new weights
            fresh = CompiledModel(module, opts)
            calls = [as_call(example_inputs, 0)] if example_inputs is not None else []
            calls += [] if calls else [_zeros_call(v.signature) for v in self._cache.variants]
            for args, kwargs in calls:
                fresh(*args, **kwargs)
            state = dict(fresh.__dict__)
            cache = state.pop("_cache")
            state.pop("_update_lock")
            self.__dict__.update(state)
            self._cache = cache  # last: a call takes either the old variants (old module) or the new ones
            return len(cache.variants)

    def refresh_weights(self) -> None:
        """Compile again on the next call: for weight updates no check can see (``p.data.mul_(...)`` bypasses
        the version counter). Other updates are followed without this."""
        self._cache = VariantCache(self.options.cache_limit)
        self._first = None
        self._dynamo = None

    def _run_eager(self, args: tuple, kwargs: dict, leaves: Sequence[Any]) -> Any:
        if not torch.is_grad_enabled():  # entering no_grad costs ~1.5 us even when it changes nothing
            return self.model(*args, **kwargs)
        with torch.no_grad():
            return self.model(*args, **kwargs)

    def _closest(self, sig: Signature) -> Signature:
        same = [v.signature for v in self._cache.variants if v.signature.structure == sig.structure]
        return same[-1] if same else self._cache.variants[-1].signature

    def _check_inputs(self, args: tuple, kwargs: dict, sig: Signature) -> None:
        if self._signature is not None:
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as e:
                raise InputError(f"bad arguments for {_name(self.model)}{self._signature}: {e}") from None
        if self.options.device is not None:
            want = torch.device(self.options.device)
            for n, leaf in zip(sig.names, sig.leaves):
                if leaf[0] != "py" and leaf[2].type != want.type:
                    raise InputError(f"argument {n}: expected device {want}, got {leaf[2]} (compiled for {want})")
        if self._first is not None:
            check_compatible(self._first, sig)

    def _compile_variant(
        self, args: tuple, kwargs: dict, leaves: list[Any], sig: Signature, vrep: VariantReport
    ) -> Variant:
        if self.options.frontend != "dynamo" and self._export_failed is None:
            try:
                cap = capture_export(self._module, args, kwargs, leaves, dynamic=self.options.dynamic)
            except CaptureError as e:
                if self.options.frontend == "export":
                    raise
                self._reject_bad_inputs(args, kwargs, e)
                self._export_failed = str(e)
                log.log("guards", "export failed, using Dynamo: %s", e)
            else:
                in_spec = pytree.tree_flatten(call_items(args, kwargs))[1]
                return self._export_variant(cap, sig, vrep, leaves, in_spec)
        vrep.capture_fallback = self._export_failed
        self._calibrate_eager("Dynamo captures this model: its regions' inputs are not the model's")
        return self._dynamo_variant(args, kwargs, sig, vrep)

    def _fitting(self, calls: Sequence[tuple[tuple, dict]], sig: Signature, tensor_idx: list[int]) -> list[Any]:
        """The graph inputs of each call that fits this variant (the same structure, Python values and tensor
        dtypes and ranks; the same shapes unless dynamic), None in place of each call that does not."""
        sets: list[Any] = []
        for args, kwargs in calls:
            leaves, esig = flatten_call(args, kwargs)
            fits = esig.structure == sig.structure and len(esig.leaves) == len(sig.leaves)
            fits = fits and all(_fits(a, b, self.options.dynamic) for a, b in zip(esig.leaves, sig.leaves))
            sets.append([leaves[i] for i in tensor_idx] if fits else None)
        return sets

    def _budget_inputs(self, sig: Signature, tensor_idx: list[int]) -> list[list[Any]] | None:
        """The graph inputs of each eval= call that fits this variant, or None without an eval= set."""
        if not self.options.eval_calls:
            return None
        sets = [s for s in self._fitting(self.options.eval_calls, sig, tensor_idx) if s is not None]
        if not sets:
            raise InputError(f"no eval= input fits the call being compiled ({sig.describe()})")
        return sets

    def _uncalibrated(self) -> bool:
        """int8-static with calibration examples that have not run yet (they run once per model)."""
        return bool(self.options.calibration_calls) and self.options.act_ranges is None

    def _calibration_run(self, sig: Signature, tensor_idx: list[int]) -> CalibrationRun | None:
        """int8-static not yet calibrated: the examples as this variant's graph inputs, to run on its compiled fp32
        graph; if one does not fit the variant (another shape, without dynamic=True), calibrate in eager now."""
        if not self._uncalibrated():
            return None
        sets = self._fitting(self.options.calibration_calls, sig, tensor_idx)
        misfit = next((i for i, s in enumerate(sets) if s is None), None)
        if misfit is None:
            return CalibrationRun(sets)
        self._calibrate_eager(
            f"calibration example {misfit} does not fit the call being compiled ({sig.describe()}; "
            "dynamic=True lets examples of other sizes run compiled)"
        )
        return None

    def _calibrate_eager(self, why: str) -> None:
        """Calibrate with forward hooks on the eager model (calibration.calibrate_calls); done once per model."""
        if not self._uncalibrated():
            return
        assert self.options.quantize is not None  # check_calibration: calibration comes with int8-static
        t0 = time.perf_counter()
        cal = calibrate_calls(self.model, list(self.options.calibration_calls), self.options.quantize)
        self._calibrated(
            cal,
            {
                "on": "eager",
                "why": why,
                "examples": len(self.options.calibration_calls),
                "seconds": time.perf_counter() - t0,
            },
        )

    def _calibrated(self, cal: Calibration, info: dict[str, Any]) -> None:
        """Later variants reuse these ranges (a layer's range is a property of the calibration set, not of one
        call's shapes); the report of every variant says where they came from."""
        self.options = replace(self.options, act_ranges=cal.ranges, act_smooth=cal.smooth)
        self._calibration_info = info

    def _reject_bad_inputs(self, args: tuple, kwargs: dict, err: Exception) -> None:
        """If eager rejects the inputs too, that is the user's error, not a capture limitation: say so."""
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the model's random ops draw nothing
                self.model(*args, **kwargs)
        except Exception as eager_err:
            raise InputError(
                f"{_name(self.model)} rejects these inputs: {type(eager_err).__name__}: {eager_err}"
            ) from err

    def _export_variant(
        self, cap: Captured, sig: Signature, vrep: VariantReport, leaves: list[Any], in_spec: Any
    ) -> Variant:
        device = self.options.device or _first_device(sig)
        tensor_idx = [i for i, leaf in enumerate(sig.leaves) if leaf[0] != "py"]
        calibration = self._calibration_run(sig, tensor_idx)
        compiled, rrep = compile_captured(
            cap,
            device=device,
            native=self.options.native,
            precision=self.options.precision,
            example_inputs=[leaves[i] for i in tensor_idx],
            quantize=self.options.quantize,
            act_ranges=self.options.act_ranges,
            act_smooth=self.options.act_smooth,
            budget_inputs=self._budget_inputs(sig, tensor_idx),
            calibration=calibration,
        )
        if calibration is not None and calibration.result is not None:
            self._calibrated(calibration.result, calibration.info)
        self._note_calibration(rrep)
        vrep.frontend = "export"
        vrep.regions.append(rrep)
        n_user, out_spec, mutations = cap.user_outputs, cap.out_spec, cap.mutations
        weights = None if self.options.freeze else ModuleWeights(self._module, cap.weights)

        def run(args: tuple, kwargs: dict, leaves: Sequence[Any]) -> Any:
            if weights is not None:
                try:
                    changed = weights.changed()
                except CaptureInProgress:  # another thread is exporting this module: its weights are stand-ins
                    with _COMPILE_LOCK:  # wait for that capture to put them back
                        changed = weights.changed()
                if changed is not None:
                    try:
                        compiled.refresh(changed)
                    except StructureChanged as e:
                        return self._recompile(sig, str(e), args, kwargs)
            inputs = [leaves[i] for i in tensor_idx]
            try:
                if torch.is_grad_enabled():
                    with torch.no_grad():
                        outs = compiled.run(*inputs)
                else:
                    outs = compiled.run(*inputs)
            except (InputError, UnsupportedError):
                raise
            except Exception as e:
                call_sig = flatten_call(args, kwargs)[1]
                if dims is None or call_sig == sig:
                    raise
                return self._outgrown(call_sig, e, args, kwargs)
            if mutations:
                for k, buf in mutations:
                    buf.copy_(outs[n_user + k])
                if weights is not None:
                    weights.snapshot()  # our own write-backs are not a weight change
            return pytree.tree_unflatten(list(outs[:n_user]), out_spec)

        dims = _dim_pattern(cap, sig) if self.options.dynamic else None
        piece = ExportPiece(
            compiled,
            in_spec,
            input_leaves(leaves),
            tensor_idx,
            out_spec,
            n_user,
            len(mutations),
            self.options.precision,
            dims,
        )
        return Variant(sig, run, vrep, dims, export=piece)

    def _dynamo_variant(self, args: tuple, kwargs: dict, sig: Signature, vrep: VariantReport) -> Variant:
        from .frontend.dynamo import compile_with_dynamo

        vrep.frontend = "dynamo"
        if self._dynamo is None:
            self._dynamo = compile_with_dynamo(
                self._module,
                self._compile_region,
                dynamic=self.options.dynamic,
                recompile_limit=self.options.cache_limit + 2,
                watch=None if self.options.freeze else WeightWatch,
            )
        dyn = self._dynamo
        self._regions = vrep.regions
        try:
            with torch.no_grad():
                # compiles this signature's regions (reports in vrep); the call's result is the caller's
                self._compile_output.append(self._first_dynamo_call(dyn, args, kwargs))
        finally:
            self._regions = None
        self._dynamo_report = vrep

        def run(args: tuple, kwargs: dict, leaves: Sequence[Any]) -> Any:
            with torch.no_grad():
                return dyn(*args, **kwargs)

        # dynamic: Dynamo guards the sizes itself (and recompiles within its own limit), so one variant serves
        # every size of this structure and the variant cache's bound is not spent on sizes
        dims = (
            tuple(None if leaf[0] == "py" else (None,) * len(leaf[0]) for leaf in sig.leaves)
            if self.options.dynamic
            else None
        )
        return Variant(sig, run, vrep, dims)

    def _first_dynamo_call(self, dyn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        from .frontend.dynamo import first_call

        def retry() -> None:  # the size-oblivious trace failed: its regions are not the ones that will run
            if self._regions is not None:
                self._regions.clear()

        return first_call(dyn, args, kwargs, dynamic=self.options.dynamic, on_retry=retry)

    def _note_calibration(self, rrep: RegionReport) -> None:
        if rrep.quantization is not None and self._calibration_info is not None:
            rrep.quantization["calibration"] = self._calibration_info

    def _compile_region(self, cap: Captured) -> Any:
        compiled, rrep = compile_captured(
            cap,
            device=self.options.device or "cpu",
            native=self.options.native,
            precision=self.options.precision,
            quantize=self.options.quantize,
            act_ranges=self.options.act_ranges,
            act_smooth=self.options.act_smooth,
        )
        self._note_calibration(rrep)
        if self._regions is not None:
            self._regions.append(rrep)
        elif self._dynamo_report is not None:  # Dynamo compiled a region inside a later call (a new size)
            self._dynamo_report.regions.append(rrep)
        return compiled

    def __repr__(self) -> str:
        return f"CompiledModel({_name(self.model)}, variants={len(self._cache.variants)})"


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def _first_device(sig: Signature) -> str:
    for leaf in sig.leaves:
        if leaf[0] != "py":
            return str(leaf[2])
    return "cpu"


def _dim_pattern(cap: Captured, sig: Signature) -> tuple[tuple[int | None, ...] | None, ...]:
    """Per signature leaf: the compiled graph input's dims, None where the dim is symbolic (non-tensors: None)."""
    inputs = iter(cap.graph.inputs)  # graph inputs are the tensor leaves, in leaf order
    out: list[tuple[int | None, ...] | None] = []
    for leaf in sig.leaves:
        if leaf[0] == "py":
            out.append(None)
        else:
            out.append(tuple(d if isinstance(d, int) else None for d in next(inputs).shape))
    return tuple(out)


def lepton_dynamo_backend(
    gm: Any, example_inputs: list[Any], options: dict[str, Any] | None = None, **_: Any
) -> Callable[..., Any]:
    """``torch.compile(model, backend="lepton")``: every Dynamo region goes through our pipeline.
    ``options={"quantize": ..., "precision": ...}`` take compile()'s values."""
    from .frontend.dynamo import make_backend

    options = dict(options or {})
    quantize, precision = _quant_config(options.pop("quantize", None)), options.pop("precision", "fp32")
    if options:
        raise UnsupportedError(f"unknown lepton backend options: {sorted(options)} (known: precision, quantize)")
    if precision not in ("fp32", "bf16"):
        raise UnsupportedError(f"precision must be 'fp32' or 'bf16', not {precision!r}")
    if quantize is not None and quantize.uses("int8-static"):
        raise UnsupportedError(
            "int8-static needs calibration data, which a torch.compile backend is not given: use "
            "lepton_graph.compile(model, quantize='int8-static', calibration=...)"
        )

    def compile_region(cap: Captured) -> Any:
        compiled, rrep = compile_captured(
            cap, device="cpu", native=config.native, precision=precision, quantize=quantize
        )
        DYNAMO_REPORTS.append(rrep)
        return compiled

    return make_backend(compile_region, watch=WeightWatch)(gm, example_inputs)


def register_dynamo_backend() -> None:
    """For environments where package entry points are not scanned: register "lepton" explicitly."""
    from .frontend.dynamo import register_backend

    register_backend("lepton", lepton_dynamo_backend)
