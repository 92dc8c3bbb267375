"""Capture a PyTorch model into our IR: torch.export (whole graph, AOT) or Dynamo (JIT, graph breaks)."""

from . import symbolic  # noqa: F401  (registers symbolic shape inference with the IR)
from .export import Captured, capture_export
from .fx_import import CONVERTERS, import_fx

__all__ = ["CONVERTERS", "Captured", "capture_export", "import_fx"]
