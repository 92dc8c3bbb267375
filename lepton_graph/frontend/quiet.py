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


# Import-time notices of optional libraries that transformers imports when they are installed (torchao: prebuilt
# CUDA extensions a CPU wheel cannot load; torch's pytree deprecation notice about torchao's enums). They say
# nothing about the model being built, and would be the only stderr lines of a zoo model build.
IMPORT_NOTICE_LOGGERS = ("torchao", "torch.utils._pytree")


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    with quiet_loggers(_TORCH_LOGGERS):
        yield


@contextlib.contextmanager
def quiet_loggers(names: tuple[str, ...]) -> Iterator[None]:
    """The named loggers silenced inside the block, their levels restored after it."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
