// Python bindings of the conv / pooling family (see conv.h). Every argument is checked here (ValueError naming it);
// kernels run with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/bindings.h"
#include "common/check.h"
#include "common/view.h"
#include "kernels/conv.h"
#include "kernels/winograd.h"

namespace py = pybind11;
using py::arg;

namespace {

using lg::conv::Act;
using lg::conv::View4;
using Ints = std::vector<int64_t>;

View4 view4(std::uintptr_t ptr, const Ints& shape, const Ints& strides, const char* what) {
  if (shape.size() != 4 || strides.size() != 4)
    lg::detail::fail_check(what, "shape", "must have 4 dims (N, C, H, W) with 4 strides, got ", shape.size(), " and ",
                           strides.size());
  const lg::TensorView v = lg::make_view(ptr, "float32", shape, strides);
  View4 r;
  r.data = v.data<const float>();
  for (int i = 0; i < 4; ++i) {
    r.size[i] = shape[i];
    r.stride[i] = strides[i];
  }
  return r;
}

std::array<int64_t, 4> four(const Ints& v) {
  return {v[0], v[1], v[2], v[3]};
}

Ints conv_output_shape(const Ints& x_shape, int64_t OC, int64_t KH, int64_t KW, const lg::conv::Conv2dParams& p) {
  LG_CHECK(x_shape.size() == 4, x_shape, "must have 4 dims (N, C, H, W), got ", x_shape.size());
  using lg::conv::out_size;
  return {x_shape[0], OC, out_size(x_shape[2], p.pad_top + p.pad_bottom, p.dilation_h, KH, p.stride_h),
          out_size(x_shape[3], p.pad_left + p.pad_right, p.dilation_w, KW, p.stride_w)};
}

// The checked operands of one conv call: x, y (its shape must be the conv's output shape), bias (OC floats or 0)
// and the residual (y's shape, or 0).
struct ConvCall {
  View4 x, y, res;
  bool has_res = false;
  std::array<int64_t, 4> ys{};
  const float* bias = nullptr;
};

ConvCall check_call(const char* what, int64_t C, const Ints& expect, std::uintptr_t x_ptr, const Ints& x_shape,
                    const Ints& x_strides, std::uintptr_t y_ptr, const Ints& y_shape, const Ints& y_strides,
                    std::uintptr_t bias_ptr, std::uintptr_t res_ptr, const Ints& res_strides) {
  ConvCall c;
  c.x = view4(x_ptr, x_shape, x_strides, what);
  LG_CHECK(x_shape[1] == C, x_shape, "has ", x_shape[1], " channels, the weight expects ", C);
  LG_CHECK(y_shape == expect, y_shape, "must be (", expect[0], ", ", expect[1], ", ", expect[2], ", ", expect[3],
           ")");
  c.y = view4(y_ptr, y_shape, y_strides, what);
  if (bias_ptr) LG_CHECK_BUFFER(bias_ptr, float, expect[1]);  // 0: no bias
  if (res_ptr) c.res = view4(res_ptr, y_shape, res_strides, what);
  c.has_res = res_ptr != 0;
  c.ys = four(y_strides);
  c.bias = reinterpret_cast<const float*>(bias_ptr);
  return c;
}

// A conv2d with its packed weights and fixed attributes; run() takes the activations.
struct Conv2dF32 {
  std::shared_ptr<lg::conv::PackedConvWeight> w;
  lg::conv::Conv2dParams p;

  Ints output_shape(const Ints& x_shape) const { return conv_output_shape(x_shape, w->OC, w->KH, w->KW, p); }

  void run(std::uintptr_t x_ptr, const Ints& x_shape, const Ints& x_strides, std::uintptr_t y_ptr,
           const Ints& y_shape, const Ints& y_strides, std::uintptr_t bias_ptr, std::uintptr_t res_ptr,
           const Ints& res_strides) const {
    const ConvCall c = check_call("conv2d_f32", w->Cg * w->groups, output_shape(x_shape), x_ptr, x_shape, x_strides,
                                  y_ptr, y_shape, y_strides, bias_ptr, res_ptr, res_strides);
    lg::conv::conv2d_f32(c.x, *w, c.bias, c.has_res ? &c.res : nullptr, const_cast<float*>(c.y.data), c.ys.data(),
                         p);
  }
};

// An int8 conv2d (groups 1): int8 weights with per-channel scales packed once, the input quantised per call
// (calibrated scale and zero point, or per image at run time).
struct Conv2dU8S8 {
  std::shared_ptr<lg::gemm::PackedS8> w;
  int64_t OC = 0, C = 0, KH = 0, KW = 0;
  lg::conv::Conv2dParams p;
  lg::conv::QuantParams q;

  Ints output_shape(const Ints& x_shape) const { return conv_output_shape(x_shape, OC, KH, KW, p); }

  void run(std::uintptr_t x_ptr, const Ints& x_shape, const Ints& x_strides, std::uintptr_t y_ptr,
           const Ints& y_shape, const Ints& y_strides, std::uintptr_t bias_ptr, std::uintptr_t res_ptr,
           const Ints& res_strides) const {
    const ConvCall c = check_call("conv2d_u8s8", C, output_shape(x_shape), x_ptr, x_shape, x_strides, y_ptr, y_shape,
                                  y_strides, bias_ptr, res_ptr, res_strides);
    lg::conv::conv2d_u8s8(c.x, *w, KH, KW, c.bias, c.has_res ? &c.res : nullptr, const_cast<float*>(c.y.data),
                          c.ys.data(), p, q);
  }
};

// The same conv with bf16 operands (vdpbf16ps, fp32 accumulation): weights rounded once, input rounded per call.
struct Conv2dBf16 : Conv2dF32 {};

// A 3x3 stride-1 conv by Winograd F(tile x tile, 3x3) (tile 2 or 4), weights transformed and packed once (fp32 or
// bf16 operands).
struct Conv2dWinograd {
  std::shared_ptr<lg::conv::PackedWinograd> w;
  lg::conv::Conv2dParams p;

  Ints output_shape(const Ints& x_shape) const {
    LG_CHECK(x_shape.size() == 4, x_shape, "must have 4 dims (N, C, H, W), got ", x_shape.size());
    return {x_shape[0], w->OC, std::max<int64_t>(0, x_shape[2] + p.pad_top + p.pad_bottom - 2),
            std::max<int64_t>(0, x_shape[3] + p.pad_left + p.pad_right - 2)};
  }

  void run(std::uintptr_t x_ptr, const Ints& x_shape, const Ints& x_strides, std::uintptr_t y_ptr,
           const Ints& y_shape, const Ints& y_strides, std::uintptr_t bias_ptr, std::uintptr_t res_ptr,
           const Ints& res_strides) const {
    const ConvCall c = check_call("conv2d_winograd", w->C, output_shape(x_shape), x_ptr, x_shape, x_strides, y_ptr,
                                  y_shape, y_strides, bias_ptr, res_ptr, res_strides);
    lg::conv::winograd_conv2d_f32(c.x, *w, c.bias, c.has_res ? &c.res : nullptr, const_cast<float*>(c.y.data),
                                  c.ys.data(), p);
  }
};

lg::conv::Conv2dParams conv_params(const Ints& stride, const Ints& padding, const Ints& dilation, int act,
                                   bool residual_before_act) {
  LG_CHECK(stride.size() == 2 && stride[0] >= 1 && stride[1] >= 1, stride, "must be 2 ints >= 1");
  LG_CHECK(dilation.size() == 2 && dilation[0] >= 1 && dilation[1] >= 1, dilation, "must be 2 ints >= 1");
  LG_CHECK(padding.size() == 4 && padding[0] >= 0 && padding[1] >= 0 && padding[2] >= 0 && padding[3] >= 0, padding,
           "must be 4 ints >= 0 (top, bottom, left, right)");
  LG_CHECK(lg::gemm::valid_act(act), act, "is not an activation code of _C.Act: ", act);
  lg::conv::Conv2dParams p;
  p.stride_h = stride[0];
  p.stride_w = stride[1];
  p.pad_top = padding[0];
  p.pad_bottom = padding[1];
  p.pad_left = padding[2];
  p.pad_right = padding[3];
  p.dilation_h = dilation[0];
  p.dilation_w = dilation[1];
  p.act = static_cast<Act>(act);
  p.residual_before_act = residual_before_act;
  return p;
}

Conv2dWinograd make_winograd(std::uintptr_t w_ptr, const Ints& w_shape, const Ints& w_strides, const Ints& padding,
                             int act, bool residual_before_act, int tile, bool bf16) {
  LG_CHECK(w_shape.size() == 4 && w_strides.size() == 4 && w_shape[2] == 3 && w_shape[3] == 3, w_shape,
           "must be (OC, C, 3, 3) with 4 strides");
  lg::make_view(w_ptr, "float32", w_shape, w_strides);
  Conv2dWinograd c;
  c.p = conv_params({1, 1}, padding, {1, 1}, act, residual_before_act);
  const auto ws = four(w_strides);
  c.w = lg::conv::pack_winograd_weight(reinterpret_cast<const float*>(w_ptr), w_shape[0], w_shape[1], ws.data(),
                                       tile, bf16);
  return c;
}

Conv2dF32 make_conv(std::uintptr_t w_ptr, const Ints& w_shape, const Ints& w_strides, int64_t groups,
                    const Ints& stride, const Ints& padding, const Ints& dilation, int act, bool residual_before_act,
                    bool bf16 = false) {
  LG_CHECK(w_shape.size() == 4 && w_strides.size() == 4, w_shape, "must be (OC, C/groups, KH, KW) with 4 strides");
  lg::make_view(w_ptr, "float32", w_shape, w_strides);
  Conv2dF32 c;
  c.p = conv_params(stride, padding, dilation, act, residual_before_act);
  const auto ws = four(w_strides);
  if (bf16) {
    LG_CHECK(groups == 1, groups, "must be 1 for bf16 convolution, got ", groups);
    c.w = lg::conv::pack_conv2d_weight_bf16(reinterpret_cast<const float*>(w_ptr), w_shape[0], w_shape[1],
                                            w_shape[2], w_shape[3], ws.data());
  } else {
    c.w = lg::conv::pack_conv2d_weight_f32(reinterpret_cast<const float*>(w_ptr), w_shape[0], w_shape[1],
                                           w_shape[2], w_shape[3], ws.data(), groups);
  }
  return c;
}

Conv2dU8S8 make_conv_s8(std::uintptr_t w_ptr, const Ints& w_shape, const Ints& w_strides, std::uintptr_t scales_ptr,
                        const Ints& stride, const Ints& padding, const Ints& dilation, int act,
                        bool residual_before_act, bool dynamic, float scale, int32_t zero_point) {
  LG_CHECK(w_shape.size() == 4 && w_strides.size() == 4, w_shape, "must be (OC, C, KH, KW) with 4 strides");
  lg::make_view(w_ptr, "int8", w_shape, w_strides);
  LG_CHECK_BUFFER(scales_ptr, float, w_shape[0]);
  LG_CHECK(w_shape[1] * w_shape[2] * w_shape[3] <= lg::gemm::kMaxKInt8, w_shape, "has C * KH * KW > ",
           lg::gemm::kMaxKInt8, " (int32 sums of u8 x s8 products could overflow)");
  LG_CHECK(dynamic || (scale > 0.0f && std::isfinite(scale)), scale, "must be a finite number > 0, got ", scale);
  LG_CHECK(dynamic || (zero_point >= 0 && zero_point <= 255), zero_point, "must be in [0, 255], got ", zero_point);
  Conv2dU8S8 c;
  c.p = conv_params(stride, padding, dilation, act, residual_before_act);
  c.OC = w_shape[0], c.C = w_shape[1], c.KH = w_shape[2], c.KW = w_shape[3];
  const auto ws = four(w_strides);
  c.w = lg::conv::pack_conv2d_weight_s8(reinterpret_cast<const int8_t*>(w_ptr), c.OC, c.C, c.KH, c.KW, ws.data(),
                                        reinterpret_cast<const float*>(scales_ptr));
  c.q.dynamic = dynamic;
  c.q.scale = scale;
  c.q.zero_point = zero_point;
  return c;
}

// torch's pooling_output_shape
int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t pad, int64_t d, bool ceil_mode) {
  const int64_t num = in + 2 * pad - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad) --out;
  return out < 0 ? 0 : out;
}

lg::conv::Pool2dParams pool_params(const Ints& kernel, const Ints& stride, const Ints& padding, const Ints& dilation) {
  LG_CHECK(kernel.size() == 2 && kernel[0] >= 1 && kernel[1] >= 1, kernel, "must be 2 ints >= 1");
  LG_CHECK(stride.size() == 2 && stride[0] >= 1 && stride[1] >= 1, stride, "must be 2 ints >= 1");
  LG_CHECK(dilation.size() == 2 && dilation[0] >= 1 && dilation[1] >= 1, dilation, "must be 2 ints >= 1");
  LG_CHECK(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0 && 2 * padding[0] <= kernel[0] &&
               2 * padding[1] <= kernel[1],
           padding, "must be 2 ints >= 0 and at most half the kernel size");
  lg::conv::Pool2dParams p;
  p.kh = kernel[0];
  p.kw = kernel[1];
  p.sh = stride[0];
  p.sw = stride[1];
  p.ph = padding[0];
  p.pw = padding[1];
  p.dh = dilation[0];
  p.dw = dilation[1];
  return p;
}

void check_pool_out(const Ints& x_shape, const Ints& y_shape, int64_t oh, int64_t ow) {
  LG_CHECK(y_shape.size() == 4 && y_shape[0] == x_shape[0] && y_shape[1] == x_shape[1] && y_shape[2] == oh &&
               y_shape[3] == ow,
           y_shape, "must be (", x_shape[0], ", ", x_shape[1], ", ", oh, ", ", ow, ")");
}

void max_pool2d(std::uintptr_t x_ptr, const Ints& x_shape, const Ints& x_strides, std::uintptr_t y_ptr,
                const Ints& y_shape, const Ints& y_strides, const Ints& kernel, const Ints& stride,
                const Ints& padding, const Ints& dilation, bool ceil_mode) {
  const View4 x = view4(x_ptr, x_shape, x_strides, "max_pool2d_f32");
  const auto p = pool_params(kernel, stride, padding, dilation);
  check_pool_out(x_shape, y_shape, pool_out(x_shape[2], p.kh, p.sh, p.ph, p.dh, ceil_mode),
                 pool_out(x_shape[3], p.kw, p.sw, p.pw, p.dw, ceil_mode));
  const View4 y = view4(y_ptr, y_shape, y_strides, "max_pool2d_f32");
  const auto ys = four(y_shape), yst = four(y_strides);
  lg::conv::max_pool2d_f32(x, const_cast<float*>(y.data), ys.data(), yst.data(), p);
}

void avg_pool2d(std::uintptr_t x_ptr, const Ints& x_shape, const Ints& x_strides, std::uintptr_t y_ptr,
                const Ints& y_shape, const Ints& y_strides, const Ints& kernel, const Ints& stride,
                const Ints& padding, bool ceil_mode, bool count_include_pad, int64_t divisor_override) {
  const View4 x = view4(x_ptr, x_shape, x_strides, "avg_pool2d_f32");
  auto p = pool_params(kernel, stride, padding, {1, 1});
  LG_CHECK(divisor_override >= 0, divisor_override, "must be >= 0 (0: none), got ", divisor_override);
  p.count_include_pad = count_include_pad;
  p.divisor_override = divisor_override;
  check_pool_out(x_shape, y_shape, pool_out(x_shape[2], p.kh, p.sh, p.ph, 1, ceil_mode),
                 pool_out(x_shape[3], p.kw, p.sw, p.pw, 1, ceil_mode));
  const View4 y = view4(y_ptr, y_shape, y_strides, "avg_pool2d_f32");
  const auto ys = four(y_shape), yst = four(y_strides);
  lg::conv::avg_pool2d_f32(x, const_cast<float*>(y.data), ys.data(), yst.data(), p);
}

void adaptive_avg_pool2d(std::uintptr_t x_ptr, const Ints& x_shape, const Ints& x_strides, std::uintptr_t y_ptr,
                         const Ints& y_shape, const Ints& y_strides) {
  const View4 x = view4(x_ptr, x_shape, x_strides, "adaptive_avg_pool2d_f32");
  LG_CHECK(y_shape.size() == 4 && y_shape[0] == x_shape[0] && y_shape[1] == x_shape[1], y_shape,
           "must be (N, C, OH, OW) with the input's N and C");
  LG_CHECK((y_shape[2] > 0 && y_shape[3] > 0) || x_shape[0] * x_shape[1] == 0, y_shape,
           "output size must be > 0");
  const View4 y = view4(y_ptr, y_shape, y_strides, "adaptive_avg_pool2d_f32");
  const auto ys = four(y_shape), yst = four(y_strides);
  lg::conv::adaptive_avg_pool2d_f32(x, const_cast<float*>(y.data), ys.data(), yst.data());
}

}  // namespace

LG_BIND(conv) {
  py::class_<Conv2dF32>(m, "Conv2dF32",
                        "A conv2d with its weights packed once; run() computes act(conv(x) + bias (+ residual)) "
                        "(+ residual) into y (N, OC, OH, OW), any strides (channels_last is the fast layout).")
      .def(py::init([](std::uintptr_t w_ptr, const Ints& w_shape, const Ints& w_strides, int64_t groups,
                       const Ints& stride, const Ints& padding, const Ints& dilation, int act,
                       bool residual_before_act) {
             return make_conv(w_ptr, w_shape, w_strides, groups, stride, padding, dilation, act,
                              residual_before_act);
           }),
           arg("w_ptr"), arg("w_shape"), arg("w_strides"), arg("groups"), arg("stride"),
           arg("padding"), arg("dilation"), arg("act"), arg("residual_before_act"))
      .def("output_shape", &Conv2dF32::output_shape, arg("x_shape"))
      .def("run", &Conv2dF32::run, arg("x_ptr"), arg("x_shape"), arg("x_strides"), arg("y_ptr"), arg("y_shape"),
           arg("y_strides"), arg("bias_ptr"), arg("res_ptr"), arg("res_strides"),
           py::call_guard<py::gil_scoped_release>());
  py::class_<Conv2dU8S8>(m, "Conv2dU8S8",
                         "An int8 conv2d (groups 1): int8 (OC, C, KH, KW) weights with OC float32 scales packed "
                         "once; run() quantises x to u8 (calibrated scale / zero point, or per image when dynamic) "
                         "and computes act(conv + bias (+ residual)) (+ residual) like Conv2dF32.")
      .def(py::init(&make_conv_s8), arg("w_ptr"), arg("w_shape"), arg("w_strides"), arg("scales_ptr"), arg("stride"),
           arg("padding"), arg("dilation"), arg("act"), arg("residual_before_act"), arg("dynamic"), arg("scale"),
           arg("zero_point"))
      .def("output_shape", &Conv2dU8S8::output_shape, arg("x_shape"))
      .def("run", &Conv2dU8S8::run, arg("x_ptr"), arg("x_shape"), arg("x_strides"), arg("y_ptr"), arg("y_shape"),
           arg("y_strides"), arg("bias_ptr"), arg("res_ptr"), arg("res_strides"),
           py::call_guard<py::gil_scoped_release>());
  py::class_<Conv2dBf16, Conv2dF32>(m, "Conv2dBf16",
                                    "Conv2dF32 with bf16 operands (groups 1): weights rounded to bf16 once, the input "
                                    "per call, products accumulated in fp32 (vdpbf16ps; emulated below AVX-512).")
      .def(py::init([](std::uintptr_t w_ptr, const Ints& w_shape, const Ints& w_strides, const Ints& stride,
                       const Ints& padding, const Ints& dilation, int act, bool residual_before_act) {
             Conv2dBf16 c;
             static_cast<Conv2dF32&>(c) =
                 make_conv(w_ptr, w_shape, w_strides, 1, stride, padding, dilation, act, residual_before_act, true);
             return c;
           }),
           arg("w_ptr"), arg("w_shape"), arg("w_strides"), arg("stride"), arg("padding"), arg("dilation"), arg("act"),
           arg("residual_before_act"));
  py::class_<Conv2dWinograd>(m, "Conv2dWinograd",
                             "A 3x3 stride-1 conv2d by Winograd F(tile x tile, 3x3), tile 2 or 4, with the weights "
                             "transformed and packed once (bf16: GEMM operands rounded to bf16, fp32 accumulation); "
                             "run() like Conv2dF32.")
      .def(py::init(&make_winograd), arg("w_ptr"), arg("w_shape"), arg("w_strides"), arg("padding"), arg("act"),
           arg("residual_before_act"), arg("tile"), arg("bf16"))
      .def("output_shape", &Conv2dWinograd::output_shape, arg("x_shape"))
      .def("run", &Conv2dWinograd::run, arg("x_ptr"), arg("x_shape"), arg("x_strides"), arg("y_ptr"), arg("y_shape"),
           arg("y_strides"), arg("bias_ptr"), arg("res_ptr"), arg("res_strides"),
           py::call_guard<py::gil_scoped_release>());
  m.def("max_pool2d_f32", &max_pool2d, arg("x_ptr"), arg("x_shape"), arg("x_strides"), arg("y_ptr"),
        arg("y_shape"), arg("y_strides"), arg("kernel"), arg("stride"), arg("padding"), arg("dilation"),
        arg("ceil_mode"), py::call_guard<py::gil_scoped_release>(),
        "F.max_pool2d over a float32 (N, C, H, W) view into y (any strides; channels_last is vectorised).");
  m.def("avg_pool2d_f32", &avg_pool2d, arg("x_ptr"), arg("x_shape"), arg("x_strides"), arg("y_ptr"),
        arg("y_shape"), arg("y_strides"), arg("kernel"), arg("stride"), arg("padding"), arg("ceil_mode"),
        arg("count_include_pad"), arg("divisor_override"), py::call_guard<py::gil_scoped_release>(),
        "F.avg_pool2d (divisor_override 0 = none) over a float32 (N, C, H, W) view into y.");
  m.def("adaptive_avg_pool2d_f32", &adaptive_avg_pool2d, arg("x_ptr"), arg("x_shape"), arg("x_strides"),
        arg("y_ptr"), arg("y_shape"), arg("y_strides"), py::call_guard<py::gil_scoped_release>(),
        "F.adaptive_avg_pool2d over a float32 (N, C, H, W) view into y of shape (N, C, OH, OW).");
}
