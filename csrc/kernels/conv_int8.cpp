// int8 convolution (see conv.h): the input quantised once to u8 NHWC, then the implicit GEMM on the int8 GEMM
// driver (gemm_u8s8_conv gathers each pixel's window while packing A, so no im2col buffer is materialised).
//
// Why on the GEMM driver and not the fp32 conv's own tile loop: the int8 micro-kernels, the shifted-row AVX2 path,
// the blocking and the dequantising epilogue are the int8 GEMM's; a conv is one more source of A rows for them.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/check.h"
#include "common/threadpool.h"
#include "kernels/conv.h"

namespace lg::conv {
namespace {

// Floats per parallel chunk of the quantisation passes (one pass over x is memory-bound: ~10 us per 64 K floats).
constexpr int64_t kQuantGrain = int64_t(1) << 15;

// Row (n, h) of the channels-last input as W * C consecutive floats: the input itself when its pixels are dense,
// else gathered into tmp.
const float* nhwc_row(const NhwcInput& in, int64_t n, int64_t h, int64_t W, int64_t C, std::vector<float>& tmp) {
  const float* src = in.data + n * in.sN + h * in.sH;
  if (in.sW == C) return src;
  tmp.resize(static_cast<size_t>(W * C));
  for (int64_t w = 0; w < W; ++w) std::memcpy(tmp.data() + w * C, src + w * in.sW, sizeof(float) * C);
  return tmp.data();
}

// dst = src for an (N, C, H, W) block of `size`, both with their own element strides (in that dim order).
void copy4(const float* src, const int64_t ss[4], float* dst, const int64_t ds[4], const int64_t size[4]) {
  for (int64_t n = 0; n < size[0]; ++n)
    for (int64_t c = 0; c < size[1]; ++c)
      for (int64_t h = 0; h < size[2]; ++h)
        for (int64_t w = 0; w < size[3]; ++w)
          dst[n * ds[0] + c * ds[1] + h * ds[2] + w * ds[3]] = src[n * ss[0] + c * ss[1] + h * ss[2] + w * ss[3]];
}

}  // namespace

std::shared_ptr<gemm::PackedS8> pack_conv2d_weight_s8(const int8_t* w, int64_t OC, int64_t C, int64_t KH, int64_t KW,
                                                      const int64_t s[4], const float* scales) {
  const int64_t K = KH * KW * C;
  std::vector<int8_t> kn(static_cast<size_t>(K * OC));  // (kh, kw, c) x oc
  for (int64_t o = 0; o < OC; ++o)
    for (int64_t kh = 0; kh < KH; ++kh)
      for (int64_t kw = 0; kw < KW; ++kw)
        for (int64_t c = 0; c < C; ++c)
          kn[static_cast<size_t>(((kh * KW + kw) * C + c) * OC + o)] = w[o * s[0] + c * s[1] + kh * s[2] + kw * s[3]];
  return gemm::pack_b_s8(kn.data(), K, OC, OC, 1, scales);
}

void conv2d_u8s8(const View4& x, const gemm::PackedS8& w, int64_t KH, int64_t KW, const float* bias,
                 const View4* residual, float* y, const int64_t ys[4], const Conv2dParams& p, const QuantParams& q) {
  const int64_t N = x.size[0], C = x.size[1], H = x.size[2], W = x.size[3];
  const int64_t OC = gemm::packed_s8_n(w);
  const int64_t OH = out_size(H, p.pad_top + p.pad_bottom, p.dilation_h, KH, p.stride_h);
  const int64_t OW = out_size(W, p.pad_left + p.pad_right, p.dilation_w, KW, p.stride_w);
  if (N == 0 || OC == 0 || OH == 0 || OW == 0) return;

  // 1. u8 NHWC copy of x with each image's (scale, zero point)
  NhwcInput in{};
  to_nhwc(x, in);
  std::vector<float> scale(static_cast<size_t>(N), q.scale);
  std::vector<int32_t> zero(static_cast<size_t>(N), q.zero_point);
  const int64_t rows = N * H, row_len = W * C;
  const int64_t grain = std::max<int64_t>(1, kQuantGrain / std::max<int64_t>(row_len, 1));
  if (q.dynamic) {
    std::vector<float> mn(static_cast<size_t>(rows)), mx(static_cast<size_t>(rows));
    parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
      std::vector<float> tmp;
      for (int64_t r = b; r < e; ++r)
        gemm::range_f32(nhwc_row(in, r / H, r % H, W, C, tmp), row_len, &mn[static_cast<size_t>(r)],
                        &mx[static_cast<size_t>(r)]);
    });
    for (int64_t n = 0; n < N; ++n) {
      float lo = 0.0f, hi = 0.0f;
      for (int64_t h = 0; h < H; ++h) {
        lo = std::min(lo, mn[static_cast<size_t>(n * H + h)]);
        hi = std::max(hi, mx[static_cast<size_t>(n * H + h)]);
      }
      gemm::u8_qparams(lo, hi, &scale[static_cast<size_t>(n)], &zero[static_cast<size_t>(n)]);
    }
  }
  std::vector<uint8_t> xq(static_cast<size_t>(rows * row_len));
  parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
    std::vector<float> tmp;
    for (int64_t r = b; r < e; ++r) {
      const auto n = static_cast<size_t>(r / H);
      gemm::quantize_u8(nhwc_row(in, r / H, r % H, W, C, tmp), row_len, scale[n], zero[n],
                        xq.data() + r * row_len);
    }
  });

  // 2. the implicit GEMM into dense NHWC (y itself when it is dense NHWC), the residual read as dense NHWC too
  const int64_t size[4] = {N, OC, OH, OW}, dense[4] = {OH * OW * OC, 1, OW * OC, OC};
  const bool y_dense = std::equal(ys, ys + 4, dense);
  std::vector<float> y_tmp, r_tmp;
  float* c = y;
  if (!y_dense) {
    y_tmp.resize(static_cast<size_t>(N * OH * OW * OC));
    c = y_tmp.data();
  }
  gemm::Epilogue ep;
  ep.bias = bias;
  ep.act = p.act;
  ep.residual_before_act = p.residual_before_act;
  if (residual) {
    if (std::equal(residual->stride, residual->stride + 4, dense)) {
      ep.residual = residual->data;
    } else {
      r_tmp.resize(static_cast<size_t>(N * OH * OW * OC));
      copy4(residual->data, residual->stride, r_tmp.data(), dense, size);
      ep.residual = r_tmp.data();
    }
    ep.ld_residual = OC;
  }
  gemm::ConvRowsU8 a;
  a.x = xq.data();
  a.N = N, a.H = H, a.W = W, a.C = C, a.OH = OH, a.OW = OW, a.KH = KH, a.KW = KW;
  a.stride_h = p.stride_h, a.stride_w = p.stride_w, a.pad_top = p.pad_top, a.pad_left = p.pad_left;
  a.dilation_h = p.dilation_h, a.dilation_w = p.dilation_w;
  a.scale = scale.data();
  a.zero = zero.data();
  gemm::gemm_u8s8_conv(a, w, c, OC, ep);
  if (!y_dense) copy4(c, dense, y, ys, size);
}

}  // namespace lg::conv
