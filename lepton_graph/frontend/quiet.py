"""Tracing a model the user called with bad inputs makes torch log its internal tracebacks (fake tensors, Dynamo,
export) at ERROR level before the exception we turn into a clear error. While we trace, those loggers are quiet:
the exception still carries the message, and the user sees ours alone."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

_TORCH_LOGGERS = (
    "torch._subclasses.fake_tensor",
    "torch._dynamo",
    "torch._export",
    "torch.export",
    "torch.fx.experimental.symbolic_shapes",
    "torch._functorch",
    "torch._guards",
)


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _TORCH_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
