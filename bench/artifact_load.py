"""Export a zoo model, then load it and run the first call in fresh processes: file size against the weights, and
the load / first-call times beyond `import torch` (issue 10's load-time figure). Each model is exported twice, with
its GEMM weights stored as packed panels (read in place at load) and as raw weights (packed at load); the fresh
processes alternate between the two files, run by run.

    python bench/artifact_load.py --models bert_b1_s128,resnet18_b1 --runs 5 --md bench/results/artifact_load.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
import lepton_graph
from safetensors.torch import load_file
inp = load_file(sys.argv[2])
t2 = time.perf_counter()
m = lepton_graph.load(sys.argv[1])
t3 = time.perf_counter()
m(*[inp[k] for k in sorted(inp) if k.startswith("arg")], **{k: v for k, v in inp.items() if not k.startswith("arg")})
t4 = time.perf_counter()
print(json.dumps({"import_torch": t1 - t0, "import_lepton": t2 - t1, "load": t3 - t2, "first_call": t4 - t3}))
"""


# AOTInductor's package restores the model's output classes by name: a transformers model's .pt2 loads only where
# transformers is imported (its import, ~1 s, is not counted here)
_CHILD_AOTI = """
import json, sys, time
t0 = time.perf_counter()
import torch
try:
    import transformers.modeling_outputs
except ImportError:
    pass
t1 = time.perf_counter()
from safetensors.torch import load_file
inp = load_file(sys.argv[2])
t2 = time.perf_counter()
m = torch._inductor.aoti_load_package(sys.argv[1])
t3 = time.perf_counter()
m(*[inp[k] for k in sorted(inp) if k.startswith("arg")], **{k: v for k, v in inp.items() if not k.startswith("arg")})
t4 = time.perf_counter()
print(json.dumps({"import_torch": t1 - t0, "import_lepton": t2 - t1, "load": t3 - t2, "first_call": t4 - t3}))
"""


def _aoti_package(model: torch.nn.Module, args: tuple, kwargs: dict, path: Path) -> tuple[int, float]:
    """AOTInductor's package of the same model (torch.export, then aoti_compile_and_package): size, compile s."""
    t0 = time.perf_counter()
    ep = torch.export.export(model, args, kwargs)
    torch._inductor.aoti_compile_and_package(ep, package_path=str(path))
    return path.stat().st_size, time.perf_counter() - t0


def measure(name: str, runs: int, workdir: Path, aoti: bool = False) -> dict:
    from safetensors.torch import save_file

    import lepton_graph
    from lepton_graph import zoo

    model, (args, kwargs) = zoo.build(name)
    t0 = time.perf_counter()
    c = lepton_graph.compile(model)
    c(*args, **kwargs)
    compile_s = time.perf_counter() - t0
    from lepton_graph.config import config

    paths, sizes, compile_s_of = {}, {}, {}
    for layout in LAYOUTS:
        paths[layout] = workdir / f"{name}.{layout}.lgraph"
        with config.patch(artifact_panels=layout == "panels"):
            sizes[layout] = c.export(paths[layout])
        compile_s_of[layout] = compile_s
    layouts = list(LAYOUTS)
    if aoti:
        paths["aoti"] = workdir / f"{name}.pt2"
        sizes["aoti"], compile_s_of["aoti"] = _aoti_package(model, args, kwargs, paths["aoti"])
        layouts.append("aoti")
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    inputs = {f"arg{i}": a for i, a in enumerate(args)}
    inputs |= {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    save_file(inputs, str(workdir / f"{name}.in.safetensors"))
    # children import with bytecode caching on, as an installed package does (this environment may set
    # PYTHONDONTWRITEBYTECODE: then every import compiles lepton_graph's sources, ~0.2 s); run 0 writes the caches
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times: dict[str, list[dict]] = {layout: [] for layout in layouts}
    for run in range(runs + 1):
        for layout in layouts:
            child = _CHILD_AOTI if layout == "aoti" else _CHILD
            out = subprocess.run(
                [sys.executable, "-c", child, str(paths[layout]), str(workdir / f"{name}.in.safetensors")],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            if run:
                times[layout].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"model": name, "file_bytes": sizes, "weight_bytes": weights, "compile_s": compile_s_of, "runs": times}


LAYOUTS = ("panels", "raw")  # GEMM weights stored packed (read in place) / raw (packed at load)
NAMES = {"panels": "lepton, panels", "raw": "lepton, raw weights", "aoti": "AOTInductor .pt2"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="bert_b1_s128,resnet18_b1")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--md", help="write the table here")
    p.add_argument("--aoti", action="store_true", help="also AOTInductor's package of each model (slow to build)")
    ns = p.parse_args()
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit

    with tempfile.TemporaryDirectory() as d:
        rows = [measure(m, ns.runs, Path(d), ns.aoti) for m in ns.models.split(",")]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    lines = [
        f"## artifact load, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; torch {torch.__version__}; Python {platform.python_version()}; commit "
        f"{git_commit()}. A fresh process per run (median of {ns.runs}; the two files alternate; bytecode caches "
        "on, as in an installed package, after one warm-up run).",
        "",
        "AOTInductor's process imports transformers first (its package names the model's output classes; not "
        "counted); `beyond import torch`: import lepton_graph (or safetensors) and the inputs, load, first call.",
        "",
        "| model | file | file MB | file / weights | compile s | load s | first call s | beyond import torch s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for layout, runs in r["runs"].items():
            load = med([t["load"] for t in runs])
            first = med([t["first_call"] for t in runs])
            beyond = med([t["import_lepton"] + t["load"] + t["first_call"] for t in runs])
            size = r["file_bytes"][layout]
            lines.append(
                f"| {r['model']} | {NAMES[layout]} | {size / 1e6:.1f} | {size / r['weight_bytes']:.3f} | "
                f"{r['compile_s'][layout]:.2f} | {load:.3f} | {first:.3f} | {beyond:.3f} |"
            )
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
