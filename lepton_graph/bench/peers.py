"""Backends the bench compares: each one is a small Peer with a name and setup() -> callable.

A peer's setup gets the eval-mode model, its example inputs and a SetupContext (threads, device, a scratch dir,
stage timers, an info dict) and returns a callable with the model's signature. The harness times setup plus the
first call as "compile seconds", so setup should do the conversion work and leave lazy work to the first call.
Outputs may be any pytree (tensors, tuples, dicts, transformers ModelOutput, KV caches, numpy arrays): the harness
flattens them to tensor leaves to compare with eager.

How the non-default peers are set up follows /work/shared/anchors/README.md ("How the peers were set up").
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..frontend.quiet import quiet_loggers

Fn = Callable[..., Any]


def flatten_outputs(out: Any, prefix: str = "out", _seen: set[int] | None = None) -> list[tuple[str, torch.Tensor]]:
    """Tensor leaves of an output pytree with their paths: tensors, numpy arrays, sequences, mappings (incl.
    transformers ModelOutput) and plain objects such as a KV cache (walked through their attributes)."""
    seen = set() if _seen is None else _seen
    if isinstance(out, torch.Tensor):
        return [(prefix, out)]
    if type(out).__module__ == "numpy" and hasattr(out, "shape"):
        return [(prefix, torch.as_tensor(out))]
    if out is None or isinstance(out, (bool, int, float, complex, str, bytes, torch.dtype, torch.device)):
        return []
    if id(out) in seen:
        return []
    seen.add(id(out))
    if hasattr(out, "items") and callable(out.items):
        items = [(f"{prefix}.{k}", v) for k, v in out.items()]
    elif isinstance(out, (list, tuple)):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(out)]
    elif hasattr(out, "__dict__"):
        items = [(f"{prefix}.{k}", v) for k, v in vars(out).items() if not k.startswith("_")]
    else:
        return []
    return [leaf for path, v in items for leaf in flatten_outputs(v, path, seen)]


class FlatOutputs(nn.Module):
    """model(*args, **kwargs) with its outputs flattened to a tuple of tensors, in flatten_outputs' order.

    Exporters reject outputs such as transformers' DynamicCache (no pytree registration); flattening keeps the
    same computation and lets the harness compare the exported outputs with eager's leaves by position.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        return tuple(t for _, t in flatten_outputs(self.model(*args, **kwargs)))


class PositionalFlatOutputs(nn.Module):
    """FlatOutputs taking every input positionally: args first, then the keyword inputs in a fixed order
    (for tracers that cannot pass keyword arguments through **kwargs)."""

    def __init__(self, model: nn.Module, n_args: int, keys: list[str], constants: dict[str, Any] | None = None):
        super().__init__()
        self.model, self.n_args, self.keys, self.constants = model, n_args, keys, constants or {}

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kwargs = dict(zip(self.keys, tensors[self.n_args :], strict=True)) | self.constants
        return tuple(t for _, t in flatten_outputs(self.model(*tensors[: self.n_args], **kwargs)))


@dataclass
class SetupContext:
    threads: int
    device: str
    workdir: Path
    info: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    model_name: str = ""  # the zoo entry (calibrating peers draw more of its inputs)
    seed: int = 0

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = time.perf_counter() - t0


@dataclass(frozen=True)
class Peer:
    """A backend: `setup(model, args, kwargs, ctx) -> fn` with `fn(*args, **kwargs)` ~ `model(*args, **kwargs)`."""

    name: str
    setup: Callable[[nn.Module, tuple[Any, ...], dict[str, Any], SetupContext], Fn]
    description: str = ""
    default: bool = False  # in the default `--backends` set
    devices: tuple[str, ...] = ("cpu", "cuda")


PEERS: dict[str, Peer] = {}


def peer(
    name: str, description: str, *, default: bool = False, devices: tuple[str, ...] = ("cpu", "cuda")
) -> Callable[[Callable], Callable]:
    def deco(setup: Callable) -> Callable:
        PEERS[name] = Peer(name, setup, description, default, devices)
        return setup

    return deco


def default_backends() -> list[str]:
    return [n for n, p in PEERS.items() if p.default]


# --------------------------------------------------------------------------------------------------- torch


@peer("eager", "the model itself (the harness runs every backend under torch.no_grad)", default=True)
def setup_eager(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
    return model


def _fresh_inductor_cache(ctx: SetupContext, name: str) -> None:
    # A fresh on-disk cache per (model, backend), so compile seconds are cold-cache numbers like the anchors'.
    if ctx.info.get("warm_cache"):
        return
    path = ctx.workdir / f"inductor_{name}"
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)


def _inductor(name: str, **options: Any) -> Callable:
    def setup(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
        import torch._inductor.config as inductor_config

        _fresh_inductor_cache(ctx, name)
        ctx.info["inductor"] = {
            "mode": "default",
            "compile_threads": inductor_config.compile_threads,
            "cpp_wrapper": inductor_config.cpp_wrapper,
            **options,
        }
        with ctx.stage("torch.compile()"):
            return torch.compile(model, options=options or None)

    return setup


peer("inductor", "torch.compile(model), default mode", default=True)(_inductor("inductor"))
peer("inductor_freezing", "torch.compile(model, options={'freezing': True}) (recommended CPU inference setting)")(
    _inductor("inductor_freezing", freezing=True)
)


@peer("torch_int8", "torch.ao.quantization.quantize_dynamic(nn.Linear -> qint8), x86 engine", devices=("cpu",))
def setup_torch_int8(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
    with ctx.stage("quantize_dynamic"):
        qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    ctx.info["quant_engine"] = torch.backends.quantized.engine
    ctx.info["linear_quantized"] = sum(
        1 for m in qmodel.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__
    )
    return qmodel


def _torchao(config_name: str) -> Callable:
    """torchao's CPU route as its docs give it: ``quantize_(model, Config())`` then ``torch.compile``."""

    def setup(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
        import copy

        import torchao
        from torchao import quantization

        model = copy.deepcopy(model)  # quantize_ rewrites the module in place
        with ctx.stage(f"torchao.quantize_({config_name}())"):
            quantization.quantize_(model, getattr(quantization, config_name)())
        ctx.info["torchao"] = f"torchao {torchao.__version__}: quantize_(model, {config_name}()) + torch.compile"
        _fresh_inductor_cache(ctx, "torchao")
        with ctx.stage("torch.compile"):
            return torch.compile(model)

    return setup


peer("torchao_int8", "torchao Int8DynamicActivationInt8WeightConfig + torch.compile", devices=("cpu",))(
    _torchao("Int8DynamicActivationInt8WeightConfig")
)
peer("torchao_int8w", "torchao Int8WeightOnlyConfig + torch.compile", devices=("cpu",))(
    _torchao("Int8WeightOnlyConfig")
)


# --------------------------------------------------------------------------------------------------- lepton


@peer("lepton", "lepton_graph.compile(model)", default=True)
def setup_lepton(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
    import lepton_graph

    compile_fn = getattr(lepton_graph, "compile", None)
    if compile_fn is None:
        raise RuntimeError("lepton_graph.compile is not available in this checkout")
    with ctx.stage("lepton_graph.compile()"):
        return compile_fn(model)


@peer(
    "lepton_torch",
    "lepton_graph.compile(model, native=False): captured, optimized, run op by op through torch "
    "(the fallback-only path)",
)
def setup_lepton_torch(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
    import lepton_graph

    with ctx.stage("lepton_graph.compile(native=False)"):
        return lepton_graph.compile(model, native=False)


@peer(
    "lepton_bf16",
    "lepton_graph.compile(model, precision='bf16'): opt-in mixed precision (bf16 GEMM weights)",
    devices=("cpu",),
)
def setup_lepton_bf16(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
    import lepton_graph

    with ctx.stage("lepton_graph.compile(precision='bf16')"):
        return lepton_graph.compile(model, precision="bf16")


# Inputs the int8-static backends calibrate on: the zoo model's inputs drawn with other seeds, never the timed one
CALIBRATION_EXAMPLES = 8


def calibration_examples(ctx: SetupContext) -> list[tuple[tuple, dict]]:
    from .. import zoo

    if not ctx.model_name:
        raise RuntimeError("int8-static needs calibration inputs: this bench run does not name its zoo model")
    out = []
    with ctx.stage("calibration_inputs"):
        for i in range(CALIBRATION_EXAMPLES):
            _, (args, kwargs) = zoo.build(ctx.model_name, seed=ctx.seed + 1000 + i)
            out.append((args, kwargs))
    ctx.info["calibration"] = f"{CALIBRATION_EXAMPLES} zoo inputs (seeds {ctx.seed + 1000}..)"
    return out


def _lepton_quantized(scheme: str) -> Callable:
    def setup(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
        import lepton_graph

        extra: dict[str, Any] = {}
        if scheme == "int8-static":
            from ..calibration import Inputs

            extra["calibration"] = [Inputs(*a, **kw) for a, kw in calibration_examples(ctx)]
        with ctx.stage(f"lepton_graph.compile(quantize={scheme!r})"):
            return lepton_graph.compile(model, quantize=scheme, **extra)

    return setup


for _name, _scheme, _desc in (
    ("lepton_int8", "int8-dynamic", "int8 weights per channel, activations per row at run time (VNNI)"),
    ("lepton_int8s", "int8-static", "calibrated on 8 other inputs: one min-max activation scale per layer"),
    ("lepton_int8w", "int8-weight", "weight-only int8 per channel, fp32 activations"),
    ("lepton_int4w", "int4-weight", "weight-only int4, asymmetric, groups of 128"),
):
    peer(_name, f"lepton_graph.compile(model, quantize={_scheme!r}): {_desc}", devices=("cpu",))(
        _lepton_quantized(_scheme)
    )


# --------------------------------------------------------------------------------------------------- ONNX Runtime


def export_onnx(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Path:
    """torch.onnx.export (outputs flattened) with the dynamo exporter; the TorchScript exporter (opset 17) when
    that fails."""
    path = ctx.workdir / "model.onnx"
    flat = FlatOutputs(model).eval()
    try:
        # the exporter's registry logs every torchvision op it skips (torchvision is not installed here)
        with ctx.stage("onnx_export"), quiet_loggers(("torch.onnx._internal.exporter._registration",)):
            torch.onnx.export(flat, args, str(path), kwargs=kwargs, dynamo=True, verbose=False)
        ctx.info["onnx_exporter"] = "dynamo"
    except Exception as e:  # noqa: BLE001 - any exporter failure means "try the other exporter"
        ctx.info["onnx_dynamo_error"] = f"{type(e).__name__}: {e}"[:500]
        with ctx.stage("onnx_export(torchscript)"):
            torch.onnx.export(flat, args, str(path), kwargs=kwargs, dynamo=False, opset_version=17)
        ctx.info["onnx_exporter"] = "torchscript"
    return path


def _feed(names: list[str], args: tuple, kwargs: dict) -> Callable[[tuple, dict], list[Any]]:
    """Graph inputs (in graph order) from a call's tensors: by keyword name when every graph input is named
    after a keyword, else by position over args followed by kwargs values."""
    if all(n in kwargs for n in names):

        def by_name(a: tuple, k: dict) -> list[Any]:
            return [k[n].numpy() for n in names]

        return by_name
    keys = [n for n, v in kwargs.items() if isinstance(v, torch.Tensor)]  # flags such as use_cache are baked in
    if len(names) != len(args) + len(keys):
        raise RuntimeError(f"cannot map graph inputs {names} onto args={len(args)} kwargs={keys}")

    def by_position(a: tuple, k: dict) -> list[Any]:
        return [t.numpy() for t in a] + [k[n].numpy() for n in keys]

    return by_position


def _gemm_as_matmul(proto: Any) -> int:
    """Gemm(A, B const, C) with alpha = beta = 1 and no transA -> MatMul(A, B as K x N) + Add(C), in place: the
    exporter writes 2-D linear layers as Gemm, which MatMulNBitsQuantizer does not quantize. Returns how many."""
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    out, n = [], 0
    for node in g.node:
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        if (
            node.op_type != "Gemm"
            or node.input[1] not in inits
            or a.get("transA", 0)
            or a.get("alpha", 1.0) != 1.0
            or a.get("beta", 1.0) != 1.0
        ):
            out.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        if a.get("transB", 0):
            w = w.T.copy()
        name = node.input[1] + "_kn"
        g.initializer.append(numpy_helper.from_array(w, name))
        has_c = len(node.input) > 2 and node.input[2]
        mm_out = node.output[0] + "_mm" if has_c else node.output[0]
        out.append(helper.make_node("MatMul", [node.input[0], name], [mm_out], name=node.name + "_matmul"))
        if has_c:
            out.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=node.name + "_add"))
        n += 1
    del g.node[:]
    g.node.extend(out)
    return n


def _ort(quantize: bool, per_channel: bool = False, weight_bits: int = 0, static: bool = False) -> Callable:
    def setup(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
        import onnxruntime as ort

        path = export_onnx(model, args, kwargs, ctx)
        if static:
            import onnx
            from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

            names = [i.name for i in onnx.load(str(path)).graph.input]
            feed = _feed(names, args, kwargs)
            data = [dict(zip(names, feed(a, k), strict=True)) for a, k in calibration_examples(ctx)]

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self.it = iter(data)

                def get_next(self) -> dict | None:
                    return next(self.it, None)

            qpath = ctx.workdir / "model.int8s.onnx"
            with ctx.stage("quantize_static"):
                quantize_static(
                    str(path),
                    str(qpath),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
            path = qpath
            ctx.info["ort_quant"] = "quantize_static(QDQ, per_channel, U8 activations, S8 weights, MinMax)"
        elif weight_bits:
            import logging

            import onnx
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            # the module sets the root logger to INFO on import and logs every node it visits
            logging.getLogger().setLevel(logging.WARNING)
            logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)

            qpath = ctx.workdir / f"model.int{weight_bits}w.onnx"
            with ctx.stage("matmul_nbits_quantize"):
                proto = onnx.load(str(path))
                ctx.info["ort_gemm_as_matmul"] = _gemm_as_matmul(proto)
                q = MatMulNBitsQuantizer(proto, bits=weight_bits, block_size=128, is_symmetric=weight_bits == 8)
                q.process()
                q.model.save_model_to_file(str(qpath), use_external_data_format=False)
            path = qpath
            ctx.info["ort_quant"] = f"MatMulNBitsQuantizer(bits={weight_bits}, block_size=128)"
        elif quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            qpath = ctx.workdir / "model.int8.onnx"
            with ctx.stage("quantize_dynamic"):
                quantize_dynamic(
                    str(path), str(qpath), weight_type=QuantType.QInt8, per_channel=per_channel, reduce_range=False
                )
            path = qpath
            ctx.info["ort_quant"] = (
                f"quantize_dynamic(weight_type=QInt8, per_channel={per_channel}, reduce_range=False)"
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = ctx.threads
        with ctx.stage("ort_session"):
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        ctx.info["ort_intra_op_num_threads"] = ctx.threads
        names = [i.name for i in sess.get_inputs()]
        feed = _feed(names, args, kwargs)

        def run(*a: Any, **k: Any) -> list[torch.Tensor]:
            return [torch.from_numpy(o) for o in sess.run(None, dict(zip(names, feed(a, k), strict=True)))]

        return run

    return setup


peer("ort", "ONNX Runtime CPU, ORT_ENABLE_ALL, intra_op_num_threads = torch threads", devices=("cpu",))(_ort(False))
peer("ort_int8", "ONNX Runtime + onnxruntime.quantization.quantize_dynamic (QInt8, per tensor)", devices=("cpu",))(
    _ort(True)
)
peer("ort_int8_pc", "ONNX Runtime + quantize_dynamic (QInt8, per channel)", devices=("cpu",))(
    _ort(True, per_channel=True)
)
peer("ort_int8s", "ONNX Runtime + quantize_static (QDQ, per channel, calibrated on 8 inputs)", devices=("cpu",))(
    _ort(False, static=True)
)
peer("ort_int8w", "ONNX Runtime + MatMulNBitsQuantizer (weight-only int8, blocks of 128)", devices=("cpu",))(
    _ort(False, weight_bits=8)
)
peer(
    "ort_int4w", "ONNX Runtime + MatMulNBitsQuantizer (weight-only int4, asymmetric, blocks of 128)", devices=("cpu",)
)(_ort(False, weight_bits=4))


# --------------------------------------------------------------------------------------------------- OpenVINO


def _nncf(ov_model: Any, mode: str, args: tuple, kwargs: dict, ctx: SetupContext) -> Any:
    """The OpenVINO model compressed by NNCF as its users are told to: ``nncf.quantize`` on the same 8 calibration
    inputs as the other static peers (default preset), or ``nncf.compress_weights`` (int8: INT8_ASYM per channel;
    int4: INT4_ASYM, groups of 128, every layer)."""
    import nncf

    if mode == "int8s":
        names = [next(iter(i.get_names()), f"input_{n}") for n, i in enumerate(ov_model.inputs)]
        feed = _feed(names, args, kwargs)
        data = [feed(a, k) for a, k in calibration_examples(ctx)]
        with ctx.stage("nncf.quantize"):
            ov_model = nncf.quantize(ov_model, nncf.Dataset(data), subset_size=len(data))
        ctx.info["nncf"] = f"nncf.quantize(preset default, subset_size={len(data)})"
    elif mode == "int8w":
        with ctx.stage("nncf.compress_weights"):
            ov_model = nncf.compress_weights(ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        ctx.info["nncf"] = "nncf.compress_weights(INT8_ASYM)"
    else:
        with ctx.stage("nncf.compress_weights"):
            from nncf.quantization.advanced_parameters import AdvancedCompressionParameters

            # ADJUST: a layer with fewer than 128 input channels gets a smaller group (our int4 takes one group
            # per channel there) instead of NNCF's error
            adjust = AdvancedCompressionParameters(group_size_fallback_mode=nncf.GroupSizeFallbackMode.ADJUST)
            ov_model = nncf.compress_weights(
                ov_model,
                mode=nncf.CompressWeightsMode.INT4_ASYM,
                group_size=128,
                ratio=1.0,
                advanced_parameters=adjust,
            )
        ctx.info["nncf"] = "nncf.compress_weights(INT4_ASYM, group_size=128 (ADJUST below), ratio=1.0)"
    ctx.info["nncf_version"] = nncf.__version__
    return ov_model


def _openvino(precision: str | None, nncf_mode: str | None = None) -> Callable:
    def setup(model: nn.Module, args: tuple, kwargs: dict, ctx: SetupContext) -> Fn:
        import openvino as ov

        try:
            with ctx.stage("ov_convert_model(torch)"):
                tensors = {n: v for n, v in kwargs.items() if isinstance(v, torch.Tensor)}
                flat = PositionalFlatOutputs(
                    model, len(args), list(tensors), {n: v for n, v in kwargs.items() if n not in tensors}
                ).eval()
                ov_model = ov.convert_model(flat, example_input=(*args, *tensors.values()))
            ctx.info["ov_convert_from"] = "torch"
        except Exception as e:  # noqa: BLE001 - the ONNX route is the documented fallback
            ctx.info["ov_torch_convert_error"] = f"{type(e).__name__}: {e}"[:500]
            # The failed attempt is not part of the conversion cost (as in the anchors).
            ctx.stages["ov_convert_model(torch) failed"] = ctx.stages.pop("ov_convert_model(torch)", 0.0)
            path = export_onnx(model, args, kwargs, ctx)
            with ctx.stage("ov_convert_model(onnx)"):
                ov_model = ov.convert_model(str(path))
            ctx.info["ov_convert_from"] = "onnx"
        if nncf_mode:
            ov_model = _nncf(ov_model, nncf_mode, args, kwargs, ctx)
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": ctx.threads}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        with ctx.stage("ov_compile_model"):
            compiled = ov.compile_model(ov_model, "CPU", config)
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        ctx.info["ov_inference_precision"] = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        ctx.info["ov_num_threads"] = ctx.threads
        names = [next(iter(i.get_names()), f"input_{n}") for n, i in enumerate(compiled.inputs)]
        feed = _feed(names, args, kwargs)
        request = compiled.create_infer_request()

        def run(*a: Any, **k: Any) -> list[torch.Tensor]:
            results = request.infer(feed(a, k))
            return [torch.from_numpy(results[o]) for o in compiled.outputs]

        return run

    return setup


peer("openvino_f32", "OpenVINO CPU, INFERENCE_PRECISION_HINT=f32", devices=("cpu",))(_openvino("f32"))
peer("openvino_default", "OpenVINO CPU, default precision (bf16 where the CPU has it)", devices=("cpu",))(
    _openvino(None)
)
peer("ov_int8s", "OpenVINO + NNCF nncf.quantize (calibrated on 8 inputs), f32 for the rest", devices=("cpu",))(
    _openvino("f32", "int8s")
)
peer("ov_int8w", "OpenVINO + NNCF compress_weights (INT8_ASYM, weight-only)", devices=("cpu",))(
    _openvino("f32", "int8w")
)
peer("ov_int4w", "OpenVINO + NNCF compress_weights (INT4_ASYM, groups of 128, weight-only)", devices=("cpu",))(
    _openvino("f32", "int4w")
)
