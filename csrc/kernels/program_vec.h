// The program interpreter's vector code, written once over vec.h's `V` and compiled three times: by
// fused_eltwise.cpp (portable, V = one float), fused_eltwise_avx2.cpp (V = __m256) and fused_eltwise_avx512.cpp
// (V = __m512). Each includes this file after defining LG_VEC_NS (vec_scalar / vec_avx2 / vec_avx512) and
// LG_VEC_ISA (0 / 1 / 2); the math is vec_math.h's, shared with the GEMM epilogues.
#include <cstdint>
#include <cstring>

#include "kernels/program.h"
#include "kernels/vec_math.h"

namespace lg::kernels::LG_VEC_NS {
namespace {

// ------------------------------------------------------------------------------------------------- loops
template <class Fn>
inline void map1(const float* a, float* d, int64_t n, Fn f) {
  int64_t i = 0;
  for (; i + V::N <= n; i += V::N) V::store(d + i, f(V::load(a + i)));
  if (i < n) V::store_n(d + i, f(V::load_n(a + i, n - i)), n - i);
}

template <class Fn>
inline void map2(const float* a, const float* b, float* d, int64_t n, int mode, float k, Fn f) {
  int64_t i = 0;
  const F kv = V::set1(k);
  if (mode == 0) {
    for (; i + V::N <= n; i += V::N) V::store(d + i, f(V::load(a + i), V::load(b + i)));
    if (i < n) V::store_n(d + i, f(V::load_n(a + i, n - i), V::load_n(b + i, n - i)), n - i);
  } else if (mode == 1) {
    for (; i + V::N <= n; i += V::N) V::store(d + i, f(V::load(a + i), kv));
    if (i < n) V::store_n(d + i, f(V::load_n(a + i, n - i), kv), n - i);
  } else {
    for (; i + V::N <= n; i += V::N) V::store(d + i, f(kv, V::load(a + i)));
    if (i < n) V::store_n(d + i, f(kv, V::load_n(a + i, n - i)), n - i);
  }
}

inline F bool_f(M m) { return V::select(m, V::set1(1.0f), V::zero()); }

inline float round_bf16(float x) {
  const uint32_t u = fbits(x);
  if (x != x) return bitsf(0x7fc00000u);
  return bitsf(((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) << 16);
}

inline uint16_t f32_to_f16(float f) {
  const uint32_t u = fbits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (a < 0x38800000u) {  // f16 subnormal (or zero): RNE of |f| * 2^24
    const float s = __builtin_rintf(bitsf(a) * 16777216.0f);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(s));
  }
  return static_cast<uint16_t>(sign | ((a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13));
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return bitsf(fbits(v) | sign);
  }
  if (e == 31) return bitsf(sign | 0x7f800000u | (m << 13));
  return bitsf(sign | ((e + 112u) << 23) | (m << 13));
}

void unary(int32_t fn, const float* a, float* d, int64_t n, const float* k) {
  switch (fn) {
    case U_NEG: map1(a, d, n, [](F x) { return vneg(x); }); break;
    case U_ABS: map1(a, d, n, [](F x) { return vabs(x); }); break;
    case U_EXP: map1(a, d, n, [](F x) { return vexp(x); }); break;
    case U_LOG: map1(a, d, n, [](F x) { return vlog(x); }); break;
    case U_SQRT: map1(a, d, n, [](F x) { return V::sqrt(x); }); break;
    case U_RSQRT: map1(a, d, n, [](F x) { return V::div(V::set1(1.0f), V::sqrt(x)); }); break;
    case U_ERF: map1(a, d, n, [](F x) { return verf(x); }); break;
    case U_TANH: map1(a, d, n, [](F x) { return vtanh(x); }); break;
    case U_SIGMOID: map1(a, d, n, [](F x) { return vsigmoid(x); }); break;
    case U_RELU: map1(a, d, n, [](F x) { return vrelu(x); }); break;
    case U_GELU: map1(a, d, n, [](F x) { return vgelu_erf_torch(x); }); break;
    case U_GELU_TANH: map1(a, d, n, [](F x) { return vgelu_tanh_torch(x); }); break;
    case U_SILU: map1(a, d, n, [](F x) { return vsilu(x); }); break;
    case U_SIN: for (int64_t i = 0; i < n; ++i) d[i] = __builtin_sinf(a[i]); break;
    case U_COS: for (int64_t i = 0; i < n; ++i) d[i] = __builtin_cosf(a[i]); break;
    case U_RECIP: map1(a, d, n, [](F x) { return V::div(V::set1(1.0f), x); }); break;
    case U_LNOT: map1(a, d, n, [](F x) { return bool_f(V::eq(x, V::zero())); }); break;
    case U_CLAMP: {
      const F lo = V::set1(k[0]), hi = V::set1(k[1]);
      // torch.clamp: NaN stays NaN; min > max gives max.
      map1(a, d, n, [lo, hi](F x) {
        const F y = V::select(V::lt(x, lo), lo, x);
        return V::select(V::gt(y, hi), hi, y);
      });
      break;
    }
    case U_TO_BF16: for (int64_t i = 0; i < n; ++i) d[i] = round_bf16(a[i]); break;
    case U_TO_F16: for (int64_t i = 0; i < n; ++i) d[i] = f16_to_f32(f32_to_f16(a[i])); break;
    case U_TO_BOOL: map1(a, d, n, [](F x) { return bool_f(V::ne(x, V::zero())); }); break;
    case U_TRUNC: map1(a, d, n, [](F x) { return V::trunc(x); }); break;
    default: map1(a, d, n, [](F x) { return x; }); break;  // U_COPY
  }
}

void binary(int32_t fn, const float* a, const float* b, float* d, int64_t n, int mode, float k) {
  switch (fn) {
    case B_ADD: map2(a, b, d, n, mode, k, [](F x, F y) { return V::add(x, y); }); break;
    case B_SUB: map2(a, b, d, n, mode, k, [](F x, F y) { return V::sub(x, y); }); break;
    case B_MUL: map2(a, b, d, n, mode, k, [](F x, F y) { return V::mul(x, y); }); break;
    case B_DIV: map2(a, b, d, n, mode, k, [](F x, F y) { return V::div(x, y); }); break;
    case B_MAX:
      map2(a, b, d, n, mode, k, [](F x, F y) {
        return V::select(V::mor(V::isnan(x), V::isnan(y)), V::add(x, y), V::max(x, y));
      });
      break;
    case B_MIN:
      map2(a, b, d, n, mode, k, [](F x, F y) {
        return V::select(V::mor(V::isnan(x), V::isnan(y)), V::add(x, y), V::min(x, y));
      });
      break;
    case B_EQ: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::eq(x, y)); }); break;
    case B_NE: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::ne(x, y)); }); break;
    case B_LT: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::lt(x, y)); }); break;
    case B_LE: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::le(x, y)); }); break;
    case B_GT: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::gt(x, y)); }); break;
    case B_GE: map2(a, b, d, n, mode, k, [](F x, F y) { return bool_f(V::ge(x, y)); }); break;
    case B_AND:
      map2(a, b, d, n, mode, k,
           [](F x, F y) { return bool_f(V::mand(V::ne(x, V::zero()), V::ne(y, V::zero()))); });
      break;
    case B_OR:
      map2(a, b, d, n, mode, k,
           [](F x, F y) { return bool_f(V::mor(V::ne(x, V::zero()), V::ne(y, V::zero()))); });
      break;
    default:  // B_POW (general exponents; the lowering turns 2, 3, 0.5, -1, ... into multiplies and roots)
      for (int64_t i = 0; i < n; ++i) {
        const float x = mode == 2 ? k : a[i], y = mode == 0 ? b[i] : mode == 1 ? k : a[i];
        d[i] = __builtin_powf(x, y);
      }
      break;
  }
}

void where(const float* c, const float* a, const float* b, float* d, int64_t n, int32_t fn, float ka, float kb) {
  const F kav = V::set1(ka), kbv = V::set1(kb);
  const bool sa = fn & 1, sb = fn & 2;
  int64_t i = 0;
  for (; i < n; i += V::N) {
    const int64_t m = imin(V::N, n - i);
    const bool full = m == V::N;
    const F cv = full ? V::load(c + i) : V::load_n(c + i, m);
    const F av = sa ? kav : full ? V::load(a + i) : V::load_n(a + i, m);
    const F bv = sb ? kbv : full ? V::load(b + i) : V::load_n(b + i, m);
    const F r = V::select(V::ne(cv, V::zero()), av, bv);
    if (full) V::store(d + i, r);
    else V::store_n(d + i, r, m);
  }
}

// Horizontal sum / max of a vector through memory (portable, and NaN-propagating for max).
inline float hsum(F v) { return V::reduce_add(v); }
inline float hmax(F v) {
  float t[V::N];
  V::store(t, v);
  float m = t[0];
  for (int i = 1; i < V::N; ++i) m = (t[i] > m || t[i] != t[i]) ? t[i] : m;
  return m;
}

inline float row_sum(const float* x, int64_t n) {
  F s0 = V::zero(), s1 = V::zero(), s2 = V::zero(), s3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * V::N <= n; i += 4 * V::N) {
    s0 = V::add(s0, V::load(x + i));
    s1 = V::add(s1, V::load(x + i + V::N));
    s2 = V::add(s2, V::load(x + i + 2 * V::N));
    s3 = V::add(s3, V::load(x + i + 3 * V::N));
  }
  for (; i + V::N <= n; i += V::N) s0 = V::add(s0, V::load(x + i));
  if (i < n) s1 = V::add(s1, V::load_n(x + i, n - i));
  return hsum(V::add(V::add(s0, s1), V::add(s2, s3)));
}

// sum((x - c)^2)
inline float row_sqdev(const float* x, int64_t n, float c) {
  const F cv = V::set1(c);
  F s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    const F d0 = V::sub(V::load(x + i), cv), d1 = V::sub(V::load(x + i + V::N), cv);
    s0 = V::fma(d0, d0, s0);
    s1 = V::fma(d1, d1, s1);
  }
  for (; i + V::N <= n; i += V::N) {
    const F d0 = V::sub(V::load(x + i), cv);
    s0 = V::fma(d0, d0, s0);
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += (x[i] - c) * (x[i] - c);
  return hsum(V::add(s0, s1)) + tail;
}

inline float row_sumsq(const float* x, int64_t n) {
  F s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    const F a = V::load(x + i), b = V::load(x + i + V::N);
    s0 = V::fma(a, a, s0);
    s1 = V::fma(b, b, s1);
  }
  for (; i + V::N <= n; i += V::N) {
    const F a = V::load(x + i);
    s0 = V::fma(a, a, s0);
  }
  if (i < n) {
    const F a = V::load_n(x + i, n - i);  // masked lanes load 0
    s1 = V::fma(a, a, s1);
  }
  return hsum(V::add(s0, s1));
}

// The row's maximum, NaNs skipped: softmax needs no NaN here (a NaN element makes exp(x - max), the sum and so
// every output of its row NaN, as in torch).
inline float row_max(const float* x, int64_t n) {
  F m0 = V::set1(-__builtin_inff()), m1 = m0;
  int64_t i = 0;
  for (; i + 2 * V::N <= n; i += 2 * V::N) {
    m0 = V::max(V::load(x + i), m0);  // the second operand when the first is NaN
    m1 = V::max(V::load(x + i + V::N), m1);
  }
  for (; i + V::N <= n; i += V::N) m0 = V::max(V::load(x + i), m0);
  float m = hmax(V::max(m0, m1));
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// One row op over `rows` rows of length `len` (src and dst may be the same buffer; weight/bias tiles hold the
// broadcast parameters row by row).
void row_op(int32_t fn, const float* src, const float* w, const float* b, float* dst, int64_t rows, int64_t len,
            float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = src + r * len;
    float* y = dst + r * len;
    const float* wr = w ? w + r * len : nullptr;
    const float* br = b ? b + r * len : nullptr;
    if (fn == R_LAYER_NORM || fn == R_RMS_NORM) {
      float mean = 0.0f, rstd;
      if (fn == R_LAYER_NORM) {
        mean = len ? row_sum(x, len) / static_cast<float>(len) : 0.0f;
        const float var = len ? row_sqdev(x, len, mean) / static_cast<float>(len) : 0.0f;
        rstd = 1.0f / __builtin_sqrtf(var + eps);
      } else {
        const float ms = len ? row_sumsq(x, len) / static_cast<float>(len) : 0.0f;
        rstd = 1.0f / __builtin_sqrtf(ms + eps);
      }
      const F mv = V::set1(mean), rv = V::set1(rstd);
      int64_t i = 0;
      auto one = [&](F xv, F wv, F bv) {
        F t = V::mul(V::sub(xv, mv), rv);
        if (wr) t = V::mul(t, wv);
        if (br) t = V::add(t, bv);
        return t;
      };
      for (; i + V::N <= len; i += V::N)
        V::store(y + i, one(V::load(x + i), wr ? V::load(wr + i) : mv, br ? V::load(br + i) : mv));
      if (i < len) {
        const int64_t m = len - i;
        V::store_n(y + i, one(V::load_n(x + i, m), wr ? V::load_n(wr + i, m) : mv, br ? V::load_n(br + i, m) : mv),
                   m);
      }
    } else {  // softmax / log-softmax
      const float mx = row_max(x, len);
      const F mv = V::set1(mx);
      F s0 = V::zero();
      int64_t i = 0;
      for (; i + V::N <= len; i += V::N) {
        const F e = vexp(V::sub(V::load(x + i), mv));
        if (fn == R_SOFTMAX) V::store(y + i, e);
        s0 = V::add(s0, e);
      }
      float sum = hsum(s0);
      if (i < len) {
        const int64_t m = len - i;
        const F e = vexp(V::sub(V::load_n(x + i, m), mv));
        float t[V::N];
        V::store(t, e);
        for (int64_t j = 0; j < m; ++j) sum += t[j];
        if (fn == R_SOFTMAX) V::store_n(y + i, e, m);
      }
      if (fn == R_SOFTMAX) {
        const F inv = V::set1(1.0f / sum);
        map1(y, y, len, [inv](F v) { return V::mul(v, inv); });
      } else {
        const F sh = V::set1(mx + __builtin_logf(sum));
        map1(x, y, len, [sh](F v) { return V::sub(v, sh); });
      }
    }
  }
}

// ---------------------------------------------------------------------------------------- loads and stores
inline int64_t itemsize(int32_t dt) {
  switch (dt) {
    case PD_F32: case PD_I32: return 4;
    case PD_F16: case PD_BF16: return 2;
    case PD_F64: case PD_I64: return 8;
    default: return 1;
  }
}

// out[i] = (float) src[(off + i * stride)] for i < n, src of dtype dt.
void convert_in(const char* base, int32_t dt, int64_t off, int64_t stride, int64_t n, float* out) {
  switch (dt) {
    case PD_F32: {
      const float* s = reinterpret_cast<const float*>(base) + off;
      if (stride == 1) {
        std::memcpy(out, s, static_cast<size_t>(n) * 4);
      } else if (stride == 0) {
        const F v = V::set1(*s);
        int64_t i = 0;
        for (; i + V::N <= n; i += V::N) V::store(out + i, v);
        for (; i < n; ++i) out[i] = *s;
      } else {
        for (int64_t i = 0; i < n; ++i) out[i] = s[i * stride];
      }
      break;
    }
    case PD_BF16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = bitsf(static_cast<uint32_t>(s[i * stride]) << 16);
      break;
    }
    case PD_F16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(s[i * stride]);
      break;
    }
    case PD_F64: {
      const double* s = reinterpret_cast<const double*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_I64: {
      const int64_t* s = reinterpret_cast<const int64_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_I32: {
      const int32_t* s = reinterpret_cast<const int32_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_I8: {
      const int8_t* s = reinterpret_cast<const int8_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
    case PD_BOOL: {
      const uint8_t* s = reinterpret_cast<const uint8_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = s[i * stride] ? 1.0f : 0.0f;
      break;
    }
    default: {  // PD_U8
      const uint8_t* s = reinterpret_cast<const uint8_t*>(base) + off;
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(s[i * stride]);
      break;
    }
  }
}

// dst (contiguous, dtype dt) <- src converted. Float-to-int stores truncate toward zero as torch's casts do.
void convert_out(const float* src, char* dst, int32_t dt, int64_t n) {
  switch (dt) {
    case PD_F32:
      if (reinterpret_cast<const void*>(src) != reinterpret_cast<void*>(dst))
        std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      break;
    case PD_BF16: {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint16_t>(fbits(round_bf16(src[i])) >> 16);
      break;
    }
    case PD_F16: {
      uint16_t* d = reinterpret_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      break;
    }
    case PD_F64: {
      double* d = reinterpret_cast<double*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<double>(src[i]);
      break;
    }
    case PD_I64: {
      int64_t* d = reinterpret_cast<int64_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int64_t>(src[i]);
      break;
    }
    case PD_I32: {
      int32_t* d = reinterpret_cast<int32_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int32_t>(src[i]);
      break;
    }
    case PD_I8: {
      int8_t* d = reinterpret_cast<int8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int8_t>(static_cast<int32_t>(src[i]));
      break;
    }
    case PD_BOOL: {
      uint8_t* d = reinterpret_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = src[i] != 0.0f;
      break;
    }
    default: {
      uint8_t* d = reinterpret_cast<uint8_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(static_cast<int32_t>(src[i]));
      break;
    }
  }
}

inline int64_t outer_offset(const ProgPlan& p, const ProgInput& in, int64_t row) {
  int64_t off = 0;
  for (int d = p.ndim - 2; d >= 0 && row > 0; --d) {
    const int64_t s = p.sizes[d];
    const int64_t q = row / s;
    off += (row - q * s) * in.strides[d];
    row = q;
  }
  return off;
}

// The tile [e0, e0 + n) of input `in` as f32: a pointer into the input itself when it is f32 and laid out like
// the tile, else converted/broadcast/gathered into buf.
const float* load_input(const ProgPlan& p, const ProgInput& in, int64_t e0, int64_t n, float* buf) {
  if (in.flat) {
    if (in.dtype == PD_F32) return reinterpret_cast<const float*>(in.ptr) + e0;
    convert_in(in.ptr, in.dtype, e0, 1, n, buf);
    return buf;
  }
  const int64_t inner = p.inner, s = in.strides[p.ndim - 1];
  int64_t e = e0, done = 0;
  while (done < n) {
    const int64_t row = e / inner, j = e - row * inner;
    const int64_t seg = imin(inner - j, n - done);
    const int64_t off = outer_offset(p, in, row) + j * s;
    if (seg == n && s == 1 && in.dtype == PD_F32) return reinterpret_cast<const float*>(in.ptr) + off;
    convert_in(in.ptr, in.dtype, off, s, seg, buf + done);
    done += seg;
    e += seg;
  }
  return buf;
}

// dst[0, n) = src[0, n) with non-temporal stores (no read-for-ownership of output lines that will not be
// re-read soon); used only for outputs much larger than the caches.
inline void stream_store(float* dst, const float* src, int64_t n) {
#if LG_VEC_ISA == 2
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 63u); ++i) dst[i] = src[i];
  for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#elif LG_VEC_ISA == 1
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<std::uintptr_t>(dst + i) & 31u); ++i) dst[i] = src[i];
  for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#else
  std::memcpy(dst, src, static_cast<size_t>(n) * 4);
#endif
}

inline void stream_fence() {
#if LG_VEC_ISA > 0
  _mm_sfence();
#endif
}

void run_tiles(const ProgPlan& p, int64_t t0, int64_t t1, float* scratch) {
  const float* regs[kProgMaxRegs] = {};
  for (int64_t t = t0; t < t1; ++t) {
    int64_t e0, n;
    if (p.tiles_per_row > 0) {
      const int64_t row = t / p.tiles_per_row, k = t - row * p.tiles_per_row;
      e0 = row * p.inner + k * p.tile;
      n = imin(p.tile, p.inner - k * p.tile);
    } else {
      e0 = t * p.rows_per_tile * p.inner;
      n = imin(p.rows_per_tile * p.inner, p.numel - e0);
    }
    for (int32_t pc = 0; pc < p.ncode; ++pc) {
      const Instr& ins = p.code[pc];
      float* own = scratch + static_cast<int64_t>(ins.dst) * p.tile;
      float* const bound = ins.bind >= 0 ? reinterpret_cast<float*>(p.out[ins.bind]) + e0 : nullptr;
      float* d = bound && !p.stream ? bound : own;
      switch (ins.op) {
        case OP_LOAD: regs[ins.dst] = load_input(p, p.in[ins.a], e0, n, own); break;
        case OP_STORE: {
          const int64_t isz = itemsize(p.out_dtype[ins.b]);
          if (p.stream && p.out_dtype[ins.b] == PD_F32)
            stream_store(reinterpret_cast<float*>(p.out[ins.b]) + e0, regs[ins.a], n);
          else
            convert_out(regs[ins.a], p.out[ins.b] + e0 * isz, p.out_dtype[ins.b], n);
          break;
        }
        case OP_UNARY: unary(ins.fn, regs[ins.a], d, n, p.consts + ins.k); regs[ins.dst] = d; break;
        case OP_BINARY: {
          const float k = ins.c == 0 ? 0.0f : p.consts[ins.k];
          binary(ins.fn, regs[ins.a], ins.c == 0 ? regs[ins.b] : nullptr, d, n, ins.c, k);
          regs[ins.dst] = d;
          break;
        }
        case OP_WHERE: {
          const float ka = (ins.fn & 1) ? p.consts[ins.k] : 0.0f, kb = (ins.fn & 2) ? p.consts[ins.k + 1] : 0.0f;
          where(regs[ins.a], (ins.fn & 1) ? nullptr : regs[ins.b], (ins.fn & 2) ? nullptr : regs[ins.c], d, n,
                ins.fn, ka, kb);
          regs[ins.dst] = d;
          break;
        }
        default:  // OP_ROW
          row_op(ins.fn, regs[ins.a], ins.b >= 0 ? regs[ins.b] : nullptr, ins.c >= 0 ? regs[ins.c] : nullptr, d,
                 n / p.inner, p.inner, p.consts[ins.k]);
          regs[ins.dst] = d;
          break;
      }
      if (bound && p.stream) stream_store(bound, d, n);
    }
  }
  if (p.stream) stream_fence();
}

// ---------------------------------------------------------------------------------------------- reductions
inline F red_step(int32_t fn, F acc, F v) {
  if (fn == RD_MAX) return V::select(V::isnan(v), v, V::max(v, acc));
  if (fn == RD_MIN) return V::select(V::isnan(v), v, V::min(v, acc));
  return V::add(acc, v);
}

void reduce_rows(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red, int64_t inner) {
  const bool is_max = fn == RD_MAX, is_min = fn == RD_MIN;
  if (inner == 1) {
    for (int64_t o = o0; o < o1; ++o) {
      const float* r = x + o * red;
      float v;
      if (is_max || is_min) {
        F acc = V::set1(r[0]);
        int64_t i = 0;
        for (; i + V::N <= red; i += V::N) acc = red_step(fn, acc, V::load(r + i));
        float t[V::N];
        V::store(t, acc);
        v = t[0];
        for (int j = 1; j < V::N; ++j) v = (t[j] != t[j] || (is_max ? t[j] > v : t[j] < v)) && v == v ? t[j] : v;
        for (; i < red; ++i) v = (r[i] != r[i] || (is_max ? r[i] > v : r[i] < v)) && v == v ? r[i] : v;
      } else {
        v = row_sum(r, red);
        if (fn == RD_MEAN) v /= static_cast<float>(red);
      }
      out[o] = v;
    }
    return;
  }
  for (int64_t o = o0; o < o1; ++o) {
    const float* base = x + o * red * inner;
    float* dst = out + o * inner;
    if (red == 0) {
      for (int64_t i = 0; i < inner; ++i) dst[i] = fn == RD_MEAN ? __builtin_nanf("") : 0.0f;
      continue;
    }
    std::memcpy(dst, base, static_cast<size_t>(inner) * 4);
    for (int64_t r = 1; r < red; ++r) {
      const float* src = base + r * inner;
      int64_t i = 0;
      for (; i + V::N <= inner; i += V::N) V::store(dst + i, red_step(fn, V::load(dst + i), V::load(src + i)));
      for (; i < inner; ++i) {
        const float a = dst[i], b = src[i];
        if (is_max) dst[i] = (b != b || b > a) && a == a ? b : a;
        else if (is_min) dst[i] = (b != b || b < a) && a == a ? b : a;
        else dst[i] = a + b;
      }
    }
    if (fn == RD_MEAN) {
      const float c = static_cast<float>(red);
      for (int64_t i = 0; i < inner; ++i) dst[i] /= c;
    }
  }
}

}  // namespace
}  // namespace lg::kernels::LG_VEC_NS
