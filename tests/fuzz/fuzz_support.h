// What the fuzz targets share: a scratch folder of this process's own, and writing bytes to a
// file in it.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace weft::fuzz {

// A folder under the system's temporary folder, made once per process and removed at exit.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path folder = [] {
    std::string name = (std::filesystem::temp_directory_path() / "weft-fuzz-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch(), ignored);
    });
    return std::filesystem::path(name);
  }();
  return folder;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  if (!std::filesystem::is_directory(path.parent_path())) {
    std::filesystem::create_directories(path.parent_path());
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The input cut at each `separator` byte into at most `count` pieces (the last takes the rest).
inline std::vector<std::string_view> pieces(std::string_view bytes, char separator, size_t count) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < count) {
    const size_t at = bytes.find(separator);
    if (at == std::string_view::npos) break;
    out.push_back(bytes.substr(0, at));
    bytes.remove_prefix(at + 1);
  }
  out.push_back(bytes);
  return out;
}

// Stops the run (libFuzzer reports the input) when an invariant of a result does not hold.
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "weft fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

}  // namespace weft::fuzz
