// ThreadPool: a few persistent workers that run chunks of an index range for parallel_for.
// A worker that runs out of work spins for a short while before it sleeps, and the caller waits
// for the last chunk by spinning too: a recurrent step hands the pool a small product every few
// microseconds, and a futex wake and wait per product cost as much as the product itself.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace weft {

class ThreadPool {
 public:
  // `num_threads` counts the thread that calls parallel_for, so the pool starts num_threads - 1
  // workers; a pool of 1 runs everything on the caller.
  explicit ThreadPool(int num_threads);
  // Joins the workers; parallel_for calls must have returned.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(lo, hi) over disjoint chunks that cover [begin, end), each at least `grain` long
  // (except when the whole range is shorter), on the workers and the calling thread, and returns
  // when every chunk has finished. Rethrows the first exception a chunk threw; chunks not yet
  // started when that happens are skipped. Runs body(begin, end) inline when the range is at
  // most one grain or when called from inside a body, so nesting never deadlocks.
  void parallel_for(int64_t begin, int64_t end, int64_t grain,
                    const std::function<void(int64_t, int64_t)>& body);

  // Calls body(lo, hi) over ceil((end - begin) / grain) balanced chunks that cover [begin, end),
  // on the calling thread and on whichever of the pool's threads are idle meanwhile: a worker
  // out of work, or a thread waiting for the last chunks of its own parallel_for or share call.
  // Unlike parallel_for it wakes no sleeping worker, and it shares from inside a parallel_for
  // body too: when the two halves of a batch run on a thread each, the half that finishes first
  // takes chunks of the other's last products (one core of a VM often runs slower than the
  // other for a while). The chunks depend on the arguments alone, not on which threads run
  // them. Rethrows the first exception a chunk threw, as parallel_for does.
  void share(int64_t begin, int64_t end, int64_t grain,
             const std::function<void(int64_t, int64_t)>& body);

  // True while this thread runs a parallel_for or share body (of any pool): a nested
  // parallel_for then runs inline, and callers can pick a serial algorithm up front.
  static bool in_parallel_region();

 private:
  struct Job;
  void work();
  // Joins the first queued job with chunks left (of share calls only, if `shared_only`) and runs
  // its chunks until none are left; false when there was none.
  bool help_with_a_job(bool shared_only);
  // Queues `job`, runs its chunks on this thread too, and returns once every chunk has finished,
  // helping with other share calls' chunks while the last ones run elsewhere.
  void run(Job& job, bool wake_sleepers);
  void stop();  // lets the workers finish queued work, then joins them

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::deque<Job*> jobs_;  // jobs that may still have unclaimed chunks; guarded by mutex_
  // Counts the jobs queued and the stop, so a spinning worker sees either without the mutex.
  // Changed under mutex_.
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> stopping_{false};  // changed under mutex_
  std::atomic<int> sleepers_{0};       // workers waiting on work_ready_; changed under mutex_
  std::atomic<int> running_calls_{0};  // parallel_for and share calls that have not returned
  std::vector<std::thread> workers_;
};

// The process-wide pool: WEFT_NUM_THREADS threads if set, else the hardware's, at most 16, until
// set_num_threads.
ThreadPool& default_thread_pool();

// Replaces the process-wide pool with one of `num_threads` threads (as torch.set_num_threads).
// Call it between steps, while no other thread uses the pool. Throws weft::Error for fewer
// than one thread, or from inside a parallel_for body.
void set_num_threads(int num_threads);

// default_thread_pool().parallel_for(...).
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace weft
