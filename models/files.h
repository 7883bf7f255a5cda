// Whole-file reads and crash-safe writes, shared by weft's weight files and the TF.js Layers
// model files.
#pragma once

#include <string>
#include <string_view>

namespace weft {

// The bytes of the file at `path`; a weft::Error "ACTION: cannot open/read "PATH": REASON" if
// it cannot be read.
std::string read_file(const std::string& path, std::string_view action);

// Writes `data` to a temporary file beside `path`, flushes it to disk and renames it over
// `path`, so that `path` is either the old file or the complete new one, never half written.
// A weft::Error "ACTION: cannot write "PATH": REASON" on failure (the temporary file removed).
void write_file_atomically(const std::string& path, std::string_view data, std::string_view action);

}  // namespace weft
