// SimpleRNN, LSTM, GRU and Bidirectional: values and gradients against the PyTorch-made reference
// vectors, gradient checks over every option, parameter counts, statefulness and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>

#include "reference_vectors.h"
#include "weft/models/layer_gradcheck.h"
#include "weft/weft.h"

namespace weft {
namespace {

using reference::ReferenceArray;
using reference::ReferenceCase;

Tensor normal64(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return randn(shape, {.dtype = DType::f64}, g);
}

Tensor to_tensor(const ReferenceArray& a) {
  return tensor(a.values, a.shape, {.dtype = DType::f64});
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// ---- Reference vectors (tests/data/rnn_reference.txt, from tests/reference/gen_rnn_vectors.py)

const std::vector<ReferenceCase>& reference_cases() {
  static const std::vector<ReferenceCase> cases =
      reference::load_reference_vectors(WEFT_TEST_DATA_DIR "/rnn_reference.txt");
  return cases;
}

// The case's layer with its options, float64, built for the case's input.
struct ReferenceLayer {
  std::unique_ptr<Layer> layer;
  std::function<RecurrentOutput(const Tensor&, CallContext&, const std::vector<Tensor>&)> call;
  std::vector<std::string> state_names;  // the case's arrays for the final states
  std::string weight_prefix[2];          // "" or "forward_" / "backward_"
};

template <typename L>
L configured(L layer, const ReferenceCase& c) {
  layer.return_sequences(c.flag("return_sequences"))
      .go_backwards(c.flag("go_backwards"))
      .return_state(true)
      .dtype(DType::f64);
  return layer;
}

template <typename L>
ReferenceLayer plain(L layer, std::vector<std::string> state_names) {
  auto owned = std::make_unique<L>(std::move(layer));
  L* raw = owned.get();
  return {std::move(owned),
          [raw](const Tensor& x, CallContext& context, const std::vector<Tensor>& initial) {
            return raw->call_with_state(x, context, initial);
          },
          std::move(state_names),
          {"", ""}};
}

ReferenceLayer make_reference_layer(const ReferenceCase& c) {
  const std::string& kind = c.string_attr("layer");
  const int64_t units = c.int_attr("units");
  if (kind == "simple_rnn") return plain(configured(SimpleRNN(units), c), {"h"});
  if (kind == "lstm") return plain(configured(LSTM(units), c), {"h", "c"});
  if (kind == "gru")
    return plain(configured(GRU(units), c).reset_after(c.flag("reset_after")), {"h"});
  EXPECT_EQ(kind, "bidirectional") << c.location;
  EXPECT_EQ(c.string_attr("inner_layer"), "lstm") << c.location;
  auto owned = std::make_unique<Bidirectional>(configured(LSTM(c.int_attr("inner_units")), c),
                                               c.string_attr("merge_mode"));
  Bidirectional* raw = owned.get();
  return {std::move(owned),
          [raw](const Tensor& x, CallContext& context, const std::vector<Tensor>& initial) {
            return raw->call_with_state(x, context, initial);
          },
          {"forward_h", "forward_c", "backward_h", "backward_c"},
          {"forward_", "backward_"}};
}

void expect_close(const Tensor& got, const ReferenceArray& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what << " is undefined";
  ASSERT_EQ(got.shape(), want.shape) << what;
  const std::vector<double> values = got.to_vector<double>();
  double scale = 1, error = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    scale = std::max(scale, std::abs(want.values[i]));
    error = std::max(error, std::abs(values[i] - want.values[i]));
  }
  EXPECT_LE(error, 1e-10 * scale) << what;
}

TEST(RecurrentReference, EveryCaseMatchesPyTorch) {
  const std::vector<ReferenceCase>& cases = reference_cases();
  EXPECT_EQ(cases.size(), 23u);  // a lost case must not pass silently
  for (const ReferenceCase& c : cases) {
    SCOPED_TRACE(c.name);
    ReferenceLayer ref = make_reference_layer(c);
    ref.layer->build_for({c.int_attr("timesteps"), c.int_attr("input_dim")}, default_generator());
    const std::vector<Weight*> weights = ref.layer->weights();
    ASSERT_EQ(weights.size(), ref.state_names.size() == 4 ? 6u : 3u);
    std::vector<std::string> weight_arrays;
    for (size_t i = 0; i < weights.size(); ++i) {
      weight_arrays.push_back(ref.weight_prefix[i / 3] + weights[i]->name);
      weights[i]->value.assign_(to_tensor(c.array(weight_arrays.back())));
    }

    Tensor x = to_tensor(c.array("x"));
    x.requires_grad_();
    std::vector<Tensor> initial;
    if (c.flag("initial_state"))
      for (const char* name : {"h0", "c0"})
        initial.push_back(to_tensor(c.array(name)).requires_grad_());
    CallContext context;
    if (c.flag("masked")) context.mask = to_tensor(c.array("mask"));
    const RecurrentOutput out = ref.call(x, context, initial);

    expect_close(out.output, c.array("y"), "y");
    ASSERT_EQ(out.states.size(), ref.state_names.size());
    for (size_t i = 0; i < out.states.size(); ++i)
      expect_close(out.states[i], c.array(ref.state_names[i]), ref.state_names[i]);

    sum(out.output * to_tensor(c.array("w_out"))).backward();
    expect_close(x.grad(), c.array("grad_x"), "grad_x");
    for (size_t i = 0; i < weights.size(); ++i)
      expect_close(weights[i]->value.grad(), c.array("grad_" + weight_arrays[i]),
                   "grad_" + weight_arrays[i]);
    if (c.flag("initial_state")) {
      expect_close(initial[0].grad(), c.array("grad_h0"), "grad_h0");
      expect_close(initial[1].grad(), c.array("grad_c0"), "grad_c0");
    }
  }
}

// ---- Gradient checks over the options ------------------------------------------------------

struct GradRow {
  std::string name;
  std::function<std::unique_ptr<Layer>()> make;
  bool masked = false;
  bool training = false;
};

template <typename L>
std::function<std::unique_ptr<Layer>()> maker(L layer) {
  layer.dtype(DType::f64);
  return [layer] { return layer.clone(); };
}

std::vector<GradRow> grad_rows() {
  std::vector<GradRow> rows;
  for (bool seq : {false, true}) {
    const std::string s = seq ? "_seq" : "_last";
    rows.push_back({"simple_rnn" + s, maker(SimpleRNN(2).return_sequences(seq))});
    rows.push_back({"lstm" + s, maker(LSTM(2).return_sequences(seq))});
    rows.push_back({"gru" + s, maker(GRU(2).return_sequences(seq))});
    rows.push_back(
        {"gru_reset_before" + s, maker(GRU(2).reset_after(false).return_sequences(seq))});
    rows.push_back(
        {"simple_rnn_backwards" + s, maker(SimpleRNN(2).go_backwards(true).return_sequences(seq))});
    rows.push_back({"lstm_backwards" + s, maker(LSTM(2).go_backwards(true).return_sequences(seq))});
    rows.push_back({"gru_backwards" + s, maker(GRU(2).go_backwards(true).return_sequences(seq))});
    rows.push_back({"lstm_masked" + s, maker(LSTM(2).return_sequences(seq)), true});
    rows.push_back(
        {"gru_masked_backwards" + s, maker(GRU(2).go_backwards(true).return_sequences(seq)), true});
    rows.push_back({"simple_rnn_dropout" + s,
                    maker(SimpleRNN(2).dropout(0.3).recurrent_dropout(0.4).return_sequences(seq)),
                    false, true});
    rows.push_back({"lstm_dropout" + s,
                    maker(LSTM(2).dropout(0.3).recurrent_dropout(0.4).return_sequences(seq)), false,
                    true});
    rows.push_back({"gru_dropout" + s,
                    maker(GRU(2).dropout(0.3).recurrent_dropout(0.4).return_sequences(seq)), false,
                    true});
    rows.push_back(
        {"gru_reset_before_dropout" + s,
         maker(GRU(2).reset_after(false).dropout(0.3).recurrent_dropout(0.4).return_sequences(seq)),
         false, true});
    for (const char* mode : {"concat", "sum", "mul", "ave"})
      rows.push_back({std::string("bidirectional_") + mode + s,
                      maker(Bidirectional(LSTM(2).return_sequences(seq), mode))});
    rows.push_back(
        {"bidirectional_gru_masked" + s, maker(Bidirectional(GRU(2).return_sequences(seq))), true});
    rows.push_back({"bidirectional_dropout" + s,
                    maker(Bidirectional(
                        SimpleRNN(2).dropout(0.2).recurrent_dropout(0.2).return_sequences(seq))),
                    false, true});
  }
  rows.push_back({"simple_rnn_sigmoid", maker(SimpleRNN(2).activation("sigmoid"))});
  rows.push_back({"lstm_no_bias", maker(LSTM(2).use_bias(false))});
  rows.push_back({"gru_no_bias", maker(GRU(2).use_bias(false))});
  rows.push_back({"gru_tanh_gates", maker(GRU(2).recurrent_activation("tanh"))});
  rows.push_back({"lstm_no_forget_bias", maker(LSTM(2).unit_forget_bias(false))});
  return rows;
}

TEST(RecurrentGradcheck, EveryLayerAndOption) {
  // Row 0 pads its first step, row 1 its last two: both padding sides, and a middle step.
  const Tensor mask = tensor({0, 1, 1, 1, 1, 1, 0, 0}, {2, 4});
  for (const GradRow& row : grad_rows()) {
    SCOPED_TRACE(row.name);
    std::unique_ptr<Layer> layer = row.make();
    const GradcheckReport report = gradcheck_layer(
        *layer, normal64({2, 4, 3}, 7),
        {.training = row.training, .mask = row.masked ? mask : Tensor(), .dropout_seed = 11});
    EXPECT_TRUE(report.passed()) << report.to_string();
    EXPECT_EQ(report.inputs.size(), 1 + layer->weights().size());
  }
}

TEST(RecurrentGradcheck, StatefulSecondCall) {
  for (auto make : {maker(LSTM(2).stateful(true).return_sequences(true)),
                    maker(GRU(2).stateful(true)), maker(SimpleRNN(2).stateful(true))}) {
    std::unique_ptr<Layer> layer = make();
    layer->build_for({3, 3}, default_generator());
    const std::vector<Weight*> weights = layer->weights();
    const Tensor first = normal64({2, 3, 3}, 3);
    std::vector<Tensor> inputs{normal64({2, 3, 3}, 4)};
    for (Weight* w : weights) inputs.push_back(w->value);
    // The second call starts from the first call's states, which are detached: constants, so
    // the first call runs with the original weights, not the perturbed ones.
    auto f = [&](const std::vector<Tensor>& xs) {
      layer->reset_states();
      CallContext context;
      for (size_t i = 0; i < weights.size(); ++i) weights[i]->value = inputs[i + 1];
      layer->call(first, context);
      for (size_t i = 0; i < weights.size(); ++i) weights[i]->value = xs[i + 1];
      return layer->call(xs[0], context);
    };
    const GradcheckReport report = gradcheck(f, inputs);
    EXPECT_TRUE(report.passed()) << layer->type_name() << ": " << report.to_string();
  }
}

// ---- Keras's numbers -----------------------------------------------------------------------

template <typename L>
int64_t params(L layer, const Shape& input_shape) {
  layer.build_for(input_shape, default_generator());
  return layer.count_params();
}

TEST(RecurrentLayers, ParameterCountsAsKeras) {
  EXPECT_EQ(params(LSTM(64), {-1, 64}), 33024);
  EXPECT_EQ(params(GRU(64), {-1, 32}), 18816);
  EXPECT_EQ(params(GRU(64).reset_after(false), {-1, 32}), 18624);
  EXPECT_EQ(params(SimpleRNN(32), {-1, 64}), 3104);
  EXPECT_EQ(params(Bidirectional(LSTM(64)), {200, 64}), 66048);
  EXPECT_EQ(params(LSTM(64).use_bias(false), {-1, 64}), 32768);
}

TEST(RecurrentLayers, ChaptersStackedModel) {
  Sequential model{LSTM(64).return_sequences(true).input_shape({30, 1}),
                   LSTM(32).return_sequences(true), LSTM(16), Dense(1)};
  std::vector<std::pair<std::string, int64_t>> got;
  for (const auto& layer : model.layers()) got.emplace_back(layer->name(), layer->count_params());
  EXPECT_EQ(got, (std::vector<std::pair<std::string, int64_t>>{
                     {"lstm", 16896}, {"lstm_1", 12416}, {"lstm_2", 3136}, {"dense", 17}}));
  EXPECT_EQ(model.layers()[0]->output_shape(), (Shape{30, 64}));
  EXPECT_EQ(model.layers()[2]->output_shape(), (Shape{16}));
  EXPECT_EQ(model.call(normal64({5, 30, 1}, 1)).shape(), (Shape{5, 1}));
}

TEST(RecurrentLayers, WeightsNamesShapesAndInitialisers) {
  LSTM lstm(3);
  lstm.build_for({5, 2}, default_generator());
  std::vector<std::pair<std::string, Shape>> got;
  for (Weight* w : lstm.weights()) got.emplace_back(w->name, w->value.shape());
  EXPECT_EQ(got, (std::vector<std::pair<std::string, Shape>>{
                     {"kernel", {2, 12}}, {"recurrent_kernel", {3, 12}}, {"bias", {12}}}));
  EXPECT_EQ(lstm.weights()[2]->value.to_vector<float>(),
            (std::vector<float>{0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0}));
  const Tensor u = lstm.weights()[1]->value;
  EXPECT_TRUE(
      allclose(matmul(u, transpose(u)), tensor({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3}), 1e-5, 1e-5));
  const double limit = std::sqrt(6.0 / (2 + 12));
  for (float v : lstm.weights()[0]->value.to_vector<float>()) EXPECT_LE(std::abs(v), limit);

  LSTM plain_bias = LSTM(3).unit_forget_bias(false);
  plain_bias.build_for({5, 2}, default_generator());
  EXPECT_EQ(plain_bias.weights()[2]->value.to_vector<float>(), std::vector<float>(12, 0));

  GRU gru(4);
  gru.build_for({-1, 2}, default_generator());
  EXPECT_EQ(gru.weights()[2]->value.shape(), (Shape{2, 12}));
  EXPECT_EQ(gru.weights()[2]->value.to_vector<float>(), std::vector<float>(24, 0));
}

TEST(RecurrentLayers, TypeNamesAndKerasNames) {
  Sequential model{SimpleRNN(4).return_sequences(true).input_shape({6, 3}),
                   Bidirectional(GRU(4).return_sequences(true)), Bidirectional(LSTM(2), "sum"),
                   Dense(1)};
  std::vector<std::string> names, types;
  for (const auto& layer : model.layers()) {
    names.push_back(layer->name());
    types.push_back(layer->type_name());
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"simple_rnn", "bidirectional", "bidirectional_1", "dense"}));
  EXPECT_EQ(types,
            (std::vector<std::string>{"SimpleRNN", "Bidirectional", "Bidirectional", "Dense"}));
  auto& bi = static_cast<Bidirectional&>(*model.layers()[1]);
  EXPECT_EQ(bi.forward_layer().name(), "forward_gru");
  EXPECT_EQ(bi.backward_layer().name(), "backward_gru");
  EXPECT_TRUE(bi.backward_layer().options().go_backwards);
  EXPECT_EQ(bi.output_shape(), (Shape{6, 8}));
  EXPECT_EQ(model.layers()[2]->output_shape(), (Shape{2}));
}

// ---- Behaviour -----------------------------------------------------------------------------

// Copies `from`'s weight values into `to` (same architecture).
void copy_weights(Layer& from, Layer& to) {
  const std::vector<Weight*> a = from.weights(), b = to.weights();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) b[i]->value.assign_(a[i]->value);
}

TEST(RecurrentLayers, StatefulStreamingEqualsOneCall) {
  using Make = std::function<std::unique_ptr<Layer>(bool)>;
  const std::vector<Make> makes{
      [](bool on) { return maker(LSTM(3).stateful(on).return_sequences(true))(); },
      [](bool on) { return maker(GRU(3).stateful(on).return_sequences(true))(); },
      [](bool on) { return maker(SimpleRNN(3).stateful(on).return_sequences(true))(); }};
  for (const Make& make : makes) {
    std::unique_ptr<Layer> whole = make(false), streaming = make(true);
    SCOPED_TRACE(whole->type_name());
    whole->build_for({-1, 2}, default_generator());
    streaming->build_for({-1, 2}, default_generator());
    copy_weights(*whole, *streaming);

    const Tensor x = normal64({2, 6, 2}, 9);
    CallContext context;
    const std::vector<double> expected = whole->call(x, context).to_vector<double>();
    for (int pass = 0; pass < 2; ++pass) {  // reset_states() starts the stream over
      std::vector<Tensor> steps;
      for (int64_t t = 0; t < 6; ++t)
        steps.push_back(streaming->call(slice(x, 1, t, t + 1), context));
      const std::vector<double> got = concat(steps, 1).to_vector<double>();
      ASSERT_EQ(got.size(), expected.size());
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-12);
      streaming->reset_states();
    }
  }
}

TEST(RecurrentLayers, StatefulRejectsABatchSizeChange) {
  LSTM lstm = LSTM(4).stateful(true).name("lstm_7");
  lstm.build_for({-1, 3}, default_generator());
  CallContext context;
  lstm.call(ones({2, 5, 3}), context);
  EXPECT_EQ(error_of([&] {
              lstm.call(ones({3, 5, 3}), context);
            }),
            "layer \"lstm_7\" is stateful and holds states for batch size 2, but was called with "
            "batch size 3 (call reset_states() first to change the batch size)");
  lstm.reset_states();
  EXPECT_EQ(lstm.call(ones({3, 5, 3}), context).shape(), (Shape{3, 4}));
}

TEST(RecurrentLayers, InitialStateIsUsedAndStatesAreReturned) {
  LSTM lstm = LSTM(2).return_state(true).dtype(DType::f64);
  lstm.build_for({-1, 3}, default_generator());
  const Tensor x = normal64({2, 4, 3}, 5);
  CallContext context;
  const RecurrentOutput zero_start = lstm.call_with_state(x, context);
  ASSERT_EQ(zero_start.states.size(), 2u);
  EXPECT_TRUE(allclose(zero_start.output, zero_start.states[0], 0, 0));  // output = last h
  // Continuing from the states of the first half equals one call on the whole sequence.
  const RecurrentOutput half = lstm.call_with_state(slice(x, 1, 0, 2), context);
  const RecurrentOutput rest = lstm.call_with_state(slice(x, 1, 2, 4), context, half.states);
  EXPECT_TRUE(allclose(rest.output, zero_start.output, 1e-12, 1e-12));
  EXPECT_TRUE(allclose(rest.states[1], zero_start.states[1], 1e-12, 1e-12));
  EXPECT_NE(error_of([&] {
              lstm.call_with_state(x, context, {half.states[0]});
            }).find("expects 2 initial state tensors, got 1"),
            std::string::npos);
  // Without return_state only the output comes back.
  LSTM plain = LSTM(2);
  plain.build_for({-1, 3}, default_generator());
  EXPECT_TRUE(plain.call_with_state(ones({1, 2, 3}), context).states.empty());
}

TEST(RecurrentLayers, MaskIsConsumedOnlyWithoutReturnSequences) {
  const Tensor mask = from_vector<int64_t>({1, 1, 0, 1, 0, 0}, {2, 3});
  for (bool seq : {false, true}) {
    LSTM lstm = LSTM(2).return_sequences(seq);
    lstm.build_for({3, 4}, default_generator());
    CallContext context{.mask = mask};
    lstm.call(ones({2, 3, 4}), context);
    EXPECT_EQ(context.mask.defined(), seq);
    Bidirectional bi(LSTM(2).return_sequences(seq));
    bi.build_for({3, 4}, default_generator());
    context.mask = mask;
    bi.call(ones({2, 3, 4}), context);
    EXPECT_EQ(context.mask.defined(), seq);
  }
}

TEST(RecurrentLayers, PostPaddingKeepsTheFinalState) {
  GRU gru = GRU(3).dtype(DType::f64);
  gru.build_for({-1, 2}, default_generator());
  const Tensor x = normal64({1, 3, 2}, 4);
  const Tensor padded = concat({x, zeros({1, 2, 2}, {.dtype = DType::f64})}, 1);
  CallContext plain_context;
  CallContext masked{.mask = tensor({1, 1, 1, 0, 0}, {1, 5})};
  EXPECT_TRUE(allclose(gru.call(padded, masked), gru.call(x, plain_context), 0, 0));
}

TEST(RecurrentLayers, BidirectionalZeroesMaskedOutputsOfSequences) {
  Bidirectional bi(SimpleRNN(2).return_sequences(true).dtype(DType::f64));
  bi.build_for({3, 2}, default_generator());
  CallContext context{.mask = tensor({1, 1, 0}, {1, 3})};
  const std::vector<double> y = bi.call(normal64({1, 3, 2}, 2), context).to_vector<double>();
  for (int i = 0; i < 4; ++i) EXPECT_NE(y[i], 0);
  for (int i = 8; i < 12; ++i) EXPECT_EQ(y[i], 0);  // step 2, both directions
}

// Keras's dropout: masks drawn once per call (input masks, then recurrent masks, one per gate)
// and reused at every step. SimpleRNN written out by hand with the same draws.
TEST(RecurrentLayers, DropoutMasksAreDrawnOncePerCall) {
  SimpleRNN rnn =
      SimpleRNN(3).dropout(0.5).recurrent_dropout(0.5).return_sequences(true).dtype(DType::f64);
  rnn.build_for({-1, 4}, default_generator());
  const Tensor x = normal64({2, 5, 4}, 8);
  Generator g1(3), g2(3);
  CallContext training{.training = true, .generator = &g1};
  const Tensor y = rnn.call(x, training);

  const Tensor m = dropout_mask({2, 4}, DType::f64, 0.5, g2);
  const Tensor rm = dropout_mask({2, 3}, DType::f64, 0.5, g2);
  const std::vector<Weight*> w = rnn.weights();
  Tensor h = zeros({2, 3}, {.dtype = DType::f64});
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < 5; ++t) {
    const Tensor xt = reshape(slice(x, 1, t, t + 1), {2, 4});
    h = tanh(matmul(xt * m, w[0]->value) + w[2]->value + matmul(h * rm, w[1]->value));
    steps.push_back(unsqueeze(h, 1));
  }
  EXPECT_TRUE(allclose(y, concat(steps, 1), 1e-12, 1e-12));
  EXPECT_EQ(g1.offset(), g2.offset());

  CallContext inference;
  SimpleRNN no_dropout = SimpleRNN(3).return_sequences(true).dtype(DType::f64);
  no_dropout.build_for({-1, 4}, default_generator());
  copy_weights(rnn, no_dropout);
  EXPECT_TRUE(allclose(rnn.call(x, inference), no_dropout.call(x, inference), 0, 0));
}

TEST(RecurrentLayers, LstmDropoutHasOneMaskPerGate) {
  LSTM lstm = LSTM(2).dropout(0.4).recurrent_dropout(0.3).dtype(DType::f64);
  lstm.build_for({-1, 3}, default_generator());
  const Tensor x = normal64({2, 4, 3}, 6);
  Generator g1(1), g2(1);
  CallContext training{.training = true, .generator = &g1};
  const Tensor y = lstm.call(x, training);

  std::vector<Tensor> m, rm;
  for (int k = 0; k < 4; ++k) m.push_back(dropout_mask({2, 3}, DType::f64, 0.4, g2));
  for (int k = 0; k < 4; ++k) rm.push_back(dropout_mask({2, 2}, DType::f64, 0.3, g2));
  const std::vector<Weight*> w = lstm.weights();
  auto block = [](const Tensor& weight, int k) { return slice(weight, -1, 2 * k, 2 * k + 2); };
  Tensor h = zeros({2, 2}, {.dtype = DType::f64}), c = h;
  for (int64_t t = 0; t < 4; ++t) {
    const Tensor xt = reshape(slice(x, 1, t, t + 1), {2, 3});
    std::vector<Tensor> z;
    for (int k = 0; k < 4; ++k)
      z.push_back(matmul(xt * m[k], block(w[0]->value, k)) + block(w[2]->value, k) +
                  matmul(h * rm[k], block(w[1]->value, k)));
    c = sigmoid(z[1]) * c + sigmoid(z[0]) * tanh(z[2]);
    h = sigmoid(z[3]) * tanh(c);
  }
  EXPECT_TRUE(allclose(y, h, 1e-12, 1e-12));
}

TEST(RecurrentLayers, Float32LayerTakesFloat64Inputs) {
  LSTM lstm(2);
  lstm.build_for({-1, 3}, default_generator());
  CallContext context;
  const Tensor y = lstm.call(normal64({2, 4, 3}, 1), context);
  EXPECT_EQ(y.dtype(), DType::f32);
}

// ---- Errors --------------------------------------------------------------------------------

TEST(RecurrentErrors, TwoDimensionalInputNamesTheLayer) {
  // The chapter's common mistake: a second LSTM after one without return_sequences.
  EXPECT_EQ(error_of([] {
              Sequential model{LSTM(64).input_shape({30, 1}), LSTM(32)};
            }),
            "Input 0 of layer \"lstm_1\" is incompatible with the layer: expected ndim=3, found "
            "ndim=2. Full shape received: (None, 64)");
  EXPECT_EQ(error_of([] { Sequential model{Bidirectional(GRU(8)).input_shape({10})}; }),
            "Input 0 of layer \"bidirectional\" is incompatible with the layer: expected ndim=3, "
            "found ndim=2. Full shape received: (None, 10)");
}

TEST(RecurrentErrors, BadOptions) {
  EXPECT_EQ(error_of([] { LSTM(-1); }),
            "Received an invalid value for argument `units`, expected a positive integer, got -1");
  EXPECT_THROW(GRU(0), Error);
  EXPECT_EQ(error_of([] { LSTM(4).dropout(1.0); }), "LSTM: dropout must be in [0, 1), got 1");
  EXPECT_EQ(error_of([] { GRU(4).recurrent_dropout(-0.1); }),
            "GRU: recurrent_dropout must be in [0, 1), got -0.1");
  EXPECT_THROW(SimpleRNN(4).activation("swish"), Error);
  EXPECT_EQ(error_of([] { Bidirectional(LSTM(4), "max"); }),
            "Bidirectional: invalid merge mode \"max\". Merge mode should be one of \"sum\", "
            "\"mul\", \"ave\", \"concat\"");
  EXPECT_THROW(Bidirectional(LSTM(4)).merge_mode("first"), Error);
}

TEST(RecurrentErrors, WrongInputsAtCallTime) {
  LSTM lstm = LSTM(4).name("lstm");
  lstm.build_for({-1, 3}, default_generator());
  CallContext context;
  EXPECT_EQ(error_of([&] {
              lstm.call(ones({2, 5, 2}), context);
            }),
            "layer \"lstm\": expected inputs of shape (batch, timesteps, 3), got (2, 5, 2)");
  context.mask = ones({2, 4});
  EXPECT_EQ(error_of([&] {
              lstm.call(ones({2, 5, 3}), context);
            }),
            "layer \"lstm\": the mask has shape (2, 4), expected (2, 5)");
  EXPECT_THROW(LSTM(2).call(ones({1, 2, 3}), context), Error);  // not built
}

// ---- an Embedding's output, projected once per distinct id ----------------------------------

// A recurrent layer reading an Embedding's output projects it with matmul_by_id; the same layer
// called on the same values with the link cleared projects with matmul. Outputs and gradients
// (table and every weight) agree, with ids that repeat enough to take the distinct-id path and
// with ids that do not.
TEST(RecurrentFromEmbedding, ProjectsByIdAsByRow) {
  const std::vector<std::pair<std::string, std::function<std::unique_ptr<Layer>()>>> layers = {
      {"lstm", maker(LSTM(3).return_sequences(true))},
      {"gru", maker(GRU(3))},
      {"simple_rnn", maker(SimpleRNN(3).go_backwards(true))},
      {"bidirectional", maker(Bidirectional(LSTM(3)))}};
  const std::vector<std::pair<std::string, Tensor>> id_sets = {
      {"repeated", from_vector<int64_t>({0, 1, 1, 3, 0, 0, 2, 1, 3, 3, 0, 1, 2, 2, 0, 1}, {2, 8})},
      {"distinct",
       from_vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {2, 8})}};
  for (const auto& [layer_name, make] : layers)
    for (const auto& [ids_name, ids] : id_sets) {
      SCOPED_TRACE(layer_name + " " + ids_name);
      manual_seed(5);
      Embedding embedding = Embedding(16, 40).dtype(DType::f64);
      embedding.build_for({8}, default_generator());
      std::unique_ptr<Layer> layer = make();
      layer->build_for({8, 40}, default_generator());
      std::vector<Tensor> weights{embedding.weights()[0]->value};
      for (Weight* w : layer->weights()) weights.push_back(w->value);
      auto run = [&](bool by_id) {
        CallContext context;
        const Tensor rows = embedding.call(ids, context);
        if (!by_id) context.embedded = {};
        const Tensor out = layer->call(rows, context);
        const std::vector<Tensor> grads = grad({sum(out * out)}, weights);
        return std::pair{out, grads};
      };
      std::vector<std::pair<std::string, Tensor>> inputs{{"ids", ids}};
      for (size_t i = 0; i < weights.size(); ++i)
        inputs.emplace_back(fmt::format("w{}", i), weights[i]);
      const Graph graph = capture(inputs, [&]() -> std::vector<std::pair<std::string, Tensor>> {
        return {{"out", run(true).first}};
      });
      EXPECT_NE(graph.to_text().find("matmul_by_id"), std::string::npos);
      const auto [by_id, by_id_grads] = run(true);
      const auto [by_row, by_row_grads] = run(false);
      EXPECT_TRUE(allclose(by_id, by_row, 1e-12, 1e-12));
      for (size_t i = 0; i < weights.size(); ++i)
        EXPECT_TRUE(allclose(by_id_grads[i], by_row_grads[i], 1e-12, 1e-12)) << "weight " << i;
    }
}

}  // namespace
}  // namespace weft
