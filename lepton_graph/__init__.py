"""lepton_graph: a compiler-style graph optimizer for PyTorch."""

__version__ = "0.1.0"
