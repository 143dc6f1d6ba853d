// The failure path of TWINLOOP_CHECK / TWINLOOP_DCHECK (api/internal/check.h).
#include "twinloop/api/internal/check.h"

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace twinloop::internal {
namespace {

// The message being built on this thread (a failing check never returns,
// so there is at most one). Fixed size: a longer message is cut.
struct Message {
  static constexpr size_t kCapacity = 1024;
  char text[kCapacity];
  size_t size = 0;
  bool has_context = false;

  void append(std::string_view s) {
    const size_t room = kCapacity - 1 - size;  // one byte for the newline
    const size_t n = s.size() < room ? s.size() : room;
    std::memcpy(text + size, s.data(), n);
    size += n;
  }
};

thread_local Message message;

}  // namespace

CheckFailure::CheckFailure(const char* description, const char* condition, const char* file, int line) noexcept {
  message.size = 0;
  message.has_context = false;
  message.append("twinloop: invariant violated: ");
  message.append(description ? description : "(no description)");
  message.append(" (");
  message.append(condition);
  message.append(") at ");
  message.append(file);
  char number[24];
  std::snprintf(number, sizeof number, ":%d", line);
  message.append(number);
}

CheckFailure::~CheckFailure() {
  message.text[message.size++] = '\n';  // append kept room for it
  std::fwrite(message.text, 1, message.size, stderr);
  std::fflush(stderr);
  std::abort();
}

CheckFailure& CheckFailure::operator<<(std::string_view s) noexcept {
  if (!message.has_context) {
    message.has_context = true;
    message.append(": ");
  }
  message.append(s);
  return *this;
}

CheckFailure& CheckFailure::append_signed(long long v) noexcept {
  char number[24];
  std::snprintf(number, sizeof number, "%lld", v);
  return *this << std::string_view(number);
}

CheckFailure& CheckFailure::append_unsigned(unsigned long long v) noexcept {
  char number[24];
  std::snprintf(number, sizeof number, "%llu", v);
  return *this << std::string_view(number);
}

CheckFailure& CheckFailure::operator<<(double v) noexcept {
  char number[32];
  std::snprintf(number, sizeof number, "%g", v);
  return *this << std::string_view(number);
}

CheckFailure& CheckFailure::operator<<(const void* p) noexcept {
  char number[24];
  std::snprintf(number, sizeof number, "%p", p);
  return *this << std::string_view(number);
}

}  // namespace twinloop::internal
