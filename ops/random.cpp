// dropout_mask: the one random primitive. Its values are a pure function of the stream's seed and
// counter, read from a small int64 tensor input, so compiled code draws the same masks as the
// eager kernel and a compiled step draws fresh ones on every run.
#include "weft/ops/lowering.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {
namespace {

// The counter of element i: the stream state's counter, plus the op's offset within the step,
// plus the rows before the state's first row (BatchRows).
uint64_t counter_base(const Tensor& state, const Attrs& attrs) {
  const std::vector<int64_t> values = state.to_vector<int64_t>();
  return static_cast<uint64_t>(values[1] + attrs.integer("offset") +
                               values[2] * attrs.integer("row_size"));
}

// Counters per row of a mask: its elements after the first axis.
int64_t row_size(const Shape& shape) {
  return shape.empty() || shape[0] == 0 ? 0 : shape_numel(shape) / shape[0];
}

const Lowering dropout_mask_lowering =
    KernelLowering{.emit = [](KernelBuilder& k, std::span<const Access> in, const Access& out,
                              const Attrs& attrs) {
      llvm::IRBuilder<>& b = k.b;
      const Access& state = in[0];
      llvm::Value* seed = k.load(state, std::vector<llvm::Value*>{k.i64(0)});
      llvm::Value* first_row = k.load(state, std::vector<llvm::Value*>{k.i64(2)});
      llvm::Value* base =
          b.CreateAdd(b.CreateAdd(k.load(state, std::vector<llvm::Value*>{k.i64(1)}),
                                  k.i64(attrs.integer("offset"))),
                      b.CreateMul(first_row, k.i64(attrs.integer("row_size"))));
      const double rate = attrs.real("rate");
      llvm::Value* keep = k.constant(out.dtype, 1 / (1 - rate));
      const Access flat{out.data, {shape_numel(out.shape)}, {1}, out.dtype};
      k.loop(shape_numel(out.shape), [&](llvm::Value* i) {
        // random_fraction_bits(seed, base + i) (runtime/random.h), compared as the eager kernel
        // compares it.
        llvm::Value* counter = b.CreateAdd(base, i);
        llvm::Value* z = b.CreateAdd(
            seed, b.CreateMul(b.CreateAdd(counter, k.i64(1)), k.i64(0x9E3779B97F4A7C15ll)));
        z = b.CreateMul(b.CreateXor(z, b.CreateLShr(z, 30)), k.i64(0xBF58476D1CE4E5B9ll));
        z = b.CreateMul(b.CreateXor(z, b.CreateLShr(z, 27)), k.i64(0x94D049BB133111EBll));
        z = b.CreateXor(z, b.CreateLShr(z, 31));
        llvm::Value* kept = b.CreateICmpUGE(
            b.CreateLShr(z, 11), k.i64(static_cast<int64_t>(least_fraction_bits_at(rate))));
        k.store(flat, std::vector<llvm::Value*>{i},
                b.CreateSelect(kept, keep, k.constant(out.dtype, 0)));
      });
    }};

}  // namespace

const OpDef& dropout_mask_op = register_op({
    .name = "dropout_mask",
    .infer = [](std::span<const Tensor> in, const Attrs& attrs) -> TensorSpec {
      WEFT_CHECK(in[0].dtype() == DType::i64 && in[0].shape() == Shape{3},
                 "dropout: the random state must be int64 (3,) [seed, counter, first row], got "
                 "{} {}",
                 dtype_name(in[0].dtype()), shape_str(in[0].shape()));
      const double rate = attrs.real("rate");
      WEFT_CHECK(0 <= rate && rate < 1, "dropout: rate {} is outside [0, 1)", rate);
      const auto dtype = static_cast<DType>(attrs.integer("dtype"));
      WEFT_CHECK(is_floating(dtype), "dropout: mask dtype {} is not floating-point",
                 dtype_name(dtype));
      return {attrs.integers("shape"), dtype};
    },
    .forward =
        [](std::span<const Tensor> in, const Attrs& attrs, const TensorSpec& spec) {
          const double rate = attrs.real("rate");
          const auto seed = static_cast<uint64_t>(in[0].to_vector<int64_t>()[0]);
          const uint64_t base = counter_base(in[0], attrs);
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          dispatch_floating(spec.dtype, "dropout", [&]<typename T>() {
            const T keep = static_cast<T>(1 / (1 - rate));
            const uint64_t least_kept = least_fraction_bits_at(rate);
            T* data = out.data<T>();
            // The count read once: GCC vectorises the loop only then.
            const int64_t count = out.numel();
            for (int64_t i = 0; i < count; ++i)
              data[i] = random_fraction_bits(seed, base + i) >= least_kept ? keep : T(0);
          });
          return out;
        },
    .vjp = nullptr,
});
const bool dropout_mask_lowered = register_lowering(dropout_mask_op, dropout_mask_lowering);

namespace {

thread_local RandomStateScope* active_random_scope = nullptr;

}  // namespace

RandomStateScope::RandomStateScope(Generator& generator, Tensor state,
                                   std::optional<BatchRows> part)
    : generator_(generator), state_(std::move(state)), part_(part), previous_(active_random_scope) {
  active_random_scope = this;
}

RandomStateScope::~RandomStateScope() { active_random_scope = previous_; }

uint64_t RandomStateScope::take(const Shape& mask_shape) {
  const uint64_t offset = taken_;
  uint64_t counters = shape_numel(mask_shape);
  if (part_) {
    // The whole batch's mask has whole_rows rows of the same size, drawn at this offset.
    if (mask_shape.empty() || mask_shape[0] != part_->rows) drawn_by_row_ = false;
    counters = static_cast<uint64_t>(row_size(mask_shape) * part_->whole_rows);
  }
  taken_ += counters;
  return offset;
}

namespace {

void write_state(const Tensor& state, uint64_t seed, uint64_t offset) {
  int64_t* values = state.data<int64_t>();
  values[0] = static_cast<int64_t>(seed);
  values[1] = static_cast<int64_t>(offset);
  values[2] = 0;
  state.mark_modified();
}

// A new [seed, offset, 0]: every step's call but a repeated inference makes one.
Tensor state_tensor(uint64_t seed, uint64_t offset) {
  Tensor state = empty({3}, {.dtype = DType::i64});
  write_state(state, seed, offset);
  return state;
}

}  // namespace

Tensor random_state(const Generator& generator) {
  return state_tensor(generator.seed(), generator.offset());
}

void write_random_state(const Tensor& state, const Generator& generator) {
  // Sizes compared one by one: a Shape to compare with would allocate on every streaming call.
  WEFT_CHECK(state.dtype() == DType::i64 && state.dim() == 1 && state.size(0) == 3 &&
                 state.is_contiguous(),
             "write_random_state: expects a contiguous int64 (3,) tensor, got {} {}",
             dtype_name(state.dtype()), shape_str(state.shape()));
  write_state(state, generator.seed(), generator.offset());
}

Tensor dropout_mask(const Shape& shape, DType dtype, double rate, Generator& generator) {
  RandomStateScope* scope = active_random_scope;
  const bool bound = scope != nullptr && &scope->generator() == &generator;
  // Unbound, the state is [seed, 0, 0] and the offset the absolute counter.
  const Tensor state = bound ? scope->state() : state_tensor(generator.seed(), 0);
  const uint64_t offset = bound ? scope->take(shape) : generator.take(shape_numel(shape));
  return apply(dropout_mask_op, {state},
               {{"shape", shape},
                {"dtype", static_cast<int64_t>(dtype)},
                {"rate", rate},
                {"offset", static_cast<int64_t>(offset)},
                {"row_size", row_size(shape)}});
}

}  // namespace weft
