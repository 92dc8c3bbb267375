"""The int8 conv against our fp32 conv (the kernel the lowering picks: Winograd F(4x4)/F(2x2) or direct) on
ResNet-18's conv shapes at batch 1, interleaved rounds in one process: the measurement behind the quantize pass's
choice to keep Winograd layers fp32 without AVX512-VNNI (backends/cpu/conv.py: float_conv_is_faster).

    python bench/conv_int8.py --rounds 15 --md bench/results/conv_int8_<date>_<cpu>.md
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

# (C, H=W, OC, kernel, stride, padding)
SHAPES = [
    (3, 224, 64, 7, 2, 3),
    (64, 56, 64, 3, 1, 1),
    (64, 56, 128, 3, 2, 1),
    (64, 56, 128, 1, 2, 0),
    (128, 28, 128, 3, 1, 1),
    (128, 28, 256, 3, 2, 1),
    (256, 14, 256, 3, 1, 1),
    (256, 14, 512, 3, 2, 1),
    (512, 7, 512, 3, 1, 1),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    from lepton_graph.backends.cpu import conv as cc
    from lepton_graph.backends.cpu import native
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit
    from lepton_graph.ir.defs.quant import quantize_weight_per_channel

    variants = native.kernel_variants()
    lines = [
        f"## int8 conv vs fp32 conv, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; kernels f32 {variants['conv_f32']}, int8 {variants['gemm_int8']}; "
        f"{native.get_num_threads()} threads; commit {git_commit()}. Batch 1, channels_last input, "
        f"{ns.rounds} interleaved rounds, median ms.",
        "",
        "| C | HxW | OC | k | s | fp32 kernel | fp32 ms | int8 ms | int8 / fp32 speed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c, hw, oc, k, s, pad in SHAPES:
        x = torch.randn(1, c, hw, hw).contiguous(memory_format=torch.channels_last)
        w = torch.randn(oc, c, k, k)
        w8, scale = quantize_weight_per_channel(w.reshape(oc, -1))
        tile = cc.winograd_tile((oc, c, k, k), (1, c, hw, hw), (s, s), (1, 1), 1, False)
        f32 = cc.make_conv(w, (s, s), [pad] * 4, (1, 1), 1, 0, True, False, tile)
        i8 = cc.make_qconv(w8.reshape(oc, c, k, k), scale, (s, s), [pad] * 4, (1, 1), 0, True, (0.02, 128))
        times: dict[str, list[float]] = {"f32": [], "int8": []}
        for _ in range(ns.rounds):
            for name, conv in (("f32", f32), ("int8", i8)):
                t0 = time.perf_counter()
                cc._direct_run(conv, x, None, None)
                times[name].append(time.perf_counter() - t0)
        a, b = statistics.median(times["f32"]), statistics.median(times["int8"])
        kind = f"Winograd F({tile}x{tile})" if tile else "direct"
        lines.append(f"| {c} | {hw} | {oc} | {k} | {s} | {kind} | {a * 1e3:.2f} | {b * 1e3:.2f} | {a / b:.2f}x |")
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
