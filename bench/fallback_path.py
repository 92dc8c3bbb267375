"""What a model costs when lepton_graph cannot compile it: compilation is forced to fail (every capture path
raises), so each call takes the "runs through torch" path; timed against calling the model itself, in interleaved
rounds. The promise: never slower than the model.

    python bench/fallback_path.py [--models llama_tiny,mlp_b1] [--rounds 15] [--md FILE]
"""

from __future__ import annotations

import statistics
import warnings
from typing import Any

import torch

import lepton_graph as lg
import lepton_graph.api as api
from lepton_graph import zoo
from lepton_graph.bench.cli import micro_parser, print_micro_table
from lepton_graph.bench.timing import interleaved


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
    with torch.no_grad():
        times = interleaved(calls, rounds, seconds)
    ratios = [f / e for f, e in zip(times["fallback"], times["eager"], strict=True)]
    return {
        "model": name,
        "eager_ms": statistics.median(times["eager"]) * 1e3,
        "fallback_ms": statistics.median(times["fallback"]) * 1e3,
        "paired": statistics.median(ratios),
    }


def main() -> None:
    a = micro_parser(__doc__ or "", "mlp_b1,llama_tiny,llama_gqa_b1_s128").parse_args()
    rows = [measure(m, a.rounds, a.seconds) for m in a.models.split(",")]
    print_micro_table(
        "calls that run through torch after a failed compile",
        a.rounds,
        ["model", "eager (ms)", "compile failed, through torch (ms)", "through torch / eager (paired)"],
        [[r["model"], f"{r['eager_ms']:.4f}", f"{r['fallback_ms']:.4f}", f"{r['paired']:.3f}"] for r in rows],
        a.md,
    )


if __name__ == "__main__":
    main()
