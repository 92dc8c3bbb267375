"""Calls from several threads while the main thread changes what they call (hot swaps, weight updates), and the
versions such tests swap between."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import lepton_graph


def mlp_versions(tmp_path: Path, n: int) -> tuple[list[Path], torch.Tensor, list[torch.Tensor]]:
    """n artifacts of one MLP with different weights (the versions of a hot update), an input, and each version's
    compiled output."""
    x = torch.randn(8, 16)
    paths, outs = [], []
    for i in range(n):
        torch.manual_seed(100 + i)
        model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)).eval()
        c = lepton_graph.compile(model)
        outs.append(c(x))
        paths.append(tmp_path / f"v{i}.lgraph")
        c.export(paths[-1])
    return paths, x, outs


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
