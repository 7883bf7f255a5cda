// TensorFlow.js fixtures for weft's load_model and save_model (models/tfjs_model.h).
//
//   cd tests/tfjs && npm ci                    # @tensorflow/tfjs 4.22.0 into tests/tfjs/node_modules
//   node tests/tfjs/gen_tfjs_models.mjs        # writes tests/data/tfjs/CASE/
//   node tests/tfjs/gen_tfjs_models.mjs --check DIR
//
// Write mode builds small models with TensorFlow.js (Google's JavaScript port of Keras's
// layers, which weft's authors did not write), gives them weights from a seeded stream, and
// saves each with TF.js's own serialisation as CASE/model.json and CASE/group1-shard1of1.bin,
// with CASE/input.csv (one sample per row, flattened) and CASE/expected.csv (TF.js's
// predictions, one row per sample; a stateful model is predicted twice on the input, so its
// second block of rows continues from the states the first left). The cases: the chapter's
// models at a small size, each recurrent layer with its options, the four Bidirectional merge
// modes, masking, and two files written the way tensorflowjs_converter writes a Keras .h5
// model ("model_config" nesting, an InputLayer, cell-named weights such as
// "lstm/lstm_cell/kernel"). The first of those TF.js loads and predicts itself; the second holds
// a GRU with reset_after=true, Keras's default, which TF.js 4.22 lacks: its expected values come
// from the Keras GRU equations written out below in float64.
//
// Check mode loads every DIR/CASE/model.json (written by weft's save_model) with
// tf.loadLayersModel, predicts DIR/CASE/input.csv and compares with DIR/CASE/expected.csv
// (weft's predictions). It prints one line per case and exits 1 on any difference beyond
// float32 tolerance, and 77 when @tensorflow/tfjs is not installed.
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
let tf;
try {
  tf = await import('@tensorflow/tfjs');
} catch {
  console.log(`SKIPPED: @tensorflow/tfjs is not installed (run npm ci in ${here})`);
  process.exit(77);
}
tf.env().set('PROD', true);

// Tolerance between two float32 implementations of the same maths.
const ATOL = 1e-5, RTOL = 1e-4;

// ---- Seeded values ---------------------------------------------------------------------

// mulberry32: a small seeded generator, so the fixtures are the same on every run.
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A float32 value that survives printing with 9 significant digits and reading back.
const f32 = x => Number(Math.fround(x).toPrecision(9));

function setSeededWeights(model, random) {
  model.setWeights(model.weights.map(w => {
    const size = w.shape.reduce((a, b) => a * b, 1);
    return tf.tensor(Array.from({length: size}, () => f32((random() - 0.5) * 1.2)), w.shape);
  }));
}

// Inputs for a model: token ids (padded with zeros where `pad`) or floats in [-1, 1).
function makeInput(spec, random) {
  const rows = [];
  for (let b = 0; b < spec.batch; ++b) {
    if (spec.vocab) {
      const row = Array.from({length: spec.timesteps}, () => 1 + Math.floor(random() * (spec.vocab - 1)));
      // Sample b: b zeros, before the sequence for even b and after it for odd b.
      if (spec.pad) for (let i = 0; i < Math.min(b, spec.timesteps - 1); ++i) row[b % 2 ? spec.timesteps - 1 - i : i] = 0;
      rows.push(row);
    } else {
      rows.push(Array.from({length: spec.timesteps * spec.features}, () => f32(random() * 2 - 1)));
    }
  }
  return rows;
}

function inputTensor(rows, inputShape) {
  const shape = [rows.length, ...inputShape.map(d => d ?? rows[0].length / inputShape.filter(x => x).reduce((a, b) => a * b, 1))];
  return tf.tensor(rows.flat(), shape);
}

const csv = rows => rows.map(r => r.map(v => (Number.isInteger(v) ? String(v) : v.toPrecision(9))).join(',')).join('\n') + '\n';
const readCsv = file => fs.readFileSync(file, 'utf8').trim().split('\n').map(line => line.split(',').map(Number));

async function predictRows(model, rows, calls) {
  const inputShape = model.layers[0].batchInputShape.slice(1);
  const out = [];
  for (let c = 0; c < calls; ++c) {
    const y = model.predict(inputTensor(rows, inputShape));
    const values = await y.array();
    for (const sample of values) out.push([sample].flat(Infinity).map(Math.fround));
  }
  return out;
}

// ---- The cases ---------------------------------------------------------------------------

const L = tf.layers;
// Keras's defaults where TF.js's differ (TF.js: hard_sigmoid gates, no unit_forget_bias).
const lstm = args => L.lstm({recurrentActivation: 'sigmoid', ...args});
const gru = args => L.gru({recurrentActivation: 'sigmoid', ...args});
const ids = (vocab, timesteps, pad = false) => ({vocab, timesteps, pad, batch: 4});
const floats = (timesteps, features) => ({timesteps, features, batch: 4});

const cases = {
  // The chapter's models, smaller.
  text_preprocessing: {input: ids(40, 15), layers: () => [
    L.embedding({inputDim: 40, outputDim: 8, inputLength: 15}), lstm({units: 8}),
    L.dense({units: 1, activation: 'sigmoid'})]},
  stacked_lstm: {input: floats(10, 1), layers: () => [
    lstm({units: 8, returnSequences: true, inputShape: [10, 1]}), lstm({units: 6, returnSequences: true}),
    lstm({units: 4}), L.dense({units: 1})]},
  sentiment_imdb: {input: ids(50, 12), layers: () => [
    L.embedding({inputDim: 50, outputDim: 8, inputLength: 12}),
    L.bidirectional({layer: lstm({units: 6, returnSequences: true})}), L.dropout({rate: 0.3}),
    lstm({units: 4}), L.dropout({rate: 0.3}), L.dense({units: 4, activation: 'relu'}),
    L.dense({units: 1, activation: 'sigmoid'})]},
  temperature_forecast: {input: floats(12, 1), layers: () => [
    lstm({units: 8, returnSequences: true, inputShape: [12, 1]}), L.dropout({rate: 0.2}), lstm({units: 4}),
    L.dropout({rate: 0.2}), L.dense({units: 4, activation: 'relu'}), L.dense({units: 1})]},
  compare_simple_rnn: {input: ids(40, 10), layers: () => [
    L.embedding({inputDim: 40, outputDim: 6, inputLength: 10}), L.simpleRNN({units: 8}),
    L.dense({units: 1, activation: 'sigmoid'})]},
  compare_gru: {input: ids(40, 10), layers: () => [
    L.embedding({inputDim: 40, outputDim: 6, inputLength: 10}), gru({units: 8}),
    L.dense({units: 1, activation: 'sigmoid'})]},
  // Each recurrent layer with its options.
  simple_rnn_options: {input: floats(6, 3), layers: () => [
    L.simpleRNN({units: 5, activation: 'relu', useBias: false, goBackwards: true, returnSequences: true,
                 inputShape: [6, 3]}),
    L.dense({units: 2, activation: 'softmax'})]},
  lstm_options: {input: floats(7, 2), layers: () => [
    // TF.js's own defaults: hard_sigmoid gates.
    L.lstm({units: 5, goBackwards: true, dropout: 0.2, recurrentDropout: 0.1, inputShape: [7, 2]}),
    L.dense({units: 3, activation: 'tanh', useBias: false})]},
  gru_options: {input: floats(6, 3), layers: () => [
    gru({units: 4, activation: 'relu', goBackwards: true, returnSequences: true, inputShape: [6, 3]}),
    gru({units: 3, useBias: false, recurrentActivation: 'hardSigmoid', dropout: 0.1})]},
  stateful_lstm: {input: {timesteps: 5, features: 2, batch: 3}, calls: 2, layers: () => [
    lstm({units: 4, stateful: true, batchInputShape: [3, 5, 2]}), L.dense({units: 1})]},
  unknown_timesteps: {input: floats(5, 2), layers: () => [
    L.simpleRNN({units: 4, inputShape: [null, 2]}), L.dense({units: 2})]},
  // The merge modes, each over another recurrent layer.
  bidirectional_concat: {input: floats(5, 3), layers: () => [
    L.bidirectional({layer: lstm({units: 4}), inputShape: [5, 3]}), L.dense({units: 1})]},
  bidirectional_sum: {input: floats(5, 3), layers: () => [
    L.bidirectional({layer: gru({units: 4, returnSequences: true}), mergeMode: 'sum', inputShape: [5, 3]})]},
  bidirectional_mul: {input: floats(5, 3), layers: () => [
    L.bidirectional({layer: L.simpleRNN({units: 4}), mergeMode: 'mul', inputShape: [5, 3]})]},
  bidirectional_ave: {input: floats(5, 3), layers: () => [
    L.bidirectional({layer: lstm({units: 3, returnSequences: true, goBackwards: true}), mergeMode: 'ave',
                     inputShape: [5, 3]}),
    L.dense({units: 2})]},
  // Masking: zeros padded before and after the tokens.
  masked_lstm_gru: {input: ids(30, 8, true), layers: () => [
    L.embedding({inputDim: 30, outputDim: 5, maskZero: true, inputLength: 8}),
    lstm({units: 4, returnSequences: true}), gru({units: 3}), L.dense({units: 1, activation: 'sigmoid'})]},
  masked_bidirectional: {input: ids(30, 8, true), layers: () => [
    L.embedding({inputDim: 30, outputDim: 5, maskZero: true, inputLength: 8}),
    L.bidirectional({layer: L.simpleRNN({units: 3, returnSequences: true})}),
    L.bidirectional({layer: lstm({units: 3}), mergeMode: 'sum'})]},
};

// ---- Files ------------------------------------------------------------------------------

function modelJson(topology, weightSpecs, generatedBy, convertedBy) {
  return {format: 'layers-model', generatedBy, convertedBy, modelTopology: topology,
          weightsManifest: [{paths: ['group1-shard1of1.bin'], weights: weightSpecs}]};
}

async function saveWithTfjs(model, dir) {
  let saved;
  await model.save(tf.io.withSaveHandler(async artifacts => {
    saved = artifacts;
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
  const data = Array.isArray(saved.weightData) ? tf.io.concatenateArrayBuffers(saved.weightData) : saved.weightData;
  fs.writeFileSync(path.join(dir, 'model.json'),
                   JSON.stringify(modelJson(saved.modelTopology, saved.weightSpecs, saved.generatedBy, saved.convertedBy)));
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), Buffer.from(data));
}

// Loads DIR/model.json and its shards from disk (pure TF.js has no file:// handler in Node).
function loadFromDisk(dir) {
  return tf.loadLayersModel({
    load: async () => {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const specs = [], buffers = [];
      for (const group of json.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
      }
      const bytes = Buffer.concat(buffers);
      return {modelTopology: json.modelTopology, weightSpecs: specs, format: json.format,
              weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)};
    }
  });
}

function writeCase(dir, inputRows, expectedRows) {
  fs.writeFileSync(path.join(dir, 'input.csv'), csv(inputRows));
  fs.writeFileSync(path.join(dir, 'expected.csv'), csv(expectedRows));
}

// ---- Files as tensorflowjs_converter writes a Keras 2 .h5 model --------------------------

// Keras 2's full config of a recurrent layer (what Keras's get_config() writes).
function kerasRecurrent(className, name, units, extra) {
  return {class_name: className, config: {
    name, trainable: true, dtype: 'float32', return_sequences: false, return_state: false,
    go_backwards: false, stateful: false, unroll: false, time_major: false, units, activation: 'tanh',
    recurrent_activation: 'sigmoid', use_bias: true,
    kernel_initializer: {class_name: 'GlorotUniform', config: {seed: null}},
    recurrent_initializer: {class_name: 'Orthogonal', config: {gain: 1.0, seed: null}},
    bias_initializer: {class_name: 'Zeros', config: {}}, kernel_regularizer: null,
    recurrent_regularizer: null, bias_regularizer: null, activity_regularizer: null,
    kernel_constraint: null, recurrent_constraint: null, bias_constraint: null, dropout: 0.0,
    recurrent_dropout: 0.0, implementation: 2, ...extra}};
}

function kerasDense(name, units, activation) {
  return {class_name: 'Dense', config: {
    name, trainable: true, dtype: 'float32', units, activation, use_bias: true,
    kernel_initializer: {class_name: 'GlorotUniform', config: {seed: null}},
    bias_initializer: {class_name: 'Zeros', config: {}}, kernel_regularizer: null,
    bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null}};
}

function kerasModelJson(layers, specs) {
  const topology = {keras_version: '2.15.0', backend: 'tensorflow',
                    model_config: {class_name: 'Sequential', config: {name: 'sequential', layers}},
                    training_config: {loss: 'binary_crossentropy', metrics: [], optimizer_config: {
                      class_name: 'Adam', config: {name: 'Adam', learning_rate: 0.001}}}};
  return modelJson(topology, specs, 'keras v2.15.0', 'TensorFlow.js Converter v4.22.0');
}

// Weights in Keras layout from the seeded stream, with their converter names and shapes.
function kerasWeights(shapes, random) {
  return shapes.map(([name, shape]) => ({name, shape, dtype: 'float32',
    values: Array.from({length: shape.reduce((a, b) => a * b, 1)}, () => f32((random() - 0.5) * 1.2))}));
}

function writeKerasFiles(dir, layers, weights) {
  fs.writeFileSync(path.join(dir, 'model.json'),
                   JSON.stringify(kerasModelJson(layers, weights.map(({name, shape, dtype}) => ({name, shape, dtype})))));
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), Buffer.from(new Float32Array(weights.flatMap(w => w.values)).buffer));
}

// Embedding(mask_zero) -> Bidirectional(LSTM, return_sequences) -> GRU(reset_after=false) ->
// Dense: TF.js loads the file and predicts.
async function kerasConvertedCase(dir, random) {
  const layers = [
    {class_name: 'InputLayer', config: {batch_input_shape: [null, 7], dtype: 'float32', sparse: false,
                                        ragged: false, name: 'embedding_input'}},
    {class_name: 'Embedding', config: {name: 'embedding', trainable: true, dtype: 'float32',
      batch_input_shape: [null, 7], input_dim: 20, output_dim: 4,
      embeddings_initializer: {class_name: 'RandomUniform', config: {minval: -0.05, maxval: 0.05, seed: null}},
      embeddings_regularizer: null, activity_regularizer: null, embeddings_constraint: null,
      mask_zero: true, input_length: 7}},
    {class_name: 'Bidirectional', config: {name: 'bidirectional', trainable: true, dtype: 'float32',
      layer: kerasRecurrent('LSTM', 'lstm', 3, {return_sequences: true, unit_forget_bias: true}),
      merge_mode: 'concat'}},
    kerasRecurrent('GRU', 'gru', 4, {reset_after: false}),
    kerasDense('dense', 1, 'sigmoid')];
  const weights = kerasWeights([
    ['embedding/embeddings', [20, 4]],
    ['bidirectional/forward_lstm/lstm_cell_1/kernel', [4, 12]],
    ['bidirectional/forward_lstm/lstm_cell_1/recurrent_kernel', [3, 12]],
    ['bidirectional/forward_lstm/lstm_cell_1/bias', [12]],
    ['bidirectional/backward_lstm/lstm_cell_2/kernel', [4, 12]],
    ['bidirectional/backward_lstm/lstm_cell_2/recurrent_kernel', [3, 12]],
    ['bidirectional/backward_lstm/lstm_cell_2/bias', [12]],
    ['gru/gru_cell/kernel', [6, 12]], ['gru/gru_cell/recurrent_kernel', [4, 12]], ['gru/gru_cell/bias', [12]],
    ['dense/kernel', [4, 1]], ['dense/bias', [1]]], random);
  writeKerasFiles(dir, layers, weights);
  const rows = makeInput(ids(20, 7, true), random);
  writeCase(dir, rows, await predictRows(await loadFromDisk(dir), rows, 1));
}

// Keras's GRU with reset_after=true (blocks z, r, h; bias row 0 the input bias, row 1 the
// recurrent bias), in float64, followed by a Dense layer.
function kerasGruResetAfter(x, W, U, b, units, Wd, bd) {
  const sigmoid = v => 1 / (1 + Math.exp(-v));
  let h = new Array(units).fill(0);
  for (const xt of x) {
    const project = (k, j) => xt.reduce((s, v, i) => s + v * W[i][k * units + j], 0) + b[0][k * units + j];
    const recur = (k, j) => h.reduce((s, v, i) => s + v * U[i][k * units + j], 0) + b[1][k * units + j];
    const z = h.map((_, j) => sigmoid(project(0, j) + recur(0, j)));
    const r = h.map((_, j) => sigmoid(project(1, j) + recur(1, j)));
    const candidate = h.map((_, j) => Math.tanh(project(2, j) + r[j] * recur(2, j)));
    h = h.map((v, j) => z[j] * v + (1 - z[j]) * candidate[j]);
  }
  return Wd[0].map((_, o) => h.reduce((s, v, i) => s + v * Wd[i][o], 0) + bd[o]);
}

function kerasResetAfterCase(dir, random) {
  const units = 4, features = 3, timesteps = 6;
  const layers = [
    {class_name: 'InputLayer', config: {batch_input_shape: [null, timesteps, features], dtype: 'float32',
                                        sparse: false, ragged: false, name: 'gru_input'}},
    kerasRecurrent('GRU', 'gru', units, {reset_after: true}),
    kerasDense('dense', 2, 'linear')];
  const weights = kerasWeights([
    ['gru/gru_cell/kernel', [features, 3 * units]], ['gru/gru_cell/recurrent_kernel', [units, 3 * units]],
    ['gru/gru_cell/bias', [2, 3 * units]], ['dense/kernel', [units, 2]], ['dense/bias', [2]]], random);
  writeKerasFiles(dir, layers, weights);
  const matrix = (w, cols) => Array.from({length: w.values.length / cols}, (_, i) => w.values.slice(i * cols, (i + 1) * cols));
  const [W, U, b, Wd, bd] = weights;
  const rows = makeInput(floats(timesteps, features), random);
  const expected = rows.map(row => kerasGruResetAfter(
    matrix({values: row}, features), matrix(W, 3 * units), matrix(U, 3 * units), matrix(b, 3 * units), units,
    matrix(Wd, 2), bd.values));
  writeCase(dir, rows, expected);
}

// ---- Modes ------------------------------------------------------------------------------

async function writeFixtures(root) {
  let seed = 17;
  for (const [name, spec] of Object.entries(cases)) {
    const random = generator(seed++);
    const model = tf.sequential({name, layers: spec.layers()});
    setSeededWeights(model, random);
    const dir = path.join(root, name);
    fs.mkdirSync(dir, {recursive: true});
    await saveWithTfjs(model, dir);
    const rows = makeInput(spec.input, random);
    writeCase(dir, rows, await predictRows(model, rows, spec.calls ?? 1));
    console.log(`wrote ${dir}`);
  }
  for (const [name, write] of [['keras_converted', kerasConvertedCase], ['keras_gru_reset_after', kerasResetAfterCase]]) {
    const dir = path.join(root, name);
    fs.mkdirSync(dir, {recursive: true});
    await write(dir, generator(seed++));
    console.log(`wrote ${dir}`);
  }
}

async function check(root) {
  let failed = 0;
  for (const name of fs.readdirSync(root).sort()) {
    const dir = path.join(root, name);
    if (!fs.existsSync(path.join(dir, 'model.json'))) continue;
    try {
      const model = await loadFromDisk(dir);
      const rows = readCsv(path.join(dir, 'input.csv'));
      const expected = readCsv(path.join(dir, 'expected.csv'));
      const got = await predictRows(model, rows, expected.length / rows.length);
      let worst = 0, ok = got.length === expected.length;
      got.forEach((row, i) => row.forEach((v, j) => {
        const e = expected[i]?.[j];
        const error = Math.abs(v - e);
        worst = Math.max(worst, error);
        if (!(error <= ATOL + RTOL * Math.abs(e)) || row.length !== expected[i].length) ok = false;
      }));
      console.log(`${ok ? 'PASS' : 'FAIL'} ${name}: max |TF.js - weft| = ${worst.toExponential(2)}`);
      if (!ok) ++failed;
    } catch (error) {
      console.log(`FAIL ${name}: TF.js cannot load or run it: ${error.message}`);
      ++failed;
    }
  }
  if (failed) console.log(`${failed} case(s) failed`);
  process.exit(failed ? 1 : 0);
}

const args = process.argv.slice(2);
if (args[0] === '--check' && args[1]) await check(args[1]);
else if (args.length === 0) await writeFixtures(path.join(here, '..', 'data', 'tfjs'));
else {
  console.error('usage: gen_tfjs_models.mjs [--check DIR]');
  process.exit(2);
}
