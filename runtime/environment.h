// Settings read from the environment (WEFT_NUM_THREADS, WEFT_BUFFER_CACHE_MB).
#pragma once

#include <cstdint>
#include <optional>

namespace weft {

// The integer the environment variable `name` holds; none when it is unset or empty. Throws
// weft::Error naming the variable and its value when that is not an integer in [min, max].
std::optional<int64_t> environment_integer(const char* name, int64_t min, int64_t max);

}  // namespace weft
