"""Run-time: the executor of partition plans and the input guards / compiled-variant cache."""

from .executor import Executor, Step

__all__ = ["Executor", "Step"]
