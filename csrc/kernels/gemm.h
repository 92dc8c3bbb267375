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

namespace lg::gemm {

enum class Act : int { None = 0, Relu = 1, GeluErf = 2, GeluTanh = 3, Silu = 4, Tanh = 5, Sigmoid = 6 };

struct Epilogue {
  const float* bias = nullptr;      // N values (per output column), or null
  const float* residual = nullptr;  // M x N with row stride ld_residual, or null
  int64_t ld_residual = 0;
  bool residual_before_act = false;  // conv+add+relu: add before the activation; linear+gelu+add: after
  Act act = Act::None;
};

// B (K x N, element (k, n) at b[k * stride_k + n * stride_n]) in the layout the micro-kernel wants.
struct PackedB;
std::shared_ptr<PackedB> pack_b_f32(const float* b, int64_t K, int64_t N, int64_t stride_k, int64_t stride_n);
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

}  // namespace lg::gemm
