"""What following the module's weights costs per call: a compiled model checked before every call (the default)
against the same model compiled with ``freeze=True`` (no check), interleaved in rounds; plus the check alone.

    python bench/weight_watch.py [--rounds 15] [--md FILE]
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

import lepton_graph as lg
from lepton_graph import zoo
from lepton_graph.bench.cli import micro_parser, print_micro_table
from lepton_graph.bench.timing import interleaved
from lepton_graph.runtime.weights import ModuleWeights


def measure(name: str, rounds: int, seconds: float) -> dict[str, Any]:
    model, (args, kwargs) = zoo.build(name)
    followed, frozen = lg.compile(model), lg.compile(model, freeze=True)
    names = {k: k for k, _ in [*model.named_parameters(), *model.named_buffers()]}
    watch = ModuleWeights(model, names)
    calls = {
        "followed": lambda: followed(*args, **kwargs),
        "frozen": lambda: frozen(*args, **kwargs),
        "check": watch.changed,
    }
    with torch.no_grad():
        times = interleaved(calls, rounds, seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "weights": len(names),
        "followed_ms": med["followed"] * 1e3,
        "frozen_ms": med["frozen"] * 1e3,
        "check_us": med["check"] * 1e6,
        "check_share": med["check"] / med["frozen"],
    }


def main() -> None:
    a = micro_parser(__doc__ or "", "mlp_b1,bert_b1_s128").parse_args()
    rows = [measure(m, a.rounds, a.seconds) for m in a.models.split(",")]
    print_micro_table(
        "weight-change check per call",
        a.rounds,
        [
            "model",
            "weights checked",
            "check alone (us)",
            "compiled, followed (ms)",
            "compiled, freeze=True (ms)",
            "check / call",
        ],
        [
            [
                r["model"],
                str(r["weights"]),
                f"{r['check_us']:.2f}",
                f"{r['followed_ms']:.4f}",
                f"{r['frozen_ms']:.4f}",
                f"{r['check_share']:.2%}",
            ]
            for r in rows
        ],
        a.md,
    )


if __name__ == "__main__":
    main()
