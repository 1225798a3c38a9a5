// Zero-shot task files (core/data/tasks.h): the first byte picks the task and whether bad lines stop or are
// skipped; the rest is that task's file under a scratch assets root (PIQA's labels are the real ones). Seeds: the
// first lines of each task file of the assets, behind the byte that picks its task.
#include "core/common/error.h"
#include "core/common/paths.h"
#include "core/data/tasks.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& specs = serq::task_specs();
  const serq::TaskSpec& spec = specs[data[0] % specs.size()];
  const serq::BadLinePolicy policy = data[0] & 0x80 ? serq::BadLinePolicy::skip : serq::BadLinePolicy::error;
  const std::filesystem::path root = serq::fuzz::scratch() / "assets";
  const std::filesystem::path file = serq::fuzz::input_file(data + 1, size - 1, "assets/" + spec.file);
  // PIQA's labels sit beside its items: the real file, so that the items are parsed.
  const std::filesystem::path labels = file.parent_path() / "valid-labels.lst";
  if (spec.name == "piqa" && !std::filesystem::exists(labels)) {
    std::filesystem::copy_file(serq::assets_root() / "data/tasks/piqa-official/valid-labels.lst", labels);
  }
  try {
    serq::load_task(spec.name, root, policy, 0);
  } catch (const serq::Error&) {
  }
  return 0;
}
