"""What a model costs when lepton_graph cannot compile it: compilation is forced to fail (every capture path
raises), so each call takes the "runs through torch" path; timed against calling the model itself, in interleaved
rounds. The promise: never slower than the model.

    python bench/fallback_path.py [--models llama_tiny,mlp_b1] [--rounds 15] [--md FILE]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

import lepton_graph as lg
import lepton_graph.api as api
from lepton_graph import zoo
from lepton_graph.backends.cpu import native


def _per_call(fn: Callable[[], Any], seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn()
        n += 1
    return elapsed / n


def _failing(*_: Any, **__: Any) -> Any:
    raise RuntimeError("forced compile failure (bench/fallback_path.py)")


def measure(name: str, rounds: int, seconds: float) -> dict[str, Any]:
    model, (args, kwargs) = zoo.build(name)
    real = api.compile_captured
    api.compile_captured = _failing
    try:
        compiled = lg.compile(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lg.CompileFailedWarning)
            compiled(*args, **kwargs)
    finally:
        api.compile_captured = real
    assert compiled.report().as_dict()["compile_error"], "the compile was meant to fail"
    calls = {"eager": lambda: model(*args, **kwargs), "fallback": lambda: compiled(*args, **kwargs)}
    times: dict[str, list[float]] = {k: [] for k in calls}
    with torch.no_grad():
        for fn in calls.values():
            fn()
        for r in range(rounds):
            for k in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
                times[k].append(_per_call(calls[k], seconds))
    ratios = [f / e for f, e in zip(times["fallback"], times["eager"], strict=True)]
    return {"model": name, "eager_ms": statistics.median(times["eager"]) * 1e3,
            "fallback_ms": statistics.median(times["fallback"]) * 1e3, "paired": statistics.median(ratios)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp_b1,llama_tiny,llama_gqa_b1_s128")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seconds", type=float, default=0.3, help="timing window per side per round")
    p.add_argument("--md", help="write the table here too")
    a = p.parse_args()
    rows = [measure(m, a.rounds, a.seconds) for m in a.models.split(",")]
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")),
               platform.processor())
    isa = "avx512" if native.features().get("avx512f") else "avx2"
    lines = [f"calls that run through torch after a failed compile, {cpu} ({isa}), torch {torch.__version__}, "
             f"{a.rounds} interleaved rounds", "",
             "| model | eager (ms) | compile failed, through torch (ms) | through torch / eager (paired) |",
             "|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['eager_ms']:.4f} | {r['fallback_ms']:.4f} | {r['paired']:.3f} |" for r in rows]
    text = "\n".join(lines)
    print(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
