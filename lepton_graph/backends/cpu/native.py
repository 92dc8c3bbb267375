"""Backend stage (cpu): loads the C++ extension ``lepton_graph._C`` and wraps its raw-pointer kernels for tensors.

The kernels take addresses (``tensor.data_ptr()``) and element counts, so ``_C`` never links libtorch; the
wrappers here own the torch-side checks (device, dtype, contiguity, sizes) and allocate outputs.

>>> from lepton_graph.backends.cpu import native
>>> native.available(), native.features()["avx2"]
(True, True)
>>> native.relu_f32(torch.tensor([-1.0, 2.0]))
tensor([0., 2.])
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import torch

from ...config import config

try:
    from lepton_graph import _C
except ImportError as exc:  # a source checkout that was never built, or a wheel for another platform
    _C = None  # type: ignore[assignment]
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None
    _C.gemm_set_blocking(config.gemm_kc, config.gemm_mc)
    _C.gemm_set_dynamic_panels(config.gemm_dynamic_panels)

__all__ = [
    "act_enum",
    "add_f32",
    "available",
    "build_info",
    "features",
    "get_num_threads",
    "kernel_isa",
    "kernel_variants",
    "relu_f32",
    "set_max_isa",
    "set_num_threads",
]


def available() -> bool:
    """True when the native extension imported (the CPU backend can be used)."""
    return _C is not None


def _lib() -> Any:
    if _C is None:
        raise RuntimeError(f"lepton_graph._C is not available (the C++ extension did not import: {_IMPORT_ERROR})")
    return _C


def act_enum() -> type[IntEnum]:
    """The activations of the GEMM and conv epilogues as the kernels number them (``_C.Act``, one enum in
    csrc/kernels/activation.h): ``Act.relu`` ... ; only ``Act.none`` without ``_C`` (nothing is lowered then)."""
    members = {"none": 0} if _C is None else {name: int(v) for name, v in _C.Act.__members__.items()}
    return IntEnum("Act", members)  # type: ignore[return-value]


def features() -> dict[str, bool]:
    """CPU features detected at run time, e.g. ``{"avx2": True, "avx512f": True, ...}``; empty without ``_C``."""
    return dict(_C.cpu_features()) if _C is not None else {}


def build_info() -> dict[str, Any]:
    """How ``_C`` was built: ``{"openmp": bool, "avx2_kernels": bool, "avx512_kernels": bool, "compiler": str}``."""
    return dict(_lib().build_info())


def kernel_isa() -> str:
    """The kernel variant in use: ``"avx512"``, ``"avx2"`` or ``"scalar"``."""
    return str(_lib().kernel_isa())


def kernel_variants() -> dict[str, str]:
    """Which variant each kernel family runs now, e.g. ``{"gemm_f32": "avx512", "gemm_int8": "avx2", "gemm_bf16":
    "emulated", ...}`` on an AVX-512 CPU without VNNI and BF16 (Skylake-SP)."""
    return dict(_lib().kernel_variants())


def set_max_isa(name: str) -> None:
    """Cap kernel dispatch at ``"avx512"``, ``"avx2"`` or ``"scalar"`` (process-wide; used by tests and benches)."""
    _lib().set_max_isa(name)


def set_num_threads(n: int) -> None:
    """Threads used by native kernels (process-wide, ``n >= 1``)."""
    _lib().set_num_threads(n)


def get_num_threads() -> int:
    return int(_lib().get_num_threads())


def _check_f32(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be on the cpu device, got {t.device}")
    if t.dtype != torch.float32:
        raise ValueError(f"{name} must be float32, got {t.dtype}")
    if not t.is_contiguous():
        raise ValueError(
            f"{name} must be contiguous (got strides {tuple(t.stride())} for shape {tuple(t.shape)}); "
            "call .contiguous() first"
        )


def _same_numel(first: str, a: torch.Tensor, name: str, t: torch.Tensor) -> None:
    if t.numel() != a.numel():
        raise ValueError(
            f"{name} has {t.numel()} elements but {first} has {a.numel()} "
            f"(shapes {tuple(t.shape)} and {tuple(a.shape)}); the native kernels do not broadcast"
        )


def _output(like: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        return torch.empty_like(like, memory_format=torch.contiguous_format)
    _check_f32("out", out)
    _same_numel("the input", like, "out", out)
    return out


def relu_f32(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``torch.relu(x)`` for a contiguous float32 CPU tensor; ``out`` may be ``x`` itself (in place)."""
    lib = _lib()
    _check_f32("x", x)
    y = _output(x, out)
    lib.relu_f32(x.data_ptr(), y.data_ptr(), x.numel())
    return y


def add_f32(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a + b`` for contiguous float32 CPU tensors with the same number of elements (no broadcasting)."""
    lib = _lib()
    _check_f32("a", a)
    _check_f32("b", b)
    _same_numel("a", a, "b", b)
    y = _output(a, out)
    lib.add_f32(a.data_ptr(), b.data_ptr(), y.data_ptr(), a.numel())
    return y
