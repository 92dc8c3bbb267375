"""Export a zoo model, then load it and run the first call in fresh processes: file size against the weights, and
the load / first-call times beyond `import torch` (issue 10's load-time figure).

    python bench/artifact_load.py --models bert_b1_s128,resnet18_b1 --runs 3 --md bench/results/artifact_load.md
"""

from __future__ import annotations

import argparse
import json
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
    path = workdir / f"{name}.lgraph"
    size = c.export(path)
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    inputs = {f"arg{i}": a for i, a in enumerate(args)}
    inputs |= {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    save_file(inputs, str(workdir / f"{name}.in.safetensors"))
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(workdir / f"{name}.in.safetensors")],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"model": name, "file_bytes": size, "weight_bytes": weights, "compile_s": compile_s, "runs": times}


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
        f"{git_commit()}. A fresh process per run (median of {ns.runs}).",
        "",
        "| model | file MB | file / weights | compile s | load s | first call s | beyond import torch s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        load = med([t["load"] for t in r["runs"]])
        first = med([t["first_call"] for t in r["runs"]])
        beyond = med([t["import_lepton"] + t["load"] + t["first_call"] for t in r["runs"]])
        lines.append(
            f"| {r['model']} | {r['file_bytes'] / 1e6:.1f} | {r['file_bytes'] / r['weight_bytes']:.3f} | "
            f"{r['compile_s']:.2f} | {load:.3f} | {first:.3f} | {beyond:.3f} |"
        )
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
