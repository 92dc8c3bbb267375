"""LEPTON_LOG=channel,... prints compiler artefacts (the IR after each stage, partitions, guards) to stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .config import config

CHANNELS = ("graph", "passes", "fusion", "partitions", "fallback", "guards", "executor")


def enabled(channel: str) -> bool:
    chans = config.log
    if not chans:
        return False
    names = {c.strip().lstrip("+") for c in chans.split(",")}
    return channel in names or "all" in names


def log(channel: str, msg: str, *args: Any) -> None:
    """Lazily formatted: nothing is formatted when the channel is off."""
    if enabled(channel):
        text = msg % args if args else msg
        print(f"[lepton:{channel}] {text}", file=sys.stderr)


class Lazy:
    """Formats ``fn()`` only when a log line is actually printed (log arguments are formatted lazily)."""

    def __init__(self, fn: Callable[[], str]) -> None:
        self.fn = fn

    def __str__(self) -> str:
        return self.fn()
