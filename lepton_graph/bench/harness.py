"""The bench driver: zoo models x backends, one record per (model, backend), with ratios vs eager.

Timings on a small shared machine drift (up to 1.8x between runs), so the backends of a model are measured in
interleaved rounds (each round runs every backend for a batch of calls, the order rotating round to round), and
speed is only reported as a ratio against eager measured in the same run. By default each backend lives in its own
worker process (isolation.py): one backend's thread pool, allocator and caches cannot slow another, while the
coordinator still interleaves their rounds; ``isolate=False`` runs them all in this process instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import zoo
from .accuracy import compare, snapshot
from .isolation import bench_model_isolated
from .machine import _loadavg, available_cores, git_commit, machine_info, versions
from .models import _model_base, _reset_between_models
from .peers import PEERS, Peer, default_backends
from .timing import BackendRun, CpuShare, Settings, _add_ratios, _measure, _record, setup_backend


def bench_model(
    name: str, backends: Sequence[Peer], settings: Settings, workdir: Path, progress: Any = None
) -> list[dict[str, Any]]:
    """Every backend on one model; returns one record per backend (errors recorded, never raised)."""

    def step(desc: str, n: int = 0) -> None:
        if progress is not None:
            progress.set_description_str(f"{name} {desc}")
            progress.update(n)

    step("build")
    runs = [BackendRun(p) for p in backends]
    try:
        base, model, args, kwargs, ref = _model_base(name, settings)
    except Exception as e:  # noqa: BLE001
        step("build failed", len(backends) * (1 + settings.rounds))
        base = {"model": name, "model_desc": zoo.get(name).description, "device": settings.device}
        return [
            {**base, "backend": r.peer.name, "status": "error", "error": f"build: {type(e).__name__}: {e}"}
            for r in runs
        ]

    with torch.no_grad():
        for run in runs:
            step(f"setup {run.peer.name}")
            try:
                setup_backend(run, model, (args, kwargs), ref, settings, workdir / f"{name}-{run.peer.name}", name)
                run.status = "ok"
            except Exception as e:  # noqa: BLE001 - a failing backend is a table cell, not a crash
                run.fail("setup", e)
                if run.ctx is not None:  # what the setup got through before it failed
                    run.record.setdefault("stages", dict(run.ctx.stages))
                    run.record.setdefault("info", run.ctx.info)
            step(f"setup {run.peer.name}", 1)
        with CpuShare() as share:
            base["rounds_done"] = _measure(runs, args, kwargs, settings, step)
        if share.foreign_s is not None:
            base["timing_wall_s"] = share.wall_s
            base["foreign_cpu_s"] = share.foreign_s  # other processes' CPU time during the timing rounds
        for run in runs:  # accuracy after warm-up and timing too: caches and lazily swapped kernels show here
            if run.fn is not None:
                try:
                    run.record["warm_accuracy"] = compare(snapshot(run.fn(*args, **kwargs)), ref)
                except Exception as e:  # noqa: BLE001
                    run.fail("warm call", e)
        # Backends get the user's module itself: a compiler that mutates it would skew the peers after it.
        base["model_unchanged"] = compare(snapshot(model(*args, **kwargs)), ref)["max_abs_err"] == 0.0

    records = [_record(run, base) for run in runs]
    _add_ratios(records)
    del runs, model
    _reset_between_models()
    return records


def resolve_backends(backends: Sequence[str | Peer] | None) -> list[Peer]:
    out = []
    for b in backends or default_backends():
        if isinstance(b, Peer):
            out.append(b)
        elif b in PEERS:
            out.append(PEERS[b])
        else:
            raise ValueError(f"unknown backend {b!r}; known: {', '.join(PEERS)}")
    return out


def run_bench(
    models: Sequence[str] | None = None,
    backends: Sequence[str | Peer] | None = None,
    settings: Settings | None = None,
    *,
    progress: bool = True,
    argv: Sequence[str] | None = None,
    json_path: str | Path | None = None,
) -> dict[str, Any]:
    """Run the bench and return {"meta": ..., "results": [one record per (model, backend)]}."""
    from tqdm import tqdm

    settings = settings or Settings()
    models = list(models or zoo.names())
    for m in models:
        zoo.get(m)
    peers = resolve_backends(backends)
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: torch sees no CUDA device")
    threads = settings.threads or available_cores()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    meta = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "argv": list(argv or sys.argv),
        "settings": dataclasses.asdict(settings),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "models": models,
        "backends": [p.name for p in peers],
        "versions": versions(),
        "machine": machine_info(),
        "git_commit": git_commit(),
        "loadavg_start": _loadavg(),
        "definitions": {
            "compile_s": "backend setup + first call (inductor: fresh on-disk cache per model/backend; "
            "in-process state such as imports and loaded kernels carries over between models)",
            "median_ms/p90_ms": "per-call wall time over all interleaved rounds after warm-up, gc disabled",
            "isolated": "each backend in its own worker process, rounds interleaved by the coordinator",
            "foreign_cpu_s": "CPU seconds other processes used while this backend's timed calls ran",
            "vs_eager": "eager median / backend median from the same run (> 1 = faster)",
            "vs_eager_paired": "median over rounds of eager round median / backend round median",
            "max_rel_err": "max over output tensor leaves of max|y - y_eager| / max(max|y_eager|, tiny), "
            "first call (accuracy) and after timing (warm_accuracy)",
        },
    }
    workdir = Path(tempfile.mkdtemp(prefix="lepton-bench-"))
    inductor_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")  # peers point it into workdir
    results: list[dict[str, Any]] = []
    bar = tqdm(
        total=len(models) * len(peers) * (1 + settings.rounds),
        file=sys.stderr,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
    )
    try:
        one_model = bench_model_isolated if settings.isolate else bench_model
        for name in models:
            results += one_model(name, peers, settings, workdir, progress=bar)
    finally:
        bar.close()
        shutil.rmtree(workdir, ignore_errors=True)
        torch.set_num_threads(threads_before)
        if inductor_cache is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache
    meta["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    meta["loadavg_end"] = _loadavg()
    out = {"meta": meta, "results": results}
    if json_path:
        write_json(out, json_path)
    return out


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=1, default=str))


# zoo name -> model name in /work/shared/anchors/anchors_cpu_run*.json
# (bert_b1_s128 passes attention_mask and gpt2_b1_s128 runs with use_cache: the *_ids / *_nocache variants are the
# anchors' exact inputs)
ANCHOR_MODELS = {
    "resnet18_b1": "resnet18",
    "bert_b1_s128": "bert_base",
    "gpt2_b1_s128": "gpt2",
    "vit_b1": "vit_base",
    "bert_b1_s128_ids": "bert_base",
    "gpt2_b1_s128_nocache": "gpt2",
}


def attach_anchors(result: dict[str, Any], path: str | Path) -> None:
    """Add the anchor run's median (and its ratio vs its own eager) to each record that has a counterpart."""
    data = json.loads(Path(path).read_text())
    medians = {
        (r["model"], r["backend"]): r["median_ms"]
        for r in data.get("results", [])
        if r.get("status") == "ok" and r.get("median_ms")
    }
    result["meta"]["anchors"] = str(path)
    for rec in result["results"]:
        model = ANCHOR_MODELS.get(rec["model"], rec["model"])
        a, eager = medians.get((model, rec["backend"])), medians.get((model, "eager"))
        if a is not None:
            rec["anchor_median_ms"] = a
            rec["anchor_vs_eager"] = eager / a if eager else None
