// Asset root resolution and environment-variable expansion for paths in configs.
#include "core/common/paths.h"

#include <cstdlib>

#include "core/common/error.h"

#ifndef SERQ_DEFAULT_SOURCE_DIR
#define SERQ_DEFAULT_SOURCE_DIR "."
#endif

namespace serq {

std::filesystem::path assets_root() {
  if (const char* env = std::getenv("SERQ_ASSETS"); env && *env) return env;
  const std::filesystem::path shared = std::filesystem::path(SERQ_DEFAULT_SOURCE_DIR) / ".." / "shared";
  std::error_code error;
  if (std::filesystem::is_directory(shared, error)) return shared;
  return asset_cache_dir();
}

std::filesystem::path asset_cache_dir() {
  if (const char* env = std::getenv("SERQ_CACHE"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::filesystem::path(xdg) / "serq/assets";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : ".") / ".cache/serq/assets";
}

std::string expand_env(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] != '$') {
      out += text[i++];
      continue;
    }
    std::string name;
    std::size_t next;
    if (i + 1 < text.size() && text[i + 1] == '{') {
      const std::size_t close = text.find('}', i + 2);
      SERQ_CHECK(close != std::string::npos, "unterminated '${{' in '{}': write ${{NAME}}", text);
      name = text.substr(i + 2, close - i - 2);
      next = close + 1;
    } else {
      next = i + 1;
      while (next < text.size() && (std::isalnum(static_cast<unsigned char>(text[next])) || text[next] == '_')) ++next;
      name = text.substr(i + 1, next - i - 1);
    }
    SERQ_CHECK(!name.empty(), "bad '$' in '{}': write ${{NAME}} to use an environment variable", text);
    if (const char* value = std::getenv(name.c_str()); value && *value) {
      out += value;
    } else if (name == "SERQ_ASSETS") {
      out += assets_root().string();
    } else {
      fail("environment variable {} used in '{}' is not set: export it or write the path out", name, text);
    }
    i = next;
  }
  return out;
}

}  // namespace serq
