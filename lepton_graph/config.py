"""Every knob, declared once. Environment variables (LEPTON_*) are read here and nowhere else."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    name: str
    type: type
    default: Any
    doc: str
    env: str | None = None


OPTIONS = [
    Option(
        "log",
        str,
        "",
        "comma list of log channels: graph,passes,fusion,partitions,fallback,guards,executor",
        "LEPTON_LOG",
    ),
    Option(
        "verify", bool, False, "run the IR verifier and the reference interpreter after every pass", "LEPTON_VERIFY"
    ),
    Option(
        "cache_limit",
        int,
        8,
        "compiled variants kept per model before new signatures go to the fallback path",
        "LEPTON_CACHE_LIMIT",
    ),
    Option(
        "native", bool, True, "lower partitions to native kernels (off: everything runs through torch)", "LEPTON_NATIVE"
    ),
    Option("num_threads", int, 0, "threads for native kernels (0: torch.get_num_threads())", "LEPTON_NUM_THREADS"),
    Option("profile", bool, False, "time every native kernel (lepton_graph.runtime.profile.table())", "LEPTON_PROFILE"),
    Option("frontend", str, "auto", "auto | export | dynamo: how a model is captured", "LEPTON_FRONTEND"),
    # read by the C++ extension at its first use (csrc/common/cpu_features.h); declared here to be documented
    Option("disable_avx512", bool, False, "native kernels: hide AVX-512, use the AVX2 paths", "LEPTON_DISABLE_AVX512"),
    Option(
        "disable_avx2", bool, False, "native kernels: hide AVX2 and AVX-512, use portable code", "LEPTON_DISABLE_AVX2"
    ),
    # handed to the C++ GEMM driver when the extension loads (backends/cpu/native.py); for tuning
    Option(
        "disable_avx512_vnni",
        bool,
        False,
        "native kernels: hide AVX512_VNNI (int8 takes the AVX2 kernels)",
        "LEPTON_DISABLE_AVX512_VNNI",
    ),
    Option(
        "disable_avx512_bf16",
        bool,
        False,
        "native kernels: hide AVX512_BF16 (bf16 is emulated)",
        "LEPTON_DISABLE_AVX512_BF16",
    ),
    # handed to the C++ GEMM driver when the extension loads (backends/cpu/native.py); for tuning. 0: derived from
    # the CPU's cache sizes (_C.cache_sizes(); csrc/kernels/gemm_driver.h says how)
    Option(
        "gemm_kc",
        int,
        0,
        "fp32/bf16 GEMM cache blocking: k rows per K slice (>= 8; 0: 768 on AVX2, 512 on AVX-512)",
        "LEPTON_GEMM_KC",
    ),
    Option(
        "gemm_mc", int, 0, "fp32/bf16 GEMM cache blocking: rows of A per block (0: from the L2 size)", "LEPTON_GEMM_MC"
    ),
    Option(
        "gemm_dynamic_panels",
        bool,
        True,
        "GEMMs split over N hand their panels out at run time (guided chunks) instead of a fixed share per thread",
        "LEPTON_GEMM_DYNAMIC_PANELS",
    ),
    Option(
        "artifact_panels",
        bool,
        True,
        "export stores GEMM weights as packed f32 panels, read in place at load (off: raw weights, packed at load)",
        "LEPTON_ARTIFACT_PANELS",
    ),
    Option(
        "serve",
        str,
        "",
        "set by `lepton-graph serve --workers N` for its worker processes: the served file and options, as JSON",
        "LEPTON_SERVE",
    ),
]


def _parse(opt: Option, raw: str) -> Any:
    if opt.type is bool:
        return raw.strip().lower() not in ("", "0", "false", "no", "off")
    return opt.type(raw)


class Config:
    # the options' types, for readers and type checkers (tests/test_config.py keeps them equal to OPTIONS)
    log: str
    verify: bool
    cache_limit: int
    native: bool
    num_threads: int
    profile: bool
    frontend: str
    disable_avx512: bool
    disable_avx2: bool
    disable_avx512_vnni: bool
    disable_avx512_bf16: bool
    gemm_kc: int
    gemm_mc: int
    gemm_dynamic_panels: bool
    artifact_panels: bool
    serve: str

    def __init__(self) -> None:
        for opt in OPTIONS:
            raw = os.environ.get(opt.env) if opt.env else None
            object.__setattr__(self, opt.name, opt.default if raw is None else _parse(opt, raw))

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in {o.name for o in OPTIONS}:
            raise AttributeError(f"unknown lepton_graph option {name!r}")
        object.__setattr__(self, name, value)

    @contextlib.contextmanager
    def patch(self, **changes: Any) -> Iterator[None]:
        old = {k: getattr(self, k) for k in changes}
        for k, v in changes.items():
            setattr(self, k, v)
        try:
            yield
        finally:
            for k, v in old.items():
                object.__setattr__(self, k, v)

    def patched(self, **changes: Any) -> Callable[[Callable], Callable]:
        def deco(fn: Callable) -> Callable:
            @functools.wraps(fn)
            def wrapper(*a: Any, **k: Any) -> Any:
                with self.patch(**changes):
                    return fn(*a, **k)

            return wrapper

        return deco

    def for_children(self, name: str, value: Any) -> None:
        """Set an option here and in the environment that processes started from now on inherit (worker
        processes read their settings from it)."""
        opt = next(o for o in OPTIONS if o.name == name)
        setattr(self, name, value)
        if opt.env:
            os.environ[opt.env] = str(int(value)) if isinstance(value, bool) else str(value)

    def env_flag(self, name: str) -> str | None:
        """Read-only access to an environment variable for the few LEPTON_* flags C++ reads too."""
        return os.environ.get(name)


config = Config()


def help_text() -> str:
    return "\n".join(f"{o.env or o.name:24} {o.doc} (default {o.default!r})" for o in OPTIONS)
