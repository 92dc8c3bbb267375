"""GEMM weights stored packed: the f32 B panels the CPU kernels read, written at export and read in place at load.

Packing BERT-base's 437 MB of linear weights took 0.27-0.33 s of a ~0.45 s load; the packed f32 layout is the same
on every ISA (csrc/kernels/gemm.h: 32-column panels), so the file can hold it instead of the raw weight. A constant
is stored this way only when every reader of it is a native GEMM that packs it, all in one orientation (an
nn.Linear weight, or a MATMUL's constant B; a tied embedding also reads the raw weight and stays raw). Its graph
value keeps the declared shape; the loader gives the lowering the panels (``backends.Prepacked``), counts that
every use took them, and otherwise unpacks them to the raw weight (exact: panels are a permutation plus zero
padding) and lowers again, so a loaded model never reads a weight that is not there.

The panels section is safetensors bytes holding one uint8 tensor, ``panels``; each weight's panels start at a
64-byte aligned file offset (the aligned loads of the micro-kernels read them in place from the mapped file).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ..backends.cpu import CpuNative
from ..errors import ArtifactError
from ..ir import Graph, Node, Op

PANEL = 32  # csrc/kernels/gemm.h detail::kPanel
ALIGN = 64
NATIVE = CpuNative.name


def native_nodes(plan: Any) -> set[int]:
    """ids of the nodes in ``plan``'s native partitions."""
    return {id(n) for p in plan.partitions if p.target == NATIVE for n in p.nodes}


def packed_f32_nbytes(k: int, n: int) -> int:
    """Bytes of a k x n f32 B in panels (gemm_packed_f32_nbytes; the last panel is 16 wide when the rest fits)."""
    panels = (n + PANEL - 1) // PANEL
    if panels == 0:
        return 0
    rem = n % PANEL
    last = PANEL // 2 if rem and rem <= PANEL // 2 else PANEL
    return ((panels - 1) * PANEL + last) * k * 4


def unpack(words: torch.Tensor, k: int, n: int, transposed: bool) -> torch.Tensor:
    """The weight behind f32 panels: (n, k) when ``transposed`` (nn.Linear layout), else (k, n); a new tensor."""
    f = words.view(torch.float32) if words.numel() else torch.empty(0)
    panels = (n + PANEL - 1) // PANEL
    if panels == 0 or k == 0:
        b = torch.zeros(k, n)
    else:
        full = panels - 1
        last = packed_f32_nbytes(k, n) // 4 // k - full * PANEL
        head = f[: full * PANEL * k].view(full, k, PANEL).permute(1, 0, 2).reshape(k, full * PANEL)
        tail = f[full * PANEL * k : (full * PANEL + last) * k].view(k, last)
        b = torch.cat([head, tail], 1)[:, :n]
    return (b.t() if transposed else b).contiguous()


def _gemm_weight_site(node: Node, index: int) -> bool | None:
    """The orientation in which the GEMM lowering packs input ``index`` of ``node`` (True: an nn.Linear (N, K)
    weight), or None when it reads that input otherwise."""
    if index != 1 or node.inputs[1].rank != 2:
        return None
    if node.op is Op.LINEAR:
        return True
    if node.op is Op.MATMUL and node.inputs[0].rank >= 2:
        return False
    return None


def _uses(graph: Graph, node: Node) -> Iterator[tuple[str, bool | None]]:
    """(constant key, packing orientation or None) for every read of a constant by ``node`` (inside a FUSED
    group: by its body's nodes; only a gemm group's root packs)."""
    if node.op is Op.FUSED:
        body: Graph = node.attrs["body"]
        outer = dict(zip(body.inputs, node.inputs))
        gemm = node.attrs.get("kind") == "gemm"
        for j, inner in enumerate(body.nodes):
            for i, v in enumerate(inner.inputs):
                o = outer.get(v) if v is not None else None
                if o is not None and o.const is not None:
                    yield o.const, _gemm_weight_site(inner, i) if gemm and j == 0 else None
        return
    for i, v in enumerate(node.inputs):
        if v is not None and v.const is not None:
            yield v.const, _gemm_weight_site(node, i)


def use_counts(graph: Graph) -> dict[str, int]:
    """How many reads of each constant the graph's nodes make (FUSED groups counted by their bodies' reads)."""
    counts: dict[str, int] = {}
    for node in graph.nodes:
        for key, _ in _uses(graph, node):
            counts[key] = counts.get(key, 0) + 1
    return counts


def untaken(graph: Graph, plan: Any, used: dict[str, int], stored: dict[str, Any]) -> str | None:
    """None when every read of every stored weight took its panels at lowering (``used``: takes per key) and runs
    in a native partition; else why not."""
    counts = use_counts(graph)
    for key in stored:
        if used.get(key, 0) != counts.get(key, 0):
            return f"{used.get(key, 0)} of the {counts.get(key, 0)} reads of {key!r} took its panels"
    native = native_nodes(plan)
    for node in graph.nodes:
        if id(node) not in native and any(key in stored for key, _ in _uses(graph, node)):
            return f"node {node.name} reads a stored weight outside the native kernels"
    return None


def candidates(graph: Graph, plan: Any) -> dict[str, bool]:
    """Constant key -> orientation, for the f32 2-D constants every reader of which is a native GEMM packing it
    one way (``plan``: the compiled partition plan)."""
    native = native_nodes(plan)
    seen: dict[str, set[bool | None]] = {}
    for node in graph.nodes:
        for key, site in _uses(graph, node):
            seen.setdefault(key, set()).add(site if id(node) in native else None)
    out: dict[str, bool] = {}
    for key, sites in seen.items():
        t, site = graph.constants.get(key), next(iter(sites))
        if len(sites) == 1 and site is not None and t is not None and t.dtype == torch.float32 and t.dim() == 2:
            out[key] = site
    return out


def save(entries: dict[str, tuple[bool, int, int, torch.Tensor]]) -> tuple[bytes, list[dict[str, Any]]]:
    """The panels section for ``entries`` (key -> (transposed, k, n, panel bytes as uint8)) and its table (key,
    transposed, k, n, offset, nbytes; offsets into the ``panels`` tensor). Each weight's offset makes its file
    offset 64-byte aligned, given that the section starts 64-byte aligned (container.py aligns every section)."""
    from safetensors.torch import save as st_save

    total = sum(_aligned(int(w.numel())) for *_, w in entries.values()) + ALIGN
    buf = torch.zeros(total, dtype=torch.uint8)
    # the data starts after safetensors' header, whose length depends only on the tensor's name, dtype and size
    probe = st_save({"panels": buf})
    at = (-(8 + int.from_bytes(probe[:8], "little"))) % ALIGN
    table = []
    for key, (transposed, k, n, words) in entries.items():
        size = int(words.numel())
        buf[at : at + size] = words
        table.append({"key": key, "transposed": transposed, "k": k, "n": n, "offset": at, "nbytes": size})
        at += _aligned(size)
    return st_save({"panels": buf}), table


def panel_bytes(packed: Any) -> torch.Tensor:
    """A uint8 copy of a native f32 PackedB's words."""
    import ctypes

    if packed.bf16:
        raise ValueError("bf16 panels are not stored (the file keeps the raw weight)")
    out = torch.empty(packed.nbytes, dtype=torch.uint8)
    if packed.nbytes:
        ctypes.memmove(out.data_ptr(), packed.data_ptr, packed.nbytes)
    return out


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def check_table(call: dict[str, Any], section_bytes: int | None, names: Any, where: str) -> list[dict[str, Any]]:
    """The call section's panel table, every entry checked: types, sizes against k x n, offsets inside the
    ``panels`` tensor of ``section_bytes`` bytes (None: the file has no panels section), keys unique and not also
    among the tensors section's ``names``."""
    table = call.get("panels", [])
    if not isinstance(table, list):
        raise ArtifactError(f"{where}: the panel table is malformed")
    if table and section_bytes is None:
        raise ArtifactError(f"{where}: the call section lists stored panels but the file has no panels section")
    seen: set[str] = set()
    for e in table:
        ok = isinstance(e, dict) and isinstance(e.get("key"), str) and isinstance(e.get("transposed"), bool)
        if not (ok and all(_size(e.get(f)) for f in ("k", "n", "offset", "nbytes"))):
            raise ArtifactError(f"{where}: a panel table entry is malformed")
        key, k, n, off, nb = e["key"], e["k"], e["n"], e["offset"], e["nbytes"]
        if key in seen or key in names:
            raise ArtifactError(f"{where}: constant {key!r} is stored twice")
        seen.add(key)
        assert section_bytes is not None
        if nb != packed_f32_nbytes(k, n) or off % 4 or off + nb > section_bytes:
            raise ArtifactError(f"{where}: the panels of {key!r} ({k} x {n}) do not fit the panels section")
    return table


def read_table(
    call: dict[str, Any], section: torch.Tensor | None, names: Any, where: str
) -> dict[str, tuple[bool, int, int, torch.Tensor]]:
    """check_table's entries as key -> (transposed, k, n, the panel bytes: a uint8 view of the mapped file)."""
    table = check_table(call, None if section is None else int(section.numel()), names, where)
    assert section is not None or not table
    return {
        e["key"]: (e["transposed"], e["k"], e["n"], section[e["offset"] : e["offset"] + e["nbytes"]])  # type: ignore[index]
        for e in table
    }


def _size(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 48
