// Raw tensor views built from plain Python ints (data_ptr, shape, strides, dtype name), so kernels can read torch
// tensors without linking libtorch. Strides are in elements, like torch's. The checks here are shared by every kernel.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"

namespace lg {

enum class DType : uint8_t { f32, f16, bf16, f64, i8, u8, i32, i64, boolean, f8e4m3, f8e5m2 };

struct DTypeInfo {
  DType code;
  const char* name;  // torch's spelling, without the "torch." prefix
  int64_t itemsize;
};

inline constexpr DTypeInfo kDTypes[] = {
    {DType::f32, "float32", 4},       {DType::f16, "float16", 2},          {DType::bf16, "bfloat16", 2},
    {DType::f64, "float64", 8},       {DType::i8, "int8", 1},              {DType::u8, "uint8", 1},
    {DType::i32, "int32", 4},         {DType::i64, "int64", 8},            {DType::boolean, "bool", 1},
    {DType::f8e4m3, "float8_e4m3fn", 1}, {DType::f8e5m2, "float8_e5m2", 1},
};

inline const DTypeInfo& dtype_info(DType d) {
  for (const auto& info : kDTypes)
    if (info.code == d) return info;
  throw std::invalid_argument("unknown dtype code");
}

// Accepts str(tensor.dtype) ("torch.float32") or the bare name ("float32").
inline const DTypeInfo& parse_dtype(const std::string& dtype) {
  const std::string name = dtype.rfind("torch.", 0) == 0 ? dtype.substr(6) : dtype;
  for (const auto& info : kDTypes)
    if (name == info.name) return info;
  detail::fail_check(__func__, "dtype", "is not a supported dtype: '", dtype, "'");
}

// True when [a, a+bytes) and [b, b+bytes) share memory without being the same range: exact aliasing (in place)
// is fine for elementwise kernels, a shifted overlap is not.
inline bool partially_overlaps(std::uintptr_t a, std::uintptr_t b, int64_t bytes) {
  if (bytes <= 0 || a == b) return false;
  return a < b + static_cast<std::uintptr_t>(bytes) && b < a + static_cast<std::uintptr_t>(bytes);
}

struct TensorView {
  std::uintptr_t ptr = 0;
  DType dtype = DType::f32;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : sizes) n *= s;
    return n;
  }
  int64_t itemsize() const { return dtype_info(dtype).itemsize; }
  // Row-major dense; size-1 dims may carry any stride (as in torch).
  bool is_contiguous() const {
    int64_t expected = 1;
    for (size_t i = sizes.size(); i-- > 0;) {
      if (sizes[i] == 1) continue;
      if (strides[i] != expected) return false;
      expected *= sizes[i];
    }
    return true;
  }
  template <class T>
  T* data() const {
    return reinterpret_cast<T*>(ptr);
  }
};

// Builds a view and checks it: known dtype, matching ranks, sizes and strides >= 0, no numel overflow, and a
// non-null pointer aligned to the item size whenever the view holds any element.
inline TensorView make_view(std::uintptr_t data_ptr, const std::string& dtype, const std::vector<int64_t>& shape,
                            const std::vector<int64_t>& strides) {
  const DTypeInfo& info = parse_dtype(dtype);
  LG_CHECK(strides.size() == shape.size(), strides, "has ", strides.size(), " entries but shape has ",
           shape.size());
  int64_t numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    LG_CHECK(shape[i] >= 0, shape, "has a negative size ", shape[i], " at dim ", i);
    LG_CHECK(strides[i] >= 0, strides, "has a negative stride ", strides[i], " at dim ", i);
    LG_CHECK(shape[i] == 0 || numel <= INT64_MAX / info.itemsize / shape[i], shape, "is too large");
    numel *= shape[i];
  }
  LG_CHECK(numel == 0 || data_ptr != 0, data_ptr, "is null");
  LG_CHECK(data_ptr % static_cast<std::uintptr_t>(info.itemsize) == 0, data_ptr, "is not aligned to ",
           info.itemsize, " bytes (", info.name, ")");
  return TensorView{data_ptr, info.code, shape, strides};
}

}  // namespace lg

// LG_CHECK_BUFFER(ptr, T, n): `ptr` addresses n elements of type T: non-null when n > 0, aligned to alignof(T).
#define LG_CHECK_BUFFER(ptr, T, n)                                                                     \
  do {                                                                                                 \
    LG_CHECK((n) == 0 || (ptr) != 0, ptr, "is null");                                                  \
    LG_CHECK((ptr) % alignof(T) == 0, ptr, "is not aligned to ", alignof(T), " bytes (", #T, ")");     \
  } while (0)
