// Data movement kernels (portable: memory-bound copies that memcpy or simple typed loops already saturate).
// Strides are in elements; every kernel checks its arguments (ValueError naming the argument).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lg::kernels {

// dst[idx] = src[idx] for every index of `shape` (any itemsize 1/2/4/8; both sides strided, dst must not
// overlap src). Used for contiguous(), non-viewable reshapes and cat (dst = a slice of the output).
void copy_strided(std::uintptr_t src_ptr, std::uintptr_t dst_ptr, int64_t itemsize, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& src_strides, const std::vector<int64_t>& dst_strides);

// out[o, j, :] = x[o, index[j], :] for x contiguous [outer, rows, inner], index i64 or i32 (index_is_i64) of n
// entries (negative entries count from the end), out contiguous [outer, n, inner]. Embedding is outer = 1.
void gather_rows(std::uintptr_t x_ptr, std::uintptr_t index_ptr, std::uintptr_t out_ptr, int64_t itemsize,
                 int64_t outer, int64_t rows, int64_t inner, int64_t n, bool index_is_i64, bool allow_negative);

// out[i] = the `itemsize`-byte pattern `bits` for i < n.
void fill(std::uintptr_t out_ptr, int64_t itemsize, int64_t n, uint64_t bits);

// out[i] = start + i * step (computed in double, like torch), dtype "float32", "float64", "int64" or "int32".
void arange(std::uintptr_t out_ptr, const std::string& dtype, int64_t n, double start, double step);

}  // namespace lg::kernels
