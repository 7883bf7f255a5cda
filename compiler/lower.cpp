// Elementwise fusion: a graph of elementwise primitives becomes one loop over the elements that
// keeps every intermediate in registers. See lower.h for the subset and the calling convention.
#include "weft/compiler/lower.h"

#include <fmt/format.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <map>
#include <memory>
#include <string_view>

#include "weft/runtime/error.h"
#include "weft/runtime/fast_math.h"

namespace weft {
namespace {

enum class Unary { neg, exp, log, tanh, sigmoid, relu, sqrt };
enum class Binary { add, sub, mul, div };

const std::map<std::string_view, Unary, std::less<>> unary_ops = {
    {"neg", Unary::neg},         {"exp", Unary::exp},   {"log", Unary::log},  {"tanh", Unary::tanh},
    {"sigmoid", Unary::sigmoid}, {"relu", Unary::relu}, {"sqrt", Unary::sqrt}};
const std::map<std::string_view, Binary, std::less<>> binary_ops = {
    {"add", Binary::add}, {"sub", Binary::sub}, {"mul", Binary::mul}, {"div", Binary::div}};
const std::map<std::string_view, llvm::CmpInst::Predicate, std::less<>> comparisons = {
    {"greater", llvm::CmpInst::FCMP_OGT}, {"greater_equal", llvm::CmpInst::FCMP_OGE},
    {"less", llvm::CmpInst::FCMP_OLT},    {"less_equal", llvm::CmpInst::FCMP_OLE},
    {"equal", llvm::CmpInst::FCMP_OEQ},   {"not_equal", llvm::CmpInst::FCMP_UNE}};

std::string describe(const Graph& graph, int id) {
  const GraphNode& node = graph.node(id);
  switch (node.kind) {
    case GraphNode::Kind::input:
      return fmt::format("input %{} \"{}\"", id, node.name);
    case GraphNode::Kind::constant:
      return fmt::format("constant %{}", id);
    case GraphNode::Kind::op:
      break;
  }
  return fmt::format("'{}' (node %{})", node.op->name, id);
}

// Emits one node's per-element value with plain IEEE operations (no fast-math flags), in the
// order the eager kernels evaluate them.
class Emitter {
 public:
  Emitter(llvm::IRBuilder<>& b, llvm::Module& module, bool f32)
      : b_(b), module_(module), f32_(f32), type_(f32 ? b.getFloatTy() : b.getDoubleTy()) {}

  llvm::Value* c(double value) { return llvm::ConstantFP::get(type_, value); }

  llvm::Value* select_less(llvm::Value* x, llvm::Value* bound, llvm::Value* then_value,
                           llvm::Value* else_value) {
    return b_.CreateSelect(b_.CreateFCmpOLT(x, bound), then_value, else_value);
  }

  llvm::Value* intrinsic(llvm::Intrinsic::ID id, llvm::Value* x) {
    return b_.CreateUnaryIntrinsic(id, x);
  }

  llvm::Value* libm(const char* name, llvm::Value* x) {
    llvm::FunctionCallee callee =
        module_.getOrInsertFunction(name, llvm::FunctionType::get(type_, {type_}, false));
    return b_.CreateCall(callee, {x});
  }

  // fast::exp, operation for operation, with its constants.
  llvm::Value* fast_exp(llvm::Value* x) {
    x = select_less(x, c(fast::kExpLow), c(fast::kExpLow),
                    b_.CreateSelect(b_.CreateFCmpOGT(x, c(fast::kExpHigh)), c(fast::kExpHigh), x));
    llvm::Value* n =
        b_.CreateFSub(b_.CreateFAdd(b_.CreateFMul(x, c(fast::kLog2e)), c(fast::kRoundMagic)),
                      c(fast::kRoundMagic));
    llvm::Value* r = b_.CreateFAdd(b_.CreateFSub(x, b_.CreateFMul(n, c(fast::kLn2High))),
                                   b_.CreateFMul(n, c(fast::kLn2Low)));
    llvm::Value* p = c(fast::kExpPoly[0]);
    for (int i = 1; i < 6; ++i) p = b_.CreateFAdd(b_.CreateFMul(p, r), c(fast::kExpPoly[i]));
    p = b_.CreateFAdd(b_.CreateFAdd(b_.CreateFMul(b_.CreateFMul(p, r), r), r), c(1.0f));
    // fptosi of a NaN is poison; freeze keeps it an arbitrary value (the result is NaN anyway).
    llvm::Value* bits = b_.CreateShl(
        b_.CreateAdd(b_.CreateFreeze(b_.CreateFPToSI(n, b_.getInt32Ty())), b_.getInt32(127)), 23);
    llvm::Value* scale = b_.CreateBitCast(bits, type_);
    return b_.CreateSelect(b_.CreateFCmpOGE(x, c(fast::kExpHigh)),
                           llvm::ConstantFP::getInfinity(type_), b_.CreateFMul(p, scale));
  }

  llvm::Value* exp(llvm::Value* x) {
    return f32_ ? fast_exp(x) : intrinsic(llvm::Intrinsic::exp, x);
  }

  llvm::Value* sigmoid(llvm::Value* x) {
    if (f32_) return b_.CreateFDiv(c(1), b_.CreateFAdd(c(1), fast_exp(b_.CreateFNeg(x))));
    // The float64 kernel's form, which never exponentiates a large positive number.
    llvm::Value* e = exp(b_.CreateFNeg(intrinsic(llvm::Intrinsic::fabs, x)));
    llvm::Value* one_plus_e = b_.CreateFAdd(c(1), e);
    return b_.CreateSelect(b_.CreateFCmpOGE(x, c(0)), b_.CreateFDiv(c(1), one_plus_e),
                           b_.CreateFDiv(e, one_plus_e));
  }

  // fast::tanh, operation for operation.
  llvm::Value* tanh(llvm::Value* x) {
    if (!f32_) return libm("tanh", x);
    llvm::Value* negative = b_.CreateFCmpOLT(x, c(0));
    llvm::Value* a = b_.CreateSelect(negative, b_.CreateFNeg(x), x);
    llvm::Value* e = fast_exp(b_.CreateFMul(c(-2.0f), a));
    llvm::Value* large = b_.CreateFDiv(b_.CreateFSub(c(1), e), b_.CreateFAdd(c(1), e));
    llvm::Value* x2 = b_.CreateFMul(x, x);
    llvm::Value* series =
        b_.CreateFAdd(c(fast::kTanhSeries[1]), b_.CreateFMul(x2, c(fast::kTanhSeries[2])));
    series = b_.CreateFAdd(c(fast::kTanhSeries[0]), b_.CreateFMul(x2, series));
    llvm::Value* small = b_.CreateFMul(a, b_.CreateFAdd(c(1.0f), b_.CreateFMul(x2, series)));
    llvm::Value* t = select_less(a, c(fast::kTanhSeriesBelow), small, large);
    return b_.CreateSelect(negative, b_.CreateFNeg(t), t);
  }

  llvm::Value* unary(Unary op, llvm::Value* x) {
    switch (op) {
      case Unary::neg:
        return b_.CreateFNeg(x);
      case Unary::exp:
        return exp(x);
      case Unary::log:
        return intrinsic(llvm::Intrinsic::log, x);
      case Unary::tanh:
        return tanh(x);
      case Unary::sigmoid:
        return sigmoid(x);
      case Unary::relu:
        return b_.CreateSelect(b_.CreateFCmpOGT(x, c(0)), x, c(0));
      case Unary::sqrt:
        return intrinsic(llvm::Intrinsic::sqrt, x);
    }
    throw Error("lower: unknown unary op");
  }

  llvm::Value* binary(Binary op, llvm::Value* x, llvm::Value* y) {
    switch (op) {
      case Binary::add:
        return b_.CreateFAdd(x, y);
      case Binary::sub:
        return b_.CreateFSub(x, y);
      case Binary::mul:
        return b_.CreateFMul(x, y);
      case Binary::div:
        return b_.CreateFDiv(x, y);
    }
    throw Error("lower: unknown binary op");
  }

  llvm::Value* compare(llvm::CmpInst::Predicate predicate, llvm::Value* x, llvm::Value* y) {
    return b_.CreateUIToFP(b_.CreateFCmp(predicate, x, y), type_);
  }

 private:
  llvm::IRBuilder<>& b_;
  llvm::Module& module_;
  bool f32_;
  llvm::Type* type_;
};

bool is_scalar(const Shape& shape) { return shape.empty(); }

}  // namespace

CompiledGraph compile_elementwise(const Graph& graph, Jit& jit, const std::string& name) {
  WEFT_CHECK(graph.stores.empty(),
             "compile_elementwise: the graph stores into input \"{}\"; stores are not supported",
             graph.node(graph.stores[0].input).name);
  WEFT_CHECK(!graph.outputs.empty(), "compile_elementwise: the graph has no outputs");
  const std::vector<GraphNode>& nodes = graph.nodes();
  WEFT_CHECK(!nodes.empty(), "compile_elementwise: the graph is empty");

  // Checked in this order so that the message names the most telling cause: the ops, the
  // dtype, the operands' broadcasting, then one common shape (0-d scalars broadcast against it).
  const int node_count = static_cast<int>(nodes.size());
  for (int id = 0; id < node_count; ++id) {
    if (nodes[id].kind != GraphNode::Kind::op) continue;
    const std::string_view op = nodes[id].op->name;
    WEFT_CHECK(unary_ops.contains(op) || binary_ops.contains(op) || comparisons.contains(op),
               "compile_elementwise: {} is not an elementwise primitive this lowering supports",
               describe(graph, id));
  }
  const DType dtype = nodes[0].spec.dtype;
  WEFT_CHECK(dtype == DType::f32 || dtype == DType::f64,
             "compile_elementwise: {} is {}; only float32 and float64 are supported",
             describe(graph, 0), dtype_name(dtype));
  for (int id = 0; id < node_count; ++id)
    WEFT_CHECK(nodes[id].spec.dtype == dtype,
               "compile_elementwise: {} is {} but {} is {}; mixed dtypes", describe(graph, id),
               dtype_name(nodes[id].spec.dtype), describe(graph, 0), dtype_name(dtype));
  for (int id = 0; id < node_count; ++id) {
    const GraphNode& node = nodes[id];
    if (node.kind != GraphNode::Kind::op) continue;
    for (int input : node.inputs)
      WEFT_CHECK(is_scalar(nodes[input].spec.shape) || nodes[input].spec.shape == node.spec.shape,
                 "compile_elementwise: {} broadcasts {} {} to {}; only 0-d scalars broadcast",
                 describe(graph, id), describe(graph, input), shape_str(nodes[input].spec.shape),
                 shape_str(node.spec.shape));
  }
  Shape shape;
  int shape_node = -1;
  for (int id = 0; id < node_count; ++id) {
    const Shape& node_shape = nodes[id].spec.shape;
    if (is_scalar(node_shape)) continue;
    if (shape_node < 0) {
      shape = node_shape;
      shape_node = id;
    }
    WEFT_CHECK(node_shape == shape,
               "compile_elementwise: {} has shape {} but {} has {}; only 0-d scalars broadcast",
               describe(graph, id), shape_str(node_shape), describe(graph, shape_node),
               shape_str(shape));
  }
  for (const GraphOutput& output : graph.outputs)
    WEFT_CHECK(nodes[output.node].spec.shape == shape,
               "compile_elementwise: output \"{}\" has shape {} but the loop's is {}", output.name,
               shape_str(nodes[output.node].spec.shape), shape_str(shape));

  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>(name, *context);
  llvm::IRBuilder<> b(*context);
  const bool f32 = dtype == DType::f32;
  llvm::Type* element = f32 ? b.getFloatTy() : b.getDoubleTy();
  llvm::Type* ptr = b.getPtrTy();
  llvm::Type* i64 = b.getInt64Ty();

  // The buffers: inputs, outputs, then non-scalar constants.
  const std::vector<int> input_ids = graph.input_ids();
  std::vector<Tensor> constants;
  std::vector<int> constant_ids;
  for (int id = 0; id < static_cast<int>(nodes.size()); ++id)
    if (nodes[id].kind == GraphNode::Kind::constant && !is_scalar(nodes[id].spec.shape)) {
      constants.push_back(nodes[id].value.copy());
      constant_ids.push_back(id);
    }
  const size_t buffer_count = input_ids.size() + graph.outputs.size() + constant_ids.size();

  // The loop takes each buffer as a noalias argument (so it vectorises without runtime checks);
  // step() unpacks the array and calls it, and O3 inlines it.
  std::vector<llvm::Type*> loop_params(buffer_count, ptr);
  loop_params.push_back(i64);
  auto* loop_fn = llvm::Function::Create(llvm::FunctionType::get(b.getVoidTy(), loop_params, false),
                                         llvm::Function::InternalLinkage, "loop", *module);
  for (size_t i = 0; i < buffer_count; ++i) {
    loop_fn->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
    loop_fn->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoCapture);
  }
  llvm::Value* n = loop_fn->getArg(static_cast<unsigned>(buffer_count));
  auto* entry = llvm::BasicBlock::Create(*context, "entry", loop_fn);
  auto* body = llvm::BasicBlock::Create(*context, "loop", loop_fn);
  auto* done = llvm::BasicBlock::Create(*context, "done", loop_fn);

  std::vector<int> buffer_of(nodes.size(), -1);
  for (size_t i = 0; i < input_ids.size(); ++i) buffer_of[input_ids[i]] = static_cast<int>(i);
  for (size_t i = 0; i < constant_ids.size(); ++i)
    buffer_of[constant_ids[i]] = static_cast<int>(input_ids.size() + graph.outputs.size() + i);

  // Scalars are loop-invariant: scalar inputs are loaded once in the entry block.
  b.SetInsertPoint(entry);
  std::vector<llvm::Value*> invariant(nodes.size(), nullptr);
  for (int id = 0; id < static_cast<int>(nodes.size()); ++id) {
    const GraphNode& node = nodes[id];
    if (!is_scalar(node.spec.shape)) continue;
    if (node.kind == GraphNode::Kind::input)
      invariant[id] = b.CreateLoad(element, loop_fn->getArg(buffer_of[id]));
    if (node.kind == GraphNode::Kind::constant)
      invariant[id] = llvm::ConstantFP::get(element, node.value.item());
  }
  b.CreateCondBr(b.CreateICmpSLE(n, b.getInt64(0)), done, body);

  b.SetInsertPoint(body);
  llvm::PHINode* index = b.CreatePHI(i64, 2, "i");
  index->addIncoming(b.getInt64(0), entry);
  Emitter emit(b, *module, f32);
  std::vector<llvm::Value*> values = invariant;
  auto element_ptr = [&](int buffer) {
    return b.CreateInBoundsGEP(element, loop_fn->getArg(static_cast<unsigned>(buffer)), index);
  };
  for (int id = 0; id < static_cast<int>(nodes.size()); ++id) {
    const GraphNode& node = nodes[id];
    if (node.kind != GraphNode::Kind::op) {
      if (values[id] == nullptr) values[id] = b.CreateLoad(element, element_ptr(buffer_of[id]));
      continue;
    }
    const std::string_view op = node.op->name;
    auto arg = [&](size_t i) { return values[node.inputs.at(i)]; };
    if (auto u = unary_ops.find(op); u != unary_ops.end())
      values[id] = emit.unary(u->second, arg(0));
    else if (auto bin = binary_ops.find(op); bin != binary_ops.end())
      values[id] = emit.binary(bin->second, arg(0), arg(1));
    else
      values[id] = emit.compare(comparisons.find(op)->second, arg(0), arg(1));
  }
  for (size_t i = 0; i < graph.outputs.size(); ++i)
    b.CreateStore(values[graph.outputs[i].node],
                  element_ptr(static_cast<int>(input_ids.size() + i)));
  llvm::Value* next = b.CreateAdd(index, b.getInt64(1), "next", true, true);
  index->addIncoming(next, body);
  b.CreateCondBr(b.CreateICmpSLT(next, n), body, done);
  b.SetInsertPoint(done);
  b.CreateRetVoid();

  auto* step_fn = llvm::Function::Create(llvm::FunctionType::get(b.getVoidTy(), {ptr, i64}, false),
                                         llvm::Function::ExternalLinkage, "step", *module);
  b.SetInsertPoint(llvm::BasicBlock::Create(*context, "entry", step_fn));
  std::vector<llvm::Value*> args;
  for (size_t i = 0; i < buffer_count; ++i)
    args.push_back(b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, step_fn->getArg(0), i)));
  args.push_back(step_fn->getArg(1));
  b.CreateCall(loop_fn, args);
  b.CreateRetVoid();

  CompiledModule compiled = jit.add(std::move(module), std::move(context), name);
  CompiledGraph result(compiled, compiled.lookup<CompiledGraph::StepFn>("step"));
  result.shape_ = shape;
  result.dtype_ = dtype;
  for (int id : input_ids) {
    result.input_names_.push_back(nodes[id].name);
    result.input_shapes_.push_back(nodes[id].spec.shape);
  }
  for (const GraphOutput& output : graph.outputs)
    result.output_shapes_.push_back(nodes[output.node].spec.shape);
  result.constants_ = std::move(constants);
  return result;
}

std::vector<Tensor> CompiledGraph::run(const std::vector<Tensor>& inputs) const {
  WEFT_CHECK(inputs.size() == input_shapes_.size(),
             "CompiledGraph::run: {} inputs for a graph of {}", inputs.size(),
             input_shapes_.size());
  std::vector<Tensor> held;  // contiguous copies, kept alive for the call
  std::vector<void*> buffers;
  for (size_t i = 0; i < inputs.size(); ++i) {
    WEFT_CHECK(inputs[i].defined(), "CompiledGraph::run: input \"{}\" is undefined",
               input_names_[i]);
    WEFT_CHECK(inputs[i].shape() == input_shapes_[i] && inputs[i].dtype() == dtype_,
               "CompiledGraph::run: input \"{}\" is {} {}, the graph expects {} {}",
               input_names_[i], dtype_name(inputs[i].dtype()), shape_str(inputs[i].shape()),
               dtype_name(dtype_), shape_str(input_shapes_[i]));
    const Tensor& input =
        inputs[i].is_contiguous() ? inputs[i] : held.emplace_back(inputs[i].copy());
    buffers.push_back(input.raw_data());
  }
  std::vector<Tensor> outputs;
  for (const Shape& shape : output_shapes_) {
    outputs.push_back(empty(shape, {.dtype = dtype_}));
    buffers.push_back(outputs.back().raw_data());
  }
  for (const Tensor& constant : constants_) buffers.push_back(constant.raw_data());
  step_(buffers.data(), shape_numel(shape_));
  return outputs;
}

}  // namespace weft
