// AVX2 int8 GEMM kernels (compiled with -mavx2 -mfma; entered only through gemm_int8.cpp's dispatch). Everything
// lives in namespace impl_avx2 so every emitted function carries "_avx2" in its name.
//
// AVX2 has no vpdpbusd, and vpmaddubsw (u8 x s8 pairs summed into int16) saturates for u8 activations near 255
// (2 * 255 * 127 > 32767), so both operands are widened to int16 and multiplied by vpmaddwd, whose pair sums
// (<= 2 * 255 * 128) are exact in int32: per 4-byte k group a column gets two partial sums in adjacent lanes,
// added pairwise (vphaddd) once at the end. Tiles of MR <= 2 rows x 16 columns (8 accumulators), 16 columns at a time.
//
// The fast path takes vpmaddubsw after all, on shifted rows: the packing stores q - 128 (s8, in [-128, 127]) and
// the zero point z - 128, which gives the same integer (sum_k (q - z) B8 = sum_k (q - 128) B8 - (z - 128) colsum).
// Per product, |q - 128| (vpabsb: u8 <= 128) multiplies B8 with the sign of q - 128 moved onto it (vpsignb: -B8
// where q - 128 < 0, 0 where it is 0), so each product is (q - 128) B8 and every pair sum vpmaddubsw forms is at most
// 2 * 128 * 127 = 32512 <= 32767 in magnitude: never saturated, exact for B8 in [-127, 127] (packing flags a -128,
// whose negation wraps: such a B runs the widening kernel). vpmaddwd by ones then adds the pairs into int32. One
// 32-byte B load is 8 columns x one k group, so the accumulators hold whole column sums (no vphaddd) and no operand
// is widened: 4 instructions per 32 multiply-adds against the widening path's ~5.5 (in isolation on Zen 3: 70 vs 52
// GMAC/s per core). Tiles of MR <= 4 rows x 16 columns. The int32 sums cannot overflow: both terms are at most
// 128 * 127 * K <= 2^30 for K <= 65536, and the result, a sum of (q - z) B8, at most 255 * 127 * K < 2^31.
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_int8.h"

namespace lg::gemm::detail {
namespace impl_avx2 {

constexpr int kMaxMR = 2;

// The 8 column sums of two accumulators holding (c0..c3) and (c4..c7) pair partials.
inline __m256i column_sums(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}

template <int MR>
void micro_t(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int nr, const DequantTile* dq,
             float* c, int64_t ldc, int32_t* raw) {
  const int64_t step = int64_t(width) * 4;
  for (int c16 = 0; c16 * 16 < nr; ++c16) {
    // loops over the tile fully unrolled: only then does GCC keep acc in registers (see the AVX-512 unit)
    __m256i acc[MR][4];
#pragma GCC unroll 2
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[i][v] = _mm256_setzero_si256();
    for (int64_t g = 0; g < groups; ++g) {
      const int8_t* b = bp + g * step + c16 * 64;
      // The first 16-column pass also pulls in the second half of the 128-byte panel row: a GEMV streams B from
      // memory once, and a stride-128 pass over 64-byte lines would leave every other line for a second trip.
      if (c16 == 0 && nr > 16) _mm_prefetch(reinterpret_cast<const char*>(b + 64), _MM_HINT_T0);
      __m256i bv[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v)
        bv[v] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 * v)));
#pragma GCC unroll 2
      for (int i = 0; i < MR; ++i) {
        const __m256i av = _mm256_cvtepu8_epi16(_mm_set1_epi32(static_cast<int>(ap[g * MR + i])));
#pragma GCC unroll 4
        for (int v = 0; v < 4; ++v) acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(av, bv[v]));
      }
    }
    const int n0 = c16 * 16, cols = nr - n0 < 16 ? nr - n0 : 16;
#pragma GCC unroll 2
    for (int i = 0; i < MR; ++i) {
      alignas(32) int32_t sums[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums), column_sums(acc[i][0], acc[i][1]));
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8), column_sums(acc[i][2], acc[i][3]));
      if (raw) {
        std::memcpy(raw + i * ldc + n0, sums, sizeof(int32_t) * cols);
        continue;
      }
      float* row = c + i * ldc + n0;
      const float s = dq->s[i];
      for (int j = 0; j < cols; ++j)
        row[j] = float(sums[j] - dq->z[i] * dq->colsum[n0 + j]) * (s * dq->sb[n0 + j]);
    }
  }
}

// Shifted-row tiles: acc[i][v] holds the int32 sums of columns 8v..8v+7 of the 16-column pass for row i.
template <int MR>
void micro_shifted_t(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int nr, const DequantTile* dq,
                    float* c, int64_t ldc, int32_t* raw) {
  const int64_t step = int64_t(width) * 4;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int c16 = 0; c16 * 16 < nr; ++c16) {
    __m256i acc[MR][2];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
    const int8_t* b = bp + c16 * 64;
    for (int64_t g = 0; g < groups; ++g, b += step) {
      if (c16 == 0 && nr > 16) _mm_prefetch(reinterpret_cast<const char*>(b + 64), _MM_HINT_T0);  // see micro_t
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m256i a = _mm256_set1_epi32(static_cast<int>(ap[g * MR + i]));
        const __m256i ua = _mm256_abs_epi8(a);
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(b0, a)), ones));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(ua, _mm256_sign_epi8(b1, a)), ones));
      }
    }
    const int n0 = c16 * 16, cols = nr - n0 < 16 ? nr - n0 : 16;
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      if (raw) {
        alignas(32) int32_t sums[16];
        _mm256_store_si256(reinterpret_cast<__m256i*>(sums), acc[i][0]);
        _mm256_store_si256(reinterpret_cast<__m256i*>(sums + 8), acc[i][1]);
        std::memcpy(raw + i * ldc + n0, sums, sizeof(int32_t) * cols);
        continue;
      }
      float* row = c + i * ldc + n0;
      const __m256 s = _mm256_set1_ps(dq->s[i]);
      const __m256i z = _mm256_set1_epi32(dq->z[i]);
      // float(sum - z * colsum) * (s * sb): the scalar formula's fp32 operations in its order (bit for bit)
      const __m256i d0 = _mm256_sub_epi32(
          acc[i][0], _mm256_mullo_epi32(z, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dq->colsum + n0))));
      const __m256i d1 = _mm256_sub_epi32(
          acc[i][1], _mm256_mullo_epi32(z, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dq->colsum + n0 + 8))));
      const __m256 y0 = _mm256_mul_ps(_mm256_cvtepi32_ps(d0), _mm256_mul_ps(s, _mm256_loadu_ps(dq->sb + n0)));
      const __m256 y1 = _mm256_mul_ps(_mm256_cvtepi32_ps(d1), _mm256_mul_ps(s, _mm256_loadu_ps(dq->sb + n0 + 8)));
      if (cols == 16) {
        _mm256_storeu_ps(row, y0);
        _mm256_storeu_ps(row + 8, y1);
      } else {
        alignas(32) float t[16];
        _mm256_store_ps(t, y0);
        _mm256_store_ps(t + 8, y1);
        std::memcpy(row, t, sizeof(float) * cols);
      }
    }
  }
}

void micro_shifted_avx2(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int mr, int nr,
                       const DequantTile* dq, float* c, int64_t ldc, const TileEpi* ep, int32_t* raw) {
  switch (mr) {
    case 1: micro_shifted_t<1>(groups, ap, bp, width, nr, dq, c, ldc, raw); break;
    case 2: micro_shifted_t<2>(groups, ap, bp, width, nr, dq, c, ldc, raw); break;
    case 3: micro_shifted_t<3>(groups, ap, bp, width, nr, dq, c, ldc, raw); break;
    default: micro_shifted_t<4>(groups, ap, bp, width, nr, dq, c, ldc, raw); break;
  }
  if (!raw && ep) kernels_avx2().epilogue(c, ldc, mr, nr, ep);
}

void micro_s8_avx2(int64_t groups, const uint32_t* ap, const int8_t* bp, int width, int mr, int nr,
                   const DequantTile* dq, float* c, int64_t ldc, const TileEpi* ep, int32_t* raw) {
  if (mr == 1)
    micro_t<1>(groups, ap, bp, width, nr, dq, c, ldc, raw);
  else
    micro_t<2>(groups, ap, bp, width, nr, dq, c, ldc, raw);
  if (!raw && ep) kernels_avx2().epilogue(c, ldc, mr, nr, ep);
}

inline float hmin(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  float r = t[0];
  for (int i = 1; i < 8; ++i) r = r < t[i] ? r : t[i];
  return r;
}

inline float hmax(__m256 v) {
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  float r = t[0];
  for (int i = 1; i < 8; ++i) r = r > t[i] ? r : t[i];
  return r;
}

void minmax_avx2(const float* a, int64_t K, float* mn, float* mx) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 x = _mm256_loadu_ps(a + k);
    lo = _mm256_min_ps(x, lo);  // returns lo when x is NaN: NaN is skipped
    hi = _mm256_max_ps(x, hi);
  }
  float l = hmin(lo), h = hmax(hi);
  for (; k < K; ++k) {
    l = a[k] < l ? a[k] : l;
    h = a[k] > h ? a[k] : h;
  }
  *mn = l;
  *mx = h;
}

void quant_avx2(const float* a, int64_t K, float inv, int32_t z, uint8_t* q) {
  const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-256.0f), hi = _mm256_set1_ps(511.0f);
  const __m256i vz = _mm256_set1_epi32(z), zero = _mm256_setzero_si256(), top = _mm256_set1_epi32(255);
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    // clamp first (max_ps returns its second operand for NaN: NaN -> -256 -> 0), then round to nearest even
    const __m256 y = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(a + k), vinv), lo), hi);
    __m256i v = _mm256_add_epi32(_mm256_cvtps_epi32(y), vz);
    v = _mm256_min_epi32(_mm256_max_epi32(v, zero), top);
    alignas(32) int32_t t[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(t), v);
    for (int i = 0; i < 8; ++i) q[k + i] = static_cast<uint8_t>(t[i]);
  }
  for (; k < K; ++k) {
    float v = a[k] * inv;
    v = v != v ? -256.0f : (v < -256.0f ? -256.0f : (v > 511.0f ? 511.0f : v));
    const int32_t r = static_cast<int32_t>(_mm_cvtss_si32(_mm_set_ss(v))) + z;  // nearest even, as cvtps
    q[k] = static_cast<uint8_t>(r < 0 ? 0 : (r > 255 ? 255 : r));
  }
}

}  // namespace impl_avx2

IsaKernelsS8 kernels_s8_avx2() {
  IsaKernelsS8 ks{impl_avx2::kMaxMR, impl_avx2::micro_s8_avx2, impl_avx2::minmax_avx2, impl_avx2::quant_avx2,
                  kernels_avx2().epilogue};
  ks.micro_shifted = impl_avx2::micro_shifted_avx2;
  ks.max_mr_shifted = 4;
  return ks;
}

}  // namespace lg::gemm::detail
