// Cluster: the processes of one data-parallel fit(), started by an MPI launcher (mpirun -np N).
// Each trains on its shard of every global batch; their gradients are summed with one allreduce
// per step over a fused buffer, as Horovod's tensor fusion does. Without a launcher, or in a
// build without MPI (WEFT_MPI), a process is a cluster of one and nothing is communicated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "weft/runtime/tensor.h"

namespace weft {

class Cluster {
 public:
  // This process's cluster: MPI's world when weft was built with MPI and an MPI launcher started
  // the process (it sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK), else this process alone.
  // Starts MPI on the first call; MPI is finalised when the process exits normally. A process
  // that dies or exits on an uncaught exception never finalises, and the launcher then stops
  // every other rank with an error instead of letting them wait.
  static Cluster& world();
  // This process alone, whatever started it: for work each rank does on its own data.
  static const Cluster& this_process();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool alone() const { return size_ == 1; }

  // Sums each element of `values` across the ranks, in place (one MPI_Allreduce).
  void sum(std::span<float> values) const;
  void sum(std::span<double> values) const;
  // Rank `root`'s bytes, on every rank.
  void broadcast(std::span<std::byte> bytes, int root = 0) const;
  // Every rank's `text`, by rank.
  std::vector<std::string> gather(const std::string& text) const;
  // Every rank's `rows` (a contiguous tensor of the same dtype and row shape on each rank, any
  // number of rows), concatenated along axis 0 in rank order.
  Tensor gather_rows(const Tensor& rows) const;
  // Throws weft::Error on every rank when some rank's `value` differs from rank 0's, naming the
  // first such rank, `what`, and both values ("fit: rank 1 differs from rank 0 in the number of
  // training samples: 96 against 128").
  void check_same(const std::string& context, const std::string& what,
                  const std::string& value) const;

 private:
  Cluster(int rank, int size) : rank_(rank), size_(size) {}
  void sum(void* values, size_t count, bool doubles) const;
  int rank_;
  int size_;
};

// The rows [first, first + rows) of a global batch of `whole_rows` that `rank` of `ranks` trains
// on: contiguous shares, in rank order, that differ by at most one row.
struct Shard {
  int64_t first;
  int64_t rows;
};
Shard shard_of(int64_t whole_rows, int rank, int ranks);

}  // namespace weft
