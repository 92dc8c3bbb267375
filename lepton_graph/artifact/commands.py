"""The artifact commands of the `lepton-graph` console script.

lepton-graph export MODEL -o FILE [--quantize SCHEME] [--precision bf16]   # MODEL: a zoo name or pkg.module:function
lepton-graph run FILE --inputs in.safetensors|in.npz [-o out.safetensors] [--bench N]
lepton-graph inspect FILE [--html out.html]                               # format, inputs/outputs, ops, weights
lepton-graph compile MODEL                                                # the compile report
lepton-graph serve FILE [--port N] [--watch] [--max-batch N]              # HTTP inference, hot-swappable

A ``pkg.module:function`` MODEL is imported and called (your code, at export time only) and must return
``(model, example_inputs)``, example_inputs a tuple of positional arguments or a dict of keyword arguments. Input
files name positional arguments ``arg0``, ``arg1``, ... and keyword arguments by their names.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree

from ..errors import InputError


def _model(spec: str, seed: int = 0) -> tuple[Any, tuple, dict]:
    from .. import zoo

    if ":" in spec:
        mod, _, fn = spec.partition(":")
        try:
            build = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise InputError(f"model {spec!r}: {e} (give a zoo name or package.module:function)") from None
        model, example = build()
        if isinstance(example, dict):
            return model, (), example
        return model, tuple(example) if isinstance(example, (tuple, list)) else (example,), {}
    try:
        zoo.get(spec)
    except KeyError as e:
        raise InputError(str(e.args[0])) from None
    model, (args, kwargs) = zoo.build(spec, seed=seed)
    return model, args, kwargs


def _compile_options(ns: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"precision": ns.precision, "dynamic": ns.dynamic}
    if ns.quantize:
        opts["quantize"] = ns.quantize
    if ns.quantize == "int8-static":
        if ":" in ns.model:
            raise InputError(
                "export: int8-static needs calibration inputs; for your own model, call lepton_graph.export"
            )
        from ..calibration import Inputs

        opts["calibration"] = [Inputs(*a, **k) for _, a, k in (_model(ns.model, 1000 + i) for i in range(8))]
    return opts


def cmd_export(ns: argparse.Namespace) -> int:
    from . import export

    model, args, kwargs = _model(ns.model)
    t0 = time.perf_counter()
    size = export(model, kwargs if kwargs and not args else args, ns.output, **_compile_options(ns))
    print(f"wrote {ns.output}: {size / 1e6:.1f} MB in {time.perf_counter() - t0:.2f} s")
    return 0


def _read_inputs(path: str) -> tuple[tuple, dict]:
    if path.endswith(".npz"):
        import numpy as np

        with np.load(path, allow_pickle=False) as z:
            tensors = {k: torch.from_numpy(z[k]) for k in z.files}
    else:
        from safetensors.torch import load_file

        tensors = load_file(path)
    return call_of(tensors)


def call_of(tensors: dict[str, torch.Tensor]) -> tuple[tuple, dict]:
    """(args, kwargs) from named tensors: ``arg0``, ``arg1``, ... positional, any other name a keyword."""
    pos = sorted((k for k in tensors if k.startswith("arg") and k[3:].isdigit()), key=lambda k: int(k[3:]))
    return tuple(tensors[k] for k in pos), {k: v for k, v in tensors.items() if k not in pos}


def named_outputs(out: Any) -> dict[str, torch.Tensor]:
    """A call's output tensors by their pytree path (``[0]``, ``['logits']``; a lone tensor is ``out``)."""
    flat = pytree.tree_flatten_with_path(out)[0]
    return {pytree.keystr(p) or "out": t.contiguous() for p, t in flat if isinstance(t, torch.Tensor)}


def cmd_run(ns: argparse.Namespace) -> int:
    from . import load

    t0 = time.perf_counter()
    m = load(ns.file)
    load_s = time.perf_counter() - t0
    args, kwargs = _read_inputs(ns.inputs)
    t0 = time.perf_counter()
    out = m(*args, **kwargs)
    first = time.perf_counter() - t0
    print(f"load {load_s * 1e3:.1f} ms, first call {first * 1e3:.1f} ms")
    if ns.bench:
        times = []
        for _ in range(ns.bench):
            t0 = time.perf_counter()
            m(*args, **kwargs)
            times.append(time.perf_counter() - t0)
        print(f"{ns.bench} calls: median {statistics.median(times) * 1e3:.3f} ms, min {min(times) * 1e3:.3f} ms")
    if ns.output:
        from safetensors.torch import save_file

        named = named_outputs(out)
        save_file(named, ns.output)
        print(f"wrote {len(named)} outputs to {ns.output}")
    return 0


def inspect_artifact(path: str) -> str:
    """A summary of an artifact without lowering it: format, call, ops, weights by dtype."""
    from .container import read_artifact
    from .panels import check_table
    from .tensors import tensor_entries

    header, sections = read_artifact(path)
    call = json.loads(sections["call"])
    graph = json.loads(sections["graph"])
    ops: Counter[str] = Counter()

    def count(g: dict[str, Any]) -> None:
        for n in g["nodes"]:
            ops[n["op"]] += 1
            body = n["attrs"].get("body")
            if isinstance(body, dict) and "$graph" in body:
                count(body["$graph"])

    count(graph)
    by_dtype: Counter[str] = Counter()
    tensors = tensor_entries(memoryview(sections["tensors"]), str(path))
    for dtype, _, _, nbytes in tensors.values():
        by_dtype[dtype] += nbytes
    panel_bytes = None
    if "panels" in sections:
        panel_bytes = tensor_entries(memoryview(sections["panels"]), str(path)).get("panels", ("", [], 0, 0))[3]
    stored = check_table(call, panel_bytes, tensors, str(path))
    if stored:
        by_dtype[f"F32 as GEMM panels ({len(stored)} weights)"] += sum(e["nbytes"] for e in stored)
    ins = ", ".join(
        f"{leaf['dtype']}{leaf['shape']}" if leaf["kind"] == "tensor" else repr(leaf["value"])
        for leaf in call["inputs"]["leaves"]
    )
    machine = header.get("machine", {})
    kernels = ", ".join(f"{k} {v}" for k, v in sorted(machine.get("kernel_variants", {}).items()))
    lines = [
        f"artifact        {path} ({Path(path).stat().st_size / 1e6:.1f} MB)",
        f"format          {header['format']} (lepton_graph {header.get('lepton_graph')}, torch {header.get('torch')})",
        f"created         {header.get('created')} on {machine.get('platform')}",
        f"kernels then    {kernels}",
        f"precision       {call.get('precision')}",
        f"inputs          {ins}",
        f"outputs         {call['outputs']['n_user']} tensors",
        f"top-level nodes {len(graph['nodes'])}",
        "ops             " + ", ".join(f"{op} x{c}" for op, c in ops.most_common()),
        "weights         " + ", ".join(f"{dt} {b / 1e6:.2f} MB" for dt, b in by_dtype.most_common()),
        "sections        " + ", ".join(f"{s['name']} {s['length'] / 1e6:.2f} MB" for s in header["sections"]),
    ]
    return "\n".join(lines)


def cmd_inspect(ns: argparse.Namespace) -> int:
    print(inspect_artifact(ns.file))
    if ns.html:
        from . import html

        boxes = html.write(ns.file, ns.html)
        print(f"wrote {ns.html}: the graph as {boxes} boxes, laid out with its partitions, kernels and costs")
    return 0


def cmd_compile(ns: argparse.Namespace) -> int:
    import lepton_graph

    model, args, kwargs = _model(ns.model)
    opts = _compile_options(ns)
    c = lepton_graph.compile(model, **opts)
    c(*args, **kwargs)
    print(c.report())
    return 0


def cmd_serve(ns: argparse.Namespace) -> int:
    try:
        from ..serve import run
    except ImportError as e:
        raise InputError(f"serve needs the serve extra (pip install 'lepton_graph[serve]'): {e}") from None
    print(f"serving {ns.file} on http://{ns.host}:{ns.port} (POST /v1/infer, GET /health /v1/model /metrics)")
    run(
        ns.file,
        ns.host,
        ns.port,
        watch=ns.watch,
        max_body_mb=ns.max_body_mb,
        max_batch=ns.max_batch,
        max_wait_ms=ns.max_wait_ms,
        workers=ns.workers,
    )
    return 0


def add_commands(sub: Any) -> None:
    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="a zoo name (lepton-graph models --all) or pkg.module:function")
        p.add_argument("--quantize", choices=["int8-dynamic", "int8-static", "int8-weight", "int4-weight"])
        p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
        p.add_argument("--dynamic", action="store_true", help="symbolic batch/sequence sizes")

    e = sub.add_parser("export", help="compile a model and write it to one artifact file")
    model_options(e)
    e.add_argument("-o", "--output", required=True, help="the artifact file to write")
    e.set_defaults(func=cmd_export)
    r = sub.add_parser("run", help="load an artifact and run it on inputs from a file")
    r.add_argument("file")
    r.add_argument("--inputs", required=True, help=".safetensors or .npz: arg0, arg1, ... and keyword names")
    r.add_argument("-o", "--output", help="write the outputs here (.safetensors)")
    r.add_argument("--bench", type=int, default=0, metavar="N", help="time N more calls")
    r.set_defaults(func=cmd_run)
    i = sub.add_parser("inspect", help="summarise an artifact (format, call, ops, weights)")
    i.add_argument("file")
    i.add_argument("--html", metavar="OUT", help="also write one self-contained page drawing the graph")
    i.set_defaults(func=cmd_inspect)
    c = sub.add_parser("compile", help="compile a model and print its compile report")
    model_options(c)
    c.set_defaults(func=cmd_compile)
    s = sub.add_parser("serve", help="serve an artifact over HTTP; /v1/reload or --watch swap it while serving")
    s.add_argument("file")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--watch", action="store_true", help="serve the file's new version whenever it is replaced")
    s.add_argument("--max-body-mb", type=float, default=64.0, help="larger request bodies get 413")
    s.add_argument("--max-batch", type=int, default=1, help="run concurrent requests as one call of up to N rows")
    s.add_argument("--max-wait-ms", type=float, default=2.0, help="how long a batch waits for more requests")
    s.add_argument("--workers", type=int, default=1, help="server processes on the port (each its own model copy)")
    s.set_defaults(func=cmd_serve)
