// Helpers of the simulated network's seam-level tests (network_test.cc,
// network_fault_test.cc): connecting, accepting, and a channel a task reads
// and writes, waiting for readiness in between, through api/net_backend.h.
#ifndef TWINLOOP_SIM_NETWORK_TEST_UTIL_H_
#define TWINLOOP_SIM_NETWORK_TEST_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"

namespace twinloop::sim::net_test {

using ChannelPtr = std::shared_ptr<StreamChannel>;

inline absl::Duration virtual_now() { return get_running_loop().time() - absl::UnixEpoch(); }
inline NetBackend& net() { return *get_running_loop().backend().net(); }

inline Coro<ChannelPtr> connect_to(SocketAddress to) {
  Future<ChannelPtr> f = get_running_loop().create_future<ChannelPtr>();
  net().connect(to, ConnectOptions{}, [f](std::unique_ptr<StreamChannel> ch, std::exception_ptr e) mutable {
    if (e) {
      f.set_exception(e);
    } else {
      f.set_result(ChannelPtr(std::move(ch)));
    }
  });
  ChannelPtr ch = co_await f;
  co_return ch;
}

class Acceptor final : public ChannelEvents {
 public:
  explicit Acceptor(std::unique_ptr<StreamListener> l) : l_(std::move(l)) { l_->set_events(this); }
  ~Acceptor() { l_->set_events(nullptr); }
  void on_readable() override {
    ready_.set();
    l_->want_accept(false);
  }
  void on_writable() override {}

  Coro<ChannelPtr> accept() {
    while (true) {
      std::unique_ptr<StreamChannel> c = l_->accept();
      if (c) co_return ChannelPtr(std::move(c));
      ready_.clear();
      l_->want_accept(true);
      co_await ready_.wait();
    }
  }
  StreamListener& listener() { return *l_; }
  uint16_t port() const { return l_->local_address().port; }

 private:
  std::unique_ptr<StreamListener> l_;
  Event ready_;
};

// A channel a task reads and writes, waiting for readiness in between.
class Stream final : public ChannelEvents {
 public:
  explicit Stream(ChannelPtr ch) : ch_(std::move(ch)) { ch_->set_events(this); }
  ~Stream() { ch_->set_events(nullptr); }
  void on_readable() override {
    ++readable_calls;
    readable_.set();
    ch_->want_read(false);
  }
  void on_writable() override {
    ++writable_calls;
    writable_.set();
    ch_->want_write(false);
  }

  // What is there now, after waiting until something is; "" at the end.
  Coro<std::string> read_some(size_t most = 1 << 20) {
    std::string buf(most, '\0');
    while (true) {
      const std::ptrdiff_t r = ch_->read(buf.data(), buf.size());
      if (r >= 0) {
        buf.resize(static_cast<size_t>(r));
        co_return buf;
      }
      readable_.clear();
      ch_->want_read(true);
      co_await readable_.wait();
    }
  }
  Coro<std::string> read_to_eof() {
    std::string all;
    while (true) {
      std::string s = co_await read_some();
      if (s.empty()) break;
      all += s;
    }
    co_return all;
  }
  Coro<void> wait_writable() {
    writable_.clear();
    ch_->want_write(true);
    co_await writable_.wait();
  }
  Coro<void> write_all(std::string data) {
    size_t off = 0;
    while (off < data.size()) {
      off += ch_->write(data.data() + off, data.size() - off);
      if (off < data.size()) co_await wait_writable();
    }
  }
  // Writes what fits now.
  size_t write(std::string_view data) { return ch_->write(data.data(), data.size()); }
  StreamChannel& channel() { return *ch_; }

  int readable_calls = 0;
  int writable_calls = 0;

 private:
  ChannelPtr ch_;
  Event readable_;
  Event writable_;
};

}  // namespace twinloop::sim::net_test

#endif  // TWINLOOP_SIM_NETWORK_TEST_UTIL_H_
