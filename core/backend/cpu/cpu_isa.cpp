// SERQ_CPU_ISA (see cpu_isa.h), read once.
#include "core/backend/cpu/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "core/common/error.h"

namespace serq {

bool avx512_allowed() {
  static const bool capped = [] {
    const char* value = std::getenv("SERQ_CPU_ISA");
    const std::string isa = value ? value : "";
    SERQ_CHECK(isa.empty() || isa == "avx2" || isa == "avx512", "SERQ_CPU_ISA={}: expected avx2 or avx512 (or unset "
               "for the widest this CPU has)", isa);
    return isa == "avx2";
  }();
  return !capped && __builtin_cpu_supports("avx512f");
}

}  // namespace serq
