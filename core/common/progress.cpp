// Progress reporting: a redrawn line on a TTY, periodic plain lines elsewhere.
#include "core/common/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "core/common/interrupt.h"

namespace serq {
namespace {

bool g_enabled = true;

}  // namespace

std::string format_seconds(double s) {
  // Rounded once to the unit shown last, so 539.6 s is 9m00s, never 8m60s.
  const long long seconds = std::llround(s);
  if (seconds < 60) return fmt::format("{}s", seconds);
  if (seconds < 3600) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
  const long long minutes = std::llround(s / 60);
  return fmt::format("{}h{:02}m", minutes / 60, minutes % 60);
}

Progress::Progress(std::string what, std::int64_t total, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), tty_(isatty(STDERR_FILENO) == 1) {
  start_ = last_print_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::set_enabled(bool enabled) { g_enabled = enabled; }

void Progress::advance(std::int64_t n) {
  check_interrupt();  // long work reports progress, so this is where a SIGINT/SIGTERM stops it
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  const double since_print = std::chrono::duration<double>(now - last_print_).count();
  const int decile = total_ > 0 ? static_cast<int>(10 * done_ / total_) : 0;
  if (done_ < total_ && (tty_ ? since_print > 0.2 : (decile > last_decile_ || since_print > 30))) {
    last_decile_ = decile;
    last_print_ = now;
    print(false);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  print(true);
}

void Progress::print(bool final) {
  if (!g_enabled) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0.0;
  std::string line = fmt::format("{}: {}/{} {}", what_, done_, total_, unit_);
  if (total_ > 0) line += fmt::format(" ({:.0f}%)", 100.0 * static_cast<double>(done_) / static_cast<double>(total_));
  line += rate >= 10 ? fmt::format(", {:.0f} {}/s", rate, unit_) : fmt::format(", {:.2g} {}/s", rate, unit_);
  if (final) {
    line += fmt::format(", done in {}", format_seconds(elapsed));
  } else if (rate > 0 && total_ > done_) {
    line += fmt::format(", ETA {}", format_seconds(static_cast<double>(total_ - done_) / rate));
  }
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace serq
