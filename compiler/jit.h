// Jit: a small LLVM ORC v2 wrapper (after LLVM's BuildingAJIT chapter 1). It targets the host CPU
// with all of its features (AVX-512 where present), optimises each module with the new pass
// manager at O3, compiles it to machine code, keeps the IR before and after optimisation as text
// (and prints the host assembly on request), and hands back a CompiledModule to look functions
// up in.
//
// This header needs no LLVM header: llvm::Module and llvm::LLVMContext are only declared, so a
// caller that builds modules itself includes LLVM's headers (and links LLVM); a caller that writes
// textual IR uses add_ir() and needs neither. The compiled code may call the runtime shims below;
// ordinary C library functions (memset, memcpy, libm) resolve against the process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace llvm {
class Module;
class LLVMContext;
}  // namespace llvm

namespace weft {

// One module added to a Jit. Cheap to copy; valid while its Jit lives.
class CompiledModule {
 public:
  const std::string& name() const;
  // The IR as given (with the host triple and data layout set), and after the O3 pipeline: kept
  // when the module was added with IrText::keep, else they throw weft::Error.
  const std::string& ir_before() const;
  const std::string& ir_after() const;
  // The host assembly for ir_after(), generated on the first call (as long again as compiling).
  const std::string& assembly() const;
  int64_t object_bytes() const;  // the size of the machine code's object file

  // The address of `symbol` (unmangled), which must be defined by this module.
  // Throws weft::Error naming the symbol when it is not.
  uintptr_t address(const std::string& symbol) const;

  // lookup<float(float, float)>("add") returns a float (*)(float, float).
  template <typename Fn>
  requires std::is_function_v<Fn> Fn* lookup(const std::string& symbol) const {
    return reinterpret_cast<Fn*>(address(symbol));
  }

  struct State;

 private:
  friend class Jit;
  explicit CompiledModule(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

// Whether Jit::add keeps the module's IR as text for inspection (printing it is a few percent
// of a compile).
enum class IrText { keep, drop };

class Jit {
 public:
  // Initialises LLVM's native target (once per process) and builds a JIT for the host.
  // Throws weft::Error with LLVM's message on failure.
  static std::unique_ptr<Jit> create();
  ~Jit();
  Jit(const Jit&) = delete;
  Jit& operator=(const Jit&) = delete;

  // Verifies, optimises (O3) and compiles `module`, which must live in `context` (the Jit takes
  // both). Throws weft::Error naming the broken function when verification fails, and for any
  // LLVM error (such as a symbol the module defines twice). `name` labels the module in messages;
  // modules are compiled into separate dylibs, so two modules may define the same symbol.
  CompiledModule add(std::unique_ptr<llvm::Module> module,
                     std::unique_ptr<llvm::LLVMContext> context, const std::string& name,
                     IrText ir_text = IrText::keep);
  // The same for a module in LLVM's textual IR; a parse error throws weft::Error with the line.
  CompiledModule add_ir(std::string_view ir, const std::string& name);

  const std::string& target_triple() const;
  const std::string& cpu() const;  // the host CPU's LLVM name, such as "sapphirerapids"

  struct Impl;

 private:
  explicit Jit(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft

namespace weft {
// The message of the last runtime shim call on this thread that failed, cleared by the call;
// empty when none failed. Compiled code checks a shim's status and its caller throws this.
std::string jit_take_runtime_error();
}  // namespace weft

// Runtime entry points for compiled code, with C names and plain types. Transposes are 0 or 1.
// They forward to weft::gemm (runtime/gemm.h) and never throw into compiled code: they return 0
// on success, and nonzero after recording the weft::Error for jit_take_runtime_error().
extern "C" {
int32_t weft_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc);
int32_t weft_dgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                   const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                   double* c, int64_t ldc);
// Records a failure detected by compiled code: `format` (a fmt string with one {}) and `value`.
void weft_kernel_fail(const char* format, int64_t value);
}
