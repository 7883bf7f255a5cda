#include "weft/models/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "weft/runtime/error.h"

namespace weft {

namespace {

std::string system_error() { return std::strerror(errno); }

// Opens a new file beside `path` that no one else is using.
std::pair<int, std::string> create_temporary(const std::string& path, std::string_view action) {
  std::random_device entropy;
  for (int attempt = 0;; ++attempt) {
    const std::string candidate = fmt::format("{}.tmp-{:08x}", path, entropy());
    const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return {fd, candidate};
    WEFT_CHECK(errno == EEXIST && attempt < 16, "{}: cannot write \"{}\": {}", action, path,
               system_error());
  }
}

}  // namespace

std::string read_file(const std::string& path, std::string_view action) {
  std::ifstream file(path, std::ios::binary);
  WEFT_CHECK(file.is_open(), "{}: cannot open \"{}\": {}", action, path, system_error());
  std::string contents{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  WEFT_CHECK(!file.bad(), "{}: cannot read \"{}\": {}", action, path, system_error());
  return contents;
}

void write_file_atomically(const std::string& path, std::string_view data,
                           std::string_view action) {
  const auto [fd, temporary] = create_temporary(path, action);
  // Written in full and flushed to disk before the rename, so `path` is either the old file or
  // the complete new one.
  std::string failure;
  for (size_t written = 0; failure.empty() && written < data.size();) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno != EINTR) failure = system_error();
    if (n > 0) written += static_cast<size_t>(n);
  }
  if (failure.empty() && ::fsync(fd) != 0) failure = system_error();
  if (::close(fd) != 0 && failure.empty()) failure = system_error();
  std::error_code error;
  if (failure.empty()) {
    std::filesystem::rename(temporary, path, error);
    if (error) failure = error.message();
  }
  if (!failure.empty()) {
    std::filesystem::remove(temporary, error);
    throw Error("{}: cannot write \"{}\": {}", action, path, failure);
  }
}

}  // namespace weft
