// The CPU backend's threads: work split over `workers` threads (this one included), as the kernels run it. Each item
// is computed by one thread in a fixed order, so results do not depend on the thread count. An exception thrown by
// a worker (a serq::Error for bad input) is rethrown on the calling thread after all have joined.
#pragma once

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <vector>

namespace serq {

// The backend's thread count: `threads` when positive, else OpenBLAS's.
int cpu_workers(int threads);

// While in scope, OpenBLAS runs each call on its calling thread alone, so that the backend's own workers can each
// call it side by side without OpenBLAS's threads competing with them; its thread count is restored after.
class BlasOnCallingThread {
 public:
  BlasOnCallingThread();
  ~BlasOnCallingThread();
  BlasOnCallingThread(const BlasOnCallingThread&) = delete;
  BlasOnCallingThread& operator=(const BlasOnCallingThread&) = delete;

 private:
  int saved_threads_;
};

namespace detail {
template <class F>
void run_workers(int workers, F&& work) {
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(workers));
  auto guarded = [&](int worker) {
    try {
      work(worker);
    } catch (...) {
      errors[static_cast<std::size_t>(worker)] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int worker = 1; worker < workers; ++worker) pool.emplace_back(guarded, worker);
  guarded(0);
  for (std::thread& thread : pool) thread.join();
  for (const std::exception_ptr& error : errors)
    if (error) std::rethrow_exception(error);
}
}  // namespace detail

// f(begin, end) on contiguous slices of 0 .. count − 1, one slice a thread.
template <class F>
void parallel_slices(int count, int threads, F&& f) {
  const int workers = std::clamp(cpu_workers(threads), 1, std::max(count, 1));
  detail::run_workers(workers, [&](int worker) {
    const int begin = static_cast<int>(static_cast<long long>(count) * worker / workers);
    const int end = static_cast<int>(static_cast<long long>(count) * (worker + 1) / workers);
    if (begin < end) f(begin, end);
  });
}

// f(i, worker) for i in 0 .. count − 1, taken in order by whichever thread is free (for items of unequal cost).
template <class F>
void parallel_items(int count, int threads, F&& f) {
  const int workers = std::clamp(cpu_workers(threads), 1, std::max(count, 1));
  std::atomic<int> next{0};
  detail::run_workers(workers, [&](int worker) {
    for (int i = next++; i < count; i = next++) f(i, worker);
  });
}

}  // namespace serq
