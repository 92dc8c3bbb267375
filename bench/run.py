"""The one benchmark harness: zoo models x backends (bench/peers.py), interleaved rounds, medians, ratios vs eager.

Timings on a small shared machine drift (up to 1.8x between runs), so the backends of a model are measured in
interleaved rounds (each round runs every backend for a batch of calls, the order rotating round to round), and
speed is only reported as a ratio against eager measured in the same run. By default each backend lives in its own
worker process (as the anchors were measured): one backend's thread pool, allocator and caches cannot slow another,
while the coordinator still interleaves their rounds; ``--in-process`` runs them all in this process instead.

    python -m bench.run --models mlp_b1,resnet18_b1 --json out.json     # or: lepton-graph bench ...
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: python bench/run.py
    # Python put bench/ itself first on sys.path, making every bench/*.py a top-level module that shadows any
    # installed distribution of that name; the repository root takes its place (its folders are namespace portions).
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.peers import PEERS, Peer, SetupContext, default_backends, flatten_outputs  # noqa: E402
from lepton_graph import zoo  # noqa: E402

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx512ifma", "avx512vbmi", "avx512_vbmi2",
             "avx512_bitalg", "avx512_vpopcntdq", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
TINY = torch.finfo(torch.float32).tiny


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


# --------------------------------------------------------------------------------------------------- machine

def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "cores_available": available_cores()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = set(fields.get("flags", "").split())
        info["cpu_model"] = fields.get("model name", platform.processor())
        info["isa"] = [f for f in ISA_FLAGS if f in flags]
    except OSError:
        info["cpu_model"] = platform.processor()
    try:
        info["mem"] = next(line for line in Path("/proc/meminfo").read_text().splitlines()
                           if line.startswith("MemTotal")).split(":")[1].strip()
    except (OSError, StopIteration):
        pass
    try:
        from lepton_graph import _C

        info["lepton_cpu_features"] = dict(_C.cpu_features())
    except Exception as e:  # noqa: BLE001 - the extension may be unbuilt; the bench still runs
        info["lepton_cpu_features"] = f"unavailable: {e}"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"torch": torch.__version__}
    for pkg in ("lepton_graph", "transformers", "numpy", "onnx", "onnxruntime", "onnxscript", "openvino", "triton"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# --------------------------------------------------------------------------------------------------- accuracy

def snapshot(out: Any) -> list[tuple[str, torch.Tensor]]:
    """Detached CPU copies of the tensor leaves (outputs may alias buffers the next call overwrites)."""
    return [(p, t.detach().to("cpu", copy=True)) for p, t in flatten_outputs(out)]


def _leaf_err(y: torch.Tensor, ref: torch.Tensor) -> tuple[float, float, float]:
    """(max abs error, max abs error / max |ref|, relative L2 error ||y - ref|| / ||ref||)."""
    if y.numel() == 0:
        return 0.0, 0.0, 0.0
    y64, r64 = y.detach().to("cpu", torch.float64), ref.to(torch.float64)
    abs_err = (y64 - r64).abs().max().item()
    rel_l2 = ((y64 - r64).norm() / max(r64.norm().item(), TINY)).item()
    return abs_err, abs_err / max(r64.abs().max().item(), TINY), rel_l2


def _worse(a: float, b: float) -> bool:
    """a > b, with NaN worse than any number."""
    return (math.isnan(a) and not math.isnan(b)) or a > b


def compare(out: list[tuple[str, torch.Tensor]], ref: list[tuple[str, torch.Tensor]]) -> dict[str, Any]:
    """max_rel_err = max over leaves of max|y - ref| / max(max|ref|, tiny), rel_l2 = max over leaves of
    ||y - ref|| / ||ref|| (the quantization error measure); NaN anywhere makes them NaN."""
    note = None
    pairs = list(zip(out, ref, strict=False))
    if [p for p, _ in out] != [p for p, _ in ref]:
        same_shapes = len(out) == len(ref) and all(a.shape == b.shape for (_, a), (_, b) in pairs)
        if same_shapes:
            # A flat list of outputs (ONNX Runtime, OpenVINO) is expected to differ from eager's pytree.
            flat = all(p == f"out[{i}]" for i, (p, _) in enumerate(out))
            note = None if flat else "compared by position (output structure differs from eager)"
        elif out and ref and out[0][1].shape == ref[0][1].shape:
            pairs, note = pairs[:1], f"compared first output only ({len(out)} vs {len(ref)} tensor leaves)"
        else:
            return {"max_abs_err": None, "max_rel_err": None, "rel_l2": None,
                    "note": f"outputs not comparable: {len(out)} vs {len(ref)} tensor leaves, "
                            f"shapes {[tuple(t.shape) for _, t in out[:3]]} vs {[tuple(t.shape) for _, t in ref[:3]]}"}
    worst = {"max_abs_err": 0.0, "max_rel_err": 0.0, "rel_l2": 0.0, "worst_leaf": None, "leaves_compared": len(pairs),
             "note": note}
    for (_, y), (ref_path, r) in pairs:
        if y.shape != r.shape:
            return {**worst, "max_abs_err": None, "max_rel_err": None, "rel_l2": None,
                    "note": f"shape mismatch at {ref_path}: {tuple(y.shape)} vs {tuple(r.shape)}"}
        abs_err, rel_err, rel_l2 = _leaf_err(y, r)
        if worst["worst_leaf"] is None or _worse(rel_err, worst["max_rel_err"]):
            worst.update(max_rel_err=rel_err, worst_leaf=ref_path)
        if _worse(abs_err, worst["max_abs_err"]):
            worst["max_abs_err"] = abs_err
        if _worse(rel_l2, worst["rel_l2"]):
            worst["rel_l2"] = rel_l2
    return worst


# --------------------------------------------------------------------------------------------------- timing

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
        self.start, self.foreign_s = self._sample(), None
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
    return items[r % len(items):] + items[:r % len(items)] if items else []


def setup_backend(run: BackendRun, model: torch.nn.Module, example: tuple[tuple, dict], ref: list | None,
                  settings: Settings, workdir: Path) -> None:
    """Setup + first call (= compile seconds), accuracy of the first call, warm-up and batch sizing."""
    args, kwargs = example
    sync = _sync(settings.device)
    workdir.mkdir(parents=True, exist_ok=True)
    run.ctx = ctx = SetupContext(threads=torch.get_num_threads(), device=settings.device, workdir=workdir,
                                 info={"warm_cache": True} if settings.warm_cache else {})
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
    run.record.update(setup_s=t1 - t0, first_call_s=t2 - t1, compile_s=t2 - t0, stages=dict(ctx.stages),
                      info=ctx.info, out_shapes=[list(t.shape) for _, t in first[:4]])
    if ref is not None:
        run.record["accuracy"] = compare(first, ref)
    if callable(getattr(fn, "report", None)):
        try:
            rep = fn.report()
            run.record["report"] = rep.as_dict() if hasattr(rep, "as_dict") else rep
            run.record["report_text"] = str(rep)
        except Exception as e:  # noqa: BLE001 - a broken report must not lose the timing
            run.record["report_error"] = f"{type(e).__name__}: {e}"
    warm, t_start = [], time.perf_counter()
    while len(warm) < settings.min_warmup_calls or time.perf_counter() - t_start < settings.warmup_s:
        warm += time_calls(fn, args, kwargs, 1, sync)
        if len(warm) >= 10_000:
            break
    est = statistics.median(warm[len(warm) // 2:])  # the later half: the first calls may still be settling
    run.batch = batch_size(settings, est)
    run.record.update(warmup_calls=len(warm), warmup_s=time.perf_counter() - t_start, batch=run.batch)


def summarize(times: list[float]) -> dict[str, Any]:
    ms = sorted(t * 1e3 for t in times)
    n = len(ms)
    return {"calls": n, "median_ms": statistics.median(ms), "p90_ms": ms[min(n - 1, math.ceil(0.9 * n) - 1)],
            "mean_ms": statistics.fmean(ms), "min_ms": ms[0], "stdev_ms": statistics.pstdev(ms)}


def bench_model(name: str, backends: Sequence[Peer], settings: Settings, workdir: Path,
                progress: Any = None) -> list[dict[str, Any]]:
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
        return [{**base, "backend": r.peer.name, "status": "error", "error": f"build: {type(e).__name__}: {e}"}
                for r in runs]

    with torch.no_grad():
        for run in runs:
            step(f"setup {run.peer.name}")
            try:
                setup_backend(run, model, (args, kwargs), ref, settings, workdir / f"{name}-{run.peer.name}")
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


def _model_base(name: str, settings: Settings) -> tuple[dict[str, Any], torch.nn.Module, tuple, dict, list]:
    entry = zoo.get(name)
    t0 = time.perf_counter()
    base = {"model": name, "model_desc": entry.description, "device": settings.device,
            "torch_threads": torch.get_num_threads()}
    model, (args, kwargs) = zoo.build(name, seed=settings.seed)
    model = model.to(settings.device)
    args, kwargs = _to_device((args, kwargs), settings.device)
    base["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
    base["build_s"] = time.perf_counter() - t0
    base["attn_implementation"] = getattr(getattr(model, "config", None), "_attn_implementation", None)
    with torch.no_grad():
        ref = snapshot(model(*args, **kwargs))
    base["out_leaves"] = [(p, list(t.shape)) for p, t in ref[:8]]
    return base, model, args, kwargs, ref


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
            setup_backend(run, model, (args, kwargs), ref, settings, Path(workdir))
            run.status = "ok"
        except Exception as e:  # noqa: BLE001 - a failing backend is a table cell, not a crash
            run.fail("setup", e)
            if run.ctx is not None:
                run.record.setdefault("stages", dict(run.ctx.stages))
                run.record.setdefault("info", run.ctx.info)
        conn.send(("ready", run.status, run.error, run.record, run.batch, base))
        if run.status != "ok":
            return
        sync = _sync(settings.device)
        while True:
            msg = conn.recv()
            if msg[0] == "round":
                gc.collect()
                gc.disable()
                try:
                    with CpuShare() as share:
                        times = time_calls(run.fn, args, kwargs, msg[1], sync)
                    conn.send(("times", times, share.foreign_s))
                except Exception as e:  # noqa: BLE001
                    conn.send(("error", f"{type(e).__name__}: {e}"))
                    return
                finally:
                    gc.enable()
            else:
                try:
                    warm = compare(snapshot(run.fn(*args, **kwargs)), ref)
                except Exception as e:  # noqa: BLE001
                    warm = {"error": f"{type(e).__name__}: {e}"}
                unchanged = compare(snapshot(model(*args, **kwargs)), ref)["max_abs_err"] == 0.0
                conn.send(("done", warm, unchanged))
                return


def _picklable(peer: Peer) -> str | Peer:
    """Registered peers travel by name (their setups are closures); others must pickle by reference."""
    return peer.name if PEERS.get(peer.name) is peer else peer


def bench_model_isolated(name: str, backends: Sequence[Peer], settings: Settings, workdir: Path,
                         progress: Any = None) -> list[dict[str, Any]]:
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
            proc = ctx.Process(target=_worker_main, daemon=True,
                               args=(child, name, _picklable(run.peer), settings, torch.get_num_threads(),
                                     str(workdir / f"{name}-{run.peer.name}")))
            proc.start()
            child.close()
            try:
                if not parent.poll(settings.setup_timeout_s):
                    raise TimeoutError(f"no answer after {settings.setup_timeout_s:.0f} s")
                _, status, error, record, batch, wbase = parent.recv()
            except (EOFError, OSError, TimeoutError) as e:
                proc.kill()
                status, error, record, batch, wbase = "error", f"setup: worker died ({e!r}, exit {proc.exitcode})", \
                    {}, 1, {}
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
    base = {"model": name, "model_desc": zoo.get(name).description, "device": settings.device,
            "torch_threads": torch.get_num_threads(), **base, "isolated": True}
    base["model_unchanged"] = all(r.record.get("model_unchanged", True) for r in runs)
    records = [_record(run, base) for run in runs]
    _add_ratios(records)
    return records


def _measure(runs: list[BackendRun], args: tuple, kwargs: dict, settings: Settings,
             step: Callable[[str, int], None]) -> int:
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
    rec = {**base, "backend": run.peer.name, "backend_desc": run.peer.description, "status": run.status,
           "error": run.error, **run.record}
    times = [t for rnd in run.rounds for t in rnd]
    if times:
        rec.update(summarize(times), rounds=len(run.rounds),
                   round_median_ms=[statistics.median(rnd) * 1e3 for rnd in run.rounds],
                   times_ms=[[round(t * 1e3, 6) for t in rnd] for rnd in run.rounds])
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


def _to_device(tree: Any, device: str) -> Any:
    if device == "cpu":
        return tree
    if isinstance(tree, torch.Tensor):
        return tree.to(device)
    if isinstance(tree, dict):
        return {k: _to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_device(v, device) for v in tree)
    return tree


def _reset_between_models() -> None:
    try:
        import torch._dynamo

        torch._dynamo.reset()
    except Exception:  # noqa: BLE001 - nothing to reset
        pass
    gc.collect()


# --------------------------------------------------------------------------------------------------- driver

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


def run_bench(models: Sequence[str] | None = None, backends: Sequence[str | Peer] | None = None,
              settings: Settings | None = None, *, progress: bool = True, argv: Sequence[str] | None = None,
              json_path: str | Path | None = None) -> dict[str, Any]:
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
    meta = {"started": dt.datetime.now().isoformat(timespec="seconds"), "argv": list(argv or sys.argv),
            "settings": dataclasses.asdict(settings),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "models": models, "backends": [p.name for p in peers], "versions": versions(),
            "machine": machine_info(), "git_commit": git_commit(), "loadavg_start": _loadavg(),
            "definitions": {
                "compile_s": "backend setup + first call (inductor: fresh on-disk cache per model/backend; "
                             "in-process state such as imports and loaded kernels carries over between models)",
                "median_ms/p90_ms": "per-call wall time over all interleaved rounds after warm-up, gc disabled",
                "isolated": "each backend in its own worker process, rounds interleaved by the coordinator",
                "foreign_cpu_s": "CPU seconds other processes used while this backend's timed calls ran",
                "vs_eager": "eager median / backend median from the same run (> 1 = faster)",
                "vs_eager_paired": "median over rounds of eager round median / backend round median",
                "max_rel_err": "max over output tensor leaves of max|y - y_eager| / max(max|y_eager|, tiny), "
                               "first call (accuracy) and after timing (warm_accuracy)"}}
    workdir = Path(tempfile.mkdtemp(prefix="lepton-bench-"))
    inductor_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")  # peers point it into workdir
    results: list[dict[str, Any]] = []
    bar = tqdm(total=len(models) * len(peers) * (1 + settings.rounds), file=sys.stderr, disable=not progress,
               unit="step", dynamic_ncols=True)
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


# --------------------------------------------------------------------------------------------------- anchors

# zoo name -> model name in /work/shared/anchors/anchors_cpu_run*.json
# (bert_b1_s128 passes attention_mask and gpt2_b1_s128 runs with use_cache: the *_ids / *_nocache variants are the
# anchors' exact inputs)
ANCHOR_MODELS = {"resnet18_b1": "resnet18", "bert_b1_s128": "bert_base", "gpt2_b1_s128": "gpt2",
                 "vit_b1": "vit_base", "bert_b1_s128_ids": "bert_base", "gpt2_b1_s128_nocache": "gpt2"}


def attach_anchors(result: dict[str, Any], path: str | Path) -> None:
    """Add the anchor run's median (and its ratio vs its own eager) to each record that has a counterpart."""
    data = json.loads(Path(path).read_text())
    medians = {(r["model"], r["backend"]): r["median_ms"] for r in data.get("results", [])
               if r.get("status") == "ok" and r.get("median_ms")}
    result["meta"]["anchors"] = str(path)
    for rec in result["results"]:
        model = ANCHOR_MODELS.get(rec["model"], rec["model"])
        a, eager = medians.get((model, rec["backend"])), medians.get((model, "eager"))
        if a is not None:
            rec["anchor_median_ms"] = a
            rec["anchor_vs_eager"] = eager / a if eager else None


# --------------------------------------------------------------------------------------------------- rendering

def _fmt_ms(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _fmt_err(rec: dict[str, Any], key: str = "max_rel_err") -> str:
    errs = [rec.get(k, {}).get(key) for k in ("accuracy", "warm_accuracy")]
    if not any(k in rec for k in ("accuracy", "warm_accuracy")):
        return "–"
    if any(e is None for e in errs if e is not None) or all(e is None for e in errs):
        return "n/a"
    vals = [e for e in errs if e is not None]
    return "nan" if any(math.isnan(e) for e in vals) else f"{max(vals):.1e}"


def _cell_error(rec: dict[str, Any], width: int = 70) -> str:
    msg = " ".join(str(rec.get("error")).split()).replace("|", "/")
    return "error: " + (msg if len(msg) <= width else msg[: width - 1] + "…")


def describe_machine(meta: dict[str, Any]) -> str:
    m, v = meta["machine"], meta["versions"]
    isa = ", ".join(f for f in m.get("isa", []) if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16",
                                                              "amx_tile"))
    parts = [f"{m.get('cpu_model', '?')} ({m.get('cores_available')} cores; {isa})", m.get("mem", ""),
             f"torch {v.get('torch')}", f"transformers {v.get('transformers', '–')}",
             f"{meta['torch_threads']} torch threads", f"device {meta['settings']['device']}"]
    if "gpu" in m:
        parts.insert(1, m["gpu"])
    return "; ".join(p for p in parts if p)


def _load_warning(meta: dict[str, Any]) -> list[str]:
    """The 1-minute load average before the run: other processes on a 2-core machine distort every number."""
    load = (meta.get("loadavg_start") or [0.0])[0]
    busy = load > 0.5 * max(1, meta["machine"].get("cores_available") or 1)
    return [f"**Warning: load average {load} at the start: other processes were running.**"] if busy else []


def render_markdown(result: dict[str, Any]) -> str:
    meta, recs = result["meta"], result["results"]
    s = meta["settings"]
    backends = meta["backends"]
    lines = [f"## lepton-graph bench, {meta['started']}", "",
             f"Machine: {describe_machine(meta)}. Commit {meta.get('git_commit') or '?'}.",
             f"{s['rounds']} interleaved rounds of ~{s['batch_s']} s per backend; median ms per call, "
             "(speed vs eager from the same run, > 1 = faster).", *_load_warning(meta), "",
             "| model | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
    by_model: dict[str, dict[str, dict[str, Any]]] = {}
    for r in recs:
        by_model.setdefault(r["model"], {})[r["backend"]] = r
    for model, row in by_model.items():
        cells = []
        for b in backends:
            r = row.get(b, {})
            if r.get("status") != "ok" or not r.get("median_ms"):
                cells.append(_cell_error(r, 40) if r.get("error") else "–")
            elif b == "eager" or r.get("vs_eager") is None:
                cells.append(_fmt_ms(r["median_ms"]))
            else:
                cells.append(f"{_fmt_ms(r['median_ms'])} ({r['vs_eager']:.2f}x)")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    anchors = any("anchor_median_ms" in r for r in recs)
    lines += ["", "| model | backend | median ms | p90 ms | vs eager | paired | compile s | max rel err | rel L2 "
              "| calls |" + (" anchor ms (vs eager) |" if anchors else ""), "|---|---|---|---|---|---|---|---|---|---|"
              + ("---|" if anchors else "")]
    for r in recs:
        if r.get("status") != "ok" and not r.get("median_ms"):
            empty = " |" * (8 + anchors)
            lines.append(f"| {r['model']} | {r['backend']} | {_cell_error(r)} |{empty}")
            continue
        ratio = "–" if r.get("vs_eager") is None else f"{r['vs_eager']:.2f}x"
        paired = "–" if r.get("vs_eager_paired") is None else f"{r['vs_eager_paired']:.2f}x"
        anchor = ""
        if anchors:
            a, ax = r.get("anchor_median_ms"), r.get("anchor_vs_eager")
            anchor = " – |" if a is None else f" {_fmt_ms(a)}" + (f" ({ax:.2f}x) |" if ax else " |")
        lines.append(f"| {r['model']} | {r['backend']} | {_fmt_ms(r.get('median_ms'))} | {_fmt_ms(r.get('p90_ms'))} "
                     f"| {ratio} | {paired} | {r.get('compile_s', 0):.2f} | {_fmt_err(r)} | {_fmt_err(r, 'rel_l2')} "
                     f"| {r.get('calls', 0)} |"
                     + anchor)
    if anchors:
        lines += ["", f"Anchors: {result['meta'].get('anchors')} (another run: compare the ratios, not the ms; "
                      "anchor BERT had no attention_mask, anchor GPT-2 ran with use_cache=False: "
                      "bert_b1_s128_ids and gpt2_b1_s128_nocache are those inputs)."]
    lines += _render_reports(recs) + _render_notes(recs, s["rounds"])
    return "\n".join(lines) + "\n"


def _render_reports(recs: list[dict[str, Any]]) -> list[str]:
    reps = [r for r in recs if r["backend"] == "lepton" and (r.get("report") or r.get("report_error"))]
    if not reps:
        return []
    lines = ["", "lepton compile report:", "",
             "| model | partitions | native nodes | fallback nodes | kernels/call | compile s | fallback ops |",
             "|---|---|---|---|---|---|---|"]
    for r in reps:
        rep = r.get("report") or {}
        if not isinstance(rep, dict):
            rep = {}
        ops = rep.get("fallback_ops") or {}
        if isinstance(ops, dict):
            ops_s = ", ".join(f"{k}×{v}" for k, v in list(ops.items())[:6]) + (" …" if len(ops) > 6 else "")
        else:
            ops_s = ", ".join(map(str, list(ops)[:6])) + (" …" if len(ops) > 6 else "")
        cs = rep.get("compile_s")
        lines.append(f"| {r['model']} | {rep.get('partitions', '?')} | {rep.get('native_nodes', '?')} | "
                     f"{rep.get('fallback_nodes', '?')} | {rep.get('kernels_per_call', '?')} | "
                     f"{cs if not isinstance(cs, float) else f'{cs:.2f}'} | "
                     f"{ops_s or r.get('report_error', '')} |")
    return lines


def _render_notes(recs: list[dict[str, Any]], rounds: int) -> list[str]:
    notes = []
    for r in recs:
        for key in ("accuracy", "warm_accuracy"):
            note = (r.get(key) or {}).get("note")
            if note:
                notes.append(f"- {r['model']} / {r['backend']}: {note}")
        if r.get("model_unchanged") is False and r["backend"] == "eager":
            notes.append(f"- {r['model']}: the model's output changed during the run (a backend mutated it)")
        timed_s = (r.get("mean_ms") or 0.0) * r.get("calls", 0) / 1e3
        if r.get("isolated") and r.get("foreign_cpu_s") and r["foreign_cpu_s"] > 0.1 * timed_s:
            notes.append(f"- {r['model']} / {r['backend']}: other processes used {r['foreign_cpu_s']:.1f} CPU s "
                         f"during its {timed_s:.0f} s of timed calls: its numbers are disturbed")
        elif (not r.get("isolated") and r.get("foreign_cpu_s") and r["backend"] == "eager"
              and r["foreign_cpu_s"] > 0.1 * r.get("timing_wall_s", 0)):
            notes.append(f"- {r['model']}: other processes used {r['foreign_cpu_s']:.1f} CPU s during its "
                         f"{r['timing_wall_s']:.0f} s of timing: its numbers are disturbed")
        if r["backend"] == "eager" and r.get("rounds_done", rounds) < rounds:
            notes.append(f"- {r['model']}: time budget spent after {r['rounds_done']} rounds")
        if r.get("status") == "error" and r.get("median_ms"):
            notes.append(f"- {r['model']} / {r['backend']}: failed after {r.get('rounds')} rounds: {r['error']}")
    return (["", "Notes:", *sorted(set(notes))]) if notes else []


# --------------------------------------------------------------------------------------------------- CLI

# --quantize SCHEME: lepton's quantized backend and the peers doing the same (bench/peers.py)
QUANT_BACKENDS = {"int8-dynamic": ["lepton_int8", "ort_int8", "ort_int8_pc", "torch_int8"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    tiny = [n for n in zoo.names(include_test_only=True, include_extra=True) if n not in zoo.names()]
    p.add_argument("--models", help=f"comma list (default: {','.join(zoo.names())}); also: {','.join(tiny)}")
    p.add_argument("--backends", help=f"comma list (default: {','.join(default_backends())}); "
                                      f"known: {','.join(PEERS)}")
    p.add_argument("--quantize", choices=sorted(QUANT_BACKENDS),
                   help="add the int8 backends of this scheme (lepton and its peers) to the backends")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--rounds", type=int, help="interleaved timing rounds (default 30, --quick 5)")
    p.add_argument("--quick", action="store_true", help="fewer, shorter rounds and a shorter warm-up")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all available cores)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and inputs")
    p.add_argument("--max-model-s", type=float, default=Settings.max_model_s,
                   help="stop a model's timing rounds after this many seconds (at least 5 rounds run)")
    p.add_argument("--in-process", action="store_true",
                   help="all backends in this process (default: one worker process per backend)")
    p.add_argument("--warm-cache", action="store_true", help="keep inductor's on-disk cache (warm compile times)")
    p.add_argument("--json", metavar="FILE", help="write all raw numbers and machine info here")
    p.add_argument("--md", metavar="FILE", help="also write the printed tables here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--anchors", metavar="FILE", help="peer numbers from an earlier run (JSON with a 'results' list "
                                                     "of model/backend/median_ms) to show beside ours")


def run_from_args(ns: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    split = (lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None)
    kw: dict[str, Any] = {"device": ns.device, "threads": ns.threads, "seed": ns.seed, "warm_cache": ns.warm_cache,
                          "max_model_s": ns.max_model_s, "isolate": not ns.in_process}
    if ns.rounds:
        kw["rounds"] = ns.rounds
    settings = Settings.quick(**kw) if ns.quick else Settings(**kw)
    try:
        anchors_ok = ns.anchors is None or Path(ns.anchors).is_file()
        if not anchors_ok:
            raise ValueError(f"--anchors: no such file {ns.anchors}")
        backends = split(ns.backends)
        if ns.quantize:
            backends = [*(backends or default_backends()), *QUANT_BACKENDS[ns.quantize]]
        result = run_bench(split(ns.models), backends, settings, progress=not ns.no_progress, argv=argv)
    except (KeyError, ValueError, RuntimeError) as e:
        print(f"lepton-graph bench: {e}", file=sys.stderr)
        return 2
    if ns.anchors:
        attach_anchors(result, ns.anchors)
    if ns.json:
        write_json(result, ns.json)
    text = render_markdown(result)
    print(text)
    if ns.md:
        Path(ns.md).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.md).write_text(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    add_arguments(p)
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_from_args(p.parse_args(argv), ["bench/run.py", *argv])


if __name__ == "__main__":
    sys.exit(main())
