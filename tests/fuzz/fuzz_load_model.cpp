// libFuzzer target for load_model (models/tfjs_model.h). An input is a model.json, then, after
// its first NUL byte, the bytes of the one shard it may name, group1-shard1of1.bin; make_corpus.sh
// builds the seeds so from the TF.js fixtures. Every input must load or throw weft::Error: any
// other exception, a crash or a sanitizer report is a bug.
//
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
//     -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=ON -DWEFT_BUILD_FUZZ=ON -DWEFT_BUILD_TESTS=OFF \
//     -DWEFT_BUILD_EXAMPLES=OFF -DWEFT_BUILD_BENCH=OFF
//   cmake --build build-fuzz --target fuzz_load_model
//   sh tests/fuzz/make_corpus.sh tests/data/tfjs build-fuzz/seeds
//   build-fuzz/tests/fuzz/fuzz_load_model -runs=1000000 build-fuzz/work build-fuzz/seeds
#include <unistd.h>
#include <weft/weft.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace {

namespace fs = std::filesystem;

// A folder of this process's own for the two files, in memory where the system has one (/dev/shm):
// on a disk, writing and closing two files costs more than loading them.
const fs::path& folder() {
  static const fs::path dir = [] {
    const fs::path base = fs::is_directory("/dev/shm") ? "/dev/shm" : fs::temp_directory_path();
    fs::path path = base / ("weft_fuzz_load_model_" + std::to_string(getpid()));
    fs::create_directories(path);
    return path;
  }();
  return dir;
}

void write(const fs::path& path, std::string_view data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(data.data(), static_cast<std::streamsize>(data.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  write(folder() / "model.json", input.substr(0, split));
  write(folder() / "group1-shard1of1.bin",
        split == std::string_view::npos ? std::string_view() : input.substr(split + 1));
  try {
    weft::load_model((folder() / "model.json").string());
  } catch (const weft::Error&) {
    // The loader's answer to a bad file.
  }
  return 0;
}
