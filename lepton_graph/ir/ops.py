"""The closed set of operations the IR knows, grouped so rules and backends test membership, not lists."""

from __future__ import annotations

import enum


class Op(enum.Enum):
    # -- elementwise, unary
    NEG = "neg"
    ABS = "abs"
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    ERF = "erf"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"
    GELU = "gelu"  # attrs: approximate ("none" | "tanh")
    SILU = "silu"
    SIN = "sin"
    COS = "cos"
    RECIPROCAL = "reciprocal"
    LOGICAL_NOT = "logical_not"
    CLAMP = "clamp"  # attrs: min, max (None = unbounded)
    CAST = "cast"  # attrs: dtype
    # -- elementwise, binary (second operand is a tensor input or attrs["scalar"])
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"  # attrs: rounding_mode
    POW = "pow"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    LOGICAL_AND = "logical_and"
    LOGICAL_OR = "logical_or"
    # -- elementwise, ternary
    WHERE = "where"  # inputs: cond, a, b (b or a may be attrs["scalar_a"/"scalar_b"])
    # -- reductions and normalised reductions
    SUM = "sum"  # attrs: dims, keepdim, dtype
    MEAN = "mean"
    AMAX = "amax"
    AMIN = "amin"
    ARGMAX = "argmax"  # attrs: dim, keepdim
    SOFTMAX = "softmax"  # attrs: dim
    LOG_SOFTMAX = "log_softmax"
    # -- linear algebra
    LINEAR = "linear"  # inputs: x, w[, b]  (y = x @ w.T + b)
    MATMUL = "matmul"  # batched, broadcasting
    ADDMM = "addmm"  # inputs: bias, a, b; attrs: beta, alpha
    # -- quantized linear algebra (defs/quant.py)
    # inputs: x (f32), w (i8 [N, K]), w_scale (f32 [N])[, b]; attrs: act ("dynamic" / "static"), scale, zero_point
    QLINEAR = "qlinear"
    # weight-only: x (f32), q (i8 [N, K] or u8 [N, ceil(K / 2)] int4 pairs), scale (f32 [N, G]), zero (u8 [N, G])
    # [, b]; attrs: bits (8 / 4), group (k per group; 0: one per channel)
    WQLINEAR = "wqlinear"
    # inputs: x (f32 NCHW), w (i8 [OC, C, KH, KW]), w_scale (f32 [OC])[, b]; attrs: stride, padding, dilation,
    # groups (1), act ("dynamic": per image at run time / "static"), scale, zero_point
    QCONV2D = "qconv2d"
    # -- convolution and pooling
    CONV2D = "conv2d"  # inputs: x, w[, b]; attrs: stride, padding, dilation, groups
    MAX_POOL2D = "max_pool2d"
    AVG_POOL2D = "avg_pool2d"
    ADAPTIVE_AVG_POOL2D = "adaptive_avg_pool2d"
    # -- normalisation
    LAYER_NORM = "layer_norm"  # inputs: x[, w[, b]]; attrs: normalized_shape, eps
    RMS_NORM = "rms_norm"
    BATCH_NORM = "batch_norm"  # inference form; inputs: x, w, b, mean, var; attrs: eps
    # -- attention
    SDPA = "sdpa"  # inputs: q, k, v[, mask]; attrs: is_causal, scale, enable_gqa
    # -- shape and data movement
    RESHAPE = "reshape"  # attrs: shape (may hold InputRef for symbolic dims)
    PERMUTE = "permute"
    TRANSPOSE = "transpose"
    EXPAND = "expand"
    SQUEEZE = "squeeze"
    UNSQUEEZE = "unsqueeze"
    SLICE = "slice"  # attrs: dim, start, end, step
    SELECT = "select"  # attrs: dim, index
    CAT = "cat"
    SPLIT = "split"  # multiple outputs; attrs: sizes, dim
    CONTIGUOUS = "contiguous"  # attrs: memory_format
    EMBEDDING = "embedding"  # inputs: weight, indices
    GATHER = "gather"
    INDEX_SELECT = "index_select"
    # -- creation
    ARANGE = "arange"  # attrs: start, end, step, dtype
    FULL = "full"  # attrs: shape, value, dtype
    # -- symbolic integer arithmetic (dynamic shapes)
    SYM_SIZE = "sym_size"  # attrs: dim; output is a scalar i64
    SYM_ARITH = "sym_arith"  # attrs: fn ("add" | "sub" | "mul" | "floordiv")
    # -- composite nodes made by passes
    FUSED = "fused"  # a fusion group: attrs["body"] is a sub-graph
    # -- anything else: runs through torch
    FALLBACK = "fallback"  # attrs: target ("aten::name.overload"), args/kwargs templates


class OpGroup:
    UNARY = frozenset(
        {
            Op.NEG,
            Op.ABS,
            Op.EXP,
            Op.LOG,
            Op.SQRT,
            Op.RSQRT,
            Op.ERF,
            Op.TANH,
            Op.SIGMOID,
            Op.RELU,
            Op.GELU,
            Op.SILU,
            Op.SIN,
            Op.COS,
            Op.RECIPROCAL,
            Op.LOGICAL_NOT,
            Op.CLAMP,
            Op.CAST,
        }
    )
    BINARY = frozenset(
        {
            Op.ADD,
            Op.SUB,
            Op.MUL,
            Op.DIV,
            Op.POW,
            Op.MAXIMUM,
            Op.MINIMUM,
            Op.EQ,
            Op.NE,
            Op.LT,
            Op.LE,
            Op.GT,
            Op.GE,
            Op.LOGICAL_AND,
            Op.LOGICAL_OR,
        }
    )
    ELEMENTWISE = UNARY | BINARY | {Op.WHERE}
    COMMUTATIVE = frozenset({Op.ADD, Op.MUL, Op.MAXIMUM, Op.MINIMUM, Op.EQ, Op.NE, Op.LOGICAL_AND, Op.LOGICAL_OR})
    COMPARISON = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE})
    REDUCTION = frozenset({Op.SUM, Op.MEAN, Op.AMAX, Op.AMIN, Op.ARGMAX, Op.SOFTMAX, Op.LOG_SOFTMAX})
    GEMM = frozenset({Op.LINEAR, Op.MATMUL, Op.ADDMM, Op.QLINEAR, Op.WQLINEAR})
    QUANT = frozenset({Op.QLINEAR, Op.WQLINEAR, Op.QCONV2D})
    CONV = frozenset({Op.CONV2D, Op.QCONV2D})
    POOL = frozenset({Op.MAX_POOL2D, Op.AVG_POOL2D, Op.ADAPTIVE_AVG_POOL2D})
    NORM = frozenset({Op.LAYER_NORM, Op.RMS_NORM, Op.BATCH_NORM})
    # ops whose output may alias their input's storage (no data movement when done as a view)
    VIEW = frozenset({Op.RESHAPE, Op.PERMUTE, Op.TRANSPOSE, Op.EXPAND, Op.SQUEEZE, Op.UNSQUEEZE, Op.SLICE, Op.SELECT})
    SHAPE = VIEW | {Op.CAT, Op.SPLIT, Op.CONTIGUOUS}
    CREATION = frozenset({Op.ARANGE, Op.FULL})
    SYMBOLIC = frozenset({Op.SYM_SIZE, Op.SYM_ARITH})
