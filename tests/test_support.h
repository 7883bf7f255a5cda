// Helpers shared by the test files: checking weft::Error messages, and a fixture that gives each
// test a fresh temporary folder.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "weft/runtime/error.h"

namespace weft::testing_support {

// f must throw weft::Error with every fragment in its message. Any other exception propagates
// and fails the test.
inline void expect_error(const std::function<void()>& f,
                         const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& fragment : fragments)
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "message \"" << message << "\" lacks \"" << fragment << "\"";
    return;
  }
  ADD_FAILURE() << "no weft::Error was thrown";
}

// A fresh folder dir_ under the system's temporary folder, removed after the test.
class TempDirTest : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir_ =
        std::filesystem::temp_directory_path() /
        fmt::format("weft_{}_{}_{}", info->test_suite_name(), info->name(), std::random_device{}());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `contents` to dir_ / relative, creating its folders; returns the file's path.
  std::filesystem::path write(const std::filesystem::path& relative,
                              const std::string& contents) const {
    const std::filesystem::path path = dir_ / relative;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }

  std::filesystem::path dir_;
};

}  // namespace weft::testing_support
