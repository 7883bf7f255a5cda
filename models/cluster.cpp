// Cluster over MPI (models/cluster.h), or a cluster of one in a build without MPI.
#include "weft/models/cluster.h"

#include <cstdlib>
#include <memory>

#include "weft/ops/ops.h"
#include "weft/runtime/error.h"

#ifdef WEFT_HAVE_MPI
// MPI's C API only: without these, mpi.h in C++ also declares the deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace weft {

namespace {

bool started_by_a_launcher() {
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(variable) != nullptr) return true;
  return false;
}

#ifdef WEFT_HAVE_MPI
// An MPI call's failure as weft::Error (the communicator returns errors instead of aborting).
void check_mpi(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char message[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, message, &length);
  throw Error("MPI: {} failed: {}", call, std::string(message, static_cast<size_t>(length)));
}

// Finalises MPI at a normal exit, after every other static object that may still use it.
struct MpiSession {
  MpiSession() {
    int provided = 0;
    // Only the thread that calls fit() communicates.
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    check_mpi(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN),
              "MPI_Comm_set_errhandler");
  }
  ~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
};
#endif

}  // namespace

Cluster& Cluster::world() {
#ifdef WEFT_HAVE_MPI
  static Cluster* const world = [] {
    if (!started_by_a_launcher()) return new Cluster(0, 1);
    static MpiSession session;
    int rank = 0, size = 1;
    check_mpi(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(MPI_COMM_WORLD, &size), "MPI_Comm_size");
    return new Cluster(rank, size);
  }();
#else
  static Cluster* const world = [] {
    WEFT_CHECK(!started_by_a_launcher(),
               "this weft was built without MPI, so it cannot train across the processes an MPI "
               "launcher started; install libopenmpi-dev and rebuild (CMake option WEFT_MPI)");
    return new Cluster(0, 1);
  }();
#endif
  return *world;
}

const Cluster& Cluster::this_process() {
  static const Cluster alone(0, 1);
  return alone;
}

void Cluster::sum(std::span<float> values) const { sum(values.data(), values.size(), false); }

void Cluster::sum(std::span<double> values) const { sum(values.data(), values.size(), true); }

void Cluster::sum(void* values, size_t count, bool doubles) const {
  if (alone()) return;
#ifdef WEFT_HAVE_MPI
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, values, static_cast<int>(count),
                          doubles ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
#else
  (void)values, (void)count, (void)doubles;
#endif
}

void Cluster::broadcast(std::span<std::byte> bytes, int root) const {
  if (alone()) return;
#ifdef WEFT_HAVE_MPI
  check_mpi(MPI_Bcast(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, root, MPI_COMM_WORLD),
            "MPI_Bcast");
#else
  (void)bytes, (void)root;
#endif
}

namespace {

// Every rank's `bytes`, concatenated in rank order, and where each rank's start.
std::pair<std::vector<char>, std::vector<int>> gather_bytes(const Cluster& cluster,
                                                            const char* data, int64_t size) {
  std::vector<int> counts(static_cast<size_t>(cluster.size()));
  std::vector<int> offsets(counts.size() + 1, 0);
  std::vector<char> gathered;
#ifdef WEFT_HAVE_MPI
  const int count = static_cast<int>(size);
  check_mpi(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD),
            "MPI_Allgather");
  for (size_t i = 0; i < counts.size(); ++i) offsets[i + 1] = offsets[i] + counts[i];
  gathered.resize(static_cast<size_t>(offsets.back()));
  check_mpi(MPI_Allgatherv(data, count, MPI_BYTE, gathered.data(), counts.data(), offsets.data(),
                           MPI_BYTE, MPI_COMM_WORLD),
            "MPI_Allgatherv");
#else
  gathered.assign(data, data + size);
  offsets.back() = static_cast<int>(size);
#endif
  return {std::move(gathered), std::move(offsets)};
}

}  // namespace

std::vector<std::string> Cluster::gather(const std::string& text) const {
  if (alone()) return {text};
  const auto [bytes, offsets] = gather_bytes(*this, text.data(), static_cast<int64_t>(text.size()));
  std::vector<std::string> texts;
  for (int rank = 0; rank < size_; ++rank)
    texts.emplace_back(bytes.data() + offsets[rank], bytes.data() + offsets[rank + 1]);
  return texts;
}

Tensor Cluster::gather_rows(const Tensor& rows) const {
  if (alone()) return rows;
  const Tensor contiguous = rows.is_contiguous() ? rows : rows.copy();
  const int64_t row_bytes = shape_numel(Shape(rows.shape().begin() + 1, rows.shape().end())) *
                            static_cast<int64_t>(dtype_size(rows.dtype()));
  const auto [bytes, offsets] =
      gather_bytes(*this, static_cast<const char*>(contiguous.raw_data()),
                   rows.numel() * static_cast<int64_t>(dtype_size(rows.dtype())));
  Shape shape = rows.shape();
  shape[0] = row_bytes == 0 ? 0 : static_cast<int64_t>(bytes.size()) / row_bytes;
  Tensor gathered = empty(shape, {.dtype = rows.dtype()});
  std::copy(bytes.begin(), bytes.end(), static_cast<char*>(gathered.raw_data()));
  return gathered;
}

void Cluster::check_same(const std::string& context, const std::string& what,
                         const std::string& value) const {
  if (alone()) return;
  const std::vector<std::string> values = gather(value);
  for (int rank = 1; rank < size_; ++rank)
    WEFT_CHECK(values[rank] == values[0], "{}: rank {} differs from rank 0 in {}: {} against {}",
               context, rank, what, values[rank], values[0]);
}

Shard shard_of(int64_t whole_rows, int rank, int ranks) {
  const int64_t first = whole_rows * rank / ranks;
  return {first, whole_rows * (rank + 1) / ranks - first};
}

}  // namespace weft
