"""Triton kernels run on a GPU where there is one, else on the CPU in Triton's interpreter (TRITON_INTERPRET=1,
as .ci/test.sh sets it); without either there is nothing to run them on."""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")


@pytest.fixture(scope="session")
def device() -> str:
    if triton.knobs.runtime.interpret:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    pytest.skip("no CUDA device and TRITON_INTERPRET is not set")
