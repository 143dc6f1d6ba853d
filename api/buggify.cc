#include "twinloop/api/buggify.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "twinloop/api/event_loop.h"

namespace twinloop {

bool buggify(std::string_view name, const char* file, int line) {
  EventLoop* loop = running_loop_or_null();
  if (!loop) return false;
  if (!name.empty()) return loop->backend().buggify(name);
  return loop->backend().buggify(absl::StrCat(file, ":", line));
}

}  // namespace twinloop
