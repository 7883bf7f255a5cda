#include "weft/runtime/op.h"

#include <deque>
#include <mutex>

namespace weft {

const AttrValue& Attrs::find(std::string_view name) const {
  for (const auto& [key, value] : items_)
    if (key == name) return value;
  throw Error("op attribute '{}' is missing", name);
}

size_t Attrs::hash() const {
  size_t hash = items_.size();
  const auto mix = [&](size_t value) { hash = (hash ^ value) * 0x100000001b3ULL; };
  for (const auto& item : items_)
    std::visit(
        [&](const auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<int64_t>>) {
            mix(v.size());
            for (int64_t element : v) mix(std::hash<int64_t>{}(element));
          } else {
            mix(std::hash<std::decay_t<decltype(v)>>{}(v));
          }
        },
        item.second);
  return hash;
}

std::string Attrs::to_string() const {
  std::string text;
  for (const auto& [key, value] : items_) {
    if (!text.empty()) text += ", ";
    text += fmt::format("{}=", key);
    std::visit(
        [&](const auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::vector<int64_t>>)
            text += fmt::format("[{}]", fmt::join(v, ", "));
          else
            text += fmt::format("{}", v);
        },
        value);
  }
  return text;
}

namespace {
struct Registry {
  std::mutex mutex;
  std::deque<OpDef> ops;  // a deque keeps the returned references stable
};
Registry& registry() {
  static Registry instance;
  return instance;
}
thread_local bool grad_mode = true;
thread_local Tracer* tracer = nullptr;
GradRecorder grad_recorder = nullptr;
}  // namespace

const OpDef& register_op(const OpDef& definition) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (const OpDef& op : r.ops)
    WEFT_CHECK(op.name != definition.name, "op '{}' is registered twice", definition.name);
  return r.ops.emplace_back(definition);
}

std::vector<const OpDef*> registered_ops() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<const OpDef*> ops;
  for (const OpDef& op : r.ops) ops.push_back(&op);
  return ops;
}

const OpDef* find_op(std::string_view name) {
  for (const OpDef* op : registered_ops())
    if (op->name == name) return op;
  return nullptr;
}

Tensor apply(const OpDef& op, std::vector<Tensor> inputs, Attrs attrs) {
  for (size_t i = 0; i < inputs.size(); ++i)
    WEFT_CHECK(inputs[i].defined(), "{}: input {} is an undefined tensor", op.name, i);
  const TensorSpec spec = op.infer(inputs, attrs);
  Tensor output;
  if (meta_capture_active()) {
    output = meta_tensor(spec.shape, spec.dtype, op.name);
  } else {
    output = op.forward(inputs, attrs, spec);
    for (const Tensor& input : inputs)  // each result is its own tensor, never an input's handle
      if (output.impl() == input.impl())
        output = make_view(input, input.shape(), input.strides(), input.impl()->offset);
  }

  if (tracer != nullptr) tracer->on_op(op, inputs, attrs, output);

  // Integer results (indices, casts to int) carry no gradient.
  bool record = false;
  if (op.vjp != nullptr && grad_enabled() && is_floating(output.dtype()))
    for (const Tensor& input : inputs) record = record || input.requires_grad();
  if (record) {
    output.impl()->grad_fn = grad_recorder(op, std::move(attrs), std::move(inputs), output);
    output.impl()->requires_grad = true;
  }
  return output;
}

bool install_grad_recorder(GradRecorder recorder) {
  grad_recorder = recorder;
  return true;
}

Tracer* active_tracer() { return tracer; }
bool meta_capture_active() { return tracer != nullptr && !tracer->computes_values(); }
TracingScope::TracingScope(Tracer& installed) : previous_(tracer) { tracer = &installed; }
TracingScope::~TracingScope() { tracer = previous_; }

bool grad_enabled() { return grad_mode; }
NoGrad::NoGrad() : previous_(grad_mode) { grad_mode = false; }
NoGrad::~NoGrad() { grad_mode = previous_; }

}  // namespace weft
