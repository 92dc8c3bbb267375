// Program construction (validated once) and Program::run: broadcast strides, dimension collapsing, tiling,
// threading and ISA dispatch. The tile loops themselves live in program_vec.h (compiled per ISA).
#include "kernels/program.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <sstream>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/threadpool.h"
#include "common/view.h"

namespace lg::kernels {
namespace {

int32_t prog_dtype(const std::string& name) {
  const DTypeInfo& info = parse_dtype(name);
  switch (info.code) {
    case DType::f32: return PD_F32;
    case DType::f16: return PD_F16;
    case DType::bf16: return PD_BF16;
    case DType::f64: return PD_F64;
    case DType::i8: return PD_I8;
    case DType::u8: return PD_U8;
    case DType::i32: return PD_I32;
    case DType::i64: return PD_I64;
    case DType::boolean: return PD_BOOL;
    default: detail::fail_check("Program", "dtype", "is not supported by programs: '", name, "'");
  }
}

int64_t prog_itemsize(int32_t dt) {
  switch (dt) {
    case PD_F32: case PD_I32: return 4;
    case PD_F16: case PD_BF16: return 2;
    case PD_F64: case PD_I64: return 8;
    default: return 1;
  }
}

const char* kOpNames[] = {"load", "store", "unary", "binary", "where", "row"};

}  // namespace

Program::Program(const std::vector<int64_t>& code, const std::vector<double>& consts, int64_t nregs,
                 const std::vector<std::string>& in_dtypes, const std::vector<std::string>& out_dtypes,
                 bool row_mode)
    : nregs_(static_cast<int32_t>(nregs)), row_mode_(row_mode) {
  LG_CHECK(code.size() % 8 == 0, code, "must hold 8 integers per instruction, got ", code.size());
  LG_CHECK(nregs >= 1 && nregs <= kProgMaxRegs, nregs, "must be in [1, ", kProgMaxRegs, "], got ", nregs);
  LG_CHECK(in_dtypes.size() <= size_t(kProgMaxIO), in_dtypes, "has more than ", kProgMaxIO, " entries");
  LG_CHECK(!out_dtypes.empty() && out_dtypes.size() <= size_t(kProgMaxIO), out_dtypes, "must have 1 to ",
           kProgMaxIO, " entries");
  for (const auto& d : in_dtypes) in_dtypes_.push_back(prog_dtype(d));
  for (const auto& d : out_dtypes) out_dtypes_.push_back(prog_dtype(d));
  for (double c : consts) consts_.push_back(static_cast<float>(c));
  const int64_t nin = in_dtypes_.size(), nout = out_dtypes_.size(), nk = consts_.size();
  std::vector<bool> written(nregs, false), out_written(nout, false);
  auto reg = [&](int64_t r, size_t pc, const char* what) {
    LG_CHECK(r >= 0 && r < nregs, code, "instruction ", pc, ": register ", what, "=", r, " out of range");
  };
  auto read = [&](int64_t r, size_t pc, const char* what) {
    reg(r, pc, what);
    LG_CHECK(written[r], code, "instruction ", pc, " reads register ", r, " before it is written");
  };
  auto konst = [&](int64_t k, size_t pc) {
    LG_CHECK(k >= 0 && k < nk, code, "instruction ", pc, ": constant index ", k, " out of range");
  };
  for (size_t pc = 0; pc * 8 < code.size(); ++pc) {
    const int64_t* f = &code[pc * 8];
    Instr ins{int32_t(f[0]), int32_t(f[1]), int32_t(f[2]), int32_t(f[3]), int32_t(f[4]), int32_t(f[5]),
              int32_t(f[6]), int32_t(f[7])};
    for (int j = 0; j < 8; ++j)
      LG_CHECK(f[j] >= INT32_MIN && f[j] <= INT32_MAX, code, "instruction ", pc, " has an out-of-range field");
    LG_CHECK(ins.op >= 0 && ins.op < OP_COUNT, code, "instruction ", pc, " has unknown op ", ins.op);
    switch (ins.op) {
      case OP_LOAD:
        LG_CHECK(ins.a >= 0 && ins.a < nin, code, "instruction ", pc, " loads input ", ins.a, " of ", nin);
        break;
      case OP_STORE:
        read(ins.a, pc, "a");
        LG_CHECK(ins.b >= 0 && ins.b < nout, code, "instruction ", pc, " stores output ", ins.b, " of ", nout);
        out_written[ins.b] = true;
        break;
      case OP_UNARY:
        LG_CHECK(ins.fn >= 0 && ins.fn < U_COUNT, code, "instruction ", pc, " has unknown unary fn ", ins.fn);
        read(ins.a, pc, "a");
        if (ins.fn == U_CLAMP) {
          konst(ins.k, pc);
          konst(ins.k + 1, pc);
        }
        break;
      case OP_BINARY:
        LG_CHECK(ins.fn >= 0 && ins.fn < B_COUNT, code, "instruction ", pc, " has unknown binary fn ", ins.fn);
        LG_CHECK(ins.c >= 0 && ins.c <= 2, code, "instruction ", pc, " has operand mode ", ins.c);
        read(ins.a, pc, "a");
        if (ins.c == 0) read(ins.b, pc, "b");
        else konst(ins.k, pc);
        break;
      case OP_WHERE:
        LG_CHECK(ins.fn >= 0 && ins.fn <= 3, code, "instruction ", pc, " has where mode ", ins.fn);
        read(ins.a, pc, "a");
        if (ins.fn & 1) konst(ins.k, pc);
        else read(ins.b, pc, "b");
        if (ins.fn & 2) konst(ins.k + 1, pc);
        else read(ins.c, pc, "c");
        break;
      default:  // OP_ROW
        LG_CHECK(row_mode, code, "instruction ", pc, " is a row op but the program is not in row mode");
        LG_CHECK(ins.fn >= 0 && ins.fn < R_COUNT, code, "instruction ", pc, " has unknown row fn ", ins.fn);
        read(ins.a, pc, "a");
        if (ins.b >= 0) read(ins.b, pc, "b");
        if (ins.c >= 0) read(ins.c, pc, "c");
        konst(ins.k, pc);
        break;
    }
    if (ins.op != OP_STORE) {
      reg(ins.dst, pc, "dst");
      written[ins.dst] = true;
    }
    if (ins.bind >= 0) {
      LG_CHECK(ins.op != OP_LOAD && ins.op != OP_STORE, code, "instruction ", pc, ": only computing "
               "instructions may write an output directly");
      LG_CHECK(ins.bind < nout && out_dtypes_[ins.bind] == PD_F32, code, "instruction ", pc,
               " binds output ", ins.bind, " which is not a float32 output");
      out_written[ins.bind] = true;
    } else {
      LG_CHECK(ins.bind == -1, code, "instruction ", pc, " has bind ", ins.bind);
    }
    code_.push_back(ins);
  }
  for (int64_t j = 0; j < nout; ++j) LG_CHECK(out_written[j], code, "never writes output ", j);
}

std::string Program::describe() const {
  std::ostringstream s;
  s << "Program(" << in_dtypes_.size() << " inputs, " << out_dtypes_.size() << " outputs, " << nregs_
    << " registers" << (row_mode_ ? ", row mode" : "") << ")";
  for (const Instr& i : code_)
    s << "\n  " << kOpNames[i.op] << " fn=" << i.fn << " dst=r" << i.dst << " a=" << i.a << " b=" << i.b
      << " c=" << i.c << " bind=" << i.bind << " k=" << i.k;
  return s.str();
}

void Program::make_plan(const std::vector<std::vector<int64_t>>& in_shapes,
                        const std::vector<std::vector<int64_t>>& in_strides, const std::vector<int64_t>& out_shape,
                        ProgPlan& p) const {
  const size_t nin = in_dtypes_.size(), nout = out_dtypes_.size();
  LG_CHECK(in_shapes.size() == nin, in_shapes, "has ", in_shapes.size(), " entries, the program takes ", nin);
  LG_CHECK(in_strides.size() == nin, in_strides, "has ", in_strides.size(), " entries, the program takes ", nin);
  const int nd = static_cast<int>(out_shape.size());
  int64_t numel = 1;
  for (int64_t s : out_shape) {
    LG_CHECK(s >= 0, out_shape, "has a negative size ", s);
    LG_CHECK(s == 0 || numel <= INT64_MAX / 8 / s, out_shape, "is too large");
    numel *= s;
  }
  LG_CHECK(!row_mode_ || nd >= 1, out_shape, "must have at least one dim in row mode");
  // broadcast strides (right-aligned numpy rules)
  std::vector<std::vector<int64_t>> bs(nin, std::vector<int64_t>(nd, 0));
  for (size_t i = 0; i < nin; ++i) {
    const auto& sh = in_shapes[i];
    const auto& st = in_strides[i];
    LG_CHECK(sh.size() == st.size(), in_strides, "entry ", i, " has ", st.size(), " strides for ", sh.size(),
             " dims");
    LG_CHECK(int(sh.size()) <= nd, in_shapes, "entry ", i, " has more dims than out_shape");
    for (size_t k = 0; k < sh.size(); ++k) {
      const int d = nd - int(sh.size()) + int(k);
      LG_CHECK(sh[k] == out_shape[d] || sh[k] == 1, in_shapes, "entry ", i, " (dim ", k, " = ", sh[k],
               ") does not broadcast to out_shape (", out_shape[d], ")");
      LG_CHECK(st[k] >= 0, in_strides, "entry ", i, " has a negative stride");
      bs[i][d] = sh[k] == 1 ? 0 : st[k];
    }
  }
  p.code = code_.data();
  p.ncode = static_cast<int32_t>(code_.size());
  p.consts = consts_.data();
  p.nregs = nregs_;
  p.ninputs = static_cast<int32_t>(nin);
  p.noutputs = static_cast<int32_t>(nout);
  p.numel = numel;
  p.row_mode = row_mode_;
  for (size_t i = 0; i < nin; ++i) {
    p.in[i].ptr = nullptr;
    p.in[i].dtype = in_dtypes_[i];
  }
  for (size_t j = 0; j < nout; ++j) {
    p.out[j] = nullptr;
    p.out_dtype[j] = out_dtypes_[j];
  }
  if (numel == 0) {
    p.ndim = 1;
    p.sizes[0] = 0;
    p.inner = 1;
    p.ntiles = 0;
    p.work_ns = 0;
    return;
  }

  // collapse: drop size-1 dims, merge dims that are contiguous with their successor for every input (outputs
  // are contiguous); in row mode the last dim stays on its own (rows must stay whole).
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> strides(nin);
  for (int d = 0; d < nd; ++d) {
    const bool last = d == nd - 1;
    if (out_shape[d] == 1 && !(row_mode_ && last)) continue;
    const bool can_merge = !sizes.empty() && !(row_mode_ && last) && [&] {
      for (size_t i = 0; i < nin; ++i)
        if (strides[i].back() != bs[i][d] * out_shape[d]) return false;
      return true;
    }();
    if (can_merge) {
      sizes.back() *= out_shape[d];
      for (size_t i = 0; i < nin; ++i) strides[i].back() = bs[i][d];
    } else {
      sizes.push_back(out_shape[d]);
      for (size_t i = 0; i < nin; ++i) strides[i].push_back(bs[i][d]);
    }
  }
  if (sizes.empty()) {
    sizes.push_back(1);
    for (size_t i = 0; i < nin; ++i) strides[i].push_back(0);
  }
  LG_CHECK(sizes.size() <= size_t(kProgMaxDims), out_shape, "needs ", sizes.size(), " dims after collapsing (max ",
           kProgMaxDims, ")");
  p.ndim = static_cast<int32_t>(sizes.size());
  for (int d = 0; d < p.ndim; ++d) p.sizes[d] = sizes[d];
  double bytes_per_elem = 0;
  for (size_t i = 0; i < nin; ++i) {
    ProgInput& in = p.in[i];
    int64_t expected = 1;
    bool flat = true, broadcast = false;
    for (int d = p.ndim - 1; d >= 0; --d) {
      in.strides[d] = strides[i][d];
      if (sizes[d] != 1 && strides[i][d] != expected) flat = false;
      if (sizes[d] != 1 && strides[i][d] == 0) broadcast = true;
      expected *= sizes[d];
    }
    in.flat = flat;
    // a broadcast input is mostly re-read from cache; a gathered (strided) one costs more than its bytes
    bytes_per_elem += broadcast ? 0.0 : double(prog_itemsize(in_dtypes_[i])) * (flat ? 1.0 : 3.0);
  }
  p.inner = sizes.back();
  int64_t out_bytes = 0;
  for (size_t j = 0; j < nout; ++j) {
    out_bytes += numel * prog_itemsize(out_dtypes_[j]);
    bytes_per_elem += double(prog_itemsize(out_dtypes_[j]));
  }
  // Non-temporal stores for huge outputs: off by default. Measured on the 2-core Zen 4 VM (relu/add/gelu on 8M
  // floats, interleaved, 1 and 2 threads) they are 25-50% SLOWER than plain stores (which match torch's copy).
  const int64_t stream_min = program_stream_min_bytes().load(std::memory_order_relaxed);
  p.stream = stream_min > 0 && out_bytes >= stream_min;
  // compute per element (ns, one thread, AVX-512 measured): simple ops ~0.03, transcendentals ~0.3, row ops ~0.2
  double compute = 0;
  for (const Instr& ins : code_) {
    if (ins.op == OP_UNARY) {
      const bool heavy = ins.fn == U_EXP || ins.fn == U_LOG || ins.fn == U_ERF || ins.fn == U_TANH ||
                         ins.fn == U_SIGMOID || ins.fn == U_GELU || ins.fn == U_GELU_TANH || ins.fn == U_SILU ||
                         ins.fn == U_SIN || ins.fn == U_COS || ins.fn >= U_TO_BF16;
      compute += heavy ? 0.3 : 0.03;
    } else if (ins.op == OP_BINARY) {
      compute += ins.fn == B_POW ? 2.0 : 0.03;
    } else if (ins.op == OP_ROW) {
      compute += 0.2;
    } else {
      compute += 0.02;
    }
  }
  p.work_ns = double(numel) * (compute + 0.05 * bytes_per_elem);
  auto round16 = [](int64_t v) { return (v + 15) / 16 * 16; };
  const int64_t target = std::clamp<int64_t>(12288 / nregs_, 256, 2048);
  const int64_t rows = numel / p.inner;
  if (row_mode_ || p.inner <= target) {
    // long rows: one row per tile, so that [D]-shaped weights broadcast over rows load without a copy
    p.rows_per_tile = p.inner >= 256 ? 1 : std::max<int64_t>(1, target / p.inner);
    p.tiles_per_row = 0;
    p.tile = round16(p.rows_per_tile * p.inner);
    p.ntiles = (rows + p.rows_per_tile - 1) / p.rows_per_tile;
  } else {
    const int64_t tpr0 = (p.inner + target - 1) / target;
    p.tile = round16((p.inner + tpr0 - 1) / tpr0);
    p.tiles_per_row = (p.inner + p.tile - 1) / p.tile;
    p.rows_per_tile = 0;
    p.ntiles = rows * p.tiles_per_row;
  }
}

std::atomic<int64_t>& program_stream_min_bytes() {
  static std::atomic<int64_t> bytes{0};
  return bytes;
}

void run_plan(const ProgPlan& p) {
  if (p.numel == 0) return;
  const auto kernel = pick_kernel<void(const ProgPlan&, int64_t, int64_t, float*)>(
      active_isa(), program_tiles_scalar, LG_IF_AVX2(program_tiles_avx2), LG_IF_AVX512(program_tiles_avx512));
  const size_t scratch_floats = static_cast<size_t>(p.nregs) * p.tile + 16;
  parallel_for_work(0, p.ntiles, p.work_ns, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < scratch_floats) scratch.resize(scratch_floats);
    float* base = scratch.data();
    base += (16 - (reinterpret_cast<std::uintptr_t>(base) / 4) % 16) % 16;  // 64-byte aligned
    kernel(p, t0, t1, base);
  });
}

namespace {

// Data pointers into a plan: non-null when there is any element, aligned to the item size.
void set_pointers(ProgPlan& p, const std::uintptr_t* in_ptrs, const std::uintptr_t* out_ptrs) {
  for (int32_t i = 0; i < p.ninputs; ++i) {
    const int64_t isz = prog_itemsize(p.in[i].dtype);
    LG_CHECK(p.numel == 0 || in_ptrs[i] != 0, in_ptrs, "entry ", i, " is null");
    LG_CHECK(in_ptrs[i] % isz == 0, in_ptrs, "entry ", i, " is not aligned to ", isz, " bytes");
    p.in[i].ptr = reinterpret_cast<const char*>(in_ptrs[i]);
  }
  for (int32_t j = 0; j < p.noutputs; ++j) {
    const int64_t isz = prog_itemsize(p.out_dtype[j]);
    LG_CHECK(p.numel == 0 || out_ptrs[j] != 0, out_ptrs, "entry ", j, " is null");
    LG_CHECK(out_ptrs[j] % isz == 0, out_ptrs, "entry ", j, " is not aligned to ", isz, " bytes");
    p.out[j] = reinterpret_cast<char*>(out_ptrs[j]);
  }
}

}  // namespace

void Program::run(const std::vector<std::uintptr_t>& in_ptrs, const std::vector<std::vector<int64_t>>& in_shapes,
                  const std::vector<std::vector<int64_t>>& in_strides, const std::vector<int64_t>& out_shape,
                  const std::vector<std::uintptr_t>& out_ptrs) const {
  const size_t nin = in_dtypes_.size(), nout = out_dtypes_.size();
  LG_CHECK(in_ptrs.size() == nin, in_ptrs, "has ", in_ptrs.size(), " entries, the program takes ", nin);
  LG_CHECK(out_ptrs.size() == nout, out_ptrs, "has ", out_ptrs.size(), " entries, the program makes ", nout);
  std::unique_ptr<ProgPlan> plan(new ProgPlan);  // default-initialised: only the used entries are set
  make_plan(in_shapes, in_strides, out_shape, *plan);
  set_pointers(*plan, in_ptrs.data(), out_ptrs.data());
  run_plan(*plan);
}

BoundProgram::BoundProgram(const Program& prog, const std::vector<std::vector<int64_t>>& in_shapes,
                           const std::vector<std::vector<int64_t>>& in_strides, const std::vector<int64_t>& out_shape)
    : code_(prog.code_), consts_(prog.consts_) {
  std::memset(&plan_, 0, sizeof(plan_));
  prog.make_plan(in_shapes, in_strides, out_shape, plan_);
  plan_.code = code_.data();
  plan_.consts = consts_.data();
}

void BoundProgram::run(const std::uintptr_t* ptrs, size_t n) const {
  const size_t want = static_cast<size_t>(plan_.ninputs + plan_.noutputs);
  LG_CHECK(n == want, ptrs, "has ", n, " entries, the program takes ", plan_.ninputs, " inputs and ",
           plan_.noutputs, " outputs");
  ProgPlan p;  // a per-call copy (~6 KB, trivially copyable): runs of one BoundProgram may overlap
  std::memcpy(static_cast<void*>(&p), &plan_, sizeof(ProgPlan));
  set_pointers(p, ptrs, ptrs + plan_.ninputs);
  run_plan(p);
}

void reduce_f32(const std::string& fn, std::uintptr_t x_ptr, std::uintptr_t out_ptr, int64_t outer, int64_t red,
                int64_t inner) {
  int32_t code;
  if (fn == "sum") code = RD_SUM;
  else if (fn == "mean") code = RD_MEAN;
  else if (fn == "amax") code = RD_MAX;
  else if (fn == "amin") code = RD_MIN;
  else detail::fail_check(__func__, "fn", "must be one of 'sum', 'mean', 'amax', 'amin', got '", fn, "'");
  LG_CHECK(outer >= 0, outer, "must be >= 0, got ", outer);
  LG_CHECK(red >= 0, red, "must be >= 0, got ", red);
  LG_CHECK(inner >= 0, inner, "must be >= 0, got ", inner);
  LG_CHECK(red > 0 || code == RD_SUM || code == RD_MEAN, red, "must be > 0 for amax/amin");
  LG_CHECK(outer == 0 || red == 0 || inner == 0 || (red <= INT64_MAX / 4 / inner / outer), red, "is too large");
  const int64_t n_in = outer * red * inner;
  LG_CHECK_BUFFER(x_ptr, float, n_in);
  LG_CHECK_BUFFER(out_ptr, float, outer * inner);
  if (outer == 0 || inner == 0) return;
  const auto* x = reinterpret_cast<const float*>(x_ptr);
  auto* out = reinterpret_cast<float*>(out_ptr);
  if (red == 0) {
    for (int64_t i = 0; i < outer * inner; ++i) out[i] = code == RD_MEAN ? __builtin_nanf("") : 0.0f;
    return;
  }
  const auto kernel = pick_kernel<void(int32_t, const float*, float*, int64_t, int64_t, int64_t, int64_t)>(
      active_isa(), reduce_rows_scalar, LG_IF_AVX2(reduce_rows_avx2), LG_IF_AVX512(reduce_rows_avx512));
  const double bytes = 4.0 * double(outer) * double(red + 1) * double(inner);
  parallel_for_work(0, outer, work_ns_for_bytes(bytes),
                    [&](int64_t o0, int64_t o1) { kernel(code, x, out, o0, o1, red, inner); });
}

}  // namespace lg::kernels
