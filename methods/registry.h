// The explicit list of quantization methods (no static-initializer registration).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "methods/method.h"

namespace serq {

std::vector<std::string> method_names();
// Throws serq::Error listing the known methods when `name` is not one of them.
std::unique_ptr<Method> make_method(std::string_view name);

}  // namespace serq
