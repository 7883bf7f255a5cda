// Jit: a small LLVM ORC v2 wrapper (after LLVM's BuildingAJIT chapter 1). It targets the host CPU
// with all of its features (AVX-512 where present), optimises each module with the new pass
// manager at O3, compiles it to machine code, keeps the IR before and after optimisation as text
// (and prints the host assembly on request), and hands back a CompiledModule to look functions
// up in. A module's code is freed (its ResourceTracker removed) when the last CompiledModule
// referring to it goes.
//
// This header needs no LLVM header: llvm::Module and llvm::LLVMContext are only declared, so a
// caller that builds modules includes LLVM's headers (and links LLVM). The compiled code may call
// the runtime symbols given to Jit::create; ordinary C library functions (memset, memcpy, libm)
// resolve against the process.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace llvm {
class Module;
class LLVMContext;
}  // namespace llvm

namespace weft {

// Functions compiled code may call, by their unmangled names.
using RuntimeSymbols = std::vector<std::pair<std::string, void*>>;

// One module added to a Jit. Cheap to copy; valid while its Jit lives. The code is freed once
// the last copy is gone.
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
  // Initialises LLVM's native target (once per process) and builds a JIT for the host whose
  // modules may call `runtime`. Throws weft::Error with LLVM's message on failure.
  static std::unique_ptr<Jit> create(const RuntimeSymbols& runtime = {});
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

  const std::string& target_triple() const;
  const std::string& cpu() const;  // the host CPU's LLVM name, such as "sapphirerapids"

  struct Impl;

 private:
  explicit Jit(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weft
