"""Kernel micro-benchmarks: our native kernels against torch (and numpy where relevant), per family.

Each family contributes benchmark functions to ``BENCHMARKS``; a benchmark returns rows (dicts) with a "case",
the implementations' median seconds per call ("<impl>_s"), their GFLOP/s and the ratios peer_time / our_time
(> 1: we are faster). Implementations of one case are timed in the same process, in interleaved rounds (the order
rotating round to round) so the machine's drift hits all of them alike; only ratios are meaningful across runs.

    python bench/kernels.py [--json FILE] [--only gemm] [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: python bench/kernels.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lepton_graph.backends.cpu import native  # noqa: E402

Impl = Callable[[], Any]


def time_interleaved(impls: dict[str, Impl], rounds: int, target_s: float = 0.02) -> dict[str, float]:
    """Median seconds per call of each implementation, over ``rounds`` interleaved rounds of ~target_s each."""
    names = list(impls)
    for fn in impls.values():  # warm up (first-touch, packing caches, thread pools)
        fn()
        fn()
    iters: dict[str, int] = {}
    for name, fn in impls.items():
        t0 = time.perf_counter()
        fn()
        dt_ = max(time.perf_counter() - t0, 1e-7)
        iters[name] = max(1, min(10000, int(target_s / dt_)))
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn, n = impls[name], iters[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    return {n: statistics.median(s) for n, s in samples.items()}


# ------------------------------------------------------------------------------------------------------ GEMM

GEMM_M = (1, 64, 128, 197, 256)
GEMM_NK = ((768, 768), (2304, 768), (3072, 768), (768, 3072), (2048, 2048), (2048, 784), (10, 2048))


def bench_gemm(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    """fp32 GEMM C = A (M x K) x W (K x N) with W pre-packed (our Linear path) vs torch.mm (and numpy at M = 1).
    The zoo's shapes: M = batch x tokens, (N, K) from BERT/GPT-2/ViT projections and the MLP."""
    rows = []
    ms = GEMM_M[:2] if quick else GEMM_M
    for n, k in GEMM_NK:
        for m in ms:
            row = _gemm_case(m, n, k, rounds)
            rows.append(row)
            _print_gemm_row(row)
    return rows


def _gemm_case(m: int, n: int, k: int, rounds: int) -> dict[str, Any]:
    from lepton_graph import _C

    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g)
    w = torch.randn(k, n, generator=g) / k**0.5
    c_ours, c_torch = torch.empty(m, n), torch.empty(m, n)
    packed = _C.gemm_pack_b_f32(w.data_ptr(), k, n, n, 1)
    a_ptr, c_ptr = a.data_ptr(), c_ours.data_ptr()
    call = _C.gemm_packed
    impls: dict[str, Impl] = {
        "ours": lambda: call(a_ptr, m, k, k, packed, c_ptr, n),
        "torch": lambda: torch.mm(a, w, out=c_torch),
    }
    if m == 1:
        an, wn, cn = a.numpy(), w.numpy(), np.empty((m, n), dtype=np.float32)
        impls["numpy"] = lambda: np.dot(an, wn, out=cn)
    times = time_interleaved(impls, rounds)
    impls["ours"]()
    ref = a.double() @ w.double()
    err = ((c_ours - ref).abs().max() / ref.abs().max()).item()
    flop = 2.0 * m * n * k
    row: dict[str, Any] = {"family": "gemm", "case": f"{m}x{n}x{k}", "M": m, "N": n, "K": k, "rel_err": err}
    for name, t in times.items():
        row[f"{name}_s"] = t
        row[f"{name}_gflops"] = flop / t / 1e9
        if name != "ours":
            row[f"vs_{name}"] = t / times["ours"]
    return row


def _print_gemm_row(row: dict[str, Any]) -> None:
    if not getattr(_print_gemm_row, "header", False):
        print(f"{'M x N x K':>18} {'ours GF/s':>10} {'torch GF/s':>11} {'ours/torch':>11} {'numpy GF/s':>11} "
              f"{'ours/numpy':>11}")
        _print_gemm_row.header = True  # type: ignore[attr-defined]
    np_gf = f"{row['numpy_gflops']:11.1f}" if "numpy_gflops" in row else f"{'':11}"
    np_r = f"{row['vs_numpy']:11.2f}" if "vs_numpy" in row else f"{'':11}"
    print(f"{row['case']:>18} {row['ours_gflops']:10.1f} {row['torch_gflops']:11.1f} {row['vs_torch']:11.2f} "
          f"{np_gf} {np_r}", flush=True)


def summarize_gemm(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def gmean(xs: list[float]) -> float:
        return float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")

    big = [r["vs_torch"] for r in rows if r["family"] == "gemm" and r["M"] >= 64]
    one = [r for r in rows if r["family"] == "gemm" and r["M"] == 1]
    return {
        "gemm_m>=64_geomean_vs_torch": gmean(big),
        "gemm_m>=64_min_vs_torch": min(big) if big else float("nan"),
        "gemm_m=1_geomean_vs_torch": gmean([r["vs_torch"] for r in one]),
        "gemm_m=1_geomean_vs_numpy": gmean([r["vs_numpy"] for r in one if "vs_numpy" in r]),
    }


# ------------------------------------------------------------------------------------------------------ registry

# (name, benchmark function, summary function or None); other families append their entries here.
BENCHMARKS: list[tuple[str, Callable[..., list[dict[str, Any]]], Callable[..., dict[str, Any]] | None]] = [
    ("gemm", bench_gemm, summarize_gemm),
]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
            "threads": torch.get_num_threads(), "kernel_isa": native.kernel_isa(),
            "build": native.build_info(), "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the rows, summaries and machine to this file")
    ap.add_argument("--only", help="comma-separated families (default: all)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LEPTON_BENCH_THREADS", "2")))
    ap.add_argument("--quick", action="store_true", help="a subset of the shapes (smoke test)")
    args = ap.parse_args(argv)
    if not native.available():
        print("lepton_graph._C is not built", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    native.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    info = machine()
    print(f"# {info['cpu']}, {info['cores']} cpus, {args.threads} threads, torch {info['torch']}, "
          f"kernels {info['kernel_isa']}")
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for name, fn, summarize in BENCHMARKS:
        if only and name not in only:
            continue
        fam_rows = fn(args.rounds, quick=args.quick)
        rows += fam_rows
        if summarize:
            s = summarize(fam_rows)
            summary.update(s)
            for key, v in s.items():
                print(f"  {key}: {v:.3f}")
    if args.json:
        out = {"when": dt.datetime.now().isoformat(timespec="seconds"), "machine": info, "rounds": args.rounds,
               "summary": summary, "rows": rows}
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
