// Every method serq knows, listed by hand. Add a method: write methods/<name>.h/.cpp and add one line here.
#include "methods/registry.h"

#include <fmt/ranges.h>

#include "core/common/error.h"
#include "methods/fp.h"
#include "methods/gptq.h"
#include "methods/l2qer.h"
#include "methods/lorc.h"
#include "methods/lqer.h"
#include "methods/quarot.h"
#include "methods/rtn.h"
#include "methods/serq.h"
#include "methods/smoothquant.h"

namespace serq {
namespace {

std::vector<std::unique_ptr<Method>> all_methods() {
  std::vector<std::unique_ptr<Method>> methods;
  methods.push_back(std::make_unique<FullPrecision>());
  methods.push_back(std::make_unique<RoundToNearest>());
  methods.push_back(std::make_unique<SmoothQuant>());
  methods.push_back(std::make_unique<LowRankCompensation>());
  methods.push_back(std::make_unique<LowRankErrorReconstruction>());
  methods.push_back(std::make_unique<ActivationScaledErrorReconstruction>());
  methods.push_back(std::make_unique<QuaRot>());
  methods.push_back(std::make_unique<Gptq>());
  methods.push_back(std::make_unique<Serq>());
  return methods;
}

}  // namespace

std::vector<std::string> method_names() {
  std::vector<std::string> names;
  for (const auto& m : all_methods()) names.push_back(m->name());
  return names;
}

MethodCatalog method_catalog() {
  MethodCatalog catalog;
  for (const auto& m : all_methods()) {
    catalog.names.push_back(m->name());
    catalog.parameters[m->name()] = m->parameters();
  }
  return catalog;
}

std::string describe_methods() {
  std::string text;
  for (const auto& m : all_methods()) {
    const auto parameters = m->parameters();
    text += fmt::format("  {:<12} {}{}\n", m->name(), m->describe(),
                        parameters.empty() ? "" : fmt::format(" [{}]", fmt::join(parameters, ", ")));
  }
  return text;
}

std::unique_ptr<Method> make_method(std::string_view name) {
  for (auto& m : all_methods()) {
    if (m->name() == name) return std::move(m);
  }
  fail("quant.method: unknown method '{}'; known methods: {}", name, fmt::join(method_names(), ", "));
}

}  // namespace serq
