// Running a compiled step, and the cache of compiled steps (compile.h).
#include <mutex>

#include "weft/compiler/compile.h"
#include "weft/compiler/runtime_calls.h"
#include "weft/runtime/error.h"

namespace weft {

std::vector<Tensor> CompiledStep::run(const std::vector<Tensor>& inputs) const {
  WEFT_CHECK(inputs.size() == inputs_.size(), "compiled step '{}': {} inputs for a step of {}",
             module_->name(), inputs.size(), inputs_.size());
  std::vector<Tensor> held(inputs.size());  // contiguous copies of strided inputs
  std::vector<void*> buffers;
  for (size_t i = 0; i < inputs.size(); ++i) {
    WEFT_CHECK(inputs[i].defined(), "compiled step '{}': input \"{}\" is undefined",
               module_->name(), input_names_[i]);
    WEFT_CHECK(inputs[i].shape() == inputs_[i].shape && inputs[i].dtype() == inputs_[i].dtype,
               "compiled step '{}': input \"{}\" is {} {}, the step was compiled for {} {}",
               module_->name(), input_names_[i], dtype_name(inputs[i].dtype()),
               shape_str(inputs[i].shape()), dtype_name(inputs_[i].dtype),
               shape_str(inputs_[i].shape));
    held[i] = inputs[i].is_contiguous() ? inputs[i] : inputs[i].copy();
    buffers.push_back(held[i].raw_data());
  }
  std::vector<Tensor> outputs;
  for (const TensorSpec& spec : outputs_) {
    outputs.push_back(empty(spec.shape, {.dtype = spec.dtype}));
    buffers.push_back(outputs.back().raw_data());
  }
  for (const Tensor& constant : constants_) buffers.push_back(constant.raw_data());
  std::lock_guard lock(*running_);
  const int32_t status = step_(buffers.data(), static_cast<char*>(arena_->data()));
  WEFT_CHECK(status != 1, "compiled step '{}': {}", module_->name(), jit_take_runtime_error());
  if (status == 0)
    for (size_t i : stored_inputs_) {
      if (held[i].impl() != inputs[i].impl()) inputs[i].assign_(held[i]);
      inputs[i].mark_modified();
    }
  return outputs;
}

int64_t CompiledStep::memory_bytes() const {
  int64_t bytes = static_cast<int64_t>(arena_->bytes());
  for (const Tensor& constant : constants_)
    bytes += constant.numel() * static_cast<int64_t>(dtype_size(constant.dtype()));
  return bytes + module_->object_bytes();
}

// ---- StepCache --------------------------------------------------------------------------------

const CompiledStep* StepCache::find(const std::string& key) const {
  for (const Entry& entry : entries_)
    if (entry.key == key) return entry.step.get();
  return nullptr;
}

const CompiledStep& StepCache::insert(const std::string& key, CompiledStep step) {
  std::erase_if(entries_, [&](const Entry& entry) { return entry.key == key; });
  entries_.push_back({key, std::make_shared<const CompiledStep>(std::move(step))});
  while (entries_.size() > 1 && memory_bytes() > memory_bound_) {
    entries_.erase(entries_.begin());
    ++evictions_;
  }
  return *entries_.back().step;
}

void StepCache::clear() { entries_.clear(); }

int64_t StepCache::memory_bytes() const {
  int64_t bytes = 0;
  for (const Entry& entry : entries_) bytes += entry.step->memory_bytes();
  return bytes;
}

}  // namespace weft
