#include "weft/autodiff/tape.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "weft/ops/ops.h"

namespace weft {

namespace {
std::atomic<uint64_t> next_sequence{0};
}

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

void Node::add_vjp_into(const Tensor& grad, const Tensor& sum) const {
  const Tensor output = checked_output();
  const bool needs_grad = true;
  op_->vjp_add_into(VjpContext{.inputs = inputs_,
                               .output = output,
                               .grad = grad,
                               .attrs = attrs_,
                               .needs_grad = {&needs_grad, 1}},
                    sum);
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

// The reverse sweep shared by backward() and grad(). When `targets` is given, gradients reaching
// those tensors are returned instead of being accumulated into leaves.
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds,
                                 BackwardOptions options, const std::vector<Tensor>* targets) {
  WEFT_CHECK(seeds.empty() || seeds.size() == roots.size(),
             "backward: {} seed gradients for {} outputs", seeds.size(), roots.size());
  std::optional<NoGrad> no_grad;
  if (!options.create_graph) no_grad.emplace();

  std::unordered_map<const Node*, Tensor> pending;
  // Sums that only `pending` or `leaf_grads` hold, so vjp_add_into may write into them. Kept
  // alive here so that a freed one's address is never mistaken for a new tensor.
  std::unordered_map<const TensorImpl*, Tensor> writable;
  std::unordered_map<TensorImpl*, Tensor> leaf_grads;
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
    if (const auto& node = root.grad_fn()) {
      pending[node.get()] = accumulate(pending[node.get()], seed);
      visit_from(node);
    } else {
      leaf_grads[root.impl()] = accumulate(leaf_grads[root.impl()], seed);
    }
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
    const Tensor grad = std::move(found->second);
    pending.erase(found);
    writable.erase(grad.impl());  // from here on the VJP may hand it on to several inputs
    if (auto target = target_nodes.find(node.get()); target != target_nodes.end())
      target_grads[target->second] = accumulate(target_grads[target->second], grad);
    // In-place accumulation is invisible to a tracer: a captured backward uses the plain VJPs.
    if (node->op().vjp_add_into != nullptr && !options.create_graph && active_tracer() == nullptr &&
        node->inputs()[0].requires_grad()) {
      const Tensor& input = node->inputs()[0];
      Tensor& sum = input.grad_fn() ? pending[input.grad_fn().get()] : leaf_grads[input.impl()];
      if (!writable.contains(sum.impl())) {  // never write into a tensor someone else holds
        sum = sum.defined() ? sum.copy() : zeros(input.shape(), {.dtype = grad.dtype()});
        writable.emplace(sum.impl(), sum);
      }
      node->add_vjp_into(grad, sum);
      continue;
    }
    const std::vector<Tensor> input_grads = node->vjp(grad);
    for (size_t i = 0; i < input_grads.size(); ++i) {
      const Tensor& input = node->inputs()[i];
      if (!input_grads[i].defined() || !input.requires_grad()) continue;
      if (Node* next = input.grad_fn().get())
        pending[next] = accumulate(pending[next], input_grads[i]);
      else
        leaf_grads[input.impl()] = accumulate(leaf_grads[input.impl()], input_grads[i]);
    }
  }
  // After the sweep, not during it: a released node drops its inputs, which are the outputs
  // that nodes further up still read.
  if (!options.retain_graph && !options.create_graph)
    for (const std::shared_ptr<Node>& node : nodes) node->release();

  writable.clear();
  if (targets == nullptr) {
    for (auto& [impl, grad] : leaf_grads) {
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
        target_grads[i] = found->second;
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

}  // namespace weft
