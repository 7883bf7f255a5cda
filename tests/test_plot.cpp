// Pictures through gnuplot: save_figure and plot_history write a PNG and an SVG whole, holding
// what was asked for, and refuse what cannot be drawn; files.h's atomic writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "test_support.h"
#include "weft/models/files.h"
#include "weft/models/plot.h"
#include "weft/runtime/error.h"

namespace {

using weft::testing_support::expect_error;
using weft::testing_support::TempDirTest;
namespace fs = std::filesystem;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The files in `dir`, so a test can see that nothing temporary is left behind.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

class Plot : public TempDirTest {};

TEST_F(Plot, WritesPngAndSvgOfEveryCurve) {
  const auto paths = weft::save_figure(
      {{"Temperature Forecast: Actual vs Predicted",
        "Day",
        "Temperature",
        {{"Actual", {20, 21.5, 19, 23}}, {"Predicted", {20.5, 21, 20, 22}, {0, 1, 2, 3}}}}},
      dir_ / "forecast.csv");  // the extension is replaced
  ASSERT_EQ(paths, (std::vector<fs::path>{dir_ / "forecast.png", dir_ / "forecast.svg"}));
  EXPECT_EQ(read(paths[0]).substr(0, 8), "\x89PNG\r\n\x1a\n");
  const std::string svg = read(paths[1]);
  for (const char* text : {"<svg", "Temperature Forecast: Actual vs Predicted", "Actual",
                           "Predicted", "Day", "Temperature"}) {
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  }
  EXPECT_EQ(listing(dir_), (std::vector<std::string>{"forecast.png", "forecast.svg"}));
}

TEST_F(Plot, QuotesTitlesAndDrawsGaps) {
  // A quote, a line break, gnuplot's enhanced-text characters, XML's, and a non-finite value.
  const auto paths = weft::save_figure(
      {{"it's a_b^c {d} <&>", "x", "y\nz", {{"o'k", {1, std::nan(""), 3}}}}}, dir_ / "odd");
  const std::string svg = read(paths[1]);
  for (const char* text : {">it's a_b^c {d} &lt;&amp;><", ">y z<", ">o'k<"}) {
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  }
}

TEST_F(Plot, HistoryHasAPanelPerQuantityWithItsValidationTwin) {
  weft::History history;
  history.history = {{"loss", {0.9, 0.5, 0.3}},
                     {"val_loss", {1.0, 0.6, 0.5}},
                     {"accuracy", {0.6, 0.8, 0.9}},
                     {"val_accuracy", {0.5, 0.7, 0.8}}};
  history.epochs_run = 3;
  const auto paths = weft::plot_history(history, dir_ / "curves", "Model: training curves");
  const std::string svg = read(paths[1]);
  // The loss panel comes first (under the title), the accuracy panel after it.
  const size_t title = svg.find("Model: training curves");
  const size_t accuracy = svg.find(">accuracy<");
  ASSERT_NE(title, std::string::npos);
  ASSERT_NE(accuracy, std::string::npos);
  EXPECT_LT(title, accuracy);
  for (const char* key : {">loss<", ">val_loss<", ">val_accuracy<", ">epoch<"}) {
    EXPECT_NE(svg.find(key), std::string::npos) << key;
  }
  expect_error([&] { weft::plot_history(weft::History{}, dir_ / "none"); },
               {"plot_history", "no epochs"});
}

TEST_F(Plot, RefusesWhatCannotBeDrawn) {
  const fs::path out = dir_ / "bad";
  expect_error([&] { weft::save_figure({}, out); }, {"nothing to draw"});
  expect_error(
      [&] {
        weft::save_figure({{"empty", "x", "y", {}}}, out);
      },
      {"panel 'empty' has no curves"});
  expect_error(
      [&] {
        weft::save_figure({{"t", "x", "y", {{"c", {}}}}}, out);
      },
      {"curve 'c' has no points"});
  expect_error(
      [&] {
        weft::save_figure({{"t", "x", "y", {{"c", {1, 2}, {1}}}}}, out);
      },
      {"curve 'c' has 1 x values for 2 y values"});
  expect_error(
      [&] {
        weft::save_figure({{"t", "x", "y", {{"c", {1}}}}}, dir_ / "no" / "dir");
      },
      {"cannot write", (dir_ / "no" / "dir.png").string()});
  EXPECT_TRUE(listing(dir_).empty());
}

TEST_F(Plot, SaysHowToGetGnuplot) {
  const char* saved = std::getenv("PATH");
  const std::string path = saved ? saved : "";
  setenv("PATH", dir_.c_str(), 1);  // no gnuplot there
  expect_error(
      [&] {
        weft::save_figure({{"t", "x", "y", {{"c", {1}}}}}, dir_ / "fig");
      },
      {"cannot run gnuplot", "gnuplot-nox"});
  setenv("PATH", path.c_str(), 1);
  EXPECT_TRUE(listing(dir_).empty());  // no temporary file left
}

TEST_F(Plot, ReportsGnuplotsOwnFailure) {
  // A stand-in gnuplot that fails the way a broken one would.
  const fs::path fake =
      write("bin/gnuplot", "#!/bin/sh\necho 'line 3: unknown terminal' >&2\nexit 1\n");
  fs::permissions(fake, fs::perms::owner_all);
  const char* saved = std::getenv("PATH");
  const std::string path = saved ? saved : "";
  setenv("PATH", (dir_ / "bin").c_str(), 1);
  expect_error(
      [&] {
        weft::save_figure({{"t", "x", "y", {{"c", {1}}}}}, dir_ / "fig");
      },
      {"gnuplot failed", "unknown terminal"});
  setenv("PATH", path.c_str(), 1);
  EXPECT_EQ(listing(dir_), (std::vector<std::string>{"bin"}));
}

TEST_F(Plot, WritesFilesWholeOverOldOnes) {
  const fs::path path = dir_ / "out.txt";
  weft::write_file_atomically(path, "first", "test");
  weft::write_file_atomically(path, "second, longer", "test");
  EXPECT_EQ(read(path), "second, longer");
  EXPECT_EQ(listing(dir_), (std::vector<std::string>{"out.txt"}));
  expect_error([&] { weft::write_file_atomically(dir_ / "missing" / "x.txt", "data", "writer"); },
               {"writer: cannot write", "x.txt"});
}

}  // namespace
