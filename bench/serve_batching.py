"""Dynamic batching in `lepton-graph serve`: requests per second from C concurrent clients with `--max-batch 1` (one
call per request) and `--max-batch N`, a fresh server process per measurement, the two alternating round by round.
Answers are checked against the model's own output (batched calls may differ in the last bits: rel. error <= 1e-4).

    python bench/serve_batching.py --model minilm_b1 --clients 16 --max-batch 16 --md bench/results/serve_batching.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch


def _load(url: str, body: bytes, clients: int, seconds: float, ref: torch.Tensor) -> dict[str, float]:
    """Requests/s, latency percentiles and wrong answers of ``clients`` threads posting for ``seconds``."""
    stop, lat, wrong, failed = threading.Event(), [], [0], [0]
    req = urllib.request.Request(url + "/v1/infer", body, {"Content-Type": "application/json"})

    def client() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    out = torch.tensor(json.loads(r.read())["outputs"], dtype=torch.float32)
                lat.append(time.perf_counter() - t0)
                if float((out - ref).norm() / ref.norm()) > 1e-4:
                    wrong[0] += 1
            except Exception:  # noqa: BLE001 - counted
                failed[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t_start
    from lepton_graph.bench.timing import percentile

    return {
        "rps": len(lat) / elapsed,
        "p50": percentile(lat, 0.5),
        "p99": percentile(lat, 0.99),
        "wrong": wrong[0],
        "failed": failed[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="minilm_b1")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--md", help="write the table here")
    ns = p.parse_args()
    import lepton_graph
    from lepton_graph import zoo
    from lepton_graph.bench.machine import cpu_summary, emit_table, git_commit
    from lepton_graph.serve import serving

    model, (args, kwargs) = zoo.build(ns.model)
    with torch.no_grad():
        ref = torch.utils._pytree.tree_leaves(model(*args, **kwargs))[0].reshape(-1)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{ns.model}.lgraph"
        c = lepton_graph.compile(model, dynamic=True)
        c(*args, **kwargs)
        c.export(path)
        body = json.dumps({"args": [a.tolist() for a in args], "kwargs": {k: v.tolist() for k, v in kwargs.items()}})
        configs = {"one call per request": ["--max-batch", "1"],
                   f"--max-batch {ns.max_batch}": ["--max-batch", str(ns.max_batch), "--max-wait-ms",
                                                   str(ns.max_wait_ms)]}  # fmt: skip
        results: dict[str, list[dict[str, float]]] = {k: [] for k in configs}
        for r in range(ns.rounds):
            for name in list(configs) if r % 2 == 0 else list(configs)[::-1]:
                with serving(path, *configs[name]) as url:
                    _load(url, body.encode(), ns.clients, 1.0, ref)  # warm-up
                    results[name].append(_load(url, body.encode(), ns.clients, ns.seconds, ref))
                    print(name, results[name][-1], flush=True)
    med = {k: {f: statistics.median(x[f] for x in v) for f in v[0]} for k, v in results.items()}
    base = med["one call per request"]["rps"]
    lines = [
        f"## serve dynamic batching, {time.strftime('%Y-%m-%dT%H:%M:%S')}",
        "",
        f"Machine: {cpu_summary()}; torch {torch.__version__}; commit {git_commit()}. {ns.model} exported with "
        f"dynamic=True, `lepton-graph serve` in its own process, {ns.clients} JSON client threads over loopback, "
        f"{ns.seconds:.0f} s per measurement after 1 s of warm-up, {ns.rounds} rounds alternating the two servers "
        "(medians).",
        "",
        "| server | requests/s | vs one call per request | p50 ms | p99 ms | wrong answers | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in med.items():
        wrong = sum(x["wrong"] for x in results[name])
        failed = sum(x["failed"] for x in results[name])
        lines.append(
            f"| {name} | {m['rps']:.1f} | {m['rps'] / base:.2f}x | {m['p50'] * 1e3:.1f} | {m['p99'] * 1e3:.1f} | "
            f"{wrong} | {failed} |"
        )
    emit_table(lines, ns.md)


if __name__ == "__main__":
    main()
