// Durations as progress lines print them: rounded once, so a carry never shows as 60 seconds or minutes.
#include <catch2/catch.hpp>

#include "core/common/progress.h"

using namespace serq;

TEST_CASE("format_seconds rounds to the last unit shown and carries into the next") {
  CHECK(format_seconds(0.4) == "0s");
  CHECK(format_seconds(42.0) == "42s");
  CHECK(format_seconds(59.6) == "1m00s");
  CHECK(format_seconds(187.0) == "3m07s");
  CHECK(format_seconds(539.6) == "9m00s");  // printed "8m60s" before
  CHECK(format_seconds(3599.7) == "1h00m");
  CHECK(format_seconds(2 * 3600 + 15 * 60 + 10) == "2h15m");
  CHECK(format_seconds(3 * 3600 - 20) == "3h00m");
}
