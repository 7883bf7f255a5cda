// Weight files: "WEFTWGT\0", a uint32 version, a uint32 count, then per weight: layer name,
// weight name (each a uint32 length and bytes), dtype (uint8), rank (uint32), dims (int64 each)
// and the data, row-major. Version 2 (a checkpoint) follows the weights with a uint32 count of
// state tensors, each laid out as a weight, then the metadata (a uint32 length and bytes).
// Numbers are little-endian.
#include "weft/models/weights_file.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "weft/models/files.h"

namespace weft {

static_assert(std::endian::native == std::endian::little,
              "weight files are written in the host's byte order, which must be little-endian");

namespace {

constexpr std::string_view kMagic{"WEFTWGT\0", 8};
constexpr uint32_t kWeightsOnly = 1;
constexpr uint32_t kWithState = 2;
constexpr uint32_t kMaxRank = 64;

void check_built(const Sequential& model, std::string_view action) {
  WEFT_CHECK(model.built(),
             "{}: model \"{}\" has not been built yet; give the first layer an input_shape or "
             "call build() first",
             action, model.name());
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

void put_string(std::string& out, const std::string& text) {
  put(out, static_cast<uint32_t>(text.size()));
  out += text;
}

void put_entries(std::string& out, const std::vector<SavedTensor>& entries) {
  put(out, static_cast<uint32_t>(entries.size()));
  for (const auto& [group, name, value] : entries) {
    const Tensor data = value.copy();  // contiguous
    put_string(out, group);
    put_string(out, name);
    put(out, static_cast<uint8_t>(data.dtype()));
    put(out, static_cast<uint32_t>(data.dim()));
    for (int64_t d : data.shape()) put(out, d);
    out.append(static_cast<const char*>(data.raw_data()), data.numel() * dtype_size(data.dtype()));
  }
}

// Reads the file's fields in order; any read past the end is a truncated file.
class Reader {
 public:
  Reader(std::string data, std::string path, std::string_view action)
      : data_(std::move(data)), path_(std::move(path)), action_(action) {}

  std::string_view bytes(size_t n, std::string_view what) {
    WEFT_CHECK(n <= data_.size() - at_, "{}: \"{}\" is truncated: it ends in the middle of {}",
               action_, path_, what);
    const std::string_view out(data_.data() + at_, n);
    at_ += n;
    return out;
  }
  template <typename T>
  T get(std::string_view what) {
    T value;
    std::memcpy(&value, bytes(sizeof(T), what).data(), sizeof(T));
    return value;
  }
  std::string get_string(std::string_view what) {
    return std::string(bytes(get<uint32_t>(what), what));
  }
  size_t remaining() const { return data_.size() - at_; }
  const std::string& path() const { return path_; }
  std::string_view action() const { return action_; }

 private:
  std::string data_;
  std::string path_;
  std::string_view action_;
  size_t at_ = 0;
};

// A count, then the entries; `kind` is "weight" or "state value", for the errors.
std::vector<SavedTensor> parse_entries(Reader& in, std::string_view kind) {
  const auto count = in.get<uint32_t>(fmt::format("the count of {}s", kind));
  std::vector<SavedTensor> saved;
  for (uint32_t i = 0; i < count; ++i) {
    const std::string what = fmt::format("{} {} of {}", kind, i + 1, count);
    SavedTensor entry;
    entry.group = in.get_string(what);
    entry.name = in.get_string(what);
    const auto dtype = in.get<uint8_t>(what);
    WEFT_CHECK(dtype <= static_cast<uint8_t>(DType::i64),
               "{}: \"{}\" is corrupt: {} \"{}\" of \"{}\" has dtype code {}", in.action(),
               in.path(), kind, entry.name, entry.group, dtype);
    const auto rank = in.get<uint32_t>(what);
    WEFT_CHECK(rank <= kMaxRank, "{}: \"{}\" is corrupt: {} \"{}\" of \"{}\" has rank {}",
               in.action(), in.path(), kind, entry.name, entry.group, rank);
    Shape shape(rank);
    // The size is checked against what is left of the file before anything is allocated. A
    // weight with a dimension 0 holds no bytes whatever its other dimensions, but its strides
    // are their product: that must fit in an int64 too.
    uint64_t bytes = dtype_size(static_cast<DType>(dtype));
    uint64_t extent = 1;  // the product of the non-zero dimensions
    for (int64_t& d : shape) {
      d = in.get<int64_t>(what);
      WEFT_CHECK(d >= 0 && (d == 0 || bytes <= in.remaining() / static_cast<uint64_t>(d)),
                 "{}: \"{}\" is truncated or corrupt: {} \"{}\" of \"{}\" does not fit in the "
                 "rest of the file",
                 in.action(), in.path(), kind, entry.name, entry.group);
      WEFT_CHECK(d == 0 || static_cast<uint64_t>(d) <= uint64_t{INT64_MAX} / extent,
                 "{}: \"{}\" is corrupt: {} \"{}\" of \"{}\" has a shape too large to index",
                 in.action(), in.path(), kind, entry.name, entry.group);
      if (d > 0) extent *= static_cast<uint64_t>(d);
      bytes *= static_cast<uint64_t>(d);
    }
    entry.value = empty(shape, {.dtype = static_cast<DType>(dtype)});
    const std::string_view data = in.bytes(bytes, what);
    std::memcpy(entry.value.raw_data(), data.data(), data.size());
    saved.push_back(std::move(entry));
  }
  return saved;
}

}  // namespace

std::vector<SavedTensor> model_weights(const Sequential& model, std::string_view action) {
  check_built(model, action);
  std::vector<SavedTensor> entries;
  for (const auto& layer : model.layers())
    for (const Weight* weight : layer->weights())
      entries.push_back({layer->name(), weight->name, weight->value});
  return entries;
}

std::string serialize_weight_file(const WeightFile& file) {
  const bool with_state = !file.state.empty() || !file.metadata.empty();
  std::string out(kMagic);
  put(out, with_state ? kWithState : kWeightsOnly);
  put_entries(out, file.weights);
  if (with_state) {
    put_entries(out, file.state);
    put_string(out, file.metadata);
  }
  return out;
}

WeightFile parse_weight_file(std::string data, const std::string& path, std::string_view action) {
  Reader in(std::move(data), path, action);
  WEFT_CHECK(in.bytes(kMagic.size(), "the header") == kMagic,
             "{}: \"{}\" is not a weft weight file", action, path);
  const auto version = in.get<uint32_t>("the header");
  WEFT_CHECK(version == kWeightsOnly || version == kWithState,
             "{}: \"{}\" has format version {}; this weft reads {} and {}", action, path, version,
             kWeightsOnly, kWithState);
  WeightFile file;
  file.weights = parse_entries(in, "weight");
  if (version == kWithState) {
    file.state = parse_entries(in, "state value");
    file.metadata = in.get_string("the metadata");
  }
  WEFT_CHECK(in.remaining() == 0, "{}: \"{}\" is corrupt: data follows the last {}", action, path,
             version == kWithState ? "field" : "weight");
  return file;
}

std::vector<std::pair<Weight*, const Tensor*>> match_weights(const Sequential& model,
                                                             const std::vector<SavedTensor>& saved,
                                                             const std::string& path,
                                                             std::string_view action) {
  check_built(model, action);
  for (const SavedTensor& s : saved) {
    bool known = false;
    for (const auto& layer : model.layers()) known = known || layer->name() == s.group;
    WEFT_CHECK(known, "{}: \"{}\" has weights for layer \"{}\", which model \"{}\" lacks", action,
               path, s.group, model.name());
  }
  std::vector<std::pair<Weight*, const Tensor*>> matched;
  for (const auto& layer : model.layers()) {
    const std::vector<Weight*> weights = layer->weights();
    std::vector<const SavedTensor*> in_file;
    for (const SavedTensor& s : saved)
      if (s.group == layer->name()) in_file.push_back(&s);
    WEFT_CHECK(in_file.size() == weights.size(),
               "{}: layer \"{}\" has {} weights in the model but {} in \"{}\"", action,
               layer->name(), weights.size(), in_file.size(), path);
    for (size_t i = 0; i < weights.size(); ++i) {
      const SavedTensor& s = *in_file[i];
      WEFT_CHECK(s.name == weights[i]->name,
                 "{}: layer \"{}\": weight {} is \"{}\" in the model but \"{}\" in \"{}\"", action,
                 layer->name(), i, weights[i]->name, s.name, path);
      WEFT_CHECK(s.value.shape() == weights[i]->value.shape(),
                 "{}: layer \"{}\" weight \"{}\" has shape {} in \"{}\" but {} in the model",
                 action, layer->name(), s.name, shape_str(s.value.shape()), path,
                 shape_str(weights[i]->value.shape()));
      matched.emplace_back(weights[i], &s.value);
    }
  }
  return matched;
}

void Sequential::save_weights(const std::string& path) const {
  write_file_atomically(path,
                        serialize_weight_file({.weights = model_weights(*this, "save_weights")}),
                        "save_weights");
}

void Sequential::load_weights(const std::string& path) {
  check_built(*this, "load_weights");
  const WeightFile file = parse_weight_file(read_file(path, "load_weights"), path, "load_weights");
  // Every check passes before any weight changes, so a failed load leaves the model as it was.
  for (const auto& [weight, value] : match_weights(*this, file.weights, path, "load_weights"))
    weight->value.assign_(*value);
}

}  // namespace weft
