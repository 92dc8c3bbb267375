// AVX-512 variant of the fused attention kernel (compiled with the AVX-512 flag set; entered only via
// attention.cpp). The ISA-independent body below (after the traits) is the same text in attention_avx2.cpp.
//
// Per task (b, h, block of up to 4 vectors of queries):
//   qt   = (scale * log2 e) * Q_block^T, packed E x BQ (queries along the vector lanes)
//   for each block of up to kBlockK keys:
//     st = K_block . qt            (BK x BQ: one row per key, queries along the lanes; K read in place)
//     st += mask, causal -> -inf;  m_new = max(m, column max);  p = exp2(st - m_new);  l = l * 2^(m - m_new) + sum p
//     o  = o * 2^(m - m_new) + p^T . V_block   (BQ x Ev; V rows read in place, features along the lanes)
//   out = o / l  (0 where l == 0: every key masked)
// With queries on the lanes, the softmax statistics are vertical (lane-wise) max/sum: no horizontal reductions.
#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "kernels/attention.h"

// Named per ISA (the build test tells kernels apart by the _avx2 / _avx512 in their names).
namespace lg::kernels::sdpa_avx512 {
namespace {

struct Simd {
  static constexpr int W = 16;
  static constexpr int kQkRows = 6;  // keys per QK^T register tile (x up to 4 query vectors)
  static constexpr int kPvRows = 6;  // queries per P.V register tile (x up to 4 feature vectors)
  using V = __m512;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static __mmask16 tail(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail(n), p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, tail(n), v); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  // a < b ? x : y, lane-wise
  static V select_lt(V a, V b, V x, V y) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, b, _CMP_LT_OQ), y, x);
  }
  static V round(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // 2^n for integral n in [-126, 127]
  static V pow2i(V n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static V iota() { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  // n <= 16 bools -> 0 where true, -inf where false (lanes past n: -inf)
  static V load_bool(const uint8_t* p, int n) {
    const __m128i b = n == W ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                             : _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << n) - 1u), p);
    const __mmask16 off = _mm512_cmpeq_epi32_mask(_mm512_cvtepu8_epi32(b), _mm512_setzero_si512());
    return _mm512_mask_blend_ps(off, _mm512_setzero_ps(), _mm512_set1_ps(-INFINITY));
  }
  // r[i] <- column i of the 16 x 16 block whose rows are r[0..15]
  static void transpose(V* r) {
    V t[16];
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {  // r[4i + j], 128-bit lane l: column 4l + j of rows 4i..4i+3
      r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
      r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
      r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);
      t[j + 4] = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
      t[j + 8] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
      t[j + 12] = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
      r[4 + j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xDD);
      r[8 + j] = _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0x88);
      r[12 + j] = _mm512_shuffle_f32x4(t[j + 4], t[j + 12], 0xDD);
    }
  }
};

}  // namespace
}  // namespace lg::kernels::sdpa_avx512

#define LG_SDPA_NS sdpa_avx512
#define LG_SDPA_TASKS_FN sdpa_f32_tasks_avx512
namespace lg::kernels {
namespace LG_SDPA_NS {
// ---- ISA-independent body (identical in attention_avx2.cpp) -------------------------------------------------------
namespace {

using V = Simd::V;
// Fully unroll the register-tile loops early, so the accumulator arrays live in registers.
#define LG_UNROLL _Pragma("GCC unroll 16")
constexpr int W = Simd::W;
constexpr int64_t kBlockK = 64;  // keys per block: the BK x BQ score tile (16 KiB at BQ = 64) stays in L1
constexpr float kLog2e = 1.4426950408889634f;

// 2^x: x = n + f, |f| <= 1/2, 2^f by its degree-6 Taylor polynomial (rel. error ~1e-7); 0 below 2^-126
// (so -inf, a masked score, gives exactly 0).
inline V exp2v(V x) {
  const V lo = Simd::set1(-126.0f);
  const V xc = Simd::max(x, lo);
  const V n = Simd::round(xc);
  const V f = Simd::sub(xc, n);
  V p = Simd::set1(1.5403530393381608e-4f);
  p = Simd::fmadd(p, f, Simd::set1(1.3333558146428443e-3f));
  p = Simd::fmadd(p, f, Simd::set1(9.6181291076284772e-3f));
  p = Simd::fmadd(p, f, Simd::set1(5.5504108664821580e-2f));
  p = Simd::fmadd(p, f, Simd::set1(2.4022650695910071e-1f));
  p = Simd::fmadd(p, f, Simd::set1(6.9314718055994531e-1f));
  p = Simd::fmadd(p, f, Simd::set1(1.0f));
  return Simd::select_lt(x, lo, Simd::zero(), Simd::mul(p, Simd::pow2i(n)));
}

// st[r][:NC] = sum_e k[r, e] * qt[e][:NC] for R keys (rows of k at stride k_ss) and NC query vectors (qt and st
// rows hold `ld` floats).
template <int R, int NC>
inline void qk_tile(const float* __restrict qt, int64_t ld, const float* __restrict k, int64_t k_ss, int64_t E,
                    float* __restrict st) {
  V acc[R][NC];
  LG_UNROLL
  for (int r = 0; r < R; ++r)
    LG_UNROLL
    for (int c = 0; c < NC; ++c) acc[r][c] = Simd::zero();
  for (int64_t e = 0; e < E; ++e) {
    V q[NC];
    LG_UNROLL
    for (int c = 0; c < NC; ++c) q[c] = Simd::load(qt + e * ld + c * W);
    LG_UNROLL
    for (int r = 0; r < R; ++r) {
      const V kb = Simd::bcast(k + r * k_ss + e);
      LG_UNROLL
      for (int c = 0; c < NC; ++c) acc[r][c] = Simd::fmadd(kb, q[c], acc[r][c]);
    }
  }
  LG_UNROLL
  for (int r = 0; r < R; ++r)
    LG_UNROLL
    for (int c = 0; c < NC; ++c) Simd::store(st + r * ld + c * W, acc[r][c]);
}

template <int R>
void qk_rows(int nc, const float* qt, int64_t ld, const float* k, int64_t k_ss, int64_t E, float* st) {
  switch (nc) {
    case 1: qk_tile<R, 1>(qt, ld, k, k_ss, E, st); break;
    case 2: qk_tile<R, 2>(qt, ld, k, k_ss, E, st); break;
    case 3: qk_tile<R, 3>(qt, ld, k, k_ss, E, st); break;
    default: qk_tile<R, 4>(qt, ld, k, k_ss, E, st); break;
  }
}

// st (bk x C vectors) = k_block . qt. causal_d = j0 - i0 (first key minus first query) when causal, else
// INT64_MIN: a tile of keys skips the leading query vectors in which every query precedes every key (they are
// masked to -inf afterwards, whatever they hold).
template <int C>
void qk_block(const float* qt, const float* k, int64_t k_ss, int64_t E, int64_t bk, float* st, int64_t causal_d) {
  constexpr int R = Simd::kQkRows;
  constexpr int64_t ld = C * W;
  auto skip = [&](int64_t j) -> int {
    const int64_t d = causal_d + j;  // first key of the tile minus first query of the block
    return d < W ? 0 : static_cast<int>(d / W < C ? d / W : C - 1);
  };
  int64_t j = 0;
  for (; j + R <= bk; j += R) {
    const int c0 = skip(j);
    qk_rows<R>(C - c0, qt + c0 * W, ld, k + j * k_ss, k_ss, E, st + j * ld + c0 * W);
  }
  const int c0 = skip(j);
  const float* qj = qt + c0 * W;
  const float* kj = k + j * k_ss;
  float* sj = st + j * ld + c0 * W;
  switch (bk - j) {
    case 0: break;
    case 1: qk_rows<1>(C - c0, qj, ld, kj, k_ss, E, sj); break;
    case 2: qk_rows<2>(C - c0, qj, ld, kj, k_ss, E, sj); break;
    case 3: qk_rows<3>(C - c0, qj, ld, kj, k_ss, E, sj); break;
    case 4: qk_rows<4>(C - c0, qj, ld, kj, k_ss, E, sj); break;
    default: qk_rows<5>(C - c0, qj, ld, kj, k_ss, E, sj); break;
  }
}

// o[r][:] = o[r][:] * alpha[r] + sum_j pt[j][r] * v[j, :] for R queries and NV feature vectors (the last one
// holding `last` valid features when TAIL).
template <int R, int NV, bool TAIL>
inline void pv_tile(float* __restrict o, int64_t ldo, const float* __restrict alpha, const float* __restrict pt,
                    int64_t ldp, const float* __restrict v, int64_t v_ss, int64_t bk, int last) {
  V acc[R][NV];
  LG_UNROLL
  for (int r = 0; r < R; ++r) {
    const V a = Simd::bcast(alpha + r);
    LG_UNROLL
    for (int n = 0; n < NV; ++n) acc[r][n] = Simd::mul(Simd::load(o + r * ldo + n * W), a);
  }
  for (int64_t j = 0; j < bk; ++j) {
    V vv[NV];
    LG_UNROLL
    for (int n = 0; n < NV; ++n)
      vv[n] = (TAIL && n == NV - 1) ? Simd::load_n(v + j * v_ss + n * W, last) : Simd::load(v + j * v_ss + n * W);
    LG_UNROLL
    for (int r = 0; r < R; ++r) {
      const V p = Simd::bcast(pt + j * ldp + r);
      LG_UNROLL
      for (int n = 0; n < NV; ++n) acc[r][n] = Simd::fmadd(p, vv[n], acc[r][n]);
    }
  }
  LG_UNROLL
  for (int r = 0; r < R; ++r)
    LG_UNROLL
    for (int n = 0; n < NV; ++n) Simd::store(o + r * ldo + n * W, acc[r][n]);
}

// Causal: queries [i, i + R) see keys up to i + R - 1 - causal_d of the block (p is 0 beyond); a tile that sees
// none keeps o (its alpha is exactly 1: no key of the block raised its max).
inline int64_t keys_seen(int64_t i, int R, int64_t bk, int64_t causal_d) {
  const int64_t n = i + R - causal_d;
  return n < bk ? (n > 0 ? n : 0) : bk;
}

template <int NV, bool TAIL>
void pv_rows(float* o, int64_t ldo, const float* alpha, const float* pt, int64_t ldp, const float* v, int64_t v_ss,
             int64_t bk, int64_t rows, int last, int64_t causal_d) {
  constexpr int R = Simd::kPvRows;
  int64_t i = 0;
  for (; i + R <= rows; i += R) {
    const int64_t n = keys_seen(i, R, bk, causal_d);
    if (n) pv_tile<R, NV, TAIL>(o + i * ldo, ldo, alpha + i, pt + i, ldp, v, v_ss, n, last);
  }
  float* oi = o + i * ldo;
  const int rem = static_cast<int>(rows - i);
  const int64_t n = keys_seen(i, rem, bk, causal_d);
  if (rem == 0 || n == 0) return;
  switch (rem) {
    case 1: pv_tile<1, NV, TAIL>(oi, ldo, alpha + i, pt + i, ldp, v, v_ss, n, last); break;
    case 2: pv_tile<2, NV, TAIL>(oi, ldo, alpha + i, pt + i, ldp, v, v_ss, n, last); break;
    case 3: pv_tile<3, NV, TAIL>(oi, ldo, alpha + i, pt + i, ldp, v, v_ss, n, last); break;
    case 4: pv_tile<4, NV, TAIL>(oi, ldo, alpha + i, pt + i, ldp, v, v_ss, n, last); break;
    default: pv_tile<5, NV, TAIL>(oi, ldo, alpha + i, pt + i, ldp, v, v_ss, n, last); break;
  }
}

template <int NV>
void pv_chunk(bool tail, float* o, int64_t ldo, const float* alpha, const float* pt, int64_t ldp, const float* v,
              int64_t v_ss, int64_t bk, int64_t rows, int last, int64_t causal_d) {
  if (tail)
    pv_rows<NV, true>(o, ldo, alpha, pt, ldp, v, v_ss, bk, rows, last, causal_d);
  else
    pv_rows<NV, false>(o, ldo, alpha, pt, ldp, v, v_ss, bk, rows, last, causal_d);
}

// o (rows x Ev, row stride ldo) = o * alpha + p^T . v over Ev in chunks of up to 4 vectors.
void pv_block(float* o, int64_t ldo, const float* alpha, const float* pt, int64_t ldp, const float* v, int64_t v_ss,
              int64_t bk, int64_t rows, int64_t Ev, int64_t causal_d) {
  for (int64_t e0 = 0; e0 < Ev; e0 += 4 * W) {
    const int64_t ne = Ev - e0 < 4 * W ? Ev - e0 : 4 * W;
    const int nv = static_cast<int>((ne + W - 1) / W);
    const int last = static_cast<int>(ne - (nv - 1) * W);
    const bool tail = last != W;
    switch (nv) {
      case 1: pv_chunk<1>(tail, o + e0, ldo, alpha, pt, ldp, v + e0, v_ss, bk, rows, last, causal_d); break;
      case 2: pv_chunk<2>(tail, o + e0, ldo, alpha, pt, ldp, v + e0, v_ss, bk, rows, last, causal_d); break;
      case 3: pv_chunk<3>(tail, o + e0, ldo, alpha, pt, ldp, v + e0, v_ss, bk, rows, last, causal_d); break;
      default: pv_chunk<4>(tail, o + e0, ldo, alpha, pt, ldp, v + e0, v_ss, bk, rows, last, causal_d); break;
    }
  }
}

// The mask's addend in log2 units (the scores' units). A finite mask stays finite: HF masks use finfo.min, and a
// row of only finfo.min is a uniform softmax in torch, not an empty one.
inline float mask_value(const SdpaArgs& a, int64_t off) {
  if (a.mask_kind == MaskKind::boolean)
    return static_cast<const uint8_t*>(a.mask)[off] ? 0.0f : -INFINITY;
  const float m = static_cast<const float*>(a.mask)[off];
  const float x = m * kLog2e;
  return x < -FLT_MAX && m != -INFINITY ? -FLT_MAX : x;
}

// mask_value on a vector of float mask entries.
inline V mask_log2(V m) {
  const V lo = Simd::set1(-FLT_MAX);
  return Simd::select_lt(m, lo, Simd::set1(-INFINITY), Simd::max(Simd::mul(m, Simd::set1(kLog2e)), lo));
}

struct Scratch {
  float* qt;     // E x BQ
  float* st;     // kBlockK x BQ
  float* o;      // BQ x EvP
  float* m;      // BQ running max (log2 units)
  float* l;      // BQ running sum
  float* alpha;  // BQ rescale factors of the current block
  float* lane_mask;  // BQ additive mask when it does not depend on the key (mask stride along S == 0)
};

// One task: queries [i0, i0 + bq) of head h (kv head hk) in batch b; C = ceil(bq / W) query vectors.
template <int C>
void run_task(const SdpaArgs& a, const Scratch& s, int64_t b, int64_t h, int64_t hk, int64_t i0, int64_t bq) {
  constexpr int BQ = C * W;
  const int64_t E = a.E, Ev = a.Ev, EvP = (Ev + W - 1) / W * W;
  const float* q = a.q + b * a.q_sb + h * a.q_sh + i0 * a.q_sl;
  const float* k = a.k + b * a.k_sb + hk * a.k_sh;
  const float* v = a.v + b * a.v_sb + hk * a.v_sh;

  // Q block, transposed and pre-scaled (scores come out in log2 units, for exp2).
  const V sc = Simd::set1(a.scale * kLog2e);
  for (int64_t i0 = 0; i0 < BQ; i0 += W) {
    for (int64_t e0 = 0; e0 < E; e0 += W) {
      const int ne = E - e0 < W ? static_cast<int>(E - e0) : W;
      V r[W];
      for (int i = 0; i < W; ++i) {
        const float* qi = q + (i0 + i) * a.q_sl + e0;
        r[i] = i0 + i >= bq ? Simd::zero() : Simd::mul(ne == W ? Simd::load(qi) : Simd::load_n(qi, ne), sc);
      }
      Simd::transpose(r);
      for (int e = 0; e < ne; ++e) Simd::store(s.qt + (e0 + e) * BQ + i0, r[e]);
    }
  }
  for (int c = 0; c < C; ++c) {
    Simd::store(s.m + c * W, Simd::set1(-INFINITY));
    Simd::store(s.l + c * W, Simd::zero());
  }
  std::memset(s.o, 0, sizeof(float) * BQ * EvP);

  // Mask: by key row (stride along L == 0: key padding), by query lane (stride along S == 0), or general.
  enum { kNone, kLane, kRow, kGeneral } mode = kNone;
  int64_t mbase = 0;
  if (a.mask_kind != MaskKind::none) {
    mbase = b * a.m_sb + h * a.m_sh + i0 * a.m_sl;
    mode = a.m_ss == 0 ? kLane : a.m_sl == 0 ? kRow : kGeneral;
    if (mode == kLane) {
      for (int64_t i = 0; i < BQ; ++i) s.lane_mask[i] = i < bq ? mask_value(a, mbase + i * a.m_sl) : 0.0f;
      bool all_zero = true;  // an all-zero lane mask changes nothing
      for (int64_t i = 0; i < bq; ++i) all_zero = all_zero && s.lane_mask[i] == 0.0f;
      if (all_zero) mode = kNone;
    }
  }

  const int64_t j_end = a.causal ? (i0 + bq < a.S ? i0 + bq : a.S) : a.S;
  const V neg_inf = Simd::set1(-INFINITY);
  for (int64_t j0 = 0; j0 < j_end; j0 += kBlockK) {
    const int64_t bk = j_end - j0 < kBlockK ? j_end - j0 : kBlockK;
    const int64_t causal_d = a.causal ? j0 - i0 : -(int64_t(1) << 62);
    qk_block<C>(s.qt, k + j0 * a.k_ss, a.k_ss, E, bk, s.st, causal_d);

    // masks; running max
    V mx[C];
    for (int c = 0; c < C; ++c) mx[c] = Simd::load(s.m + c * W);
    if (mode == kGeneral && a.m_ss == 1) {
      // W x W tiles of mask rows (queries), transposed to key rows with the queries on the lanes
      const bool is_bool = a.mask_kind == MaskKind::boolean;
      for (int c = 0; c < C; ++c) {
        for (int64_t jb = 0; jb < bk; jb += W) {
          const int nj = bk - jb < W ? static_cast<int>(bk - jb) : W;
          V r[W];
          for (int i = 0; i < W; ++i) {
            const int64_t ii = c * W + i, off = mbase + ii * a.m_sl + j0 + jb;
            if (ii >= bq)
              r[i] = Simd::zero();
            else if (is_bool)
              r[i] = Simd::load_bool(static_cast<const uint8_t*>(a.mask) + off, nj);
            else
              r[i] = mask_log2(Simd::load_n(static_cast<const float*>(a.mask) + off, nj));
          }
          Simd::transpose(r);
          for (int j = 0; j < nj; ++j) {
            float* row = s.st + (jb + j) * BQ + c * W;
            Simd::store(row, Simd::add(Simd::load(row), r[j]));
          }
        }
      }
    } else if (mode == kGeneral) {
      for (int64_t j = 0; j < bk; ++j) {
        float* row = s.st + j * BQ;
        const int64_t off = mbase + (j0 + j) * a.m_ss;
        for (int64_t i = 0; i < bq; ++i) row[i] += mask_value(a, off + i * a.m_sl);
      }
    }
    const bool causal_diag = a.causal && j0 + bk - 1 > i0;  // some key in this block is after some query
    const V lane_i0 = Simd::add(Simd::set1(static_cast<float>(i0)), Simd::iota());
    for (int64_t j = 0; j < bk; ++j) {
      float* row = s.st + j * BQ;
      V rowmask = Simd::zero();
      if (mode == kRow) rowmask = Simd::set1(mask_value(a, mbase + (j0 + j) * a.m_ss));
      const V jj = Simd::set1(static_cast<float>(j0 + j));
      for (int c = 0; c < C; ++c) {
        V x = Simd::load(row + c * W);
        if (mode == kRow) x = Simd::add(x, rowmask);
        if (mode == kLane) x = Simd::add(x, Simd::load(s.lane_mask + c * W));
        if (causal_diag) {
          const V ii = Simd::add(lane_i0, Simd::set1(static_cast<float>(c * W)));
          x = Simd::select_lt(ii, jj, neg_inf, x);  // key j after query i: masked
        }
        if (mode != kNone || causal_diag) Simd::store(row + c * W, x);
        mx[c] = Simd::max(mx[c], x);
      }
    }

    // online softmax: p = 2^(s - m_new), l = l * 2^(m_old - m_new) + sum p
    V muse[C], sum[C];
    for (int c = 0; c < C; ++c) {
      const V m_old = Simd::load(s.m + c * W);
      // a lane with only masked keys so far keeps m = -inf; subtract 0 there (p = 2^-inf = 0, no NaN)
      muse[c] = Simd::select_lt(mx[c], Simd::set1(-FLT_MAX), Simd::zero(), mx[c]);
      const V alpha = exp2v(Simd::sub(m_old, muse[c]));
      Simd::store(s.m + c * W, mx[c]);
      Simd::store(s.alpha + c * W, alpha);
      sum[c] = Simd::mul(Simd::load(s.l + c * W), alpha);
    }
    for (int64_t j = 0; j < bk; ++j) {
      float* row = s.st + j * BQ;
      for (int c = 0; c < C; ++c) {
        const V p = exp2v(Simd::sub(Simd::load(row + c * W), muse[c]));
        Simd::store(row + c * W, p);
        sum[c] = Simd::add(sum[c], p);
      }
    }
    for (int c = 0; c < C; ++c) Simd::store(s.l + c * W, sum[c]);

    pv_block(s.o, EvP, s.alpha, s.st, BQ, v + j0 * a.v_ss, a.v_ss, bk, bq, Ev, causal_d);
  }

  // out = o / l (0 where every key was masked)
  for (int64_t i = 0; i < bq; ++i) {
    const float li = s.l[i];
    const V inv = Simd::set1(li > 0.0f ? 1.0f / li : 0.0f);
    float* out = a.out + b * a.o_sb + h * a.o_sh + (i0 + i) * a.o_sl;
    const float* oi = s.o + i * EvP;
    int64_t e = 0;
    for (; e + W <= Ev; e += W) Simd::store(out + e, Simd::mul(Simd::load(oi + e), inv));
    if (e < Ev) Simd::store_n(out + e, Simd::mul(Simd::load(oi + e), inv), static_cast<int>(Ev - e));
  }
}

struct AlignedFree {
  void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
};

}  // namespace
}  // namespace LG_SDPA_NS

using namespace LG_SDPA_NS;

void LG_SDPA_TASKS_FN(const SdpaArgs& a, int64_t task_begin, int64_t task_end) {
  const int64_t BQ = (a.block_q + W - 1) / W * W;
  const int64_t EvP = (a.Ev + W - 1) / W * W;
  const int64_t n = BQ * (a.E + kBlockK + EvP + 4);
  std::unique_ptr<float[], AlignedFree> buf(static_cast<float*>(::operator new[](sizeof(float) * n,
                                                                                 std::align_val_t(64))));
  Scratch s;
  s.qt = buf.get();
  s.st = s.qt + BQ * a.E;
  s.o = s.st + BQ * kBlockK;
  s.m = s.o + BQ * EvP;
  s.l = s.m + BQ;
  s.alpha = s.l + BQ;
  s.lane_mask = s.alpha + BQ;

  const int64_t nqb = (a.L + a.block_q - 1) / a.block_q;
  const int64_t group = a.Hq / a.Hkv;
  for (int64_t t = task_begin; t < task_end; ++t) {
    const int64_t bh = t / nqb, qb = t % nqb;
    const int64_t b = bh / a.Hq, h = bh % a.Hq;
    const int64_t i0 = qb * a.block_q;
    const int64_t bq = a.L - i0 < a.block_q ? a.L - i0 : a.block_q;
    switch ((bq + W - 1) / W) {
      case 1: run_task<1>(a, s, b, h, h / group, i0, bq); break;
      case 2: run_task<2>(a, s, b, h, h / group, i0, bq); break;
      case 3: run_task<3>(a, s, b, h, h / group, i0, bq); break;
      default: run_task<4>(a, s, b, h, h / group, i0, bq); break;
    }
  }
}

}  // namespace lg::kernels
