"""Throughput of one compiled model called from 1, 2 and 4 Python threads at once (issue 11's concurrency figure):
calls per second, thread counts interleaved in rounds, every call's native kernels using the default thread count
(requests and intra-op threads share the cores).

    python bench/concurrency.py --models resnet18_b1,bert_b1_s128,mlp_b1 --md bench/results/concurrency_<date>_<cpu>.md
"""

from __future__ import annotations

import argparse
import functools
import statistics
import threading
import time

import torch

THREADS = (1, 2, 4)


def calls_per_s(fn: object, n_threads: int, calls: int) -> float:
    def work() -> None:
        with torch.no_grad():
            for _ in range(calls // n_threads):
                fn()  # type: ignore[operator]

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (calls // n_threads) * n_threads / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18_b1,bert_b1_s128,mlp_b1")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--seconds", type=float, default=1.0, help="about this long per thread count and round")
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    import lepton_graph
    from lepton_graph import zoo
    from lepton_graph.backends.cpu import native
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit

    lines = [
        f"## one compiled model, several calling threads, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; {native.get_num_threads()} kernel threads; torch {torch.__version__}; commit "
        f"{git_commit()}. Calls per second (median of {ns.rounds} rounds, thread counts interleaved); every result "
        "is checked against eager in tests/runtime/test_concurrency.py.",
        "",
        "| model | 1 thread | 2 threads | 4 threads | 2 / 1 | 4 / 1 |",
        "|---|---|---|---|---|---|",
    ]
    for name in ns.models.split(","):
        model, (args, kwargs) = zoo.build(name)
        compiled = lepton_graph.compile(model)
        with torch.no_grad():
            t0 = time.perf_counter()
            for _ in range(3):
                compiled(*args, **kwargs)
            per_call = (time.perf_counter() - t0) / 3
        calls = max(4, int(ns.seconds / per_call) // 4 * 4)
        rates: dict[int, list[float]] = {n: [] for n in THREADS}
        call = functools.partial(compiled, *args, **kwargs)
        for r in range(ns.rounds):
            for n in THREADS if r % 2 == 0 else THREADS[::-1]:
                rates[n].append(calls_per_s(call, n, calls))
        med = {n: statistics.median(v) for n, v in rates.items()}
        lines.append(
            f"| {name} | {med[1]:.1f} | {med[2]:.1f} | {med[4]:.1f} | {med[2] / med[1]:.2f}x | {med[4] / med[1]:.2f}x |"
        )
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
