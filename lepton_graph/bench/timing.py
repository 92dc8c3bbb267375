"""Timing: settings, one backend's run state, interleaved rounds, batch sizing, foreign CPU time, summaries."""

from __future__ import annotations

import gc
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .accuracy import compare, snapshot
from .peers import Peer, SetupContext


@dataclass(frozen=True)
class Settings:
    rounds: int = 30
    batch_s: float = 0.2  # one backend's share of a round
    warmup_s: float = 0.5
    min_warmup_calls: int = 2
    threads: int = 0  # 0: all cores
    device: str = "cpu"
    seed: int = 0
    warm_cache: bool = False  # reuse the inductor on-disk cache instead of a fresh one per (model, backend)
    # Timing-phase budget per model: on a quiet 2-core machine the default run needs ~20-40 s per model; under
    # heavy load from other processes rounds get 10-30x slower, and the run stops after min_rounds instead.
    max_model_s: float = 150.0
    min_rounds: int = 5
    isolate: bool = True  # one worker process per backend (False: every backend in this process)
    setup_timeout_s: float = 1800.0  # a worker that does not finish setup in time is recorded as an error

    @staticmethod
    def quick(**kw: Any) -> Settings:
        return Settings(**{"rounds": 5, "batch_s": 0.1, "warmup_s": 0.2, **kw})


@dataclass
class BackendRun:
    peer: Peer
    status: str = "pending"  # ok | error
    error: str | None = None
    fn: Callable[..., Any] | None = None
    ctx: SetupContext | None = None
    record: dict[str, Any] = field(default_factory=dict)
    batch: int = 1
    rounds: list[list[float]] = field(default_factory=list)  # seconds per call, one list per round

    def fail(self, where: str, e: BaseException) -> None:
        self.status, self.fn = "error", None
        self.error = f"{where}: {type(e).__name__}: {e}".strip()


class CpuShare:
    """CPU seconds that other processes used while a block ran (from /proc/stat minus this process's own time):
    on a 2-core machine anything else running distorts every timing."""

    def __enter__(self) -> CpuShare:
        self.start = self._sample()
        self.foreign_s: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._sample()
        if self.start is not None and end is not None:
            self.foreign_s = max(0.0, (end[0] - self.start[0]) - (end[1] - self.start[1]))
            self.wall_s = end[2] - self.start[2]

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle and iowait
        own = os.times()
        return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system, time.perf_counter()


def _sync(device: str) -> Callable[[], None]:
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def time_calls(fn: Callable[..., Any], args: tuple, kwargs: dict, n: int, sync: Callable[[], None]) -> list[float]:
    times = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        fn(*args, **kwargs)
        sync()
        times.append(clock() - t0)
    return times


def batch_size(settings: Settings, per_call_s: float) -> int:
    """Calls per backend per round so that one batch takes about settings.batch_s."""
    return max(1, min(100_000, round(settings.batch_s / max(per_call_s, 1e-7))))


def rotated(items: list, r: int) -> list:
    """Round r's order: the list rotated by r, so no backend always runs first (or right after the same one)."""
    return items[r % len(items) :] + items[: r % len(items)] if items else []


def setup_backend(
    run: BackendRun,
    model: torch.nn.Module,
    example: tuple[tuple, dict],
    ref: list | None,
    settings: Settings,
    workdir: Path,
    model_name: str = "",
) -> None:
    """Setup + first call (= compile seconds), accuracy of the first call, warm-up and batch sizing."""
    args, kwargs = example
    sync = _sync(settings.device)
    workdir.mkdir(parents=True, exist_ok=True)
    run.ctx = ctx = SetupContext(
        threads=torch.get_num_threads(),
        device=settings.device,
        workdir=workdir,
        info={"warm_cache": True} if settings.warm_cache else {},
        model_name=model_name,
        seed=settings.seed,
    )
    if settings.device.split(":")[0] not in run.peer.devices:
        raise RuntimeError(f"{run.peer.name} does not run on {settings.device}")
    t0 = time.perf_counter()
    fn = run.peer.setup(model, args, kwargs, ctx)
    t1 = time.perf_counter()
    out = fn(*args, **kwargs)
    sync()
    t2 = time.perf_counter()
    first = snapshot(out)
    del out
    run.fn = fn
    ctx.info.pop("warm_cache", None)
    run.record.update(
        setup_s=t1 - t0,
        first_call_s=t2 - t1,
        compile_s=t2 - t0,
        stages=dict(ctx.stages),
        info=ctx.info,
        out_shapes=[list(t.shape) for _, t in first[:4]],
    )
    if ref is not None:
        run.record["accuracy"] = compare(first, ref)
    if callable(getattr(fn, "report", None)):
        try:
            rep = fn.report()  # type: ignore[attr-defined]  # checked by getattr above
            run.record["report"] = rep.as_dict() if hasattr(rep, "as_dict") else rep
            run.record["report_text"] = str(rep)
        except Exception as e:  # noqa: BLE001 - a broken report must not lose the timing
            run.record["report_error"] = f"{type(e).__name__}: {e}"
    warm: list[float] = []
    t_start = time.perf_counter()
    while len(warm) < settings.min_warmup_calls or time.perf_counter() - t_start < settings.warmup_s:
        warm += time_calls(fn, args, kwargs, 1, sync)
        if len(warm) >= 10_000:
            break
    est = statistics.median(warm[len(warm) // 2 :])  # the later half: the first calls may still be settling
    run.batch = batch_size(settings, est)
    run.record.update(warmup_calls=len(warm), warmup_s=time.perf_counter() - t_start, batch=run.batch)


def percentile(xs: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``xs``; NaN for none."""
    ordered = sorted(xs)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))] if ordered else float("nan")


def summarize(times: list[float]) -> dict[str, Any]:
    ms = sorted(t * 1e3 for t in times)
    n = len(ms)
    return {
        "calls": n,
        "median_ms": statistics.median(ms),
        "p90_ms": percentile(ms, 0.9),
        "mean_ms": statistics.fmean(ms),
        "min_ms": ms[0],
        "stdev_ms": statistics.pstdev(ms),
    }


def _measure(
    runs: list[BackendRun], args: tuple, kwargs: dict, settings: Settings, step: Callable[[str, int], None]
) -> int:
    """Timing rounds; returns how many ran (fewer than settings.rounds once max_model_s is spent)."""
    sync = _sync(settings.device)
    t_start = time.perf_counter()
    for r in range(settings.rounds):
        if r >= settings.min_rounds and time.perf_counter() - t_start > settings.max_model_s:
            step("time budget spent", len(runs) * (settings.rounds - r))
            return r
        live = [run for run in runs if run.status == "ok"]
        order = rotated(live, r)
        gc.collect()
        gc.disable()
        try:
            for run in order:
                try:
                    times = time_calls(run.fn, args, kwargs, run.batch, sync)
                except Exception as e:  # noqa: BLE001
                    run.fail(f"round {r}", e)
                    continue
                run.rounds.append(times)
                # Re-size the batch from this round: a warm-up disturbed by other load mis-sizes it.
                run.batch = batch_size(settings, statistics.median(times))
        finally:
            gc.enable()
        step(f"round {r + 1}/{settings.rounds}", len(runs))
    return settings.rounds


def _record(run: BackendRun, base: dict[str, Any]) -> dict[str, Any]:
    rec = {
        **base,
        "backend": run.peer.name,
        "backend_desc": run.peer.description,
        "status": run.status,
        "error": run.error,
        **run.record,
    }
    times = [t for rnd in run.rounds for t in rnd]
    if times:
        rec.update(
            summarize(times),
            rounds=len(run.rounds),
            round_median_ms=[statistics.median(rnd) * 1e3 for rnd in run.rounds],
            times_ms=[[round(t * 1e3, 6) for t in rnd] for rnd in run.rounds],
        )
    return rec


def _add_ratios(records: list[dict[str, Any]]) -> None:
    """vs_eager = eager median / backend median (> 1 = faster); also the median of per-round ratios, which is
    immune to drift that spans rounds."""
    eager = next((r for r in records if r["backend"] == "eager" and r.get("median_ms")), None)
    for rec in records:
        rec["vs_eager"] = rec["vs_eager_paired"] = None
        if eager is None or not rec.get("median_ms"):
            continue
        rec["vs_eager"] = eager["median_ms"] / rec["median_ms"]
        paired = [e / b for e, b in zip(eager["round_median_ms"], rec["round_median_ms"], strict=False)]
        rec["vs_eager_paired"] = statistics.median(paired) if paired else None


def per_call(fn: Callable[[], Any], seconds: float) -> float:
    """Seconds per call of ``fn``, called back to back for about ``seconds``."""
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        fn()
        n += 1
    return elapsed / n


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int, seconds: float) -> dict[str, list[float]]:
    """Per-call seconds of each function in each round, the order rotating round to round (for the micro-benches
    in bench/, where every side is one in-process call)."""
    for fn in calls.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for r in range(rounds):
        for k in rotated(list(calls), r):
            times[k].append(per_call(calls[k], seconds))
    return times
