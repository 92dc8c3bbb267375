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


def measure(name: str, runs: int, workdir: Path) -> dict:
    from safetensors.torch import save_file

    import lepton_graph
    from lepton_graph import zoo

    model, (args, kwargs) = zoo.build(name)
    t0 = time.perf_counter()
    c = lepton_graph.compile(model)
    c(*args, **kwargs)
    compile_s = time.perf_counter() - t0
    from lepton_graph.config import config

    paths, sizes = {}, {}
    for layout in LAYOUTS:
        paths[layout] = workdir / f"{name}.{layout}.lgraph"
        with config.patch(artifact_panels=layout == "panels"):
            sizes[layout] = c.export(paths[layout])
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    inputs = {f"arg{i}": a for i, a in enumerate(args)}
    inputs |= {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    save_file(inputs, str(workdir / f"{name}.in.safetensors"))
    # children import with bytecode caching on, as an installed package does (this environment may set
    # PYTHONDONTWRITEBYTECODE: then every import compiles lepton_graph's sources, ~0.2 s); run 0 writes the caches
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times: dict[str, list[dict]] = {layout: [] for layout in LAYOUTS}
    for run in range(runs + 1):
        for layout in LAYOUTS:
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(paths[layout]), str(workdir / f"{name}.in.safetensors")],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            if run:
                times[layout].append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"model": name, "file_bytes": sizes, "weight_bytes": weights, "compile_s": compile_s, "runs": times}


LAYOUTS = ("panels", "raw")  # GEMM weights stored packed (read in place) / raw (packed at load)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="bert_b1_s128,resnet18_b1")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit

    with tempfile.TemporaryDirectory() as d:
        rows = [measure(m, ns.runs, Path(d)) for m in ns.models.split(",")]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    lines = [
        f"## artifact load, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; torch {torch.__version__}; Python {platform.python_version()}; commit "
        f"{git_commit()}. A fresh process per run (median of {ns.runs}; the two files alternate; bytecode caches "
        "on, as in an installed package, after one warm-up run).",
        "",
        "| model | weights stored | file MB | file / weights | compile s | load s | first call s | "
        "beyond import torch s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for layout in LAYOUTS:
            runs = r["runs"][layout]
            load = med([t["load"] for t in runs])
            first = med([t["first_call"] for t in runs])
            beyond = med([t["import_lepton"] + t["load"] + t["first_call"] for t in runs])
            size = r["file_bytes"][layout]
            lines.append(
                f"| {r['model']} | {layout} | {size / 1e6:.1f} | {size / r['weight_bytes']:.3f} | "
                f"{r['compile_s']:.2f} | {load:.3f} | {first:.3f} | {beyond:.3f} |"
            )
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
