// Run-time CPU feature detection and kernel dispatch. Kernels pick their ISA variant with active_isa(), never with
// compile-time macros alone: the base build is portable x86-64 and the *_avx2.cpp / *_avx512.cpp translation units
// are only entered after these checks pass.
#pragma once
#include <algorithm>
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
  // LEPTON_DISABLE_AVX512_VNNI / _BF16 hide one extension: an AVX-512 machine then runs as a Skylake-SP (no VNNI)
  // or an Ice Lake (no BF16) would, so those dispatch paths are tested on the machines we have.
  if (env_flag_set("LEPTON_DISABLE_AVX512_VNNI")) f.avx512_vnni = false;
  if (env_flag_set("LEPTON_DISABLE_AVX512_BF16")) f.avx512_bf16 = false;
  if (env_flag_set("LEPTON_DISABLE_AVX2")) f.avx2 = f.fma = false;
  return f;
}

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect_cpu_features();
  return f;
}

// Data cache sizes per core, from cpuid's deterministic cache parameters (leaf 4 on Intel, 0x8000001D on AMD and
// Hygon): the kernels' cache blocking is derived from them, not from constants tuned on one machine (issue 22).
// `detected` is false where cpuid gives none (the defaults are a Zen 3 core's: 32 KiB, 512 KiB, 32 MiB).
struct CacheSizes {
  int64_t l1d = int64_t(32) << 10, l2 = int64_t(512) << 10, l3 = int64_t(32) << 20;
  bool detected = false;
};

inline CacheSizes detect_cache_sizes() {
  CacheSizes cs;
#if LG_X86_64
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return cs;
  const unsigned max_leaf = a;
  const bool amd_like = b == 0x68747541u /* "Auth"enticAMD */ || b == 0x6f677948u /* "Hygo"nGenuine */;
  unsigned leaf = 0;
  if (amd_like) {
    if (__get_cpuid_max(0x80000000u, nullptr) >= 0x8000001Du && __get_cpuid(0x80000001u, &a, &b, &c, &d) &&
        (c & (1u << 22)))  // TopologyExtensions: leaf 0x8000001D is valid
      leaf = 0x8000001Du;
  } else if (max_leaf >= 4) {
    leaf = 4;
  }
  for (unsigned i = 0; leaf != 0 && i < 16; ++i) {
    __cpuid_count(leaf, i, a, b, c, d);
    const unsigned type = a & 31u, level = (a >> 5) & 7u;  // type 1: data, 2: instruction, 3: unified; 0: no more
    if (type == 0) break;
    const int64_t size = int64_t((b >> 22) + 1) * int64_t(((b >> 12) & 0x3ffu) + 1) * int64_t((b & 0xfffu) + 1) *
                         (int64_t(c) + 1);  // ways x partitions x line bytes x sets
    if (size <= 0) continue;
    if (level == 1 && type == 1) cs.l1d = size;
    if (level == 2 && type != 2) cs.l2 = size;
    if (level == 3 && type != 2) cs.l3 = size;
    cs.detected = true;
  }
#endif
  return cs;
}

inline const CacheSizes& cache_sizes() {
  static const CacheSizes cs = detect_cache_sizes();
  return cs;
}

// The L2 bytes a conv kernel's working set (weights beside activations; Winograd's V and M blocks) may take: half of
// L2, but 512 KiB where L2 holds that much. Both measured machines keep the size they were tuned at (Zen 4, 1 MiB
// L2: half; Zen 3, 512 KiB: all of it; half measured slower there, conv geomean 0.94x in bench/kernel_bench.py,
// 0.83x on the 56x56 Winograd conv), a 256 KiB L2 gets all of it and a 2 MiB L2 half.
inline int64_t conv_l2_budget() {
  const int64_t l2 = cache_sizes().l2;
  return std::min<int64_t>(l2, std::max<int64_t>(l2 / 2, int64_t(512) << 10));
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

// The AVX-512 variants need F+BW+VL (and FMA), the set the *_avx512.cpp units are compiled with. VNNI and BF16 are
// separate: the code that uses them (*_avx512vnni.cpp units, LG_TARGET_AVX512BF16 functions) is entered only where
// avx512_vnni_active() / avx512_bf16_active() say so, so an AVX-512 CPU without them (Skylake-SP, Cascade Lake,
// Ice Lake) still runs the AVX-512 fp32 kernels.
inline Isa best_isa() {
  const CpuFeatures& f = cpu_features();
  if (LG_HAVE_AVX512_KERNELS && f.avx512f && f.avx512bw && f.avx512vl && f.fma) return Isa::avx512;
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

inline bool avx512_vnni_active() { return active_isa() == Isa::avx512 && cpu_features().avx512_vnni; }
inline bool avx512_bf16_active() { return active_isa() == Isa::avx512 && cpu_features().avx512_bf16; }

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
