"""What following the module's weights costs per call: a compiled model checked before every call (the default)
against the same model compiled with ``freeze=True`` (no check), interleaved in rounds; plus the check alone.

    python bench/weight_watch.py [--rounds 15] [--md FILE]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import lepton_graph as lg
from lepton_graph import zoo
from lepton_graph.backends.cpu import native
from lepton_graph.runtime.weights import ModuleWeights


def _per_call(fn: Callable[[], Any], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn()
        n += 1
    return elapsed / n


def measure(name: str, rounds: int, seconds: float) -> dict[str, Any]:
    model, (args, kwargs) = zoo.build(name)
    followed, frozen = lg.compile(model), lg.compile(model, freeze=True)
    names = {k: k for k, _ in [*model.named_parameters(), *model.named_buffers()]}
    watch = ModuleWeights(model, names)
    calls = {"followed": lambda: followed(*args, **kwargs), "frozen": lambda: frozen(*args, **kwargs),
             "check": watch.changed}
    with torch.no_grad():
        for fn in calls.values():
            fn()
        times: dict[str, list[float]] = {k: [] for k in calls}
        for r in range(rounds):
            order = list(calls)[r % 3:] + list(calls)[:r % 3]
            for k in order:
                times[k].append(_per_call(calls[k], seconds))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, "weights": len(names), "followed_ms": med["followed"] * 1e3,
            "frozen_ms": med["frozen"] * 1e3, "check_us": med["check"] * 1e6,
            "check_share": med["check"] / med["frozen"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp_b1,bert_b1_s128")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seconds", type=float, default=0.3, help="timing window per backend per round")
    p.add_argument("--md", help="write the table here too")
    a = p.parse_args()
    rows = [measure(m, a.rounds, a.seconds) for m in a.models.split(",")]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    isa = "avx512" if native.features().get("avx512f") else "avx2"
    lines = [f"weight-change check per call, {cpu} ({isa}), torch {torch.__version__}, {a.rounds} interleaved rounds",
             "", "| model | weights checked | check alone (us) | compiled, followed (ms) | compiled, freeze=True (ms) "
             "| check / call |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['weights']} | {r['check_us']:.2f} | {r['followed_ms']:.4f} | {r['frozen_ms']:.4f} "
              f"| {r['check_share']:.2%} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
