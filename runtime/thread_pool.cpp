#include "weft/runtime/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>

#include "weft/runtime/environment.h"
#include "weft/runtime/error.h"

namespace weft {
namespace {

// Depth of parallel_for bodies running on this thread; workers start at 1 for their lifetime.
thread_local int region_depth = 0;

class RegionScope {
 public:
  RegionScope() { ++region_depth; }
  ~RegionScope() { --region_depth; }
  RegionScope(const RegionScope&) = delete;
  RegionScope& operator=(const RegionScope&) = delete;
};

int default_num_threads() {
  if (const auto threads = environment_integer("WEFT_NUM_THREADS", 1, 1024))
    return static_cast<int>(*threads);
  // More threads than this only add wake-up latency for the sizes an RNN step multiplies.
  constexpr unsigned max_default = 16;
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, max_default));
}

// How long a worker out of work keeps looking for more before it sleeps: longer than the gaps
// between the products of a recurrent step (the cell's element-wise work), far shorter than the
// gaps between user calls.
constexpr std::chrono::microseconds spin_time{200};

void pause_briefly() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until `done()` or for spin_time; returns done().
template <typename Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + spin_time;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      pause_briefly();
    }
    if (std::chrono::steady_clock::now() > deadline) return done();
  }
}

}  // namespace

// One parallel_for or share call. It lives on the caller's stack; the caller takes it out of the
// queue and waits until no worker is inside run() before returning, so workers never see it dangle.
struct ThreadPool::Job {
  // [first, end) in `chunks` balanced chunks.
  Job(const std::function<void(int64_t, int64_t)>& chunk_body, int64_t first, int64_t end,
      int64_t chunks, bool of_share)
      : body(&chunk_body),
        begin(first),
        chunk_size((end - first) / chunks),
        remainder((end - first) % chunks),
        num_chunks(chunks),
        shared(of_share) {}

  const std::function<void(int64_t, int64_t)>* body;
  int64_t begin;
  int64_t chunk_size;  // the first `remainder` chunks are one longer
  int64_t remainder;
  int64_t num_chunks;
  bool shared;  // a share call's: threads waiting for their own jobs may help with it
  std::atomic<int64_t> next_chunk{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // the first exception; guarded by error_mutex
  std::mutex error_mutex;
  // Workers inside run(); raised under the pool's mutex_ while the job is queued, so once the
  // caller has taken it out, the count only falls.
  std::atomic<int> active_workers{0};

  bool exhausted() const { return next_chunk.load(std::memory_order_relaxed) >= num_chunks; }

  // Claims chunks until none are left; the caller and any number of workers run this at once.
  void run() {
    for (;;) {
      const int64_t c = next_chunk.fetch_add(1, std::memory_order_relaxed);
      if (c >= num_chunks) return;
      if (failed.load(std::memory_order_relaxed)) continue;
      const int64_t lo = begin + c * chunk_size + std::min(c, remainder);
      const int64_t hi = lo + chunk_size + (c < remainder ? 1 : 0);
      try {
        (*body)(lo, hi);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        failed.store(true, std::memory_order_relaxed);
      }
    }
  }
};

ThreadPool::ThreadPool(int num_threads) {
  WEFT_CHECK(num_threads >= 1, "ThreadPool needs at least one thread, got {}", num_threads);
  workers_.reserve(static_cast<std::size_t>(num_threads - 1));
  try {
    for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { work(); });
  } catch (...) {
    stop();  // the destructor will not run, and a joinable std::thread must not be destroyed
    throw;
  }
}

ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    ++epoch_;
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

bool ThreadPool::in_parallel_region() { return region_depth > 0; }

bool ThreadPool::help_with_a_job(bool shared_only) {
  Job* job = nullptr;
  {
    std::lock_guard lock(mutex_);
    while (!jobs_.empty() && jobs_.front()->exhausted()) jobs_.pop_front();
    const auto open = std::ranges::find_if(jobs_, [&](const Job* queued) {
      return !queued->exhausted() && (queued->shared || !shared_only);
    });
    if (open == jobs_.end()) return false;
    job = *open;
    job->active_workers.fetch_add(1, std::memory_order_relaxed);
  }
  job->run();
  // The job's last use here: its caller may return (and free it) once the count is 0.
  job->active_workers.fetch_sub(1, std::memory_order_release);
  return true;
}

void ThreadPool::work() {
  region_depth = 1;
  bool ran_chunks = false;  // since this worker last slept
  for (;;) {
    const uint64_t seen = epoch_.load(std::memory_order_acquire);
    if (help_with_a_job(false)) {
      ran_chunks = true;
      continue;
    }
    if (stopping_) return;  // and nothing left to help with
    if (spin_until([&] { return epoch_.load(std::memory_order_acquire) != seen; })) continue;
    // Done with its chunks while a call is still running: that call's thread may yet share the
    // last products of its own chunk (share), so keep looking rather than sleep.
    if (ran_chunks && running_calls_.load(std::memory_order_acquire) > 0) continue;
    ran_chunks = false;
    std::unique_lock lock(mutex_);
    ++sleepers_;
    work_ready_.wait(lock, [&] { return epoch_.load(std::memory_order_relaxed) != seen; });
    --sleepers_;
  }
}

void ThreadPool::parallel_for(int64_t begin, int64_t end, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& body) {
  WEFT_CHECK(grain >= 1, "parallel_for grain must be positive, got {}", grain);
  if (end <= begin) return;
  const int64_t length = end - begin;
  const int64_t num_chunks = std::min<int64_t>(num_threads(), (length - 1) / grain + 1);
  if (num_chunks <= 1 || in_parallel_region()) {
    RegionScope scope;
    body(begin, end);
    return;
  }
  Job job(body, begin, end, num_chunks, false);
  run(job, true);
}

void ThreadPool::share(int64_t begin, int64_t end, int64_t grain,
                       const std::function<void(int64_t, int64_t)>& body) {
  WEFT_CHECK(grain >= 1, "share grain must be positive, got {}", grain);
  if (end <= begin) return;
  Job job(body, begin, end, (end - begin - 1) / grain + 1, true);
  if (job.num_chunks <= 1 || workers_.empty()) {
    RegionScope scope;
    job.run();
    if (job.error) std::rethrow_exception(job.error);
    return;
  }
  run(job, false);
}

void ThreadPool::run(Job& job, bool wake_sleepers) {
  running_calls_.fetch_add(1, std::memory_order_release);
  const struct Returned {
    std::atomic<int>& calls;
    ~Returned() { calls.fetch_sub(1, std::memory_order_release); }
  } returned{running_calls_};
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(&job);
    ++epoch_;
  }
  // Spinning workers see the epoch; only sleeping ones need the futex. A worker counts itself
  // a sleeper under mutex_ before it waits, so this cannot miss one that is about to sleep.
  const int sleeping = wake_sleepers ? sleepers_.load() : 0;
  for (int64_t i = 1; i < job.num_chunks && i <= sleeping; ++i) work_ready_.notify_one();
  RegionScope scope;  // for this job's chunks and the others this thread helps with
  // The caller claims chunks too, so the job finishes even if every worker is busy elsewhere.
  job.run();
  {
    std::lock_guard lock(mutex_);
    if (auto it = std::find(jobs_.begin(), jobs_.end(), &job); it != jobs_.end()) jobs_.erase(it);
  }
  // The workers still in run() finish their last chunks; meanwhile this thread takes chunks of
  // share calls that are still open, spinning at first, then yielding.
  const auto idle = [&job] { return job.active_workers.load(std::memory_order_acquire) == 0; };
  while (!idle()) {
    const uint64_t seen = epoch_.load(std::memory_order_acquire);
    if (help_with_a_job(true)) continue;
    if (!spin_until([&] { return idle() || epoch_.load(std::memory_order_acquire) != seen; }))
      std::this_thread::yield();
  }
  if (job.error) std::rethrow_exception(job.error);
}

namespace {

std::unique_ptr<ThreadPool>& default_pool() {
  static std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>(default_num_threads());
  return pool;
}

}  // namespace

ThreadPool& default_thread_pool() { return *default_pool(); }

void set_num_threads(int num_threads) {
  WEFT_CHECK(num_threads >= 1, "set_num_threads: needs at least one thread, got {}", num_threads);
  WEFT_CHECK(!ThreadPool::in_parallel_region(),
             "set_num_threads: called from inside a parallel_for body");
  std::unique_ptr<ThreadPool>& pool = default_pool();
  if (pool->num_threads() == num_threads) return;
  pool = std::make_unique<ThreadPool>(num_threads);  // the old pool's workers are joined
}

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body) {
  default_thread_pool().parallel_for(begin, end, grain, body);
}

}  // namespace weft
