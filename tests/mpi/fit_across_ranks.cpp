// A fit() that tests/test_cluster.cpp runs under mpirun, and alone for comparison:
//   fit_across_ranks train OUT BATCH   trains a seeded LSTM model (dropout on, shuffled, with
//                                      validation and accuracy) with BATCH rows per rank; rank 0
//                                      writes each epoch's logs, then every weight, to OUT
//   fit_across_ranks disagree          rank 1 holds fewer samples than rank 0
//   fit_across_ranks die               rank 1 is killed (SIGKILL) at the end of epoch 1
//   fit_across_ranks resume OUT DIR [kill]
//                                      as train with 16 rows per rank, logged to DIR.csv
//                                      (CSVLogger), with ReduceLROnPlateau (verbose), backed up to
//                                      DIR after every batch (BackupAndRestore), so a rerun
//                                      resumes; with kill, rank 1 is killed at epoch 1's second
//                                      batch
// Exits 1 with weft's message on stderr when fit throws.
#include <weft/weft.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

using namespace weft;

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    const int rank = Cluster::world().rank();
    manual_seed(7);
    Sequential model{LSTM(12).dropout(0.2).input_shape({8, 3}), Dropout(0.3),
                     Dense(1).activation("sigmoid")};
    model.compile(Adam{.learning_rate = 0.01}, "binary_crossentropy", {"accuracy"});
    Generator data(3);
    int64_t samples = 96;
    if (mode == "disagree" && rank == 1) samples = 64;
    const Tensor x = randn({samples, 8, 3}, {}, data);
    const Tensor first_step = sum(slice(x, 1, 0, 1), {1, 2});
    const Tensor y = cast(greater(first_step, zeros_like(first_step)), DType::f32);
    FitOptions options{.epochs = 3, .batch_size = 16, .validation_split = 0.25, .verbose = 0};
    if (mode == "train") options.batch_size = std::stoll(argv[3]);
    int epochs_ended = 0;
    if (mode == "resume") {
      // Rank 0 alone writes the CSV file, but every rank runs every callback, so that their
      // states in the checkpoint line up on every rank.
      options.callbacks.push_back(
          CSVLogger{.filename = std::string(argv[3]) + ".csv", .append = true});
      options.callbacks.push_back(ReduceLROnPlateau{.factor = 0.5, .patience = 1, .verbose = 1});
      options.callbacks.push_back(BackupAndRestore{.backup_dir = argv[3], .save_freq = 1});
      if (argc > 4 && std::string(argv[4]) == "kill")
        options.callbacks.push_back(
            LambdaCallback{.on_epoch_end = [&](int, const Logs&) { ++epochs_ended; },
                           .on_batch_end =
                               [&](int64_t batch, const Logs&) {
                                 if (epochs_ended == 1 && batch == 1 && rank == 1)
                                   std::raise(SIGKILL);
                               }});
    }
    if (mode == "die")
      options.callbacks.push_back(LambdaCallback{.on_epoch_end = [&](int epoch, const Logs&) {
        if (epoch == 1 && rank == 1) std::raise(SIGKILL);
      }});
    const History history = model.fit(x, y, options);
    if ((mode == "train" || mode == "resume") && rank == 0) {
      std::ofstream out(argv[2]);
      out.precision(9);
      for (const auto& [key, values] : history.history)
        for (double value : values) out << key << ' ' << value << '\n';
      for (Weight* weight : model.weights())
        for (double value : weight->value.to_vector<double>()) out << "weight " << value << '\n';
    }
    return 0;
  } catch (const std::exception& error) {
    std::cerr << error.what() << '\n';
    return 1;
  }
}
