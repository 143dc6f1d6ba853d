#include "twinloop/api/coro.h"

namespace twinloop::internal {

std::string_view coroutine_function_name(const char* function) {
  if (!function) return "?";
  std::string_view name(function);
  // g++ appends a template's arguments ("f<int>"); clang does not.
  if (name.empty() || name.back() != '>') return name;
  int depth = 0;
  for (size_t i = name.size(); i-- > 0;) {
    if (name[i] == '>') ++depth;
    if (name[i] == '<' && --depth == 0) return name.substr(0, i);
  }
  return name;
}

}  // namespace twinloop::internal
