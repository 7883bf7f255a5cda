// Elementwise primitives. Each op is a struct: its name, its scalar function (the eager kernel
// maps it over the operands) and its VJP.
#include <cmath>

#include "weft/ops/definitions.h"
#include "weft/ops/kernels.h"
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"
#include "weft/runtime/fast_math.h"
#include "weft/runtime/op.h"

namespace weft {
namespace {

using Grads = std::vector<Tensor>;

Tensor scalar_like(double value, const Tensor& like) { return scalar(value, like.dtype()); }

// Every op struct below lowers one element with `lower`; the compiler fuses them into loops.
template <typename Op>
const Lowering element_lowering = ElementLowering{.emit = &Op::lower};

void check_same_dtype(std::string_view op, std::span<const Tensor> inputs) {
  for (const Tensor& input : inputs)
    WEFT_CHECK(input.dtype() == inputs[0].dtype(),
               "{}: operands have different dtypes: {} {} and {} {}", op,
               dtype_name(inputs[0].dtype()), shape_str(inputs[0].shape()),
               dtype_name(input.dtype()), shape_str(input.shape()));
}

Shape broadcast_all(std::string_view op, std::span<const Tensor> inputs) {
  Shape shape = inputs[0].shape();
  for (const Tensor& input : inputs.subspan(1)) shape = broadcast_shapes(op, shape, input.shape());
  return shape;
}

// ---- Unary ops on floating tensors --------------------------------------------------------

template <typename Op>
const OpDef& unary_op() {
  const OpDef& op = register_op({
      .name = Op::name,
      .infer = [](std::span<const Tensor> in, const Attrs&) -> TensorSpec {
        WEFT_CHECK(is_floating(in[0].dtype()), "{}: expects a floating-point tensor, got {} {}",
                   Op::name, dtype_name(in[0].dtype()), shape_str(in[0].shape()));
        return {in[0].shape(), in[0].dtype()};
      },
      .forward =
          [](std::span<const Tensor> in, const Attrs&, const TensorSpec& spec) {
            Tensor out = empty(spec.shape, {.dtype = spec.dtype});
            dispatch_floating(spec.dtype, Op::name, [&]<typename T>() {
              map_into<T, T>(
                  out, [](T x) { return Op::eval(x); }, in[0]);
            });
            return out;
          },
      .vjp = [](const VjpContext& c) -> Grads { return {Op::vjp(c.inputs[0], c.output, c.grad)}; },
  });
  register_lowering(op, element_lowering<Op>);
  return op;
}

struct Neg {
  static constexpr std::string_view name = "neg";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateFNeg(c.args[0]);
  }
  static auto eval(auto x) { return -x; }
  static Tensor vjp(const Tensor&, const Tensor&, const Tensor& g) { return neg(g); }
};
struct Exp {
  static constexpr std::string_view name = "exp";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.exp(c.dtype, c.args[0]);
  }
  static float eval(float x) { return fast::exp(x); }
  static double eval(double x) { return std::exp(x); }
  static Tensor vjp(const Tensor&, const Tensor& out, const Tensor& g) { return g * out; }
};
struct Log {
  static constexpr std::string_view name = "log";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateUnaryIntrinsic(llvm::Intrinsic::log, c.args[0]);
  }
  static auto eval(auto x) { return std::log(x); }
  static Tensor vjp(const Tensor& x, const Tensor&, const Tensor& g) { return g / x; }
};
struct Tanh {
  static constexpr std::string_view name = "tanh";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.tanh(c.dtype, c.args[0]);
  }
  static float eval(float x) { return fast::tanh(x); }
  static double eval(double x) { return std::tanh(x); }
  static Tensor vjp(const Tensor&, const Tensor& out, const Tensor& g) {
    return g * (1.0 - out * out);
  }
};
struct Sigmoid {
  static constexpr std::string_view name = "sigmoid";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.sigmoid(c.dtype, c.args[0]);
  }
  static float eval(float x) { return fast::sigmoid(x); }
  static double eval(double x) {  // never exponentiates a large positive number
    const double e = std::exp(-std::abs(x));
    return x >= 0 ? 1 / (1 + e) : e / (1 + e);
  }
  static Tensor vjp(const Tensor&, const Tensor& out, const Tensor& g) {
    return g * out * (1.0 - out);
  }
};
struct Relu {
  static constexpr std::string_view name = "relu";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateSelect(k.b.CreateFCmpOLT(c.args[0], k.constant(c.dtype, 0)),
                            k.constant(c.dtype, 0), c.args[0]);
  }
  template <typename T>
  static T eval(T x) {
    return x < T(0) ? T(0) : x;  // NaN stays NaN, as in TensorFlow
  }
  static Tensor vjp(const Tensor& x, const Tensor&, const Tensor& g) {
    return g * greater(x, scalar_like(0, x));
  }
};
struct Sqrt {
  static constexpr std::string_view name = "sqrt";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, c.args[0]);
  }
  static auto eval(auto x) { return std::sqrt(x); }
  static Tensor vjp(const Tensor&, const Tensor& out, const Tensor& g) { return g * 0.5 / out; }
};

}  // namespace

const OpDef& neg_op = unary_op<Neg>();
const OpDef& exp_op = unary_op<Exp>();
const OpDef& log_op = unary_op<Log>();
const OpDef& tanh_op = unary_op<Tanh>();
const OpDef& sigmoid_op = unary_op<Sigmoid>();
const OpDef& relu_op = unary_op<Relu>();
const OpDef& sqrt_op = unary_op<Sqrt>();

namespace {

// ---- Binary ops with broadcasting ---------------------------------------------------------

template <typename Op>
const OpDef& binary_op() {
  const OpDef& op = register_op({
      .name = Op::name,
      .infer = [](std::span<const Tensor> in, const Attrs&) -> TensorSpec {
        check_same_dtype(Op::name, in);
        WEFT_CHECK(is_floating(in[0].dtype()), "{}: expects floating-point tensors, got {}",
                   Op::name, dtype_name(in[0].dtype()));
        return {broadcast_all(Op::name, in), in[0].dtype()};
      },
      .forward =
          [](std::span<const Tensor> in, const Attrs&, const TensorSpec& spec) {
            Tensor out = empty(spec.shape, {.dtype = spec.dtype});
            dispatch_floating(spec.dtype, Op::name, [&]<typename T>() {
              map_into<T, T, T>(
                  out, [](T a, T b) { return Op::eval(a, b); }, broadcast_view(in[0], spec.shape),
                  broadcast_view(in[1], spec.shape));
            });
            return out;
          },
      .vjp = [](const VjpContext& c) -> Grads {
        const Tensor &a = c.inputs[0], &b = c.inputs[1];
        Grads grads(2);
        if (c.needs_grad[0]) grads[0] = sum_to(Op::vjp_a(a, b, c.output, c.grad), a.shape());
        if (c.needs_grad[1]) grads[1] = sum_to(Op::vjp_b(a, b, c.output, c.grad), b.shape());
        return grads;
      },
  });
  register_lowering(op, element_lowering<Op>);
  return op;
}

struct Add {
  static constexpr std::string_view name = "add";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateFAdd(c.args[0], c.args[1]);
  }
  static auto eval(auto a, auto b) { return a + b; }
  static Tensor vjp_a(const Tensor&, const Tensor&, const Tensor&, const Tensor& g) { return g; }
  static Tensor vjp_b(const Tensor&, const Tensor&, const Tensor&, const Tensor& g) { return g; }
};
struct Sub {
  static constexpr std::string_view name = "sub";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateFSub(c.args[0], c.args[1]);
  }
  static auto eval(auto a, auto b) { return a - b; }
  static Tensor vjp_a(const Tensor&, const Tensor&, const Tensor&, const Tensor& g) { return g; }
  static Tensor vjp_b(const Tensor&, const Tensor&, const Tensor&, const Tensor& g) {
    return neg(g);
  }
};
struct Mul {
  static constexpr std::string_view name = "mul";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateFMul(c.args[0], c.args[1]);
  }
  static auto eval(auto a, auto b) { return a * b; }
  static Tensor vjp_a(const Tensor&, const Tensor& b, const Tensor&, const Tensor& g) {
    return g * b;
  }
  static Tensor vjp_b(const Tensor& a, const Tensor&, const Tensor&, const Tensor& g) {
    return g * a;
  }
};
struct Div {
  static constexpr std::string_view name = "div";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateFDiv(c.args[0], c.args[1]);
  }
  static auto eval(auto a, auto b) { return a / b; }
  static Tensor vjp_a(const Tensor&, const Tensor& b, const Tensor&, const Tensor& g) {
    return g / b;
  }
  static Tensor vjp_b(const Tensor&, const Tensor& b, const Tensor& out, const Tensor& g) {
    return neg(g * out / b);
  }
};
struct Pow {
  static constexpr std::string_view name = "pow";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return k.b.CreateBinaryIntrinsic(llvm::Intrinsic::pow, c.args[0], c.args[1]);
  }
  static auto eval(auto a, auto b) { return std::pow(a, b); }
  static Tensor vjp_a(const Tensor& a, const Tensor& b, const Tensor&, const Tensor& g) {
    return g * b * pow(a, b - 1.0);
  }
  static Tensor vjp_b(const Tensor& a, const Tensor&, const Tensor& out, const Tensor& g) {
    return g * out * log(a);
  }
};

}  // namespace

const OpDef& add_op = binary_op<Add>();
const OpDef& sub_op = binary_op<Sub>();
const OpDef& mul_op = binary_op<Mul>();
const OpDef& div_op = binary_op<Div>();
const OpDef& pow_op = binary_op<Pow>();

namespace {

// ---- Comparisons: 0/1 in the operands' dtype, no gradient ---------------------------------

template <typename Op>
const OpDef& comparison_op() {
  const OpDef& op = register_op({
      .name = Op::name,
      .infer = [](std::span<const Tensor> in, const Attrs&) -> TensorSpec {
        check_same_dtype(Op::name, in);
        return {broadcast_all(Op::name, in), in[0].dtype()};
      },
      .forward =
          [](std::span<const Tensor> in, const Attrs&, const TensorSpec& spec) {
            Tensor out = empty(spec.shape, {.dtype = spec.dtype});
            dispatch_any(spec.dtype, [&]<typename T>() {
              map_into<T, T, T>(
                  out, [](T a, T b) { return static_cast<T>(Op::eval(a, b)); },
                  broadcast_view(in[0], spec.shape), broadcast_view(in[1], spec.shape));
            });
            return out;
          },
      .vjp = nullptr,
  });
  register_lowering(op, element_lowering<Op>);
  return op;
}

// 0 or 1 in the operands' dtype, as the eager kernel's static_cast<T>(bool).
llvm::Value* compare(KernelBuilder& k, const ElementCall& c, llvm::CmpInst::Predicate ordered,
                     llvm::CmpInst::Predicate integer) {
  const bool floating = is_floating(c.arg_dtypes[0]);
  llvm::Value* holds = floating ? k.b.CreateFCmp(ordered, c.args[0], c.args[1])
                                : k.b.CreateICmp(integer, c.args[0], c.args[1]);
  return floating ? k.b.CreateUIToFP(holds, k.type(c.dtype))
                  : k.b.CreateZExt(holds, k.type(c.dtype));
}

struct Greater {
  static constexpr std::string_view name = "greater";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return compare(k, c, llvm::CmpInst::FCMP_OGT, llvm::CmpInst::ICMP_SGT);
  }
  static bool eval(auto a, auto b) { return a > b; }
};
struct GreaterEqual {
  static constexpr std::string_view name = "greater_equal";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return compare(k, c, llvm::CmpInst::FCMP_OGE, llvm::CmpInst::ICMP_SGE);
  }
  static bool eval(auto a, auto b) { return a >= b; }
};
struct Less {
  static constexpr std::string_view name = "less";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return compare(k, c, llvm::CmpInst::FCMP_OLT, llvm::CmpInst::ICMP_SLT);
  }
  static bool eval(auto a, auto b) { return a < b; }
};
struct LessEqual {
  static constexpr std::string_view name = "less_equal";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return compare(k, c, llvm::CmpInst::FCMP_OLE, llvm::CmpInst::ICMP_SLE);
  }
  static bool eval(auto a, auto b) { return a <= b; }
};
struct Equal {
  static constexpr std::string_view name = "equal";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return compare(k, c, llvm::CmpInst::FCMP_OEQ, llvm::CmpInst::ICMP_EQ);
  }
  static bool eval(auto a, auto b) { return a == b; }
};
struct NotEqual {
  static constexpr std::string_view name = "not_equal";
  static llvm::Value* lower(KernelBuilder& k, const ElementCall& c) {
    return compare(k, c, llvm::CmpInst::FCMP_UNE, llvm::CmpInst::ICMP_NE);
  }
  static bool eval(auto a, auto b) { return a != b; }
};

}  // namespace

const OpDef& greater_op = comparison_op<Greater>();
const OpDef& greater_equal_op = comparison_op<GreaterEqual>();
const OpDef& less_op = comparison_op<Less>();
const OpDef& less_equal_op = comparison_op<LessEqual>();
const OpDef& equal_op = comparison_op<Equal>();
const OpDef& not_equal_op = comparison_op<NotEqual>();

namespace {

// ---- clip(x, low, high) -------------------------------------------------------------------

const Lowering clip_lowering =
    ElementLowering{.emit = [](KernelBuilder& k, const ElementCall& c) -> llvm::Value* {
      llvm::Value* x = c.args[0];
      llvm::Value* low = k.constant(c.dtype, c.attrs.real("low"));
      llvm::Value* high = k.constant(c.dtype, c.attrs.real("high"));
      return k.b.CreateSelect(k.b.CreateFCmpOLT(x, low), low,
                              k.b.CreateSelect(k.b.CreateFCmpOGT(x, high), high, x));
    }};

}  // namespace

const OpDef& clip_op = register_op({
    .name = "clip",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      WEFT_CHECK(is_floating(in[0].dtype()), "clip: expects a floating-point tensor, got {}",
                 dtype_name(in[0].dtype()));
      WEFT_CHECK(attrs.real("low") <= attrs.real("high"), "clip: low {} is above high {}",
                 attrs.real("low"), attrs.real("high"));
      return {in[0].shape(), in[0].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          dispatch_floating(spec.dtype, "clip", [&]<typename T>() {
            const T low = static_cast<T>(attrs.real("low")),
                    high = static_cast<T>(attrs.real("high"));
            map_into<T, T>(
                out, [=](T x) { return x < low    ? low
                                       : x > high ? high
                                                  : x; }, in[0]);
          });
          return out;
        },
    .vjp = [](const VjpContext& c) -> Grads {
      const Tensor& x = c.inputs[0];
      const Tensor inside = greater_equal(x, scalar_like(c.attrs.real("low"), x)) *
                            less_equal(x, scalar_like(c.attrs.real("high"), x));
      return {c.grad * inside};
    },
});
const bool clip_lowered = register_lowering(clip_op, clip_lowering);

namespace {

// ---- where(cond, a, b) --------------------------------------------------------------------

const Lowering where_lowering =
    ElementLowering{.emit = [](KernelBuilder& k, const ElementCall& c) -> llvm::Value* {
      llvm::Value* cond = c.args[0];
      llvm::Value* zero = k.constant(c.arg_dtypes[0], 0);
      llvm::Value* holds = is_floating(c.arg_dtypes[0]) ? k.b.CreateFCmpUNE(cond, zero)
                                                        : k.b.CreateICmpNE(cond, zero);
      return k.b.CreateSelect(holds, c.args[1], c.args[2]);
    }};

}  // namespace

const OpDef& where_op = register_op({
    .name = "where",
    .infer = [](std::span<const Tensor> in, const Attrs&) -> TensorSpec {
      check_same_dtype("where", in.subspan(1));
      return {broadcast_all("where", in), in[1].dtype()};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs&, const TensorSpec& spec) {
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          dispatch_any(in[0].dtype(), [&]<typename C>() {
            dispatch_any(spec.dtype, [&]<typename T>() {
              map_into<T, C, T, T>(
                  out, [](C c, T a, T b) { return c != C(0) ? a : b; },
                  broadcast_view(in[0], spec.shape), broadcast_view(in[1], spec.shape),
                  broadcast_view(in[2], spec.shape));
            });
          });
          return out;
        },
    .vjp = [](const VjpContext& c) -> Grads {
      const Tensor& cond = c.inputs[0];
      const Tensor zero = scalar_like(0, c.grad);
      Grads grads(3);
      if (c.needs_grad[0]) grads[0] = zeros_like(cond);  // piecewise constant in cond
      if (c.needs_grad[1]) grads[1] = sum_to(where(cond, c.grad, zero), c.inputs[1].shape());
      if (c.needs_grad[2]) grads[2] = sum_to(where(cond, zero, c.grad), c.inputs[2].shape());
      return grads;
    },
});
const bool where_lowered = register_lowering(where_op, where_lowering);

namespace {

// ---- cast(x, dtype) -----------------------------------------------------------------------

const Lowering cast_lowering = ElementLowering{.emit = [](KernelBuilder& k, const ElementCall& c) {
  return k.convert(c.args[0], c.arg_dtypes[0], c.dtype);
}};

}  // namespace

const OpDef& cast_op = register_op({
    .name = "cast",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      return {in[0].shape(), static_cast<DType>(attrs.integer("dtype"))};
    },
    .forward = [](std::span<const Tensor> in, const Attrs&,
                  const TensorSpec& spec) { return to_dtype(in[0], spec.dtype); },
    .vjp = [](const VjpContext& c) -> Grads { return {cast(c.grad, c.inputs[0].dtype())}; },
});
const bool cast_lowered = register_lowering(cast_op, cast_lowering);

Tensor neg(const Tensor& x) { return apply(neg_op, {x}); }
Tensor exp(const Tensor& x) { return apply(exp_op, {x}); }
Tensor log(const Tensor& x) { return apply(log_op, {x}); }
Tensor tanh(const Tensor& x) { return apply(tanh_op, {x}); }
Tensor sigmoid(const Tensor& x) { return apply(sigmoid_op, {x}); }
Tensor relu(const Tensor& x) { return apply(relu_op, {x}); }
Tensor sqrt(const Tensor& x) { return apply(sqrt_op, {x}); }
Tensor add(const Tensor& a, const Tensor& b) { return apply(add_op, {a, b}); }
Tensor sub(const Tensor& a, const Tensor& b) { return apply(sub_op, {a, b}); }
Tensor mul(const Tensor& a, const Tensor& b) { return apply(mul_op, {a, b}); }
Tensor div(const Tensor& a, const Tensor& b) { return apply(div_op, {a, b}); }
Tensor pow(const Tensor& base, const Tensor& exponent) { return apply(pow_op, {base, exponent}); }
Tensor greater(const Tensor& a, const Tensor& b) { return apply(greater_op, {a, b}); }
Tensor greater_equal(const Tensor& a, const Tensor& b) { return apply(greater_equal_op, {a, b}); }
Tensor less(const Tensor& a, const Tensor& b) { return apply(less_op, {a, b}); }
Tensor less_equal(const Tensor& a, const Tensor& b) { return apply(less_equal_op, {a, b}); }
Tensor equal(const Tensor& a, const Tensor& b) { return apply(equal_op, {a, b}); }
Tensor not_equal(const Tensor& a, const Tensor& b) { return apply(not_equal_op, {a, b}); }
Tensor clip(const Tensor& x, double low, double high) {
  return apply(clip_op, {x}, {{"low", low}, {"high", high}});
}
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return apply(where_op, {cond, a, b});
}
Tensor cast(const Tensor& x, DType dtype) {
  return apply(cast_op, {x}, {{"dtype", static_cast<int64_t>(dtype)}});
}

}  // namespace weft
