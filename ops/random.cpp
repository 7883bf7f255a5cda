// dropout_mask: the one random primitive. Its values are a pure function of (seed, offset), so
// the mask can be drawn again, identically, by compiled code.
#include "weft/autodiff/op.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

const OpDef& dropout_mask_op = register_op({
    .name = "dropout_mask",
    .infer = [](std::span<const Tensor>, const Attrs& attrs) -> TensorSpec {
      const double rate = attrs.real("rate");
      WEFT_CHECK(0 <= rate && rate < 1, "dropout: rate {} is outside [0, 1)", rate);
      const auto dtype = static_cast<DType>(attrs.integer("dtype"));
      WEFT_CHECK(is_floating(dtype), "dropout: mask dtype {} is not floating-point",
                 dtype_name(dtype));
      return {attrs.integers("shape"), dtype};
    },
    .forward =
        [](std::span<const Tensor>, const Attrs& attrs, const TensorSpec& spec) {
          const double rate = attrs.real("rate");
          const auto seed = static_cast<uint64_t>(attrs.integer("seed"));
          const auto offset = static_cast<uint64_t>(attrs.integer("offset"));
          Tensor out = empty(spec.shape, {.dtype = spec.dtype});
          dispatch_floating(spec.dtype, "dropout", [&]<typename T>() {
            const T keep = static_cast<T>(1 / (1 - rate));
            T* data = out.data<T>();
            for (int64_t i = 0; i < out.numel(); ++i)
              data[i] = random_uniform(seed, offset + i) >= rate ? keep : T(0);
          });
          return out;
        },
    .vjp = nullptr,
});

}  // namespace

Tensor dropout_mask(const Shape& shape, DType dtype, double rate, Generator& generator) {
  const uint64_t offset = generator.take(shape_numel(shape));
  return apply(dropout_mask_op, {},
               {{"shape", shape},
                {"dtype", static_cast<int64_t>(dtype)},
                {"rate", rate},
                {"seed", static_cast<int64_t>(generator.seed())},
                {"offset", static_cast<int64_t>(offset)}});
}

}  // namespace weft
