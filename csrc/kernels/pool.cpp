// fp32 pooling (max, avg, adaptive avg) over (N, C, H, W) views with any strides. Channels-last inputs and
// outputs run per output pixel over channel vectors (pool_vec.h, for AVX2 and AVX-512); other layouts run per (n, c)
// plane.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "kernels/conv.h"

namespace lg::conv {
namespace {

using PixelMax = void(const float* const*, int64_t, int64_t, float*);
using PixelAvg = void(const float* const*, int64_t, int64_t, float, float*);

void max_pixel_scalar(const float* const* in, int64_t n_in, int64_t C, float* out) {
  for (int64_t c = 0; c < C; ++c) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n_in; ++i) {
      const float v = in[i][c];
      if (v > m || std::isnan(v)) m = v;
      if (std::isnan(m)) break;
    }
    out[c] = m;
  }
}

void avg_pixel_scalar(const float* const* in, int64_t n_in, int64_t C, float scale, float* out) {
  for (int64_t c = 0; c < C; ++c) {
    float s = 0.0f;
    for (int64_t i = 0; i < n_in; ++i) s += in[i][c];
    out[c] = s * scale;
  }
}

bool channels_last(const View4& x, const int64_t y_stride[4]) {
  return (x.stride[1] == 1 || x.size[1] == 1) && (y_stride[1] == 1 || x.size[1] == 1);
}

// The window of output (oh, ow): input rows [h0, h1) step dh, columns [w0, w1) step dw, clipped to the input.
struct Window {
  int64_t h0, h1, w0, w1;
};

// Runs fn(n, oh, ow, Window) over all output pixels (channels-last) or fn per (n, c) plane (planar).
template <class Fn>
void for_rows(int64_t N, int64_t OH, int64_t cost_per_row, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, cost_per_row));
  parallel_for(0, N * OH, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) fn(r / OH, r % OH);
  });
}

}  // namespace

void max_pool2d_f32(const View4& x, float* y, const int64_t ys[4], const int64_t yst[4], const Pool2dParams& p) {
  const int64_t N = x.size[0], C = x.size[1], H = x.size[2], W = x.size[3], OH = ys[2], OW = ys[3];
  if (N == 0 || C == 0 || OH == 0 || OW == 0) return;
  const int64_t* s = x.stride;
  if (channels_last(x, yst)) {
    PixelMax* kernel = pick_kernel<PixelMax>(active_isa(), max_pixel_scalar, LG_IF_AVX2(pool_max_pixel_f32_avx2),
                                             LG_IF_AVX512(pool_max_pixel_f32_avx512));
    for_rows(N, OH, OW * C * p.kh * p.kw, [&](int64_t n, int64_t oh) {
      std::vector<const float*> ptrs(static_cast<size_t>(p.kh * p.kw));
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t cnt = 0;
        for (int64_t i = 0; i < p.kh; ++i) {
          const int64_t ih = oh * p.sh - p.ph + i * p.dh;
          if (ih < 0 || ih >= H) continue;
          for (int64_t j = 0; j < p.kw; ++j) {
            const int64_t iw = ow * p.sw - p.pw + j * p.dw;
            if (iw >= 0 && iw < W) ptrs[cnt++] = x.data + n * s[0] + ih * s[2] + iw * s[3];
          }
        }
        kernel(ptrs.data(), cnt, C, y + n * yst[0] + oh * yst[2] + ow * yst[3]);
      }
    });
    return;
  }
  parallel_for(0, N * C, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, OH * OW * p.kh * p.kw)),
               [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const float* xp = x.data + n * s[0] + c * s[1];
      float* yp = y + n * yst[0] + c * yst[1];
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          float m = -std::numeric_limits<float>::infinity();
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t ih = oh * p.sh - p.ph + i * p.dh;
            if (ih < 0 || ih >= H) continue;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t iw = ow * p.sw - p.pw + j * p.dw;
              if (iw < 0 || iw >= W) continue;
              const float v = xp[ih * s[2] + iw * s[3]];
              if (v > m || std::isnan(v)) m = v;
            }
          }
          yp[oh * yst[2] + ow * yst[3]] = m;
        }
    }
  });
}

namespace {

// avg_pool2d's window and divisor for output (oh, ow), as torch computes them.
inline bool avg_window(const Pool2dParams& p, int64_t H, int64_t W, int64_t oh, int64_t ow, Window& win,
                       float& scale) {
  int64_t h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
  int64_t h1 = std::min(h0 + p.kh, H + p.ph), w1 = std::min(w0 + p.kw, W + p.pw);
  const int64_t pool_size = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, H);
  w1 = std::min(w1, W);
  win = {h0, h1, w0, w1};
  if (h0 >= h1 || w0 >= w1) return false;
  const int64_t div = p.divisor_override ? p.divisor_override
                      : p.count_include_pad ? pool_size
                                            : (h1 - h0) * (w1 - w0);
  scale = 1.0f / static_cast<float>(div);
  return true;
}

template <class WindowFn>
void avg_generic(const View4& x, float* y, const int64_t ys[4], const int64_t yst[4], int64_t max_window,
                 const WindowFn& window) {
  const int64_t N = x.size[0], C = x.size[1], OH = ys[2], OW = ys[3];
  if (N == 0 || C == 0 || OH == 0 || OW == 0) return;
  const int64_t* s = x.stride;
  if (channels_last(x, yst)) {
    PixelAvg* kernel = pick_kernel<PixelAvg>(active_isa(), nullptr, LG_IF_AVX2(pool_avg_pixel_f32_avx2),
                                             LG_IF_AVX512(pool_avg_pixel_f32_avx512));
    if (!kernel) kernel = avg_pixel_scalar;
    for_rows(N, OH, OW * C * max_window, [&](int64_t n, int64_t oh) {
      std::vector<const float*> ptrs(static_cast<size_t>(std::max<int64_t>(max_window, 1)));
      for (int64_t ow = 0; ow < OW; ++ow) {
        Window win;
        float scale = 0.0f;
        float* out = y + n * yst[0] + oh * yst[2] + ow * yst[3];
        int64_t cnt = 0;
        if (window(oh, ow, win, scale)) {
          for (int64_t ih = win.h0; ih < win.h1; ++ih)
            for (int64_t iw = win.w0; iw < win.w1; ++iw) ptrs[cnt++] = x.data + n * s[0] + ih * s[2] + iw * s[3];
        }
        kernel(ptrs.data(), cnt, C, scale, out);
      }
    });
    return;
  }
  parallel_for(0, N * C, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, OH * OW * max_window)),
               [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const float* xp = x.data + n * s[0] + c * s[1];
      float* yp = y + n * yst[0] + c * yst[1];
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          Window win;
          float scale = 0.0f, sum = 0.0f;
          if (window(oh, ow, win, scale)) {
            for (int64_t ih = win.h0; ih < win.h1; ++ih)
              for (int64_t iw = win.w0; iw < win.w1; ++iw) sum += xp[ih * s[2] + iw * s[3]];
          }
          yp[oh * yst[2] + ow * yst[3]] = sum * scale;
        }
    }
  });
}

}  // namespace

void avg_pool2d_f32(const View4& x, float* y, const int64_t ys[4], const int64_t yst[4], const Pool2dParams& p) {
  const int64_t H = x.size[2], W = x.size[3];
  avg_generic(x, y, ys, yst, p.kh * p.kw, [&](int64_t oh, int64_t ow, Window& win, float& scale) {
    return avg_window(p, H, W, oh, ow, win, scale);
  });
}

void adaptive_avg_pool2d_f32(const View4& x, float* y, const int64_t ys[4], const int64_t yst[4]) {
  const int64_t H = x.size[2], W = x.size[3], OH = ys[2], OW = ys[3];
  if (OH == 0 || OW == 0) return;
  // the largest region: ceil(H / OH) + 1 rows at most
  const int64_t max_window = (H / OH + 2) * (W / OW + 2);
  avg_generic(x, y, ys, yst, max_window, [&](int64_t oh, int64_t ow, Window& win, float& scale) {
    win.h0 = oh * H / OH;
    win.h1 = ((oh + 1) * H + OH - 1) / OH;
    win.w0 = ow * W / OW;
    win.w1 = ((ow + 1) * W + OW - 1) / OW;
    const int64_t cnt = (win.h1 - win.h0) * (win.w1 - win.w0);
    scale = cnt > 0 ? 1.0f / static_cast<float>(cnt) : 0.0f;
    return cnt > 0;
  });
}

}  // namespace lg::conv
