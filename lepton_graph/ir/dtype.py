"""Element types of IR values, with their torch mapping.

The enum is ours (not torch.dtype) so the IR serializes to JSON and can name types torch lacks (int4).
"""

from __future__ import annotations

import builtins
import enum

import torch


class DType(enum.Enum):
    f64 = "f64"
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    f8e4m3 = "f8e4m3"
    f8e5m2 = "f8e5m2"
    i64 = "i64"
    i32 = "i32"
    i16 = "i16"
    i8 = "i8"
    u8 = "u8"
    i4 = "i4"  # packed two per byte; no torch equivalent
    bool = "bool"
    c64 = "c64"

    @property
    def itemsize(self) -> float:
        return _ITEMSIZE[self]

    @property
    def is_float(self) -> builtins.bool:  # `bool` is the member DType.bool in this class body
        return self in (DType.f64, DType.f32, DType.f16, DType.bf16, DType.f8e4m3, DType.f8e5m2)

    def to_torch(self) -> torch.dtype:
        try:
            return _TO_TORCH[self]
        except KeyError:
            raise TypeError(f"dtype {self.value} has no torch equivalent") from None

    @staticmethod
    def from_torch(dt: torch.dtype) -> DType:
        try:
            return _FROM_TORCH[dt]
        except KeyError:
            raise TypeError(f"unsupported torch dtype {dt}") from None

    def __repr__(self) -> str:
        return self.value


_ITEMSIZE = {
    DType.f64: 8,
    DType.f32: 4,
    DType.f16: 2,
    DType.bf16: 2,
    DType.f8e4m3: 1,
    DType.f8e5m2: 1,
    DType.i64: 8,
    DType.i32: 4,
    DType.i16: 2,
    DType.i8: 1,
    DType.u8: 1,
    DType.i4: 0.5,
    DType.bool: 1,
    DType.c64: 8,
}
_TO_TORCH = {
    DType.f64: torch.float64,
    DType.f32: torch.float32,
    DType.f16: torch.float16,
    DType.bf16: torch.bfloat16,
    DType.f8e4m3: torch.float8_e4m3fn,
    DType.f8e5m2: torch.float8_e5m2,
    DType.i64: torch.int64,
    DType.i32: torch.int32,
    DType.i16: torch.int16,
    DType.i8: torch.int8,
    DType.u8: torch.uint8,
    DType.bool: torch.bool,
    DType.c64: torch.complex64,
}
_FROM_TORCH = {v: k for k, v in _TO_TORCH.items()}
