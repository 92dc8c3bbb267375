// AVX2 weight-only GEMM kernels (compiled with -mavx2 -mfma; entered only through gemm_wo.cpp's dispatch, on AVX2
// and AVX-512 CPUs). Everything lives in namespace impl_avx2 so every emitted function carries "_avx2" in its name.
//
// A k row of 16 columns is one 8-byte vpmovsxbd pair (int8) or one 8-byte vpmovzxbd split into its low and high
// nibbles (int4): 2 vectors of 8 columns in order (see WoPanel in gemm_wo.h). Few rows: per k, the 16 columns are
// converted to fp32 once and multiplied into every row's accumulators (q itself, not q - z: the offset is one FMA
// per chunk, -z * s times the chunk's row sum of A); per chunk the sums are scaled into the running total. Many
// rows: the panel slice is dequantised to fp32 (one FMA per element) for the fp32 micro-kernel.
#include <immintrin.h>

#include "kernels/gemm_wo.h"

namespace lg::gemm::detail {
namespace impl_avx2 {

constexpr int kMaxRows = 4;

// The 16 columns [16h, 16h + 16) of one k row as fp32 (q values, not yet scaled).
template <int BITS>
inline void load16(const uint8_t* row, int h, __m256& b0, __m256& b1) {
  if constexpr (BITS == 8) {
    const uint8_t* p = row + 16 * h;
    b0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    b1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8))));
  } else {
    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + 8 * h)));
    b0 = _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
    b1 = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
  }
}

// U independent accumulator sets over alternating k: with one or two rows, the FMA latency (4 cycles) and not the
// throughput would bound a single set.
template <int MR, int U, int BITS>
void rows_t(const float* a, int64_t lda, const float* asum, int64_t n_chunks, const WoPanel& p, float* c,
            int64_t ldc, int nr) {
  const int halves = p.width / 16;
  const int64_t bpk = BITS == 8 ? p.width : p.width / 2;  // bytes per k row
  alignas(32) float tot[MR][kPanel];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kPanel; ++j) tot[i][j] = 0.0f;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t k0 = ch * p.chunk, k1 = k0 + p.chunk < p.K ? k0 + p.chunk : p.K;
    const int64_t g = k0 / p.group;
    // both halves of the chunk's rows while they are in L1 (the chunk is at most 256 rows of 32 bytes)
    for (int h = 0; h < halves; ++h) {
      __m256 acc[U][MR][2];
#pragma GCC unroll 4
      for (int u = 0; u < U; ++u)
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) acc[u][i][0] = acc[u][i][1] = _mm256_setzero_ps();
      const uint8_t* row = p.q + k0 * bpk;
      int64_t k = k0;
      for (; k + U <= k1; k += U, row += U * bpk) {
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) {
          __m256 b0, b1;
          load16<BITS>(row + u * bpk, h, b0, b1);
#pragma GCC unroll 4
          for (int i = 0; i < MR; ++i) {
            const __m256 av = _mm256_broadcast_ss(a + i * lda + k + u);
            acc[u][i][0] = _mm256_fmadd_ps(av, b0, acc[u][i][0]);
            acc[u][i][1] = _mm256_fmadd_ps(av, b1, acc[u][i][1]);
          }
        }
      }
      for (; k < k1; ++k, row += bpk) {
        __m256 b0, b1;
        load16<BITS>(row, h, b0, b1);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          const __m256 av = _mm256_broadcast_ss(a + i * lda + k);
          acc[0][i][0] = _mm256_fmadd_ps(av, b0, acc[0][i][0]);
          acc[0][i][1] = _mm256_fmadd_ps(av, b1, acc[0][i][1]);
        }
      }
#pragma GCC unroll 4
      for (int u = 1; u < U; ++u)
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
          acc[0][i][0] = _mm256_add_ps(acc[0][i][0], acc[u][i][0]);
          acc[0][i][1] = _mm256_add_ps(acc[0][i][1], acc[u][i][1]);
        }
      const float* s = p.s + g * kPanel + 16 * h;
      const float* m = p.m + g * kPanel + 16 * h;
      const __m256 s0 = _mm256_loadu_ps(s), s1 = _mm256_loadu_ps(s + 8);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        float* t = tot[i] + 16 * h;
        __m256 t0 = _mm256_fmadd_ps(acc[0][i][0], s0, _mm256_load_ps(t));
        __m256 t1 = _mm256_fmadd_ps(acc[0][i][1], s1, _mm256_load_ps(t + 8));
        if (p.has_offset) {
          const __m256 as = _mm256_broadcast_ss(asum + i * n_chunks + ch);
          t0 = _mm256_fmadd_ps(as, _mm256_loadu_ps(m), t0);
          t1 = _mm256_fmadd_ps(as, _mm256_loadu_ps(m + 8), t1);
        }
        _mm256_store_ps(t, t0);
        _mm256_store_ps(t + 8, t1);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = tot[i][j];
}

template <int BITS>
void rows_bits(int m, const float* a, int64_t lda, const float* asum, int64_t n_chunks, const WoPanel& p, float* c,
               int64_t ldc, int nr) {
  switch (m) {
    case 1: return rows_t<1, 4, BITS>(a, lda, asum, n_chunks, p, c, ldc, nr);
    case 2: return rows_t<2, 2, BITS>(a, lda, asum, n_chunks, p, c, ldc, nr);
    case 3: return rows_t<3, 1, BITS>(a, lda, asum, n_chunks, p, c, ldc, nr);
    default: return rows_t<4, 1, BITS>(a, lda, asum, n_chunks, p, c, ldc, nr);
  }
}

void rows_avx2(int m, const float* a, int64_t lda, const float* asum, int64_t n_chunks, const WoPanel& p, float* c,
               int64_t ldc, int nr) {
  if (p.bits == 8)
    rows_bits<8>(m, a, lda, asum, n_chunks, p, c, ldc, nr);
  else
    rows_bits<4>(m, a, lda, asum, n_chunks, p, c, ldc, nr);
}

template <int BITS>
void dequant_t(const WoPanel& p, int64_t k0, int64_t kv, float* out) {
  const int halves = p.width / 16;
  const int64_t bpk = BITS == 8 ? p.width : p.width / 2;
  const uint8_t* row = p.q + k0 * bpk;
  for (int64_t k = k0; k < k0 + kv; ++k, row += bpk, out += p.width) {
    const int64_t g = k / p.group;
    for (int h = 0; h < halves; ++h) {
      const float* s = p.s + g * kPanel + 16 * h;
      const float* m = p.m + g * kPanel + 16 * h;
      __m256 b0, b1;
      load16<BITS>(row, h, b0, b1);
      _mm256_storeu_ps(out + 16 * h, _mm256_fmadd_ps(b0, _mm256_loadu_ps(s), _mm256_loadu_ps(m)));
      _mm256_storeu_ps(out + 16 * h + 8, _mm256_fmadd_ps(b1, _mm256_loadu_ps(s + 8), _mm256_loadu_ps(m + 8)));
    }
  }
}

void dequant_avx2(const WoPanel& p, int64_t k0, int64_t kv, float* out) {
  if (p.bits == 8)
    dequant_t<8>(p, k0, kv, out);
  else
    dequant_t<4>(p, k0, kv, out);
}

}  // namespace impl_avx2

IsaKernelsWo kernels_wo_avx2() {
  return IsaKernelsWo{impl_avx2::kMaxRows, impl_avx2::rows_avx2, impl_avx2::dequant_avx2};
}

}  // namespace lg::gemm::detail
