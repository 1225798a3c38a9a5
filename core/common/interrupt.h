// Graceful stop on SIGINT/SIGTERM: the handler only records the signal; long work (anything that reports
// Progress) calls check_interrupt() and unwinds with Interrupted, so a sweep can say what it finished and what it
// skipped. A second signal of the same kind ends the process at once (the default action).
#pragma once

#include <exception>

namespace serq {

// Thrown by check_interrupt() once a signal has arrived. Not a serq::Error: code that rewraps errors with context
// must let it through untouched.
class Interrupted : public std::exception {
 public:
  explicit Interrupted(int signal) : signal_(signal) {}
  int signal() const { return signal_; }
  const char* what() const noexcept override;

 private:
  int signal_;
};

// Installs the SIGINT and SIGTERM handlers (once per process).
void install_interrupt_handlers();

// The signal received since install_interrupt_handlers(), or 0.
int pending_interrupt();

// Throws Interrupted if a signal has arrived.
void check_interrupt();

}  // namespace serq
