"""`lepton-graph bench`: benchmark zoo models, eager vs torch.compile vs ONNX Runtime vs OpenVINO vs lepton_graph.

lepton-graph bench --models mlp_b1,resnet18_b1 --json out.json --plot speed.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import zoo
from .harness import attach_anchors, run_bench, write_json
from .peers import PEERS, default_backends
from .render import plot, render_markdown
from .timing import Settings

# --quantize SCHEME: lepton's quantized backend and the peers doing the same (bench/peers.py)
QUANT_BACKENDS = {
    "int8-dynamic": ["lepton_int8", "ort_int8", "ort_int8_pc", "torch_int8", "torchao_int8"],
    "int8-static": ["lepton_int8s", "ort_int8s", "ov_int8s"],
    "int8-weight": ["lepton_int8w", "ort_int8w", "ov_int8w", "torchao_int8w"],
    "int4-weight": ["lepton_int4w", "ort_int4w", "ov_int4w"],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    tiny = [n for n in zoo.names(include_test_only=True, include_extra=True) if n not in zoo.names()]
    p.add_argument("--models", help=f"comma list (default: {','.join(zoo.names())}); also: {','.join(tiny)}")
    p.add_argument("--backends", help=f"comma list (default: {','.join(default_backends())}); known: {','.join(PEERS)}")
    p.add_argument(
        "--quantize",
        choices=sorted(QUANT_BACKENDS),
        help="add the int8 backends of this scheme (lepton and its peers) to the backends",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--rounds", type=int, help="interleaved timing rounds (default 30, --quick 5)")
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds and a shorter warm-up")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all available cores)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    p.add_argument(
        "--max-model-s",
        type=float,
        default=Settings.max_model_s,
        help="stop a model's timing rounds after this many seconds (at least 5 rounds run)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="all backends in this process (default: one worker process per backend)",
    )
    p.add_argument("--warm-cache", action="store_true", help="keep inductor's on-disk cache (warm compile times)")
    p.add_argument("--json", metavar="FILE", help="write all raw numbers and machine info here")
    p.add_argument("--md", metavar="FILE", help="also write the printed tables here")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw speed vs eager per model and backend, with error bars "
        "from the rounds (needs matplotlib: the bench extra)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--anchors",
        metavar="FILE",
        help="peer numbers from an earlier run (JSON with a 'results' list "
        "of model/backend/median_ms) to show beside ours",
    )


def run_from_args(ns: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None
    kw: dict[str, Any] = {
        "device": ns.device,
        "threads": ns.threads,
        "seed": ns.seed,
        "warm_cache": ns.warm_cache,
        "max_model_s": ns.max_model_s,
        "isolate": not ns.in_process,
    }
    if ns.rounds:
        kw["rounds"] = ns.rounds
    settings = Settings.quick(**kw) if ns.quick else Settings(**kw)
    try:
        anchors_ok = ns.anchors is None or Path(ns.anchors).is_file()
        if not anchors_ok:
            raise ValueError(f"--anchors: no such file {ns.anchors}")
        backends = split(ns.backends)
        if ns.quantize:
            backends = [*(backends or default_backends()), *QUANT_BACKENDS[ns.quantize]]
        result = run_bench(split(ns.models), backends, settings, progress=not ns.no_progress, argv=argv)
    except (KeyError, ValueError, RuntimeError) as e:
        print(f"lepton-graph bench: {e}", file=sys.stderr)
        return 2
    if ns.anchors:
        attach_anchors(result, ns.anchors)
    if ns.json:
        write_json(result, ns.json)
    text = render_markdown(result)
    print(text)
    if ns.md:
        Path(ns.md).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.md).write_text(text)
    if ns.plot:
        try:
            plot(result, ns.plot)
        except RuntimeError as e:
            print(f"lepton-graph bench: {e}", file=sys.stderr)
            return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lepton-graph bench", description=__doc__.split("\n")[0])
    add_arguments(p)
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_from_args(p.parse_args(argv), ["lepton-graph bench", *argv])


def micro_parser(doc: str, default_models: str) -> argparse.ArgumentParser:
    """The arguments of the micro-bench scripts in bench/ (models, rounds, timing window, --md)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--models", default=default_models)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seconds", type=float, default=0.3, help="timing window per side per round")
    p.add_argument("--md", help="write the table here too")
    return p


def print_micro_table(
    what: str, rounds: int, header: Sequence[str], rows: Sequence[Sequence[str]], md: str | None = None
) -> str:
    """A micro-bench's markdown table, titled with the machine it ran on; printed, and written to ``md`` if given."""
    import torch

    from .machine import cpu_summary

    lines = [
        f"{what}, {cpu_summary()}, torch {torch.__version__}, {rounds} interleaved rounds",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    text = "\n".join(lines)
    print(text)
    if md:
        Path(md).write_text(text + "\n")
    return text
