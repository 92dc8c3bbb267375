"""Type stubs for lepton_graph._C, the C++ CPU kernels (csrc/module.cpp). Every symbol of _C has an entry here
(tests/test_build.py checks both directions). Kernels take raw addresses (``tensor.data_ptr()``) and element counts,
check them (a bad argument raises ValueError naming it) and run with the GIL released; use the tensor wrappers in
``lepton_graph.backends.cpu.native`` rather than calling these directly."""

def cpu_features() -> dict[str, bool]:
    """ISA extensions detected at run time: avx2, fma, avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16.
    LEPTON_DISABLE_AVX512=1 / LEPTON_DISABLE_AVX2=1 (read once, at first use) hide them."""

def kernel_isa() -> str:
    """The kernel variant dispatch uses now: 'avx512', 'avx2' or 'scalar'."""

def set_max_isa(name: str) -> None:
    """Cap kernel dispatch at 'avx512', 'avx2' or 'scalar'; ValueError for other names."""

def build_info() -> dict[str, bool | str]:
    """{'openmp': bool, 'avx2_kernels': bool, 'avx512_kernels': bool, 'compiler': str}."""

def set_num_threads(n: int) -> None:
    """Threads used by native kernels; ValueError unless n >= 1."""

def get_num_threads() -> int:
    """Threads used by native kernels (default: the hardware's concurrency)."""

def describe_view(data_ptr: int, dtype: str, shape: list[int], strides: list[int]) -> dict[str, int | bool | str]:
    """Check a raw view as kernels do; returns {'dtype', 'itemsize', 'numel', 'contiguous'}. Strides in elements."""

def relu_f32(x_ptr: int, y_ptr: int, n: int) -> None:
    """y[i] = max(x[i], 0) over n contiguous float32 (NaN and -0.0 kept as torch.relu does); y_ptr may equal x_ptr."""

def add_f32(a_ptr: int, b_ptr: int, y_ptr: int, n: int) -> None:
    """y[i] = a[i] + b[i] over n contiguous float32; y_ptr may equal a_ptr or b_ptr."""
