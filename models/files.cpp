#include "weft/models/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>

#include "weft/runtime/error.h"

namespace weft {
namespace fs = std::filesystem;

std::string read_file(const fs::path& path, std::string_view what) {
  std::ifstream file(path, std::ios::binary);
  WEFT_CHECK(file.is_open(), "{}: cannot open \"{}\": {}", what, path.string(),
             std::strerror(errno));
  std::string contents{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
  WEFT_CHECK(!file.bad(), "{}: cannot read \"{}\": {}", what, path.string(),
             std::strerror(errno));
  return contents;
}

TemporaryFile create_temporary_beside(const fs::path& path, std::string_view what) {
  std::random_device entropy;
  for (int attempt = 0;; ++attempt) {
    const std::string candidate = fmt::format("{}.tmp-{:08x}", path.string(), entropy());
    const int fd = ::open(candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return {fd, candidate};
    WEFT_CHECK(errno == EEXIST && attempt < 16, "{}: cannot write \"{}\": {}", what, path.string(),
               std::strerror(errno));
  }
}

void replace_file(const fs::path& temporary, const fs::path& path, std::string_view what) {
  std::error_code error;
  fs::rename(temporary, path, error);
  if (!error) return;
  std::error_code ignored;
  fs::remove(temporary, ignored);
  throw Error("{}: cannot write \"{}\": {}", what, path.string(), error.message());
}

void write_file_atomically(const fs::path& path, std::string_view data, std::string_view what) {
  const auto [fd, temporary] = create_temporary_beside(path, what);
  std::string failure;
  for (size_t written = 0; failure.empty() && written < data.size();) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno != EINTR) failure = std::strerror(errno);
    if (n > 0) written += static_cast<size_t>(n);
  }
  if (failure.empty() && ::fsync(fd) != 0) failure = std::strerror(errno);
  if (::close(fd) != 0 && failure.empty()) failure = std::strerror(errno);
  if (!failure.empty()) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw Error("{}: cannot write \"{}\": {}", what, path.string(), failure);
  }
  replace_file(temporary, path, what);
  // The rename is made durable too, so that after a power cut the folder names the new file.
  // Best effort: a file system that cannot sync a folder still did the rename.
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const int folder_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (folder_fd >= 0) {
    ::fsync(folder_fd);
    ::close(folder_fd);
  }
}

}  // namespace weft
