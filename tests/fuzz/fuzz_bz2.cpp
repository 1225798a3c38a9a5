// bzip2 text (core/data/bz2_text.h), as HellaSwag's file is stored. Seeds: the assets' hellaswag_val_full.txt.bz2
// and small real bzip2 streams made from the assets' text.
#include "core/common/error.h"
#include "core/data/bz2_text.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::filesystem::path file = serq::fuzz::input_file(data, size, "text.bz2");
  try {
    serq::read_bz2_text(file);
  } catch (const serq::Error&) {
  }
  return 0;
}
