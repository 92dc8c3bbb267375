"""Running native-kernel tests on every ISA path the CPU and build offer (AVX-512, AVX2, portable)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

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
# for @pytest.mark.parametrize("isa", ISA_PARAMS): every ISA path is collected, and one this CPU or build cannot run
# is skipped with the reason (a run says how much it did not exercise, instead of silently not collecting it)
ISA_PARAMS = [
    pytest.param(isa, marks=pytest.mark.skipif(isa not in ISAS, reason=f"no {isa} path on this CPU/build"))
    for isa in ALL_ISAS
]


@contextlib.contextmanager
def dispatch_at(isa: str) -> Iterator[None]:
    """Dispatch kernels at ``isa`` inside the block, then back to the best available."""
    native.set_max_isa(isa)
    try:
        assert native.kernel_isa() == isa
        yield
    finally:
        native.set_max_isa("avx512")
