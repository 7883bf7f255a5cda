#include "weft/compiler/signature.h"

#include <bit>
#include <cstring>
#include <span>
#include <type_traits>
#include <unordered_map>
#include <variant>

namespace weft {
namespace {

// A kernel's signature, as words: compared as a map key, never shown. Values are added as they
// are rather than formatted, into one buffer reused for every call (a step has thousands of calls
// and only the few distinct signatures are kept).
using Signature = std::vector<uint64_t>;

struct SignatureHash {
  size_t operator()(const Signature& words) const {
    uint64_t hash = words.size();
    for (uint64_t word : words) hash = (hash ^ word) * 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(hash ^ (hash >> 32));
  }
};

class SignatureWriter {
 public:
  explicit SignatureWriter(Signature& words) : words_(words) { words_.clear(); }
  template <typename Integer>
  requires std::is_integral_v<Integer>
  void add(Integer value) { words_.push_back(static_cast<uint64_t>(value)); }
  void add(double value) { words_.push_back(std::bit_cast<uint64_t>(value)); }
  void add(std::span<const int64_t> values) {
    add(values.size());
    words_.insert(words_.end(), values.begin(), values.end());
  }
  // Ops are registered once, for the life of the process: an op's address names it.
  void add(const OpDef& op) { add(reinterpret_cast<uintptr_t>(&op)); }
  void add(std::string_view text) {
    add(text.size());
    for (size_t at = 0; at < text.size(); at += sizeof(uint64_t)) {
      uint64_t word = 0;
      std::memcpy(&word, text.data() + at, std::min(sizeof word, text.size() - at));
      add(word);
    }
  }
  void add(const Place& place) {
    add(place.dtype);
    add(place.layout.shape);
    add(place.layout.strides);
  }
  void add(DType dtype) { add(static_cast<int>(dtype)); }
  void add(const Attrs& attrs) {
    add(attrs.items().size());
    for (const auto& [name, value] : attrs.items()) {
      add(name);
      std::visit([this](const auto& v) { add(v); }, value);
    }
  }

 private:
  Signature& words_;
};

void write_signature(const Graph& graph, const Call& call, Signature& words) {
  SignatureWriter signature(words);
  signature.add(static_cast<int>(call.kind));
  signature.add(call.reads.size());
  for (const Place& place : call.reads) signature.add(place);
  signature.add(call.writes.size());
  for (const Place& place : call.writes) signature.add(place);
  if (call.kind == Call::Kind::copy) return;
  if (call.kind == Call::Kind::op) {
    const GraphNode& node = graph.node(call.members[0]);
    signature.add(*node.op);
    signature.add(node.attrs);
    return;
  }
  signature.add(call.shape);
  signature.add(call.members.size());
  for (int member : call.members) {
    const GraphNode& node = graph.node(member);
    signature.add(*node.op);
    signature.add(node.spec.dtype);
    signature.add(node.inputs.size());
    for (int input : node.inputs) {
      const Operand operand = operand_of(call, input);
      signature.add(static_cast<int>(operand.kind));
      if (operand.kind != Operand::Kind::immediate) {
        signature.add(operand.index);
        continue;
      }
      signature.add(graph.node(input).spec.dtype);
      signature.add(graph.node(input).value.item());
    }
    signature.add(node.attrs);
  }
  for (size_t w = 0; w < call.written_members.size(); ++w) {
    signature.add(member_index(call, call.written_members[w]));
    signature.add(own_argument(call, w) ? -1 : call.in_place_of[w]);
  }
}

}  // namespace

void assign_kernels(const Graph& graph, Fusion& fusion) {
  std::unordered_map<Signature, int, SignatureHash> kernel_ids;
  Signature signature;
  fusion.kernel_of.clear();
  fusion.kernel_of.reserve(fusion.calls.size());
  for (const Call& call : fusion.calls) {
    write_signature(graph, call, signature);
    auto kernel = kernel_ids.find(signature);
    if (kernel == kernel_ids.end())
      kernel = kernel_ids.emplace(signature, static_cast<int>(kernel_ids.size())).first;
    fusion.kernel_of.push_back(kernel->second);
  }
  fusion.kernel_count = static_cast<int>(kernel_ids.size());
}

}  // namespace weft
