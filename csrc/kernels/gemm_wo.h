// Weight-only quantised GEMM (int8-weight, int4-weight): fp32 activations times int8 or int4 weights that are
// dequantised in registers, fp32 accumulation, the fp32 GEMM's epilogue. Declarations only (included by the ISA
// units too).
//
// The weight (nn.Linear layout, N x K) in groups of G consecutive k per output channel:
//   w[n, k] = (q[n, k] - z[n, k / G]) * s[n, k / G]
// int8: q signed, symmetric (z = 0), G = K (one scale per channel) or a group size; int4: q unsigned in [0, 15],
// asymmetric (z in [0, 15]), G a multiple of 8 (32, 64, 128 are the usual ones). A last group shorter than G (G
// does not divide K) is allowed: its missing k do not exist (they are never read or summed).
//
// Kernels compute y[m, n] = sum_g s[n, g] * (sum_{k in g} a[m, k] * q[n, k]) - s[n, g] * z[n, g] * sum_{k in g} a[m, k]
// (few rows: in registers, group by group) or dequantise a panel slice to fp32 and run the fp32 micro-kernel (many
// rows); both equal the dequantised fp32 GEMM up to fp32 rounding (tests/csrc/test_gemm_wo.py).
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/gemm.h"

namespace lg::gemm {

struct PackedWo;
// q: int8 (N x K, row stride ldq bytes) when bits == 8; for bits == 4, uint8 (N x ceil(K / 2), row stride ldq) two
// per byte, k even in the low nibble. scales: N x n_groups float32 (row-major); zeros: N x n_groups uint8 (int4
// only; null = 8 for every group, the symmetric grid). group: G, or 0 for one group per channel (int8 only).
std::shared_ptr<PackedWo> pack_b_wo(const uint8_t* q, int64_t K, int64_t N, int64_t ldq, int bits, int64_t group,
                                    const float* scales, const uint8_t* zeros);
int64_t packed_wo_k(const PackedWo& p);
int64_t packed_wo_n(const PackedWo& p);
int64_t packed_wo_nbytes(const PackedWo& p);  // the packed weight with its scales and offsets
int packed_wo_bits(const PackedWo& p);
int64_t packed_wo_group(const PackedWo& p);

// C (M x N, row stride ldc) = epilogue(A (M x K fp32, row stride lda, unit column stride) x dequant(B)).
void gemm_wo_packed(const float* a, int64_t M, int64_t K, int64_t lda, const PackedWo& b, float* c, int64_t ldc,
                    const Epilogue& ep);

namespace detail {

// One packed panel (width 32, or 16 for a narrow last panel): k-major rows of `width` columns, int8 one byte per
// column (column j at row + j), int4 half a byte: row of width / 2 bytes where byte 8h + c holds column 16h + c in
// its low nibble and column 16h + 8 + c in its high one (one vpmovzxbd of 8 bytes then gives 16 columns in order).
// s, m: per group g, `kPanel` floats at g * kPanel: the scale and the offset -z * s of each column (0 past N).
struct WoPanel {
  const uint8_t* q;
  const float* s;
  const float* m;
  int width;
  int bits;
  int64_t K, group, chunk;  // chunk: k per partial sum (divides group, or is the whole group)
  bool has_offset;          // m != 0 somewhere (int4); int8 skips the offset term
};

// Few rows (m <= max_rows), one whole panel, A read in place: C[m x nr] = A x dequant(B) (no epilogue).
// asum[i * n_chunks + c] = sum of row i of A over chunk c (for the offset term).
using WoRows = void (*)(int m, const float* a, int64_t lda, const float* asum, int64_t n_chunks, const WoPanel& p,
                        float* c, int64_t ldc, int nr);
// out[(k - k0) * width + j] = w[k, j] for k in [k0, k0 + kv): the panel slice in fp32 for the fp32 micro-kernel.
using WoDequant = void (*)(const WoPanel& p, int64_t k0, int64_t kv, float* out);

struct IsaKernelsWo {
  int max_rows;
  WoRows rows;
  WoDequant dequant;
};

// The AVX2 kernels serve AVX-512 CPUs too: dequantising is shuffle- and convert-bound and the few-row path is
// bandwidth-bound, where 512-bit vectors gain nothing on Zen 4 (its 512-bit ops are two 256-bit halves).
IsaKernelsWo kernels_wo_avx2();

}  // namespace detail
}  // namespace lg::gemm
