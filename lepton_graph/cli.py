"""The `lepton-graph` console script: thin argparse front over the package and its bench harness.

lepton-graph info                      # version, torch, threads, CPU features
lepton-graph models                    # the built-in zoo
lepton-graph bench --models mlp_b1 --quick --json out.json
lepton-graph export resnet18_b1 -o r18.lgraph [--quantize int8-static]   # and run / inspect / compile
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from . import __version__, zoo
from .errors import LeptonError


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cmd_info(_: argparse.Namespace) -> int:
    print(f"lepton_graph {__version__}")
    print(f"python       {platform.python_version()} ({platform.platform()})")
    print(f"torch        {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"cpu          {_cpu_model()}")
    try:
        from .backends.cpu import native

        feats = native.features()
        print(
            "cpu features "
            + (
                ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in feats.items())
                or "unavailable (native extension not built)"
            )
        )
        try:
            print(f"native       kernels {native.kernel_isa()}, build {native.build_info()}")
            print(f"variants     {', '.join(f'{k} {v}' for k, v in sorted(native.kernel_variants().items()))}")
            cs = native._lib().cache_sizes()
            print(
                f"caches       L1d {cs['l1d'] >> 10} KiB, L2 {cs['l2'] >> 10} KiB, L3 {cs['l3'] >> 20} MiB per core"
                f"{'' if cs['detected'] else ' (not reported by cpuid: defaults)'}; GEMM blocking (kc, mc) "
                f"{native._lib().gemm_blocking()}"
            )
        except Exception as e:  # noqa: BLE001 - older or partial builds of _C
            print(f"native       unavailable: {e}")
    except ImportError as e:
        print(f"cpu features unavailable: {e}")
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"cuda         {cuda}")
    return 0


def cmd_models(ns: argparse.Namespace) -> int:
    for name in zoo.names(include_test_only=ns.all, include_extra=ns.all):
        entry = zoo.get(name)
        tag = " [test]" if entry.test_only else ""
        print(f"{name:14} {entry.description}{tag}")
    return 0


def cmd_bench(ns: argparse.Namespace) -> int:
    from .bench import run_from_args

    return int(run_from_args(ns, ["lepton-graph", *ns.argv]))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lepton-graph", description="lepton_graph: a graph optimizer for PyTorch.")
    p.add_argument("--version", action="version", version=f"lepton_graph {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, torch, CPU features").set_defaults(func=cmd_info)
    models = sub.add_parser("models", help="list the built-in model zoo")
    models.add_argument(
        "--all", action="store_true", help="include the tiny test-only variants and the extra full-size ones"
    )
    models.set_defaults(func=cmd_models)
    from . import bench

    b = sub.add_parser(
        "bench",
        help="benchmark zoo models: eager vs inductor vs ORT vs OpenVINO vs lepton",
        description=(bench.cli.__doc__ or "").split("\n")[0],
    )
    bench.add_arguments(b)
    b.set_defaults(func=cmd_bench)
    from .artifact.commands import add_commands

    add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser().parse_args(argv)
    ns.argv = argv
    try:
        return int(ns.func(ns))
    except LeptonError as e:  # the user's input or file: a message naming it, not a traceback
        print(f"lepton-graph {argv[0] if argv else ''}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
