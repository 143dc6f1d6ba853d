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
//   OSError            -> std::system_error (errno in code())
//   ConnectionError, ConnectionRefusedError, ConnectionResetError,
//   ConnectionAbortedError, BrokenPipeError -> the classes below (system_errors)
//   ProcessLookupError -> twinloop::ProcessLookupError (a system_error, ESRCH)
//   EOFError           -> twinloop::EOFError (a std::runtime_error)
//   IncompleteReadError, LimitOverrunError -> the classes below
#ifndef TWINLOOP_API_ERRORS_H_
#define TWINLOOP_API_ERRORS_H_

#include <cerrno>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
#include <system_error>
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

// An OS error of a connection (asyncio's ConnectionError family, which are
// OSErrors carrying an errno): a std::system_error whose code() is the errno
// in std::generic_category(). make_system_error picks the class.
class ConnectionError : public std::system_error {
 public:
  ConnectionError(int err, const std::string& what) : std::system_error(err, std::generic_category(), what) {}
};
// ECONNREFUSED: nothing listens there.
class ConnectionRefusedError : public ConnectionError {
 public:
  explicit ConnectionRefusedError(const std::string& what) : ConnectionError(ECONNREFUSED, what) {}
};
// ECONNRESET: the peer reset the connection (or it was lost).
class ConnectionResetError : public ConnectionError {
 public:
  explicit ConnectionResetError(const std::string& what) : ConnectionError(ECONNRESET, what) {}
};
// ECONNABORTED.
class ConnectionAbortedError : public ConnectionError {
 public:
  explicit ConnectionAbortedError(const std::string& what) : ConnectionError(ECONNABORTED, what) {}
};
// EPIPE / ESHUTDOWN: writing to a connection whose other side is gone.
class BrokenPipeError : public ConnectionError {
 public:
  explicit BrokenPipeError(const std::string& what) : ConnectionError(EPIPE, what) {}
};

// ESRCH: no such process (asyncio's ProcessLookupError, an OSError): a
// signal sent through a subprocess transport that has closed.
class ProcessLookupError : public std::system_error {
 public:
  explicit ProcessLookupError(const std::string& what = "no such process")
      : std::system_error(ESRCH, std::generic_category(), what) {}
};

// The error for errno `err`: one of the connection errors above when `err`
// is ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE or ESHUTDOWN, else a
// plain std::system_error. `what` says what failed ("connect to
// 10.0.0.1:80"); the errno's text is appended, as std::system_error does.
std::exception_ptr make_system_error(int err, const std::string& what);
[[noreturn]] void throw_system_error(int err, const std::string& what);

// Name resolution errors (asyncio's socket.gaierror, an OSError whose errno
// is getaddrinfo's EAI_* value): a std::system_error whose code() is the
// EAI_* value (negative on glibc) in this category, named "getaddrinfo",
// with gai_strerror's message ("Name or service not known" for EAI_NONAME).
// Both loops resolve names with errors of this category.
const std::error_category& resolver_category();

// The end of a stream came first (Python's EOFError).
class EOFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// readexactly / readuntil reached the end of the stream first
// (asyncio.IncompleteReadError): `partial` holds what was read, `expected`
// the number of bytes asked for (nullopt: readuntil, which asked for a
// separator). Message as asyncio's: "18 bytes read on a total of 36
// expected bytes" ("... of None expected bytes").
class IncompleteReadError : public EOFError {
 public:
  IncompleteReadError(std::string partial, std::optional<size_t> expected);
  const std::string& partial() const { return partial_; }
  std::optional<size_t> expected() const { return expected_; }

 private:
  std::string partial_;
  std::optional<size_t> expected_;
};

// readuntil found no separator within the limit
// (asyncio.LimitOverrunError); `consumed` is how many bytes to consume to go
// past the data examined. The data stays in the reader's buffer.
class LimitOverrunError : public std::runtime_error {
 public:
  LimitOverrunError(const std::string& message, size_t consumed)
      : std::runtime_error(message), consumed_(consumed) {}
  size_t consumed() const { return consumed_; }

 private:
  size_t consumed_;
};

// True if `e` holds a CancelledError.
bool is_cancelled_error(const std::exception_ptr& e);

// A one-line description of `e`: its type and message, for reports.
std::string describe_exception(const std::exception_ptr& e);

}  // namespace twinloop

#endif  // TWINLOOP_API_ERRORS_H_
