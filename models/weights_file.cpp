// Weight files: "WEFTWGT\0", a uint32 version, a uint32 count, then per weight: layer name,
// weight name (each a uint32 length and bytes), dtype (uint8), rank (uint32), dims (int64 each)
// and the data, row-major. Numbers are little-endian.
#include <bit>
#include <cstring>
#include <cstdint>
#include <string_view>

#include "weft/models/files.h"
#include "weft/models/sequential.h"

namespace weft {

static_assert(std::endian::native == std::endian::little,
              "weight files are written in the host's byte order, which must be little-endian");

namespace {

constexpr std::string_view kMagic{"WEFTWGT\0", 8};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxRank = 64;

struct Entry {
  const Layer* layer;
  Weight* weight;
};

void check_built(const Sequential& model, std::string_view action) {
  WEFT_CHECK(model.built(),
             "{}: model \"{}\" has not been built yet; give the first layer an input_shape or "
             "call build() first",
             action, model.name());
}

std::vector<Entry> model_entries(const Sequential& model) {
  check_built(model, "save_weights");
  std::vector<Entry> entries;
  for (const auto& layer : model.layers())
    for (Weight* weight : layer->weights()) entries.push_back({layer.get(), weight});
  return entries;
}

template <typename T>
void put(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

void put_string(std::string& out, const std::string& text) {
  put(out, static_cast<uint32_t>(text.size()));
  out += text;
}

std::string serialize(const std::vector<Entry>& entries) {
  std::string out(kMagic);
  put(out, kVersion);
  put(out, static_cast<uint32_t>(entries.size()));
  for (const auto& [layer, weight] : entries) {
    const Tensor data = weight->value.copy();  // contiguous
    put_string(out, layer->name());
    put_string(out, weight->name);
    put(out, static_cast<uint8_t>(data.dtype()));
    put(out, static_cast<uint32_t>(data.dim()));
    for (int64_t d : data.shape()) put(out, d);
    out.append(static_cast<const char*>(data.raw_data()), data.numel() * dtype_size(data.dtype()));
  }
  return out;
}

// Reads the file's fields in order; any read past the end is a truncated file.
class Reader {
 public:
  Reader(std::string data, std::string path) : data_(std::move(data)), path_(std::move(path)) {}

  std::string_view bytes(size_t n, std::string_view what) {
    WEFT_CHECK(n <= data_.size() - at_,
               "load_weights: \"{}\" is truncated: it ends in the middle of {}", path_, what);
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

 private:
  std::string data_;
  std::string path_;
  size_t at_ = 0;
};

struct Saved {
  std::string layer, weight;
  Tensor value;
};

std::vector<Saved> parse(Reader& in) {
  WEFT_CHECK(in.bytes(kMagic.size(), "the header") == kMagic,
             "load_weights: \"{}\" is not a weft weight file", in.path());
  const auto version = in.get<uint32_t>("the header");
  WEFT_CHECK(version == kVersion, "load_weights: \"{}\" has format version {}; this weft reads {}",
             in.path(), version, kVersion);
  const auto count = in.get<uint32_t>("the header");
  std::vector<Saved> saved;
  for (uint32_t i = 0; i < count; ++i) {
    const std::string what = fmt::format("weight {} of {}", i + 1, count);
    Saved entry;
    entry.layer = in.get_string(what);
    entry.weight = in.get_string(what);
    const auto dtype = in.get<uint8_t>(what);
    WEFT_CHECK(dtype <= static_cast<uint8_t>(DType::i64),
               "load_weights: \"{}\" is corrupt: weight \"{}\" of layer \"{}\" has dtype code {}",
               in.path(), entry.weight, entry.layer, dtype);
    const auto rank = in.get<uint32_t>(what);
    WEFT_CHECK(rank <= kMaxRank,
               "load_weights: \"{}\" is corrupt: weight \"{}\" of layer \"{}\" has rank {}",
               in.path(), entry.weight, entry.layer, rank);
    Shape shape(rank);
    // The size is checked against what is left of the file before anything is allocated. A
    // weight with a dimension 0 holds no bytes whatever its other dimensions, but its strides
    // are their product: that must fit in an int64 too.
    uint64_t bytes = dtype_size(static_cast<DType>(dtype));
    uint64_t extent = 1;  // the product of the non-zero dimensions
    for (int64_t& d : shape) {
      d = in.get<int64_t>(what);
      WEFT_CHECK(d >= 0 && (d == 0 || bytes <= in.remaining() / static_cast<uint64_t>(d)),
                 "load_weights: \"{}\" is truncated or corrupt: weight \"{}\" of layer \"{}\" "
                 "does not fit in the rest of the file",
                 in.path(), entry.weight, entry.layer);
      WEFT_CHECK(d == 0 || static_cast<uint64_t>(d) <= uint64_t{INT64_MAX} / extent,
                 "load_weights: \"{}\" is corrupt: weight \"{}\" of layer \"{}\" has a shape "
                 "too large to index",
                 in.path(), entry.weight, entry.layer);
      if (d > 0) extent *= static_cast<uint64_t>(d);
      bytes *= static_cast<uint64_t>(d);
    }
    entry.value = empty(shape, {.dtype = static_cast<DType>(dtype)});
    const std::string_view data = in.bytes(bytes, what);
    std::memcpy(entry.value.raw_data(), data.data(), data.size());
    saved.push_back(std::move(entry));
  }
  WEFT_CHECK(in.remaining() == 0, "load_weights: \"{}\" is corrupt: data follows the last weight",
             in.path());
  return saved;
}

}  // namespace

void Sequential::save_weights(const std::string& path) const {
  write_file_atomically(path, serialize(model_entries(*this)), "save_weights");
}

void Sequential::load_weights(const std::string& path) {
  check_built(*this, "load_weights");
  Reader reader(read_file(path, "load_weights"), path);
  const std::vector<Saved> saved = parse(reader);

  for (const Saved& s : saved) {
    bool known = false;
    for (const auto& layer : layers_) known = known || layer->name() == s.layer;
    WEFT_CHECK(known, "load_weights: \"{}\" has weights for layer \"{}\", which model \"{}\" lacks",
               path, s.layer, name_);
  }
  // Weights match by layer name and then by order within the layer (a Bidirectional layer
  // holds two weights of each name). Every check passes before any weight changes, so a failed
  // load leaves the model as it was.
  std::vector<std::pair<Weight*, const Saved*>> matched;
  for (const auto& layer : layers_) {
    const std::vector<Weight*> weights = layer->weights();
    std::vector<const Saved*> in_file;
    for (const Saved& s : saved)
      if (s.layer == layer->name()) in_file.push_back(&s);
    WEFT_CHECK(in_file.size() == weights.size(),
               "load_weights: layer \"{}\" has {} weights in the model but {} in \"{}\"",
               layer->name(), weights.size(), in_file.size(), path);
    for (size_t i = 0; i < weights.size(); ++i) {
      const Saved& s = *in_file[i];
      WEFT_CHECK(s.weight == weights[i]->name,
                 "load_weights: layer \"{}\": weight {} is \"{}\" in the model but \"{}\" in "
                 "\"{}\"",
                 layer->name(), i, weights[i]->name, s.weight, path);
      WEFT_CHECK(s.value.shape() == weights[i]->value.shape(),
                 "load_weights: layer \"{}\" weight \"{}\" has shape {} in \"{}\" but {} in the "
                 "model",
                 layer->name(), s.weight, shape_str(s.value.shape()), path,
                 shape_str(weights[i]->value.shape()));
      matched.emplace_back(weights[i], &s);
    }
  }
  for (const auto& [weight, s] : matched) weight->value.assign_(s->value);
}

}  // namespace weft
