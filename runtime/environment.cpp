#include "weft/runtime/environment.h"

#include <cerrno>
#include <cstdlib>

#include "weft/runtime/error.h"

namespace weft {

std::optional<int64_t> environment_integer(const char* name, int64_t min, int64_t max) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(value, &end, 10);
  WEFT_CHECK(*end == '\0' && errno == 0 && n >= min && n <= max,
             "{} must be an integer in [{}, {}], got '{}'", name, min, max, value);
  return n;
}

}  // namespace weft
