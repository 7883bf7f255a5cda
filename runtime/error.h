// weft::Error: the one exception type the library throws for bad input.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace weft {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}

  template <typename... Args>
  explicit Error(fmt::format_string<Args...> format, Args&&... args)
      : std::runtime_error(fmt::format(format, std::forward<Args>(args)...)) {}
};

}  // namespace weft

// Throws weft::Error with a formatted message when `condition` is false. A macro, so that the
// message is only formatted on failure: checks sit on every op's path.
#define WEFT_CHECK(condition, ...)      \
  do {                                  \
    if (!(condition)) [[unlikely]]      \
      throw ::weft::Error(__VA_ARGS__); \
  } while (false)
