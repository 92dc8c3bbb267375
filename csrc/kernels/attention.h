// Fused scaled-dot-product attention (fp32), flash-attention style: for each (batch, head, block of queries) the
// kernel streams blocks of keys/values, keeps a running max and sum per query (online softmax) and never holds
// more than one (key block x query block) tile of scores, so the L x S matrix never materialises.
//
//   out[b, h, i, :] = sum_j softmax_j(scale * q[b,h,i,:] . k[b,h',j,:] + mask[b,h,i,j]) * v[b,h',j,:]
//   h' = h / (Hq / Hkv) (GQA; Hq == Hkv is plain multi-head attention)
//
// Semantics are torch.nn.functional.scaled_dot_product_attention with dropout 0 (torch 2.x): is_causal keeps
// j <= i (top-left aligned when L != S) and combines with an explicit mask; a bool mask keeps True; a float mask is
// added; a query row whose keys are all masked (or S == 0) gives zeros, as torch does.
//
// Layout: q/k/v/out are 4-D (B, H, rows, features) strided views with a unit feature stride (any other strides,
// e.g. the split + permute of a fused QKV projection, are read in place); out may be any such view too, e.g. a
// transposed (B, L, H, Ev) buffer. The mask is a strided (B, Hq, L, S) view (broadcast dims have stride 0).
//
// The *_avx2 / *_avx512 variants live in their own translation units and run one contiguous range of tasks (a task
// is one (b, h, query block)); this header only declares (see eltwise.h for why).
#pragma once
#include <cstdint>

namespace lg::kernels {

enum class MaskKind : int { none = 0, boolean = 1, additive = 2 };

struct SdpaArgs {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  const void* mask;  // bool (1 byte) or float, per mask_kind; null for none
  MaskKind mask_kind;
  int64_t B, Hq, Hkv, L, S, E, Ev;
  int64_t q_sb, q_sh, q_sl;  // element strides of dims 0..2 (dim 3 has stride 1)
  int64_t k_sb, k_sh, k_ss;
  int64_t v_sb, v_sh, v_ss;
  int64_t o_sb, o_sh, o_sl;
  int64_t m_sb, m_sh, m_sl, m_ss;  // element strides of the (B, Hq, L, S) mask view
  bool causal;
  float scale;
  int64_t block_q;  // queries per task (a multiple of the ISA's vector width, or L)
};

// The entry point: checks every argument, then runs the tasks in parallel on the best ISA variant.
// Strides are in elements; the *_strides arrays are (b, h, row, feature) strides, mask strides (b, h, l, s).
void sdpa_f32(std::uintptr_t q_ptr, const int64_t* q_strides, std::uintptr_t k_ptr, const int64_t* k_strides,
              std::uintptr_t v_ptr, const int64_t* v_strides, std::uintptr_t out_ptr, const int64_t* out_strides,
              std::uintptr_t mask_ptr, int mask_kind, const int64_t* mask_strides, int64_t B, int64_t Hq, int64_t Hkv,
              int64_t L, int64_t S, int64_t E, int64_t Ev, bool is_causal, double scale);

// Mixed precision (compile(precision="bf16")): the same contract with Q.K^T and P.V on bf16-rounded operands
// (AVX512_BF16 vdpbf16ps, round to nearest even, converted on the fly from the fp32 inputs), fp32 accumulation,
// softmax and output; relative error ~1e-2 of the output's scale. Runs the exact fp32 kernel when
// sdpa_bf16_supported() is false.
void sdpa_bf16(std::uintptr_t q_ptr, const int64_t* q_strides, std::uintptr_t k_ptr, const int64_t* k_strides,
               std::uintptr_t v_ptr, const int64_t* v_strides, std::uintptr_t out_ptr, const int64_t* out_strides,
               std::uintptr_t mask_ptr, int mask_kind, const int64_t* mask_strides, int64_t B, int64_t Hq,
               int64_t Hkv, int64_t L, int64_t S, int64_t E, int64_t Ev, bool is_causal, double scale);
bool sdpa_bf16_supported();

// Tasks [task_begin, task_end) of ceil(L / block_q) query blocks per (b, h), b-major.
void sdpa_f32_tasks_avx2(const SdpaArgs& a, int64_t task_begin, int64_t task_end);
void sdpa_f32_tasks_avx512(const SdpaArgs& a, int64_t task_begin, int64_t task_end);
void sdpa_bf16_tasks_avx512(const SdpaArgs& a, int64_t task_begin, int64_t task_end);

}  // namespace lg::kernels
