// Data-parallel fit() (models/cluster.h): how a global batch is shared among ranks, a process
// alone, and, where weft was built with MPI, fit() under `mpirun -np 2` (tests/mpi/): two ranks
// train as one process with both their batches, ranks that disagree stop with an error naming
// the rank, and a rank that dies stops the others.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "weft/models/cluster.h"
#include "weft/weft.h"

using namespace weft;

TEST(Cluster, ShardsShareABatchInRankOrder) {
  struct Case {
    int64_t rows;
    int ranks;
    std::vector<Shard> shards;
  };
  const std::vector<Case> cases = {
      {32, 1, {{0, 32}}},       {32, 2, {{0, 16}, {16, 16}}},
      {7, 2, {{0, 3}, {3, 4}}}, {10, 4, {{0, 2}, {2, 3}, {5, 2}, {7, 3}}},
      {1, 2, {{0, 0}, {0, 1}}},  // a last batch of fewer rows than ranks
  };
  for (const Case& c : cases)
    for (int rank = 0; rank < c.ranks; ++rank) {
      const Shard shard = shard_of(c.rows, rank, c.ranks);
      EXPECT_EQ(shard.first, c.shards[rank].first) << c.rows << " rows, rank " << rank;
      EXPECT_EQ(shard.rows, c.shards[rank].rows) << c.rows << " rows, rank " << rank;
    }
}

TEST(Cluster, AProcessAloneKeepsItsOwnValues) {
  const Cluster& alone = Cluster::this_process();
  EXPECT_TRUE(alone.alone());
  EXPECT_EQ(alone.rank(), 0);
  std::vector<float> values = {1, 2};
  alone.sum(values);
  EXPECT_EQ(values, (std::vector<float>{1, 2}));
  EXPECT_EQ(alone.gather("text"), (std::vector<std::string>{"text"}));
  const Tensor rows = tensor({1, 2, 3, 4}, {2, 2});
  EXPECT_TRUE(allclose(alone.gather_rows(rows), rows, 0, 0));
  EXPECT_NO_THROW(alone.check_same("fit", "the model", "any"));
}

#ifdef WEFT_FIT_ACROSS_RANKS

namespace {

struct Finished {
  int status;  // the exit status, or -1 when killed by a signal
  std::string output;
};

Finished run(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  EXPECT_NE(pipe, nullptr) << command;
  std::string output;
  char buffer[4096];
  while (size_t read = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, read);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// Two ranks on this machine, loopback only; root may run them (CI runs as root).
std::string mpirun(const std::string& arguments, const std::string& environment = "") {
  return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 " + environment +
         " timeout 300 " WEFT_MPIEXEC
         " -np 2 --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo " +
         std::string(WEFT_FIT_ACROSS_RANKS) + " " + arguments;
}

// OUT's lines: each log key's values in epoch order, then "weight" values.
std::map<std::string, std::vector<double>> read_values(const std::filesystem::path& path) {
  std::map<std::string, std::vector<double>> values;
  std::ifstream in(path);
  std::string key;
  double value = 0;
  while (in >> key >> value) values[key].push_back(value);
  return values;
}

}  // namespace

// 2 ranks with B rows each give the loss curve, metrics, validation and final weights of one
// process with 2B rows (dropout on: a rank's rows draw the global batch's masks), compiled and on
// the eager tape; at 32 rows a rank runs its rows as two halves on its threads too.
TEST(FitAcrossRanks, TwoRanksTrainAsOneProcessWithBothBatches) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("weft_ranks_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  struct Case {
    std::string jit;
    int rows_per_rank;
  };
  for (const Case& c : std::vector<Case>{{"1", 16}, {"0", 16}, {"1", 32}}) {
    const std::string environment = "WEFT_JIT_COMPILE=" + c.jit;
    const std::string where = fmt::format("jit {}, {} rows per rank", c.jit, c.rows_per_rank);
    const std::filesystem::path one = dir / "one", two = dir / "two";
    const Finished alone = run(fmt::format("{} {} train {} {}", environment, WEFT_FIT_ACROSS_RANKS,
                                           one.string(), 2 * c.rows_per_rank));
    ASSERT_EQ(alone.status, 0) << alone.output;
    const Finished ranks =
        run(mpirun(fmt::format("train {} {}", two.string(), c.rows_per_rank), environment));
    ASSERT_EQ(ranks.status, 0) << ranks.output;
    const auto expected = read_values(one), got = read_values(two);
    for (const std::string key : {"loss", "accuracy", "val_loss", "val_accuracy", "weight"}) {
      ASSERT_EQ(got.count(key), 1) << where << ": " << key;
      ASSERT_EQ(got.at(key).size(), expected.at(key).size()) << where << ": " << key;
      for (size_t i = 0; i < expected.at(key).size(); ++i)
        EXPECT_NEAR(got.at(key)[i], expected.at(key)[i],
                    1e-5 + 1e-4 * std::abs(expected.at(key)[i]))
            << where << ": " << key << " " << i;
    }
  }
  std::filesystem::remove_all(dir);
}

// A 2-rank fit whose rank 1 is killed (kill -9) mid-epoch, then run again, resumes from the
// checkpoint rank 0 wrote and ends with the weights and validation values of an uninterrupted
// 2-rank run, bit for bit. (The resumed epoch's training loss covers only the batches after the
// resume, as in Keras.)
TEST(FitAcrossRanks, AKilledRunResumesToTheUninterruptedRunsWeights) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("weft_resume_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  const std::string whole = (dir / "whole.txt").string(), resumed = (dir / "resumed.txt").string();
  const std::string whole_backup = (dir / "whole").string(), backup = (dir / "backup").string();
  std::filesystem::create_directories(dir);
  const Finished uninterrupted = run(mpirun(fmt::format("resume {} {}", whole, whole_backup)));
  ASSERT_EQ(uninterrupted.status, 0) << uninterrupted.output;
  // Callbacks print on rank 0 only: each reduction of the learning rate is reported once.
  const auto count = [](const std::string& text, const std::string& line) {
    size_t found = 0;
    for (size_t at = text.find(line); at != std::string::npos; at = text.find(line, at + 1))
      ++found;
    return found;
  };
  size_t reductions = 0;
  for (int epoch = 1; epoch <= 3; ++epoch) {
    const size_t messages =
        count(uninterrupted.output, fmt::format("Epoch {}: ReduceLROnPlateau reducing", epoch));
    EXPECT_LE(messages, 1) << "epoch " << epoch << ":\n" << uninterrupted.output;
    reductions += messages;
  }
  EXPECT_GT(reductions, 0) << "the learning rate was never reduced";
  const Finished killed = run(mpirun(fmt::format("resume {} {} kill", resumed, backup)));
  ASSERT_NE(killed.status, 0) << killed.output;
  ASSERT_NE(killed.status, 124) << "the job hung: " << killed.output;
  ASSERT_FALSE(std::filesystem::exists(resumed)) << "the killed run finished";
  const Finished again = run(mpirun(fmt::format("resume {} {}", resumed, backup)));
  ASSERT_EQ(again.status, 0) << again.output;
  const auto expected = read_values(whole), got = read_values(resumed);
  for (const std::string key : {"val_loss", "val_accuracy", "lr", "weight"}) {
    ASSERT_EQ(got.count(key), 1) << key;
    EXPECT_EQ(got.at(key), expected.at(key)) << key;
  }
  std::filesystem::remove_all(dir);
}

TEST(FitAcrossRanks, RanksThatDisagreeStopWithAnErrorNamingTheRank) {
  const Finished finished = run(mpirun("disagree"));
  EXPECT_NE(finished.status, 0);
  EXPECT_NE(finished.output.find(
                "fit: rank 1 differs from rank 0 in the number of training samples: 48 against 72"),
            std::string::npos)
      << finished.output;
}

// OpenMPI's launcher stops the job when a rank dies; the other rank must not wait for it forever
// (`timeout` would exit 124).
TEST(FitAcrossRanks, ARankThatDiesStopsTheOthers) {
  const Finished finished = run(mpirun("die"));
  EXPECT_NE(finished.status, 0) << finished.output;
  EXPECT_NE(finished.status, 124) << "the job hung: " << finished.output;
}

#endif
