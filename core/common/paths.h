// Where assets live, and ${VAR} expansion in user-supplied paths.
#pragma once

#include <filesystem>
#include <string>

namespace serq {

// $SERQ_ASSETS if set, else ../shared beside the source checkout this binary was built from.
std::filesystem::path assets_root();

// Expands ${NAME} and $NAME from the environment; SERQ_ASSETS falls back to assets_root().
// An unset variable is an error naming it (serq::Error), never an empty string.
std::string expand_env(const std::string& text);

}  // namespace serq
