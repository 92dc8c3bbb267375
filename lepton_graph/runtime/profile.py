"""Per-kernel wall-clock profile of native kernels (``LEPTON_PROFILE=1`` or ``config.profile = True`` at compile).

Kernels lowered while profiling is on are wrapped with a timer; ``table()`` then says where a forward spends its
time, grouped by kernel label (op or fusion kind plus output shape). Off by default: the wrapper costs ~0.3 µs.

>>> from lepton_graph.runtime import profile
>>> profile.reset(); print(profile.table())  # doctest: +ELLIPSIS
no kernels profiled...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

_TOTALS: dict[str, list[float]] = {}  # label -> [seconds, calls]


def reset() -> None:
    """Zero the counters (the wrapped kernels keep their slots)."""
    for slot in _TOTALS.values():
        slot[0], slot[1] = 0.0, 0


def wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    slot = _TOTALS.setdefault(label, [0.0, 0])
    clock = time.perf_counter

    def timed(*args: Any) -> Any:
        t0 = clock()
        out = fn(*args)
        slot[0] += clock() - t0
        slot[1] += 1
        return out

    return timed


def totals() -> dict[str, tuple[float, int]]:
    return {k: (v[0], int(v[1])) for k, v in _TOTALS.items() if v[1]}


def table(top: int = 30) -> str:
    rows = sorted(totals().items(), key=lambda kv: -kv[1][0])
    if not rows:
        return "no kernels profiled (compile with LEPTON_PROFILE=1)"
    total = sum(s for _, (s, _) in rows)
    out = [f"{'kernel':<60} {'calls':>7} {'total ms':>10} {'us/call':>9} {'share':>6}"]
    for label, (s, n) in rows[:top]:
        out.append(f"{label[:60]:<60} {n:>7} {s * 1e3:>10.2f} {s / n * 1e6:>9.1f} {s / total:>6.1%}")
    out.append(f"{'total':<60} {'':>7} {total * 1e3:>10.2f}")
    return "\n".join(out)
