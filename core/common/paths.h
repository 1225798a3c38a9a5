// Where assets live, and ${VAR} expansion in user-supplied paths.
#pragma once

#include <filesystem>
#include <string>

namespace serq {

// $SERQ_ASSETS if set, else ../shared beside the source checkout this binary was built from when it exists, else
// asset_cache_dir() (where tools/fetch_assets.sh puts the default model on a machine without ../shared).
std::filesystem::path assets_root();

// $SERQ_CACHE, else $XDG_CACHE_HOME/serq/assets, else ~/.cache/serq/assets (the same rule as tools/fetch_assets.sh).
std::filesystem::path asset_cache_dir();

// Expands ${NAME} and $NAME from the environment; SERQ_ASSETS falls back to assets_root().
// An unset variable is an error naming it (serq::Error), never an empty string.
std::string expand_env(const std::string& text);

}  // namespace serq
