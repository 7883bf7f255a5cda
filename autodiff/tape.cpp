#include "weft/autodiff/tape.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "weft/ops/kernels.h"
#include "weft/ops/ops.h"

namespace weft {

namespace {
std::atomic<uint64_t> next_sequence{0};

// apply() records each differentiable op as a Node through this.
const bool recorder_installed = install_grad_recorder(
    [](const OpDef& op, Attrs attrs, std::vector<Tensor> inputs, const Tensor& output) {
      return std::make_shared<Node>(op, std::move(attrs), std::move(inputs), output);
    });
}  // namespace

Node::Node(const OpDef& op, Attrs attrs, std::vector<Tensor> inputs, const Tensor& output)
    : op_(&op),
      attrs_(std::move(attrs)),
      inputs_(std::move(inputs)),
      output_(output.impl_ptr()),
      output_version_(output.impl()->storage->version()),
      sequence_(next_sequence++) {
  for (const Tensor& input : inputs_) input_versions_.push_back(input.impl()->storage->version());
}

void Node::check_not_released() const {
  WEFT_CHECK(!released_,
             "backward through the graph a second time: '{}' was freed by the first backward "
             "(pass retain_graph = true to the first call)",
             op_->name);
}

Tensor Node::checked_output() const {
  check_not_released();
  for (size_t i = 0; i < inputs_.size(); ++i)
    WEFT_CHECK(inputs_[i].impl()->storage->version() == input_versions_[i],
               "{}: input {} of shape {} was modified in place after it was used; its gradient "
               "would be wrong",
               op_->name, i, shape_str(inputs_[i].shape()));
  const std::shared_ptr<TensorImpl> output_impl = output_.lock();
  WEFT_CHECK(output_impl != nullptr, "{}: its output no longer exists", op_->name);
  WEFT_CHECK(output_impl->storage->version() == output_version_,
             "{}: its output of shape {} was modified in place after it was computed", op_->name,
             shape_str(output_impl->shape));
  return Tensor(output_impl);
}

std::vector<Tensor> Node::vjp(const Tensor& grad) const {
  const Tensor output = checked_output();
  // std::vector<bool> has no contiguous storage for a span.
  std::unique_ptr<bool[]> flags(new bool[inputs_.size()]);
  for (size_t i = 0; i < inputs_.size(); ++i) flags[i] = inputs_[i].requires_grad();
  std::vector<Tensor> grads = op_->vjp(VjpContext{.inputs = inputs_,
                                                  .output = output,
                                                  .grad = grad,
                                                  .attrs = attrs_,
                                                  .needs_grad = {flags.get(), inputs_.size()}});
  WEFT_CHECK(grads.size() == inputs_.size(), "{}: its VJP returned {} gradients for {} inputs",
             op_->name, grads.size(), inputs_.size());
  for (size_t i = 0; i < inputs_.size(); ++i)
    WEFT_CHECK(!flags[i] || (grads[i].defined() && grads[i].shape() == inputs_[i].shape()),
               "{}: its VJP returned a gradient of shape {} for input {} of shape {}", op_->name,
               grads[i].defined() ? shape_str(grads[i].shape()) : "undefined", i,
               shape_str(inputs_[i].shape()));
  return grads;
}

void Node::release() {
  inputs_.clear();
  input_versions_.clear();
  released_ = true;
}

Node::~Node() {
  // Each input this node alone keeps alive would destroy its own grad_fn from inside this
  // destructor, and so on up the chain. Take those nodes over instead and empty them one by one.
  std::vector<std::shared_ptr<Node>> orphans;
  auto adopt_inputs = [&orphans](std::vector<Tensor>& inputs) {
    for (const Tensor& input : inputs) {
      const std::shared_ptr<TensorImpl>& impl = input.impl_ptr();
      if (impl.use_count() == 1 && impl->grad_fn.use_count() == 1)
        orphans.push_back(std::move(impl->grad_fn));
    }
    inputs.clear();
  };
  adopt_inputs(inputs_);
  while (!orphans.empty()) {
    const std::shared_ptr<Node> node = std::move(orphans.back());
    orphans.pop_back();
    adopt_inputs(node->inputs_);
  }  // `node` goes here with no inputs left, so its own destructor has nothing to recurse into
}

namespace {

Tensor accumulate(const Tensor& sum, const Tensor& term) {
  return sum.defined() ? add(sum, term) : term;
}

// A gradient being summed. Dense terms are added as they come; the gradients of ops with an
// output_region (slices) wait until the sum is read, and are then placed into it.
struct GradSum {
  Tensor dense;
  std::vector<std::pair<OutputRegion, Tensor>> regions;
  Shape shape;  // of the tensor, once a region arrives

  void add(const Tensor& term) { dense = accumulate(dense, term); }
  void add_region(OutputRegion region, const Tensor& term, const Shape& tensor_shape) {
    regions.emplace_back(region, term);
    shape = tensor_shape;
  }

  // The sum. `recorded`: made of ops (the backward is recorded or traced), not written in place.
  Tensor total(bool recorded) && {
    if (regions.empty()) return dense;
    if (!recorded) {
      const DType dtype = regions[0].second.dtype();
      Tensor sum = dense.defined() ? dense.copy() : zeros(shape, {.dtype = dtype});
      for (const auto& [region, term] : regions) {
        const Tensor part = slice(sum, region.axis, region.start, region.stop);
        dispatch_floating(dtype, "backward", [&]<typename T>() {
          map_into<T, T, T>(
              part, [](T a, T b) { return a + b; }, part, term);
        });
      }
      return sum;
    }
    // Regions along one axis that do not overlap become one concat, whatever their number.
    std::stable_sort(regions.begin(), regions.end(), [](const auto& a, const auto& b) {
      return std::pair(a.first.axis, a.first.start) < std::pair(b.first.axis, b.first.start);
    });
    Tensor sum = dense;
    std::vector<std::pair<int64_t, Tensor>> parts;
    int64_t axis = -1, end = 0;
    const auto place = [&] {
      if (!parts.empty()) sum = accumulate(sum, place_parts(shape, axis, parts));
      parts.clear();
    };
    for (const auto& [region, term] : regions) {
      if (region.axis != axis || region.start < end) place();
      axis = region.axis;
      end = region.stop;
      parts.emplace_back(region.start, term);
    }
    place();
    return sum;
  }
};

// The reverse sweep shared by backward() and grad(). When `targets` is given, gradients reaching
// those tensors are returned instead of being accumulated into leaves.
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds,
                                 BackwardOptions options, const std::vector<Tensor>* targets) {
  WEFT_CHECK(seeds.empty() || seeds.size() == roots.size(),
             "backward: {} seed gradients for {} outputs", seeds.size(), roots.size());
  std::optional<NoGrad> no_grad;
  if (!options.create_graph) no_grad.emplace();

  const bool recorded = options.create_graph || active_tracer() != nullptr;
  std::unordered_map<const Node*, GradSum> pending;
  std::unordered_map<TensorImpl*, GradSum> leaf_grads;
  const auto sum_for = [&](const Tensor& tensor) -> GradSum& {
    return tensor.grad_fn() ? pending[tensor.grad_fn().get()] : leaf_grads[tensor.impl()];
  };
  // Owning pointers: releasing a node drops its inputs, which may own nodes still to be swept.
  std::vector<std::shared_ptr<Node>> nodes;
  std::unordered_set<const Node*> seen;
  auto visit_from = [&](const std::shared_ptr<Node>& start) {
    std::vector<std::shared_ptr<Node>> stack{start};
    if (!seen.insert(start.get()).second) return;
    while (!stack.empty()) {
      std::shared_ptr<Node> node = stack.back();
      stack.pop_back();
      nodes.push_back(node);
      node->check_not_released();  // before any work, so a failed backward changes nothing
      for (const Tensor& input : node->inputs())
        if (const auto& next = input.grad_fn(); next != nullptr && seen.insert(next.get()).second)
          stack.push_back(next);
    }
  };

  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    WEFT_CHECK(root.requires_grad(),
               "backward: the output of shape {} does not require grad (no input it was computed "
               "from requires grad, or it was computed under NoGrad)",
               shape_str(root.shape()));
    Tensor seed;
    if (!seeds.empty() && seeds[i].defined()) {
      seed = seeds[i];
      WEFT_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype(),
                 "backward: seed gradient {} {} for an output {} {}", dtype_name(seed.dtype()),
                 shape_str(seed.shape()), dtype_name(root.dtype()), shape_str(root.shape()));
    } else {
      WEFT_CHECK(root.numel() == 1,
                 "backward: the output has shape {}; a non-scalar output needs a seed gradient of "
                 "that shape",
                 shape_str(root.shape()));
      seed = ones_like(root);
    }
    sum_for(root).add(seed);
    if (const auto& node = root.grad_fn()) visit_from(node);
  }

  std::unordered_map<const Node*, size_t> target_nodes;
  if (targets != nullptr)
    for (size_t i = 0; i < targets->size(); ++i)
      if (const Node* node = (*targets)[i].grad_fn().get()) target_nodes[node] = i;
  std::vector<Tensor> target_grads(targets ? targets->size() : 0);

  // A node's inputs are recorded before it, so decreasing sequence is a reverse topological
  // order.
  std::sort(nodes.begin(), nodes.end(),
            [](const auto& a, const auto& b) { return a->sequence() > b->sequence(); });
  for (const std::shared_ptr<Node>& node : nodes) {
    auto found = pending.find(node.get());
    if (found == pending.end()) continue;
    const Tensor grad = std::move(found->second).total(recorded);
    pending.erase(found);
    if (auto target = target_nodes.find(node.get()); target != target_nodes.end())
      target_grads[target->second] = accumulate(target_grads[target->second], grad);
    if (const auto region_of = node->op().output_region) {
      const Tensor& input = node->inputs()[0];
      if (input.requires_grad())
        sum_for(input).add_region(region_of(node->attrs()), grad, input.shape());
      continue;
    }
    const std::vector<Tensor> input_grads = node->vjp(grad);
    for (size_t i = 0; i < input_grads.size(); ++i) {
      const Tensor& input = node->inputs()[i];
      if (input_grads[i].defined() && input.requires_grad()) sum_for(input).add(input_grads[i]);
    }
  }
  // After the sweep, not during it: a released node drops its inputs, which are the outputs
  // that nodes further up still read.
  if (!options.retain_graph && !options.create_graph)
    for (const std::shared_ptr<Node>& node : nodes) node->release();

  if (targets == nullptr) {
    for (auto& [impl, sum] : leaf_grads) {
      Tensor grad = std::move(sum).total(recorded);
      // A leaf's first gradient is often a view (a broadcast seed, the seed itself, a gradient
      // another leaf also received): .grad must be a contiguous tensor of its own, since
      // optimizers read data<T>() and write it in place. create_graph keeps the recorded one.
      const bool owned = grad.impl_ptr().use_count() == 1 &&
                         grad.impl()->storage.use_count() == 1 && grad.is_contiguous();
      if (!impl->grad.defined() && !owned && !options.create_graph) grad = grad.copy();
      impl->grad = accumulate(impl->grad, grad);
    }
    return {};
  }
  for (size_t i = 0; i < targets->size(); ++i) {
    const Tensor& target = (*targets)[i];
    if (target.is_leaf())
      if (auto found = leaf_grads.find(target.impl()); found != leaf_grads.end())
        target_grads[i] = std::move(found->second).total(recorded);
    if (!target_grads[i].defined()) target_grads[i] = zeros_like(target);
  }
  return target_grads;
}

}  // namespace

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& seeds, BackwardOptions options) {
  for (size_t i = 0; i < inputs.size(); ++i)
    WEFT_CHECK(inputs[i].requires_grad(), "grad: input {} of shape {} does not require grad", i,
               shape_str(inputs[i].shape()));
  return run_backward(outputs, seeds, options, &inputs);
}

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds,
              BackwardOptions options) {
  run_backward(roots, seeds, options, nullptr);
}

// The Tensor methods of runtime/tensor.h that need the tape.
Tensor& Tensor::requires_grad_(bool on) {
  TensorImpl& impl = checked_impl();
  WEFT_CHECK(impl.grad_fn == nullptr,
             "requires_grad_(): only leaf tensors can be marked; this one was computed by '{}'",
             impl.grad_fn ? impl.grad_fn->op().name : "");
  WEFT_CHECK(!on || is_floating(impl.dtype), "requires_grad_(): a {} tensor has no gradient",
             dtype_name(impl.dtype));
  impl.requires_grad = on;
  return *this;
}

void Tensor::backward(const Tensor& seed, BackwardOptions options) const {
  weft::backward({*this}, seed.defined() ? std::vector<Tensor>{seed} : std::vector<Tensor>{},
                 options);
}

}  // namespace weft
