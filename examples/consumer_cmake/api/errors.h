// The project's own errors, in a file whose path ("api/errors.h") twinloop's
// headers used to include: the build proves that twinloop's headers find
// their own errors.h (twinloop/api/errors.h), not this one.
#ifndef CONSUMER_API_ERRORS_H_
#define CONSUMER_API_ERRORS_H_

#include <stdexcept>

namespace consumer {

// Deliberately not twinloop's CancelledError: if twinloop's headers included
// this file, they would not compile.
struct JobError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace consumer

#endif  // CONSUMER_API_ERRORS_H_
