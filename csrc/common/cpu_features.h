// Run-time CPU feature detection and kernel dispatch. Kernels pick their ISA variant with active_isa(), never with
// compile-time macros alone: the base build is portable x86-64 and the *_avx2.cpp / *_avx512.cpp translation units
// are only entered after these checks pass.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/check.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define LG_X86_64 1
#else
#define LG_X86_64 0
#endif

// Which ISA translation units this build contains (set per target by CMake; 0 when the compiler lacks the flags
// or the target is not x86-64).
#ifndef LG_HAVE_AVX2_KERNELS
#define LG_HAVE_AVX2_KERNELS 0
#endif
#ifndef LG_HAVE_AVX512_KERNELS
#define LG_HAVE_AVX512_KERNELS 0
#endif

namespace lg {

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false;
};

inline bool env_flag_set(const char* name) {
  const char* v = std::getenv(name);
  return v && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

#if LG_X86_64
inline uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}
#endif

inline CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if LG_X86_64
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  const bool has_fma = c & (1u << 12);
  if (!osxsave) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = ymm_os && (b & (1u << 5));
  f.fma = ymm_os && has_fma;
  f.avx512f = zmm_os && (b & (1u << 16));
  f.avx512bw = f.avx512f && (b & (1u << 30));
  f.avx512vl = f.avx512f && (b & (1u << 31));
  f.avx512_vnni = f.avx512f && (c & (1u << 11));
  unsigned a1, b1, c1, d1;
  if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = f.avx512f && (a1 & (1u << 5));
#endif
  // LEPTON_DISABLE_AVX512=1 hides AVX-512 (so the AVX2 paths are exercised on AVX-512 machines too);
  // LEPTON_DISABLE_AVX2=1 hides AVX2 and everything above it (portable paths only).
  if (env_flag_set("LEPTON_DISABLE_AVX512") || env_flag_set("LEPTON_DISABLE_AVX2")) {
    f.avx512f = f.avx512bw = f.avx512vl = f.avx512_vnni = f.avx512_bf16 = false;
  }
  if (env_flag_set("LEPTON_DISABLE_AVX2")) f.avx2 = f.fma = false;
  return f;
}

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect_cpu_features();
  return f;
}

// The kernel variants, ordered: a kernel uses the highest one that the CPU supports, the build contains and the
// cap (set_max_isa) allows.
enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}

// The AVX-512 variants need F+BW+VL+VNNI+BF16 because their translation units are compiled with all of them.
inline Isa best_isa() {
  const CpuFeatures& f = cpu_features();
  if (LG_HAVE_AVX512_KERNELS && f.avx512f && f.avx512bw && f.avx512vl && f.avx512_vnni && f.avx512_bf16 && f.fma)
    return Isa::avx512;
  if (LG_HAVE_AVX2_KERNELS && f.avx2 && f.fma) return Isa::avx2;
  return Isa::scalar;
}

inline std::atomic<int>& isa_cap() {
  static std::atomic<int> cap{static_cast<int>(Isa::avx512)};
  return cap;
}

inline Isa active_isa() {
  const int best = static_cast<int>(best_isa()), cap = isa_cap().load(std::memory_order_relaxed);
  return static_cast<Isa>(best < cap ? best : cap);
}

// Caps dispatch at `name` ("avx512", "avx2" or "scalar"); capping never raises dispatch above what best_isa() allows.
inline void set_max_isa(const std::string& name) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (name == isa_name(isa)) {
      isa_cap().store(static_cast<int>(isa), std::memory_order_relaxed);
      return;
    }
  }
  detail::fail_check(__func__, "name", "must be one of 'avx512', 'avx2', 'scalar', got '", name, "'");
}

// pick_kernel(active_isa(), scalar, LG_IF_AVX2(f_avx2), LG_IF_AVX512(f_avx512)): the variant to run. The macros
// turn variants that this build does not contain into nullptr, so their symbols are never referenced.
template <class Fn>
Fn* pick_kernel(Isa isa, Fn* scalar, Fn* avx2, Fn* avx512) {
  if (isa == Isa::avx512 && avx512) return avx512;
  if (isa >= Isa::avx2 && avx2) return avx2;
  return scalar;
}

}  // namespace lg

#if LG_HAVE_AVX2_KERNELS
#define LG_IF_AVX2(fn) fn
#else
#define LG_IF_AVX2(fn) nullptr
#endif
#if LG_HAVE_AVX512_KERNELS
#define LG_IF_AVX512(fn) fn
#else
#define LG_IF_AVX512(fn) nullptr
#endif
