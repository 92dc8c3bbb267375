// Fused elementwise programs: a tiny register machine that runs a FUSED elementwise / norm / softmax body (or one
// elementwise op) in ONE pass over the output index space.
//
// A program is a flat list of instructions over virtual registers. A register holds one *tile* of the output
// index space as f32 (bool values are 0/1, integers and bf16/f16 values are held exactly as floats). The
// lowering (lepton_graph/backends/cpu/eltwise.py) translates a body sub-graph into a program once, at compile
// time; `Program::run` then walks the output in tiles: LOAD reads an input's elements for the tile with numpy
// broadcasting (per-input strides, 0 on broadcast dims; an f32 input laid out like the tile is not copied, the
// register just points at it), each instruction runs one vectorised loop over the tile (L1/L2-resident), STORE
// converts to the output dtype (an instruction whose value is an f32 output writes straight into the output).
//
// "Row mode" (norm/softmax bodies) makes every tile a whole number of rows of the last dim, so that OP_ROW
// instructions (layer norm, RMS norm, softmax, log-softmax) can see complete rows, while the elementwise
// prologue/epilogue around them runs in the same pass.
//
// This header is included by the per-ISA translation units (fused_eltwise_avx2.cpp / _avx512.cpp): everything
// they see here is plain data (ProgPlan) and declarations. The Program class (std::vector members) is used only
// by portable code.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace lg::kernels {

// -- instruction set --------------------------------------------------------------------------------------------
// Instr fields: op, fn, dst, a, b, c, bind, k. Registers are indices < nregs; `k` indexes the constant table.
enum ProgOp : int32_t {
  OP_LOAD = 0,    // dst <- input[a] (broadcast, converted to f32)
  OP_STORE = 1,   // output[b] <- reg a (converted to the output dtype)
  OP_UNARY = 2,   // dst <- fn(a); CLAMP bounds are consts[k], consts[k+1]
  OP_BINARY = 3,  // dst <- fn(A, B); c: 0 = (reg a, reg b), 1 = (reg a, consts[k]), 2 = (consts[k], reg a)
  OP_WHERE = 4,   // dst <- a != 0 ? B : C; fn bit 1: B is consts[k]; bit 2: C is consts[k+1]
  OP_ROW = 5,     // dst <- fn(row of a) (row mode only); b = weight reg or -1, c = bias reg or -1, eps = consts[k]
  OP_COUNT = 6
};

enum UnaryFn : int32_t {
  U_NEG, U_ABS, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ERF, U_TANH, U_SIGMOID, U_RELU, U_GELU, U_GELU_TANH, U_SILU,
  U_SIN, U_COS, U_RECIP, U_LNOT, U_CLAMP, U_TO_BF16, U_TO_F16, U_TO_BOOL, U_TRUNC, U_COPY, U_COUNT
};

enum BinaryFn : int32_t {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE, B_AND, B_OR, B_COUNT
};

enum RowFn : int32_t { R_LAYER_NORM, R_RMS_NORM, R_SOFTMAX, R_LOG_SOFTMAX, R_COUNT };

// Element types a program reads and writes (the values of lg::DType in common/view.h).
enum ProgDType : int32_t { PD_F32 = 0, PD_F16 = 1, PD_BF16 = 2, PD_F64 = 3, PD_I8 = 4, PD_U8 = 5, PD_I32 = 6,
                           PD_I64 = 7, PD_BOOL = 8 };

struct Instr {
  int32_t op, fn, dst, a, b, c, bind, k;
};

inline constexpr int kProgMaxDims = 8;
inline constexpr int kProgMaxIO = 64;
inline constexpr int kProgMaxRegs = 64;

struct ProgInput {
  const char* ptr;
  int32_t dtype;
  int32_t flat;                      // element e of the iteration space is at ptr[e] (no index arithmetic)
  int64_t strides[kProgMaxDims];     // in elements, over the collapsed iteration dims (0 = broadcast)
};

// Everything one call needs, as plain data (built by Program::run, read by the ISA tile loops).
struct ProgPlan {
  const Instr* code;
  int32_t ncode;
  const float* consts;
  int32_t nregs;
  int32_t ninputs, noutputs;
  ProgInput in[kProgMaxIO];
  char* out[kProgMaxIO];
  int32_t out_dtype[kProgMaxIO];
  int32_t ndim;                      // collapsed iteration dims; the last one is `inner`
  int64_t sizes[kProgMaxDims];
  int64_t numel, inner;
  int64_t tile;                      // register capacity in elements (a multiple of 16)
  int64_t tiles_per_row;             // > 0: tiles split rows (inner > tile); 0: a tile holds rows_per_tile rows
  int64_t rows_per_tile;
  int64_t ntiles;
  int32_t row_mode;
  int32_t stream;                    // large outputs: f32 results go out with non-temporal stores
  double work_ns;                    // estimated single-thread time of the whole run (threading decision)
};

// Run tiles [t0, t1) of `plan`; `scratch` holds nregs * tile floats, 64-byte aligned.
void program_tiles_scalar(const ProgPlan& plan, int64_t t0, int64_t t1, float* scratch);
void program_tiles_avx2(const ProgPlan& plan, int64_t t0, int64_t t1, float* scratch);
void program_tiles_avx512(const ProgPlan& plan, int64_t t0, int64_t t1, float* scratch);

// -- reductions over the middle dim of a contiguous [outer, red, inner] f32 tensor ----------------------------
enum ReduceFn : int32_t { RD_SUM, RD_MEAN, RD_MAX, RD_MIN, RD_COUNT };

// out[o, i] = reduce_r x[o, r, i] for o in [o0, o1).
void reduce_rows_scalar(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red, int64_t inner);
void reduce_rows_avx2(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red, int64_t inner);
void reduce_rows_avx512(int32_t fn, const float* x, float* out, int64_t o0, int64_t o1, int64_t red, int64_t inner);

// -- the program object (portable code only) ---------------------------------------------------------------------
class Program {
 public:
  // code: 8 ints per instruction (see Instr); in/out dtypes are torch names ("float32", "bool", ...).
  Program(const std::vector<int64_t>& code, const std::vector<double>& consts, int64_t nregs,
          const std::vector<std::string>& in_dtypes, const std::vector<std::string>& out_dtypes, bool row_mode);

  // Inputs are broadcast to out_shape (numpy rules, right-aligned); outputs are contiguous tensors of out_shape.
  void run(const std::vector<std::uintptr_t>& in_ptrs, const std::vector<std::vector<int64_t>>& in_shapes,
           const std::vector<std::vector<int64_t>>& in_strides, const std::vector<int64_t>& out_shape,
           const std::vector<std::uintptr_t>& out_ptrs) const;

  // Everything of a run that depends only on shapes and strides (validated), with null data pointers.
  void make_plan(const std::vector<std::vector<int64_t>>& in_shapes,
                 const std::vector<std::vector<int64_t>>& in_strides, const std::vector<int64_t>& out_shape,
                 ProgPlan& plan) const;

  int64_t num_inputs() const { return static_cast<int64_t>(in_dtypes_.size()); }
  int64_t num_outputs() const { return static_cast<int64_t>(out_dtypes_.size()); }
  std::string describe() const;

 private:
  friend class BoundProgram;
  std::vector<Instr> code_;
  std::vector<float> consts_;
  int32_t nregs_;
  std::vector<int32_t> in_dtypes_, out_dtypes_;
  bool row_mode_;
};

// A Program bound to fixed input shapes/strides and output shape: the plan (broadcast strides, collapsed dims,
// tiling) is made once, so a run only takes data pointers (the lowering's per-call fast path).
class BoundProgram {
 public:
  BoundProgram(const Program& prog, const std::vector<std::vector<int64_t>>& in_shapes,
               const std::vector<std::vector<int64_t>>& in_strides, const std::vector<int64_t>& out_shape);
  BoundProgram(const BoundProgram&) = delete;
  BoundProgram& operator=(const BoundProgram&) = delete;
  // ptrs: the inputs' data pointers, then the outputs'; checked for null / alignment.
  void run(const std::uintptr_t* ptrs, size_t n) const;
  int64_t num_inputs() const { return plan_.ninputs; }
  int64_t num_outputs() const { return plan_.noutputs; }
  int64_t numel() const { return plan_.numel; }

 private:
  std::vector<Instr> code_;
  std::vector<float> consts_;
  ProgPlan plan_;  // code/consts point into the vectors above
};

// Outputs of at least this many bytes are written with non-temporal stores (0: never, the default; plans made
// after a change see it).
std::atomic<int64_t>& program_stream_min_bytes();

// Runs a complete plan (ISA dispatch, tiles split over threads).
void run_plan(const ProgPlan& plan);

// Reduction entry (portable): x is a contiguous f32 [outer, red, inner] buffer, out [outer, inner].
void reduce_f32(const std::string& fn, std::uintptr_t x_ptr, std::uintptr_t out_ptr, int64_t outer, int64_t red,
                int64_t inner);
// out[o, i] = argmax over r of x[o, r, i] (int64; first maximum, NaN counts as the maximum).
void argmax_f32(std::uintptr_t x_ptr, std::uintptr_t out_ptr, int64_t outer, int64_t red, int64_t inner);

}  // namespace lg::kernels
