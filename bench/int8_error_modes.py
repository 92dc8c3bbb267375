"""What the 7-bit int8 schemes of AVX2 would cost in accuracy: every linear of a zoo model quantized as our
int8-dynamic computes it (activations per row, asymmetric u8 over the row's range extended to 0; weights per output
channel, symmetric), with 8-bit activations and 8-bit weights (exact on every ISA: what lepton computes), 7-bit
weights ([-63, 63]: vpmaddubsw pair sums <= 2 * 255 * 64 stay below 2^15, so AVX2 needs no sign fix-up) or 7-bit
activations ([0, 127], ORT's reduce_range). The model's output error (rel. L2 vs fp32) per mode, and the half of ORT
int8's error that issue 22 sets as the budget (ORT's figure from the bench table named by --ort, same models).

The quantization is simulated in fp32 (fake quant, per-call rows) on every ``F.linear`` / ``torch.addmm`` whose
weight is a parameter (GPT-2's Conv1D included); speed is not measured here.

    python bench/int8_error_modes.py --md bench/results/int8_error_modes_<date>_<cpu>.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

MODES = {  # name: (activation levels, weight qmax)
    "8-bit (lepton)": (255, 127),
    "7-bit weights": (255, 63),
    "7-bit activations": (127, 127),
}
MODELS = ("bert_b1_s128", "gpt2_b1_s128", "vit_b1")


def fake_rows(x: torch.Tensor, levels: int) -> torch.Tensor:
    mn = x.amin(-1, keepdim=True).clamp(max=0)
    mx = x.amax(-1, keepdim=True).clamp(min=0)
    s = (mx - mn) / levels
    s = torch.where(s > 0, s, torch.ones_like(s))
    z = torch.round(-mn / s).clamp(0, levels)
    return (torch.round(x / s) + z).clamp(0, levels).sub(z).mul(s)


def fake_weight(w: torch.Tensor, qmax: int) -> torch.Tensor:  # (N, K), per output channel
    s = w.abs().amax(1, keepdim=True) / qmax
    s = torch.where(s > 0, s, torch.ones_like(s))
    return torch.round(w / s).clamp(-qmax, qmax) * s


class FakeQuant(TorchFunctionMode):
    def __init__(self, levels: int, qmax: int) -> None:
        super().__init__()
        self.levels, self.qmax = levels, qmax
        self.weights: dict[int, torch.Tensor] = {}

    def _w(self, w: torch.Tensor, transposed: bool) -> torch.Tensor:
        if id(w) not in self.weights:
            d = w.detach()
            self.weights[id(w)] = fake_weight(d.t(), self.qmax).t() if transposed else fake_weight(d, self.qmax)
        return self.weights[id(w)]

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear and isinstance(args[1], torch.nn.Parameter):
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            return func(fake_rows(args[0], self.levels), self._w(args[1], False), bias)
        if func is torch.addmm and len(args) == 3 and isinstance(args[2], torch.nn.Parameter):
            return func(args[0], fake_rows(args[1], self.levels), self._w(args[2], True))
        return func(*args, **kwargs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--ort", default="bench/results/cpu_2026-12-07_issue22_kc768_zen3.json", help="bench JSON")
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    from lepton_graph import zoo
    from lepton_graph.bench.accuracy import compare, snapshot
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit

    ort: dict[str, float] = {}
    if Path(ns.ort).exists():
        for r in json.loads(Path(ns.ort).read_text()).get("results", []):
            acc = r.get("accuracy") or {}
            if r.get("backend") == "ort_int8" and acc.get("rel_l2") is not None:
                ort[r["model"]] = acc["rel_l2"]
    lines = [
        f"## int8-dynamic output error by operand width, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; torch {torch.__version__}; commit {git_commit()}. Fake-quantized linears "
        "(bench/int8_error_modes.py), rel. L2 of the model's outputs vs fp32; ORT int8 from "
        f"{Path(ns.ort).name} (the same zoo models and inputs).",
        "",
        "| model | " + " | ".join(MODES) + " | ORT int8 | budget (half of ORT) |",
        "|---|" + "---|" * (len(MODES) + 2),
    ]
    for name in ns.models.split(","):
        model, (args, kwargs) = zoo.build(name)
        with torch.no_grad():
            ref = snapshot(model(*args, **kwargs))
            errs = []
            for levels, qmax in MODES.values():
                with FakeQuant(levels, qmax):
                    errs.append(compare(snapshot(model(*args, **kwargs)), ref)["rel_l2"])
        o = ort.get(name)
        tail = f"{o:.4f} | {o / 2:.4f}" if o is not None else "– | –"
        lines.append(f"| {name} | " + " | ".join(f"{e:.4f}" for e in errs) + f" | {tail} |")
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
