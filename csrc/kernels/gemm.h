// fp32 GEMM with a fused epilogue: the C++ API other kernel families (conv, attention) call, and what
// gemm_bind.cpp exposes to Python. Declarations only (this header is included by ISA-specific units too).
//
//   C[m, n] = epilogue( sum_k A[m, k] * B[k, n] )
//   epilogue(v) = act(v + bias[n] (+ residual[m, n] if residual_before_act)) (+ residual[m, n] otherwise)
//
// B is usually a constant weight packed once at compile time (PackedB); A and C are strided row-major views.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/activation.h"

namespace lg::gemm {

struct Epilogue {
  const float* bias = nullptr;      // N values (per output column), or null
  const float* residual = nullptr;  // M x N with row stride ld_residual, or null
  int64_t ld_residual = 0;
  bool residual_before_act = false;  // conv+add+relu: add before the activation; linear+gelu+add: after
  Act act = Act::None;
};

// B (K x N, element (k, n) at b[k * stride_k + n * stride_n]) in the layout the micro-kernel wants.
// huge_pages: put a packed copy of 2 MiB or more on transparent huge pages. Worth it for weights streamed by
// GEMVs (few rows of A: TLB-bound); for GEMMs with many rows it only costs compile time (faulting huge pages in
// can mean synchronous compaction: 0.5-2 GB/s instead of ~2 GB/s for 4 KiB pages on this VM, measured).
struct PackedB;
std::shared_ptr<PackedB> pack_b_f32(const float* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n,
                                    bool huge_pages = true);
int64_t packed_k(const PackedB& p);
int64_t packed_n(const PackedB& p);

// C (M x N, row stride ldc) = epilogue(A (M x K, row stride lda, unit column stride) x B). Multi-threaded
// over the calling pool (parallel_for); M may be 0; M == 1 takes the memory-bound GEMV path.
void gemm_f32_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                     const Epilogue& ep);

// Both operands at run time (attention's Q.K^T and P.V, batched matmul): general strides for A and B.
// threads=false runs on the calling thread (for callers that parallelise over batches themselves).
void gemm_f32(const float* a, int64_t lda_m, int64_t lda_k, const float* b, int64_t ldb_k, int64_t ldb_n,
              float* c, int64_t ldc, int64_t M, int64_t N, int64_t K, const Epilogue& ep, bool threads = true);

// A batch of gemm_f32 (batched matmul): batch index b (row-major over batch_shape) offsets A, B and C by
// sum(b_d * stride_d) with each operand's batch strides (0 broadcasts). Parallel over the batch when it is large
// enough, else each GEMM is threaded.
void gemm_f32_batched(const std::vector<int64_t>& batch_shape, const float* a,
                      const std::vector<int64_t>& a_batch_strides, int64_t lda_m, int64_t lda_k, const float* b,
                      const std::vector<int64_t>& b_batch_strides, int64_t ldb_k, int64_t ldb_n, float* c,
                      const std::vector<int64_t>& c_batch_strides, int64_t ldc, int64_t M, int64_t N, int64_t K,
                      const Epilogue& ep);

// Same as gemm_f32_packed, with threads=false running on the calling thread (conv calls it per image/tile).
void gemm_f32_packed_st(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c,
                        int64_t ldc, const Epilogue& ep);

// Opt-in mixed precision (AVX512_BF16 vdpbf16ps): B rounded to bf16 once at packing, A rounded to bf16 on the fly
// (round to nearest even), products accumulated in fp32; the same epilogue in fp32. Relative error ~1e-3 of the
// output's scale (bf16 keeps 8 mantissa bits). Without AVX512_BF16 (or with dispatch capped below avx512) a
// portable emulation computes the same rounded products, slowly: check bf16_supported() before choosing it.
std::shared_ptr<PackedB> pack_b_bf16(const float* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n,
                                     bool huge_pages = true);
void gemm_bf16_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedB& b, float* c, int64_t ldc,
                      const Epilogue& ep);
bool bf16_supported();
bool packed_is_bf16(const PackedB& p);
int64_t packed_nbytes(const PackedB& p);
const void* packed_data(const PackedB& p);

// The packed f32 layout does not depend on the ISA (detail::kPanel columns per panel for every micro-kernel), so
// panels written by one machine are read as they are by another. packed_f32_nbytes: the bytes pack_b_f32 fills
// for a K x N B. packed_b_f32_from: a PackedB over `nbytes` such bytes (checked against K, N): borrowed in place
// (`words` 64-byte aligned; the caller keeps them alive and unchanged for the PackedB's lifetime) or copied.
int64_t packed_f32_nbytes(int64_t K, int64_t N);
std::shared_ptr<PackedB> packed_b_f32_from(const void* words, int64_t nbytes, int64_t K, int64_t N, bool borrow,
                                           bool huge_pages = true);

// ---------------------------------------------------------------------------------------------------------------
// Internals shared by gemm.cpp (driver, packing, threading, portable kernels) and the ISA units. Plain data and
// function pointers only.
namespace detail {

// Packed B: column panels of kPanel columns (the last one kPanel/2 wide when the remainder fits), each panel K rows
// of `width` contiguous values (zero padded past N), panels back to back. bf16: rows are k-pairs, each holding
// `width` (b[k][n], b[k+1][n]) pairs of bf16 (zero padded past K).
constexpr int kPanel = 32;

// Epilogue of one C tile; pointers already offset to the tile's first row and column.
struct TileEpi {
  const float* bias;      // nr values or null
  const float* residual;  // mr x nr, row stride ld_residual, or null
  int64_t ld_residual;
  int residual_before_act;
  int act;  // Act
};

// C[mr x nr] (row stride ldc) = (accumulate ? C : 0) + Ap * Bp, then the epilogue when ep != null.
// Ap: packed A micro-panel, kc steps of mr values (ap[k * mr + i] = A[i][k]); Bp: panel rows of `width` values
// (bp[k * width + j] = B[k][j]), width 16 or 32, nr <= width; mr <= the ISA's max_mr.
// bf16: kc counts k-pairs, Ap holds uint32 bf16 pairs (ap[kp * mr + i]), Bp uint32 pairs (bp[kp * width + j]).
// pf / pf_bytes: a part of the next B panel slice to prefetch into L2 while this tile computes (null / 0: none).
// With few rows a panel slice is used by one or two tiles, so B streams from memory; without the prefetch the
// memory then idles while the tiles compute (measured on Zen 3: an 8-row GEMM streamed B at 11 GB/s, 19.5 with it).
using MicroKernel = void (*)(int64_t kc, const void* ap, const void* bp, int64_t width, float* c, int64_t ldc,
                             int mr, int nr, bool accumulate, const TileEpi* ep, const char* pf, int64_t pf_bytes);
// Few rows (m <= 4) over one whole panel, A read in place (row stride lda): the memory-bound GEMV path.
using SmallMKernel = void (*)(int m, int64_t K, const float* a, int64_t lda, const float* bp, int64_t width,
                              float* c, int64_t ldc, int nr, const TileEpi* ep);
// In-place epilogue over rows of C: c[i * ldc + j] for i < m, j < n.
using EpiKernel = void (*)(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep);

// Packs rows [m0, m0 + mc) x columns [k0, k0 + kc) of A (element (i, k) at a[i * lda_m + k * lda_k]) into tiles of
// max_mr rows: tile t at dst + t * max_mr * kc, element (i, k) at [k * mr_t + i]. The ISA variants (IsaKernels::
// pack_a) are called with lda_k == 1 only; A with another k stride takes the portable packing.
using PackAF32 = void (*)(const float* a, int64_t lda_m, int64_t lda_k, int64_t m0, int64_t mc, int64_t k0,
                          int64_t kc, int max_mr, float* dst);

struct IsaKernels {
  int max_mr;
  MicroKernel micro;
  SmallMKernel small_m;
  EpiKernel epilogue;
  PackAF32 pack_a;  // null: the portable packing
};
// Packs rows [m0, m0 + mc) x k-pairs [kp0, kp0 + kc2) of f32 A (row stride lda, K columns) into bf16-pair tiles of
// max_mr rows (tile t at dst + t * max_mr * kc2, pair (i, kp) at [kp * mr_t + i]); pairs past K are zero.
using PackABf16 = void (*)(const float* a, int64_t lda, int64_t K, int64_t m0, int64_t mc, int64_t kp0, int64_t kc2,
                           int max_mr, uint32_t* dst);
struct IsaKernelsBf16 {
  int max_mr;
  MicroKernel micro;
  PackABf16 pack_a;
};

IsaKernels kernels_avx512();
IsaKernels kernels_avx2();
// The fp32 kernels dispatch picks now (active_isa()), for the families built on them (weight-only GEMM); pack_a is
// never null there (the portable packing where the ISA has none).
IsaKernels fp32_kernels();
// The argument checks of every packed-B GEMM entry point (ValueError naming the argument).
void check_a_c(const float* a, int64_t M, int64_t K, int64_t lda, const float* c, int64_t N, int64_t ldc);
void check_epilogue(const Epilogue& ep, int64_t M, int64_t N);
// The portable epilogue (the reference semantics of every ISA's EpiKernel).
void epilogue_portable(float* c, int64_t ldc, int m, int64_t n, const TileEpi* ep);
IsaKernelsBf16 kernels_bf16_avx512();

}  // namespace detail
}  // namespace lg::gemm
