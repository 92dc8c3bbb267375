"""Type stubs for lepton_graph._C, the C++ CPU kernels (csrc/module.cpp). Every symbol of _C has an entry here
(tests/test_build.py checks both directions). Kernels take raw addresses (``tensor.data_ptr()``) and element counts,
check them (a bad argument raises ValueError naming it) and run with the GIL released; use the tensor wrappers in
``lepton_graph.backends.cpu.native`` rather than calling these directly."""

from collections.abc import Sequence

def cpu_features() -> dict[str, bool]:
    """ISA extensions detected at run time: avx2, fma, avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16.
    LEPTON_DISABLE_AVX512=1 / LEPTON_DISABLE_AVX2=1 (read once, at first use) hide them."""

def kernel_isa() -> str:
    """The kernel variant dispatch uses now: 'avx512', 'avx2' or 'scalar'."""

def cache_sizes() -> dict[str, int | bool]:
    """Data cache sizes per core in bytes {l1d, l2, l3, detected} from cpuid; the kernels' cache blocking is derived
    from them."""

def kernel_variants() -> dict[str, str]:
    """Which variant each kernel family runs now: fp32 families by kernel_isa(); gemm_int8 'avx512vnni', 'avx2' or
    'scalar'; the bf16 families 'avx512bf16' or 'emulated'."""

def set_max_isa(name: str) -> None:
    """Cap kernel dispatch at 'avx512', 'avx2' or 'scalar'; ValueError for other names."""

def build_info() -> dict[str, bool | str]:
    """{'openmp': bool, 'avx2_kernels': bool, 'avx512_kernels': bool, 'compiler': str}."""

def set_num_threads(n: int) -> None:
    """Threads used by native kernels; ValueError unless n >= 1."""

def get_num_threads() -> int:
    """Threads used by native kernels (default: the hardware's concurrency)."""

def describe_view(
    data_ptr: int, dtype: str, shape: Sequence[int], strides: Sequence[int]
) -> dict[str, int | bool | str]:
    """Check a raw view as kernels do; returns {'dtype', 'itemsize', 'numel', 'contiguous'}. Strides in elements."""

def relu_f32(x_ptr: int, y_ptr: int, n: int) -> None:
    """y[i] = max(x[i], 0) over n contiguous float32 (NaN and -0.0 kept as torch.relu does); y_ptr may equal x_ptr."""

def add_f32(a_ptr: int, b_ptr: int, y_ptr: int, n: int) -> None:
    """y[i] = a[i] + b[i] over n contiguous float32; y_ptr may equal a_ptr or b_ptr."""

class Conv2dF32:
    """A conv2d with its weights packed once; run() computes act(conv(x) + bias (+ residual)) (+ residual) into y (N, OC, OH, OW), any strides (channels_last is the fast layout)."""
    def __init__(
        self,
        w_ptr: int,
        w_shape: Sequence[int],
        w_strides: Sequence[int],
        groups: int,
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        act: int,
        residual_before_act: bool,
    ) -> None:
        """(undocumented)"""
    def output_shape(self, x_shape: Sequence[int]) -> list[int]:
        """(undocumented)"""
    def run(
        self,
        x_ptr: int,
        x_shape: Sequence[int],
        x_strides: Sequence[int],
        y_ptr: int,
        y_shape: Sequence[int],
        y_strides: Sequence[int],
        bias_ptr: int,
        res_ptr: int,
        res_strides: Sequence[int],
    ) -> None:
        """(undocumented)"""

class PackedB:
    """A GEMM B operand (K x N) packed once into the micro-kernel's panel layout (f32 or bf16)."""
    def __init__(*args: object, **kwargs: object) -> None: ...

class Program:
    """A compiled elementwise program (see csrc/kernels/program.h): built once from an instruction list, run many times on raw buffers."""
    def __init__(
        self,
        code: Sequence[int],
        consts: Sequence[float],
        nregs: int,
        in_dtypes: list[str],
        out_dtypes: list[str],
        row_mode: bool = False,
    ) -> None:
        """(undocumented)"""
    def run(
        self,
        in_ptrs: Sequence[int],
        in_shapes: list[Sequence[int]],
        in_strides: list[Sequence[int]],
        out_shape: Sequence[int],
        out_ptrs: Sequence[int],
    ) -> None:
        """Run over out_shape: inputs broadcast (strides in elements), outputs contiguous."""

def adaptive_avg_pool2d_f32(
    x_ptr: int,
    x_shape: Sequence[int],
    x_strides: Sequence[int],
    y_ptr: int,
    y_shape: Sequence[int],
    y_strides: Sequence[int],
) -> None:
    """F.adaptive_avg_pool2d over a float32 (N, C, H, W) view into y of shape (N, C, OH, OW)."""

def arange(out_ptr: int, dtype: str, n: int, start: float, step: float) -> None:
    """out[i] = start + i * step (in double, then cast)."""

def argmax_f32(x_ptr: int, out_ptr: int, outer: int, red: int, inner: int) -> None:
    """out[o, i] = argmax over r of x[o, r, i] as int64 (first maximum; NaN counts as the maximum)."""

def avg_pool2d_f32(
    x_ptr: int,
    x_shape: Sequence[int],
    x_strides: Sequence[int],
    y_ptr: int,
    y_shape: Sequence[int],
    y_strides: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int,
) -> None:
    """F.avg_pool2d (divisor_override 0 = none) over a float32 (N, C, H, W) view into y."""

def copy_strided(
    src_ptr: int,
    dst_ptr: int,
    itemsize: int,
    shape: Sequence[int],
    src_strides: Sequence[int],
    dst_strides: Sequence[int],
) -> None:
    """dst[idx] = src[idx] over shape; strides in elements; itemsize 1, 2, 4 or 8."""

def fill(out_ptr: int, itemsize: int, n: int, bits: int) -> None:
    """out[i] = the itemsize-byte pattern bits, for i < n."""

def gather_rows(
    x_ptr: int,
    index_ptr: int,
    out_ptr: int,
    itemsize: int,
    outer: int,
    rows: int,
    inner: int,
    n: int,
    index_is_i64: bool,
    allow_negative: bool = True,
) -> None:
    """out[o, j, :] = x[o, index[j], :] (x contiguous [outer, rows, inner]); out-of-range indices raise."""

class Act(int):
    """The activation codes of the GEMM and conv epilogues (csrc/kernels/activation.h): none, relu, gelu,
    gelu_tanh, silu, tanh, sigmoid (``Act.relu``, ``Act.__members__``)."""

    __members__: dict[str, Act]

def gemm_set_blocking(kc: int, mc: int) -> None:
    """Cache blocking of the fp32/bf16 GEMM: k rows per K slice (>= 8) and rows per block (>= 1); 0 takes the value
    derived from the CPU's caches (cache_sizes())."""

def gemm_blocking() -> tuple[int, int]:
    """The (kc, mc) in use."""

def gemm_bf16_supported() -> bool:
    """True when gemm_pack_b_bf16 operands run on AVX512_BF16 hardware (else a slow portable emulation)."""

def gemm_f32(
    a_ptr: int,
    lda_m: int,
    lda_k: int,
    b_ptr: int,
    ldb_k: int,
    ldb_n: int,
    c_ptr: int,
    ldc: int,
    M: int,
    N: int,
    K: int,
    bias_ptr: int = 0,
    residual_ptr: int = 0,
    ld_residual: int = 0,
    residual_before_act: bool = False,
    act: int = 0,
    threads: bool = True,
) -> None:
    """C = epilogue(A x B) with general strides for A and B (both at run time); see gemm_packed."""

def gemm_f32_batched(
    batch_shape: Sequence[int],
    a_ptr: int,
    a_batch_strides: Sequence[int],
    lda_m: int,
    lda_k: int,
    b_ptr: int,
    b_batch_strides: Sequence[int],
    ldb_k: int,
    ldb_n: int,
    c_ptr: int,
    c_batch_strides: Sequence[int],
    ldc: int,
    M: int,
    N: int,
    K: int,
    bias_ptr: int = 0,
    act: int = 0,
) -> None:
    """Batched gemm_f32: batch strides per operand (0 broadcasts), row-major over batch_shape."""

def gemm_pack_b_bf16(b_ptr: int, K: int, N: int, stride_k: int, stride_n: int, huge_pages: bool = True) -> PackedB:
    """Pack B rounded to bf16 (mixed precision: A rounded on the fly, fp32 accumulation) for gemm_packed."""

def gemm_pack_b_f32(b_ptr: int, K: int, N: int, stride_k: int, stride_n: int, huge_pages: bool = True) -> PackedB:
    """Pack B (K x N float32, element (k, n) at b_ptr[k * stride_k + n * stride_n]) for gemm_packed."""

def gemm_packed(
    a_ptr: int,
    M: int,
    K: int,
    lda: int,
    packed: PackedB,
    c_ptr: int,
    ldc: int,
    bias_ptr: int = 0,
    residual_ptr: int = 0,
    ld_residual: int = 0,
    residual_before_act: bool = False,
    act: int = 0,
) -> None:
    """C (M x N, row stride ldc) = epilogue(A (M x K, row stride lda) x packed B); f32 or bf16 per the packing. epilogue(v) = act(v + bias[n] (+ residual if residual_before_act)) (+ residual otherwise); act: 0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh), 4 silu, 5 tanh, 6 sigmoid."""

def max_pool2d_f32(
    x_ptr: int,
    x_shape: Sequence[int],
    x_strides: Sequence[int],
    y_ptr: int,
    y_shape: Sequence[int],
    y_strides: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> None:
    """F.max_pool2d over a float32 (N, C, H, W) view into y (any strides; channels_last is vectorised)."""

def reduce_f32(fn: str, x_ptr: int, out_ptr: int, outer: int, red: int, inner: int) -> None:
    """out[o, i] = fn over r of x[o, r, i] ('sum', 'mean', 'amax', 'amin'); x contiguous f32 [outer, red, inner]."""

def sdpa_f32(
    q_ptr: int,
    q_strides: tuple[int, int, int, int],
    k_ptr: int,
    k_strides: tuple[int, int, int, int],
    v_ptr: int,
    v_strides: tuple[int, int, int, int],
    out_ptr: int,
    out_strides: tuple[int, int, int, int],
    mask_ptr: int,
    mask_kind: int,
    mask_strides: tuple[int, int, int, int],
    B: int,
    Hq: int,
    Hkv: int,
    L: int,
    S: int,
    E: int,
    Ev: int,
    is_causal: bool,
    scale: float,
) -> None:
    """Fused scaled-dot-product attention, float32: out (B, Hq, L, Ev) = softmax(scale * q k^T + mask) v.
    q (B, Hq, L, E), k (B, Hkv, S, E), v (B, Hkv, S, Ev), out: strided views given by address and 4 element strides (unit last stride); Hq a multiple of Hkv (GQA). mask_kind 0 = none, 1 = bool (True keeps, 1 byte), 2 = float (added), a (B, Hq, L, S) view (stride 0 on broadcast dims). is_causal keeps key j <= query i (and combines with the mask). Rows with every key masked give 0, like torch."""

class Conv2dBf16(Conv2dF32):
    """Conv2dF32 with bf16 operands (groups 1): weights rounded to bf16 once, the input per call, products accumulated in fp32 (vdpbf16ps; emulated below AVX-512)."""
    def __init__(
        self,
        w_ptr: int,
        w_shape: Sequence[int],
        w_strides: Sequence[int],
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        act: int,
        residual_before_act: bool,
    ) -> None:
        """(undocumented)"""

class Conv2dWinograd:
    """A 3x3 stride-1 conv2d by Winograd F(tile x tile, 3x3), tile 2 or 4, with the weights transformed and packed once (bf16: GEMM operands rounded to bf16, fp32 accumulation); run() like Conv2dF32."""
    def __init__(
        self,
        w_ptr: int,
        w_shape: Sequence[int],
        w_strides: Sequence[int],
        padding: Sequence[int],
        act: int,
        residual_before_act: bool,
        tile: int,
        bf16: bool,
    ) -> None:
        """(undocumented)"""
    def output_shape(self, x_shape: Sequence[int]) -> list[int]:
        """(undocumented)"""
    def run(
        self,
        x_ptr: int,
        x_shape: Sequence[int],
        x_strides: Sequence[int],
        y_ptr: int,
        y_shape: Sequence[int],
        y_strides: Sequence[int],
        bias_ptr: int,
        res_ptr: int,
        res_strides: Sequence[int],
    ) -> None:
        """(undocumented)"""

class BoundProgram:
    """A Program bound to fixed shapes (Program.bind): run(*ptrs) with the inputs' then the outputs' data pointers."""
    def __init__(*args: object, **kwargs: object) -> None: ...
    def run(self, *args) -> None:
        """Run on raw pointers: the inputs' data pointers, then the outputs' (contiguous)."""

def sdpa_bf16(
    q_ptr: int,
    q_strides: tuple[int, int, int, int],
    k_ptr: int,
    k_strides: tuple[int, int, int, int],
    v_ptr: int,
    v_strides: tuple[int, int, int, int],
    out_ptr: int,
    out_strides: tuple[int, int, int, int],
    mask_ptr: int,
    mask_kind: int,
    mask_strides: tuple[int, int, int, int],
    B: int,
    Hq: int,
    Hkv: int,
    L: int,
    S: int,
    E: int,
    Ev: int,
    is_causal: bool,
    scale: float,
) -> None:
    """sdpa_f32 in mixed precision: Q.K^T and P.V on bf16-rounded operands (AVX512_BF16), fp32 accumulation, softmax and output (relative error ~1e-2). The exact fp32 kernel when sdpa_bf16_supported() is False."""

def sdpa_bf16_supported() -> bool:
    """True when sdpa_bf16 runs on AVX512_BF16 hardware (else it is sdpa_f32)."""

def parallel_overhead_ns() -> int:
    """The measured fork/join overhead of parallel_for_work (moving average, ns): large while oversubscribed."""

def set_parallel_guard(enabled: bool) -> None:
    """Switch the oversubscription guard of parallel_for_work on/off (default on; for benchmarks)."""

def set_program_stream_bytes(bytes: int) -> None:
    """Programs bound/run afterwards write outputs of >= bytes with non-temporal stores (0: never, the default: slower than plain stores on the machines measured)."""

GEMM_INT8_MAX_K: int  # the largest K the int8 GEMM accepts (int32 sums cannot overflow)

class PackedS8:
    """An int8 GEMM B operand (K x N int8 with per-column scales) packed for vpdpbusd."""
    def __init__(*args: object, **kwargs: object) -> None: ...

def gemm_pack_b_s8(b_ptr: int, K: int, N: int, stride_k: int, stride_n: int, scales_ptr: int) -> PackedS8:
    """Pack B8 (K x N int8, element (k, n) at b_ptr[k * stride_k + n * stride_n]) with N float32 per-column scales for gemm_u8s8_dynamic / gemm_u8s8s32. K <= 65536 (int32 sums cannot overflow)."""

def gemm_u8s8_dynamic(
    a_ptr: int,
    M: int,
    K: int,
    lda: int,
    packed: PackedS8,
    c_ptr: int,
    ldc: int,
    bias_ptr: int = 0,
    residual_ptr: int = 0,
    ld_residual: int = 0,
    residual_before_act: bool = False,
    act: int = 0,
) -> None:
    """C (M x N, row stride ldc) = epilogue(dequant(u8 rows of A quantised at run time x packed s8 B)); A is float32 (M x K, row stride lda); the epilogue as gemm_packed's."""

def gemm_u8s8_static(
    a_ptr: int,
    M: int,
    K: int,
    lda: int,
    packed: PackedS8,
    scale: float,
    zero_point: int,
    c_ptr: int,
    ldc: int,
    bias_ptr: int = 0,
    residual_ptr: int = 0,
    ld_residual: int = 0,
    residual_before_act: bool = False,
    act: int = 0,
) -> None:
    """gemm_u8s8_dynamic with A quantised by one calibrated scale and zero point for every row (int8-static):
    q = clamp(rint(a * (1 / scale)) + zero_point, 0, 255)."""

def gemm_u8s8s32(a_ptr: int, M: int, K: int, lda: int, packed: PackedS8, c_ptr: int, ldc: int) -> None:
    """C32 (M x N int32) = A8 (M x K uint8, row stride lda) x packed s8 B: the exact integer core."""

def quantize_rows_u8(a_ptr: int, M: int, K: int, lda: int, q_ptr: int, ldq: int, scales_ptr: int, zp_ptr: int) -> None:
    """The row quantisation of gemm_u8s8_dynamic: asymmetric u8 per row over [min(0, min), max(0, max)]; writes q (M x K, row stride ldq), M float32 scales and M int32 zero points."""

class PackedWo:
    """A weight-only quantised GEMM B operand (int8 per channel or group, int4 per group)."""
    def __init__(*args: object, **kwargs: object) -> None: ...
    @property
    def k(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def bits(self) -> int: ...
    @property
    def group(self) -> int: ...
    @property
    def nbytes(self) -> int: ...

def gemm_pack_b_wo(
    q_ptr: int,
    K: int,
    N: int,
    ldq: int,
    bits: int,
    group: int,
    scales_ptr: int,
    n_groups: int,
    zeros_ptr: int = 0,
) -> PackedWo:
    """Pack a weight-only quantised weight (nn.Linear layout N x K): int8 q or int4 two per byte, per-group scales
    (and int4 zero points); w[n, k] = (q - z) * s of group k / group; group 0 = one per channel (int8)."""

def gemm_wo_packed(
    a_ptr: int,
    M: int,
    K: int,
    lda: int,
    packed: PackedWo,
    c_ptr: int,
    ldc: int,
    bias_ptr: int = 0,
    residual_ptr: int = 0,
    ld_residual: int = 0,
    residual_before_act: bool = False,
    act: int = 0,
) -> None:
    """C (M x N, row stride ldc) = epilogue(A (M x K float32, row stride lda) x dequant(packed B))."""

class Conv2dU8S8:
    """An int8 conv2d (groups 1): int8 (OC, C, KH, KW) weights with OC float32 scales packed once; run() quantises x to u8 (calibrated scale / zero point, or per image when dynamic) and computes act(conv + bias (+ residual)) (+ residual) like Conv2dF32."""
    def __init__(
        self,
        w_ptr: int,
        w_shape: Sequence[int],
        w_strides: Sequence[int],
        scales_ptr: int,
        stride: Sequence[int],
        padding: Sequence[int],
        dilation: Sequence[int],
        act: int,
        residual_before_act: bool,
        dynamic: bool,
        scale: float,
        zero_point: int,
    ) -> None:
        """(undocumented)"""
    def output_shape(self, x_shape: Sequence[int]) -> list[int]:
        """(undocumented)"""
    def run(
        self,
        x_ptr: int,
        x_shape: Sequence[int],
        x_strides: Sequence[int],
        y_ptr: int,
        y_shape: Sequence[int],
        y_strides: Sequence[int],
        bias_ptr: int,
        res_ptr: int,
        res_strides: Sequence[int],
    ) -> None:
        """(undocumented)"""

def fma_peak(seconds: float = 0.5, threads: int = 0) -> dict:
    """The fp32 FMA peak of the active kernel ISA (avx2: 8 lanes, avx512: 16), measured: independent FMAs timed on one thread and on `threads` threads at once (0: the kernels' thread count), about `seconds` in all. Returns {isa, threads, gflops (all threads), gflops_per_thread (one thread)}; 0 where the ISA has no FMA loop."""

def gemm_dynamic_panels() -> bool:
    """Whether GEMMs split over N claim their panels at run time (gemm_set_dynamic_panels)."""

def gemm_set_dynamic_panels(on: bool) -> None:
    """GEMMs split over N across threads (every thread packs all of A) claim their panels at run time in guided chunks (True, the default) or take a fixed share each (False: for A/B measurements). From lepton_graph.config (LEPTON_GEMM_DYNAMIC_PANELS)."""

def gemm_packed_b_f32_from(
    words_ptr: int, nbytes: int, K: int, N: int, borrow: bool, huge_pages: bool = True
) -> PackedB:
    """A PackedB over nbytes of f32 panels written by gemm_pack_b_f32 (size checked against K x N): borrow=True reads them in place (64-byte aligned; the caller keeps the memory alive and unchanged), else copies."""

def gemm_packed_f32_nbytes(K: int, N: int) -> int:
    """Bytes of a K x N f32 B packed by gemm_pack_b_f32 (the same on every ISA)."""
