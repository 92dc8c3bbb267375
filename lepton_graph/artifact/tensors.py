"""The tensors section: safetensors bytes, written by the safetensors library and read here as zero-copy views.

safetensors.torch.load(bytes) would copy every weight once more (the section is already mapped from the file, and
the loader packs the weights anyway): this reads the same format (8-byte header length, a JSON header of
``{name: {"dtype", "shape", "data_offsets"}}``, the data) with every offset and size checked against the section
before a tensor is made over it.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ArtifactError
from .container import json_object

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER = 100 << 20


def save_tensors(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: t.detach().contiguous().clone() for k, t in tensors.items()})


def view_tensors(buf: memoryview, where: str) -> dict[str, torch.Tensor]:
    """Tensors over ``buf`` (a writable view that outlives them: a copy-on-write map of the file)."""
    if len(buf) < 8:
        raise ArtifactError(f"{where}: the tensors section is truncated")
    n = int.from_bytes(buf[:8], "little")
    if n > min(MAX_HEADER, len(buf) - 8):
        raise ArtifactError(f"{where}: the tensors header length {n} does not fit the section")
    header = json_object(buf[8 : 8 + n], f"{where}: the tensors header")
    data = buf[8 + n :]
    out: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        out[name] = _tensor(data, name, info, where)
    return out


def _tensor(data: memoryview, name: str, info: Any, where: str) -> torch.Tensor:
    bad = f"{where}: tensor {name!r}"
    if not isinstance(info, dict) or info.get("dtype") not in _DTYPES:
        raise ArtifactError(f"{bad} has no known dtype")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and 0 <= d < 1 << 40 for d in shape):
        raise ArtifactError(f"{bad} has a malformed shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise ArtifactError(f"{bad} has malformed data offsets")
    begin, end = offsets
    dtype = _DTYPES[info["dtype"]]
    numel = 1
    for d in shape:
        numel *= d
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if not 0 <= begin <= end <= len(data) or end - begin != nbytes:
        raise ArtifactError(f"{bad}: bytes [{begin}, {end}) do not fit the section or its {shape} {info['dtype']}")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype, count=numel, offset=begin).reshape(shape)
