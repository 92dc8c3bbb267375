"""The error types users see. Every message names the problem and what was expected."""

from __future__ import annotations


class LeptonError(Exception):
    """Base class of every error lepton_graph raises on purpose."""


class InputError(LeptonError, ValueError):
    """A call's inputs do not match what the model was compiled for (count, rank, dtype, device)."""


class CaptureError(LeptonError, RuntimeError):
    """The model could not be captured into a graph by any frontend."""


class UnsupportedError(LeptonError, NotImplementedError):
    """A configuration or construct lepton_graph does not support."""


class ArtifactError(LeptonError, ValueError):
    """An exported artifact is corrupt, truncated, of an unknown version or fails its checksum."""


class CompileFailedWarning(UserWarning):
    """Compilation failed for one input signature; that signature runs through torch (see the report)."""
