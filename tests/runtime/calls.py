"""Calls from several threads while the main thread changes what they call (hot swaps, weight updates)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def results_while(call: Callable[[], Any], change: Callable[[], None], threads: int = 4) -> list[Any]:
    """Every result ``call`` returned on ``threads`` threads that call it without pause while ``change`` runs;
    a call that raised fails the caller with that exception."""
    stop, results, errors = threading.Event(), [], []

    def caller() -> None:
        while not stop.is_set():
            try:
                results.append(call())
            except Exception as e:  # noqa: BLE001 - any failure is what the callers look for
                errors.append(e)

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for t in workers:
        t.start()
    try:
        change()
    finally:
        stop.set()
        for t in workers:
            t.join()
    if errors:
        raise errors[0]
    return results
