// weft: the command-line tool. Gradient checks of ops, layers and the chapter's models, the
// recorded graph of a model's training or inference step, and saved models (TF.js Layers format,
// as Keras's tensorflowjs_converter and TF.js write them).
//
//   weft list
//   weft summary MODEL.json
//   weft predict MODEL.json INPUT.csv   (one sample per row, flattened; one output line per row)
//   weft gradcheck op NAME | --all
//   weft gradcheck layer dense|embedding|simple_rnn|lstm|gru|bidirectional [--units N ...]
//   weft gradcheck model NAME [--batch N] [--timesteps T]
//   weft inspect MODEL --step train|infer|gradients|apply --graph VIEW [--out DIR], VIEW one of:
//   text, dot,
//     svg, passes, schedule, ir-before, ir-after, asm, stats
//
// Exit status: 0 when everything passes, 1 when a check fails or weft reports an error, 2 for
// bad usage.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spawn.h>
#include <sys/wait.h>
#include <weft/autodiff/op_samples.h>
#include <weft/compiler/compile.h>
#include <weft/weft.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

extern char** environ;

using namespace weft;

namespace {

// ---- gradcheck --------------------------------------------------------------------------

// --atol/--rtol/--eps/--elements given on the command line override a check's own options.
struct Tolerances {
  std::optional<double> atol, rtol, eps;
  std::optional<int64_t> elements;

  void add_to(CLI::App& command) {
    command.add_option("--atol", atol,
                       "absolute tolerance (|analytic - numeric| <= atol + rtol·|numeric|)");
    command.add_option("--rtol", rtol, "relative tolerance");
    command.add_option("--eps", eps, "central-difference step");
    command.add_option("--elements", elements,
                       "check a seeded sample of at most N elements per input or weight");
  }
  GradcheckOptions applied_to(GradcheckOptions options) const {
    options.atol = atol.value_or(options.atol);
    options.rtol = rtol.value_or(options.rtol);
    options.eps = eps.value_or(options.eps);
    options.max_elements = elements.value_or(options.max_elements);
    return options;
  }
};

// One line per checked input: its name and shape, the largest errors, the worst element with
// both values, and PASS or FAIL. Returns whether all passed.
bool print_report(const std::string& title, const GradcheckReport& report,
                  const std::vector<std::string>& input_names) {
  for (const InputGradError& e : report.inputs)
    fmt::print(
        "{} {} {}: max abs {:.3g}  max rel {:.3g}  worst [{}] analytic {:.9g} numeric {:.9g}  {}\n",
        title, input_names.at(e.input), shape_str(e.shape), e.max_abs_error, e.max_rel_error,
        e.worst_index, e.analytic, e.numeric, e.passed ? "PASS" : "FAIL");
  return report.passed();
}

// The names of x and the weights of `layers`, as gradcheck_layer and gradcheck_model number
// their report's inputs.
std::vector<std::string> input_names(const std::vector<Layer*>& layers) {
  std::vector<std::string> names{"x"};
  for (Layer* layer : layers) {
    // Bidirectional's weights are its two copies': name them apart.
    if (auto* wrapper = dynamic_cast<Bidirectional*>(layer)) {
      for (Weight* w : wrapper->forward_layer().weights())
        names.push_back(layer->name() + "/forward/" + w->name);
      for (Weight* w : wrapper->backward_layer().weights())
        names.push_back(layer->name() + "/backward/" + w->name);
      continue;
    }
    for (Weight* w : layer->weights()) names.push_back(layer->name() + "/" + w->name);
  }
  return names;
}

int gradcheck_ops(const std::string& name, const Tolerances& tolerances) {
  bool passed = true;
  bool found = false;
  for (const OpSample& sample : op_samples()) {
    if (!name.empty() && sample.op != name) continue;
    found = true;
    const std::string title =
        sample.name == sample.op ? sample.name : fmt::format("{} ({})", sample.name, sample.op);
    if (!sample.differentiable) {
      const bool records = records_gradient(sample);
      fmt::print("{}: no gradient, records none  {}\n", title, records ? "FAIL" : "PASS");
      passed = passed && !records;
      continue;
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < sample.inputs.size(); ++i) names.push_back(fmt::format("x{}", i));
    const GradcheckOptions options = tolerances.applied_to(sample.options);
    passed = print_report(title, gradcheck(sample.f, sample.inputs, options), names) && passed;
    if (sample.second_order)
      passed = print_report(title + " second order",
                            gradgradcheck(sample.f, sample.inputs, options), names) &&
               passed;
  }
  WEFT_CHECK(found, "no op \"{}\" has a gradient sample; `weft list` shows the ops", name);
  return passed ? 0 : 1;
}

struct LayerArgs {
  std::string kind;
  int64_t units = 3, timesteps = 4, batch = 2, features = 3;
  bool return_sequences = false, go_backwards = false, mask = false;
  double dropout = 0;
  std::string inner = "lstm";  // the layer Bidirectional wraps
};

template <typename Rnn>
Rnn recurrent(const LayerArgs& args) {
  return Rnn(args.units)
      .dtype(DType::f64)
      .return_sequences(args.return_sequences)
      .go_backwards(args.go_backwards)
      .dropout(args.dropout)
      .recurrent_dropout(args.dropout);
}

// f(the recurrent layer of this kind, with the options in args).
template <typename F>
auto with_recurrent(const std::string& kind, const LayerArgs& args, F f) {
  if (kind == "simple_rnn") return f(recurrent<SimpleRNN>(args));
  if (kind == "lstm") return f(recurrent<LSTM>(args));
  return f(recurrent<GRU>(args));
}

int gradcheck_one_layer(const LayerArgs& args, const Tolerances& tolerances) {
  Generator generator(7);
  std::unique_ptr<Layer> layer;
  Tensor x;
  if (args.kind == "dense") {
    layer = Dense(args.units).dtype(DType::f64).clone();
    x = randn({args.batch, args.features}, {.dtype = DType::f64}, generator);
  } else if (args.kind == "embedding") {
    constexpr int64_t kVocabulary = 7;
    layer = Embedding(kVocabulary, args.units).dtype(DType::f64).clone();
    x = to_dtype(uniform({args.batch, args.timesteps}, 0, kVocabulary, {}, generator), DType::i64);
  } else {
    const bool wrapped = args.kind == "bidirectional";
    layer = with_recurrent(wrapped ? args.inner : args.kind, args, [&](const Recurrent& rnn) {
      return wrapped ? Bidirectional(rnn).clone() : rnn.clone();
    });
    x = randn({args.batch, args.timesteps, args.features}, {.dtype = DType::f64}, generator);
  }
  LayerGradcheckOptions options{.training = args.dropout > 0, .dropout_seed = 11};
  if (args.mask) {
    // Sample b has its last b steps padded, so the batch mixes full and padded sequences.
    std::vector<float> mask;
    for (int64_t b = 0; b < args.batch; ++b)
      for (int64_t t = 0; t < args.timesteps; ++t) mask.push_back(t < args.timesteps - b ? 1 : 0);
    options.mask = from_vector(mask, {args.batch, args.timesteps});
  }
  options.gradcheck = tolerances.applied_to(options.gradcheck);
  layer->set_name(layer->base_name());
  const GradcheckReport report = gradcheck_layer(*layer, x, options);
  return print_report(args.kind, report, input_names({layer.get()})) ? 0 : 1;
}

int gradcheck_chapter_model(const std::string& name, int64_t batch,
                            std::optional<int64_t> timesteps, const Tolerances& tolerances) {
  const ChapterModel chapter =
      timesteps ? chapter_model(name).with_timesteps(*timesteps) : chapter_model(name);
  manual_seed(3);
  Sequential model = chapter.build(DType::f64);
  Generator generator(5);
  const Tensor x = sample_batch(chapter, batch, generator);
  const Tensor y = sample_labels(chapter, batch, generator);
  // A whole model's weights are too many to difference one by one: a sample of each by default.
  const GradcheckOptions options = tolerances.applied_to({.max_elements = 20});
  const GradcheckReport report = gradcheck_model(model, x, y, chapter.loss, {.gradcheck = options});
  std::vector<Layer*> layers;
  for (const auto& layer : model.layers()) layers.push_back(layer.get());
  return print_report(name, report, input_names(layers)) ? 0 : 1;
}

// ---- inspect ----------------------------------------------------------------------------

// Runs a program (found on PATH) with arguments; returns false when it cannot be started.
bool run_program(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return false;
  int status = 0;
  waitpid(pid, &status, 0);
  WEFT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "`{}` failed", fmt::join(command, " "));
  return true;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  WEFT_CHECK(out.good(), "cannot write {}", path.string());
}

// Graphviz's drawing of dot source. `scratch` names the intermediate files (scratch.dot, and
// scratch.svg); without Graphviz, scratch.dot is left for the user.
std::string dot_to_svg(const std::string& dot, const std::filesystem::path& scratch) {
  const std::filesystem::path source = scratch.string() + ".dot";
  const std::filesystem::path drawing = scratch.string() + ".svg";
  write_file(source, dot);
  WEFT_CHECK(run_program({"dot", "-Tsvg", source.string(), "-o", drawing.string()}),
             "--graph svg needs Graphviz's `dot`, which is not on PATH: install graphviz "
             "(sudo apt-get install graphviz). The Graphviz source is in {}",
             source.string());
  return read_file(drawing);
}

// A captured step as `weft inspect` sees it: the recorded graph, and the step compiled from it
// (compiled on first use, so that showing the graph needs no LLVM).
class Inspected {
 public:
  explicit Inspected(Graph graph) : graph_(std::move(graph)) {}
  const Graph& graph() const { return graph_; }
  const CompiledStep& compiled() {
    if (!compiled_) compiled_.emplace(compile(graph_, {.keep_stages = true}));
    return *compiled_;
  }

 private:
  Graph graph_;
  std::optional<CompiledStep> compiled_;
};

std::string passes_text(Inspected& step) {
  std::string text = fmt::format("# recorded: {} nodes\n", step.graph().nodes().size());
  const std::vector<Pass>& passes = pipeline();
  const auto& graphs = step.compiled().pass_graphs();
  for (size_t i = 0; i < graphs.size(); ++i)
    text += fmt::format("\n# after {} ({}): {} nodes\n{}", graphs[i].first, passes[i].summary,
                        graphs[i].second.nodes().size(), graphs[i].second.to_text());
  return text;
}

std::string plan_text(Inspected& step) {
  std::string text;
  const std::vector<LoweringStage>& stages = lowering_stages();
  const auto& plans = step.compiled().plan_stages();
  for (size_t i = 0; i < plans.size(); ++i)
    text +=
        fmt::format("# after {} ({})\n{}\n", plans[i].first, stages[i].summary, plans[i].second);
  return text;
}

std::string stats_text(Inspected& step) {
  const CompileStats& s = step.compiled().stats();
  std::vector<std::string> stages;
  for (const auto& [stage, seconds] : s.stage_seconds)
    stages.push_back(fmt::format("{} {:.3f}", stage, seconds));
  return fmt::format(
      "graph nodes after passes: {}\n"
      "kernel calls: {} ({} in re-rolled loops, {} copies)\n"
      "distinct kernels: {}\n"
      "elementwise ops in fused loops: {} (and {} computed again by a later loop)\n"
      "elementwise ops in the loop of their post-dominator: {} of {} (apart: {} by a kernel, {} in "
      "a full loop)\n"
      "arena: {} bytes ({} without reuse)\n"
      "compile time: {:.3f} s (with the stages kept: {})\n"
      "LLVM IR: {} bytes before, {} after O3\n",
      s.graph_nodes, s.kernel_calls, s.rolled_calls, s.copy_calls, s.distinct_kernels, s.fused_ops,
      s.recomputed_ops, s.fused_with_post_dominator, s.post_dominated_ops, s.apart_by_a_kernel,
      s.apart_in_a_full_loop, s.arena_bytes, s.unplanned_bytes, s.seconds, fmt::join(stages, ", "),
      step.compiled().module().ir_before().size(), step.compiled().module().ir_after().size());
}

// What `weft inspect` can show of a captured step, one row each.
struct View {
  std::string name;         // the value of --show
  std::string description;  // for --help
  std::string extension;    // of the file written under --out
  // The text; `scratch` is a path without extension where intermediate files may go.
  std::function<std::string(Inspected& step, const std::filesystem::path& scratch)> render;
};

const std::vector<View>& views() {
  static const std::vector<View> table{
      {"text", "the recorded graph, one line per node", "txt",
       [](Inspected& step, const std::filesystem::path&) { return step.graph().to_text(); }},
      {"dot", "the recorded graph as Graphviz source", "dot",
       [](Inspected& step, const std::filesystem::path&) { return step.graph().to_dot(); }},
      {"svg", "the recorded graph drawn by Graphviz (runs dot -Tsvg)", "svg",
       [](Inspected& step, const std::filesystem::path& scratch) {
         return dot_to_svg(step.graph().to_dot(), scratch);
       }},
      {"passes", "the graph after each optimisation pass", "txt",
       [](Inspected& step, const std::filesystem::path&) { return passes_text(step); }},
      {"plan", "the lowering plan after each stage (fuse, place, reroll)", "txt",
       [](Inspected& step, const std::filesystem::path&) { return plan_text(step); }},
      {"schedule", "the lowering plan: fused loops, kernels, buffers and arena offsets", "txt",
       [](Inspected& step, const std::filesystem::path&) { return step.compiled().schedule(); }},
      {"ir-before", "LLVM IR as emitted", "ll",
       [](Inspected& step, const std::filesystem::path&) {
         return step.compiled().module().ir_before();
       }},
      {"ir-after", "LLVM IR after the O3 pipeline", "ll",
       [](Inspected& step, const std::filesystem::path&) {
         return step.compiled().module().ir_after();
       }},
      {"asm", "the host machine code", "s",
       [](Inspected& step, const std::filesystem::path&) {
         return step.compiled().module().assembly();
       }},
      {"stats", "what the compiler did, in numbers", "txt",
       [](Inspected& step, const std::filesystem::path&) { return stats_text(step); }},
  };
  return table;
}

const View& view(const std::string& name) {
  for (const View& v : views())
    if (v.name == name) return v;
  throw Error("no view \"{}\"", name);  // CLI11 already checked the name
}

struct InspectArgs {
  std::string model;
  std::string step = "train";
  int64_t batch = 4;
  std::optional<int64_t> timesteps;
  std::string graph = "text";
  std::optional<std::string> out;
};

int inspect(const InspectArgs& args) {
  const ChapterModel chapter = args.timesteps
                                   ? chapter_model(args.model).with_timesteps(*args.timesteps)
                                   : chapter_model(args.model);
  manual_seed(3);
  Sequential model = chapter.build();
  model.compile("adam", chapter.loss);
  Generator generator(5);
  const Tensor x = sample_batch(chapter, args.batch, generator);
  const std::map<std::string, StepKind> kinds = {{"train", StepKind::train},
                                                 {"infer", StepKind::infer},
                                                 {"gradients", StepKind::gradients},
                                                 {"apply", StepKind::apply}};
  const StepKind kind = kinds.at(args.step);
  Inspected step(model.capture_step(kind, x,
                                    kind == StepKind::train || kind == StepKind::gradients
                                        ? sample_labels(chapter, args.batch, generator)
                                        : Tensor()));

  const View& shown = view(args.graph);
  const std::string stem = fmt::format("{}_{}", chapter.name, args.step);
  if (!args.out) {
    const std::filesystem::path scratch = std::filesystem::temp_directory_path() / ("weft_" + stem);
    std::cout << shown.render(step, scratch);
    return 0;
  }
  const std::filesystem::path dir(*args.out);
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / (stem + "." + shown.extension);
  write_file(path, shown.render(step, dir / stem));
  fmt::print("wrote {}\n", path.string());
  return 0;
}

// ---- list -------------------------------------------------------------------------------

int list() {
  fmt::print("models (weft gradcheck model NAME, weft inspect NAME):\n");
  for (const ChapterModel& model : chapter_models())
    fmt::print("  {:<22} {}\n", model.name, model.description);
  fmt::print("ops (weft gradcheck op NAME):\n ");
  for (const OpDef* op : registered_ops()) fmt::print(" {}", op->name);
  fmt::print("\ncomposite ops with gradient samples:\n ");
  std::vector<std::string> composites;
  for (const OpSample& sample : op_samples())
    if (!find_op(sample.op) &&
        std::find(composites.begin(), composites.end(), sample.op) == composites.end())
      composites.push_back(sample.op);
  for (const std::string& name : composites) fmt::print(" {}", name);
  fmt::print("\n");
  return 0;
}

// ---- saved models -------------------------------------------------------------------------

// One line per input row: the model's outputs for that sample, flattened, comma-separated.
int predict_csv(const std::string& model_path, const std::string& input_path,
                const std::string& quantize_mode) {
  Sequential model = load_model(model_path);
  if (!quantize_mode.empty()) model.quantize(quantize_mode);
  const Tensor x = read_csv_batch(model, input_path);
  const Tensor y = model.predict(x);
  const int64_t rows = x.size(0), width = y.numel() / rows;
  const std::vector<float> values = y.to_vector<float>();
  for (int64_t r = 0; r < rows; ++r)
    fmt::print("{}\n",
               fmt::join(values.begin() + r * width, values.begin() + (r + 1) * width, ","));
  return 0;
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const ChapterModel& model : chapter_models()) names.push_back(model.name);
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "weft: gradient checks and step graphs of weft's ops, layers and chapter models; saved "
      "models' summaries and predictions",
      "weft"};
  app.require_subcommand(1);
  std::function<int()> command;

  app.add_subcommand("list", "list the chapter models and the ops")->callback([&] {
    command = list;
  });

  std::string model_path, input_path;
  CLI::App* summary = app.add_subcommand(
      "summary", "Keras's summary of a saved model (TF.js Layers format, as Keras exports it)");
  summary->add_option("model", model_path, "the model.json, or the folder holding it")->required();
  summary->callback([&] {
    command = [&] {
      load_model(model_path).summary();
      return 0;
    };
  });
  CLI::App* predict = app.add_subcommand(
      "predict", "a saved model's outputs for each row of a CSV file, one line per row");
  predict->add_option("model", model_path, "the model.json, or the folder holding it")->required();
  predict
      ->add_option("input", input_path,
                   "a CSV file without header, one sample per row: token ids, or timesteps x "
                   "features values flattened")
      ->required();
  std::string quantize_mode;
  predict
      ->add_option("--quantize", quantize_mode,
                   "round the weights first, as Sequential::quantize, to see how the outputs move")
      ->check(CLI::IsMember({"float16", "bfloat16"}));
  predict->callback(
      [&] { command = [&] { return predict_csv(model_path, input_path, quantize_mode); }; });

  CLI::App* gradcheck = app.add_subcommand(
      "gradcheck", "check gradients against central differences in float64 (exit 1 on FAIL)");
  gradcheck->require_subcommand(1);
  Tolerances tolerances;

  std::string op_name;
  bool all_ops = false;
  CLI::App* op = gradcheck->add_subcommand("op", "one primitive or composite op, or --all");
  CLI::Option* op_option = op->add_option("name", op_name, "the op (see `weft list`)");
  op->add_flag("--all", all_ops, "every op's samples")->excludes(op_option);
  tolerances.add_to(*op);
  op->callback([&] {
    WEFT_CHECK(!op_name.empty() || all_ops, "gradcheck op: give an op's name or --all");
    command = [&] { return gradcheck_ops(op_name, tolerances); };
  });

  LayerArgs layer_args;
  CLI::App* layer = gradcheck->add_subcommand("layer", "one layer, d output / d input and weights");
  const std::vector<std::string> rnn_kinds{"simple_rnn", "lstm", "gru"};
  layer->add_option("kind", layer_args.kind, "the layer")
      ->required()
      ->check(CLI::IsMember({"dense", "embedding", "simple_rnn", "lstm", "gru", "bidirectional"}));
  layer->add_option("--units", layer_args.units, "units (Embedding: output_dim)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  layer->add_option("--timesteps", layer_args.timesteps, "sequence length (1: one cell step)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  layer->add_option("--batch", layer_args.batch, "batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  layer->add_option("--features", layer_args.features, "input features")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  layer->add_flag("--return-sequences", layer_args.return_sequences,
                  "recurrent: every step's output");
  layer->add_flag("--go-backwards", layer_args.go_backwards,
                  "recurrent: read the sequence backwards");
  layer->add_flag("--mask", layer_args.mask, "recurrent: pad sample b's last b steps");
  layer
      ->add_option(
          "--dropout", layer_args.dropout,
          "recurrent: dropout and recurrent_dropout rate, in training mode with fixed masks")
      ->check(CLI::Range(0.0, 0.99));
  layer->add_option("--inner", layer_args.inner, "the layer Bidirectional wraps")
      ->capture_default_str()
      ->check(CLI::IsMember(rnn_kinds));
  tolerances.add_to(*layer);
  layer->callback([&] { command = [&] { return gradcheck_one_layer(layer_args, tolerances); }; });

  std::string model_name;
  int64_t model_batch = 2;
  std::optional<int64_t> model_timesteps;
  CLI::App* model = gradcheck->add_subcommand(
      "model",
      "a chapter model: d loss / d every weight (a sample of 20 elements each unless --elements)");
  model->add_option("name", model_name, "the model (see `weft list`)")
      ->required()
      ->check(CLI::IsMember(model_names()));
  model->add_option("--batch", model_batch, "batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  model->add_option("--timesteps", model_timesteps, "sequence length instead of the chapter's")
      ->check(CLI::PositiveNumber);
  tolerances.add_to(*model);
  model->callback([&] {
    command = [&] {
      return gradcheck_chapter_model(model_name, model_batch, model_timesteps, tolerances);
    };
  });

  InspectArgs inspect_args;
  CLI::App* inspect_command =
      app.add_subcommand("inspect", "the recorded graph of one step of a chapter model");
  inspect_command->add_option("model", inspect_args.model, "the model (see `weft list`)")
      ->required()
      ->check(CLI::IsMember(model_names()));
  inspect_command
      ->add_option("--step", inspect_args.step,
                   "fit()'s step (train; or gradients on a batch's part, then apply) or "
                   "predict()'s (infer)")
      ->capture_default_str()
      ->check(CLI::IsMember({"train", "infer", "gradients", "apply"}));
  inspect_command->add_option("--batch", inspect_args.batch, "batch size")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  inspect_command
      ->add_option("--timesteps", inspect_args.timesteps,
                   "sequence length instead of the chapter's")
      ->check(CLI::PositiveNumber);
  std::string graph_help = "what to show:";
  std::vector<std::string> view_names;
  for (const View& v : views()) {
    graph_help += fmt::format(" {} ({}),", v.name, v.description);
    view_names.push_back(v.name);
  }
  graph_help.pop_back();
  inspect_command->add_option("--graph", inspect_args.graph, graph_help)
      ->capture_default_str()
      ->check(CLI::IsMember(view_names));
  inspect_command->add_option("--out", inspect_args.out,
                              "write DIR/MODEL_STEP.EXT instead of printing");
  inspect_command->callback([&] { command = [&] { return inspect(inspect_args); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;  // --help is a success; any other is bad usage
  } catch (const Error& error) {          // a callback's usage check
    fmt::print(stderr, "weft: {}\n", error.what());
    return 2;
  }
  try {
    return command();
  } catch (const Error& error) {
    fmt::print(stderr, "weft: {}\n", error.what());
    return 1;
  }
}
