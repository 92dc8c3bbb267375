"""int8-static compile time with calibration (issue 9's "compile with calibration (32 inputs) <= 2 s plus the
calibration forward passes"): each measurement in a fresh process, the modes interleaved in rounds.

    python bench/calibration_time.py --models bert_b1_s128,resnet18_b1,minilm_b1 --rounds 3 --md out.md

Modes: ``eager_forwards`` (the 32 examples through the eager model: what any calibration must at least pay in
eager), ``eager_hooks`` (calibration.calibrate: forward hooks and observers on the eager model), ``fp32`` (compile
and first call, no quantization) and ``int8s`` (compile(quantize="int8-static", calibration=...) and first call:
calibration runs on the compiled fp32 graph; its seconds come from the report). Each process compiles a tiny MLP
first, so the one-time cost of a process's first compile (importing torch.export's machinery, ~2 s here) is not
counted against the model.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import torch

MODES = ("eager_forwards", "eager_hooks", "fp32", "int8s")

_CHILD = """
import json, sys, time
import torch
import lepton_graph
from lepton_graph import zoo
from lepton_graph.calibration import calibrate
name, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, (args, kwargs) = zoo.build(name)
cal = []
for i in range(n):
    a, k = zoo.build(name, seed=1000 + i)[1]
    cal.append(lepton_graph.Inputs(*a, **k))
tiny, (ta, tk) = zoo.build("mlp_tiny")
lepton_graph.compile(tiny)(*ta, **tk)  # the one-time cost of a process's first compile (imports) is not the model's
out = {}
t0 = time.perf_counter()
if mode == "eager_forwards":
    with torch.no_grad():
        for c in cal:
            model(**c) if isinstance(c, dict) else model(*c)
elif mode == "eager_hooks":
    calibrate(model, cal, lepton_graph.QuantConfig("int8-static"))
elif mode == "fp32":
    lepton_graph.compile(model)(*args, **kwargs)
else:
    c = lepton_graph.compile(model, quantize="int8-static", calibration=cal)
    c(*args, **kwargs)
    q = c.report().as_dict()["quantization"]
    out["calibration"] = q["calibration"]
    out["quantized"] = q["quantized_layers"]
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def run(name: str, mode: str, n: int) -> dict:
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, name, mode, str(n)], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        raise RuntimeError(f"{name} {mode}: {res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="bert_b1_s128,resnet18_b1,minilm_b1")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit

    models = ns.models.split(",")
    got: dict[tuple[str, str], list[dict]] = {}
    for r in range(ns.rounds):
        for name in models:
            for mode in MODES:
                got.setdefault((name, mode), []).append(run(name, mode, ns.examples))
                print(f"round {r + 1} {name} {mode}: {got[name, mode][-1]['seconds']:.2f} s", flush=True)

    def med(name: str, mode: str, calibration: bool = False) -> float:
        return statistics.median(x["calibration"]["seconds"] if calibration else x["seconds"] for x in got[name, mode])

    lines = [
        f"## int8-static compile time with calibration, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; torch {torch.__version__}; Python {platform.python_version()}; commit "
        f"{git_commit()}. {ns.examples} calibration examples (zoo inputs, other seeds); a fresh process per "
        f"measurement, modes interleaved, median of {ns.rounds} rounds; seconds.",
        "",
        "| model | eager forwards | eager hooks | fp32 compile | int8-static compile | of it calibration | "
        "int8-static minus calibration | int8-static minus eager forwards |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in models:
        total, cal = med(name, "int8s"), med(name, "int8s", calibration=True)
        lines.append(
            f"| {name} | {med(name, 'eager_forwards'):.2f} | {med(name, 'eager_hooks'):.2f} | {med(name, 'fp32'):.2f}"
            f" | {total:.2f} | {cal:.2f} | {total - cal:.2f} | {total - med(name, 'eager_forwards'):.2f} |"
        )
    ons = {x["calibration"]["on"] for (_, mode), xs in got.items() if mode == "int8s" for x in xs}
    lines += ["", f"int8-static calibrated on: {', '.join(sorted(ons))}."]
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
