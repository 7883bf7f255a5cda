#include "weft/models/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <system_error>

#include "weft/models/files.h"
#include "weft/runtime/error.h"

extern char** environ;

namespace weft {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kWhat = "save_figure";

// A gnuplot single-quoted string: only the quote is special (doubled); a line break would end
// the command, so it becomes a space.
std::string gnuplot_string(std::string_view text) {
  std::string out = "'";
  for (const char c : text) {
    out += c == '\n' || c == '\r' ? ' ' : c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

// A folder of its own under the system's temporary folder, removed with this object.
class ScratchFolder {
 public:
  ScratchFolder() {
    std::string name = (fs::temp_directory_path() / "weft-plot-XXXXXX").string();
    WEFT_CHECK(::mkdtemp(name.data()) != nullptr, "{}: cannot make a temporary folder: {}", kWhat,
               std::strerror(errno));
    path_ = name;
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  ~ScratchFolder() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs `gnuplot script`, its output and errors into `log`; throws with the log when it fails.
void run_gnuplot(const fs::path& script, const fs::path& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::string program = "gnuplot";
  std::string script_arg = script.string();
  char* argv[] = {program.data(), script_arg.data(), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  WEFT_CHECK(spawned == 0,
             "{}: cannot run gnuplot: {} (install Debian's gnuplot-nox; tools/setup.sh does)",
             kWhat, std::strerror(spawned));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    WEFT_CHECK(errno == EINTR, "{}: lost the gnuplot process: {}", kWhat, std::strerror(errno));
  }
  WEFT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "{}: gnuplot failed: {}", kWhat,
             read_all(log));
}

// The data, one block per curve (gnuplot's `index`), and the commands that draw every panel.
std::pair<std::string, std::string> data_and_plots(const std::vector<Panel>& panels,
                                                   const fs::path& data_file) {
  std::string data;
  std::string plots;
  int block = 0;
  for (const Panel& panel : panels) {
    WEFT_CHECK(!panel.curves.empty(), "{}: the panel '{}' has no curves", kWhat, panel.title);
    plots +=
        fmt::format("set title {}\nset xlabel {}\nset ylabel {}\n", gnuplot_string(panel.title),
                    gnuplot_string(panel.xlabel), gnuplot_string(panel.ylabel));
    plots += panel.xtic_step > 0 ? fmt::format("set xtics {:g}\n", panel.xtic_step)
                                 : "set xtics autofreq\n";
    plots += "plot ";
    for (size_t c = 0; c < panel.curves.size(); ++c) {
      const Curve& curve = panel.curves[c];
      WEFT_CHECK(!curve.y.empty(), "{}: the curve '{}' has no points", kWhat, curve.label);
      WEFT_CHECK(curve.x.empty() || curve.x.size() == curve.y.size(),
                 "{}: the curve '{}' has {} x values for {} y values", kWhat, curve.label,
                 curve.x.size(), curve.y.size());
      for (size_t i = 0; i < curve.y.size(); ++i) {
        const double x = curve.x.empty() ? static_cast<double>(i) : curve.x[i];
        const double y = curve.y[i];
        data += std::isfinite(x) && std::isfinite(y) ? fmt::format("{:.9g} {:.9g}\n", x, y)
                                                     : fmt::format("{:.9g} NaN\n", x);
      }
      data += "\n\n";
      plots +=
          fmt::format("{}{} index {} using 1:2 with lines linewidth 2 title {}", c == 0 ? "" : ", ",
                      gnuplot_string(data_file.string()), block++, gnuplot_string(curve.label));
    }
    plots += "\n";
  }
  return {data, plots};
}

}  // namespace

std::vector<fs::path> save_figure(const std::vector<Panel>& panels, const fs::path& path) {
  WEFT_CHECK(!panels.empty(), "{}: nothing to draw for \"{}\"", kWhat, path.string());
  const ScratchFolder scratch;
  const fs::path data_file = scratch.path() / "data.txt";
  const auto [data, plots] = data_and_plots(panels, data_file);
  std::ofstream(data_file, std::ios::binary) << data;

  const int height = 420 * static_cast<int>(panels.size());
  const std::vector<std::pair<std::string, std::string>> formats = {
      {".png", fmt::format("pngcairo size 1000,{} noenhanced font 'sans,11'", height)},
      {".svg",
       fmt::format("svg size 1000,{} noenhanced font 'sans,11' background '#ffffff'", height)}};
  std::vector<fs::path> finals;
  std::vector<fs::path> temporaries;
  // Fixed margins (in characters), so that stacked panels line up whatever their labels.
  std::string script =
      "set datafile missing 'NaN'\nset grid\nset key outside right top\n"
      "set lmargin 10\nset rmargin 20\n";
  for (const auto& [extension, terminal] : formats) {
    fs::path final_path = path;
    final_path.replace_extension(extension);
    const auto [fd, temporary] = create_temporary_beside(final_path, kWhat);
    ::close(fd);
    finals.push_back(final_path);
    temporaries.push_back(temporary);
    script += fmt::format(
        "set terminal {}\nset output {}\nset multiplot layout {},1\n{}"
        "unset multiplot\nset output\n",
        terminal, gnuplot_string(temporary.string()), panels.size(), plots);
  }
  const fs::path script_file = scratch.path() / "figure.gp";
  std::ofstream(script_file, std::ios::binary) << script;
  try {
    run_gnuplot(script_file, scratch.path() / "gnuplot.log");
    for (const fs::path& temporary : temporaries) {
      WEFT_CHECK(fs::file_size(temporary) > 0, "{}: gnuplot wrote nothing to \"{}\"", kWhat,
                 temporary.string());
    }
  } catch (...) {
    std::error_code ignored;
    for (const fs::path& temporary : temporaries) fs::remove(temporary, ignored);
    throw;
  }
  for (size_t i = 0; i < finals.size(); ++i) replace_file(temporaries[i], finals[i], kWhat);
  return finals;
}

std::vector<fs::path> plot_history(const History& history, const fs::path& path,
                                   const std::string& title) {
  WEFT_CHECK(history.epochs_run > 0 && !history.history.empty(),
             "plot_history: the history has no epochs (\"{}\")", path.string());
  // Each quantity beside its validation twin; loss first.
  std::vector<std::string> quantities;
  for (const auto& [name, values] : history.history) {
    const bool twin = name.starts_with("val_") && history.history.contains(name.substr(4));
    if (!twin) quantities.push_back(name);
  }
  std::stable_partition(quantities.begin(), quantities.end(),
                        [](const std::string& name) { return name == "loss"; });
  std::vector<Panel> panels;
  for (const std::string& name : quantities) {
    // A tic per epoch, or per few epochs, never between epochs.
    const auto step = static_cast<double>((history.epochs_run + 9) / 10);
    Panel& panel =
        panels.emplace_back(Panel{panels.empty() ? title : name, "epoch", name, {}, step});
    for (const std::string& key : {name, "val_" + name}) {
      const auto it = history.history.find(key);
      if (it == history.history.end()) continue;
      std::vector<double> epochs(it->second.size());
      for (size_t e = 0; e < epochs.size(); ++e) epochs[e] = static_cast<double>(e + 1);
      panel.curves.push_back({key, it->second, epochs});
    }
  }
  return save_figure(panels, path);
}

}  // namespace weft
