// Data movement kernels: strided copy, row gather, fill, arange (see movement.h).
#include "kernels/movement.h"

#include <algorithm>
#include <cstring>

#include "common/check.h"
#include "common/threadpool.h"
#include "common/view.h"

namespace lg::kernels {
namespace {

template <class T>
void copy_row(const char* s, char* d, int64_t n, int64_t ss, int64_t ds) {
  const T* src = reinterpret_cast<const T*>(s);
  T* dst = reinterpret_cast<T*>(d);
  if (ds == 1) {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i * ss];
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i * ds] = src[i * ss];
  }
}

bool valid_itemsize(int64_t s) { return s == 1 || s == 2 || s == 4 || s == 8; }

}  // namespace

void copy_strided(std::uintptr_t src_ptr, std::uintptr_t dst_ptr, int64_t itemsize, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& src_strides, const std::vector<int64_t>& dst_strides) {
  LG_CHECK(valid_itemsize(itemsize), itemsize, "must be 1, 2, 4 or 8, got ", itemsize);
  LG_CHECK(src_strides.size() == shape.size(), src_strides, "has ", src_strides.size(), " entries for ",
           shape.size(), " dims");
  LG_CHECK(dst_strides.size() == shape.size(), dst_strides, "has ", dst_strides.size(), " entries for ",
           shape.size(), " dims");
  int64_t numel = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    LG_CHECK(shape[d] >= 0, shape, "has a negative size");
    LG_CHECK(src_strides[d] >= 0, src_strides, "has a negative stride");
    LG_CHECK(dst_strides[d] >= 0, dst_strides, "has a negative stride");
    LG_CHECK(shape[d] == 0 || numel <= INT64_MAX / 16 / shape[d], shape, "is too large");
    numel *= shape[d];
  }
  if (numel == 0) return;
  LG_CHECK(src_ptr != 0 && src_ptr % itemsize == 0, src_ptr, "is null or not aligned to ", itemsize, " bytes");
  LG_CHECK(dst_ptr != 0 && dst_ptr % itemsize == 0, dst_ptr, "is null or not aligned to ", itemsize, " bytes");
  // collapse: drop size-1 dims, merge dims contiguous with their successor on both sides
  std::vector<int64_t> sz, ss, ds;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!sz.empty() && ss.back() == src_strides[d] * shape[d] && ds.back() == dst_strides[d] * shape[d]) {
      sz.back() *= shape[d];
      ss.back() = src_strides[d];
      ds.back() = dst_strides[d];
    } else {
      sz.push_back(shape[d]);
      ss.push_back(src_strides[d]);
      ds.push_back(dst_strides[d]);
    }
  }
  if (sz.empty()) {
    sz.push_back(1);
    ss.push_back(1);
    ds.push_back(1);
  }
  const int nd = static_cast<int>(sz.size());
  LG_CHECK(nd <= 16, shape, "has more than 16 dims after collapsing");
  const int64_t inner = sz.back(), sin = ss.back(), din = ds.back();
  const int64_t rows = numel / inner;
  const char* src = reinterpret_cast<const char*>(src_ptr);
  char* dst = reinterpret_cast<char*>(dst_ptr);
  // a strided side costs ~3x its bytes (one element per access instead of whole lines)
  const double strided = (sin == 1 ? 1.0 : 3.0) + (din == 1 ? 1.0 : 3.0);
  const double work = work_ns_for_bytes(double(numel) * double(itemsize) * strided);
  parallel_for_work(0, rows, work, [&](int64_t r0, int64_t r1) {
    // the row's N-d index once per chunk, then an odometer (no divisions per row)
    int64_t idx[16] = {0};
    int64_t so = 0, dof = 0, rem = r0;
    for (int d = nd - 2; d >= 0; --d) {
      const int64_t q = rem / sz[d];
      idx[d] = rem - q * sz[d];
      so += idx[d] * ss[d];
      dof += idx[d] * ds[d];
      rem = q;
    }
    const size_t row_bytes = static_cast<size_t>(inner * itemsize);
    for (int64_t r = r0; r < r1; ++r) {
      const char* s = src + so * itemsize;
      char* o = dst + dof * itemsize;
      if (sin == 1 && din == 1) {
        std::memcpy(o, s, row_bytes);
      } else {
        switch (itemsize) {
          case 1: copy_row<uint8_t>(s, o, inner, sin, din); break;
          case 2: copy_row<uint16_t>(s, o, inner, sin, din); break;
          case 4: copy_row<uint32_t>(s, o, inner, sin, din); break;
          default: copy_row<uint64_t>(s, o, inner, sin, din); break;
        }
      }
      for (int d = nd - 2; d >= 0; --d) {
        so += ss[d];
        dof += ds[d];
        if (++idx[d] < sz[d]) break;
        so -= ss[d] * sz[d];
        dof -= ds[d] * sz[d];
        idx[d] = 0;
      }
    }
  });
}

void gather_rows(std::uintptr_t x_ptr, std::uintptr_t index_ptr, std::uintptr_t out_ptr, int64_t itemsize,
                 int64_t outer, int64_t rows, int64_t inner, int64_t n, bool index_is_i64, bool allow_negative) {
  LG_CHECK(valid_itemsize(itemsize), itemsize, "must be 1, 2, 4 or 8, got ", itemsize);
  LG_CHECK(outer >= 0, outer, "must be >= 0");
  LG_CHECK(rows >= 0, rows, "must be >= 0");
  LG_CHECK(inner >= 0, inner, "must be >= 0");
  LG_CHECK(n >= 0, n, "must be >= 0");
  if (outer == 0 || n == 0 || inner == 0) return;
  const int64_t isz = index_is_i64 ? 8 : 4;
  LG_CHECK(index_ptr != 0 && index_ptr % isz == 0, index_ptr, "is null or not aligned to ", isz, " bytes");
  LG_CHECK(out_ptr != 0 && out_ptr % itemsize == 0, out_ptr, "is null or not aligned");
  LG_CHECK(rows > 0, rows, "is 0 but ", n, " indices were given");
  LG_CHECK(x_ptr != 0 && x_ptr % itemsize == 0, x_ptr, "is null or not aligned");
  // validate every index before writing anything
  std::vector<int64_t> idx(n);
  for (int64_t j = 0; j < n; ++j) {
    int64_t v = index_is_i64 ? reinterpret_cast<const int64_t*>(index_ptr)[j]
                             : reinterpret_cast<const int32_t*>(index_ptr)[j];
    if (v < 0 && allow_negative) v += rows;
    LG_CHECK(v >= 0 && v < rows, index_ptr, "entry ", j, " is out of range for ", rows, " rows");
    idx[j] = v;
  }
  const char* x = reinterpret_cast<const char*>(x_ptr);
  char* out = reinterpret_cast<char*>(out_ptr);
  const size_t row_bytes = static_cast<size_t>(inner * itemsize);
  const double work = work_ns_for_bytes(2.0 * double(outer * n) * double(row_bytes));
  parallel_for_work(0, outer * n, work, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / n, j = t - o * n;
      std::memcpy(out + t * row_bytes, x + (o * rows + idx[j]) * row_bytes, row_bytes);
    }
  });
}

void fill(std::uintptr_t out_ptr, int64_t itemsize, int64_t n, uint64_t bits) {
  LG_CHECK(valid_itemsize(itemsize), itemsize, "must be 1, 2, 4 or 8, got ", itemsize);
  LG_CHECK(n >= 0, n, "must be >= 0, got ", n);
  if (n == 0) return;
  LG_CHECK(out_ptr != 0 && out_ptr % itemsize == 0, out_ptr, "is null or not aligned to ", itemsize, " bytes");
  char* out = reinterpret_cast<char*>(out_ptr);
  parallel_for_work(0, n, work_ns_for_bytes(double(n) * double(itemsize)), [&](int64_t b, int64_t e) {
    switch (itemsize) {
      case 1: std::memset(out + b, static_cast<int>(bits & 0xff), static_cast<size_t>(e - b)); break;
      case 2: std::fill(reinterpret_cast<uint16_t*>(out) + b, reinterpret_cast<uint16_t*>(out) + e,
                        static_cast<uint16_t>(bits)); break;
      case 4: std::fill(reinterpret_cast<uint32_t*>(out) + b, reinterpret_cast<uint32_t*>(out) + e,
                        static_cast<uint32_t>(bits)); break;
      default: std::fill(reinterpret_cast<uint64_t*>(out) + b, reinterpret_cast<uint64_t*>(out) + e, bits); break;
    }
  });
}

void arange(std::uintptr_t out_ptr, const std::string& dtype, int64_t n, double start, double step) {
  LG_CHECK(n >= 0, n, "must be >= 0, got ", n);
  const DTypeInfo& info = parse_dtype(dtype);
  LG_CHECK(info.code == DType::f32 || info.code == DType::f64 || info.code == DType::i64 || info.code == DType::i32,
           dtype, "must be float32, float64, int64 or int32, got ", dtype);
  if (n == 0) return;
  LG_CHECK(out_ptr != 0 && out_ptr % info.itemsize == 0, out_ptr, "is null or not aligned");
  for (int64_t i = 0; i < n; ++i) {
    const double v = start + step * static_cast<double>(i);
    switch (info.code) {
      case DType::f32: reinterpret_cast<float*>(out_ptr)[i] = static_cast<float>(v); break;
      case DType::f64: reinterpret_cast<double*>(out_ptr)[i] = v; break;
      case DType::i64: reinterpret_cast<int64_t*>(out_ptr)[i] = static_cast<int64_t>(v); break;
      default: reinterpret_cast<int32_t*>(out_ptr)[i] = static_cast<int32_t>(v); break;
    }
  }
}

}  // namespace lg::kernels
