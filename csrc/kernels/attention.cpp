// Fused attention (fp32): argument checks, mask simplification, threading and ISA dispatch (portable code; the
// SIMD kernels are in attention_avx512.cpp / attention_avx2.cpp, see attention.h).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "common/view.h"

namespace lg::kernels {
namespace {

// A task below this many multiply-adds is not worth a thread of its own.
constexpr int64_t kMinWorkPerChunk = 1 << 16;

// Last byte (exclusive) a strided 4-D float view can touch, relative to its first element; 0 when empty.
int64_t extent_bytes(const int64_t* sizes, const int64_t* strides, int64_t itemsize) {
  int64_t last = 0;
  for (int d = 0; d < 4; ++d) {
    if (sizes[d] == 0) return 0;
    last += (sizes[d] - 1) * strides[d];
  }
  return (last + 1) * itemsize;
}

bool ranges_overlap(std::uintptr_t a, int64_t a_bytes, std::uintptr_t b, int64_t b_bytes) {
  if (a_bytes <= 0 || b_bytes <= 0) return false;
  return a < b + static_cast<std::uintptr_t>(b_bytes) && b < a + static_cast<std::uintptr_t>(a_bytes);
}

// True when adding the mask changes nothing: a bool mask of only True, a float mask of only 0. Dims with stride 0
// are read once; stops at the first element that matters.
bool mask_is_trivial(const SdpaArgs& a) {
  const int64_t nb = a.m_sb ? a.B : 1, nh = a.m_sh ? a.Hq : 1, nl = a.m_sl ? a.L : 1, ns = a.m_ss ? a.S : 1;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t l = 0; l < nl; ++l) {
        const int64_t base = b * a.m_sb + h * a.m_sh + l * a.m_sl;
        if (a.mask_kind == MaskKind::boolean) {
          const auto* m = static_cast<const uint8_t*>(a.mask) + base;
          if (a.m_ss == 1) {
            if (std::memchr(m, 0, static_cast<size_t>(ns))) return false;
          } else {
            for (int64_t s = 0; s < ns; ++s)
              if (!m[s * a.m_ss]) return false;
          }
        } else {
          const auto* m = static_cast<const float*>(a.mask) + base;
          uint32_t bits = 0;  // any bit but the sign: a value that is not +-0 (NaN included)
          for (int64_t s = 0; s < ns; ++s) {
            uint32_t u;
            std::memcpy(&u, m + s * a.m_ss, sizeof(u));
            bits |= u & 0x7fffffffu;
          }
          if (bits) return false;
        }
      }
  return true;
}

// Portable path, one query row at a time: scores into a row buffer, softmax, weighted sum of V.
void sdpa_rows_scalar(const SdpaArgs& a, int64_t row_begin, int64_t row_end) {
  std::vector<float> p(static_cast<size_t>(a.S));
  const int64_t group = a.Hq / a.Hkv;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t i = r % a.L, bh = r / a.L, b = bh / a.Hq, h = bh % a.Hq, hk = h / group;
    const float* q = a.q + b * a.q_sb + h * a.q_sh + i * a.q_sl;
    const float* k = a.k + b * a.k_sb + hk * a.k_sh;
    const float* v = a.v + b * a.v_sb + hk * a.v_sh;
    float* out = a.out + b * a.o_sb + h * a.o_sh + i * a.o_sl;
    const int64_t s_end = a.causal ? std::min(a.S, i + 1) : a.S;
    float mx = -INFINITY;
    for (int64_t j = 0; j < s_end; ++j) {
      float acc = 0.0f;
      for (int64_t e = 0; e < a.E; ++e) acc += q[e] * k[j * a.k_ss + e];
      float s = acc * a.scale;
      if (a.mask_kind != MaskKind::none) {
        const int64_t off = b * a.m_sb + h * a.m_sh + i * a.m_sl + j * a.m_ss;
        if (a.mask_kind == MaskKind::boolean)
          s = static_cast<const uint8_t*>(a.mask)[off] ? s : -INFINITY;
        else
          s += static_cast<const float*>(a.mask)[off];
      }
      p[j] = s;
      mx = std::max(mx, s);
    }
    float sum = 0.0f;
    const float m_use = mx == -INFINITY ? 0.0f : mx;
    for (int64_t j = 0; j < s_end; ++j) {
      p[j] = std::exp(p[j] - m_use);
      sum += p[j];
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int64_t e = 0; e < a.Ev; ++e) out[e] = 0.0f;
    for (int64_t j = 0; j < s_end; ++j) {
      const float w = p[j] * inv;
      for (int64_t e = 0; e < a.Ev; ++e) out[e] += w * v[j * a.v_ss + e];
    }
  }
}

}  // namespace

namespace {

void sdpa_impl(std::uintptr_t q_ptr, const int64_t* q_strides, std::uintptr_t k_ptr, const int64_t* k_strides,
               std::uintptr_t v_ptr, const int64_t* v_strides, std::uintptr_t out_ptr, const int64_t* out_strides,
               std::uintptr_t mask_ptr, int mask_kind, const int64_t* mask_strides, int64_t B, int64_t Hq,
               int64_t Hkv, int64_t L, int64_t S, int64_t E, int64_t Ev, bool is_causal, double scale, bool bf16) {
  LG_CHECK(B >= 0, B, "must be >= 0, got ", B);
  LG_CHECK(Hq >= 0, Hq, "must be >= 0, got ", Hq);
  LG_CHECK(Hkv >= 0, Hkv, "must be >= 0, got ", Hkv);
  LG_CHECK(L >= 0, L, "must be >= 0, got ", L);
  LG_CHECK(S >= 0, S, "must be >= 0, got ", S);
  LG_CHECK(E >= 0, E, "must be >= 0, got ", E);
  LG_CHECK(Ev >= 0, Ev, "must be >= 0, got ", Ev);
  LG_CHECK(Hkv >= 1 || Hq == 0, Hkv, "must be >= 1, got ", Hkv);
  LG_CHECK(Hkv == 0 || Hq % Hkv == 0, Hq, "must be a multiple of Hkv (grouped-query attention), got Hq=", Hq,
           " Hkv=", Hkv);
  LG_CHECK(mask_kind >= 0 && mask_kind <= 2, mask_kind, "must be 0 (none), 1 (bool) or 2 (float), got ", mask_kind);
  LG_CHECK(std::isfinite(scale), scale, "must be finite, got ", scale);
  const int64_t q_sizes[4] = {B, Hq, L, E}, k_sizes[4] = {B, Hkv, S, E}, v_sizes[4] = {B, Hkv, S, Ev};
  const int64_t o_sizes[4] = {B, Hq, L, Ev}, m_sizes[4] = {B, Hq, L, S};
  for (int d = 0; d < 4; ++d) {
    LG_CHECK(q_strides[d] >= 0, q_strides, "must be >= 0, got ", q_strides[d], " at dim ", d);
    LG_CHECK(k_strides[d] >= 0, k_strides, "must be >= 0, got ", k_strides[d], " at dim ", d);
    LG_CHECK(v_strides[d] >= 0, v_strides, "must be >= 0, got ", v_strides[d], " at dim ", d);
    LG_CHECK(out_strides[d] >= 0, out_strides, "must be >= 0, got ", out_strides[d], " at dim ", d);
    LG_CHECK(mask_strides[d] >= 0, mask_strides, "must be >= 0, got ", mask_strides[d], " at dim ", d);
  }
  LG_CHECK(E <= 1 || q_strides[3] == 1, q_strides, "must have a unit last stride, got ", q_strides[3]);
  LG_CHECK(E <= 1 || k_strides[3] == 1, k_strides, "must have a unit last stride, got ", k_strides[3]);
  LG_CHECK(Ev <= 1 || v_strides[3] == 1, v_strides, "must have a unit last stride, got ", v_strides[3]);
  LG_CHECK(Ev <= 1 || out_strides[3] == 1, out_strides, "must have a unit last stride, got ", out_strides[3]);
  const int64_t q_bytes = extent_bytes(q_sizes, q_strides, 4), k_bytes = extent_bytes(k_sizes, k_strides, 4);
  const int64_t v_bytes = extent_bytes(v_sizes, v_strides, 4), o_bytes = extent_bytes(o_sizes, out_strides, 4);
  LG_CHECK_BUFFER(q_ptr, float, q_bytes);
  LG_CHECK_BUFFER(k_ptr, float, k_bytes);
  LG_CHECK_BUFFER(v_ptr, float, v_bytes);
  LG_CHECK_BUFFER(out_ptr, float, o_bytes);
  if (mask_kind == 2) {
    LG_CHECK_BUFFER(mask_ptr, float, extent_bytes(m_sizes, mask_strides, 4));
  } else if (mask_kind == 1) {
    LG_CHECK_BUFFER(mask_ptr, uint8_t, extent_bytes(m_sizes, mask_strides, 1));
  }
  LG_CHECK(!ranges_overlap(out_ptr, o_bytes, q_ptr, q_bytes), out_ptr, "overlaps q");
  LG_CHECK(!ranges_overlap(out_ptr, o_bytes, k_ptr, k_bytes), out_ptr, "overlaps k");
  LG_CHECK(!ranges_overlap(out_ptr, o_bytes, v_ptr, v_bytes), out_ptr, "overlaps v");
  if (mask_kind != 0) {
    const int64_t m_bytes = extent_bytes(m_sizes, mask_strides, mask_kind == 1 ? 1 : 4);
    LG_CHECK(!ranges_overlap(out_ptr, o_bytes, mask_ptr, m_bytes), out_ptr, "overlaps the mask");
  }
  if (o_bytes == 0) return;  // B, Hq, L or Ev is 0: nothing to write

  SdpaArgs a{};
  a.q = reinterpret_cast<const float*>(q_ptr);
  a.k = reinterpret_cast<const float*>(k_ptr);
  a.v = reinterpret_cast<const float*>(v_ptr);
  a.out = reinterpret_cast<float*>(out_ptr);
  a.mask = reinterpret_cast<const void*>(mask_ptr);
  a.mask_kind = static_cast<MaskKind>(mask_kind);
  a.B = B, a.Hq = Hq, a.Hkv = Hkv, a.L = L, a.S = S, a.E = E, a.Ev = Ev;
  a.q_sb = q_strides[0], a.q_sh = q_strides[1], a.q_sl = q_strides[2];
  a.k_sb = k_strides[0], a.k_sh = k_strides[1], a.k_ss = k_strides[2];
  a.v_sb = v_strides[0], a.v_sh = v_strides[1], a.v_ss = v_strides[2];
  a.o_sb = out_strides[0], a.o_sh = out_strides[1], a.o_sl = out_strides[2];
  a.m_sb = mask_strides[0], a.m_sh = mask_strides[1], a.m_sl = mask_strides[2], a.m_ss = mask_strides[3];
  a.causal = is_causal;
  a.scale = static_cast<float>(scale);
  if (a.mask_kind != MaskKind::none && (S == 0 || mask_is_trivial(a))) a.mask_kind = MaskKind::none;

  const Isa isa = active_isa();
  const int width = isa == Isa::avx512 ? 16 : isa == Isa::avx2 ? 8 : 0;
  const int64_t work_per_row = std::max<int64_t>(1, (is_causal ? (S + 1) / 2 : S) * (E + Ev));
  if (width == 0) {
    const int64_t grain = std::max<int64_t>(1, kMinWorkPerChunk / work_per_row);
    parallel_for(0, B * Hq * L, grain, [&](int64_t rb, int64_t re) { sdpa_rows_scalar(a, rb, re); });
    return;
  }
  // Query blocks of 4 vectors; smaller ones when that leaves threads idle.
  const int64_t threads = get_num_threads();
  int64_t block_q = std::min<int64_t>(4 * width, L);
  while (block_q > width && B * Hq * ((L + block_q - 1) / block_q) < 2 * threads) block_q -= width;
  a.block_q = block_q;
  const int64_t tasks = B * Hq * ((L + block_q - 1) / block_q);
  const int64_t grain = std::max<int64_t>(1, kMinWorkPerChunk / (work_per_row * block_q));
  auto kernel = pick_kernel<void(const SdpaArgs&, int64_t, int64_t)>(
      isa, nullptr, LG_IF_AVX2(sdpa_f32_tasks_avx2), LG_IF_AVX512(sdpa_f32_tasks_avx512));
#if LG_HAVE_AVX512_KERNELS
  if (bf16 && sdpa_bf16_supported()) kernel = sdpa_bf16_tasks_avx512;
#else
  (void)bf16;
#endif
  // Behind the GEMM's oversubscription guard (common/threadpool.h): on a machine whose cores other processes hold,
  // a parallel call would wait a time slice for its late worker; then it runs on this thread.
  const double macs = double(B) * double(Hq) * double(L) * double(work_per_row);
  const double single_s = macs / (bf16 && sdpa_bf16_supported() ? 8.0e10 : 4.0e10);
  guarded_parallel_for(tasks, grain, guarded_threads(single_s), [&](int64_t tb, int64_t te) { kernel(a, tb, te); });
}

}  // namespace

bool sdpa_bf16_supported() {
  return LG_HAVE_AVX512_KERNELS && avx512_bf16_active();
}

void sdpa_f32(std::uintptr_t q_ptr, const int64_t* q_strides, std::uintptr_t k_ptr, const int64_t* k_strides,
              std::uintptr_t v_ptr, const int64_t* v_strides, std::uintptr_t out_ptr, const int64_t* out_strides,
              std::uintptr_t mask_ptr, int mask_kind, const int64_t* mask_strides, int64_t B, int64_t Hq, int64_t Hkv,
              int64_t L, int64_t S, int64_t E, int64_t Ev, bool is_causal, double scale) {
  sdpa_impl(q_ptr, q_strides, k_ptr, k_strides, v_ptr, v_strides, out_ptr, out_strides, mask_ptr, mask_kind,
            mask_strides, B, Hq, Hkv, L, S, E, Ev, is_causal, scale, false);
}

void sdpa_bf16(std::uintptr_t q_ptr, const int64_t* q_strides, std::uintptr_t k_ptr, const int64_t* k_strides,
               std::uintptr_t v_ptr, const int64_t* v_strides, std::uintptr_t out_ptr, const int64_t* out_strides,
               std::uintptr_t mask_ptr, int mask_kind, const int64_t* mask_strides, int64_t B, int64_t Hq,
               int64_t Hkv, int64_t L, int64_t S, int64_t E, int64_t Ev, bool is_causal, double scale) {
  sdpa_impl(q_ptr, q_strides, k_ptr, k_strides, v_ptr, v_strides, out_ptr, out_strides, mask_ptr, mask_kind,
            mask_strides, B, Hq, Hkv, L, S, E, Ev, is_causal, scale, true);
}

}  // namespace lg::kernels
