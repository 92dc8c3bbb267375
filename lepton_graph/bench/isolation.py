"""Each backend in its own worker process (as the anchors were measured), rounds interleaved by the coordinator."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .. import zoo
from .accuracy import compare, snapshot
from .models import _model_base
from .peers import PEERS, Peer
from .timing import (
    BackendRun,
    CpuShare,
    Settings,
    _add_ratios,
    _record,
    _sync,
    batch_size,
    rotated,
    setup_backend,
    time_calls,
)


def _worker_main(conn: Any, name: str, peer: str | Peer, settings: Settings, threads: int, workdir: str) -> None:
    """One backend of one model in its own process: build, setup, then time batches on the coordinator's
    request. Messages: ("round", n) -> ("times", [s...], foreign_cpu_s) | ("error", msg); ("finish",) ->
    ("done", warm_accuracy, model_unchanged)."""
    torch.set_num_threads(threads)
    run = BackendRun(PEERS[peer] if isinstance(peer, str) else peer)
    base: dict[str, Any] = {}
    try:
        base, model, args, kwargs, ref = _model_base(name, settings)
    except Exception as e:  # noqa: BLE001
        conn.send(("ready", "error", f"build: {type(e).__name__}: {e}", {}, 1, base))
        return
    with torch.no_grad():
        try:
            setup_backend(run, model, (args, kwargs), ref, settings, Path(workdir), name)
            run.status = "ok"
        except Exception as e:  # noqa: BLE001 - a failing backend is a table cell, not a crash
            run.fail("setup", e)
            if run.ctx is not None:
                run.record.setdefault("stages", dict(run.ctx.stages))
                run.record.setdefault("info", run.ctx.info)
        conn.send(("ready", run.status, run.error, run.record, run.batch, base))
        if run.status != "ok" or run.fn is None:
            return
        fn = run.fn
        sync = _sync(settings.device)
        while True:
            msg = conn.recv()
            if msg[0] == "round":
                gc.collect()
                gc.disable()
                try:
                    with CpuShare() as share:
                        times = time_calls(fn, args, kwargs, msg[1], sync)
                    conn.send(("times", times, share.foreign_s))
                except Exception as e:  # noqa: BLE001
                    conn.send(("error", f"{type(e).__name__}: {e}"))
                    return
                finally:
                    gc.enable()
            else:
                try:
                    warm = compare(snapshot(fn(*args, **kwargs)), ref)
                except Exception as e:  # noqa: BLE001
                    warm = {"error": f"{type(e).__name__}: {e}"}
                unchanged = compare(snapshot(model(*args, **kwargs)), ref)["max_abs_err"] == 0.0
                conn.send(("done", warm, unchanged))
                return


def _picklable(peer: Peer) -> str | Peer:
    """Registered peers travel by name (their setups are closures); others must pickle by reference."""
    return peer.name if PEERS.get(peer.name) is peer else peer


def bench_model_isolated(
    name: str, backends: Sequence[Peer], settings: Settings, workdir: Path, progress: Any = None
) -> list[dict[str, Any]]:
    """bench_model with every backend in its own worker process; setups run one at a time (compile seconds
    are not disturbed), then the coordinator interleaves the timing rounds across the workers."""
    import multiprocessing as mp

    def step(desc: str, n: int = 0) -> None:
        if progress is not None:
            progress.set_description_str(f"{name} {desc}")
            progress.update(n)

    ctx = mp.get_context("spawn")
    runs = [BackendRun(p) for p in backends]
    workers: dict[int, tuple[Any, Any]] = {}  # index in runs -> (process, connection)
    base: dict[str, Any] = {}
    foreign: dict[int, float] = {}
    try:
        for i, run in enumerate(runs):
            step(f"setup {run.peer.name}")
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                daemon=True,
                args=(
                    child,
                    name,
                    _picklable(run.peer),
                    settings,
                    torch.get_num_threads(),
                    str(workdir / f"{name}-{run.peer.name}"),
                ),
            )
            proc.start()
            child.close()
            try:
                if not parent.poll(settings.setup_timeout_s):
                    raise TimeoutError(f"no answer after {settings.setup_timeout_s:.0f} s")
                _, status, error, record, batch, wbase = parent.recv()
            except (EOFError, OSError, TimeoutError) as e:
                proc.kill()
                status, error, record, batch, wbase = (
                    "error",
                    f"setup: worker died ({e!r}, exit {proc.exitcode})",
                    {},
                    1,
                    {},
                )
            run.status, run.error, run.record, run.batch = status, error, record, batch
            base = base or wbase
            if status == "ok":
                workers[i] = (proc, parent)
            else:
                proc.join(5)
            step(f"setup {run.peer.name}", 1)
        with CpuShare() as share:
            t_start, done = time.perf_counter(), settings.rounds
            for r in range(settings.rounds):
                if r >= settings.min_rounds and time.perf_counter() - t_start > settings.max_model_s:
                    step("time budget spent", len(runs) * (settings.rounds - r))
                    done = r
                    break
                live = [i for i in workers if runs[i].status == "ok"]
                order = rotated(live, r)
                for i in order:
                    run, conn = runs[i], workers[i][1]
                    try:
                        conn.send(("round", run.batch))
                        reply = conn.recv()
                    except (EOFError, OSError) as e:
                        reply = ("error", f"worker died ({e!r})")
                    if reply[0] != "times":
                        run.status, run.error = "error", f"round {r}: {reply[1]}"
                        continue
                    run.rounds.append(reply[1])
                    foreign[i] = foreign.get(i, 0.0) + (reply[2] or 0.0)
                    run.batch = batch_size(settings, statistics.median(reply[1]))
                step(f"round {r + 1}/{settings.rounds}", len(runs))
        base["rounds_done"] = done
        if share.foreign_s is not None:
            base["timing_wall_s"] = share.wall_s
        for i, (_proc, conn) in workers.items():
            run = runs[i]
            run.record["foreign_cpu_s"] = foreign.get(i)  # other processes' CPU time during its timed calls
            if run.status != "ok":
                continue
            try:
                conn.send(("finish",))
                _, warm, unchanged = conn.recv()
                if "error" in warm:
                    run.status, run.error = "error", f"warm call: {warm['error']}"
                else:
                    run.record["warm_accuracy"] = warm
                run.record["model_unchanged"] = unchanged
            except (EOFError, OSError) as e:
                run.status, run.error = "error", f"warm call: worker died ({e!r})"
    finally:
        for proc, conn in workers.values():
            conn.close()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    base = {
        "model": name,
        "model_desc": zoo.get(name).description,
        "device": settings.device,
        "torch_threads": torch.get_num_threads(),
        **base,
        "isolated": True,
    }
    base["model_unchanged"] = all(r.record.get("model_unchanged", True) for r in runs)
    records = [_record(run, base) for run in runs]
    _add_ratios(records)
    return records
