"""Input signatures and the bounded cache of compiled variants keyed by them."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree

from ..errors import InputError

# per tensor leaf: (shape, dtype, device); other leaves: ("py", type, value)
LeafSig = tuple[Any, ...]


@dataclass(frozen=True)
class Signature:
    structure: Hashable
    leaves: tuple[LeafSig, ...]
    names: tuple[str, ...]  # a readable path per leaf ("args[0]", "kwargs['input_ids']")

    def describe(self) -> str:
        parts = []
        for n, leaf in zip(self.names, self.leaves):
            if leaf[0] == "py":
                parts.append(f"{n}={leaf[2]!r}")
            else:
                shape, dtype, device = leaf
                parts.append(f"{n}:{str(dtype).removeprefix('torch.')}{list(shape)}@{device}")
        return ", ".join(parts)


def fast_key(args: tuple, kwargs: dict) -> tuple | None:
    """A cheap cache key when every argument is a plain tensor (the common case); None otherwise."""
    key: list[Any] = []
    for a in args:
        if type(a) is not torch.Tensor and not isinstance(a, torch.nn.Parameter):
            return None
        key.append((a.shape, a.dtype, a.device))
    if kwargs:
        for k in sorted(kwargs):
            a = kwargs[k]
            if type(a) is not torch.Tensor:
                return None
            key.append((k, a.shape, a.dtype, a.device))
    return (len(args), *key)


def call_items(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """(args, kwargs in name order): the tree every call is flattened as."""
    return tuple(args), {k: kwargs[k] for k in sorted(kwargs)}


def flatten_call(args: tuple, kwargs: dict) -> tuple[list[Any], Signature]:
    """Flatten (args, kwargs) with kwargs in name order, and describe each leaf."""
    paths, spec = pytree.tree_flatten_with_path(call_items(args, kwargs))
    leaves: list[Any] = []
    sig: list[LeafSig] = []
    names: list[str] = []
    for path, x in paths:
        leaves.append(x)
        names.append(_path_name(path))
        if isinstance(x, torch.Tensor):
            sig.append((tuple(x.shape), x.dtype, x.device))
        else:
            try:
                hash(x)
            except TypeError:
                raise InputError(f"argument {names[-1]} of type {type(x).__name__} is not supported") from None
            sig.append(("py", type(x), x))
    return leaves, Signature(_hashable(spec), tuple(sig), tuple(names))


def _path_name(path: tuple) -> str:
    head, *rest = path
    base = "args" if getattr(head, "idx", None) == 0 else "kwargs"
    s = ""
    for i, k in enumerate(rest):
        key = getattr(k, "idx", getattr(k, "key", getattr(k, "name", k)))
        if i == 0 and base == "args":
            s += f"[{key}]"
        elif i == 0:
            s += f"[{key!r}]"
        else:
            s += f"[{key!r}]" if isinstance(key, str) else f"[{key}]"
    return base + s


def _hashable(spec: Any) -> Hashable:
    try:
        hash(spec)
        return spec
    except TypeError:
        return repr(spec)


def explain_change(old: Signature, new: Signature) -> str:
    """Why a new signature missed the cache, in one line (for the recompile log)."""
    if old.structure != new.structure:
        return "argument structure changed"
    diffs = []
    for n, a, b in zip(new.names, old.leaves, new.leaves):
        if a == b:
            continue
        if a[0] == "py" or b[0] == "py":
            diffs.append(f"{n} value {a[-1]!r} -> {b[-1]!r}")
        elif a[0] != b[0]:
            diffs.append(f"{n} shape {list(a[0])} -> {list(b[0])}")
        if a[0] != "py" and b[0] != "py":
            if a[1] != b[1]:
                diffs.append(f"{n} dtype {a[1]} -> {b[1]}")
            if a[2] != b[2]:
                diffs.append(f"{n} device {a[2]} -> {b[2]}")
    return "; ".join(diffs) or "new signature"


def check_compatible(first: Signature, new: Signature) -> None:
    """Rank, dtype and device of every tensor must match the first compiled call; shapes may change."""
    if first.structure != new.structure:
        return  # different argument structure: a new variant, checked by the capture itself
    for n, a, b in zip(new.names, first.leaves, new.leaves):
        if a[0] == "py" or b[0] == "py":
            if (a[0] == "py") != (b[0] == "py"):
                raise InputError(
                    f"argument {n}: expected {'a tensor' if a[0] != 'py' else type(a[-1]).__name__}, "
                    f"got {'a tensor' if b[0] != 'py' else type(b[-1]).__name__}"
                )
            continue
        if len(a[0]) != len(b[0]):
            raise InputError(
                f"argument {n}: expected a tensor of rank {len(a[0])} (shape like {list(a[0])}), "
                f"got rank {len(b[0])} (shape {list(b[0])})"
            )
        if a[1] != b[1]:
            raise InputError(f"argument {n}: expected dtype {a[1]}, got {b[1]}")
        if a[2] != b[2]:
            raise InputError(f"argument {n}: expected device {a[2]}, got {b[2]}")


@dataclass
class Variant:
    signature: Signature
    run: Callable[[tuple[Any, ...], dict[str, Any], Sequence[Any]], Any]  # (args, kwargs, flat leaves)
    report: Any
    dims: tuple[tuple[int | None, ...] | None, ...] | None = None  # dynamic: None = any size in that dim
    export: Any = None  # artifact.ExportPiece of an exportable (export-frontend) variant
    # signatures this dynamic variant failed on (its capture had baked in a size of the first example): they get
    # a variant of their own
    excluded: set[Signature] = field(default_factory=set)

    def matches(self, sig: Signature) -> bool:
        if self.dims is None or sig.structure != self.signature.structure or sig in self.excluded:
            return False
        for pat, mine, leaf in zip(self.dims, self.signature.leaves, sig.leaves):
            if leaf[0] == "py" or mine[0] == "py":
                if leaf != mine:
                    return False
                continue
            if leaf[1:] != mine[1:] or pat is None or len(pat) != len(leaf[0]):
                return False
            if any(p is not None and p != s for p, s in zip(pat, leaf[0])):
                return False
        return True


class VariantCache:
    """Signature -> compiled variant, bounded: past the limit a new signature is not compiled."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.exact: dict[Signature, Variant] = {}
        self.fast: dict[tuple, Variant] = {}  # fast_key -> variant, for calls with plain tensor arguments
        self.variants: list[Variant] = []

    def lookup(self, sig: Signature) -> Variant | None:
        v = self.exact.get(sig)
        if v is not None:
            return v
        for var in self.variants:
            if var.matches(sig):
                if len(self.exact) < 64 * max(self.limit, 1):
                    self.exact[sig] = var
                return var
        return None

    def full(self) -> bool:
        return len(self.variants) >= self.limit

    def drop(self, sig: Signature) -> None:
        """Forget the variant compiled for ``sig`` (and every shortcut to it)."""
        gone = {id(v) for v in self.variants if v.signature == sig}
        self.variants = [v for v in self.variants if id(v) not in gone]
        self.exact = {k: v for k, v in self.exact.items() if id(v) not in gone}
        self.fast = {k: v for k, v in self.fast.items() if id(v) not in gone}

    def exclude(self, var: Variant, sig: Signature) -> None:
        """``var`` does not hold for ``sig`` after all: forget every shortcut from ``sig`` (and plain-tensor calls)
        to it, so the next lookup compiles a variant for ``sig``."""
        var.excluded.add(sig)
        self.exact = {k: v for k, v in self.exact.items() if not (v is var and k == sig)}
        self.fast = {k: v for k, v in self.fast.items() if v is not var}

    def add(self, var: Variant) -> None:
        self.variants.append(var)
        self.exact[var.signature] = var
