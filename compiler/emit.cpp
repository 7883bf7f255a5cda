// Stage "emit": the schedule as an LLVM module (see emit.h).
#include "weft/compiler/emit.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <variant>

#include "weft/runtime/error.h"

namespace weft {
namespace {

// Merges adjacent dimensions that every layout walks as one (and drops size-1 dimensions), so a
// loop over contiguous data is one loop, which vectorises.
Shape collapse(Shape shape, std::vector<Shape*> strides) {
  Shape merged;
  std::vector<Shape> merged_strides(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool joins = !merged.empty();
    for (size_t k = 0; k < strides.size() && joins; ++k)
      joins = merged_strides[k].back() == (*strides[k])[d] * shape[d];
    if (joins) {
      merged.back() *= shape[d];
      for (size_t k = 0; k < strides.size(); ++k) merged_strides[k].back() = (*strides[k])[d];
      continue;
    }
    merged.push_back(shape[d]);
    for (size_t k = 0; k < strides.size(); ++k) merged_strides[k].push_back((*strides[k])[d]);
  }
  for (size_t k = 0; k < strides.size(); ++k) *strides[k] = merged_strides[k];
  return merged;
}

class Emitter {
 public:
  Emitter(const Graph& graph, const Schedule& schedule, llvm::Module& module)
      : graph_(graph),
        schedule_(schedule),
        fusion_(schedule.placement.fusion),
        module_(module),
        context_(module.getContext()),
        b_(context_) {}

  // int32_t step(void** buffers, char* arena): 0 when it ran, 1 after a failure it recorded,
  // 2 when `finite_output` was not finite (the stores skipped).
  void emit_step(const std::string& finite_output) {
    llvm::Type* ptr = b_.getPtrTy();
    step_ = llvm::Function::Create(llvm::FunctionType::get(b_.getInt32Ty(), {ptr, ptr}, false),
                                   llvm::Function::ExternalLinkage, "step", module_);
    // Only a list of calls (and loops of them): optimising it buys nothing, while LLVM's
    // instruction scheduler is quadratic in the size of the one block O3 would make of it.
    step_->addFnAttr(llvm::Attribute::OptimizeNone);
    step_->addFnAttr(llvm::Attribute::NoInline);
    b_.SetInsertPoint(llvm::BasicBlock::Create(context_, "entry", step_));
    failed_ = llvm::BasicBlock::Create(context_, "failed", step_);
    bool guarded = finite_output.empty();
    for (const Segment& segment : schedule_.segments) {
      if (!guarded && segment.run.first >= static_cast<size_t>(fusion_.first_store)) {
        guard_finite(finite_output);
        guarded = true;
      }
      emit_segment(segment);
    }
    if (!guarded) guard_finite(finite_output);
    b_.CreateRet(b_.getInt32(0));
    b_.SetInsertPoint(failed_);
    b_.CreateRet(b_.getInt32(1));
  }

 private:
  llvm::Type* type(DType dtype) {
    KernelBuilder k(b_, module_, nullptr);
    return k.type(dtype);
  }

  llvm::Value* base(int64_t slot) {
    if (slot < 0) return step_->getArg(1);
    llvm::Value*& loaded = slot_pointers_[slot];
    if (loaded == nullptr) {
      llvm::IRBuilder<> at_entry(&step_->getEntryBlock(), step_->getEntryBlock().begin());
      loaded = at_entry.CreateLoad(
          b_.getPtrTy(), at_entry.CreateConstInBoundsGEP1_64(b_.getPtrTy(), step_->getArg(0),
                                                             static_cast<uint64_t>(slot)));
    }
    return loaded;
  }

  // Call `c`, with every argument moved by `repeat` times its delta when in a loop.
  void emit_call(size_t c, llvm::Value* repeat, const std::vector<int64_t>& deltas) {
    std::vector<llvm::Value*> args;
    const auto& site_args = schedule_.site_args[c];
    for (size_t a = 0; a < site_args.size(); ++a) {
      llvm::Value* bytes = b_.getInt64(site_args[a].bytes);
      if (repeat != nullptr && deltas[a] != 0)
        bytes = b_.CreateAdd(bytes, b_.CreateMul(repeat, b_.getInt64(deltas[a])));
      args.push_back(b_.CreateInBoundsGEP(b_.getInt8Ty(), base(site_args[a].slot), bytes));
    }
    // A kernel's streamed reads take how far they move next time round (0 outside loops).
    for (size_t r : streamed_reads_[fusion_.kernel_of[c]])
      args.push_back(b_.getInt64(repeat != nullptr ? deltas[r] : 0));
    llvm::Value* status = b_.CreateCall(kernel_for(c), args);
    auto* next = llvm::BasicBlock::Create(context_, "next", step_);
    b_.CreateCondBr(b_.CreateICmpNE(status, b_.getInt32(0)), failed_, next);
    b_.SetInsertPoint(next);
  }

  void emit_segment(const Segment& segment) {
    const Run& run = segment.run;
    const size_t first = run.first;
    if (run.count == 1) {
      for (size_t j = 0; j < run.period; ++j) emit_call(first + j, nullptr, {});
      return;
    }
    // for (repeat = 0; repeat < count; ++repeat) { the period's calls }
    llvm::BasicBlock* before = b_.GetInsertBlock();
    auto* header = llvm::BasicBlock::Create(context_, "repeat", step_);
    b_.CreateBr(header);
    b_.SetInsertPoint(header);
    llvm::PHINode* repeat = b_.CreatePHI(b_.getInt64Ty(), 2, "r");
    repeat->addIncoming(b_.getInt64(0), before);
    for (size_t j = 0; j < run.period; ++j) emit_call(first + j, repeat, segment.deltas[j]);
    llvm::Value* next = b_.CreateAdd(repeat, b_.getInt64(1));
    repeat->addIncoming(next, b_.GetInsertBlock());
    auto* after = llvm::BasicBlock::Create(context_, "after", step_);
    b_.CreateCondBr(b_.CreateICmpULT(next, b_.getInt64(static_cast<int64_t>(run.count))), header,
                    after);
    b_.SetInsertPoint(after);
  }

  void guard_finite(const std::string& name) {
    for (size_t i = 0; i < graph_.outputs.size(); ++i) {
      if (graph_.outputs[i].name != name) continue;
      const GraphNode& node = graph_.node(graph_.outputs[i].node);
      WEFT_CHECK(node.spec.shape.empty() && is_floating(node.spec.dtype),
                 "compile: finite_output \"{}\" must be a 0-d floating-point output, got {} {}",
                 name, dtype_name(node.spec.dtype), shape_str(node.spec.shape));
      const Buffer& buffer = fusion_.buffers[fusion_.output_buffers[i]];
      llvm::Value* value = b_.CreateLoad(type(node.spec.dtype), base(buffer.slot));
      llvm::Value* infinity = llvm::ConstantFP::getInfinity(type(node.spec.dtype));
      llvm::Value* finite =
          b_.CreateFCmpOLT(b_.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, value), infinity);
      auto* skip = llvm::BasicBlock::Create(context_, "not_finite", step_);
      auto* go = llvm::BasicBlock::Create(context_, "stores", step_);
      b_.CreateCondBr(finite, go, skip);
      b_.SetInsertPoint(skip);
      b_.CreateRet(b_.getInt32(2));
      b_.SetInsertPoint(go);
      return;
    }
    throw Error("compile: finite_output \"{}\" is not an output of the step", name);
  }

  // The kernel of call `c`, emitted once per distinct signature (the code, not the buffers).
  llvm::Function* kernel_for(size_t c) {
    const int id = fusion_.kernel_of[c];
    if (kernels_[id] == nullptr)
      kernels_[id] = emit_kernel(fusion_.calls[c], fmt::format("k{}", id), streamed_reads_[id]);
    return kernels_[id];
  }

  // By kernel: the reads of its fused loop that some loop moves from one time round to the next
  // (a time step's rows of the input projection, the activations saved for the backward pass).
  // Those were written long before and come from memory, and the caches' prefetchers lose their
  // stream between one call and the next, so the kernel asks for the next round's rows while it
  // computes this round's.
  std::vector<std::vector<size_t>> find_streamed_reads() const {
    std::vector<std::vector<size_t>> streamed(static_cast<size_t>(fusion_.kernel_count));
    for (const Segment& segment : schedule_.segments) {
      if (segment.run.count < 2) continue;
      for (size_t j = 0; j < segment.run.period; ++j) {
        const size_t c = segment.run.first + j;
        if (fusion_.calls[c].kind != Call::Kind::fused) continue;
        std::vector<size_t>& reads = streamed[static_cast<size_t>(fusion_.kernel_of[c])];
        for (size_t r = 0; r < fusion_.calls[c].reads.size(); ++r)
          if (segment.deltas[j][r] != 0 && std::find(reads.begin(), reads.end(), r) == reads.end())
            reads.push_back(r);
      }
    }
    for (std::vector<size_t>& reads : streamed) std::sort(reads.begin(), reads.end());
    return streamed;
  }

  // Its parameters: the reads, the writes of their own, then how far each of `streamed` reads
  // moves next time round, in bytes.
  llvm::Function* emit_kernel(const Call& call, const std::string& name,
                              const std::vector<size_t>& streamed) {
    size_t params = call.reads.size();
    for (size_t w = 0; w < call.writes.size(); ++w) params += own_argument(call, w) ? 1 : 0;
    std::vector<llvm::Type*> types(params, b_.getPtrTy());
    types.insert(types.end(), streamed.size(), b_.getInt64Ty());
    auto* function = llvm::Function::Create(llvm::FunctionType::get(b_.getInt32Ty(), types, false),
                                            llvm::Function::InternalLinkage, name, module_);
    // Kept out of line: the step is a list of calls, and its size stays that of the list.
    function->addFnAttr(llvm::Attribute::NoInline);
    function->addFnAttr(llvm::Attribute::NoUnwind);
    for (size_t i = 0; i < params; ++i) {
      function->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoCapture);
      // Buffers never overlap a call's output (place), except a store's own input; an in-place
      // write goes through its read's argument.
      if (call.kind != Call::Kind::copy)
        function->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
    }
    llvm::IRBuilder<>::InsertPointGuard guard(b_);
    b_.SetInsertPoint(llvm::BasicBlock::Create(context_, "entry", function));
    auto* fail = llvm::BasicBlock::Create(context_, "fail", function);
    KernelBuilder k(b_, module_, fail);
    std::vector<Access> reads, writes;
    for (size_t i = 0; i < call.reads.size(); ++i)
      reads.push_back({function->getArg(static_cast<unsigned>(i)),
                       to_shape(call.reads[i].layout.shape), to_shape(call.reads[i].layout.strides),
                       call.reads[i].dtype});
    auto next_arg = static_cast<unsigned>(call.reads.size());
    for (size_t w = 0; w < call.writes.size(); ++w)
      writes.push_back(
          {own_argument(call, w) ? function->getArg(next_arg++) : reads[call.in_place_of[w]].data,
           to_shape(call.writes[w].layout.shape), to_shape(call.writes[w].layout.strides),
           call.writes[w].dtype});
    switch (call.kind) {
      case Call::Kind::copy:
        emit_copy(k, reads[0], writes[0]);
        break;
      case Call::Kind::op: {
        const GraphNode& node = graph_.node(call.members[0]);
        std::get<KernelLowering>(lowering_of(graph_, call.members[0]))
            .emit(k, reads, writes[0], node.attrs);
        break;
      }
      case Call::Kind::fused: {
        std::vector<std::pair<size_t, llvm::Value*>> moves;
        for (size_t i = 0; i < streamed.size(); ++i)
          moves.emplace_back(streamed[i], function->getArg(static_cast<unsigned>(params + i)));
        emit_fused(k, call, reads, writes, moves);
        break;
      }
    }
    b_.CreateRet(b_.getInt32(0));
    b_.SetInsertPoint(fail);
    b_.CreateRet(b_.getInt32(1));
    return function;
  }

  void emit_copy(KernelBuilder& k, Access source, Access target) {
    const Shape shape = collapse(target.shape, {&source.strides, &target.strides});
    source.shape = target.shape = shape;
    k.for_each(shape, [&](std::span<llvm::Value* const> index) {
      k.store(target, index, k.convert(k.load(source, index), source.dtype, target.dtype));
    });
  }

  // `moves`: reads that move from one time round to the next, and how far (bytes); each outer
  // iteration asks for their rows of the next round before its own innermost loop.
  void emit_fused(KernelBuilder& k, const Call& call, std::vector<Access> reads,
                  std::vector<Access> writes,
                  const std::vector<std::pair<size_t, llvm::Value*>>& moves) {
    std::vector<Shape*> strides;
    for (Access& access : reads) strides.push_back(&access.strides);
    for (Access& access : writes) strides.push_back(&access.strides);
    const Shape shape = collapse(call.shape, strides);
    for (Access& access : reads) access.shape = shape;
    for (Access& access : writes) access.shape = shape;
    const Graph& graph = graph_;
    // A loop of many ops (an LSTM cell: five exps and five divisions, one after another) runs an
    // iteration's chain of dependent operations longer than the CPU's out-of-order window can
    // overlap with the next iteration's; two interleaved vector iterations give it independent
    // work. W1's step on Zen 2 took 4-6% less; short loops gain nothing and compile longer.
    constexpr size_t long_loop_members = 8;
    const int interleave = call.members.size() >= long_loop_members ? 2 : 0;
    k.for_each(
        shape,
        [&](std::span<llvm::Value* const> index) {
          std::vector<llvm::Value*> read_values;
          for (const Access& access : reads) read_values.push_back(k.load(access, index));
          std::vector<llvm::Value*> values;
          for (int member : call.members) {
            const GraphNode& node = graph.node(member);
            std::vector<llvm::Value*> args;
            std::vector<DType> dtypes;
            for (int input : node.inputs) {
              const Operand operand = operand_of(call, input);
              const DType dtype = graph.node(input).spec.dtype;
              args.push_back(operand.kind == Operand::Kind::member ? values[operand.index]
                             : operand.kind == Operand::Kind::read
                                 ? read_values[operand.index]
                                 : k.constant(dtype, graph.node(input).value.item()));
              dtypes.push_back(dtype);
            }
            values.push_back(std::get<ElementLowering>(lowering_of(graph, member))
                                 .emit(k, {.args = args,
                                           .arg_dtypes = dtypes,
                                           .dtype = node.spec.dtype,
                                           .attrs = node.attrs}));
          }
          for (size_t w = 0; w < writes.size(); ++w)
            k.store(writes[w], index, values[member_index(call, call.written_members[w])]);
        },
        interleave,
        [&](std::span<llvm::Value* const> outer) {
          for (const auto& [read, delta] : moves) prefetch_row(k, reads[read], outer, delta);
        });
  }

  // Asks for the lines of `access`'s innermost row at `outer`, moved `delta` bytes, to be brought
  // into L2. Left to the hardware: a loop with no outer dimension (it would ask for all of it at
  // once, and stall), rows that are not contiguous, and long rows, which its prefetchers follow.
  void prefetch_row(KernelBuilder& k, const Access& access, std::span<llvm::Value* const> outer,
                    llvm::Value* delta) {
    constexpr int64_t line = 64, max_lines = 16;
    const auto bytes = access.shape.back() * static_cast<int64_t>(dtype_size(access.dtype));
    if (outer.empty() || access.strides.back() != 1 || bytes > max_lines * line) return;
    std::vector<llvm::Value*> index(outer.begin(), outer.end());
    index.push_back(k.i64(0));
    llvm::Value* first = b_.CreateGEP(b_.getInt8Ty(), k.address(access, index), delta);
    // From the line of the first byte to the line of the last, wherever the row starts.
    for (int64_t at = 0; at < bytes + line - 1; at += line) {
      llvm::Value* address = b_.CreateGEP(b_.getInt8Ty(), first, k.i64(std::min(at, bytes - 1)));
      b_.CreateIntrinsic(llvm::Intrinsic::prefetch, {b_.getPtrTy()},
                         {address, b_.getInt32(0), b_.getInt32(1), b_.getInt32(1)});
    }
  }

  const Graph& graph_;
  const Schedule& schedule_;
  const Fusion& fusion_;
  llvm::Module& module_;
  llvm::LLVMContext& context_;
  llvm::IRBuilder<> b_;
  std::vector<llvm::Function*> kernels_ = std::vector<llvm::Function*>(fusion_.kernel_count);
  const std::vector<std::vector<size_t>> streamed_reads_ = find_streamed_reads();
  llvm::Function* step_ = nullptr;
  llvm::BasicBlock* failed_ = nullptr;
  std::map<int64_t, llvm::Value*> slot_pointers_;
};

}  // namespace

void emit(const Graph& graph, const Schedule& schedule, llvm::Module& module,
          const std::string& finite_output) {
  Emitter(graph, schedule, module).emit_step(finite_output);
}

}  // namespace weft
