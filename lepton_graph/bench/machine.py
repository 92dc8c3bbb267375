"""The machine a bench ran on: CPU model and ISA, cores, memory, versions, load, commit."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx512ifma",
    "avx512vbmi",
    "avx512_vbmi2",
    "avx512_bitalg",
    "avx512_vpopcntdq",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cores_available": available_cores(),
    }
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
        from ..backends.cpu import native

        if native.available():
            info["kernel_variants"] = native.kernel_variants()
    except ImportError:
        pass
    try:
        info["mem"] = (
            next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
            .split(":")[1]
            .strip()
        )
    except (OSError, StopIteration):
        pass
    try:
        from ..backends.cpu import native

        info["lepton_cpu_features"] = native.features() or "unavailable: the native extension is not built"
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

    out = {"torch": str(torch.__version__)}
    for pkg in ("lepton_graph", "transformers", "numpy", "onnx", "onnxruntime", "onnxscript", "openvino", "triton"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[1]
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def describe_machine(meta: dict[str, Any]) -> str:
    m, v = meta["machine"], meta["versions"]
    isa = ", ".join(f for f in m.get("isa", []) if f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile"))
    kv = m.get("kernel_variants") or {}
    kernels = f"; lepton kernels f32 {kv['gemm_f32']}, int8 {kv['gemm_int8']}, bf16 {kv['gemm_bf16']}" if kv else ""
    parts = [
        f"{m.get('cpu_model', '?')} ({m.get('cores_available')} cores; {isa}{kernels})",
        m.get("mem", ""),
        f"torch {v.get('torch')}",
        f"transformers {v.get('transformers', '–')}",
        f"{meta['torch_threads']} torch threads",
        f"device {meta['settings']['device']}",
    ]
    if "gpu" in m:
        parts.insert(1, m["gpu"])
    return "; ".join(p for p in parts if p)


def _load_warning(meta: dict[str, Any]) -> list[str]:
    """The 1-minute load average before the run: other processes on a 2-core machine distort every number."""
    load = (meta.get("loadavg_start") or [0.0])[0]
    busy = load > 0.5 * max(1, meta["machine"].get("cores_available") or 1)
    return [f"**Warning: load average {load} at the start: other processes were running.**"] if busy else []


def cpu_summary() -> str:
    """The CPU model and the widest vector ISA our kernels use on it, e.g. "AMD EPYC (avx2)"."""
    info = machine_info()
    isa = info.get("isa", [])
    best = "avx512" if "avx512f" in isa else "avx2" if "avx2" in isa else "scalar"
    return f"{info.get('cpu_model', '?')} ({best})"


def emit_table(lines: list[str], md: str | None) -> None:
    """A bench script's markdown table: printed, and written to ``md`` when given (bench/results/...)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if md:
        Path(md).write_text(text)
