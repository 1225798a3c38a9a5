// Progress with rate and ETA for long work (calibration, evaluation, sweeps), on stderr.
// On a terminal one line is redrawn in place; in logs and pipes a plain line is printed every ~10% or 30 s.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace serq {

// A duration for people: "42s", "3m07s", "2h15m".
std::string format_seconds(double seconds);

class Progress {
 public:
  Progress(std::string what, std::int64_t total, std::string unit);
  ~Progress();
  void advance(std::int64_t n);  // throws Interrupted (core/common/interrupt.h) after SIGINT/SIGTERM
  void finish();

  // Silences every Progress in this process (e.g. `serq-run --quiet`, tests).
  static void set_enabled(bool enabled);

 private:
  void print(bool final);

  std::string what_, unit_;
  std::int64_t total_, done_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
  int last_decile_ = 0;
  bool tty_, finished_ = false;
};

}  // namespace serq
