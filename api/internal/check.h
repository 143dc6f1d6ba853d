// twinloop/api/internal/check.h: invariant checks for twinloop's own code.
//
//   TWINLOOP_CHECK(refs_ != 0, "a reference is released at most once");
//   TWINLOOP_DCHECK(value < n, "a drawn value is in [0, n)") << "value " << value << ", n " << n;
//
// A broken invariant of the loop (a reference released twice, a task resumed
// twice, a timer in the heap twice) corrupts a run silently: a use after
// free or a schedule that is not the program's. These checks stop the
// process at the first breach instead, with std::abort() after one line on
// standard error:
//
//   twinloop: invariant violated: <description> (<condition>) at <file>:<line>[: <context>]
//
// so that a death test can match it, a sweep's worker counts the seed as
// crashed and a sanitizer or debugger stops right there. <context> is what
// was streamed into the check (strings, integers, floating point, bool,
// pointers); it is built only when the check fails.
//
// TWINLOOP_CHECK is always on: use it where the check costs a compare.
// TWINLOOP_DCHECK is on unless NDEBUG is defined: in fastbuild and debug
// builds (`bazel test` builds fastbuild: -O0 without NDEBUG, so every test of
// the simulator and the harness runs with it) and in the sanitizer configs;
// off in --config=opt (-c opt defines NDEBUG), where the condition and the
// context are compiled (so they still type-check) but never evaluated, and
// cost nothing. Defining TWINLOOP_DCHECKS turns DCHECKs back on in an
// optimised build; it must be set for the whole build (`--config=dcheck`,
// which adds --copt=-DTWINLOOP_DCHECKS), never per target, since inline
// functions with DCHECKs must be compiled alike in every translation unit.
// docs/design.md, "Invariants", says which invariants are checked.
//
// These are for invariants of twinloop itself, never for bad input from a
// user or a file (those get an exception with a clear message).
#ifndef TWINLOOP_API_INTERNAL_CHECK_H_
#define TWINLOOP_API_INTERNAL_CHECK_H_

#include <concepts>
#include <string_view>
#include <type_traits>

#if !defined(NDEBUG) || defined(TWINLOOP_DCHECKS)
#define TWINLOOP_DCHECK_IS_ON 1
#else
#define TWINLOOP_DCHECK_IS_ON 0
#endif

namespace twinloop::internal {

// The failure of a check: collects the message and, when the failing
// statement ends, prints it and aborts. It holds no data: the message goes
// to a fixed per-thread buffer (nothing is allocated on a path that may
// follow memory corruption), so that a function with checks keeps a small
// frame without a stack protector's canary.
class CheckFailure {
 public:
  [[gnu::cold]] CheckFailure(const char* description, const char* condition, const char* file, int line) noexcept;
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  [[noreturn]] ~CheckFailure();

  CheckFailure& operator<<(std::string_view s) noexcept;
  CheckFailure& operator<<(const char* s) noexcept { return *this << std::string_view(s ? s : "(null)"); }
  CheckFailure& operator<<(char c) noexcept { return *this << std::string_view(&c, 1); }
  CheckFailure& operator<<(bool b) noexcept { return *this << std::string_view(b ? "true" : "false"); }
  template <std::integral T>
  CheckFailure& operator<<(T v) noexcept {
    if constexpr (std::is_signed_v<T>) {
      return append_signed(static_cast<long long>(v));
    } else {
      return append_unsigned(static_cast<unsigned long long>(v));
    }
  }
  CheckFailure& operator<<(double v) noexcept;
  CheckFailure& operator<<(const void* p) noexcept;

 private:
  CheckFailure& append_signed(long long v) noexcept;
  CheckFailure& append_unsigned(unsigned long long v) noexcept;
};

}  // namespace twinloop::internal

// A statement, not an expression, so that context can be streamed into it.
// `while` rather than `if`: no dangling else (`if (a) TWINLOOP_CHECK(...);
// else ...` binds as written), and the body never loops (it aborts).
#define TWINLOOP_CHECK(condition, description) \
  while (__builtin_expect(!(condition), 0))    \
  ::twinloop::internal::CheckFailure(description, #condition, __FILE__, __LINE__)

#if TWINLOOP_DCHECK_IS_ON
#define TWINLOOP_DCHECK(condition, description) TWINLOOP_CHECK(condition, description)
#else
// `false &&`: the condition and the context type-check but are never
// evaluated, and the statement compiles to nothing.
#define TWINLOOP_DCHECK(condition, description) \
  while (false && !(condition))                 \
  ::twinloop::internal::CheckFailure(description, #condition, __FILE__, __LINE__)
#endif

#endif  // TWINLOOP_API_INTERNAL_CHECK_H_
