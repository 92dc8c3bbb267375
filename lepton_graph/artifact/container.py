"""The artifact file: a magic, a JSON header, and checksummed sections.

    bytes 0..8      MAGIC
    bytes 8..16     header length H (little-endian u64)
    bytes 16..16+H  header: UTF-8 JSON {"format": 1, "lepton_graph": version, "torch": version, "machine": {...},
                    "sections": [{"name", "offset", "length", "sha256"}, ...], ...}
    then            the sections, each at its offset (relative to the end of the header), 64-byte aligned in
                    the file (the header is padded with spaces) so tensors mapped from it are aligned

Reading checks, in this order and before anything is parsed: the magic, that H fits the file and the header limit,
that the header is a JSON object of a format this version reads, that every section lies inside the file, and
every section's sha256. Sections larger than CHUNK also carry the sha256 of each CHUNK-byte piece (format 2):
those are what the reader checks, on every core at once (hashing 400 MB on one core took most of a BERT load);
format 1 files (one digest per section) still load. A newer format is refused with the version it needs;
anything else broken is an ArtifactError naming what (never an exception from deep inside a parser, never a read
out of bounds).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from collections.abc import Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError

MAGIC = b"LEPTONG\x01"
FORMAT = 2  # bump on any change an older reader would misread (2: chunk digests, stored GEMM panels)
CHUNK = 16 << 20  # bytes per chunk digest of a large section
MAX_HEADER = 1 << 20
ALIGN = 64  # every section starts at a multiple of this file offset


def write_artifact(path: str | Path, header: Mapping[str, Any], sections: Mapping[str, bytes]) -> int:
    """Write the file atomically (a temporary beside it, then renamed); returns its size in bytes."""
    table, offset = [], 0
    for name, blob in sections.items():
        entry: dict[str, Any] = {"name": name, "offset": offset, "length": len(blob)}
        entry["sha256"] = hashlib.sha256(blob).hexdigest()
        if len(blob) > CHUNK:
            view = memoryview(blob)
            entry["chunks"] = [hashlib.sha256(view[i : i + CHUNK]).hexdigest() for i in range(0, len(blob), CHUNK)]
        table.append(entry)
        offset += _padded(len(blob))
    head = json.dumps({**header, "format": FORMAT, "sections": table}, sort_keys=True).encode()
    head += b" " * (_padded(16 + len(head)) - 16 - len(head))  # sections start 64-byte aligned (mmap'd tensors)
    if len(head) > MAX_HEADER:
        raise ArtifactError(f"artifact header is {len(head)} bytes, more than the format's {MAX_HEADER}")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for blob in sections.values():
            f.write(blob)
            f.write(b"\0" * (_padded(len(blob)) - len(blob)))
    tmp.replace(path)
    return path.stat().st_size


@dataclass
class Artifact:
    """An opened artifact: its header and sections as zero-copy views of the (copy-on-write) mapped file. The
    sections' bounds are checked; their sha256 are checked by ``check`` (read_artifact checks all at once)."""

    path: str
    header: dict[str, Any]
    sections: dict[str, memoryview]
    digests: dict[str, str | list[str]]  # a section's sha256, or its chunks' (format 2, sections > CHUNK)
    _map: Any = None  # the mmap the views point into

    def check(self, name: str) -> None:
        for piece, want in self._pieces(name):
            _check_piece(self.path, name, piece, want)

    def check_in(self, pool: Executor, name: str) -> list[Future]:
        """The section's checks as tasks on ``pool`` (hashlib releases the GIL: chunks hash on every core);
        each future raises ArtifactError when its piece fails."""
        return [pool.submit(_check_piece, self.path, name, piece, want) for piece, want in self._pieces(name)]

    def _pieces(self, name: str) -> list[tuple[memoryview, str]]:
        view, want = self.sections[name], self.digests[name]
        if isinstance(want, str):
            return [(view, want)]
        return [(view[i * CHUNK : (i + 1) * CHUNK], w) for i, w in enumerate(want)]


def _check_piece(path: str, name: str, piece: memoryview, want: str) -> None:
    if hashlib.sha256(piece).hexdigest() != want:
        raise ArtifactError(f"artifact {path!r}: section {name!r} fails its sha256 check: the file is corrupt")


def open_artifact(path: str | Path) -> Artifact:
    """Map the file and check everything but the section checksums (see the module docstring)."""
    where = f"artifact {str(path)!r}"
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if size else None
    except OSError as e:
        raise ArtifactError(f"cannot read artifact {str(path)!r}: {e.strerror or e}") from None
    data = memoryview(mapped) if mapped is not None else memoryview(b"")
    if len(data) < 16 or data[:8] != MAGIC:
        if len(data) >= 8 and data[:7] == MAGIC[:7]:
            raise ArtifactError(f"{where}: container version {data[7]} is not the one this lepton_graph reads")
        raise ArtifactError(f"{where} is not a lepton_graph artifact (bad magic)")
    (n,) = struct.unpack("<Q", data[8:16])
    if n > MAX_HEADER or 16 + n > len(data):
        raise ArtifactError(f"{where}: header length {n} does not fit the file ({len(data)} bytes): truncated?")
    header = json_object(data[16 : 16 + n], f"{where}: the header")
    fmt = header.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise ArtifactError(f"{where}: the header has no format version")
    if fmt > FORMAT:
        raise ArtifactError(
            f"{where} has format version {fmt}, written by lepton_graph {header.get('lepton_graph', '?')}; this "
            f"lepton_graph reads format {FORMAT} and older: upgrade lepton_graph to load it"
        )
    body = data[16 + n :]
    sections: dict[str, memoryview] = {}
    digests: dict[str, str | list[str]] = {}
    table = header.get("sections")
    if not isinstance(table, list):
        raise ArtifactError(f"{where}: the header has no section table")
    for s in table:
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not isinstance(s.get("sha256"), str):
            raise ArtifactError(f"{where}: a section entry is malformed")
        name, off, length = s["name"], s.get("offset"), s.get("length")
        if not (_size(off) and _size(length)):
            raise ArtifactError(f"{where}: section {name!r} has no valid offset/length")
        assert isinstance(off, int) and isinstance(length, int)
        if off + length > len(body):
            raise ArtifactError(
                f"{where}: section {name!r} ends at byte {off + length} of {len(body)}: the file is truncated"
            )
        sections[name] = body[off : off + length]
        chunks = s.get("chunks")
        if chunks is None:
            digests[name] = s["sha256"]
        elif (
            not isinstance(chunks, list)
            or len(chunks) != (length + CHUNK - 1) // CHUNK
            or not all(isinstance(c, str) for c in chunks)
        ):
            raise ArtifactError(f"{where}: section {name!r} has a malformed chunk digest list")
        else:
            digests[name] = chunks
    end = max((s["offset"] + _padded(s["length"]) for s in table), default=0)
    if end != len(body):
        raise ArtifactError(
            f"{where}: the file has {len(body) - end:+d} bytes beyond its sections: truncated or appended to"
        )
    return Artifact(str(path), header, sections, digests, mapped)


def json_object(blob: memoryview | bytes, what: str) -> dict[str, Any]:
    """``blob`` parsed as a JSON object, or ArtifactError naming ``what``."""
    try:
        obj = json.loads(bytes(blob).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ArtifactError(f"{what} is not valid JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise ArtifactError(f"{what} is not a JSON object")
    return obj


def read_artifact(path: str | Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(header, sections by name as bytes) of a file written by write_artifact, every check passed."""
    art = open_artifact(path)
    for name in art.sections:
        art.check(name)
    return art.header, {name: bytes(v) for name, v in art.sections.items()}


def _padded(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _size(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0
