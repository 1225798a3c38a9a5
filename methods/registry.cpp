// Every method serq knows, listed by hand. Add a method: write methods/<name>.h/.cpp and add one line here.
#include "methods/registry.h"

#include <fmt/ranges.h>

#include "core/common/error.h"
#include "methods/fp.h"
#include "methods/rtn.h"

namespace serq {
namespace {

std::vector<std::unique_ptr<Method>> all_methods() {
  std::vector<std::unique_ptr<Method>> methods;
  methods.push_back(std::make_unique<FullPrecision>());
  methods.push_back(std::make_unique<RoundToNearest>());
  return methods;
}

}  // namespace

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto& m : all_methods()) names.push_back(m->name());
  return names;
}

std::unique_ptr<Method> make_method(std::string_view name) {
  for (auto& m : all_methods()) {
    if (m->name() == name) return std::move(m);
  }
  fail("quant.method: unknown method '{}'; known methods: {}", name, fmt::join(method_names(), ", "));
}

}  // namespace serq
