"""Running native-kernel tests on every ISA path the CPU and build offer (AVX-512, AVX2, portable)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from lepton_graph.backends.cpu import native

ALL_ISAS = ("avx512", "avx2", "scalar")


def available_isas() -> list[str]:
    """The variants this CPU and build can run, best first (the cap only lowers dispatch)."""
    if not native.available():
        return []
    seen: list[str] = []
    for isa in ALL_ISAS:
        native.set_max_isa(isa)
        if native.kernel_isa() not in seen:
            seen.append(native.kernel_isa())
    native.set_max_isa("avx512")
    return seen


ISAS = available_isas()


@contextlib.contextmanager
def dispatch_at(isa: str) -> Iterator[None]:
    """Dispatch kernels at ``isa`` inside the block, then back to the best available."""
    native.set_max_isa(isa)
    try:
        assert native.kernel_isa() == isa
        yield
    finally:
        native.set_max_isa("avx512")
