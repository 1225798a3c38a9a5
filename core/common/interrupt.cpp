// SIGINT/SIGTERM recorded in an atomic flag; see interrupt.h.
#include "core/common/interrupt.h"

#include <atomic>
#include <csignal>

namespace serq {
namespace {

std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void record_signal(int signal) {
  g_signal.store(signal);
  std::signal(signal, SIG_DFL);  // a second one ends the process
}

}  // namespace

const char* Interrupted::what() const noexcept {
  return signal_ == SIGTERM ? "interrupted by SIGTERM" : "interrupted by SIGINT";
}

void install_interrupt_handlers() {
  std::signal(SIGINT, record_signal);
  std::signal(SIGTERM, record_signal);
}

int pending_interrupt() { return g_signal.load(); }

void check_interrupt() {
  if (const int signal = g_signal.load()) throw Interrupted(signal);
}

}  // namespace serq
