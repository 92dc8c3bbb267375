"""Kernel micro-benchmarks: our native kernels against torch (and numpy where relevant), per family.

Each family contributes benchmark functions to ``BENCHMARKS``; a benchmark returns rows (dicts) with a "case",
the implementations' median seconds per call ("<impl>_s"), their GFLOP/s and the ratios peer_time / our_time
(> 1: we are faster). Implementations of one case are timed in the same process, in interleaved rounds (the order
rotating round to round) so the machine's drift hits all of them alike; only ratios are meaningful across runs.

    python bench/kernel_bench.py [--json FILE] [--only gemm] [--rounds 7] [--quick] [--baseline SO]

``--baseline`` loads a second build of ``_C`` (``bash bench/build_baseline.sh REV``) and times it as "before" in
the same rounds as the current build, for the GEMM, int8 GEMM, conv and pool families: before/after ratios that the
machine's drift cannot fake. ``--current`` runs a script-built copy of the working tree (``bash
bench/build_baseline.sh . build/current``) in place of the installed ``_C``, so before and after come from one build
recipe (scikit-build's and the script's builds are not guaranteed to place code alike).
"""

from __future__ import annotations

import os

# numpy's OpenBLAS threads busy-wait ~2^28 cycles (~0.1 s) after each call by default, stealing both cores from
# whichever implementation runs next in an interleaved round; 2^20 cycles (~0.3 ms) still keeps them spinning
# between back-to-back calls. Must be set before numpy (and torch, which imports it) is loaded.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

import argparse  # noqa: E402
import datetime as dt
import functools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: python bench/kernel_bench.py
    # Python put bench/ itself first on sys.path, making every bench/*.py a top-level module that shadows any
    # installed distribution of that name; the repository root takes its place (its folders are namespace portions).
    sys.path[0] = str(Path(__file__).resolve().parents[1])


def load_baseline(path: str) -> Any:
    """The ``_C`` extension at ``path``, built with its own pybind11 internals (bench/build_baseline.sh)."""
    import importlib.machinery
    import importlib.util

    # A qualified name of its own per file: CPython caches single-phase extension modules by name, so a second
    # build loaded as plain "_C" would silently be the first one again.
    name = f"lg_build_{abs(hash(str(Path(path).resolve())))}._C"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


# --current SO: the whole process uses this build as lepton_graph._C (set before lepton_graph imports it), so a
# before/after pair can come from the same build recipe (both from bench/build_baseline.sh).
if "--current" in sys.argv[:-1]:
    sys.modules["lepton_graph._C"] = load_baseline(sys.argv[sys.argv.index("--current") + 1])

from lepton_graph.backends.cpu import native  # noqa: E402

Impl = Callable[[], Any]

# A second build of _C (--baseline): timed as "before" beside the current one.
BASELINE: Any = None


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
        order = names[r % len(names) :] + names[: r % len(names)]
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
    from lepton_graph import _C

    rows = []
    ms = GEMM_M[:2] if quick else GEMM_M
    # the FMA peak of the kernels' ISA on this machine, measured (the GEMM rows are stated as a fraction of it)
    peak = _C.fma_peak(0.6, 0)
    lanes = {"avx512": 16, "avx2": 8}.get(peak["isa"], 0)
    PEAK.update(peak, clock_ghz=peak["gflops_per_thread"] / (2 * 2 * lanes) if lanes else 0.0)
    print(
        f"# fp32 FMA peak ({peak['isa']}, measured): {peak['gflops']:.1f} GF/s on {peak['threads']} threads, "
        f"{peak['gflops_per_thread']:.1f} on one (2 FMA ports x {lanes} lanes x 2 flops: "
        f"~{PEAK['clock_ghz']:.2f} GHz)"
    )
    for n, k in GEMM_NK:
        for m in ms:
            row = _gemm_case(m, n, k, rounds)
            if peak["gflops"] > 0:
                row["ours_frac_of_peak"] = row["ours_gflops"] / peak["gflops"]
                row["torch_frac_of_peak"] = row["torch_gflops"] / peak["gflops"]
            rows.append(row)
            _print_gemm_row(row)
    return rows


PEAK: dict[str, Any] = {}  # the fp32 FMA peak bench_gemm measured (lepton_graph._C.fma_peak)


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
    if BASELINE is not None:
        c_before, old = torch.empty(m, n), BASELINE.gemm_pack_b_f32(w.data_ptr(), k, n, n, 1)
        impls["before"] = lambda: BASELINE.gemm_packed(a_ptr, m, k, k, old, c_before.data_ptr(), n)
    if m == 1:
        an, wn, cn = a.numpy(), w.numpy(), np.empty((m, n), dtype=np.float32)
        impls["numpy"] = lambda: np.dot(an, wn, out=cn)
    times = time_interleaved(impls, rounds)
    impls["ours"]()
    ref = a.double() @ w.double()
    err = ((c_ours - ref).abs().max() / ref.abs().max()).item()
    flop = 2.0 * m * n * k
    row: dict[str, Any] = {"family": "gemm", "case": f"{m}x{n}x{k}", "M": m, "N": n, "K": k, "rel_err": err}
    return _add_rates(row, times, flop, "ours", "gflops")


def _before_after(row: dict[str, Any]) -> str:
    """The row's " before/after x.xx" column when a baseline build was timed (--baseline), else nothing."""
    return f" before/after {row['vs_before']:5.2f}" if "vs_before" in row else ""


def _add_rates(row: dict[str, Any], times: dict[str, float], ops: float, ours: str, unit: str) -> dict[str, Any]:
    """Each implementation's seconds and rate (ops / s in units of 1e9), and the others' time over ours."""
    for name, t in times.items():
        row[f"{name}_s"] = t
        row[f"{name}_{unit}"] = ops / t / 1e9
        if name != ours:
            row[f"vs_{name}"] = t / times[ours]
    return row


def _print_gemm_row(row: dict[str, Any]) -> None:
    if not getattr(_print_gemm_row, "header", False):
        print(
            f"{'M x N x K':>18} {'ours GF/s':>10} {'% peak':>7} {'torch GF/s':>11} {'% peak':>7} {'ours/torch':>11} "
            f"{'numpy GF/s':>11} {'ours/numpy':>11}"
        )
        _print_gemm_row.header = True  # type: ignore[attr-defined]
    np_gf = f"{row['numpy_gflops']:11.1f}" if "numpy_gflops" in row else f"{'':11}"
    np_r = f"{row['vs_numpy']:11.2f}" if "vs_numpy" in row else f"{'':11}"
    before = _before_after(row)
    frac = {
        k: f"{100 * row[f'{k}_frac_of_peak']:7.0f}" if f"{k}_frac_of_peak" in row else f"{'':7}"
        for k in ("ours", "torch")
    }
    print(
        f"{row['case']:>18} {row['ours_gflops']:10.1f} {frac['ours']} {row['torch_gflops']:11.1f} {frac['torch']} "
        f"{row['vs_torch']:11.2f} {np_gf} {np_r}{before}",
        flush=True,
    )


def summarize_gemm(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def gmean(xs: list[float]) -> float:
        return float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")

    big_rows = [r for r in rows if r["family"] == "gemm" and r["M"] >= 64]
    big = [r["vs_torch"] for r in big_rows]
    one = [r for r in rows if r["family"] == "gemm" and r["M"] == 1]
    peak = {}
    if PEAK.get("gflops"):
        # N = 10 (the MLP's classifier) is one 16-wide column pass: bound by packing and the epilogue, not FMAs
        wide = [r for r in big_rows if r["N"] >= 64 and "ours_frac_of_peak" in r]
        peak = {
            "fma_peak_gflops": PEAK["gflops"],
            "fma_peak_gflops_one_thread": PEAK["gflops_per_thread"],
            "gemm_m>=64_median_frac_of_peak": float(np.median([r["ours_frac_of_peak"] for r in wide])),
            "gemm_m>=64_min_frac_of_peak": min(r["ours_frac_of_peak"] for r in wide),
            "torch_m>=64_median_frac_of_peak": float(np.median([r["torch_frac_of_peak"] for r in wide])),
        }
    return {
        **peak,
        "gemm_m>=64_geomean_vs_torch": gmean(big),
        "gemm_m>=64_min_vs_torch": min(big) if big else float("nan"),
        "gemm_m=1_geomean_vs_torch": gmean([r["vs_torch"] for r in one]),
        "gemm_m=1_geomean_vs_numpy": gmean([r["vs_numpy"] for r in one if "vs_numpy" in r]),
    }


# ------------------------------------------------------------------------------------------------------ int8 GEMM


def bench_gemm_int8(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    """int8-dynamic GEMM (A quantized per row at run time, s8 weights per channel, VNNI) vs our fp32 GEMM on the
    same pre-packed weight and vs torch's dynamic int8 linear (fbgemm/onednn); rates in GOP/s (2 per multiply-add,
    the quantization of A included), on the zoo's shapes; plus GEMVs on weights larger than L3."""
    rows = []
    ms = GEMM_M[:2] if quick else GEMM_M
    shapes = [(m, n, k) for n, k in GEMM_NK for m in ms] + [(1, 4096, 4096), (1, 8192, 4096)]
    for m, n, k in shapes:
        row = _gemm_int8_case(m, n, k, rounds)
        rows.append(row)
        if not getattr(bench_gemm_int8, "header", False):
            print(
                f"{'M x N x K':>18} {'int8 GOP/s':>11} {'fp32 GF/s':>10} {'int8/fp32':>10} {'torch-int8':>11} "
                f"{'int8/torch':>11} {'W GB/s':>7}"
            )
            bench_gemm_int8.header = True  # type: ignore[attr-defined]
        before = _before_after(row)
        print(
            f"{row['case']:>18} {row['int8_gops']:11.1f} {row['fp32_gops']:10.1f} {row['vs_fp32']:10.2f} "
            f"{row['torch_int8_gops']:11.1f} {row['vs_torch_int8']:11.2f} {row['weight_gbs']:7.1f}{before}",
            flush=True,
        )
    return rows


def _gemm_int8_case(m: int, n: int, k: int, rounds: int) -> dict[str, Any]:
    from lepton_graph import _C
    from lepton_graph.backends.cpu.gemm import pack_weight, pack_weight_s8
    from lepton_graph.ir.defs.quant import qlinear, quantize_weight_per_channel

    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g)
    w = torch.randn(n, k, generator=g) / k**0.5
    wq, scale = quantize_weight_per_channel(w)
    p8, p32 = pack_weight_s8(wq, scale), pack_weight(w, transposed=True)
    lin = torch.nn.Linear(k, n, bias=False)
    lin.weight.data = w
    tq = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear}, dtype=torch.qint8)
    c8, c32 = torch.empty(m, n), torch.empty(m, n)
    a_ptr = a.data_ptr()
    impls: dict[str, Impl] = {
        "int8": lambda: _C.gemm_u8s8_dynamic(a_ptr, m, k, k, p8, c8.data_ptr(), n),
        "fp32": lambda: _C.gemm_packed(a_ptr, m, k, k, p32, c32.data_ptr(), n),
        "torch_int8": lambda: tq(a),
    }
    if BASELINE is not None:
        scale_c = scale.contiguous()
        old = BASELINE.gemm_pack_b_s8(wq.data_ptr(), k, n, wq.stride(1), wq.stride(0), scale_c.data_ptr())
        c_before = torch.empty(m, n)
        impls["before"] = lambda: BASELINE.gemm_u8s8_dynamic(a_ptr, m, k, k, old, c_before.data_ptr(), n)
    times = time_interleaved(impls, rounds)
    impls["int8"]()
    exact = torch.equal(c8, qlinear(a, wq, scale, act="dynamic"))
    ops = 2.0 * m * n * k
    row: dict[str, Any] = {
        "family": "gemm_int8",
        "case": f"{m}x{n}x{k}",
        "M": m,
        "N": n,
        "K": k,
        "matches_reference": exact,
        "weight_gbs": n * k / times["int8"] / 1e9,
    }
    return _add_rates(row, times, ops, "int8", "gops")


def summarize_gemm_int8(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def gmean(xs: list[float]) -> float:
        return float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")

    big = [r for r in rows if r["M"] >= 64]
    return {
        "int8_m>=64_geomean_vs_fp32": gmean([r["vs_fp32"] for r in big]),
        "int8_m>=64_min_vs_fp32": min((r["vs_fp32"] for r in big), default=float("nan")),
        "int8_m>=64_geomean_vs_torch_int8": gmean([r["vs_torch_int8"] for r in big]),
        "int8_m=1_geomean_vs_fp32": gmean([r["vs_fp32"] for r in rows if r["M"] == 1]),
        "int8_all_match_reference": float(all(r["matches_reference"] for r in rows)),
    }


# ------------------------------------------------------------------------------------------------ weight-only GEMM

# (M, N, K): decode-shaped GEMVs on weights larger than L3 in fp32 (Llama-7B's MLP and attention), then few-row and
# many-row GEMMs (where the weight is dequantized per panel slice for the fp32 micro-kernel)
WO_SHAPES = ((1, 4096, 4096), (1, 11008, 4096), (1, 4096, 11008), (4, 11008, 4096), (8, 4096, 4096),
             (16, 4096, 4096), (64, 3072, 768), (128, 3072, 768))  # fmt: skip


def bench_gemm_wo(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    """Weight-only int8 (per channel) and int4 (asymmetric, groups of 128) GEMM vs our fp32 GEMM on the same
    weight, interleaved; "W GB/s" is the packed weight's bytes (with scales) per second: at M = 1 the kernels
    stream it once."""
    rows = []
    for m, n, k in WO_SHAPES[:3] if quick else WO_SHAPES:
        row = _gemm_wo_case(m, n, k, rounds)
        rows.append(row)
        if not getattr(bench_gemm_wo, "header", False):
            print(f"{'M x N x K':>18} {'fp32 ms':>8} {'int8w ms':>9} {'x fp32':>7} {'GB/s':>6} {'int4w ms':>9} "
                  f"{'x fp32':>7} {'GB/s':>6} {'fp32 GB/s':>9}")  # fmt: skip
            bench_gemm_wo.header = True  # type: ignore[attr-defined]
        print(
            f"{row['case']:>18} {row['fp32_s'] * 1e3:8.3f} {row['int8w_s'] * 1e3:9.3f} {row['int8w_vs_fp32']:7.2f} "
            f"{row['int8w_gbs']:6.1f} {row['int4w_s'] * 1e3:9.3f} {row['int4w_vs_fp32']:7.2f} {row['int4w_gbs']:6.1f} "
            f"{row['fp32_gbs']:9.1f}",
            flush=True,
        )
    return rows


def _gemm_wo_case(m: int, n: int, k: int, rounds: int) -> dict[str, Any]:
    from lepton_graph import _C
    from lepton_graph.backends.cpu.gemm import pack_weight, pack_weight_wo
    from lepton_graph.ir.defs.quant import quantize_weight_groups, wqlinear

    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g)
    w = torch.randn(n, k, generator=g) / k**0.5
    q8, q4 = quantize_weight_groups(w, 8, 0), quantize_weight_groups(w, 4, 128)
    p32, p8, p4 = pack_weight(w, transposed=True), pack_weight_wo(*q8, 8, 0, k), pack_weight_wo(*q4, 4, 128, k)
    c = {name: torch.empty(m, n) for name in ("fp32", "int8w", "int4w")}
    a_ptr = a.data_ptr()
    impls: dict[str, Impl] = {
        "fp32": lambda: _C.gemm_packed(a_ptr, m, k, k, p32, c["fp32"].data_ptr(), n),
        "int8w": lambda: _C.gemm_wo_packed(a_ptr, m, k, k, p8, c["int8w"].data_ptr(), n),
        "int4w": lambda: _C.gemm_wo_packed(a_ptr, m, k, k, p4, c["int4w"].data_ptr(), n),
    }
    times = time_interleaved(impls, rounds)
    err = 0.0
    for name, (qq, ss, zz), bits, grp in (("int8w", q8, 8, 0), ("int4w", q4, 4, 128)):
        impls[name]()
        ref = wqlinear(a, qq, ss, zz, bits=bits, group=grp)
        err = max(err, float((c[name] - ref).abs().max() / ref.abs().max().clamp_min(1e-30)))
    row: dict[str, Any] = {"family": "gemm_wo", "case": f"{m}x{n}x{k}", "M": m, "N": n, "K": k, "max_rel_err": err}
    for name, nbytes in (("fp32", n * k * 4), ("int8w", p8.nbytes), ("int4w", p4.nbytes)):
        row[f"{name}_s"] = times[name]
        row[f"{name}_gbs"] = nbytes / times[name] / 1e9
        if name != "fp32":
            row[f"{name}_vs_fp32"] = times["fp32"] / times[name]
    return row


def summarize_gemm_wo(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def gmean(xs: list[float]) -> float:
        return float(np.exp(np.mean(np.log(xs)))) if xs else float("nan")

    one = [r for r in rows if r["M"] == 1]
    return {
        "int8w_m=1_geomean_vs_fp32": gmean([r["int8w_vs_fp32"] for r in one]),
        "int4w_m=1_geomean_vs_fp32": gmean([r["int4w_vs_fp32"] for r in one]),
        "wo_max_rel_err": max((r["max_rel_err"] for r in rows), default=float("nan")),
    }


# ------------------------------------------------------------------------------------------------------ registry

# (name, benchmark function, summary function or None); other families append their entries here.
BENCHMARKS: list[tuple[str, Callable[..., list[dict[str, Any]]], Callable[..., dict[str, Any]] | None]] = [
    ("gemm", bench_gemm, summarize_gemm),
    ("gemm_int8", bench_gemm_int8, summarize_gemm_int8),
    ("gemm_wo", bench_gemm_wo, summarize_gemm_wo),
]


# ------------------------------------------------------------------------------------------ elementwise / norm
# (the elementwise family: programs, norms, softmax, reductions, movement)


def _lowered(nodes: list[tuple[Any, dict[str, Any]]], xs: list[torch.Tensor], outputs: int = 1) -> Any:
    """Our kernel for a chain: nodes[0] applied to xs, each later node to the previous value (one program if
    several); ``outputs`` = how many of the last values are outputs."""
    from lepton_graph.backends.cpu import eltwise, movement, norm  # noqa: F401  (registers the lowerings)
    from lepton_graph.backends.cpu.registry import lowering_for
    from lepton_graph.ir import DType, Graph

    g = Graph()
    ins = [g.add_input(tuple(x.shape), DType.from_torch(x.dtype)) for x in xs]
    vals = []
    for i, (op, attrs) in enumerate(nodes):
        args = (ins[:2] if len(nodes) > 1 and nodes[1][0] in norm._ROW_OPS else ins) if i == 0 else [vals[-1]]
        if i == 1 and op in norm._ROW_OPS:  # a row op after a prologue takes (value, weight, bias)
            args = [vals[-1], *ins[2:]]
        vals.append(g.add_node(op, args, attrs).out)
    g.outputs = vals[-outputs:]
    if len(nodes) == 1:
        k = lowering_for(g.nodes[0])(g.nodes[0], g)
    elif any(n.op in norm._ROW_OPS for n in g.nodes):
        k = norm._lower_rows(g.nodes, g.inputs, g.outputs)
    else:
        k = eltwise.program_kernel(eltwise.build_program(g.nodes, g.inputs, g.outputs), g.outputs)
    assert not isinstance(k, str), k
    return k


L3_BYTES = 32 << 20  # the bench machine's L3 (2-core Zen 4 VM); working sets below it are cache-resident


def _bound(k: Any, xs: list[torch.Tensor], ys: list[torch.Tensor]) -> Impl:
    """Our lowered kernel's program run into preallocated outputs (BoundProgram: data pointers only)."""
    b = k.program.bind([list(t.shape) for t in xs], [list(t.stride()) for t in xs], list(ys[0].shape))
    ptrs = [t.data_ptr() for t in xs] + [t.data_ptr() for t in ys]
    keep = (xs, ys)
    return lambda: (b.run(*ptrs), keep)


def bench_eltwise(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    """Elementwise programs, norms, softmax, reductions and copies vs the torch op and vs a memory copy moving the
    same number of bytes (half read, half written: the same working set, so the same cache regime).

    GB/s counts each input read once and each output written once. Kernel rows write into preallocated outputs on
    every side (ours through a BoundProgram, torch with out= where it has one, the copy into a preallocated
    buffer), so they measure the kernels, not the allocator. Rows marked "alloc" run as the lowered graph does:
    ours and torch allocate their outputs per call and the copy baseline allocates its destination too; outputs
    above glibc's mmap threshold (32 MB) are fresh pages each call, and their page faults (~4 GB/s on this VM)
    dominate both sides. "ws" is the working set (input + output bytes): below the 32 MB L3 the case and its
    copy baseline are cache-resident."""
    from lepton_graph import _C
    from lepton_graph.ir import Op

    # LEPTON_BENCH_NO_GUARD=1: always split over the threads (no oversubscription guard), to compare with/without
    _C.set_parallel_guard(os.environ.get("LEPTON_BENCH_NO_GUARD", "0") != "1")
    F = torch.nn.functional
    n = (1 << 20) if quick else (1 << 23)
    a, b = torch.randn(n), torch.randn(n)
    y = torch.empty(n)
    rows_, d = (512 if quick else 8192), 768
    x2, r2 = torch.randn(rows_, d), torch.randn(rows_, d)
    y2, y2b = torch.empty(rows_, d), torch.empty(rows_, d)
    w, bias = torch.randn(d), torch.randn(d)
    big = torch.randn(rows_, 3072)
    b0 = big[0].clone()
    ybig = torch.empty_like(big)
    ysum = torch.empty(rows_)
    att = torch.randn(12 if quick else 96, 128, 128)
    att_l = torch.randn(48 if quick else 384, 128, 128)
    yatt, yatt_l = torch.empty_like(att), torch.empty_like(att_l)
    tr = torch.randn(12, rows_ // 4, 64).transpose(0, 1)
    ytr = torch.empty(tr.shape)
    ln = {"normalized_shape": (d,), "eps": 1e-12}

    k_bias = _lowered([(Op.ADD, {})], [big, b0])
    k_ln = _lowered([(Op.LAYER_NORM, ln)], [x2, w, bias])
    k_addln = _lowered([(Op.ADD, {}), (Op.LAYER_NORM, ln)], [x2, r2, w, bias], outputs=2)
    k_sm = _lowered([(Op.SOFTMAX, {"dim": -1})], [att])
    k_sm_l = _lowered([(Op.SOFTMAX, {"dim": -1})], [att_l])
    k_tr = _lowered([(Op.CONTIGUOUS, {})], [tr])
    red, cps = _C.reduce_f32, _C.copy_strided
    big_p, ysum_p, tr_p, ytr_p = big.data_ptr(), ysum.data_ptr(), tr.data_ptr(), ytr.data_ptr()
    tr_shape, tr_st, ytr_st = list(tr.shape), list(tr.stride()), list(ytr.stride())
    # (name, bytes, alloc, ours, torch)
    cases: list[tuple[str, int, bool, Impl, Impl]] = [
        (
            "relu f32[N]",
            8 * n,
            False,
            _bound(_lowered([(Op.RELU, {})], [a]), [a], [y]),
            lambda: torch.clamp_min(a, 0, out=y),
        ),
        (
            "add f32[N]+f32[N]",
            12 * n,
            False,
            _bound(_lowered([(Op.ADD, {})], [a, b]), [a, b], [y]),
            lambda: torch.add(a, b, out=y),
        ),
        (
            "relu(a+b) fused",
            12 * n,
            False,
            _bound(_lowered([(Op.ADD, {}), (Op.RELU, {})], [a, b]), [a, b], [y]),
            lambda: torch.relu_(torch.add(a, b, out=y)),
        ),
        (
            "gelu erf f32[N]",
            8 * n,
            False,
            _bound(_lowered([(Op.GELU, {"approximate": "none"})], [a]), [a], [y]),
            lambda: torch._C._nn.gelu(a, out=y),
        ),
        (
            "gelu tanh f32[N]",
            8 * n,
            False,
            _bound(_lowered([(Op.GELU, {"approximate": "tanh"})], [a]), [a], [y]),
            lambda: torch._C._nn.gelu(a, approximate="tanh", out=y),
        ),
        (
            "bias add [R,3072]+[3072]",
            8 * big.numel(),
            False,
            _bound(k_bias, [big, b0], [ybig]),
            lambda: torch.add(big, b0, out=ybig),
        ),
        ("bias add (alloc)", 8 * big.numel(), True, lambda: k_bias(big, b0), lambda: big + b0),
        (
            "layer_norm [R,768]",
            8 * x2.numel(),
            False,
            _bound(k_ln, [x2, w, bias], [y2]),
            lambda: F.layer_norm(x2, (d,), w, bias, 1e-12),
        ),
        (
            "add+layer_norm fused",
            16 * x2.numel(),
            False,
            _bound(k_addln, [x2, r2, w, bias], [y2, y2b]),
            lambda: F.layer_norm(torch.add(x2, r2, out=y2), (d,), w, bias, 1e-12),
        ),
        (
            "add+layer_norm (alloc)",
            16 * x2.numel(),
            True,
            lambda: k_addln(x2, r2, w, bias),
            lambda: F.layer_norm(torch.add(x2, r2), (d,), w, bias, 1e-12),
        ),
        (
            "softmax [B,128,128]",
            8 * att.numel(),
            False,
            _bound(k_sm, [att], [yatt]),
            lambda: torch._softmax(att, -1, False, out=yatt),
        ),
        (
            "softmax [4B,128,128]",
            8 * att_l.numel(),
            False,
            _bound(k_sm_l, [att_l], [yatt_l]),
            lambda: torch._softmax(att_l, -1, False, out=yatt_l),
        ),
        (
            "sum last dim [R,3072]",
            4 * big.numel(),
            False,
            lambda: red("sum", big_p, ysum_p, rows_, 3072, 1),
            lambda: torch.sum(big, 1, out=ysum),
        ),
        (
            "contiguous(transpose)",
            8 * tr.numel(),
            False,
            lambda: cps(tr_p, ytr_p, 4, tr_shape, tr_st, ytr_st),
            lambda: ytr.copy_(tr),
        ),
        ("contiguous (alloc)", 8 * tr.numel(), True, lambda: k_tr(tr), lambda: tr.contiguous()),
    ]
    rows: list[dict[str, Any]] = []
    print(
        f"{'case':>28} {'ws MB':>6} {'regime':>6} {'ours GB/s':>10} {'copy GB/s':>10} {'ours/copy':>10} "
        f"{'vs torch op':>12}"
    )
    for name, nbytes, alloc, ours, peer in cases:
        # the source must be written once: an untouched torch.empty maps every page to the kernel's one zero page,
        # whose reads hit the cache (the 2026-11-25 table's copy baselines read such a source)
        src = torch.empty(nbytes // 8).fill_(1.0)
        dst = torch.empty_like(src)
        copy: Impl = (lambda s=src: torch.empty_like(s).copy_(s)) if alloc else (lambda s=src, t=dst: t.copy_(s))
        times = time_interleaved({"ours": ours, "torch": peer, "copy": copy}, rounds)
        regime = "L3" if nbytes <= L3_BYTES else "DRAM"
        row = {
            "family": "eltwise",
            "case": name,
            "bytes": nbytes,
            "alloc": alloc,
            "regime": regime,
            **{f"{k}_s": v for k, v in times.items()},
            "ours_gbs": nbytes / times["ours"] / 1e9,
            "copy_gbs": nbytes / times["copy"] / 1e9,
            "vs_copy": times["copy"] / times["ours"],
            "vs_torch": times["torch"] / times["ours"],
        }
        rows.append(row)
        print(
            f"{name:>28} {nbytes / 2**20:6.0f} {regime:>6} {row['ours_gbs']:10.1f} {row['copy_gbs']:10.1f} "
            f"{row['vs_copy']:10.2f} {row['vs_torch']:12.2f}",
            flush=True,
        )
    return rows


def summarize_eltwise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    el = [r for r in rows if r["family"] == "eltwise"]
    kern = [r for r in el if not r.get("alloc")]
    return {
        "eltwise_geomean_vs_torch": float(np.exp(np.mean(np.log([r["vs_torch"] for r in el])))) if el else 0.0,
        "eltwise_min_vs_copy (kernel rows)": min((r["vs_copy"] for r in kern), default=0.0),
    }


BENCHMARKS.append(("eltwise", bench_eltwise, summarize_eltwise))


# ------------------------------------------------------------------------------------------------------ conv

# (name, N, C, H, W, OC, kernel, stride, padding, groups): ResNet-18/50 and MobileNetV2 layers at batch 1.
CONV_CASES = (
    ("stem 7x7/2 3->64 224", 1, 3, 224, 224, 64, 7, 2, 3, 1),
    ("3x3 64->64 56", 1, 64, 56, 56, 64, 3, 1, 1, 1),
    ("3x3/2 64->128 56", 1, 64, 56, 56, 128, 3, 2, 1, 1),
    ("1x1/2 64->128 56", 1, 64, 56, 56, 128, 1, 2, 0, 1),
    ("3x3 256->256 14", 1, 256, 14, 14, 256, 3, 1, 1, 1),
    ("3x3 512->512 7", 1, 512, 7, 7, 512, 3, 1, 1, 1),
    ("1x1 256->1024 14", 1, 256, 14, 14, 1024, 1, 1, 0, 1),
    ("dw 3x3 144 56", 1, 144, 56, 56, 144, 3, 1, 1, 144),
    ("3x3 64->64 56 b8", 8, 64, 56, 56, 64, 3, 1, 1, 1),
)


def bench_conv(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    """conv2d (+bias+relu) as the lowering builds it (Winograd where it picks Winograd, else the implicit GEMM),
    channels-last fp32, vs torch's conv2d on the same channels-last input (oneDNN) and relu."""
    rows: list[dict[str, Any]] = []
    print(f"{'case':>24} {'impl':>9} {'ours GF/s':>10} {'torch GF/s':>11} {'ours/torch':>11}")
    for case in CONV_CASES[:3] if quick else CONV_CASES:
        row = _conv_case(*case, rounds=rounds)
        rows.append(row)
        before = _before_after(row)
        print(
            f"{row['case']:>24} {row['impl']:>9} {row['ours_gflops']:10.1f} {row['torch_gflops']:11.1f} "
            f"{row['vs_torch']:11.2f}{before}",
            flush=True,
        )
    return rows


def _conv_run(conv: Any, x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor) -> Impl:
    """conv.run into y (data pointers bound once; the closure keeps the tensors alive)."""
    args = (
        x.data_ptr(),
        list(x.shape),
        list(x.stride()),
        y.data_ptr(),
        list(y.shape),
        list(y.stride()),
        bias.data_ptr(),
        0,
        (0, 0, 0, 0),
    )
    keep = (x, y, bias)
    return lambda: (conv.run(*args), keep)


def _conv_case(
    name: str, n: int, c: int, h: int, w_: int, oc: int, k: int, s: int, p: int, groups: int, rounds: int
) -> dict[str, Any]:
    from lepton_graph.backends.cpu.conv import make_conv, winograd_tile

    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w_, generator=g).contiguous(memory_format=torch.channels_last)
    wt = torch.randn(oc, c // groups, k, k, generator=g) / (c // groups * k * k) ** 0.5
    bias = torch.randn(oc, generator=g)
    tile = winograd_tile(tuple(wt.shape), tuple(x.shape), (s, s), (1, 1), groups, False)
    ours = make_conv(wt, (s, s), [p] * 4, (1, 1), groups, 1, False, False, tile)
    y = torch.empty(list(ours.output_shape(list(x.shape)))).contiguous(memory_format=torch.channels_last)
    conv2d = torch.nn.functional.conv2d
    impls: dict[str, Impl] = {
        "ours": _conv_run(ours, x, y, bias),
        "torch": lambda: torch.relu_(conv2d(x, wt, bias, s, p, 1, groups)),
    }
    if BASELINE is not None:
        wl = (wt.data_ptr(), list(wt.shape), list(wt.stride()))
        old = (
            BASELINE.Conv2dWinograd(*wl, [p] * 4, 1, False, tile, False)
            if tile
            else BASELINE.Conv2dF32(*wl, groups, [s, s], [p] * 4, [1, 1], 1, False)
        )
        impls["before"] = _conv_run(old, x, torch.empty_like(y), bias)
    times = time_interleaved(impls, rounds)
    impls["ours"]()
    ref = torch.relu(conv2d(x.double(), wt.double(), bias.double(), s, p, 1, groups))
    err = ((y - ref).abs().max() / ref.abs().max()).item()
    flop = 2.0 * n * oc * y.shape[2] * y.shape[3] * (c // groups) * k * k
    row: dict[str, Any] = {"family": "conv", "case": name, "impl": f"wino F{tile}" if tile else "gemm", "rel_err": err}
    return _add_rates(row, times, flop, "ours", "gflops")


def summarize_conv(rows: list[dict[str, Any]]) -> dict[str, Any]:
    r = [x["vs_torch"] for x in rows if x["family"] == "conv"]
    out = {"conv_geomean_vs_torch": float(np.exp(np.mean(np.log(r)))) if r else float("nan")}
    return out


BENCHMARKS.append(("conv", bench_conv, summarize_conv))


# ------------------------------------------------------------------------------------------------------ pooling

# (name, N, C, H, W, kernel, stride, padding, kind): ResNet's stem max pool and a 2x2 average pool, channels-last.
POOL_CASES = (
    ("max 3x3/2 64x112x112", 1, 64, 112, 112, 3, 2, 1, "max"),
    ("max 3x3/2 64x112x112 b8", 8, 64, 112, 112, 3, 2, 1, "max"),
    ("avg 2x2/2 256x56x56", 1, 256, 56, 56, 2, 2, 0, "avg"),
)


def bench_pool(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    """Channels-last fp32 pooling vs torch's max_pool2d / avg_pool2d on the same input; GB/s moved (input read once,
    output written once) against a plain copy of the input, the memory-bound ceiling."""
    rows: list[dict[str, Any]] = []
    print(f"{'case':>26} {'ours GB/s':>10} {'copy GB/s':>10} {'ours/copy':>10} {'ours/torch':>11}")
    for case in POOL_CASES[:1] if quick else POOL_CASES:
        row = _pool_case(*case, rounds=rounds)
        rows.append(row)
        before = _before_after(row)
        print(
            f"{row['case']:>26} {row['ours_gbs']:10.1f} {row['copy_gbs']:10.1f} {row['vs_copy']:10.2f} "
            f"{row['vs_torch']:11.2f}{before}",
            flush=True,
        )
    return rows


def _pool_case(name: str, n: int, c: int, h: int, w: int, k: int, s: int, p: int, kind: str, rounds: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    ref = torch.nn.functional.max_pool2d(x, k, s, p) if kind == "max" else torch.nn.functional.avg_pool2d(x, k, s, p)

    def runner(lib: Any) -> Impl:
        y = torch.empty(n, c, oh, ow).contiguous(memory_format=torch.channels_last)
        shapes = (list(x.shape), list(x.stride()), list(y.shape), list(y.stride()))
        a = (x.data_ptr(), shapes[0], shapes[1], y.data_ptr(), shapes[2], shapes[3], [k, k], [s, s], [p, p])
        keep = (x, y)
        if kind == "max":
            return lambda: (lib.max_pool2d_f32(*a, [1, 1], False), keep)
        return lambda: (lib.avg_pool2d_f32(*a, False, True, 0), keep)

    from lepton_graph import _C

    ours = runner(_C)
    torch_op = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    xc = torch.empty_like(x)
    impls: dict[str, Impl] = {"ours": ours, "torch": lambda: torch_op(x, k, s, p), "copy": lambda: xc.copy_(x)}
    if BASELINE is not None:
        impls["before"] = runner(BASELINE)
    times = time_interleaved(impls, rounds)
    out = ours()[1][1]
    assert torch.equal(out, ref) if kind == "max" else torch.allclose(out, ref, atol=1e-6)
    moved = 4.0 * (x.numel() + n * c * oh * ow)
    row: dict[str, Any] = {"family": "pool", "case": name, **{f"{k_}_s": v for k_, v in times.items()}}
    row.update(ours_gbs=moved / times["ours"] / 1e9, copy_gbs=8.0 * x.numel() / times["copy"] / 1e9)
    row.update(vs_copy=row["ours_gbs"] / row["copy_gbs"], vs_torch=times["torch"] / times["ours"])
    if "before" in times:
        row["vs_before"] = times["before"] / times["ours"]
    return row


BENCHMARKS.append(("pool", bench_pool, None))


# ---------------------------------------------------------------------------------------- per-kernel dispatch

DISPATCH_DEPTHS = (16, 64)


class _Chain(torch.nn.Module):
    """``depth`` tiny linears (4 x 4) with a ReLU between: one native kernel each (linear + ReLU fuse), work so
    small that a call's time is the executor's dispatch."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return x


def bench_dispatch(rounds: int, quick: bool = False) -> list[dict[str, Any]]:
    """What one kernel costs the executor beyond its work (issue 11): a chain of tiny layers compiled, time per call
    over kernels per call, against torch eager per op on the same chain (its own dispatch)."""
    import lepton_graph

    rows = []
    print(f"{'chain':>18} {'kernels':>8} {'ours us/kernel':>15} {'eager us/op':>12} {'eager/ours':>11}")
    for depth in DISPATCH_DEPTHS[:1] if quick else DISPATCH_DEPTHS:
        torch.manual_seed(depth)
        model = _Chain(depth).eval()
        x = torch.randn(1, 4)
        compiled = lepton_graph.compile(model)
        with torch.no_grad():
            compiled(x)
            kernels = compiled.report().as_dict()["kernels_per_call"]
            ops = 2 * depth  # eager: linear and relu per layer
            impls = {"ours": functools.partial(compiled, x), "eager": functools.partial(model, x)}
            times = time_interleaved(impls, rounds)
        row = {
            "family": "dispatch",
            "case": f"{depth} x linear+relu",
            "kernels": kernels,
            "ours_us_per_kernel": times["ours"] / kernels * 1e6,
            "eager_us_per_op": times["eager"] / ops * 1e6,
            "ours_s": times["ours"],
            "eager_s": times["eager"],
        }
        row["eager_over_ours"] = row["eager_us_per_op"] / row["ours_us_per_kernel"]
        rows.append(row)
        print(
            f"{row['case']:>18} {kernels:8d} {row['ours_us_per_kernel']:15.2f} {row['eager_us_per_op']:12.2f} "
            f"{row['eager_over_ours']:11.2f}",
            flush=True,
        )
    return rows


BENCHMARKS.append(("dispatch", bench_dispatch, None))


def summarize_before(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per family: geometric mean and worst case of before / after (> 1: the current build is faster)."""
    out: dict[str, Any] = {}
    for fam in sorted({r["family"] for r in rows if "vs_before" in r}):
        v = [r["vs_before"] for r in rows if r["family"] == fam and "vs_before" in r]
        out[f"{fam}_before/after_geomean"] = float(np.exp(np.mean(np.log(v))))
        out[f"{fam}_before/after_min"] = min(v)
    return out


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": torch.get_num_threads(),
        "kernel_isa": native.kernel_isa(),
        "build": native.build_info(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the rows, summaries and machine to this file")
    ap.add_argument("--only", help="comma-separated families (default: all)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("LEPTON_BENCH_THREADS", "2")))
    ap.add_argument("--quick", action="store_true", help="a subset of the shapes (smoke test)")
    ap.add_argument("--baseline", help="a second _C build (bench/build_baseline.sh) timed as 'before'")
    ap.add_argument(
        "--current",
        help="run this _C build instead of the installed one (bench/build_baseline.sh .): "
        "before and after from the same build recipe",
    )
    args = ap.parse_args(argv)
    if not native.available():
        print("lepton_graph._C is not built", file=sys.stderr)
        return 1
    global BASELINE
    if args.baseline:
        BASELINE = load_baseline(args.baseline)
        BASELINE.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    native.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    info = machine()
    print(
        f"# {info['cpu']}, {info['cores']} cpus, {args.threads} threads, torch {info['torch']}, "
        f"kernels {info['kernel_isa']}"
    )
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
    if BASELINE is not None:
        s = summarize_before(rows)
        summary.update(s)
        for key, v in s.items():
            print(f"  {key}: {v:.3f}")
    if args.json:
        out = {
            "when": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": info,
            "rounds": args.rounds,
            "summary": summary,
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
