// Whole-file reads, and files written whole or not at all: the data goes to a temporary file
// beside the destination, which is renamed over it once complete, so a reader sees the old file
// or the new one, never half of one (a crash or a full disk leaves at most a stray
// PATH.tmp-XXXXXXXX). Shared by weight files, model files, plots and the examples' outputs.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace weft {

// The bytes of the file at `path`; a weft::Error "WHAT: cannot open/read "PATH": REASON" if it
// cannot be read.
std::string read_file(const std::filesystem::path& path, std::string_view what);

struct TemporaryFile {
  int fd;                      // open for writing; the caller closes it
  std::filesystem::path path;  // PATH.tmp-XXXXXXXX, beside the destination
};

// A new, empty file beside `path` that no one else is using. Errors are weft::Errors that start
// with `what` (the caller's name) and name `path`.
TemporaryFile create_temporary_beside(const std::filesystem::path& path, std::string_view what);

// Renames `temporary` over `path`; on failure removes `temporary` and throws weft::Error.
void replace_file(const std::filesystem::path& temporary, const std::filesystem::path& path,
                  std::string_view what);

// Writes `data` to `path` whole: to a temporary file, flushed to disk, then renamed over `path`
// (and the folder flushed, so the rename survives a power cut).
void write_file_atomically(const std::filesystem::path& path, std::string_view data,
                           std::string_view what);

}  // namespace weft
