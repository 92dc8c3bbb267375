// fp32 conv2d: weight packing, the implicit-GEMM driver (tiling, padding, threading, ISA dispatch) and the portable
// micro-kernels. See conv.h for the scheme.
#include "kernels/conv.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"

namespace lg::conv {
namespace {

float* alloc_floats(int64_t n) {
  const size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return static_cast<float*>(p);
}

// The portable tiles' epilogue: bias, residual (before or after ReLU), ReLU, strided store.
void store_tile_scalar(const TileArgs& t, int mr, const float (*acc)[kNR]) {
  for (int m = 0; m < mr; ++m) {
    for (int64_t j = 0; j < t.n; ++j) {
      float v = acc[m][j] + (t.bias ? t.bias[j] : 0.0f);
      const float r = t.res ? t.res[m][j * t.res_cs] : 0.0f;
      if (t.res && t.residual_before_act) v += r;
      if (t.act == Act::Relu) v = v < 0.0f ? 0.0f : v;
      if (t.res && !t.residual_before_act) v += r;
      t.out[m][j * t.out_cs] = v;
    }
  }
}

void tile_scalar(const TileArgs& t, int mr) {
  float acc[kMaxMR][kNR];
  for (int m = 0; m < mr; ++m)
    for (int j = 0; j < kNR; ++j) acc[m][j] = 0.0f;
  const float* wp = t.w;
  for (int64_t s = 0; s < t.S; ++s) {
    for (int64_t k = 0; k < t.L; ++k, wp += kNR) {
      for (int m = 0; m < mr; ++m) {
        const float a = t.rows[s * mr + m][k];
        for (int j = 0; j < kNR; ++j) acc[m][j] += a * wp[j];
      }
    }
  }
  store_tile_scalar(t, mr, acc);
}

void dw_row_scalar(const DwArgs& a) {
  for (int64_t ow = 0; ow < a.nw; ++ow) {
    float* out = a.out + ow * a.out_step;
    for (int64_t c = 0; c < a.C; ++c) out[c] = a.bias ? a.bias[c] : 0.0f;
    for (int64_t t = 0; t < a.T; ++t) {
      const float* in = a.taps[t] + ow * a.in_step;
      const float* w = a.w + a.widx[t] * a.C;
      for (int64_t c = 0; c < a.C; ++c) out[c] += in[c] * w[c];
    }
    const float* res = a.res ? a.res + ow * a.res_step : nullptr;
    for (int64_t c = 0; c < a.C; ++c) {
      float v = out[c];
      if (res && a.residual_before_act) v += res[c];
      if (a.act == Act::Relu) v = v < 0.0f ? 0.0f : v;
      if (res && !a.residual_before_act) v += res[c];
      out[c] = v;
    }
  }
}

using DwFn = void(const DwArgs&);

// The NHWC copy's buffer, kept per calling thread between calls (no page faults on a fresh allocation each time).
std::vector<float>& nhwc_scratch() {
  static thread_local std::vector<float> buf;
  return buf;
}

}  // namespace

void to_nhwc(const View4& x, NhwcInput& in) {
  const int64_t N = x.size[0], C = x.size[1], H = x.size[2], W = x.size[3];
  if (x.stride[1] == 1 || C == 1) {
    in.data = x.data;
    in.sN = x.stride[0];
    in.sH = x.stride[2];
    in.sW = x.stride[3];
    return;
  }
  std::vector<float>& buf = nhwc_scratch();
  if (buf.size() < static_cast<size_t>(N * H * W * C)) buf.resize(static_cast<size_t>(N * H * W * C));
  float* dst = buf.data();
  const int64_t* s = x.stride;
  parallel_for(0, N * H, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, W * C)), [&](int64_t b, int64_t e) {
    for (int64_t nh = b; nh < e; ++nh) {
      const int64_t n = nh / H, h = nh % H;
      float* d = dst + nh * W * C;
      const float* src = x.data + n * s[0] + h * s[2];
      // channel-outer so the reads stream along w (NCHW inputs have s[3] == 1)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t w = 0; w < W; ++w) d[w * C + c] = src[c * s[1] + w * s[3]];
    }
  });
  in.data = dst;
  in.sN = H * W * C;
  in.sH = W * C;
  in.sW = C;
}

int64_t out_size(int64_t in, int64_t pad, int64_t dil, int64_t k, int64_t stride) {
  const int64_t span = in + pad - dil * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

namespace {

void conv_depthwise(const NhwcInput& in, const View4& x, const PackedConvWeight& w, const float* bias,
                    const View4* res, float* y, const int64_t ys[4], const Conv2dParams& p, int64_t OH,
                    int64_t OW) {
  const int64_t N = x.size[0], C = x.size[1], H = x.size[2], W = x.size[3];
  const int64_t KH = w.KH, KW = w.KW;
  DwFn* kernel = pick_kernel<DwFn>(active_isa(), dw_row_scalar, LG_IF_AVX2(conv_dw_row_f32_avx2),
                                   LG_IF_AVX512(conv_dw_row_f32_avx512));
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, OW * C * KH * KW));
  const double single_s = 2.0 * double(N * OH * OW) * double(C * KH * KW) / 3e10;
  guarded_parallel_for(N * OH, grain, guarded_threads(single_s), [&](int64_t b, int64_t e) {
    std::vector<const float*> taps(static_cast<size_t>(KH * KW));
    std::vector<int64_t> widx(static_cast<size_t>(KH * KW));
    for (int64_t row = b; row < e; ++row) {
      const int64_t n = row / OH, oh = row % OH;
      const float* xb = in.data + n * in.sN;
      // output columns whose whole window is inside in W: [ow_lo, ow_hi)
      auto col_taps = [&](int64_t ow, bool all_kw) {
        int64_t T = 0;
        for (int64_t kh = 0; kh < KH; ++kh) {
          const int64_t ih = oh * p.stride_h - p.pad_top + kh * p.dilation_h;
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < KW; ++kw) {
            const int64_t iw = ow * p.stride_w - p.pad_left + kw * p.dilation_w;
            if (!all_kw && (iw < 0 || iw >= W)) continue;
            taps[T] = xb + ih * in.sH + iw * in.sW;
            widx[T++] = kh * KW + kw;
          }
        }
        return T;
      };
      DwArgs a;
      a.taps = taps.data();
      a.widx = widx.data();
      a.in_step = p.stride_w * in.sW;
      a.C = C;
      a.w = w.dw;
      a.bias = bias;
      a.out_step = ys[3];
      a.res_step = res ? res->stride[3] : 0;
      a.act = p.act == Act::Relu ? Act::Relu : Act::None;
      a.residual_before_act = p.residual_before_act;
      auto run = [&](int64_t ow0, int64_t nw, bool interior) {
        a.T = col_taps(ow0, interior);
        a.nw = nw;
        a.out = y + n * ys[0] + oh * ys[2] + ow0 * ys[3];
        a.res = res ? res->data + n * res->stride[0] + oh * res->stride[2] + ow0 * res->stride[3] : nullptr;
        kernel(a);
      };
      int64_t ow = 0;
      while (ow < OW) {
        const int64_t iw0 = ow * p.stride_w - p.pad_left;
        const bool inside = iw0 >= 0 && iw0 + (KW - 1) * p.dilation_w < W;
        if (!inside) {
          run(ow, 1, false);
          ++ow;
          continue;
        }
        int64_t end = ow + 1;
        while (end < OW && end * p.stride_w - p.pad_left + (KW - 1) * p.dilation_w < W) ++end;
        run(ow, end - ow, true);
        ow = end;
      }
    }
  });
}

// Non-fused activations (anything but None/Relu) and residual-after-activation for them, applied to one tile.
void tile_post(const TileArgs& t, int mr, Act act, const float* const* res, int64_t res_cs, bool res_after) {
  for (int m = 0; m < mr; ++m) {
    for (int64_t j = 0; j < t.n; ++j) {
      float& v = t.out[m][j * t.out_cs];
      v = act_scalar(v, act);
      if (res_after) v += res[m][j * res_cs];
    }
  }
}

}  // namespace

PackedConvWeight::~PackedConvWeight() {
  std::free(data);
  std::free(dw);
}

std::shared_ptr<PackedConvWeight> pack_conv2d_weight_f32(const float* w, int64_t OC, int64_t Cg, int64_t KH,
                                                         int64_t KW, const int64_t w_strides[4], int64_t groups) {
  LG_CHECK(groups >= 1, groups, "must be >= 1, got ", groups);
  LG_CHECK(OC >= 0 && OC % groups == 0, OC, "must be a non-negative multiple of groups (", groups, "), got ", OC);
  LG_CHECK(Cg >= 0, Cg, "must be >= 0, got ", Cg);
  LG_CHECK(KH >= 1 && KW >= 1, KH, "kernel size must be >= 1, got ", KH, "x", KW);
  for (int i = 0; i < 4; ++i) LG_CHECK(w_strides[i] >= 0, w_strides, "must be >= 0");
  auto p = std::make_shared<PackedConvWeight>();
  p->OC = OC;
  p->Cg = Cg;
  p->KH = KH;
  p->KW = KW;
  p->groups = groups;
  p->OCg = OC / groups;
  p->K = KH * KW * Cg;
  p->Cp = Cg;
  p->panels = (p->OCg + kNR - 1) / kNR;
  p->data = alloc_floats(groups * p->panels * p->K * kNR);
  const int64_t* s = w_strides;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t pn = 0; pn < p->panels; ++pn) {
      float* dst = p->data + (g * p->panels + pn) * p->K * kNR;
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw)
          for (int64_t c = 0; c < Cg; ++c) {
            float* row = dst + ((kh * KW + kw) * Cg + c) * kNR;
            for (int64_t j = 0; j < kNR && pn * kNR + j < p->OCg; ++j) {
              const int64_t oc = g * p->OCg + pn * kNR + j;
              row[j] = w[oc * s[0] + c * s[1] + kh * s[2] + kw * s[3]];
            }
          }
    }
  }
  if (Cg == 1 && p->OCg == 1) {
    p->dw = alloc_floats(KH * KW * OC);
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) p->dw[(kh * KW + kw) * OC + oc] = w[oc * s[0] + kh * s[2] + kw * s[3]];
  }
  return p;
}

namespace {

template <class T>
struct NhwcT {
  const T* data;
  int64_t sN, sH, sW;
};

// The implicit GEMM over NHWC input elements T (float, or uint16 bf16 with the tile kernel to match).
template <class T>
void conv_gemm(const NhwcT<T>& in, const View4& x, const PackedConvWeight& w, const float* bias, const View4* res,
               float* y, const int64_t ys[4], const Conv2dParams& p, int64_t OH, int64_t OW, TileFn* kernel) {
  const int64_t N = x.size[0], H = x.size[2], W = x.size[3];
  const int64_t KH = w.KH, KW = w.KW, G = w.groups, Cg = w.Cg, OCg = w.OCg, Cp = w.Cp;
  const bool fused_act = p.act == Act::None || p.act == Act::Relu;
  // segments: a whole window row (kw, c) when it is contiguous, else one tap's channels
  const bool wide = G == 1 && p.dilation_w == 1 && (in.sW == Cp || KW == 1);
  const int64_t S = wide ? KH : KH * KW, L = wide ? KW * Cp : Cp;
  std::vector<T> zeros(static_cast<size_t>(std::max<int64_t>(L, 1)), T(0));
  // offset of each segment from the window's top-left input pixel
  std::vector<int64_t> seg_off(static_cast<size_t>(S));
  for (int64_t kh = 0, s = 0; kh < KH; ++kh)
    for (int64_t kw = 0; kw < (wide ? 1 : KW); ++kw)
      seg_off[static_cast<size_t>(s++)] = kh * p.dilation_h * in.sH + kw * p.dilation_w * in.sW;
  const int64_t sh = p.stride_h, sw = p.stride_w, pt = p.pad_top, pl = p.pad_left;
  const int64_t h_span = (KH - 1) * p.dilation_h, w_span = (KW - 1) * p.dilation_w;

  const int64_t M = N * OH * OW;
  const int64_t tiles = (M + kMaxMR - 1) / kMaxMR;
  const int64_t P = w.panels;
  const int64_t items = G * tiles * P;
  // Weights that do not fit next to the activations in L2 (conv_l2_budget) go panel-major (each thread streams its
  // panels once); otherwise tile-major (a tile's rows stay in L1 while every panel passes over them).
  const bool panel_major = G * P * w.K * kNR * int64_t(sizeof(T)) > conv_l2_budget();
  const int64_t item_fmas = std::max<int64_t>(1, kMaxMR * w.K * kNR);
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / item_fmas);

  const double flops = 2.0 * double(M) * double(w.OC) * double(w.K);
  const double w_bytes = double(G * P * w.K * kNR) * double(sizeof(T));
  const double single_s = std::max(flops / (sizeof(T) == 2 ? 1.8e11 : 0.95e11), w_bytes / 4e10);
  guarded_parallel_for(items, grain, guarded_threads(single_s), [&](int64_t b, int64_t e) {
    std::vector<const T*> rows(static_cast<size_t>(S * kMaxMR));
    std::vector<T> border;  // zero-filled copies of window rows cut by the left/right edge
    std::vector<std::pair<int64_t, size_t>> fixups;  // (rows index, offset into border)
    float* out_pix[kMaxMR];
    const float* res_pix[kMaxMR];
    float* out[kMaxMR];
    const float* resp[kMaxMR];
    int64_t cur_g = -1, cur_t = -1;
    int mr = 0;
    const T** R = rows.data();
    for (int64_t it = b; it < e; ++it) {
      int64_t g, t, pn;
      if (panel_major) {
        t = it % tiles;
        pn = (it / tiles) % P;
        g = it / (tiles * P);
      } else {
        pn = it % P;
        t = (it / P) % tiles;
        g = it / (tiles * P);
      }
      if (g != cur_g || t != cur_t) {
        cur_g = g;
        cur_t = t;
        const int64_t q0 = t * M / tiles, q1 = (t + 1) * M / tiles;
        mr = static_cast<int>(q1 - q0);
        size_t used = 0;
        fixups.clear();
        int64_t n = q0 / (OH * OW), oh = (q0 / OW) % OH, ow = q0 % OW - 1;
        for (int m = 0; m < mr; ++m) {
          if (++ow == OW) {  // next pixel in (n, oh, ow) order
            ow = 0;
            if (++oh == OH) {
              oh = 0;
              ++n;
            }
          }
          const T* xb = in.data + n * in.sN + g * Cg;
          const int64_t ih0 = oh * sh - pt, iw0 = ow * sw - pl;
          const bool w_inside = iw0 >= 0 && iw0 + w_span < W;
          out_pix[m] = y + n * ys[0] + oh * ys[2] + ow * ys[3];
          res_pix[m] = res ? res->data + n * res->stride[0] + oh * res->stride[2] + ow * res->stride[3] : nullptr;
          if (w_inside && ih0 >= 0 && ih0 + h_span < H) {  // the whole window is inside: no checks
            const T* base = xb + ih0 * in.sH + iw0 * in.sW;
            for (int64_t s = 0; s < S; ++s) R[s * mr + m] = base + seg_off[s];
            continue;
          }
          for (int64_t kh = 0; kh < KH; ++kh) {
            const int64_t ih = ih0 + kh * p.dilation_h;
            const bool h_ok = ih >= 0 && ih < H;
            if (wide) {
              const T* src;
              if (!h_ok) {
                src = zeros.data();
              } else if (w_inside) {
                src = xb + ih * in.sH + iw0 * in.sW;
              } else {
                if (border.size() < used + static_cast<size_t>(L)) border.resize(used + static_cast<size_t>(L));
                T* d = border.data() + used;
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t iw = iw0 + kw;
                  T* dk = d + kw * Cp;
                  if (iw >= 0 && iw < W) {
                    const T* src_k = xb + ih * in.sH + iw * in.sW;
                    for (int64_t c = 0; c < Cp; ++c) dk[c] = src_k[c];
                  } else {
                    for (int64_t c = 0; c < Cp; ++c) dk[c] = T(0);
                  }
                }
                fixups.emplace_back(kh * mr + m, used);  // pointer set below: border may still move
                src = nullptr;
                used += static_cast<size_t>(L);
              }
              rows[kh * mr + m] = src;
            } else {
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t iw = iw0 + kw * p.dilation_w;
                rows[(kh * KW + kw) * mr + m] =
                    h_ok && iw >= 0 && iw < W ? xb + ih * in.sH + iw * in.sW : zeros.data();
              }
            }
          }
        }
        for (const auto& [idx, off] : fixups) rows[static_cast<size_t>(idx)] = border.data() + off;
      }
      const int64_t c0 = g * OCg + pn * kNR;
      for (int m = 0; m < mr; ++m) {
        out[m] = out_pix[m] + c0 * ys[1];
        resp[m] = res ? res_pix[m] + c0 * res->stride[1] : nullptr;
      }
      TileArgs a;
      a.rows = reinterpret_cast<const float* const*>(rows.data());
      a.S = S;
      a.L = L;
      a.w = w.panel(g, pn);
      a.out = out;
      a.out_cs = ys[1];
      a.res = res && (fused_act || p.residual_before_act) ? resp : nullptr;
      a.res_cs = res ? res->stride[1] : 1;
      a.bias = bias ? bias + c0 : nullptr;
      a.n = std::min<int64_t>(kNR, OCg - pn * kNR);
      a.act = fused_act ? p.act : Act::None;
      a.residual_before_act = p.residual_before_act;
      kernel(a, mr);
      if (!fused_act) tile_post(a, mr, p.act, resp, a.res_cs, res && !p.residual_before_act);
    }
  });
}

// The input as dense NHWC bf16 with Cp channels (the ones past C zero), in a per-thread scratch buffer.
NhwcT<uint16_t> to_nhwc_bf16(const NhwcInput& in, const View4& x, int64_t Cp) {
  static thread_local std::vector<uint16_t> buf;
  const int64_t N = x.size[0], C = x.size[1], H = x.size[2], W = x.size[3];
  const size_t need = static_cast<size_t>(N * H * W * Cp);
  if (buf.size() < need) buf.resize(need);
  uint16_t* dst = buf.data();
  using CvtFn = void(const float*, int64_t, uint16_t*);
  CvtFn* cvt = active_isa() == Isa::avx512 ? LG_IF_AVX512(f32_to_bf16_avx512) : nullptr;
  parallel_for(0, N * H, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, W * Cp)), [&](int64_t b, int64_t e) {
    for (int64_t nh = b; nh < e; ++nh) {
      const int64_t n = nh / H, h = nh % H;
      uint16_t* d = dst + nh * W * Cp;
      const float* src = in.data + n * in.sN + h * in.sH;
      if (cvt && in.sW == C && Cp == C) {
        cvt(src, W * C, d);
        continue;
      }
      for (int64_t wi = 0; wi < W; ++wi) {
        const float* sp = src + wi * in.sW;
        uint16_t* dp = d + wi * Cp;
        if (cvt) {
          cvt(sp, C, dp);
        } else {
          for (int64_t c = 0; c < C; ++c) dp[c] = f32_to_bf16(sp[c]);
        }
        for (int64_t c = C; c < Cp; ++c) dp[c] = 0;
      }
    }
  });
  return NhwcT<uint16_t>{dst, H * W * Cp, W * Cp, Cp};
}

}  // namespace

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

TileFn* pick_tile_f32() {
  return pick_kernel<TileFn>(active_isa(), tile_scalar, LG_IF_AVX2(conv_tile_f32_avx2),
                             LG_IF_AVX512(conv_tile_f32_avx512));
}

TileFn* pick_tile_bf16() {
  TileFn* k = avx512_bf16_active() ? LG_IF_AVX512(conv_tile_bf16_avx512) : nullptr;
  return k ? k : conv_tile_bf16_scalar;
}

// Portable emulation of the bf16 tile: the same rounded operands, products summed in fp32.
void conv_tile_bf16_scalar(const TileArgs& t, int mr) {
  auto f = [](uint32_t bits) {
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
  };
  float acc[kMaxMR][kNR];
  for (int m = 0; m < mr; ++m)
    for (int j = 0; j < kNR; ++j) acc[m][j] = 0.0f;
  const uint32_t* wp = reinterpret_cast<const uint32_t*>(t.w);
  for (int64_t s = 0; s < t.S; ++s) {
    for (int64_t k = 0; k < t.L; k += 2, wp += kNR) {
      for (int m = 0; m < mr; ++m) {
        const uint16_t* r = reinterpret_cast<const uint16_t*>(t.rows[s * mr + m]) + k;
        const float a0 = f(uint32_t(r[0]) << 16), a1 = f(uint32_t(r[1]) << 16);
        for (int j = 0; j < kNR; ++j) acc[m][j] += a0 * f(wp[j] << 16) + a1 * f(wp[j] & 0xffff0000u);
      }
    }
  }
  store_tile_scalar(t, mr, acc);
}

std::shared_ptr<PackedConvWeight> pack_conv2d_weight_bf16(const float* w, int64_t OC, int64_t Cg, int64_t KH,
                                                          int64_t KW, const int64_t w_strides[4]) {
  LG_CHECK(OC >= 0, OC, "must be >= 0, got ", OC);
  LG_CHECK(Cg >= 0, Cg, "must be >= 0, got ", Cg);
  LG_CHECK(KH >= 1 && KW >= 1, KH, "kernel size must be >= 1, got ", KH, "x", KW);
  for (int i = 0; i < 4; ++i) LG_CHECK(w_strides[i] >= 0, w_strides, "must be >= 0");
  auto p = std::make_shared<PackedConvWeight>();
  p->OC = p->OCg = OC;
  p->Cg = Cg;
  p->KH = KH;
  p->KW = KW;
  p->bf16 = true;
  p->Cp = (Cg + 1) / 2 * 2;
  p->K = KH * KW * p->Cp;
  p->panels = (OC + kNR - 1) / kNR;
  p->data = alloc_floats(p->panels * p->K / 2 * kNR);
  auto* d = reinterpret_cast<uint16_t*>(p->data);
  const int64_t* s = w_strides;
  for (int64_t pn = 0; pn < p->panels; ++pn)
    for (int64_t kh = 0; kh < KH; ++kh)
      for (int64_t kw = 0; kw < KW; ++kw)
        for (int64_t c = 0; c < Cg; ++c) {
          const int64_t k = (kh * KW + kw) * p->Cp + c;
          uint16_t* row = d + ((pn * p->K / 2 + k / 2) * kNR) * 2 + (k & 1);
          for (int64_t j = 0; j < kNR && pn * kNR + j < OC; ++j)
            row[2 * j] = f32_to_bf16(w[(pn * kNR + j) * s[0] + c * s[1] + kh * s[2] + kw * s[3]]);
        }
  return p;
}

void conv2d_f32(const View4& x, const PackedConvWeight& w, const float* bias, const View4* res, float* y,
                const int64_t ys[4], const Conv2dParams& p) {
  const int64_t N = x.size[0], C = x.size[1], H = x.size[2], W = x.size[3];
  const int64_t KH = w.KH, KW = w.KW, G = w.groups;
  const int64_t OH = out_size(H, p.pad_top + p.pad_bottom, p.dilation_h, KH, p.stride_h);
  const int64_t OW = out_size(W, p.pad_left + p.pad_right, p.dilation_w, KW, p.stride_w);
  if (N == 0 || w.OC == 0 || OH == 0 || OW == 0) return;
  NhwcInput in;
  to_nhwc(x, in);
  const bool fused_act = p.act == Act::None || p.act == Act::Relu;
  if (w.bf16) {
    conv_gemm<uint16_t>(to_nhwc_bf16(in, x, w.Cp), x, w, bias, res, y, ys, p, OH, OW, pick_tile_bf16());
    return;
  }
  if (w.dw && G == C && ys[1] == 1 && (!res || res->stride[1] == 1) && fused_act) {
    conv_depthwise(in, x, w, bias, res, y, ys, p, OH, OW);
    return;
  }
  conv_gemm<float>(NhwcT<float>{in.data, in.sN, in.sH, in.sW}, x, w, bias, res, y, ys, p, OH, OW, pick_tile_f32());
}

}  // namespace lg::conv
