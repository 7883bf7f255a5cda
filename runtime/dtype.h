// Element types of tensors: float32 and float64 for values (gradient checks run in float64),
// int32 and int64 for indices.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "weft/runtime/error.h"

namespace weft {

enum class DType { f32, f64, i32, i64 };

constexpr std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "float32";
    case DType::f64:
      return "float64";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
  }
  return "?";
}

constexpr std::size_t dtype_size(DType dtype) {
  return dtype == DType::f64 || dtype == DType::i64 ? 8 : 4;
}

constexpr bool is_floating(DType dtype) { return dtype == DType::f32 || dtype == DType::f64; }

template <typename T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return DType::f32;
  else if constexpr (std::is_same_v<T, double>)
    return DType::f64;
  else if constexpr (std::is_same_v<T, int32_t>)
    return DType::i32;
  else {
    static_assert(std::is_same_v<T, int64_t>,
                  "weft tensors hold float, double, int32_t or int64_t");
    return DType::i64;
  }
}

// Calls body.template operator()<T>() with T the C++ type of a floating dtype.
template <typename Body>
decltype(auto) dispatch_floating(DType dtype, std::string_view op, Body&& body) {
  switch (dtype) {
    case DType::f32:
      return body.template operator()<float>();
    case DType::f64:
      return body.template operator()<double>();
    default:
      throw Error("{}: expects a floating-point tensor, got {}", op, dtype_name(dtype));
  }
}

// Calls body.template operator()<T>() with T the C++ type of any dtype.
template <typename Body>
decltype(auto) dispatch_any(DType dtype, Body&& body) {
  switch (dtype) {
    case DType::f32:
      return body.template operator()<float>();
    case DType::f64:
      return body.template operator()<double>();
    case DType::i32:
      return body.template operator()<int32_t>();
    case DType::i64:
      break;
  }
  return body.template operator()<int64_t>();
}

}  // namespace weft

template <>
struct fmt::formatter<weft::DType> : fmt::formatter<std::string_view> {
  auto format(weft::DType dtype, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(weft::dtype_name(dtype), ctx);
  }
};
