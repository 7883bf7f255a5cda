// Running a compiled step, and the cache of compiled steps (compile.h).
#include <llvm/ADT/SmallVector.h>

#include <algorithm>
#include <mutex>
#include <span>

#include "weft/compiler/compile.h"
#include "weft/compiler/runtime_calls.h"
#include "weft/runtime/error.h"
#include "weft/runtime/gemm.h"

namespace weft {

// Making a packed copy costs about what 5 to 7 products gain from it (1 x 32 x 512 to
// 1 x 512 x 2048, measured), so an input is packed once this many products have read it unchanged
// since it last changed, this run's included: weights that change more often than that never
// cost more copying than the copies would have gained (ski rental), and a run that reads them
// that often itself (a long sequence of batch 1) packs them before its first product.
constexpr int64_t products_worth_a_copy = 6;

struct CompiledStep::PackedInputs {
  struct Seen {
    std::weak_ptr<Storage> storage;
    uint64_t version = 0;
    const void* data = nullptr;
    int64_t products = 0;  // read since it last changed
    std::shared_ptr<const PackedB> packed;
  };
  explicit PackedInputs(size_t count) : seen(count) {}

  // The copies this run reads, made now where due; `inputs` are the run's.
  llvm::SmallVector<std::shared_ptr<const PackedB>, 4> for_run(
      const std::vector<Tensor>& inputs, std::span<const RowProductInput> row_product_inputs) {
    llvm::SmallVector<std::shared_ptr<const PackedB>, 4> copies;
    if (row_product_inputs.empty()) return copies;
    std::lock_guard lock(mutex);
    for (size_t p = 0; p < row_product_inputs.size(); ++p) {
      const Tensor& input = inputs[row_product_inputs[p].input];
      Seen& last = seen[p];
      // A strided input is copied for each run anyway.
      if (!input.is_contiguous()) continue;
      const std::shared_ptr<Storage>& storage = input.impl()->storage;
      const bool unchanged = !last.storage.owner_before(storage) &&
                             !storage.owner_before(last.storage) && last.data == input.raw_data() &&
                             last.version == storage->version();
      if (!unchanged) last = {storage, storage->version(), input.raw_data(), 0, nullptr};
      last.products += row_product_inputs[p].products;
      if (last.packed == nullptr) {
        if (last.products < products_worth_a_copy) continue;
        last.packed = pack(input);
      }
      copies.push_back(last.packed);
    }
    return copies;
  }

  static std::shared_ptr<const PackedB> pack(const Tensor& matrix) {
    return dispatch_floating(matrix.dtype(), "PackedB", [&]<typename T>() {
      return std::make_shared<const PackedB>(matrix.data<T>(), matrix.size(0), matrix.size(1),
                                             matrix.size(1));
    });
  }

  int64_t bytes() {
    std::lock_guard lock(mutex);
    int64_t total = 0;
    for (const Seen& last : seen) total += last.packed ? last.packed->bytes() : 0;
    return total;
  }

  std::mutex mutex;
  std::vector<Seen> seen;  // by row_product_inputs_; guarded by mutex
};

std::shared_ptr<CompiledStep::PackedInputs> CompiledStep::make_packed_inputs(size_t count) {
  return std::make_shared<PackedInputs>(count);
}

std::vector<Tensor> CompiledStep::run(const std::vector<Tensor>& inputs) const {
  std::vector<Tensor> outputs;
  run(inputs, outputs);
  return outputs;
}

void CompiledStep::run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) const {
  WEFT_CHECK(inputs.size() == inputs_.size(), "compiled step '{}': {} inputs for a step of {}",
             module_->name(), inputs.size(), inputs_.size());
  for (size_t i = 0; i < inputs.size(); ++i) check_input(i, inputs[i]);
  run_checked(inputs, outputs);
}

bool CompiledStep::accepts(size_t index, const Tensor& input) const {
  const TensorSpec& spec = inputs_[index];
  return input.defined() && input.dtype() == spec.dtype && input.shape() == spec.shape;
}

void CompiledStep::check_input(size_t index, const Tensor& input) const {
  WEFT_CHECK(input.defined(), "compiled step '{}': input \"{}\" is undefined", module_->name(),
             input_names_[index]);
  WEFT_CHECK(accepts(index, input),
             "compiled step '{}': input \"{}\" is {} {}, the step was compiled for {} {}",
             module_->name(), input_names_[index], dtype_name(input.dtype()),
             shape_str(input.shape()), dtype_name(inputs_[index].dtype),
             shape_str(inputs_[index].shape));
}

void CompiledStep::run_checked(const std::vector<Tensor>& inputs,
                               std::vector<Tensor>& outputs) const {
  // Contiguous copies of the strided inputs, by input: few or none, so none is made otherwise (a
  // streaming step's call costs about a microsecond, and each Tensor copied here counts).
  std::vector<std::pair<size_t, Tensor>> copies;
  llvm::SmallVector<void*, 32> buffers(inputs.size() + outputs_.size() + constants_.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].is_contiguous()) {
      buffers[i] = inputs[i].raw_data();
      continue;
    }
    copies.emplace_back(i, inputs[i].copy());
    buffers[i] = copies.back().second.raw_data();
  }
  prepare_outputs(outputs, buffers.data() + inputs.size());
  for (size_t i = 0; i < constants_.size(); ++i)
    buffers[inputs.size() + outputs_.size() + i] = constants_[i].raw_data();
  const ArenaPool::Lease arena(*arenas_);
  if (!call(buffers.data(), arena.data(), inputs)) return;
  for (size_t i : stored_inputs_) {
    const auto copy = std::ranges::find(copies, i, &std::pair<size_t, Tensor>::first);
    if (copy != copies.end()) inputs[i].assign_(copy->second);
    inputs[i].mark_modified();
  }
}

void CompiledStep::prepare_outputs(std::vector<Tensor>& outputs, void** buffers) const {
  outputs.resize(outputs_.size());
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const TensorSpec& spec = outputs_[i];
    Tensor& output = outputs[i];
    if (!output.defined() || output.shape() != spec.shape || output.dtype() != spec.dtype ||
        !output.is_contiguous())
      output = empty(spec.shape, {.dtype = spec.dtype});
    else
      output.mark_modified();
    buffers[i] = output.raw_data();
  }
}

bool CompiledStep::call(void** buffers, char* arena, const std::vector<Tensor>& inputs) const {
  const auto packed_copies = packed_inputs_->for_run(inputs, row_product_inputs_);
  llvm::SmallVector<const PackedB*, 4> packed;
  for (const auto& copy : packed_copies) packed.push_back(copy.get());
  const PackedBScope read_packed(packed);
  const int32_t status = step_(buffers, arena);
  WEFT_CHECK(status != 1, "compiled step '{}': {}", module_->name(), jit_take_runtime_error());
  return status == 0;
}

// ---- StepBinding ------------------------------------------------------------------------------

StepBinding::StepBinding(std::shared_ptr<const CompiledStep> step, std::vector<Tensor> inputs)
    : step_(std::move(step)),
      inputs_(step_->inputs_.size()),
      released_(inputs_.size(), false),
      arena_(*step_->arenas_) {
  WEFT_CHECK(inputs.size() == inputs_.size(), "compiled step '{}': {} inputs for a step of {}",
             step_->module_->name(), inputs.size(), inputs_.size());
  buffers_.resize(inputs_.size() + step_->outputs_.size() + step_->constants_.size());
  for (size_t i = 0; i < inputs.size(); ++i) set_input(i, inputs[i]);
  for (size_t i = 0; i < step_->constants_.size(); ++i)
    buffers_[inputs_.size() + step_->outputs_.size() + i] = step_->constants_[i].raw_data();
}

void StepBinding::set_input(size_t index, const Tensor& input) {
  WEFT_CHECK(index < inputs_.size(), "compiled step '{}' has {} inputs, not an input {}",
             step_->module_->name(), inputs_.size(), index);
  step_->check_input(index, input);
  const bool stored =
      std::ranges::find(step_->stored_inputs_, index) != step_->stored_inputs_.end();
  WEFT_CHECK(input.is_contiguous() || !stored,
             "compiled step '{}': input \"{}\" is written by the step, so it must be contiguous "
             "to be bound",
             step_->module_->name(), step_->input_names_[index]);
  if (released_[index]) {
    released_[index] = false;
    --released_count_;
  }
  inputs_[index] = input.is_contiguous() ? input : input.copy();
  buffers_[index] = inputs_[index].raw_data();
}

void StepBinding::release_input(size_t index) {
  WEFT_CHECK(index < inputs_.size(), "compiled step '{}' has {} inputs, not an input {}",
             step_->module_->name(), inputs_.size(), index);
  if (released_[index]) return;
  inputs_[index] = Tensor();
  buffers_[index] = nullptr;
  released_[index] = true;
  ++released_count_;
}

void StepBinding::run(std::vector<Tensor>& outputs) {
  WEFT_CHECK(released_count_ == 0,
             "compiled step '{}': a run with an input let go of and not set again",
             step_->module_->name());
  step_->prepare_outputs(outputs, buffers_.data() + inputs_.size());
  if (!step_->call(buffers_.data(), arena_.data(), inputs_)) return;
  for (size_t i : step_->stored_inputs_) inputs_[i].mark_modified();
}

int64_t CompiledStep::memory_bytes() const {
  int64_t bytes = arenas_->bytes_held();
  for (const Tensor& constant : constants_)
    bytes += constant.numel() * static_cast<int64_t>(dtype_size(constant.dtype()));
  return bytes + packed_inputs_->bytes() + module_->object_bytes();
}

// ---- StepCache --------------------------------------------------------------------------------

const StepCache::Entry* StepCache::entry(const std::string& key) const {
  const auto found = std::ranges::find(entries_, key, &Entry::key);
  return found == entries_.end() ? nullptr : &*found;
}

const CompiledStep* StepCache::find(const std::string& key) const {
  const Entry* found = entry(key);
  return found == nullptr ? nullptr : found->step.get();
}

std::shared_ptr<const CompiledStep> StepCache::find_shared(const std::string& key) const {
  const Entry* found = entry(key);
  return found == nullptr ? nullptr : found->step;
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
