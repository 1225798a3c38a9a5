// The explicit list of quantization methods (no static-initializer registration).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config/run_config.h"
#include "methods/method.h"

namespace serq {

std::vector<std::string> method_names();
// The names and each method's parameters, for validating run configs.
MethodCatalog method_catalog();
// One line per method: name, description and the method parameters it reads, for --help.
std::string describe_methods();
// Throws serq::Error listing the known methods when `name` is not one of them.
std::unique_ptr<Method> make_method(std::string_view name);

}  // namespace serq
