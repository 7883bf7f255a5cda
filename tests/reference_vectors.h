// Reader for the reference-vector text files under tests/data (made by the generators in
// tests/reference, e.g. gen_rnn_vectors.py). Header-only; needs only the standard library and
// fmt. Malformed input throws std::runtime_error whose message starts with "FILE:LINE: ".
//
// Format ('#' lines are comments, blank lines are ignored, tokens are whitespace separated):
//   case NAME
//     sattr KEY TEXT...       string attribute: the rest of the line
//     attr KEY NUMBER         numeric attribute
//     tensor NAME D0 D1 ...   then D0*D1*... numbers, row-major, over any number of lines
//   end
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <istream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace weft::reference {

struct ReferenceArray {
  std::vector<int64_t> shape;
  std::vector<double> values;  // row-major

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  int64_t size() const { return static_cast<int64_t>(values.size()); }
  int64_t dim(int64_t axis) const {
    if (axis < 0) axis += rank();
    if (axis < 0 || axis >= rank()) {
      throw std::runtime_error(
          fmt::format("axis {} out of range for a rank-{} array", axis, rank()));
    }
    return shape[static_cast<size_t>(axis)];
  }
  // Row-major element access with bounds checks: a.at({b, t, j}).
  double at(std::initializer_list<int64_t> index) const {
    if (static_cast<int64_t>(index.size()) != rank()) {
      throw std::runtime_error(
          fmt::format("{} indices given for a rank-{} array", index.size(), rank()));
    }
    int64_t flat = 0;
    size_t axis = 0;
    for (int64_t i : index) {
      if (i < 0 || i >= shape[axis]) {
        throw std::runtime_error(
            fmt::format("index {} out of range for axis {} of size {}", i, axis, shape[axis]));
      }
      flat = flat * shape[axis] + i;
      ++axis;
    }
    return values[static_cast<size_t>(flat)];
  }
};

struct ReferenceCase {
  std::string name;
  std::string location;  // "FILE:LINE" of the case line, for messages
  std::map<std::string, double> attrs;
  std::map<std::string, std::string> string_attrs;
  std::map<std::string, ReferenceArray> arrays;
  std::vector<std::string> comments;  // the case's '#' lines, without the '#'

  bool has(const std::string& array_name) const { return arrays.count(array_name) != 0; }
  bool has_attr(const std::string& key) const {
    return attrs.count(key) != 0 || string_attrs.count(key) != 0;
  }

  const ReferenceArray& array(const std::string& array_name) const {
    auto it = arrays.find(array_name);
    if (it == arrays.end()) {
      throw std::runtime_error(
          fmt::format("{}: case '{}' has no array '{}'", location, name, array_name));
    }
    return it->second;
  }
  double attr(const std::string& key) const {
    auto it = attrs.find(key);
    if (it == attrs.end()) {
      throw std::runtime_error(
          fmt::format("{}: case '{}' has no numeric attr '{}'", location, name, key));
    }
    return it->second;
  }
  double attr(const std::string& key, double fallback) const {
    auto it = attrs.find(key);
    return it == attrs.end() ? fallback : it->second;
  }
  int64_t int_attr(const std::string& key) const {
    double v = attr(key);
    if (!(v >= -9.0e15 && v <= 9.0e15) || static_cast<double>(static_cast<int64_t>(v)) != v) {
      throw std::runtime_error(
          fmt::format("{}: case '{}': attr '{}' = {} is not an integer", location, name, key, v));
    }
    return static_cast<int64_t>(v);
  }
  int64_t int_attr(const std::string& key, int64_t fallback) const {
    return attrs.count(key) != 0 ? int_attr(key) : fallback;
  }
  bool flag(const std::string& key) const { return int_attr(key, 0) != 0; }
  const std::string& string_attr(const std::string& key) const {
    auto it = string_attrs.find(key);
    if (it == string_attrs.end()) {
      throw std::runtime_error(
          fmt::format("{}: case '{}' has no string attr '{}'", location, name, key));
    }
    return it->second;
  }
};

namespace detail {

inline std::string_view trim(std::string_view s) {
  constexpr std::string_view space = " \t\r\n\v\f";
  size_t begin = s.find_first_not_of(space);
  if (begin == std::string_view::npos) return {};
  size_t end = s.find_last_not_of(space);
  return s.substr(begin, end - begin + 1);
}

inline std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> tokens;
  constexpr std::string_view space = " \t\r\n\v\f";
  size_t pos = 0;
  while (true) {
    size_t begin = s.find_first_not_of(space, pos);
    if (begin == std::string_view::npos) break;
    size_t end = s.find_first_of(space, begin);
    if (end == std::string_view::npos) end = s.size();
    tokens.push_back(s.substr(begin, end - begin));
    pos = end;
  }
  return tokens;
}

// Parses the whole token as a number, or returns false. Accepts a leading '+'.
inline bool parse_double(std::string_view token, double& out) {
  if (!token.empty() && token.front() == '+') token.remove_prefix(1);
  if (token.empty()) return false;
  auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), out);
  return ec == std::errc() && ptr == token.data() + token.size();
}

inline bool parse_int(std::string_view token, int64_t& out) {
  if (token.empty()) return false;
  auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), out);
  return ec == std::errc() && ptr == token.data() + token.size();
}

}  // namespace detail

// Parses reference vectors from `in`; `source` names the input in error messages.
inline std::vector<ReferenceCase> parse_reference_vectors(std::istream& in,
                                                          const std::string& source) {
  std::vector<ReferenceCase> cases;
  std::map<std::string, size_t> case_lines;  // name -> line of its definition
  ReferenceCase* current = nullptr;
  ReferenceArray* pending = nullptr;  // tensor still reading values
  std::string pending_name;
  size_t pending_needed = 0;
  size_t pending_line = 0;
  size_t line_number = 0;
  std::string raw;

  auto fail = [&](const std::string& message) -> void {
    throw std::runtime_error(fmt::format("{}:{}: {}", source, line_number, message));
  };

  while (std::getline(in, raw)) {
    ++line_number;
    std::string_view line = detail::trim(raw);
    if (line.empty()) continue;
    if (line.front() == '#') {
      if (current != nullptr) current->comments.emplace_back(detail::trim(line.substr(1)));
      continue;
    }
    std::vector<std::string_view> tokens = detail::split(line);

    if (pending != nullptr) {  // value lines of a tensor
      for (std::string_view token : tokens) {
        if (pending->values.size() == pending_needed) {
          fail(fmt::format("tensor '{}' (line {}) has more than its {} values", pending_name,
                           pending_line, pending_needed));
        }
        double v = 0.0;
        if (!detail::parse_double(token, v)) {
          fail(fmt::format("tensor '{}' (line {}): '{}' is not a number; {} of {} values read",
                           pending_name, pending_line, token, pending->values.size(),
                           pending_needed));
        }
        pending->values.push_back(v);
      }
      if (pending->values.size() == pending_needed) pending = nullptr;
      continue;
    }

    std::string_view keyword = tokens[0];
    if (keyword == "case") {
      if (current != nullptr)
        fail(fmt::format("'case' inside case '{}' (missing 'end')", current->name));
      if (tokens.size() != 2) fail("expected 'case NAME'");
      std::string name(tokens[1]);
      if (auto it = case_lines.find(name); it != case_lines.end()) {
        fail(fmt::format("duplicate case '{}' (first at line {})", name, it->second));
      }
      case_lines.emplace(name, line_number);
      cases.emplace_back();
      current = &cases.back();
      current->name = name;
      current->location = fmt::format("{}:{}", source, line_number);
      continue;
    }
    if (current == nullptr) fail(fmt::format("'{}' outside a case", keyword));

    if (keyword == "end") {
      if (tokens.size() != 1) fail("expected 'end' alone on its line");
      current = nullptr;
    } else if (keyword == "attr" || keyword == "sattr") {
      if (tokens.size() < 3) fail(fmt::format("expected '{} KEY VALUE'", keyword));
      std::string key(tokens[1]);
      if (current->has_attr(key)) fail(fmt::format("duplicate attr '{}'", key));
      if (keyword == "attr") {
        double v = 0.0;
        if (tokens.size() != 3 || !detail::parse_double(tokens[2], v)) {
          fail(fmt::format("attr '{}' needs one number", key));
        }
        current->attrs.emplace(key, v);
      } else {
        // The value is the rest of the line after the key, spaces included.
        std::string_view rest =
            line.substr(static_cast<size_t>(tokens[1].data() - line.data()) + tokens[1].size());
        current->string_attrs.emplace(key, std::string(detail::trim(rest)));
      }
    } else if (keyword == "tensor") {
      if (tokens.size() < 2) fail("expected 'tensor NAME D0 D1 ...'");
      std::string name(tokens[1]);
      if (current->has(name)) fail(fmt::format("duplicate tensor '{}'", name));
      ReferenceArray array;
      size_t count = 1;
      for (size_t i = 2; i < tokens.size(); ++i) {
        int64_t d = 0;
        if (!detail::parse_int(tokens[i], d) || d < 0) {
          fail(fmt::format("tensor '{}': bad dimension '{}'", name, tokens[i]));
        }
        constexpr size_t max_values = size_t{1} << 32;
        if (d != 0 && count > max_values / static_cast<size_t>(d)) {
          fail(fmt::format("tensor '{}' is too large", name));
        }
        count *= static_cast<size_t>(d);
        array.shape.push_back(d);
      }
      array.values.reserve(std::min(count, size_t{1} << 20));
      auto [it, inserted] = current->arrays.emplace(name, std::move(array));
      (void)inserted;
      if (count > 0) {
        pending = &it->second;
        pending_name = name;
        pending_needed = count;
        pending_line = line_number;
      }
    } else {
      fail(fmt::format("unknown keyword '{}'", keyword));
    }
  }
  if (in.bad()) fail("read error");
  if (pending != nullptr) {
    fail(fmt::format("input ends inside tensor '{}' (line {}): {} of {} values read", pending_name,
                     pending_line, pending->values.size(), pending_needed));
  }
  if (current != nullptr) {
    fail(fmt::format("input ends inside case '{}' (missing 'end')", current->name));
  }
  return cases;
}

inline std::vector<ReferenceCase> load_reference_vectors(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}:0: cannot open file", path));
  return parse_reference_vectors(in, path);
}

inline const ReferenceCase& find_case(const std::vector<ReferenceCase>& cases,
                                      std::string_view name) {
  for (const ReferenceCase& c : cases) {
    if (c.name == name) return c;
  }
  throw std::runtime_error(fmt::format("no reference case named '{}'", name));
}

}  // namespace weft::reference
