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
    out: dict[str, torch.Tensor] = {}
    for name, (dtype_name, shape, begin, nbytes) in tensor_entries(buf, where).items():
        dtype = _DTYPES[dtype_name]
        if nbytes == 0:
            out[name] = torch.empty(shape, dtype=dtype)
        else:
            count = nbytes // torch.empty((), dtype=dtype).element_size()
            out[name] = torch.frombuffer(buf, dtype=dtype, count=count, offset=begin).reshape(shape)
    return out


def tensor_entries(buf: memoryview, where: str) -> dict[str, tuple[str, list[int], int, int]]:
    """The section's tensors as (dtype name, shape, first byte in ``buf``, bytes), every field and offset checked
    against the section (``lepton-graph inspect`` reads them without making tensors)."""
    if len(buf) < 8:
        raise ArtifactError(f"{where}: the tensors section is truncated")
    n = int.from_bytes(buf[:8], "little")
    if n > min(MAX_HEADER, len(buf) - 8):
        raise ArtifactError(f"{where}: the tensors header length {n} does not fit the section")
    header = json_object(buf[8 : 8 + n], f"{where}: the tensors header")
    size, out = len(buf) - 8 - n, {}
    for name, info in header.items():
        if name != "__metadata__":
            dtype, shape, begin, nbytes = _entry(size, name, info, where)
            out[name] = (dtype, shape, 8 + n + begin, nbytes)
    return out


def _entry(size: int, name: str, info: Any, where: str) -> tuple[str, list[int], int, int]:
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
    numel = 1
    for d in shape:
        numel *= d
    nbytes = numel * torch.empty((), dtype=_DTYPES[info["dtype"]]).element_size()
    if not 0 <= begin <= end <= size or end - begin != nbytes:
        raise ArtifactError(f"{bad}: bytes [{begin}, {end}) do not fit the section or its {shape} {info['dtype']}")
    return info["dtype"], shape, begin, nbytes
