// Pictures, as the chapter draws them with matplotlib: line charts drawn by gnuplot (Debian's
// gnuplot-nox), run as a separate process. Each figure is written twice, as PNG and as SVG,
// each whole or not at all (drawn to a temporary file, then renamed into place).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "weft/models/training.h"

namespace weft {

struct Curve {
  std::string label;        // the legend's entry
  std::vector<double> y;    // non-finite values are gaps in the line
  std::vector<double> x{};  // empty: 0, 1, 2, ...; else as many as y
};

struct Panel {
  std::string title;
  std::string xlabel;
  std::string ylabel;
  std::vector<Curve> curves;
  double xtic_step = 0;  // the distance between x tic marks; 0: gnuplot's choice
};

// Draws the panels one above the other and writes `path` with the extensions .png and .svg
// (any extension `path` has is replaced); returns the two paths. Throws weft::Error for a
// panel without curves, a curve without points or with x and y of different lengths, when
// gnuplot cannot be run (install gnuplot-nox; tools/setup.sh does) or fails (its message is
// included), or when a file cannot be written.
std::vector<std::filesystem::path> save_figure(const std::vector<Panel>& panels,
                                               const std::filesystem::path& path);

// Training curves, as the chapter's plt.plot(history.history['loss']) and friends: one panel
// per quantity in the history (loss first, then each metric), each with its validation twin
// ("val_loss" beside "loss") when there is one, against the epoch (from 1). `title` heads the
// first panel. Throws weft::Error for a history with no epochs.
std::vector<std::filesystem::path> plot_history(const History& history,
                                                const std::filesystem::path& path,
                                                const std::string& title = "Training history");

}  // namespace weft
