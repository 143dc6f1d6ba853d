// twinloop/api/errors.h: the exceptions twinloop raises, named as asyncio's.
//
// asyncio splits its exceptions in two: `CancelledError` derives from
// `BaseException` so that `except Exception:` does not swallow a cancellation.
// The C++ equivalent: `CancelledError` does NOT derive from `std::exception`,
// so `catch (const std::exception&)` lets it through, while every ordinary
// error (`TimeoutError`, `InvalidStateError`, ...) is a `std::exception`.
//
//   try {
//     co_await twinloop::sleep(absl::Seconds(1));
//   } catch (const std::exception& e) {
//     // ordinary errors only: a cancellation passes through
//   }
//
// `catch (...)` catches everything, cancellation included; code that uses it
// must rethrow (as Python code that catches `BaseException` must).
//
// Mapping to asyncio (CPython 3.14 `Lib/asyncio/exceptions.py`):
//   BaseException      -> twinloop::BaseException
//   CancelledError     -> twinloop::CancelledError (a BaseException)
//   KeyboardInterrupt  -> twinloop::KeyboardInterrupt (a BaseException)
//   TimeoutError       -> twinloop::TimeoutError (a std::runtime_error)
//   InvalidStateError  -> twinloop::InvalidStateError (a std::logic_error)
//   ExceptionGroup     -> twinloop::ExceptionGroup (a std::runtime_error)
//   RuntimeError       -> std::runtime_error
//   ValueError         -> std::invalid_argument
#ifndef TWINLOOP_API_ERRORS_H_
#define TWINLOOP_API_ERRORS_H_

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace twinloop {

// The root of exceptions that ordinary handlers must not catch.
class BaseException {
 public:
  explicit BaseException(std::string message) : message_(std::move(message)) {}
  virtual ~BaseException() = default;
  virtual const char* what() const noexcept { return message_.c_str(); }

 private:
  std::string message_;
};

// The operation was cancelled (asyncio.CancelledError). The message is the
// one given to `Task::cancel(msg)`, empty if none.
class CancelledError : public BaseException {
 public:
  explicit CancelledError(std::string message = {})
      : BaseException(std::move(message)) {}
};

// Ctrl-C interrupted a run (Python's KeyboardInterrupt, as asyncio's Runner
// raises it: runners.py _on_sigint). Runner::run, real::run and sim::run
// throw it when SIGINT cancelled the main task and the task ended cancelled
// by that request alone, or at once on a second SIGINT (api/runner.h). A
// BaseException like CancelledError, so `catch (const std::exception&)`
// does not swallow an interrupt; unlike CancelledError it does not mean
// "this task was cancelled", so cancellation handlers do not see it either.
class KeyboardInterrupt : public BaseException {
 public:
  KeyboardInterrupt() : BaseException("KeyboardInterrupt") {}
};

// A deadline passed (asyncio's TimeoutError, which is the builtin since 3.11).
class TimeoutError : public std::runtime_error {
 public:
  explicit TimeoutError(const std::string& message = "timed out")
      : std::runtime_error(message) {}
};

// The operation is not allowed in the future's state (asyncio.InvalidStateError).
class InvalidStateError : public std::logic_error {
 public:
  explicit InvalidStateError(const std::string& message)
      : std::logic_error(message) {}
};

// Several errors at once, as raised by TaskGroup (PEP 654 ExceptionGroup).
class ExceptionGroup : public std::runtime_error {
 public:
  ExceptionGroup(const std::string& message,
                 std::vector<std::exception_ptr> exceptions)
      : std::runtime_error(message), exceptions_(std::move(exceptions)) {}
  const std::vector<std::exception_ptr>& exceptions() const {
    return exceptions_;
  }

 private:
  std::vector<std::exception_ptr> exceptions_;
};

// True if `e` holds a CancelledError.
bool is_cancelled_error(const std::exception_ptr& e);

// A one-line description of `e`: its type and message, for reports.
std::string describe_exception(const std::exception_ptr& e);

}  // namespace twinloop

#endif  // TWINLOOP_API_ERRORS_H_
