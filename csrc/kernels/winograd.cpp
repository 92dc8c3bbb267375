// Winograd F(2x2, 3x3) / F(4x4, 3x3) conv: weight transform and packing, the blocked driver (tiles, threads, ISA
// dispatch) and the portable transforms. See winograd.h for the scheme.
#include "kernels/winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"

namespace lg::conv {
namespace {

// The portable "vector": one lane.
struct V {
  static constexpr int W = 1;
  using reg = float;
  static reg zero() { return 0.0f; }
  static reg set1(float f) { return f; }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg max(reg a, reg b) { return a > b ? a : b; }  // max(0, NaN) = NaN like torch.relu
  static reg load(const float* p, int64_t) { return *p; }
  static void store(float* p, int64_t, reg v) { *p = v; }
  static void store_bf16(uint16_t* p, int64_t, reg v) { *p = f32_to_bf16(v); }
};

#include "kernels/winograd_body.inc"

void wino_in_f32_scalar(const WinoIn& a) {
  return a.alpha == 6 ? wino_in_body<V, 6, false>(a) : wino_in_body<V, 4, false>(a);
}
void wino_in_bf16_scalar(const WinoIn& a) {
  return a.alpha == 6 ? wino_in_body<V, 6, true>(a) : wino_in_body<V, 4, true>(a);
}
void wino_out_scalar(const WinoOut& a) { return a.alpha == 6 ? wino_out_body<V, 6>(a) : wino_out_body<V, 4>(a); }

using InFn = void(const WinoIn&);
using OutFn = void(const WinoOut&);

// Per-thread working buffers (kept between calls: no page faults on fresh allocations).
struct Scratch {
  void* v = nullptr;
  size_t v_bytes = 0;
  float* m = nullptr;
  size_t m_bytes = 0;
  ~Scratch() {
    std::free(v);
    std::free(m);
  }
  static void* grow(void* p, size_t& have, size_t need) {
    if (have >= need) return p;
    std::free(p);
    const size_t bytes = (need + 63) / 64 * 64;
    p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    have = bytes;
    return p;
  }
};

Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

}  // namespace

PackedWinograd::~PackedWinograd() { std::free(data); }

std::shared_ptr<PackedWinograd> pack_winograd_weight(const float* w, int64_t OC, int64_t C,
                                                     const int64_t w_strides[4], int m, bool bf16) {
  LG_CHECK(m == 2 || m == 4, m, "(the output tile) must be 2 or 4, got ", m);
  LG_CHECK(OC >= 0, OC, "must be >= 0, got ", OC);
  LG_CHECK(C >= 0, C, "must be >= 0, got ", C);
  for (int i = 0; i < 4; ++i) LG_CHECK(w_strides[i] >= 0, w_strides, "must be >= 0");
  auto p = std::make_shared<PackedWinograd>();
  p->OC = OC;
  p->C = C;
  p->Cp = bf16 ? (C + 1) / 2 * 2 : C;
  p->bf16 = bf16;
  p->alpha = m + 2;
  const int A = p->alpha;
  p->panels = (OC + kNR - 1) / kNR;
  const size_t words = static_cast<size_t>(std::max<int64_t>(A * A * p->panels * p->Cp * kNR / (bf16 ? 2 : 1), 1));
  const size_t bytes = (words * 4 + 63) / 64 * 64;
  p->data = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p->data) throw std::bad_alloc();
  std::memset(p->data, 0, bytes);
  static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static const double G4[6][3] = {{1.0 / 4, 0, 0},
                                  {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                  {0, 0, 1}};
  const double(*G)[3] = A == 6 ? G4 : G2;
  const int64_t* s = w_strides;
  for (int64_t oc = 0; oc < OC; ++oc) {
    const int64_t pn = oc / kNR, j = oc % kNR;
    for (int64_t c = 0; c < C; ++c) {
      double g[3][3], t[6][3];
      for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) g[a][b] = w[oc * s[0] + c * s[1] + a * s[2] + b * s[3]];
      for (int i = 0; i < A; ++i)
        for (int b = 0; b < 3; ++b) t[i][b] = G[i][0] * g[0][b] + G[i][1] * g[1][b] + G[i][2] * g[2][b];
      for (int i = 0; i < A; ++i)
        for (int k = 0; k < A; ++k) {
          const float u = static_cast<float>(t[i][0] * G[k][0] + t[i][1] * G[k][1] + t[i][2] * G[k][2]);
          const int64_t e = i * A + k;
          float* panel = p->data + (p->panel(e, pn) - p->data);  // the owned buffer, writable
          if (bf16) {
            reinterpret_cast<uint16_t*>(panel)[((c / 2) * kNR + j) * 2 + (c & 1)] = f32_to_bf16(u);
          } else {
            panel[c * kNR + j] = u;
          }
        }
    }
  }
  return p;
}

void winograd_conv2d_f32(const View4& x, const PackedWinograd& w, const float* bias, const View4* res, float* y,
                         const int64_t ys[4], const Conv2dParams& p) {
  const int64_t N = x.size[0], H = x.size[2], W = x.size[3];
  const int64_t OH = H + p.pad_top + p.pad_bottom - 2, OW = W + p.pad_left + p.pad_right - 2;
  const int64_t OC = w.OC, C = w.C, Cp = w.Cp, P = w.panels;
  if (N == 0 || OC == 0 || OH <= 0 || OW <= 0) return;
  NhwcInput in;
  to_nhwc(x, in);
  const int A = w.alpha, R = A - 2, E = A * A;
  const int64_t tiles_h = (OH + R - 1) / R, tiles_w = (OW + R - 1) / R, T = N * tiles_h * tiles_w;
  const bool fused_act = p.act == Act::None || p.act == Act::Relu;

  // Tile blocks sized so V and M stay within conv_l2_budget(); at least 2 register tiles of rows for weight reuse.
  const int64_t elem = w.bf16 ? 2 : 4;
  int64_t TB = std::clamp<int64_t>(conv_l2_budget() / (E * (Cp * elem + OC * 4)), 2 * kMaxMR, 256);
  TB = std::min(TB, T);
  // the GEMMs' time plus about a quarter for the transforms
  const double single_s = 2.5 * double(E) * double(T) * double(Cp) * double(OC) / (w.bf16 ? 1.7e11 : 0.95e11);
  const int64_t nt = guarded_threads(single_s);
  int64_t blocks = (T + TB - 1) / TB;
  if (blocks > nt) blocks = std::min(T, (blocks + nt - 1) / nt * nt);  // whole rounds of blocks per thread
  TB = (T + blocks - 1) / blocks;
  blocks = (T + TB - 1) / TB;
  const int64_t chunks = blocks >= 2 * nt ? 1 : std::min<int64_t>(P, (2 * nt + blocks - 1) / blocks);
  const int64_t items = blocks * chunks;

  const Isa isa = active_isa();
  InFn* in_fn;
  if (w.bf16) {
    in_fn = isa == Isa::avx512 ? LG_IF_AVX512(wino_in_bf16_avx512) : nullptr;
    if (!in_fn) in_fn = wino_in_bf16_scalar;
  } else {
    in_fn = pick_kernel<InFn>(isa, wino_in_f32_scalar, LG_IF_AVX2(wino_in_f32_avx2), LG_IF_AVX512(wino_in_f32_avx512));
  }
  OutFn* out_fn = pick_kernel<OutFn>(isa, wino_out_scalar, LG_IF_AVX2(wino_out_avx2), LG_IF_AVX512(wino_out_avx512));
  TileFn* tile = w.bf16 ? pick_tile_bf16() : pick_tile_f32();

  guarded_parallel_for(items, 1, static_cast<int>(nt), [&](int64_t ib, int64_t ie) {
    Scratch& sc = scratch();
    sc.v = Scratch::grow(sc.v, sc.v_bytes, static_cast<size_t>(E * TB * Cp * elem));
    sc.m = static_cast<float*>(Scratch::grow(sc.m, sc.m_bytes, static_cast<size_t>(E * TB * OC * 4)));
    char* vb = static_cast<char*>(sc.v);
    float* mb = sc.m;
    const float* rows[kMaxMR];
    float* outs[kMaxMR];
    int64_t cur = -1;
    for (int64_t it = ib; it < ie; ++it) {
      const int64_t blk = it / chunks, ch = it % chunks;
      const int64_t t0 = blk * TB, nb = std::min(TB, T - t0);
      if (blk != cur) {
        cur = blk;
        WinoIn a;
        a.alpha = A;
        a.C = C;
        a.Cp = Cp;
        a.v_es = TB * Cp;
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t t = t0 + i, n = t / (tiles_h * tiles_w), r = t % (tiles_h * tiles_w);
          const int64_t ih0 = R * (r / tiles_w) - p.pad_top, iw0 = R * (r % tiles_w) - p.pad_left;
          const float* xb = in.data + n * in.sN;
          for (int a_ = 0; a_ < A; ++a_)
            for (int b_ = 0; b_ < A; ++b_) {
              const int64_t ih = ih0 + a_, iw = iw0 + b_;
              a.px[a_ * A + b_] = ih >= 0 && ih < H && iw >= 0 && iw < W ? xb + ih * in.sH + iw * in.sW : nullptr;
            }
          a.v = vb + i * Cp * elem;
          in_fn(a);
        }
      }
      const int64_t p0 = ch * P / chunks, p1 = (ch + 1) * P / chunks;
      if (p0 == p1) continue;
      // E GEMMs: M[e] (nb x OC, columns of panels [p0, p1)) = V[e] (nb x Cp) . U[e]
      const int64_t groups = (nb + kMaxMR - 1) / kMaxMR;
      TileArgs ta;
      ta.rows = rows;
      ta.S = 1;
      ta.L = Cp;
      ta.out = outs;
      for (int64_t e = 0; e < E; ++e) {
        for (int64_t pn = p0; pn < p1; ++pn) {
          ta.w = w.panel(e, pn);
          ta.n = std::min<int64_t>(kNR, OC - pn * kNR);
          for (int64_t g = 0; g < groups; ++g) {
            const int64_t q0 = g * nb / groups, q1 = (g + 1) * nb / groups;
            const int mr = static_cast<int>(q1 - q0);
            for (int m = 0; m < mr; ++m) {
              rows[m] = reinterpret_cast<const float*>(vb + ((e * TB + q0 + m) * Cp) * elem);
              outs[m] = mb + (e * TB + q0 + m) * OC + pn * kNR;
            }
            tile(ta, mr);
          }
        }
      }
      // output transform + epilogue for channels [c0, c1)
      const int64_t c0 = p0 * kNR, c1 = std::min(OC, p1 * kNR);
      WinoOut o;
      o.alpha = A;
      o.m_es = TB * OC;
      o.n = c1 - c0;
      o.bias = bias ? bias + c0 : nullptr;
      o.out_cs = ys[1];
      o.res_cs = res ? res->stride[1] : 1;
      o.act = fused_act ? p.act : Act::None;
      o.residual_before_act = p.residual_before_act;
      const bool res_in_kernel = res && (fused_act || p.residual_before_act);
      for (int64_t i = 0; i < nb; ++i) {
        const int64_t t = t0 + i, n = t / (tiles_h * tiles_w), r = t % (tiles_h * tiles_w);
        const int64_t oh0 = R * (r / tiles_w), ow0 = R * (r % tiles_w);
        o.m = mb + i * OC + c0;
        for (int q = 0; q < R * R; ++q) {
          const int64_t oh = oh0 + q / R, ow = ow0 + q % R;
          const bool ok = oh < OH && ow < OW;
          o.out[q] = ok ? y + n * ys[0] + oh * ys[2] + ow * ys[3] + c0 * ys[1] : nullptr;
          o.res[q] = ok && res ? res->data + n * res->stride[0] + oh * res->stride[2] + ow * res->stride[3] +
                                     c0 * res->stride[1]
                               : nullptr;
        }
        const float* res_px[16];
        for (int q = 0; q < R * R; ++q) {
          res_px[q] = o.res[q];
          if (!res_in_kernel) o.res[q] = nullptr;
        }
        out_fn(o);
        if (fused_act) continue;
        for (int q = 0; q < R * R; ++q) {
          if (!o.out[q]) continue;
          for (int64_t c = 0; c < o.n; ++c) {
            float& v = o.out[q][c * ys[1]];
            v = gemm::act_scalar(v, p.act);
            if (res && !p.residual_before_act) v += res_px[q][c * o.res_cs];
          }
        }
      }
    }
  });
}

}  // namespace lg::conv
