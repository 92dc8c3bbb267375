"""Triton GPU kernels, installed as ``lepton_graph.kernels``."""
