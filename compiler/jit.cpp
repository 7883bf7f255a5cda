#include "weft/compiler/jit.h"

#include <fmt/format.h>
#include <llvm/ADT/SmallString.h>
#include <llvm/AsmParser/Parser.h>
#include <llvm/ExecutionEngine/Orc/CompileUtils.h>
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/JITEventListener.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/RTDyldObjectLinkingLayer.h>
#include <llvm/ExecutionEngine/SectionMemoryManager.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/SourceMgr.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <cstdlib>
#include <mutex>
#include <utility>

#include "weft/runtime/error.h"

namespace weft {
namespace {

template <typename T>
T check_llvm(llvm::Expected<T> value, const char* what) {
  if (!value) throw Error("jit: {}: {}", what, llvm::toString(value.takeError()));
  return std::forward<T>(*value);
}

void check_llvm(llvm::Error error, const char* what) {
  if (error) throw Error("jit: {}: {}", what, llvm::toString(std::move(error)));
}

std::string to_text(const llvm::Module& module) {
  std::string text;
  llvm::raw_string_ostream stream(text);
  module.print(stream, nullptr);
  return text;
}

// A module-level verifier failure is reported against the first function that fails on its own.
void verify(const llvm::Module& module, const std::string& name) {
  for (const llvm::Function& function : module) {
    std::string message;
    llvm::raw_string_ostream stream(message);
    if (!function.isDeclaration() && llvm::verifyFunction(function, &stream))
      throw Error("jit: module '{}': function '{}' failed verification: {}", name,
                  function.getName().str(), message);
  }
  std::string message;
  llvm::raw_string_ostream stream(message);
  if (llvm::verifyModule(module, &stream))
    throw Error("jit: module '{}' failed verification: {}", name, message);
}

// With WEFT_PERF=1 in the environment, every compiled function is described to perf through LLVM's
// perf listener (a jitdump file with the code itself), so that `perf report` and `perf annotate`
// name a step's kernels after `perf inject --jit` (docs/performance.md shows the commands).
llvm::JITEventListener* perf_listener() {
  const char* setting = std::getenv("WEFT_PERF");
  if (setting == nullptr || std::string_view(setting) != "1") return nullptr;
  static llvm::JITEventListener* listener = llvm::JITEventListener::createPerfJITEventListener();
  WEFT_CHECK(listener != nullptr, "jit: WEFT_PERF=1, but this LLVM was built without perf support");
  return listener;
}

}  // namespace

struct Jit::Impl {
  // For the pass pipeline, the machine code and the assembly text, so that the assembly shows
  // the code that runs.
  std::unique_ptr<llvm::TargetMachine> machine;
  std::unique_ptr<llvm::orc::LLJIT> jit;
  std::string triple, cpu;
  std::mutex mutex;  // guards `machine`, which is not thread-safe
  int modules = 0;
};

struct CompiledModule::State {
  // Frees the module's code and its dylib. Errors cannot be reported from here; removing what was
  // added has no failure to expect.
  ~State() {
    if (tracker) llvm::consumeError(tracker->remove());
    if (dylib) llvm::consumeError(owner->jit->getExecutionSession().removeJITDylib(*dylib));
  }
  std::string name, ir_before, ir_after;
  bool ir_kept = false;
  int64_t object_bytes = 0;
  Jit::Impl* owner = nullptr;  // whose target machine compiled the module, for the assembly
  llvm::orc::JITDylib* dylib = nullptr;
  llvm::orc::ResourceTrackerSP tracker;  // the module's code
  // Printed on first request: a second code generation costs as much as the first.
  mutable std::once_flag assembly_once;
  mutable std::string assembly;
};

const std::string& CompiledModule::name() const { return state_->name; }
const std::string& CompiledModule::ir_before() const {
  WEFT_CHECK(state_->ir_kept, "jit: module '{}' was compiled without keeping its IR text",
             state_->name);
  return state_->ir_before;
}

const std::string& CompiledModule::ir_after() const {
  WEFT_CHECK(state_->ir_kept, "jit: module '{}' was compiled without keeping its IR text",
             state_->name);
  return state_->ir_after;
}
int64_t CompiledModule::object_bytes() const { return state_->object_bytes; }

uintptr_t CompiledModule::address(const std::string& symbol) const {
  // Only this module's own definitions: not the runtime or process symbols its dylib links to.
  auto address = state_->owner->jit->lookup(*state_->dylib, symbol);
  if (!address)
    throw Error("jit: symbol '{}' not found in module '{}': {}", symbol, state_->name,
                llvm::toString(address.takeError()));
  return address->getValue();
}

const std::string& CompiledModule::assembly() const {
  std::call_once(state_->assembly_once, [&] {
    // The optimised IR again, from its text: code generation rewrote the module it compiled.
    llvm::LLVMContext context;
    llvm::SMDiagnostic diagnostic;
    std::unique_ptr<llvm::Module> module =
        llvm::parseAssemblyString(state_->ir_after, diagnostic, context);
    WEFT_CHECK(module != nullptr, "jit: module '{}': its optimised IR does not parse back",
               state_->name);
    llvm::SmallString<0> assembly;
    llvm::raw_svector_ostream stream(assembly);
    llvm::legacy::PassManager passes;
    std::lock_guard lock(state_->owner->mutex);
    WEFT_CHECK(!state_->owner->machine->addPassesToEmitFile(passes, stream, nullptr,
                                                            llvm::CGFT_AssemblyFile),
               "jit: the target cannot emit assembly for module '{}'", state_->name);
    passes.run(*module);
    state_->assembly = assembly.str().str();
  });
  return state_->assembly;
}

Jit::Jit(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Jit::~Jit() = default;

std::unique_ptr<Jit> Jit::create(const RuntimeSymbols& runtime) {
  static const std::string init_error = [] {
    if (llvm::InitializeNativeTarget()) return "no native target";
    if (llvm::InitializeNativeTargetAsmPrinter()) return "no native assembly printer";
    if (llvm::InitializeNativeTargetAsmParser()) return "no native assembly parser";
    return "";
  }();
  WEFT_CHECK(init_error.empty(), "jit: LLVM initialisation failed: {}", init_error);

  auto impl = std::make_unique<Impl>();
  auto host = check_llvm(llvm::orc::JITTargetMachineBuilder::detectHost(), "detecting the host");
  host.setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
  impl->machine = check_llvm(host.createTargetMachine(), "creating the target machine");
  impl->triple = host.getTargetTriple().str();
  impl->cpu = host.getCPU();
  // LLJIT's default linking layer, made here to attach the perf listener to it.
  auto linking_layer = [](llvm::orc::ExecutionSession& session, const llvm::Triple&)
      -> llvm::Expected<std::unique_ptr<llvm::orc::ObjectLayer>> {
    auto layer = std::make_unique<llvm::orc::RTDyldObjectLinkingLayer>(
        session, [] { return std::make_unique<llvm::SectionMemoryManager>(); });
    if (llvm::JITEventListener* listener = perf_listener())
      layer->registerJITEventListener(*listener);
    return layer;
  };
  impl->jit = check_llvm(llvm::orc::LLJITBuilder()
                             .setJITTargetMachineBuilder(host)
                             .setObjectLinkingLayerCreator(linking_layer)
                             .create(),
                         "creating the JIT");

  // The caller's runtime first, then whatever else the process defines (libm, memset, memcpy).
  llvm::orc::JITDylib& main = impl->jit->getMainJITDylib();
  llvm::orc::SymbolMap symbols;
  for (const auto& [name, address] : runtime)
    symbols[impl->jit->mangleAndIntern(name)] =
        llvm::JITEvaluatedSymbol(llvm::pointerToJITTargetAddress(address),
                                 llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable);
  check_llvm(main.define(llvm::orc::absoluteSymbols(std::move(symbols))),
             "defining the runtime symbols");
  main.addGenerator(check_llvm(llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
                                   impl->jit->getDataLayout().getGlobalPrefix()),
                               "searching the process's symbols"));
  return std::unique_ptr<Jit>(new Jit(std::move(impl)));
}

const std::string& Jit::target_triple() const { return impl_->triple; }
const std::string& Jit::cpu() const { return impl_->cpu; }

CompiledModule Jit::add(std::unique_ptr<llvm::Module> module,
                        std::unique_ptr<llvm::LLVMContext> context, const std::string& name,
                        IrText ir_text) {
  WEFT_CHECK(module && context, "jit: module '{}' or its context is null", name);
  WEFT_CHECK(&module->getContext() == context.get(),
             "jit: module '{}' does not live in the context given with it", name);
  verify(*module, name);
  std::lock_guard lock(impl_->mutex);
  llvm::TargetMachine& machine = *impl_->machine;
  module->setDataLayout(machine.createDataLayout());
  module->setTargetTriple(machine.getTargetTriple().str());
  auto state = std::make_shared<CompiledModule::State>();
  state->name = name;
  state->ir_kept = ir_text == IrText::keep;
  if (state->ir_kept) state->ir_before = to_text(*module);

  // The new pass manager's standard O3 pipeline, tuned by the host's TargetTransformInfo.
  {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder builder(&machine);
    builder.registerModuleAnalyses(mam);
    builder.registerCGSCCAnalyses(cgam);
    builder.registerFunctionAnalyses(fam);
    builder.registerLoopAnalyses(lam);
    builder.crossRegisterProxies(lam, fam, cgam, mam);
    builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(*module, mam);
  }
  if (state->ir_kept) state->ir_after = to_text(*module);

  // Compiled here rather than by LLJIT on the first lookup, with ORC's own compiler, so that the
  // code that runs comes from `machine` as the assembly does, and its size is known.
  std::unique_ptr<llvm::MemoryBuffer> object =
      check_llvm(llvm::orc::SimpleCompiler(machine)(*module), "generating machine code");
  state->object_bytes = static_cast<int64_t>(object->getBufferSize());
  module.reset();  // before its context

  // Each module gets its own dylib, linked to the main one for the runtime and process symbols.
  llvm::orc::JITDylib& dylib =
      check_llvm(impl_->jit->createJITDylib(name + "#" + std::to_string(impl_->modules++)),
                 "creating a dylib");
  state->owner = impl_.get();
  state->dylib = &dylib;
  dylib.addToLinkOrder(impl_->jit->getMainJITDylib());
  state->tracker = dylib.createResourceTracker();
  check_llvm(impl_->jit->addObjectFile(state->tracker, std::move(object)), "adding a module");
  return CompiledModule(std::move(state));
}

}  // namespace weft
