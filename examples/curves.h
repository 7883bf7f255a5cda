// What every example that trains does with its History: draws the training curves.
#pragma once

#include <fmt/format.h>
#include <weft/weft.h>

#include <filesystem>
#include <string>

namespace weft::examples {

// Writes the training curves of `history` to NAME_history.png and .svg in the current folder,
// and says where.
inline void write_curves(const History& history, const std::string& name,
                         const std::string& title) {
  const auto paths = plot_history(history, name + "_history", title);
  fmt::print("Training curves written to {} and {}\n", std::filesystem::absolute(paths[0]).string(),
             std::filesystem::absolute(paths[1]).string());
}

}  // namespace weft::examples
