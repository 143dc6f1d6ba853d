// The conformance suite on a loop of a third kind (docs/extending.md).
//
// A new LoopBackend (io_uring, kqueue, ...) proves itself by running every
// case the real and the simulated loop run. This file shows how: it
// registers a loop factory with register_loop (loop_fixture.h), and the
// custom_backend_test target links it with every area's cases, filtered to
// the registered loop (Backends/<Suite>.<Case>/Forwarding). The backend here
// is the smallest one that can pass: each method forwards to the real
// loop's EpollBackend. A real third backend replaces the forwarding with
// its own clock, wait, wake, executor, signals and network.
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/loop_backend.h"
#include "twinloop/real/epoll_backend.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

class ForwardingBackend final : public LoopBackend {
 public:
  void attach(EventLoop& loop) override { inner_.attach(loop); }
  int64_t time_ns() override { return inner_.time_ns(); }
  void wait(int64_t deadline_ns) override { inner_.wait(deadline_ns); }
  void wake() override { inner_.wake(); }
  void submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) override {
    inner_.submit(std::move(work), std::move(done));
  }
  uint64_t choose(std::string_view site, uint64_t n) override { return inner_.choose(site, n); }
  void watch_signal(int sig, bool on) override { inner_.watch_signal(sig, on); }
  bool signal_is_default(int sig) override { return inner_.signal_is_default(sig); }
  NetBackend* net() override { return inner_.net(); }
  ProcessBackend* processes() override { return inner_.processes(); }
  void close() override { inner_.close(); }

 private:
  real::EpollBackend inner_;
};

[[maybe_unused]] const bool kRegistered = register_loop("Forwarding", [] {
  return EventLoopRef(new EventLoop(std::make_unique<ForwardingBackend>()));
});

}  // namespace
}  // namespace twinloop::conformance
