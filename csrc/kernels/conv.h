// fp32 2-D convolution and pooling on CPU (declarations only: this header is included by the ISA units too).
//
// Convolution is an implicit GEMM over NHWC pixels: C[pixel, oc] = sum_k A[pixel, k] * W[k, oc] with
// k = (kh * KW + kw) * Cg + c. A is never materialised: for each pixel the micro-kernel gets one pointer per
// "segment" (a run of L consecutive k that is contiguous in memory: a whole (kw, c) row of the window when the
// input is dense NHWC and dilation_w == 1, one tap's channels otherwise). Taps in the padding point at a zero
// buffer; a window row cut by the left/right border is copied, zero-filled, into scratch. W is packed once
// (pack_conv2d_weight_f32) into panels of kNR output channels. The epilogue (bias, residual, activation) runs on
// the register tile, and the output is written with any strides (channel stride 1, i.e. channels_last, is fast).
// bf16 variant: the same driver over an NHWC bf16 copy of the input and bf16-pair panels (vdpbf16ps tile).
// 3x3 stride-1 convs can run by Winograd instead (winograd.h), reusing the register tile for its GEMMs.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/gemm.h"
#include "kernels/gemm_int8.h"

namespace lg::conv {

using Act = lg::gemm::Act;

inline constexpr int kNR = 32;    // output channels per packed weight panel
inline constexpr int kMaxMR = 14;  // pixels per register tile (AVX-512: 14 x 2 accumulators)

// Packed weights: groups x panels x K x kNR floats, panel columns past OCg zero-filled.
// bf16 (groups == 1 only): Cp = Cg rounded up to even (the input is converted to NHWC bf16 with Cp channels, the
// extra one zero), K = KH * KW * Cp, and each panel holds K / 2 rows of kNR (w[k][j], w[k+1][j]) bf16 pairs.
struct PackedConvWeight {
  int64_t OC = 0, Cg = 0, KH = 0, KW = 0, groups = 1;
  int64_t OCg = 0, K = 0, panels = 0;
  bool bf16 = false;
  int64_t Cp = 0;         // channels per window tap in the packed K (Cg, or even Cg for bf16)
  float* data = nullptr;  // 64-byte aligned, owned (bf16: uint32 pairs)
  // Depthwise (Cg == 1, OCg == 1): taps x OC floats (tap-major) for the channel-vector kernel.
  float* dw = nullptr;
  ~PackedConvWeight();
  const float* panel(int64_t g, int64_t p) const {
    return data + (g * panels + p) * (bf16 ? K / 2 : K) * kNR;
  }
};

// w is (OC, Cg, KH, KW) with element strides w_strides.
std::shared_ptr<PackedConvWeight> pack_conv2d_weight_f32(const float* w, int64_t OC, int64_t Cg, int64_t KH,
                                                         int64_t KW, const int64_t w_strides[4], int64_t groups);
// The bf16 packing (see PackedConvWeight); groups must be 1.
std::shared_ptr<PackedConvWeight> pack_conv2d_weight_bf16(const float* w, int64_t OC, int64_t Cg, int64_t KH,
                                                          int64_t KW, const int64_t w_strides[4]);

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  Act act = Act::None;
  bool residual_before_act = true;
};

// A 4-d strided f32 view, sizes and strides in (N, C, H, W) order, strides in elements.
struct View4 {
  const float* data = nullptr;
  int64_t size[4] = {0, 0, 0, 0};
  int64_t stride[4] = {0, 0, 0, 0};
};

// y = act(conv(x, w) + bias (+ residual)) (+ residual): x (N, C, H, W), y and residual (N, OC, OH, OW).
// Shapes must already be checked by the caller (conv_bind.cpp does). bf16-packed weights: the input is rounded to
// bf16 (NHWC copy), products accumulate in fp32 (vdpbf16ps; a portable emulation below AVX-512).
void conv2d_f32(const View4& x, const PackedConvWeight& w, const float* bias, const View4* residual,
                float* y, const int64_t y_stride[4], const Conv2dParams& p);

// ---- int8 convolution (int8-dynamic / int8-static; groups 1)
// x is quantised once into a u8 NHWC copy, per image: with the calibrated (scale, zero_point) when dynamic is false,
// else over the image's own range extended to include 0 (the dynamic GEMM's formula, per image instead of per row).
// Then gemm_u8s8_conv (gemm_int8.h) runs the implicit GEMM, gathering each output pixel's window while it packs A,
// with exact int32 sums dequantised as in the int8 GEMMs and the fp32 epilogue (bias, residual, activation).
// Weights are int8 (OC, C, KH, KW) with one scale per output channel, packed as (KH * KW * C) x OC.
std::shared_ptr<gemm::PackedS8> pack_conv2d_weight_s8(const int8_t* w, int64_t OC, int64_t C, int64_t KH, int64_t KW,
                                                      const int64_t w_strides[4], const float* scales);
struct QuantParams {
  bool dynamic = true;
  float scale = 1.0f;
  int32_t zero_point = 0;
};
// y = act(conv(x, w) + bias (+ residual)) (+ residual), y (N, OC, OH, OW) with any strides (dense NHWC is written
// in place, others through a copy); shapes checked by the caller (conv_bind.cpp).
void conv2d_u8s8(const View4& x, const gemm::PackedS8& w, int64_t KH, int64_t KW, const float* bias,
                 const View4* residual, float* y, const int64_t y_stride[4], const Conv2dParams& p,
                 const QuantParams& q);

// ---- pooling (N, C, H, W views with any strides; output written with its own strides)
struct Pool2dParams {
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool count_include_pad = true;
  int64_t divisor_override = 0;  // 0: none
};
void max_pool2d_f32(const View4& x, float* y, const int64_t y_size[4], const int64_t y_stride[4],
                    const Pool2dParams& p);
void avg_pool2d_f32(const View4& x, float* y, const int64_t y_size[4], const int64_t y_stride[4],
                    const Pool2dParams& p);
void adaptive_avg_pool2d_f32(const View4& x, float* y, const int64_t y_size[4], const int64_t y_stride[4]);

// ---- ISA micro-kernels (no checks; entered only through conv.cpp after active_isa() allowed them)

// One register tile: mr pixels x kNR output channels of one weight panel.
struct TileArgs {
  const float* const* rows = nullptr;  // S * mr pointers: rows[s * mr + m] = pixel m's run for segment s
  int64_t S = 0, L = 0;                // segments, floats per segment
  const float* w = nullptr;            // the panel: S * L rows of kNR floats
  float* const* out = nullptr;         // mr pointers: pixel m's first output channel of this panel
  int64_t out_cs = 1;                  // output channel stride
  const float* const* res = nullptr;   // mr pointers into the residual, or null
  int64_t res_cs = 1;
  const float* bias = nullptr;         // this panel's first bias value, or null
  int64_t n = kNR;                     // valid columns (<= kNR)
  Act act = Act::None;                 // only None / Relu are applied here; conv.cpp applies the others
  bool residual_before_act = true;
};
void conv_tile_f32_avx512(const TileArgs& t, int mr);
void conv_tile_f32_avx2(const TileArgs& t, int mr);
// bf16 operands: rows point at uint16 bf16 data (cast to const float*), L is even and counts bf16 values, w is the
// bf16 panel (L / 2 * S rows of kNR uint32 pairs). Same epilogue as the fp32 tile.
void conv_tile_bf16_avx512(const TileArgs& t, int mr);
void conv_tile_bf16_scalar(const TileArgs& t, int mr);
// n floats -> bf16 (round to nearest even).
void f32_to_bf16_avx512(const float* src, int64_t n, uint16_t* dst);

// Output length of a conv window over `in` (pad: both sides together); 0 when the window does not fit.
int64_t out_size(int64_t in, int64_t pad, int64_t dil, int64_t k, int64_t stride);

// ---- helpers shared with the Winograd driver (winograd.cpp)
uint16_t f32_to_bf16(float f);  // round to nearest even, NaN kept
using TileFn = void(const TileArgs&, int);
TileFn* pick_tile_f32();
TileFn* pick_tile_bf16();
// The input as a channels-last view: the caller's tensor when its channel stride is 1, else a dense NHWC copy in a
// per-thread scratch buffer (valid until the calling thread's next conv).
struct NhwcInput {
  const float* data;
  int64_t sN, sH, sW;
};
void to_nhwc(const View4& x, NhwcInput& in);

// Depthwise (channel multiplier 1) over one output row segment: y[ow, c] for ow in [0, nw), channels [0, C).
// taps[t] points at valid tap t's input for the first output pixel (taps in the padding are left out: they add
// nothing), in_step is the input pixel step between consecutive output pixels, and tap t's weights are
// w + widx[t] * C.
struct DwArgs {
  const float* const* taps = nullptr;  // T pointers
  const int64_t* widx = nullptr;        // T weight tap indices
  int64_t T = 0, in_step = 0, C = 0, nw = 0;
  const float* w = nullptr;             // taps x C, tap-major
  const float* bias = nullptr;
  float* out = nullptr;                 // output pixel 0, channel 0; channel stride 1
  int64_t out_step = 0;                 // output pixel step
  const float* res = nullptr;           // residual pixel 0 (channel stride 1) or null
  int64_t res_step = 0;
  Act act = Act::None;
  bool residual_before_act = true;
};
void conv_dw_row_f32_avx512(const DwArgs& a);
void conv_dw_row_f32_avx2(const DwArgs& a);

// Channels-last pooling of one output pixel over channels [0, C) (channel stride 1 in and out):
// max or sum over the given input pixel pointers, times scale (sum only).
void pool_max_pixel_f32_avx512(const float* const* in, int64_t n_in, int64_t C, float* out);
void pool_avg_pixel_f32_avx512(const float* const* in, int64_t n_in, int64_t C, float scale, float* out);
void pool_max_pixel_f32_avx2(const float* const* in, int64_t n_in, int64_t C, float* out);
void pool_avg_pixel_f32_avx2(const float* const* in, int64_t n_in, int64_t C, float scale, float* out);

}  // namespace lg::conv
