"""The long form of the hot-swap load test (tests/runtime/test_serve.py runs a short one): `lepton-graph serve
FILE --watch` in its own process, N client threads posting JSON without pause for D seconds over loopback, the
served file replaced atomically S times (as `lepton-graph export` writes it). Counts failed requests and answers
that differ from the output of the version they name; latency percentiles in steady state and during swaps (from a
file's replacement until the first answer of the new version, plus 0.5 s).

    python bench/serve_load.py --model mlp_b1 --clients 16 --seconds 30 --swaps 5 --md bench/results/serve_load.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch


def _versions(name: str, n: int, workdir: Path) -> tuple[list[Path], tuple, dict, list[torch.Tensor]]:
    import lepton_graph
    from lepton_graph import zoo

    paths, outs = [], []
    args: tuple = ()
    kwargs: dict = {}
    for i in range(n):
        model, (args, kwargs) = zoo.build(name, seed=i)  # same inputs' shapes, other weights per seed
        if i == 0:
            first = (args, kwargs)
        c = lepton_graph.compile(model)
        c(*first[0], **first[1])
        paths.append(workdir / f"v{i + 1}.lgraph")
        c.export(paths[-1], lepton_graph.Inputs(*first[0], **first[1]))
        outs.append(lepton_graph.load(paths[-1])(*first[0], **first[1]))
    return paths, first[0], first[1], outs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp_b1")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--swaps", type=int, default=5)
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit
    from lepton_graph.bench.timing import percentile
    from lepton_graph.serve import serving

    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        work = Path(d)
        paths, args, kwargs, outs = _versions(ns.model, ns.swaps + 1, work)
        served = work / "served.lgraph"
        shutil.copy(paths[0], served)
        url = stack.enter_context(serving(served, "--watch"))
        body = json.dumps({"args": [a.tolist() for a in args], "kwargs": {k: v.tolist() for k, v in kwargs.items()}})
        records: list[tuple[float, float, int | None, bool]] = []  # start, latency, version, answer matches
        stop = threading.Event()
        leaves = [torch.utils._pytree.tree_leaves(o) for o in outs]

        def client() -> None:
            req = urllib.request.Request(url + "/v1/infer", body.encode(), {"Content-Type": "application/json"})
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        data = json.loads(r.read())
                    got = torch.utils._pytree.tree_leaves(data["outputs"])
                    v = int(data["version"])
                    ok = len(got) == sum(t.numel() for t in leaves[v - 1]) and torch.equal(
                        torch.tensor(got, dtype=torch.float32),
                        torch.cat([t.reshape(-1) for t in leaves[v - 1]]),
                    )
                    records.append((t0, time.perf_counter() - t0, v, ok))
                except Exception:  # noqa: BLE001 - a failed request is what is counted
                    records.append((t0, time.perf_counter() - t0, None, False))

        threads = [threading.Thread(target=client) for _ in range(ns.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        swaps: list[float] = []
        try:
            gap = ns.seconds / (ns.swaps + 1)
            for i in range(1, ns.swaps + 1):
                time.sleep(max(0.0, start + i * gap - time.perf_counter()))
                tmp = work / "next.tmp"
                shutil.copy(paths[i], tmp)
                swaps.append(time.perf_counter())
                os.replace(tmp, served)
            time.sleep(max(0.0, start + ns.seconds - time.perf_counter()))
        finally:
            stop.set()
            for t in threads:
                t.join()
    windows = []
    for i, t_swap in enumerate(swaps, start=2):
        first_new = min((r[0] + r[1] for r in records if r[2] == i), default=t_swap)
        windows.append((t_swap, first_new + 0.5))
    during = [r[1] for r in records if any(a <= r[0] <= b for a, b in windows)]
    steady = [r[1] for r in records if not any(a <= r[0] <= b for a, b in windows)]
    failed = sum(1 for r in records if r[2] is None)
    wrong = sum(1 for r in records if r[2] is not None and not r[3])
    seen = sorted({r[2] for r in records if r[2] is not None})
    swap_s = [b - 0.5 - a for a, b in windows]
    lines = [
        f"## serve load test, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; torch {torch.__version__}; commit {git_commit()}. `lepton-graph serve --watch` "
        f"in its own process; {ns.clients} client threads (urllib, JSON) for {ns.seconds:.0f} s over loopback; the "
        f"served file replaced {ns.swaps} times (a copy renamed over it).",
        "",
        "| model | requests | failed | wrong answers | versions seen | swap to first new answer s (max) | "
        "steady p50 / p99 ms | during swaps p50 / p99 ms | p99 during / steady |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {ns.model} | {len(records)} | {failed} | {wrong} | {seen} | {max(swap_s, default=float('nan')):.2f} | "
        f"{percentile(steady, 0.5) * 1e3:.2f} / {percentile(steady, 0.99) * 1e3:.2f} | "
        f"{percentile(during, 0.5) * 1e3:.2f} / {percentile(during, 0.99) * 1e3:.2f} | "
        f"{percentile(during, 0.99) / percentile(steady, 0.99):.2f} |",
    ]
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
