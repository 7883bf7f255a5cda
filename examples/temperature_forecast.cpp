// The chapter's "Time Series Forecasting with LSTM": windows of 30 days predicting the next day
// with a stacked LSTM regressor, on the chapter's three years of synthetic daily temperatures,
// or on a real weather table.
//
//   build/examples/temperature_forecast [--epochs N] [--out PATH]
//       [--data CSV [--features A,B,...] [--target NAME]]
//
// --epochs N      train for at most N epochs instead of the chapter's 50 (for a quick run).
// --out PATH      where the forecast goes: PATH.csv (day, actual, predicted; the first 100
//                 test days), the chapter's figure PATH.png and PATH.svg, and the training
//                 curves PATH_history.png and PATH_history.svg (any extension of PATH is
//                 replaced). Default: time_series_forecast. Never written over the --data file.
// --data CSV      a table with a header line, one row per day in order, e.g.
//                 data/seattle-weather.csv from tools/fetch_data.sh (NOAA, Seattle 2012-2015).
//                 Without it the chapter's synthetic series is generated (no download).
// --features ...  the columns the model reads, each normalised on the training days
//                 (default: the target alone), e.g. temp_max,temp_min,precipitation,wind.
// --target NAME   the column predicted for the next day (default: temp_max).
// --predict WHAT  what the model learns: `level`, the next day's value itself (the chapter's
//                 formulation; the default without --data), or `change`, the next day's change
//                 from today, the forecast being today + the change (the default with --data:
//                 on real weather the level-predicting model trails persistence).
//
// The split is chronological, the first 80% of the windows train and the rest test; the test
// MAE is printed beside the persistence forecast's (tomorrow = today) on the same days.
#include <fmt/ranges.h>
#include <weft/models/files.h>
#include <weft/weft.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

using namespace weft;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSeqLength = 30;  // past 30 days predict the next

struct Args {
  int epochs = 50;
  fs::path out = "time_series_forecast";
  std::optional<fs::path> data;
  std::vector<std::string> features;
  std::string target = "temp_max";
  std::optional<bool> predict_change;  // --predict; default: change with --data, else level
};

[[noreturn]] void usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--epochs N] [--out PATH] [--data CSV [--features A,B,...] "
               "[--target NAME]] [--predict level|change]\n",
               program);
  std::exit(2);
}

std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> names;
  for (size_t start = 0;;) {
    const size_t end = list.find(',', start);
    names.emplace_back(list.substr(start, end - start));
    if (end == std::string_view::npos) return names;
    start = end + 1;
  }
}

Args parse_args(int argc, char** argv) {
  Args args;
  bool features_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) usage(argv[0]);
    const std::string_view value = argv[++i];
    if (arg == "--epochs") {
      const auto [end, error] =
          std::from_chars(value.data(), value.data() + value.size(), args.epochs);
      if (error != std::errc() || end != value.data() + value.size() || args.epochs < 1)
        usage(argv[0]);
    } else if (arg == "--out" && !value.empty()) {
      args.out = value;
    } else if (arg == "--data") {
      args.data = value;
    } else if (arg == "--features") {
      args.features = split_list(value);
      features_given = true;
    } else if (arg == "--target") {
      args.target = value;
    } else if (arg == "--predict" && (value == "level" || value == "change")) {
      args.predict_change = value == "change";
    } else {
      usage(argv[0]);
    }
  }
  if (!args.data && (features_given || args.target != "temp_max")) {
    fmt::print(stderr, "{}: --features and --target need --data\n", argv[0]);
    usage(argv[0]);
  }
  if (args.features.empty()) args.features = {args.target};
  if (!args.predict_change) args.predict_change = args.data.has_value();
  return args;
}

// A series to forecast: one row per day, normalised, and the target's scale.
struct Series {
  DoubleMatrix features;       // (days, F), normalised
  std::vector<double> target;  // normalised
  double target_mean = 0;
  double target_std = 1;
};

// numpy's mean and std (population) of values[0, count).
std::pair<double, double> mean_std(const std::vector<double>& values, size_t count) {
  double mean = 0;
  for (size_t i = 0; i < count; ++i) mean += values[i];
  mean /= static_cast<double>(count);
  double variance = 0;
  for (size_t i = 0; i < count; ++i) variance += (values[i] - mean) * (values[i] - mean);
  return {mean, std::sqrt(variance / static_cast<double>(count))};
}

std::vector<double> normalised(std::vector<double> values, double mean, double std) {
  for (double& v : values) v = (v - mean) / std;
  return values;
}

// The days the training windows see (inputs and targets) when the first 80% of the windows
// train; the statistics that normalise come from these days only.
int64_t training_days(int64_t days) {
  const int64_t windows = days - kSeqLength;
  return static_cast<int64_t>(0.8 * static_cast<double>(windows)) + kSeqLength;
}

// The chapter's synthetic series, normalised over all its days as the chapter does.
Series synthetic_series() {
  // Generate synthetic temperature data (daily temps over 3 years).
  // The chapter draws the noise with np.random.seed(42); numpy's Mersenne-Twister stream cannot
  // be reproduced here, so the noise comes from weft's own seeded generator (seed 42 too): the
  // same distribution, different draws, so the printed range differs a little from the chapter.
  constexpr int64_t kDays = 1095;  // 3 years
  Generator noise_generator(42);
  const std::vector<double> noise =
      randn({kDays}, {.dtype = DType::f64}, noise_generator).to_vector<double>();
  std::vector<double> temperature(kDays);
  for (int64_t d = 0; d < kDays; ++d) {
    const double base_temp = 25 + 10 * std::sin(2 * std::numbers::pi * d / 365);  // seasonal
    temperature[d] = base_temp + noise[d] * 2;                                    // noise
  }
  const auto [min_it, max_it] = std::minmax_element(temperature.begin(), temperature.end());
  fmt::print("Data shape: {}\n", shape_str({kDays}));
  fmt::print("Temp range: {:.1f} to {:.1f}\n", *min_it, *max_it);
  // The best any forecaster can do is to know the seasonal curve: its error is the noise's,
  // E|2 N(0, 1)| = 2 sqrt(2 / pi).
  fmt::print("Noise floor (MAE of the noise itself): {:.2f} degrees\n",
             2 * std::sqrt(2 / std::numbers::pi));

  // Normalize data (numpy's mean and std: population standard deviation).
  const auto [mean, std] = mean_std(temperature, temperature.size());
  std::vector<double> temp_normalized = normalised(temperature, mean, std);
  return {DoubleMatrix{kDays, 1, temp_normalized}, temp_normalized, mean, std};
}

// A weather table's columns, each normalised on the training days.
Series table_series(const Args& args) {
  std::vector<std::string> columns = args.features;
  if (std::find(columns.begin(), columns.end(), args.target) == columns.end())
    columns.push_back(args.target);
  const CsvTable table = read_csv(*args.data, {.columns = columns});
  const int64_t days = table.values.rows;
  WEFT_CHECK(days > kSeqLength + 1,
             "temperature_forecast: '{}' has {} days, too few for windows of {} days",
             args.data->string(), days, kSeqLength);
  const auto train_days = static_cast<size_t>(training_days(days));
  Series series{DoubleMatrix{days, static_cast<int64_t>(args.features.size()), {}}, {}, 0, 1};
  const auto training_stats = [&](const std::string& name, const std::vector<double>& values) {
    const auto [mean, std] = mean_std(values, train_days);
    WEFT_CHECK(std::isfinite(mean) && std::isfinite(std) && std > 0,
               "temperature_forecast: the column '{}' of '{}' is constant or not finite on the "
               "training days",
               name, args.data->string());
    return std::pair{mean, std};
  };
  std::vector<std::vector<double>> normalised_features;
  for (const std::string& name : args.features) {
    const std::vector<double> values = table.column(name);
    const auto [mean, std] = training_stats(name, values);
    normalised_features.push_back(normalised(values, mean, std));
  }
  const std::vector<double> target = table.column(args.target);
  std::tie(series.target_mean, series.target_std) = training_stats(args.target, target);
  series.target = normalised(target, series.target_mean, series.target_std);
  for (int64_t d = 0; d < days; ++d) {
    for (const auto& feature : normalised_features)
      series.features.values.push_back(feature[static_cast<size_t>(d)]);
  }
  fmt::print("Data: {} ({} days), features: {}, target: next day's {}\n", args.data->string(), days,
             fmt::join(args.features, ", "), args.target);
  return series;
}

fs::path with_suffix(const fs::path& base, std::string_view suffix, std::string_view extension) {
  fs::path path = base;
  path.replace_extension();
  path += suffix;
  path += extension;
  return path;
}

// Exits with status 2 when any output would land on the input file.
void refuse_to_overwrite(const Args& args, const char* program) {
  if (!args.data) return;
  for (const auto& [suffix, extension] : {std::pair{"", ".csv"},
                                          {"", ".png"},
                                          {"", ".svg"},
                                          {"_history", ".png"},
                                          {"_history", ".svg"}}) {
    const fs::path out = with_suffix(args.out, suffix, extension);
    std::error_code error;
    if (fs::equivalent(out, *args.data, error)) {
      fmt::print(stderr,
                 "{}: refusing to write '{}': it is the input file (--data); choose "
                 "another --out\n",
                 program, out.string());
      std::exit(2);
    }
  }
}

int run(const Args& args) {
  manual_seed(42);  // weight initialisation, dropout masks and shuffling
  const Series series = args.data ? table_series(args) : synthetic_series();
  const int64_t features = series.features.cols;

  // What the model learns: the next day's value, or its change from the day before.
  std::vector<double> learned = series.target;
  if (*args.predict_change) {
    for (size_t t = learned.size(); t-- > 1;) learned[t] -= learned[t - 1];
    learned[0] = 0;  // never a window's target
  }

  // Create sequences: use past 30 days to predict next day.
  const Windows windows = make_windows(series.features, learned, kSeqLength);
  const int64_t samples = windows.x.rows;

  // Reshape for LSTM: (samples, timesteps, features).
  const Tensor X = to_tensor(windows.x).reshape({samples, kSeqLength, features});
  const Tensor y = to_tensor(windows.y, DType::f32);
  fmt::print("X shape: {}\n", shape_str(X.shape()));  // (1065, 30, 1)
  fmt::print("y shape: {}\n", shape_str(y.shape()));  // (1065,)

  // Split into train/test: the first 80% of the days train, the last 20% test (no seed: no
  // shuffling, as scikit-learn's train_test_split(..., shuffle=False)).
  const auto [X_train, X_test, y_train, y_test] = train_test_split(X, y, 0.2, std::nullopt);
  const int64_t split_at = X_train.size(0);

  // Build LSTM model.
  Sequential model{
      LSTM(64).return_sequences(true).input_shape({kSeqLength, features}),
      Dropout(0.2),
      LSTM(32),
      Dropout(0.2),
      Dense(16).activation("relu"),
      Dense(1),  // Linear output for regression
  };
  model.compile(Adam(), "mse", {"mae"});
  model.summary();

  // Train.
  const History history =
      model.fit(X_train, y_train,
                {.epochs = args.epochs,
                 .batch_size = 32,
                 .validation_split = 0.15,
                 .callbacks = {EarlyStopping{
                     .monitor = "val_loss", .patience = 5, .restore_best_weights = true}},
                 .verbose = 1});

  // Evaluate. Predicting the change, the error of today + the change is the change's error, so
  // the MAE is the forecast's either way.
  const Logs scores = model.evaluate(X_test, y_test);
  const double test_mae = scores.at("mae");
  fmt::print("\nTest MAE (normalized): {:.4f}\n", test_mae);
  fmt::print("Test MAE (actual temp): {:.2f} degrees\n", test_mae * series.target_std);

  // Predict and denormalize; and the persistence forecast on the same days (tomorrow is today,
  // the window's last day).
  const std::vector<double> predictions = model.predict(X_test).to_vector<double>();
  const auto degrees = [&](double v) { return v * series.target_std + series.target_mean; };
  std::vector<double> actual, predicted;
  double persistence = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const size_t today = static_cast<size_t>(split_at) + i + kSeqLength - 1;
    const double base = *args.predict_change ? series.target[today] : 0;
    actual.push_back(degrees(series.target[today + 1]));
    predicted.push_back(degrees(base + predictions[i]));
    persistence += std::abs(degrees(series.target[today]) - actual.back());
  }
  persistence /= static_cast<double>(actual.size());
  fmt::print("Persistence MAE (tomorrow = today): {:.2f} degrees on the same {} test days\n",
             persistence, actual.size());
  const double model_mae = test_mae * series.target_std;
  fmt::print("The model is {:.2f} degrees {} than persistence\n", std::abs(persistence - model_mae),
             model_mae < persistence ? "better" : "worse");

  // The first 100 test days, as the chapter plots them; and the training curves.
  const size_t shown = std::min<size_t>(100, predictions.size());
  std::string csv = "day,actual,predicted\n";
  for (size_t i = 0; i < shown; ++i)
    csv += fmt::format("{},{:.4f},{:.4f}\n", i, actual[i], predicted[i]);
  const fs::path csv_path = with_suffix(args.out, "", ".csv");
  write_file_atomically(csv_path, csv, "temperature_forecast");
  actual.resize(shown);
  predicted.resize(shown);
  const auto figure = save_figure({{"Temperature Forecast: Actual vs Predicted",
                                    "Day",
                                    "Temperature",
                                    {{"Actual", actual}, {"Predicted", predicted}}}},
                                  args.out);
  const auto curves = plot_history(history, with_suffix(args.out, "_history", ""),
                                   "Temperature forecaster: training curves");
  fmt::print("Temperature Forecast: Actual vs Predicted ({} days) written to {}, {} and {}\n",
             shown, fs::absolute(csv_path).string(), fs::absolute(figure[0]).string(),
             fs::absolute(figure[1]).string());
  fmt::print("Training curves written to {} and {}\n", fs::absolute(curves[0]).string(),
             fs::absolute(curves[1]).string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  refuse_to_overwrite(args, argv[0]);
  try {
    return run(args);
  } catch (const Error& e) {
    fmt::print(stderr, "{}: {}\n", argv[0], e.what());
    return 1;
  }
}
