#include "twinloop/api/transports.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"

namespace twinloop {
namespace internal {
namespace {

// asyncio's selector transports read at most this much per notification
// (selector_events._SelectorSocketTransport.max_size).
constexpr size_t kMaxRead = 256 * 1024;
// asyncio's FlowControlMixin default: high 64 KiB, low high / 4.
constexpr size_t kDefaultHighWater = 64 * 1024;
// asyncio logs writes after the connection was lost from this count on
// (constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES).
constexpr int kLogThresholdForLostWrites = 5;
// After accept() runs out of descriptors or memory, the server stops
// accepting for this long (constants.ACCEPT_RETRY_DELAY).
constexpr absl::Duration kAcceptRetryDelay = absl::Seconds(1);

// A Protocol's data arrives in this per-thread buffer and is valid during
// data_received only, so one buffer serves every transport of the thread.
char* read_scratch() {
  static thread_local std::unique_ptr<char[]> buf(new char[kMaxRead]);
  return buf.get();
}

bool is_system_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

class ServerState;

// asyncio's _SelectorSocketTransport over a StreamChannel.
class StreamTransport final : public Transport, public ChannelEvents, public std::enable_shared_from_this<StreamTransport> {
 public:
  StreamTransport(EventLoop& loop, std::unique_ptr<StreamChannel> channel, std::shared_ptr<BaseProtocol> protocol,
                  ServerState* server);
  ~StreamTransport() override;

  // Called once, right after construction (needs shared_from_this).
  void start(Future<void> connected);

  std::any get_extra_info(std::string_view name) const override;
  bool is_closing() const override { return closing_; }
  void close() override;
  void set_protocol(std::shared_ptr<BaseProtocol> protocol) override;
  std::shared_ptr<BaseProtocol> get_protocol() const override { return protocol_; }

  bool is_reading() const override { return !closing_ && !paused_; }
  void pause_reading() override;
  void resume_reading() override;

  void set_write_buffer_limits(std::optional<size_t> high, std::optional<size_t> low) override;
  std::pair<size_t, size_t> get_write_buffer_limits() const override { return {low_water_, high_water_}; }
  size_t get_write_buffer_size() const override { return buffer_.size() - sent_; }
  void write(std::string_view data) override;
  void write_eof() override;
  bool can_write_eof() const override { return true; }
  void abort() override { force_close(nullptr, /*reset=*/false); }
  void reset() override { force_close(nullptr, /*reset=*/true); }

  // ChannelEvents
  void on_readable() override;
  void on_writable() override;

  // The loop or the server goes away: close the channel without callbacks.
  void drop_now();

 private:
  void read_ready_buffered(BufferedProtocol& p);
  void read_ready_data(Protocol& p);
  void on_eof();
  void fatal_error(std::exception_ptr error, const char* message);
  void force_close(std::exception_ptr error, bool reset);
  void call_connection_lost(std::exception_ptr error);
  void maybe_pause_protocol();
  void maybe_resume_protocol();
  bool buffer_empty() const { return sent_ == buffer_.size(); }
  void clear_buffer() {
    buffer_.clear();
    sent_ = 0;
  }
  void want_read(bool on) {
    if (channel_) channel_->want_read(on);
  }
  void want_write(bool on) {
    if (channel_) channel_->want_write(on);
  }

  Ref<EventLoop> loop_;
  std::unique_ptr<StreamChannel> channel_;
  std::shared_ptr<BaseProtocol> protocol_;
  // protocol_ as what it is (one of the two is set).
  Protocol* data_protocol_ = nullptr;
  BufferedProtocol* buffered_protocol_ = nullptr;
  Ref<ServerState> server_;
  // Keeps this transport alive while its channel may notify it, until
  // connection_lost has run (asyncio: the selector's callbacks hold it).
  std::shared_ptr<StreamTransport> self_;

  // Pending bytes: buffer_[sent_..] (sent bytes are dropped when the buffer
  // empties, or compacted once more than half of it is sent).
  std::string buffer_;
  size_t sent_ = 0;
  size_t high_water_ = kDefaultHighWater;
  size_t low_water_ = kDefaultHighWater / 4;

  int conn_lost_ = 0;
  bool closing_ = false;
  bool eof_ = false;
  bool paused_ = false;
  bool protocol_paused_ = false;
  bool protocol_connected_ = false;
  bool reset_on_close_ = false;
};

class ServerState final : public RefCounted {
 public:
  ServerState(EventLoop& loop, AnyProtocolFactory factory, ServerOptions options)
      : loop_(&loop), factory_(std::move(factory)), options_(options) {}
  ~ServerState() override;

  // A listener's events, forwarded to the server.
  class ListenerEvents final : public ChannelEvents {
   public:
    ListenerEvents(ServerState* server, size_t index) : server_(server), index_(index) {}
    void on_readable() override { server_->accept_ready(index_); }
    void on_writable() override {}

   private:
    ServerState* server_;
    size_t index_;
  };

  void add_listener(std::unique_ptr<StreamListener> listener);
  void start_serving();
  void stop_serving();
  void accept_ready(size_t index);
  void attach(StreamTransport* t);
  void detach(StreamTransport* t);
  void close();
  void wakeup();

  EventLoop& loop() const { return *loop_; }

  Ref<EventLoop> loop_;
  AnyProtocolFactory factory_;
  ServerOptions options_;
  std::vector<std::unique_ptr<StreamListener>> listeners_;
  std::vector<std::unique_ptr<ListenerEvents>> listener_events_;
  bool closed_ = false;  // asyncio: self._sockets is None
  bool serving_ = false;
  // Accepted connections not yet lost, in accept order.
  std::vector<StreamTransport*> clients_;
  // asyncio's _waiters; nullopt once woken (wait_closed returns at once).
  std::optional<std::vector<Future<void>>> waiters_ = std::vector<Future<void>>();
  std::optional<Future<void>> serving_forever_;
  TimerHandle accept_retry_;
  // Keeps the server alive while it listens (asyncio: the loop's selector
  // holds its accept callbacks).
  Ref<ServerState> self_;
};

// ---------------------------------------------------------------- StreamTransport

StreamTransport::StreamTransport(EventLoop& loop, std::unique_ptr<StreamChannel> channel,
                                 std::shared_ptr<BaseProtocol> protocol, ServerState* server)
    : loop_(&loop), channel_(std::move(channel)), server_(server) {
  set_protocol(std::move(protocol));
  if (server_) server_->attach(this);
}

StreamTransport::~StreamTransport() {
  if (channel_) channel_->close(reset_on_close_);
}

void StreamTransport::start(Future<void> connected) {
  self_ = shared_from_this();
  channel_->set_events(this);
  // asyncio's order: connection_made, then reading starts, then the waiter.
  std::shared_ptr<StreamTransport> self = self_;
  loop_->call_soon([self] {
    if (self->protocol_) self->protocol_->connection_made(self);
  });
  loop_->call_soon([self] {
    if (self->is_reading()) self->want_read(true);
  });
  if (connected) {
    loop_->call_soon([connected]() mutable {
      if (!connected.done()) connected.set_result();
    });
  }
}

std::any StreamTransport::get_extra_info(std::string_view name) const {
  if (!channel_) return {};
  if (name == "peername") return channel_->peer_address();
  if (name == "sockname") return channel_->local_address();
  if (name == "socket") return channel_->fileno();
  return {};
}

void StreamTransport::set_protocol(std::shared_ptr<BaseProtocol> protocol) {
  protocol_ = std::move(protocol);
  buffered_protocol_ = dynamic_cast<BufferedProtocol*>(protocol_.get());
  data_protocol_ = buffered_protocol_ ? nullptr : dynamic_cast<Protocol*>(protocol_.get());
  protocol_connected_ = protocol_ != nullptr;
}

void StreamTransport::pause_reading() {
  if (!is_reading()) return;
  paused_ = true;
  want_read(false);
}

void StreamTransport::resume_reading() {
  if (closing_ || !paused_) return;
  paused_ = false;
  want_read(true);
}

void StreamTransport::set_write_buffer_limits(std::optional<size_t> high, std::optional<size_t> low) {
  const size_t h = high ? *high : low ? 4 * *low : kDefaultHighWater;
  const size_t l = low ? *low : h / 4;
  if (!(h >= l)) {
    throw std::invalid_argument(absl::StrCat("high (", h, ") must be >= low (", l, ") must be >= 0"));
  }
  high_water_ = h;
  low_water_ = l;
  maybe_pause_protocol();
}

void StreamTransport::maybe_pause_protocol() {
  if (get_write_buffer_size() <= high_water_ || protocol_paused_ || !protocol_) return;
  protocol_paused_ = true;
  try {
    protocol_->pause_writing();
  } catch (...) {
    ExceptionContext c = ExceptionContext::of("protocol.pause_writing() failed", std::current_exception());
    loop_->call_exception_handler(c);
  }
}

void StreamTransport::maybe_resume_protocol() {
  if (!protocol_paused_ || get_write_buffer_size() > low_water_ || !protocol_) return;
  protocol_paused_ = false;
  try {
    protocol_->resume_writing();
  } catch (...) {
    ExceptionContext c = ExceptionContext::of("protocol.resume_writing() failed", std::current_exception());
    loop_->call_exception_handler(c);
  }
}

void StreamTransport::write(std::string_view data) {
  if (eof_) throw std::runtime_error("Cannot call write() after write_eof()");
  if (data.empty()) return;
  if (conn_lost_) {
    if (conn_lost_ >= kLogThresholdForLostWrites) loop_->log("socket.send() raised exception.");
    ++conn_lost_;
    return;
  }
  if (buffer_empty()) {
    // Try to send now (asyncio's optimisation): most writes go out whole.
    size_t n = 0;
    try {
      n = channel_->write(data.data(), data.size());
    } catch (...) {
      fatal_error(std::current_exception(), "Fatal write error on socket transport");
      return;
    }
    data.remove_prefix(n);
    if (data.empty()) return;
    clear_buffer();
    want_write(true);
  }
  buffer_.append(data);
  maybe_pause_protocol();
}

void StreamTransport::on_writable() {
  if (conn_lost_ || buffer_empty()) return;
  size_t n = 0;
  try {
    n = channel_->write(buffer_.data() + sent_, buffer_.size() - sent_);
  } catch (...) {
    want_write(false);
    clear_buffer();
    fatal_error(std::current_exception(), "Fatal write error on socket transport");
    return;
  }
  sent_ += n;
  if (sent_ > buffer_.size() / 2 && sent_ > 4096 && !buffer_empty()) {
    buffer_.erase(0, sent_);
    sent_ = 0;
  }
  maybe_resume_protocol();  // may append to the buffer
  if (buffer_empty()) {
    clear_buffer();
    want_write(false);
    if (closing_) {
      call_connection_lost(nullptr);
    } else if (eof_) {
      channel_->shutdown_write();
    }
  }
}

void StreamTransport::write_eof() {
  if (closing_ || eof_) return;
  eof_ = true;
  if (buffer_empty()) channel_->shutdown_write();
}

void StreamTransport::on_readable() {
  if (conn_lost_ || !is_reading()) return;
  // Keep this transport alive through protocol callbacks that drop it.
  std::shared_ptr<StreamTransport> keep = self_;
  if (buffered_protocol_) {
    read_ready_buffered(*buffered_protocol_);
  } else if (data_protocol_) {
    read_ready_data(*data_protocol_);
  }
}

void StreamTransport::read_ready_data(Protocol& p) {
  char* buf = read_scratch();
  std::ptrdiff_t n = 0;
  try {
    n = channel_->read(buf, kMaxRead);
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal read error on socket transport");
    return;
  }
  if (n == StreamChannel::kWouldBlock) return;
  if (n == 0) {
    on_eof();
    return;
  }
  try {
    p.data_received(std::string_view(buf, static_cast<size_t>(n)));
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.data_received() call failed.");
  }
}

void StreamTransport::read_ready_buffered(BufferedProtocol& p) {
  std::span<char> buf;
  try {
    buf = p.get_buffer(0);
    if (buf.empty()) throw std::runtime_error("get_buffer() returned an empty buffer");
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.get_buffer() call failed.");
    return;
  }
  std::ptrdiff_t n = 0;
  try {
    n = channel_->read(buf.data(), buf.size());
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal read error on socket transport");
    return;
  }
  if (n == StreamChannel::kWouldBlock) return;
  if (n == 0) {
    on_eof();
    return;
  }
  try {
    p.buffer_updated(static_cast<size_t>(n));
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.buffer_updated() call failed.");
  }
}

void StreamTransport::on_eof() {
  bool keep_open = false;
  try {
    keep_open = buffered_protocol_ ? buffered_protocol_->eof_received() : data_protocol_->eof_received();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error: protocol.eof_received() call failed.");
    return;
  }
  if (keep_open) {
    // Open for writing; nothing more can be read.
    want_read(false);
  } else {
    close();
  }
}

void StreamTransport::fatal_error(std::exception_ptr error, const char* message) {
  // Connection errors (OSErrors in asyncio) are normal events on a network:
  // only debug mode mentions them. Anything else is a bug worth reporting.
  if (is_system_error(error)) {
    if (loop_->get_debug()) loop_->log(absl::StrCat("transport: ", message, ": ", describe_exception(error)));
  } else {
    ExceptionContext c = ExceptionContext::of(message, error);
    loop_->call_exception_handler(c);
  }
  force_close(error, /*reset=*/false);
}

void StreamTransport::close() {
  if (closing_) return;
  closing_ = true;
  want_read(false);
  if (buffer_empty()) {
    ++conn_lost_;
    want_write(false);
    std::shared_ptr<StreamTransport> self = self_;
    loop_->call_soon([self] { self->call_connection_lost(nullptr); });
  }
}

void StreamTransport::force_close(std::exception_ptr error, bool reset) {
  if (reset) reset_on_close_ = true;
  if (conn_lost_) return;
  if (!buffer_empty()) {
    clear_buffer();
    want_write(false);
  }
  if (!closing_) {
    closing_ = true;
    want_read(false);
  }
  ++conn_lost_;
  std::shared_ptr<StreamTransport> self = self_;
  loop_->call_soon([self, error] { self->call_connection_lost(error); });
}

void StreamTransport::call_connection_lost(std::exception_ptr error) {
  if (!self_) return;  // already done
  std::shared_ptr<StreamTransport> keep = std::move(self_);
  struct Finally {
    StreamTransport* t;
    ~Finally() {
      if (t->channel_) {
        t->channel_->close(t->reset_on_close_);
        t->channel_.reset();
      }
      t->protocol_.reset();
      t->data_protocol_ = nullptr;
      t->buffered_protocol_ = nullptr;
      if (Ref<ServerState> server = std::move(t->server_)) server->detach(t);
    }
  } finally{this};
  if (protocol_connected_ && protocol_) protocol_->connection_lost(error);
}

void StreamTransport::drop_now() {
  if (channel_) {
    channel_->close(/*abort=*/true);
    channel_.reset();
  }
  closing_ = true;
  ++conn_lost_;
  protocol_.reset();
  data_protocol_ = nullptr;
  buffered_protocol_ = nullptr;
  server_.reset();
  self_.reset();
}

// ---------------------------------------------------------------- ServerState

ServerState::~ServerState() {
  for (auto& l : listeners_) l->close();
}

void ServerState::add_listener(std::unique_ptr<StreamListener> listener) {
  listener_events_.push_back(std::make_unique<ListenerEvents>(this, listeners_.size()));
  listener->set_events(listener_events_.back().get());
  listeners_.push_back(std::move(listener));
}

void ServerState::start_serving() {
  if (serving_ || closed_) return;
  serving_ = true;
  self_ = Ref<ServerState>(this);
  for (auto& l : listeners_) l->want_accept(true);
}

void ServerState::stop_serving() {
  for (auto& l : listeners_) l->want_accept(false);
}

void ServerState::accept_ready(size_t index) {
  if (closed_ || !serving_) return;
  Ref<ServerState> keep(this);
  StreamListener& listener = *listeners_[index];
  // As asyncio's _accept_connection: up to `backlog` connections per
  // notification.
  for (int i = 0; i < std::max(1, options_.backlog); ++i) {
    std::unique_ptr<StreamChannel> channel;
    try {
      channel = listener.accept();
    } catch (const std::system_error& e) {
      const int err = e.code().value();
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // Out of descriptors or memory: stop accepting for a while instead
        // of spinning on a listener that stays readable.
        ExceptionContext c = ExceptionContext::of("socket.accept() out of system resource", std::current_exception());
        loop_->call_exception_handler(c);
        stop_serving();
        accept_retry_.cancel();
        accept_retry_ = loop_->call_later(kAcceptRetryDelay, [this, keep] {
          if (serving_ && !closed_) {
            for (auto& l : listeners_) l->want_accept(true);
          }
        });
        return;
      }
      if (err == ECONNABORTED || err == EAGAIN) return;
      throw;
    }
    if (!channel) return;
    std::shared_ptr<BaseProtocol> protocol;
    try {
      protocol = factory_();
      if (!protocol) throw std::runtime_error("the protocol factory returned no protocol");
    } catch (...) {
      // asyncio reports it in debug mode only, and closes the connection.
      if (loop_->get_debug()) {
        loop_->call_exception_handler(ExceptionContext::of("Error on transport creation for incoming connection",
                                                           std::current_exception()));
      }
      channel->close(/*abort=*/false);
      continue;
    }
    make_stream_transport(*loop_, std::move(channel), std::move(protocol), this, Future<void>());
  }
}

void ServerState::attach(StreamTransport* t) { clients_.push_back(t); }

void ServerState::detach(StreamTransport* t) {
  clients_.erase(std::remove(clients_.begin(), clients_.end(), t), clients_.end());
  if (clients_.empty() && closed_) wakeup();
}

void ServerState::wakeup() {
  if (!waiters_) return;
  std::vector<Future<void>> waiters = std::move(*waiters_);
  waiters_.reset();
  for (Future<void>& w : waiters) {
    if (!w.done()) w.set_result();
  }
}

void ServerState::close() {
  if (closed_) return;
  closed_ = true;
  accept_retry_.cancel();
  for (auto& l : listeners_) l->close();
  serving_ = false;
  if (serving_forever_ && !serving_forever_->done()) serving_forever_->cancel();
  if (clients_.empty()) wakeup();
  Ref<ServerState> keep = std::move(self_);
}

}  // namespace internal

// ---------------------------------------------------------------- Server

Server::Server() = default;
Server::Server(internal::Ref<internal::ServerState> state) : state_(std::move(state)) {}
Server::~Server() = default;
Server::Server(const Server&) = default;
Server& Server::operator=(const Server&) = default;
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;

EventLoop& Server::get_loop() const { return state_->loop(); }
bool Server::is_serving() const { return state_->serving_; }

namespace internal {
namespace {

// The Server's coroutines are free functions holding the server's state from
// their creation: they stay valid when the Server handle they came from is
// gone before they are awaited.
Coro<void> server_start_serving(Ref<ServerState> s) {
  s->start_serving();
  co_await sleep(absl::ZeroDuration());
}

Coro<void> server_wait_closed(Ref<ServerState> s) {
  if (!s->waiters_) co_return;
  Future<void> waiter = s->loop().create_future<void>();
  s->waiters_->push_back(waiter);
  co_await waiter;
}

Coro<void> server_serve_forever(Ref<ServerState> s) {
  if (s->serving_forever_) throw std::runtime_error("server is already being awaited on serve_forever()");
  if (s->closed_) throw std::runtime_error("server is closed");
  s->start_serving();
  s->serving_forever_ = s->loop().create_future<void>();
  Future<void> forever = *s->serving_forever_;
  bool cancelled = false;
  std::exception_ptr error;
  try {
    co_await forever;
  } catch (const CancelledError&) {
    cancelled = true;
    error = std::current_exception();
  } catch (...) {
    error = std::current_exception();
  }
  if (cancelled) {
    // asyncio: close and wait for the server to close, then re-raise.
    s->close();
    Coro<void> closing = server_wait_closed(s);
    try {
      co_await std::move(closing);
    } catch (...) {
      s->serving_forever_.reset();
      throw;
    }
  }
  s->serving_forever_.reset();
  if (error) std::rethrow_exception(error);
}

}  // namespace
}  // namespace internal

Coro<void> Server::start_serving() { return internal::server_start_serving(state_); }
Coro<void> Server::serve_forever() { return internal::server_serve_forever(state_); }
Coro<void> Server::wait_closed() { return internal::server_wait_closed(state_); }

void Server::close() { state_->close(); }

void Server::close_clients() {
  std::vector<internal::StreamTransport*> clients = state_->clients_;
  for (internal::StreamTransport* t : clients) t->close();
}

void Server::abort_clients() {
  std::vector<internal::StreamTransport*> clients = state_->clients_;
  for (internal::StreamTransport* t : clients) t->abort();
}

std::vector<SocketAddress> Server::sockets() const {
  std::vector<SocketAddress> out;
  if (state_->closed_) return out;
  for (const auto& l : state_->listeners_) out.push_back(l->local_address());
  return out;
}

size_t Server::active_connections() const { return state_->clients_.size(); }

// ---------------------------------------------------------------- creating

namespace internal {

NetBackend& net_of(EventLoop& loop) {
  NetBackend* net = loop.backend().net();
  if (!net) throw std::runtime_error("networking is not supported by this event loop");
  return *net;
}

std::shared_ptr<Transport> make_stream_transport(EventLoop& loop, std::unique_ptr<StreamChannel> channel,
                                                 std::shared_ptr<BaseProtocol> protocol, ServerState* server,
                                                 Future<void> connected) {
  auto t = std::make_shared<StreamTransport>(loop, std::move(channel), std::move(protocol), server);
  t->start(std::move(connected));
  return t;
}

namespace {

// One connection attempt; a connection that arrives after the waiting task
// was cancelled is closed.
Coro<std::unique_ptr<StreamChannel>> connect_one(EventLoop& loop, SocketAddress address, ConnectOptions options) {
  struct Result {
    std::unique_ptr<StreamChannel> channel;
    std::exception_ptr error;
  };
  auto result = std::make_shared<Result>();
  Future<void> done = loop.create_future<void>();
  net_of(loop).connect(address, options,
                       [result, done](std::unique_ptr<StreamChannel> channel, std::exception_ptr error) mutable {
                         if (done.done()) {
                           if (channel) channel->close(/*abort=*/false);
                           return;
                         }
                         result->channel = std::move(channel);
                         result->error = std::move(error);
                         done.set_result();
                       });
  co_await done;
  if (result->error) std::rethrow_exception(result->error);
  co_return std::move(result->channel);
}

std::string error_text(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

}  // namespace

Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> create_connection_any(
    AnyProtocolFactory protocol_factory, std::optional<SocketAddress> remote, std::string host, uint16_t port,
    ConnectOptions options) {
  EventLoop& loop = get_running_loop();
  std::vector<SocketAddress> addresses;
  if (remote) {
    addresses.push_back(*remote);
  } else {
    addresses = co_await getaddrinfo(host, port);
  }
  // asyncio's create_connection: each address in turn; one error is raised
  // as it is, several as "Multiple exceptions: ..." unless they all say the
  // same thing.
  std::vector<std::exception_ptr> errors;
  std::unique_ptr<StreamChannel> channel;
  for (const SocketAddress& a : addresses) {
    std::exception_ptr error;
    try {
      channel = co_await connect_one(loop, a, options);
    } catch (const std::system_error&) {
      error = std::current_exception();
    }
    if (channel) break;
    errors.push_back(error);
  }
  if (!channel) {
    if (errors.empty()) throw std::system_error(EHOSTUNREACH, std::generic_category(), "no address to connect to");
    bool same = true;
    for (const auto& e : errors) same = same && error_text(e) == error_text(errors[0]);
    if (errors.size() == 1 || same) std::rethrow_exception(errors[0]);
    std::vector<std::string> texts;
    for (const auto& e : errors) texts.push_back(error_text(e));
    throw std::system_error(EHOSTUNREACH, std::generic_category(),
                            absl::StrCat("Multiple exceptions: ", absl::StrJoin(texts, ", ")));
  }
  std::shared_ptr<BaseProtocol> protocol = protocol_factory();
  if (!protocol) {
    channel->close(/*abort=*/false);
    throw std::runtime_error("the protocol factory returned no protocol");
  }
  Future<void> connected = loop.create_future<void>();
  std::shared_ptr<Transport> transport = make_stream_transport(loop, std::move(channel), protocol, nullptr, connected);
  bool failed = false;
  try {
    co_await connected;
  } catch (...) {
    failed = true;
  }
  if (failed) {
    transport->close();
    co_await connected;  // rethrows (CancelledError)
  }
  co_return std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>(std::move(transport),
                                                                                 std::move(protocol));
}

Coro<Server> create_server_any(AnyProtocolFactory protocol_factory, std::vector<SocketAddress> local, std::string host,
                               uint16_t port, ServerOptions options) {
  EventLoop& loop = get_running_loop();
  if (local.empty()) {
    // asyncio binds host=None to every interface; twinloop's "" means every
    // IPv4 interface (one listener, so that port 0 names one port).
    // Named first: g++ 12 destroys a string temporary built inside a
    // co_await twice (docs/design.md, "Compilers").
    std::string bind_host = host.empty() ? std::string("0.0.0.0") : host;
    local = co_await getaddrinfo(std::move(bind_host), port);
  }
  Ref<ServerState> state = make_ref<ServerState>(loop, std::move(protocol_factory), options);
  ListenOptions lo;
  lo.backlog = options.backlog;
  lo.reuse_address = options.reuse_address;
  lo.reuse_port = options.reuse_port;
  for (const SocketAddress& a : local) state->add_listener(net_of(loop).listen(a, lo));
  if (options.start_serving) {
    state->start_serving();
    // asyncio: one iteration so that the listeners are in place.
    co_await sleep(absl::ZeroDuration());
  }
  co_return Server(std::move(state));
}

}  // namespace internal

Coro<std::vector<SocketAddress>> getaddrinfo(std::string host, uint16_t port) {
  EventLoop& loop = get_running_loop();
  struct Result {
    std::vector<SocketAddress> addresses;
    std::exception_ptr error;
  };
  auto result = std::make_shared<Result>();
  Future<void> done = loop.create_future<void>();
  internal::net_of(loop).resolve(host, port, SocketAddress::Family::kUnspecified,
                                 [result, done](std::vector<SocketAddress> addresses, std::exception_ptr error) mutable {
                                   if (done.done()) return;
                                   result->addresses = std::move(addresses);
                                   result->error = std::move(error);
                                   done.set_result();
                                 });
  co_await done;
  if (result->error) std::rethrow_exception(result->error);
  if (result->addresses.empty()) {
    throw std::system_error(EHOSTUNREACH, std::generic_category(), absl::StrCat("no address for '", host, "'"));
  }
  co_return std::move(result->addresses);
}

}  // namespace twinloop
