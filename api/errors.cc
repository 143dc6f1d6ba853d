#include "twinloop/api/errors.h"

#include <netdb.h>

#include <typeinfo>

#include "absl/strings/str_cat.h"

namespace twinloop {

namespace {
class ResolverCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};
}  // namespace

const std::error_category& resolver_category() {
  static const ResolverCategory* const kCategory = new ResolverCategory();
  return *kCategory;
}

std::exception_ptr make_system_error(int err, const std::string& what) {
  switch (err) {
    case ECONNREFUSED:
      return std::make_exception_ptr(ConnectionRefusedError(what));
    case ECONNRESET:
      return std::make_exception_ptr(ConnectionResetError(what));
    case ECONNABORTED:
      return std::make_exception_ptr(ConnectionAbortedError(what));
    case EPIPE:
    case ESHUTDOWN:
      return std::make_exception_ptr(BrokenPipeError(what));
    case ESRCH:
      return std::make_exception_ptr(ProcessLookupError(what));
    default:
      return std::make_exception_ptr(std::system_error(err, std::generic_category(), what));
  }
}

void throw_system_error(int err, const std::string& what) { std::rethrow_exception(make_system_error(err, what)); }

IncompleteReadError::IncompleteReadError(std::string partial, std::optional<size_t> expected)
    : EOFError(absl::StrCat(partial.size(), " bytes read on a total of ",
                            expected ? absl::StrCat(*expected) : std::string("None"), " expected bytes")),
      partial_(std::move(partial)),
      expected_(expected) {}

bool is_cancelled_error(const std::exception_ptr& e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string describe_exception(const std::exception_ptr& e) {
  if (!e) return "no exception";
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError& c) {
    return absl::StrCat("CancelledError(", c.what(), ")");
  } catch (const KeyboardInterrupt&) {
    return "KeyboardInterrupt()";
  } catch (const TimeoutError& t) {
    return absl::StrCat("TimeoutError(", t.what(), ")");
  } catch (const InvalidStateError& t) {
    return absl::StrCat("InvalidStateError(", t.what(), ")");
  } catch (const ExceptionGroup& g) {
    std::string s = absl::StrCat("ExceptionGroup(", g.what(), ", [");
    for (size_t i = 0; i < g.exceptions().size(); ++i) {
      if (i) s += ", ";
      s += describe_exception(g.exceptions()[i]);
    }
    return s + "])";
  } catch (const BaseException& b) {
    return absl::StrCat("BaseException(", b.what(), ")");
  } catch (const std::exception& x) {
    return absl::StrCat(typeid(x).name(), "(", x.what(), ")");
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace twinloop
