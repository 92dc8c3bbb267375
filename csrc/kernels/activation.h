// The activations a GEMM or conv epilogue applies: one enum for every kernel family, exported to Python as _C.Act
// (the lowerings take their codes from there). Declarations and constants only: the ISA units include this too.
#pragma once

namespace lg::gemm {

enum class Act : int { None = 0, Relu = 1, GeluErf = 2, GeluTanh = 3, Silu = 4, Tanh = 5, Sigmoid = 6 };
inline constexpr int kNumActs = 7;
// The Python names (_C.Act members), by code.
inline constexpr const char* kActNames[kNumActs] = {"none", "relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid"};

inline constexpr bool valid_act(int code) { return code >= 0 && code < kNumActs; }
// The activations past ReLU need exp/erf (the vector kernels' slow path).
inline constexpr bool act_is_transcendental(int code) { return code >= static_cast<int>(Act::GeluErf); }

// The reference semantics (portable code, gemm.cpp): what every vector kernel's activation approximates.
float act_scalar(float v, Act act);

}  // namespace lg::gemm
