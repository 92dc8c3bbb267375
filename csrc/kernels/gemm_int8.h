// int8 GEMM: u8 activations x s8 weights with exact int32 accumulation, dequantised in the epilogue.
// Declarations only (included by the ISA units too).
//
// Dynamic quantisation (gemm_u8s8_dynamic): each row of A is quantised at run time, asymmetric u8 over the row's
// range extended to include 0:
//   mn = min(0, min_k a[k]), mx = max(0, max_k a[k]), s = (mx - mn) / 255 (1 if 0), inv = 1 / s,
//   z = clamp(rint(-mn / s), 0, 255), q[k] = clamp(rint(a[k] * inv) + z, 0, 255)            (all fp32, RNE)
// B is s8 with one scale per output column (symmetric, per channel): b[k, n] ~ sb[n] * B8[k, n]. Then
//   C[m, n] = epilogue( float(sum_k q[m, k] * B8[k, n] - z[m] * colsum[n]) * (s[m] * sb[n]) )
// with colsum[n] = sum_k B8[k, n] computed at packing, and the fp32 GEMM's epilogue (bias, activation, residual).
//
// Overflow: |sum_k q * B8| <= 255 * 127 * K, and so are z * colsum and their difference; all < 2^31 for
// K <= kMaxKInt8 = 65536, which every entry point checks (larger K is refused, never wrapped).
//
// Kernels may compute the same integer by another identity: the AVX2 kernel (no vpdpbusd) multiplies the shifted
// rows q - 128 (s8) and compensates with (z - 128) * colsum, since sum_k (q - z) B8 = sum_k (q - 128) B8 -
// (z - 128) colsum; see gemm_int8_avx2.cpp for why and for its exact bound. Every path gives the same C bit for bit.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/gemm.h"

namespace lg::gemm {

constexpr int64_t kMaxKInt8 = 65536;

struct PackedS8;
// B8 (K x N int8, element (k, n) at b[k * stride_k + n * stride_n]) and its per-column scales (N floats).
std::shared_ptr<PackedS8> pack_b_s8(const int8_t* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n,
                                    const float* scales);
int64_t packed_s8_k(const PackedS8& p);
int64_t packed_s8_n(const PackedS8& p);
int64_t packed_s8_nbytes(const PackedS8& p);

// C (M x N, row stride ldc) = epilogue(dequant(quant_rows(A) x B8)) for fp32 A (M x K, row stride lda, unit
// column stride). Multi-threaded like the fp32 GEMM.
void gemm_u8s8_dynamic(const float* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, float* c, int64_t ldc,
                       const Epilogue& ep);

// Static quantisation (scales calibrated ahead of time, int8-static): every row of A with the same scale and zero
// point, q[k] = clamp(rint(a[k] * inv) + zero, 0, 255) with inv = 1 / scale in fp32 (NaN -> 0 like the dynamic
// path); then the dequantisation and epilogue of gemm_u8s8_dynamic with s = scale for every row.
void gemm_u8s8_static(const float* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, float scale,
                      int32_t zero_point, float* c, int64_t ldc, const Epilogue& ep);

// The integer core alone, for exact tests: C32 (M x N int32, row stride ldc) = A8 (M x K uint8, row stride lda)
// x B8, no compensation or scales.
void gemm_u8s8s32(const uint8_t* a, int64_t M, int64_t K, int64_t lda, const PackedS8& b, int32_t* c, int64_t ldc);

// Rows of an implicit-GEMM convolution (int8 conv): x is a dense NHWC u8 batch (N, H, W, C), already quantised
// with one (scale, zero point) per image. A row r is output pixel (n, oh, ow) = (r / (OH * OW), ...), its
// K = KH * KW * C bytes the window's taps in (kh, kw, c) order; taps in the padding read the image's zero point, so
// they dequantise to exactly 0. The rows are gathered while the driver packs A (never materialised).
struct ConvRowsU8 {
  const uint8_t* x = nullptr;
  int64_t N = 0, H = 0, W = 0, C = 0, OH = 0, OW = 0, KH = 1, KW = 1;
  int64_t stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, dilation_h = 1, dilation_w = 1;
  const float* scale = nullptr;   // N
  const int32_t* zero = nullptr;  // N, in [0, 255]
};

// C (N * OH * OW x OC, row stride ldc: NHWC) = epilogue(dequant(rows x B8)); B's K must be KH * KW * C.
void gemm_u8s8_conv(const ConvRowsU8& a, const PackedS8& b, float* c, int64_t ldc, const Epilogue& ep);

// The quantiser pieces of the static and dynamic paths on this CPU's best ISA (for callers that quantise whole
// tensors, such as the int8 conv): range of a[0, K) extended to include 0 (NaN skipped); u8 of a[0, K) as
// gemm_u8s8_static computes it; and the (scale, zero point) of the asymmetric grid over [mn, mx].
void range_f32(const float* a, int64_t K, float* mn, float* mx);
void quantize_u8(const float* a, int64_t K, float scale, int32_t zero_point, uint8_t* q);
void u8_qparams(float mn, float mx, float* scale, int32_t* zero_point);

// The row quantisation of gemm_u8s8_dynamic, exposed for tests: q (M x K, row stride ldq), scales and zero points.
void quantize_rows_u8(const float* a, int64_t M, int64_t K, int64_t lda, uint8_t* q, int64_t ldq, float* scales,
                      int32_t* zero_points);

namespace detail {

// Packed B8: panels of kPanel columns (the last one kPanel / 2 wide when the remainder fits), each holding
// ceil(K / 4) groups of 4 k-rows: group g at panel + g * width * 4, column j's 4 bytes at [j * 4 + r] = B8[4g + r][j]
// (zero past K and past N): one vpdpbusd per 16 columns and group.
// Packed A tile (mr rows): group g of row i at ap[g * mr + i] (4 bytes, zero past K).
// Tile epilogue inputs: for the tile's rows, zero points z and scales s; for its columns, colsum and sb.
struct DequantTile {
  const int32_t* z;   // mr
  const float* s;     // mr
  const int32_t* colsum;  // nr
  const float* sb;    // nr
};

// raw != null: store the int32 sums to raw (row stride ldc), ignoring dq/c/ep. Else C tile = dequant, then ep.
using MicroKernelS8 = void (*)(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int mr, int nr,
                               const DequantTile* dq, float* c, int64_t ldc, const TileEpi* ep, int32_t* raw);
using RowMinMax = void (*)(const float* a, int64_t K, float* mn, float* mx);
// q[k] = clamp(rint(a[k] * inv) + z, 0, 255) for k < K
using QuantRow = void (*)(const float* a, int64_t K, float inv, int32_t z, uint8_t* q);

struct IsaKernelsS8 {
  int max_mr;
  MicroKernelS8 micro;
  RowMinMax minmax;
  QuantRow quant;
  EpiKernel epilogue;
  // Shifted rows: the packed A tile holds q - 128 (s8) and DequantTile z holds z - 128. Null where the ISA has no
  // faster kernel for them (VNNI, portable). B8 must not hold -128 (the kernel negates B8 values).
  MicroKernelS8 micro_shifted = nullptr;
  int max_mr_shifted = 0;
};

IsaKernelsS8 kernels_s8_avx512vnni();  // AVX-512 F+BW+VL with VNNI
IsaKernelsS8 kernels_s8_avx2();

}  // namespace detail
}  // namespace lg::gemm
