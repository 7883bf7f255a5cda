// The JIT wrapper: O3 on the host target, the dumps, runtime symbols, the error paths, and code
// freed with its module. Most modules are written as textual IR, parsed here with LLVM's parser;
// the IRBuilder tests at the end build the same modules in memory.
#include <gtest/gtest.h>
#include <llvm/AsmParser/Parser.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/raw_ostream.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "test_support.h"
#include "weft/compiler/compile.h"
#include "weft/compiler/jit.h"
#include "weft/compiler/runtime_calls.h"
#include "weft/ops/ops.h"
#include "weft/runtime/error.h"
#include "weft/runtime/tensor.h"

namespace weft {
namespace {

// One JIT for the suite: creating it costs a few milliseconds, not worth repeating.
Jit& jit() {
  static std::unique_ptr<Jit> instance = Jit::create(runtime_symbols());
  return *instance;
}

// A module written in LLVM's textual IR, added to the suite's JIT.
CompiledModule add_ir(const std::string& ir, const std::string& name) {
  auto context = std::make_unique<llvm::LLVMContext>();
  llvm::SMDiagnostic diagnostic;
  std::unique_ptr<llvm::Module> module = llvm::parseAssemblyString(ir, diagnostic, *context);
  if (!module) {
    std::string message;
    llvm::raw_string_ostream stream(message);
    diagnostic.print(name.c_str(), stream, /*ShowColors=*/false);
    ADD_FAILURE() << "module '" << name << "' does not parse: " << message;
  }
  return jit().add(std::move(module), std::move(context), name);
}

using testing_support::expect_error;

constexpr const char* scalar_add_ir = R"(
define float @add(float %a, float %b) {
  %sum = fadd float %a, %b
  ret float %sum
}
)";

// out[i] = a * x[i] + y[i]
constexpr const char* axpy_ir = R"(
define void @axpy(float %a, ptr noalias %x, ptr noalias %y, ptr noalias %out, i64 %n) {
entry:
  %empty = icmp sle i64 %n, 0
  br i1 %empty, label %done, label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
  %px = getelementptr inbounds float, ptr %x, i64 %i
  %xi = load float, ptr %px
  %py = getelementptr inbounds float, ptr %y, i64 %i
  %yi = load float, ptr %py
  %ax = fmul float %a, %xi
  %sum = fadd float %ax, %yi
  %po = getelementptr inbounds float, ptr %out, i64 %i
  store float %sum, ptr %po
  %next = add nuw nsw i64 %i, 1
  %more = icmp slt i64 %next, %n
  br i1 %more, label %loop, label %done
done:
  ret void
}
)";

// c = a @ b for row-major a (m x k) and b (k x n), through the runtime GEMM.
constexpr const char* matmul_ir = R"(
declare i32 @weft_sgemm(i32, i32, i64, i64, i64, float, ptr, i64, ptr, i64, float, ptr, i64, ptr)

define i32 @matmul(ptr %a, ptr %b, ptr %c, i64 %m, i64 %n, i64 %k) {
  %status = call i32 @weft_sgemm(i32 0, i32 0, i64 %m, i64 %n, i64 %k, float 1.0, ptr %a,
                                 i64 %k, ptr %b, i64 %n, float 0.0, ptr %c, i64 %n, ptr null)
  ret i32 %status
}
)";

using Axpy = void(float, const float*, const float*, float*, int64_t);

void check_axpy(const CompiledModule& module) {
  EXPECT_EQ(module.ir_before().find("x float>"), std::string::npos);
  EXPECT_NE(module.ir_after().find("x float>"), std::string::npos) << module.ir_after();
  auto* axpy = module.lookup<Axpy>("axpy");
  for (int64_t n : {0, 1, 7, 16, 1003}) {
    std::vector<float> x(n), y(n), out(n, -1), expected(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = 0.25f * static_cast<float>(i) - 3;
      y[i] = 1.5f - 0.125f * static_cast<float>(i % 13);
      expected[i] = 2.5f * x[i] + y[i];
    }
    axpy(2.5f, x.data(), y.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(out[i], expected[i]) << "n=" << n << " i=" << i;
  }
}

TEST(Jit, TargetsTheHost) {
  EXPECT_FALSE(jit().target_triple().empty());
  EXPECT_FALSE(jit().cpu().empty());
}

TEST(Jit, ScalarAdd) {
  CompiledModule module = add_ir(scalar_add_ir, "scalar_add");
  EXPECT_EQ(module.name(), "scalar_add");
  auto* add = module.lookup<float(float, float)>("add");
  EXPECT_EQ(add(1.5f, 2.25f), 3.75f);
  EXPECT_EQ(add(-1.0f, 1.0f), 0.0f);
  EXPECT_NE(module.ir_before().find("fadd float %a, %b"), std::string::npos);
  EXPECT_NE(module.ir_after().find("define float @add"), std::string::npos);
  EXPECT_NE(module.assembly().find("add:"), std::string::npos) << module.assembly();
}

TEST(Jit, ElementwiseLoopIsVectorised) { check_axpy(add_ir(axpy_ir, "axpy")); }

TEST(Jit, ModulesAreSeparate) {
  // Two modules may define the same symbol, and each finds its own.
  CompiledModule first = add_ir(scalar_add_ir, "twice");
  CompiledModule second = add_ir(R"(
define float @add(float %a, float %b) {
  %sum = fsub float %a, %b
  ret float %sum
}
)",
                                 "twice");
  EXPECT_EQ(first.lookup<float(float, float)>("add")(3, 1), 4.0f);
  EXPECT_EQ(second.lookup<float(float, float)>("add")(3, 1), 2.0f);
}

TEST(Jit, CallsTheRuntimeGemm) {
  CompiledModule module = add_ir(matmul_ir, "matmul");
  auto* jit_matmul =
      module.lookup<int32_t(const float*, const float*, float*, int64_t, int64_t, int64_t)>(
          "matmul");
  const int64_t m = 5, n = 7, k = 3;
  Tensor a = randn({m, k}), b = randn({k, n});
  std::vector<float> expected = matmul(a, b).to_vector<float>();
  std::vector<float> c(m * n, -1);
  ASSERT_EQ(jit_matmul(a.data<float>(), b.data<float>(), c.data(), m, n, k), 0);
  for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(c[i], expected[i], 1e-5) << i;
  EXPECT_EQ(jit_take_runtime_error(), "");

  // A negative size is reported through the status and the thread's error, not thrown.
  EXPECT_NE(jit_matmul(a.data<float>(), b.data<float>(), c.data(), -1, n, k), 0);
  EXPECT_NE(jit_take_runtime_error().find("negative size"), std::string::npos);
  EXPECT_EQ(jit_take_runtime_error(), "");
}

TEST(Jit, MissingSymbolThrows) {
  CompiledModule module = add_ir(scalar_add_ir, "lonely");
  expect_error([&] { module.lookup<void()>("no_such_function"); }, {"no_such_function", "lonely"});
  // The runtime is linked to the module, but is not one of its definitions.
  expect_error([&] { module.lookup<void()>("weft_sgemm"); }, {"weft_sgemm"});
}

TEST(Jit, UnverifiableModuleThrows) {
  expect_error(
      [] {
        add_ir(R"(
define i32 @fine(i32 %x) {
  ret i32 %x
}

define i32 @use_before_def(i32 %x) {
  %y = add i32 %z, 1
  %z = add i32 %x, 1
  ret i32 %y
}
)",
               "broken");
      },
      {"use_before_def", "broken", "dominate"});
}

// The same axpy loop, built in memory.
TEST(Jit, IRBuilderLoopIsVectorised) {
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>("axpy", *context);
  llvm::IRBuilder<> b(*context);
  llvm::Type* f32 = b.getFloatTy();
  llvm::Type* i64 = b.getInt64Ty();
  llvm::Type* ptr = b.getPtrTy();
  auto* function = llvm::Function::Create(
      llvm::FunctionType::get(b.getVoidTy(), {f32, ptr, ptr, ptr, i64}, false),
      llvm::Function::ExternalLinkage, "axpy", *module);
  for (unsigned i = 1; i <= 3; ++i) function->addParamAttr(i, llvm::Attribute::NoAlias);
  llvm::Argument* args = function->arg_begin();
  llvm::Value *a = &args[0], *x = &args[1], *y = &args[2], *out = &args[3], *n = &args[4];
  auto* entry = llvm::BasicBlock::Create(*context, "entry", function);
  auto* loop = llvm::BasicBlock::Create(*context, "loop", function);
  auto* done = llvm::BasicBlock::Create(*context, "done", function);
  b.SetInsertPoint(entry);
  b.CreateCondBr(b.CreateICmpSLE(n, b.getInt64(0)), done, loop);
  b.SetInsertPoint(loop);
  llvm::PHINode* i = b.CreatePHI(i64, 2, "i");
  llvm::Value* xi = b.CreateLoad(f32, b.CreateInBoundsGEP(f32, x, i));
  llvm::Value* yi = b.CreateLoad(f32, b.CreateInBoundsGEP(f32, y, i));
  b.CreateStore(b.CreateFAdd(b.CreateFMul(a, xi), yi), b.CreateInBoundsGEP(f32, out, i));
  llvm::Value* next = b.CreateAdd(i, b.getInt64(1), "next", true, true);
  i->addIncoming(b.getInt64(0), entry);
  i->addIncoming(next, loop);
  b.CreateCondBr(b.CreateICmpSLT(next, n), loop, done);
  b.SetInsertPoint(done);
  b.CreateRetVoid();
  check_axpy(jit().add(std::move(module), std::move(context), "irbuilder_axpy"));
}

TEST(Jit, IRBuilderUnverifiableFunctionThrows) {
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = std::make_unique<llvm::Module>("broken", *context);
  auto* function =
      llvm::Function::Create(llvm::FunctionType::get(llvm::Type::getInt32Ty(*context), false),
                             llvm::Function::ExternalLinkage, "no_terminator", *module);
  llvm::BasicBlock::Create(*context, "entry", function);  // an empty block: no terminator
  expect_error([&] { jit().add(std::move(module), std::move(context), "irbuilder_broken"); },
               {"no_terminator", "irbuilder_broken"});
}

// Bytes of executable memory mapped without a file: where JIT-compiled code lives.
int64_t anonymous_code_bytes() {
  std::ifstream maps("/proc/self/maps");
  int64_t bytes = 0;
  for (std::string line; std::getline(maps, line);) {
    uint64_t begin = 0, end = 0;
    char permissions[5] = {};
    uint64_t offset = 0, inode = 0;
    char device[16] = {};
    char path[2] = {};
    const int fields = std::sscanf(line.c_str(), "%lx-%lx %4s %lx %15s %lu %1s", &begin, &end,
                                   permissions, &offset, device, &inode, path);
    if (fields == 6 && permissions[2] == 'x')  // six fields: no path
      bytes += static_cast<int64_t>(end - begin);
  }
  return bytes;
}

// A step cache filled far past its bound keeps the process's compiled code bounded: an evicted
// step's machine code is freed with its module.
TEST(Jit, EvictedStepsFreeTheirCode) {
  StepCache cache(/*memory_bound=*/1);  // keeps only the latest step
  int64_t after_warm_up = 0;
  for (int64_t i = 1; i <= 60; ++i) {
    // A different shape each time: a step of its own, with kernels of its own.
    const Tensor x = ones({i, 3});
    Graph graph = capture({{"x", x}}, [&]() -> std::vector<std::pair<std::string, Tensor>> {
      return {{"y", tanh(x * x + x).sum()}};
    });
    cache.insert(std::to_string(i), compile(std::move(graph)));
    if (i == 10) after_warm_up = anonymous_code_bytes();
  }
  EXPECT_EQ(cache.size(), 1);
  EXPECT_EQ(cache.evictions(), 59);
  // 50 more modules of at least one page of code each would add 200 KB; freed, the code stays
  // where it was after the first ten.
  EXPECT_LT(anonymous_code_bytes() - after_warm_up, 64 * 1024);
}

}  // namespace
}  // namespace weft
