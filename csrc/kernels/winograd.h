// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution for stride-1, dilation-1, groups-1 3x3 convs (declarations only:
// this header is included by the ISA units too).
//
//   Y = A^T [ (G g G^T) . (B^T d B) ] A   per m x m output tile, d its alpha x alpha input patch (alpha = m + 2), g one
//   3x3 filter.
//
// The weights are transformed (U = G g G^T, E = alpha^2 elements e) and packed once like conv's panels: for each e,
// a (Cin x Cout) matrix in panels of kNR columns (fp32, or bf16 k-pairs). A run takes blocks of TB output tiles:
// input transform -> V[e] (TB x Cin, NHWC patches read in place, padding as zeros) -> E GEMMs V[e] . U[e] with conv's
// register-tile kernel -> M[e] (TB x Cout) -> output transform with the conv epilogue (bias, residual, activation).
// F(4x4) does 36/144 of the direct multiply-adds (F(2x2): 16/36) at a larger rounding error (~1e-6 relative vs
// ~1e-7 in fp32), and its weights are 4x the direct ones: it pays off for the large maps with few channels.
// Work items are (tile block, output-channel chunk): few tiles (7x7, 14x14 maps) split the channels over threads.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/conv.h"

namespace lg::conv {

struct PackedWinograd {
  int64_t OC = 0, C = 0, Cp = 0, panels = 0;  // Cp: C, or C rounded up to even for bf16
  int alpha = 4;                              // input patch size: 4 for F(2x2, 3x3), 6 for F(4x4, 3x3)
  bool bf16 = false;
  float* data = nullptr;  // E x panels x Cp x kNR floats, or E x panels x Cp/2 x kNR uint32 bf16 pairs; owned
  ~PackedWinograd();
  const float* panel(int64_t e, int64_t p) const {
    return data + (e * panels + p) * (bf16 ? Cp / 2 : Cp) * kNR;
  }
};

// w is (OC, C, 3, 3) with element strides w_strides; m (the output tile) is 2 or 4.
std::shared_ptr<PackedWinograd> pack_winograd_weight(const float* w, int64_t OC, int64_t C,
                                                     const int64_t w_strides[4], int m, bool bf16);

// Same contract as conv2d_f32 for a 3x3 stride-1 dilation-1 conv (p's stride/dilation are ignored).
void winograd_conv2d_f32(const View4& x, const PackedWinograd& w, const float* bias, const View4* res, float* y,
                         const int64_t y_stride[4], const Conv2dParams& p);

// ---- ISA transforms (no checks; entered only through winograd.cpp)

// Input transform of one tile: V = B^T d B for channels [0, Cp) (channels in [C, Cp) are written as zero).
struct WinoIn {
  int alpha = 4;
  const float* px[36];  // the alpha x alpha patch's pixels (channel 0), row-major; null = padding (zeros)
  int64_t C = 0, Cp = 0;
  void* v = nullptr;  // element e's channels at v + e * v_es (float, or uint16 bf16)
  int64_t v_es = 0;
};
// Output transform of one tile with the epilogue: channels [0, n) of Y = A^T M A (+ bias, residual, activation).
struct WinoOut {
  int alpha = 4;
  const float* m = nullptr;  // element e's channels at m + e * m_es
  int64_t m_es = 0, n = 0;
  const float* bias = nullptr;  // channel 0's bias, or null
  float* out[16] = {};          // output pixel (a, b) at out[a * m + b] (channel 0); null = outside the map
  int64_t out_cs = 1;
  const float* res[16] = {};  // residual pixels like out, or all null
  int64_t res_cs = 1;
  Act act = Act::None;  // None / Relu only; winograd.cpp applies the others afterwards
  bool residual_before_act = true;
};
void wino_in_f32_avx512(const WinoIn& a);
void wino_in_bf16_avx512(const WinoIn& a);
void wino_out_avx512(const WinoOut& a);
void wino_in_f32_avx2(const WinoIn& a);
void wino_out_avx2(const WinoOut& a);

}  // namespace lg::conv
