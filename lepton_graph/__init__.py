"""lepton_graph: a compiler-style graph optimizer for PyTorch."""

from .api import CompiledModel, compile, lepton_dynamo_backend
from .artifact import LoadedModel, export, load
from .calibration import Inputs
from .config import config
from .errors import ArtifactError, CaptureError, CompileFailedWarning, InputError, LeptonError, UnsupportedError
from .passes.quantize import QuantConfig

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "CaptureError",
    "CompileFailedWarning",
    "CompiledModel",
    "InputError",
    "Inputs",
    "LeptonError",
    "LoadedModel",
    "QuantConfig",
    "UnsupportedError",
    "__version__",
    "compile",
    "config",
    "export",
    "lepton_dynamo_backend",
    "load",
]
