#include "weft/ops/lowering.h"

#include <llvm/IR/MDBuilder.h>

#include <mutex>
#include <unordered_map>

#include "weft/runtime/error.h"
#include "weft/runtime/fast_math.h"

namespace weft {

Layout contiguous_layout(std::span<const int64_t> shape) {
  Layout layout{Dims(shape.begin(), shape.end()), Dims(shape.size()), 0};
  write_contiguous_strides(shape, layout.strides);
  return layout;
}

bool is_contiguous(const Layout& layout) {
  int64_t expected = 1;
  for (size_t d = layout.shape.size(); d-- > 0;) {
    if (layout.shape[d] != 1 && layout.strides[d] != expected) return false;
    expected *= layout.shape[d];
  }
  return true;
}

Layout broadcast_to(const Layout& layout, const Shape& shape) {
  Layout out{to_dims(shape), Dims(shape.size(), 0), layout.offset};
  const size_t pad = shape.size() - layout.shape.size();
  for (size_t d = 0; d < layout.shape.size(); ++d)
    if (layout.shape[d] == shape[pad + d]) out.strides[pad + d] = layout.strides[d];
  return out;
}

std::optional<Layout> reshaped(const Layout& layout, const Shape& shape) {
  std::optional<Shape> strides = reshaped_strides(layout.shape, layout.strides, shape);
  if (!strides) return std::nullopt;
  return Layout{to_dims(shape), to_dims(*strides), layout.offset};
}

KernelBuilder::KernelBuilder(llvm::IRBuilder<>& builder, llvm::Module& m,
                             llvm::BasicBlock* fail_block)
    : b(builder), module(m), fail_block_(fail_block) {}

llvm::Type* KernelBuilder::type(DType dtype) const {
  switch (dtype) {
    case DType::f32:
      return b.getFloatTy();
    case DType::f64:
      return b.getDoubleTy();
    case DType::i32:
      return b.getInt32Ty();
    case DType::i64:
      return b.getInt64Ty();
  }
  throw Error("lowering: unknown dtype");
}

llvm::Value* KernelBuilder::constant(DType dtype, double value) const {
  if (is_floating(dtype)) return llvm::ConstantFP::get(type(dtype), value);
  return llvm::ConstantInt::get(type(dtype), static_cast<uint64_t>(static_cast<int64_t>(value)),
                                true);
}

llvm::Value* KernelBuilder::i64(int64_t value) const { return b.getInt64(value); }

llvm::Value* KernelBuilder::address(const Access& access, std::span<llvm::Value* const> index) {
  llvm::Value* offset = i64(0);
  for (size_t d = 0; d < index.size(); ++d) {
    if (access.strides[d] == 0 || access.shape[d] == 1) continue;
    offset = b.CreateAdd(offset, b.CreateMul(index[d], i64(access.strides[d]), "", true, true), "",
                         true, true);
  }
  return b.CreateInBoundsGEP(type(access.dtype), access.data, offset);
}

llvm::Value* KernelBuilder::load(const Access& access, std::span<llvm::Value* const> index) {
  return b.CreateLoad(type(access.dtype), address(access, index));
}

void KernelBuilder::store(const Access& access, std::span<llvm::Value* const> index,
                          llvm::Value* value) {
  b.CreateStore(value, address(access, index));
}

void KernelBuilder::loop(int64_t n, const std::function<void(llvm::Value*)>& body, int interleave) {
  if (n <= 0) return;
  llvm::Function* function = b.GetInsertBlock()->getParent();
  llvm::BasicBlock* before = b.GetInsertBlock();
  auto* header = llvm::BasicBlock::Create(b.getContext(), "loop", function);
  auto* after = llvm::BasicBlock::Create(b.getContext(), "after", function);
  b.CreateBr(header);
  b.SetInsertPoint(header);
  llvm::PHINode* i = b.CreatePHI(b.getInt64Ty(), 2, "i");
  i->addIncoming(i64(0), before);
  body(i);
  llvm::Value* next = b.CreateAdd(i, i64(1), "next", true, true);
  i->addIncoming(next, b.GetInsertBlock());
  llvm::BranchInst* latch = b.CreateCondBr(b.CreateICmpSLT(next, i64(n)), header, after);
  if (interleave > 1) {
    llvm::LLVMContext& context = b.getContext();
    llvm::Metadata* count[] = {llvm::MDString::get(context, "llvm.loop.interleave.count"),
                               llvm::ConstantAsMetadata::get(b.getInt32(interleave))};
    llvm::Metadata* operands[] = {nullptr, llvm::MDNode::get(context, count)};
    llvm::MDNode* self = llvm::MDNode::getDistinct(context, operands);  // a loop ID names itself
    self->replaceOperandWith(0, self);
    latch->setMetadata(llvm::LLVMContext::MD_loop, self);
  }
  b.SetInsertPoint(after);
}

void KernelBuilder::for_each(
    const Shape& shape, const std::function<void(std::span<llvm::Value* const>)>& body,
    int interleave, const std::function<void(std::span<llvm::Value* const>)>& before_innermost) {
  std::vector<llvm::Value*> index;
  std::function<void(size_t)> nest = [&](size_t d) {
    if (d == shape.size()) {
      body(index);
      return;
    }
    if (before_innermost && d + 1 == shape.size()) before_innermost(index);
    loop(
        shape[d],
        [&](llvm::Value* i) {
          index.push_back(i);
          nest(d + 1);
          index.pop_back();
        },
        d + 1 == shape.size() ? interleave : 0);
  };
  nest(0);
}

void KernelBuilder::fail_if(llvm::Value* condition, const std::string& message,
                            llvm::Value* value) {
  llvm::Function* function = b.GetInsertBlock()->getParent();
  auto* fail = llvm::BasicBlock::Create(b.getContext(), "fail", function);
  auto* ok = llvm::BasicBlock::Create(b.getContext(), "ok", function);
  b.CreateCondBr(condition, fail, ok, llvm::MDBuilder(b.getContext()).createBranchWeights(1, 1000));
  b.SetInsertPoint(fail);
  llvm::Value* args[] = {b.CreateGlobalStringPtr(message),
                         b.CreateSExtOrTrunc(value, b.getInt64Ty())};
  call("weft_kernel_fail", b.getVoidTy(), args);
  b.CreateBr(fail_block_);
  b.SetInsertPoint(ok);
}

void KernelBuilder::fail_on_status(llvm::Value* status) {
  auto* ok = llvm::BasicBlock::Create(b.getContext(), "ok", b.GetInsertBlock()->getParent());
  b.CreateCondBr(b.CreateICmpNE(status, llvm::ConstantInt::get(status->getType(), 0)), fail_block_,
                 ok, llvm::MDBuilder(b.getContext()).createBranchWeights(1, 1000));
  b.SetInsertPoint(ok);
}

llvm::Value* KernelBuilder::call(const char* name, llvm::Type* result,
                                 std::span<llvm::Value* const> args) {
  std::vector<llvm::Type*> types;
  for (llvm::Value* arg : args) types.push_back(arg->getType());
  llvm::FunctionCallee callee =
      module.getOrInsertFunction(name, llvm::FunctionType::get(result, types, false));
  return b.CreateCall(callee, llvm::ArrayRef<llvm::Value*>(args.data(), args.size()));
}

llvm::Value* KernelBuilder::convert(llvm::Value* value, DType from, DType to) {
  if (from == to) return value;
  llvm::Type* target = type(to);
  if (is_floating(from) && is_floating(to)) return b.CreateFPCast(value, target);
  if (is_floating(from)) return b.CreateFPToSI(b.CreateFreeze(value), target);
  if (is_floating(to)) return b.CreateSIToFP(value, target);
  return b.CreateSExtOrTrunc(value, target);
}

llvm::Value* KernelBuilder::fast_mul_add(llvm::Value* x, llvm::Value* y, llvm::Value* addend) {
  if constexpr (fast::kFusedMultiplyAdd)
    return b.CreateIntrinsic(llvm::Intrinsic::fma, {x->getType()}, {x, y, addend});
  return b.CreateFAdd(b.CreateFMul(x, y), addend);
}

std::pair<llvm::Value*, llvm::Value*> KernelBuilder::fast_exp_parts(llvm::Value* x) {
  const auto c = [&](double v) { return constant(DType::f32, v); };
  x = b.CreateSelect(b.CreateFCmpOGT(x, c(fast::kExpHigh)), c(fast::kExpHigh), x);
  x = b.CreateSelect(b.CreateFCmpOLT(x, c(fast::kExpLow)), c(fast::kExpLow), x);
  llvm::Value* rounded = fast_mul_add(x, c(fast::kLog2e), c(fast::kRoundMagic));
  llvm::Value* n = b.CreateFSub(rounded, c(fast::kRoundMagic));
  llvm::Value* r =
      fast_mul_add(n, c(fast::kLn2Low), fast_mul_add(b.CreateFNeg(n), c(fast::kLn2High), x));
  llvm::Value* p = c(fast::kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = fast_mul_add(p, r, c(fast::kExpPoly[i]));
  llvm::Value* bits = b.CreateShl(b.CreateBitCast(rounded, b.getInt32Ty()), 23);
  return {b.CreateBitCast(bits, b.getFloatTy()), fast_mul_add(b.CreateFMul(p, r), r, r)};
}

llvm::Value* KernelBuilder::fast_exp(llvm::Value* x) {
  const auto [scale, q] = fast_exp_parts(x);
  return b.CreateFMul(b.CreateFAdd(q, constant(DType::f32, 1)), scale);
}

llvm::Value* KernelBuilder::exp(DType dtype, llvm::Value* x) {
  return dtype == DType::f32 ? fast_exp(x) : b.CreateUnaryIntrinsic(llvm::Intrinsic::exp, x);
}

llvm::Value* KernelBuilder::sigmoid(DType dtype, llvm::Value* x) {
  const auto c = [&](double v) { return constant(dtype, v); };
  if (dtype == DType::f32) return b.CreateFDiv(c(1), b.CreateFAdd(c(1), fast_exp(b.CreateFNeg(x))));
  // The float64 kernel's form, which never exponentiates a large positive number.
  llvm::Value* e = exp(dtype, b.CreateFNeg(b.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
  llvm::Value* one_plus_e = b.CreateFAdd(c(1), e);
  return b.CreateSelect(b.CreateFCmpOGE(x, c(0)), b.CreateFDiv(c(1), one_plus_e),
                        b.CreateFDiv(e, one_plus_e));
}

llvm::Value* KernelBuilder::tanh(DType dtype, llvm::Value* x) {
  if (dtype != DType::f32) {
    llvm::Value* args[] = {x};
    return call("tanh", type(dtype), args);
  }
  const auto c = [&](double v) { return constant(dtype, v); };
  const auto [scale, q] =
      fast_exp_parts(b.CreateFMul(c(-2.0f), b.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x)));
  llvm::Value* m = fast_mul_add(b.CreateFNeg(scale), q, b.CreateFSub(c(1), scale));
  llvm::Value* t = b.CreateFDiv(m, b.CreateFSub(c(2), m));
  return b.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, t, x);
}

namespace {
struct LoweringTable {
  std::mutex mutex;
  std::unordered_map<const OpDef*, const Lowering*> lowerings;
};
LoweringTable& lowering_table() {
  static LoweringTable instance;
  return instance;
}
}  // namespace

bool register_lowering(const OpDef& op, const Lowering& lowering) {
  LoweringTable& table = lowering_table();
  std::lock_guard lock(table.mutex);
  WEFT_CHECK(table.lowerings.emplace(&op, &lowering).second, "op '{}' has two lowerings", op.name);
  return true;
}

const Lowering* find_lowering(const OpDef& op) {
  LoweringTable& table = lowering_table();
  std::lock_guard lock(table.mutex);
  const auto found = table.lowerings.find(&op);
  return found == table.lowerings.end() ? nullptr : found->second;
}

}  // namespace weft
