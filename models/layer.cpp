#include "weft/models/layer.h"

#include <cctype>
#include <cmath>

#include "weft/models/keras_format.h"
#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {

Layer::Layer(const Layer& other)
    : declared_input_shape_(other.declared_input_shape_),
      declared_batch_size_(other.declared_batch_size_),
      dtype_(other.dtype_),
      name_(other.name_) {
  // Weights live in the deque and layers hold pointers into it: only unbuilt layers copy.
  WEFT_CHECK(!other.built(), "layer \"{}\" is built; only unbuilt layers can be copied",
             other.name_);
}

std::string Layer::base_name() const {
  // Keras's to_snake_case: "SimpleRNN" -> "simple_rnn", "LSTM" -> "lstm".
  const std::string type = type_name();
  std::string out;
  for (size_t i = 0; i < type.size(); ++i) {
    const char c = type[i];
    const bool upper = std::isupper(static_cast<unsigned char>(c));
    const bool after_lower = i > 0 && std::islower(static_cast<unsigned char>(type[i - 1]));
    const bool starts_word = i > 0 && i + 1 < type.size() &&
                             std::isupper(static_cast<unsigned char>(type[i - 1])) &&
                             std::islower(static_cast<unsigned char>(type[i + 1]));
    if (upper && (after_lower || starts_word)) out += '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

const Shape& Layer::input_shape() const {
  WEFT_CHECK(input_shape_.has_value(), "layer \"{}\" is not built yet", name_);
  return *input_shape_;
}

const Shape& Layer::output_shape() const {
  WEFT_CHECK(output_shape_.has_value(), "layer \"{}\" is not built yet", name_);
  return *output_shape_;
}

const std::vector<Tensor>& Layer::states(int64_t /*batch*/) {
  static const std::vector<Tensor> none;
  return none;
}

std::vector<Weight*> Layer::weights() {
  std::vector<Weight*> out;
  out.reserve(weights_.size());  // one allocation: a streaming call asks every layer
  for (Weight& w : weights_) out.push_back(&w);
  return out;
}

int64_t Layer::count_params() {
  int64_t total = 0;
  for (const Weight* w : weights()) total += w->value.numel();
  return total;
}

Shape Layer::build_for(const Shape& input_shape, Generator& generator) {
  if (built()) {
    WEFT_CHECK(input_shape == *input_shape_,
               "layer \"{}\" was built for inputs of shape {} and cannot take {}", name_,
               keras_shape(*input_shape_), keras_shape(input_shape));
    return *output_shape_;
  }
  Shape output = build(input_shape, generator);
  input_shape_ = input_shape;
  output_shape_ = output;
  return output;
}

Weight& Layer::add_weight(std::string weight_name, const Shape& shape,
                          const Initializer& initializer, Generator& generator) {
  WeightsFromFile* from_file = WeightsFromFile::active();
  if (from_file != nullptr) from_file->take(weight_name, shape);
  Tensor value = from_file != nullptr ? zeros(shape, {.dtype = dtype_})
                                      : to_dtype(initializer(shape, generator), dtype_);
  value.requires_grad_();
  return weights_.emplace_back(Weight{std::move(weight_name), value, true});
}

namespace {
thread_local WeightsFromFile* active_scope = nullptr;
}  // namespace

WeightsFromFile::WeightsFromFile(int64_t elements)
    : elements_(elements), left_(elements), outer_(active_scope) {
  active_scope = this;
}

WeightsFromFile::~WeightsFromFile() { active_scope = outer_; }

WeightsFromFile* WeightsFromFile::active() { return active_scope; }

void WeightsFromFile::take(const std::string& weight, const Shape& shape) {
  auto check = [&](bool fits) {
    WEFT_CHECK(fits,
               "weight \"{}\" of shape {} would hold more values than the {} the model's weights "
               "hold in all",
               weight, shape_str(shape), elements_);
  };
  int64_t n = 1;
  for (const int64_t d : shape) {
    check(d >= 0 && (d == 0 || n <= left_ / d));  // by division, so that no product overflows
    n *= d;
  }
  check(n <= left_);
  left_ -= n;
}

void Layer::expect_ndim(const Shape& input_shape, int64_t ndim) const {
  const int64_t found = static_cast<int64_t>(input_shape.size()) + 1;  // with the batch axis
  WEFT_CHECK(found == ndim,
             "Input 0 of layer \"{}\" is incompatible with the layer: expected ndim={}, found "
             "ndim={}. Full shape received: {}",
             name_, ndim, found, keras_shape(input_shape));
}

namespace {
Tensor linear(const Tensor& x) { return x; }
Tensor softmax_last(const Tensor& x) { return softmax(x, -1); }
// Keras 2's and TensorFlow.js's (TF.js's default recurrent_activation): clip(0.2·x + 0.5, 0, 1).
Tensor hard_sigmoid(const Tensor& x) { return clip(x * 0.2 + 0.5, 0, 1); }
}  // namespace

Activation activation_by_name(const std::string& name) {
  if (name == "linear") return linear;
  if (name == "relu") return relu;
  if (name == "sigmoid") return sigmoid;
  if (name == "tanh") return tanh;
  if (name == "softmax") return softmax_last;
  if (name == "hard_sigmoid") return hard_sigmoid;
  throw Error(
      "unknown activation \"{}\" (known: linear, relu, sigmoid, tanh, softmax, hard_sigmoid)",
      name);
}

Tensor glorot_uniform(const Shape& shape, Generator& generator) {
  WEFT_CHECK(shape.size() == 2, "glorot_uniform: expects a 2-D shape, got {}", shape_str(shape));
  const double limit = std::sqrt(6.0 / static_cast<double>(shape[0] + shape[1]));
  return uniform(shape, -limit, limit, {.dtype = DType::f64}, generator);
}

Tensor orthogonal(const Shape& shape, Generator& generator) {
  WEFT_CHECK(shape.size() == 2, "orthogonal: expects a 2-D shape, got {}", shape_str(shape));
  // Keras: Q of the QR decomposition of a (max, min) normal matrix with R's diagonal made
  // positive, transposed when there are fewer rows than columns. Modified Gram-Schmidt yields
  // that Q directly (its R has a positive diagonal).
  const int64_t rows = shape[0], cols = shape[1];
  const int64_t m = std::max(rows, cols), n = std::min(rows, cols);
  std::vector<double> a = randn({m, n}, {.dtype = DType::f64}, generator).to_vector<double>();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      double dot = 0;
      for (int64_t i = 0; i < m; ++i) dot += a[i * n + k] * a[i * n + j];
      for (int64_t i = 0; i < m; ++i) a[i * n + j] -= dot * a[i * n + k];
    }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += a[i * n + j] * a[i * n + j];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < m; ++i) a[i * n + j] /= norm;
  }
  const Tensor q = from_vector(a, {m, n});
  return rows < cols ? transpose(q) : q;
}

Tensor uniform_initializer(const Shape& shape, double low, double high, Generator& generator) {
  return uniform(shape, low, high, {.dtype = DType::f64}, generator);
}

Tensor zeros_initializer(const Shape& shape, Generator&) {
  return zeros(shape, {.dtype = DType::f64});
}

}  // namespace weft
