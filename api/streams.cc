#include "twinloop/api/streams.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <utility>

#include "absl/time/time.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/future.h"

namespace twinloop {
namespace internal {

// ---------------------------------------------------------------- ReaderState

// A StreamReader's buffer and state (asyncio's StreamReader fields). The
// bytes not read yet are data_[begin_, end_); the transport reads straight
// into data_[end_, capacity_) (the protocol is a BufferedProtocol), so data
// is copied once, when a read returns it. While read_into waits on an empty
// buffer, the transport reads straight into read_into's buffer instead
// (direct_): no copy at all.
class ReaderState final : public RefCounted {
 public:
  explicit ReaderState(size_t limit) : limit_(limit) {
    if (limit == 0) throw std::invalid_argument("Limit cannot be <= 0");
  }

  size_t size() const { return end_ - begin_; }
  std::string_view view() const { return std::string_view(data_.get() + begin_, size()); }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  std::string take(size_t n) {
    n = std::min(n, size());
    std::string out(data_.get() + begin_, n);
    consume(n);
    maybe_resume_transport();
    return out;
  }
  void clear() { begin_ = end_ = 0; }
  // Puts `data` back in front of what is buffered (a read that cannot return
  // the bytes it was handed).
  void unread(std::string_view data) {
    if (data.empty()) return;
    std::string rest(view());
    clear();
    append(data);
    append(rest);
  }

  // Room for at least `want` more bytes at the end.
  std::span<char> reserve(size_t want) {
    if (capacity_ - end_ < want) {
      const size_t live = size();
      if (begin_ > 0 && capacity_ - live >= want) {
        std::memmove(data_.get(), data_.get() + begin_, live);
      } else {
        const size_t cap = std::max(capacity_ * 2, live + want);
        std::unique_ptr<char[]> bigger(new char[cap]);
        if (live) std::memcpy(bigger.get(), data_.get() + begin_, live);
        data_ = std::move(bigger);
        capacity_ = cap;
      }
      begin_ = 0;
      end_ = live;
    }
    return std::span<char>(data_.get() + end_, capacity_ - end_);
  }
  void append(std::string_view data) {
    std::span<char> room = reserve(data.size());
    std::memcpy(room.data(), data.data(), data.size());
    end_ += data.size();
  }

  // asyncio's feed_data after the bytes are in the buffer.
  void on_data() {
    wakeup_waiter();
    if (transport_ && !paused_ && size() > 2 * limit_) {
      transport_->pause_reading();
      paused_ = true;
    }
  }
  void feed_data(std::string_view data) {
    if (eof_) throw std::logic_error("feed_data after feed_eof");
    if (data.empty()) return;
    append(data);
    on_data();
  }
  void feed_eof() {
    eof_ = true;
    wakeup_waiter();
  }
  void set_exception(std::exception_ptr e) {
    exception_ = e;
    if (waiter_) {
      Future<void> w = std::move(*waiter_);
      waiter_.reset();
      if (!w.cancelled()) w.set_exception(e);
    }
  }
  void wakeup_waiter() {
    if (waiter_) {
      Future<void> w = std::move(*waiter_);
      waiter_.reset();
      if (!w.cancelled()) w.set_result();
    }
  }
  void maybe_resume_transport() {
    if (paused_ && size() <= limit_) {
      paused_ = false;
      transport_->resume_reading();
    }
  }
  void check_exception() const {
    if (exception_) std::rethrow_exception(exception_);
  }
  // asyncio's _wait_for_data: one waiter at a time.
  Future<void> start_wait(const char* func) {
    if (waiter_) {
      throw std::runtime_error(std::string(func) +
                               "() called while another coroutine is already waiting for incoming data");
    }
    if (paused_) {
      paused_ = false;
      transport_->resume_reading();
    }
    waiter_ = create_future<void>();
    // A waiter woken with the stream's error and then cancelled is not a
    // lost error: the reader raises it again.
    waiter_->state()->mark_retrieved();
    return *waiter_;
  }
  void end_wait() {
    waiter_.reset();
    direct_ = {};
  }
  // The buffer the transport may read into directly: read_into's, while it
  // waits for data and nothing is buffered.
  std::span<char> direct_target() const {
    if (direct_.empty() || size() != 0 || !waiter_ || waiter_->done()) return {};
    return direct_;
  }
  // `n` bytes arrived in direct_target(): they are the waiting read's.
  void direct_filled(size_t n) {
    direct_n_ = n;
    direct_ = {};
    wakeup_waiter();
  }

  size_t limit_;
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool paused_ = false;
  std::exception_ptr exception_;
  std::optional<Future<void>> waiter_;
  std::shared_ptr<Transport> transport_;
  // read_into's buffer while it waits (see direct_target), and how many bytes
  // the transport put there.
  std::span<char> direct_;
  size_t direct_n_ = 0;
};

namespace {

Coro<void> wait_for_data(Ref<ReaderState> r, const char* func) {
  Future<void> w = r->start_wait(func);
  std::exception_ptr error;
  try {
    co_await w;
  } catch (...) {
    error = std::current_exception();
  }
  r->end_wait();
  if (error) std::rethrow_exception(error);
}

Coro<std::string> reader_read(Ref<ReaderState> r, std::ptrdiff_t n) {
  r->check_exception();
  if (n == 0) co_return std::string();
  if (n < 0) {
    // asyncio: read(limit) until EOF, so that a paused transport resumes.
    std::string all;
    while (true) {
      if (r->size() == 0 && !r->eof_) co_await wait_for_data(r, "read");
      r->check_exception();
      if (r->size() == 0) break;
      all += r->take(r->limit_);
    }
    co_return all;
  }
  if (r->size() == 0 && !r->eof_) co_await wait_for_data(r, "read");
  co_return r->take(static_cast<size_t>(n));
}

Coro<size_t> reader_read_into(Ref<ReaderState> r, std::span<char> buf) {
  r->check_exception();
  if (buf.empty()) co_return 0;
  if (r->size() == 0 && !r->eof_) {
    // wait_for_data, inline (one coroutine frame less per read), offering
    // `buf` to the transport: what arrives first lands there without a copy.
    Future<void> w = r->start_wait("read");
    r->direct_ = buf;
    r->direct_n_ = 0;
    std::exception_ptr error;
    try {
      co_await w;
    } catch (...) {
      error = std::current_exception();
    }
    r->end_wait();
    const size_t direct = std::exchange(r->direct_n_, 0);
    if (error) {
      // Cancelled after the bytes were handed over: they go back to the
      // buffer, in front of anything that arrived since, as read(n) would
      // have left them there.
      r->unread(std::string_view(buf.data(), direct));
      std::rethrow_exception(error);
    }
    if (direct) co_return direct;
  }
  const size_t n = std::min(buf.size(), r->size());
  if (n) std::memcpy(buf.data(), r->data_.get() + r->begin_, n);
  r->consume(n);
  r->maybe_resume_transport();
  co_return n;
}

Coro<std::string> reader_readexactly(Ref<ReaderState> r, std::ptrdiff_t n) {
  if (n < 0) throw std::invalid_argument("readexactly size can not be less than zero");
  r->check_exception();
  if (n == 0) co_return std::string();
  const size_t want = static_cast<size_t>(n);
  while (r->size() < want) {
    if (r->eof_) {
      std::string partial(r->view());
      r->clear();
      throw IncompleteReadError(std::move(partial), want);
    }
    co_await wait_for_data(r, "readexactly");
  }
  co_return r->take(want);
}

Coro<std::string> reader_readuntil(Ref<ReaderState> r, std::vector<std::string> separators) {
  // asyncio 3.13 sorts the separators by length; the match that ends first
  // wins (of two ending at the same place, the shorter one found first).
  // (An insertion sort: a stable sort by length of a handful of strings.)
  for (size_t i = 1; i < separators.size(); ++i) {
    for (size_t j = i; j > 0 && separators[j].size() < separators[j - 1].size(); --j) {
      std::swap(separators[j], separators[j - 1]);
    }
  }
  if (separators.empty()) throw std::invalid_argument("Separator should contain at least one element");
  const size_t min_seplen = separators.front().size();
  const size_t max_seplen = separators.back().size();
  if (min_seplen == 0) throw std::invalid_argument("Separator should be at least one-byte string");
  r->check_exception();
  // Bytes from the start of the buffer with no occurrence of a separator.
  size_t offset = 0;
  size_t match_start = 0;
  size_t match_end = 0;
  while (true) {
    const size_t buflen = r->size();
    if (buflen - offset >= min_seplen) {
      bool found = false;
      const std::string_view buf = r->view();
      for (const std::string& sep : separators) {
        const size_t isep = buf.find(sep, offset);
        if (isep == std::string_view::npos) continue;
        const size_t end = isep + sep.size();
        if (!found || end < match_end) {
          match_end = end;
          match_start = isep;
          found = true;
        }
      }
      if (found) break;
      offset = buflen + 1 > max_seplen ? buflen + 1 - max_seplen : 0;
      if (offset > r->limit_) {
        throw LimitOverrunError("Separator is not found, and chunk exceed the limit", offset);
      }
    }
    // A complete separator may have arrived with the EOF: the buffer is
    // checked first.
    if (r->eof_) {
      std::string partial(r->view());
      r->clear();
      throw IncompleteReadError(std::move(partial), std::nullopt);
    }
    co_await wait_for_data(r, "readuntil");
  }
  if (match_start > r->limit_) {
    throw LimitOverrunError("Separator is found, but chunk is longer than limit", match_start);
  }
  co_return r->take(match_end);
}

Coro<std::string> reader_readline(Ref<ReaderState> r) {
  std::vector<std::string> sep{"\n"};
  bool overrun = false;
  size_t consumed = 0;
  std::string message;
  std::string line;
  try {
    line = co_await reader_readuntil(r, std::move(sep));
  } catch (const IncompleteReadError& e) {
    co_return e.partial();
  } catch (const LimitOverrunError& e) {
    overrun = true;
    consumed = e.consumed();
    message = e.what();
  }
  if (overrun) {
    // asyncio: drop the line through the separator if there is one, else
    // the whole buffer, and raise ValueError.
    const std::string_view buf = r->view();
    if (buf.size() > consumed && buf[consumed] == '\n') {
      r->consume(consumed + 1);
    } else {
      r->clear();
    }
    r->maybe_resume_transport();
    throw std::invalid_argument(message);
  }
  co_return line;
}

}  // namespace

// ---------------------------------------------------------------- StreamProtocol

// asyncio's StreamReaderProtocol (with FlowControlMixin), reading straight
// into the reader's buffer.
class StreamProtocol final : public BufferedProtocol, public std::enable_shared_from_this<StreamProtocol> {
 public:
  StreamProtocol(Ref<ReaderState> reader, ClientConnected client_connected)
      : reader_(std::move(reader)), client_connected_(std::move(client_connected)) {
    closed_ = create_future<void>();
    // asyncio retrieves the closed future's exception when the protocol
    // goes: an error nobody waited for is not "never retrieved".
    closed_.state()->mark_retrieved();
  }

  void connection_made(std::shared_ptr<Transport> transport) override {
    transport_ = transport;
    reader_->transport_ = transport;
    if (!client_connected_) return;
    StreamWriter writer(transport, shared_from_this(), reader_);
    Coro<void> handler = client_connected_(StreamReader(reader_), std::move(writer));
    task_ = create_task(std::move(handler));
    std::weak_ptr<Transport> weak = transport;
    task_.add_done_callback([weak](Future<void> task) {
      std::shared_ptr<Transport> t = weak.lock();
      if (task.cancelled()) {
        if (t) t->close();
        return;
      }
      if (std::exception_ptr e = task.exception()) {
        ExceptionContext c = ExceptionContext::of("Unhandled exception in client_connected_cb", e);
        task.get_loop().call_exception_handler(c);
        if (t) t->close();
      }
    });
  }

  void connection_lost(std::exception_ptr error) override {
    if (error) {
      reader_->set_exception(error);
    } else {
      reader_->feed_eof();
    }
    if (!closed_.done()) {
      if (error) {
        closed_.set_exception(error);
      } else {
        closed_.set_result();
      }
    }
    // FlowControlMixin.connection_lost.
    connection_lost_ = true;
    if (paused_) {
      for (Future<void>& w : drain_waiters_) {
        if (w.done()) continue;
        if (error) {
          w.set_exception(error);
        } else {
          w.set_result();
        }
      }
    }
    transport_.reset();
    reader_->transport_.reset();
    reader_->paused_ = false;
  }

  std::span<char> get_buffer(size_t sizehint) override {
    std::span<char> direct = reader_->direct_target();
    direct_ = !direct.empty();
    if (direct_) return direct;
    // At most one chunk, not all the free capacity: flow control pauses
    // reading once more than 2 * limit is buffered, so the buffer stays
    // under 2 * limit + one chunk (asyncio: + one recv of max_size).
    const size_t chunk = std::max<size_t>(sizehint, kReadChunk);
    return reader_->reserve(chunk).first(chunk);
  }
  void buffer_updated(size_t nbytes) override {
    if (reader_->eof_) throw std::logic_error("data after the end of the stream");
    if (direct_) {
      direct_ = false;
      reader_->direct_filled(nbytes);
      return;
    }
    reader_->end_ += nbytes;
    reader_->on_data();
  }
  bool eof_received() override {
    reader_->feed_eof();
    return true;  // keep the transport open for writing (half-close)
  }
  void pause_writing() override { paused_ = true; }
  void resume_writing() override {
    paused_ = false;
    for (Future<void>& w : drain_waiters_) {
      if (!w.done()) w.set_result();
    }
  }

  // drain_helper's checks without its coroutine: true if drain() need not
  // wait (the usual case), ConnectionResetError once the connection is lost.
  bool drain_ready() const {
    if (connection_lost_) throw ConnectionResetError("Connection lost");
    return !paused_;
  }

  // asyncio's _drain_helper.
  static Coro<void> drain_helper(std::shared_ptr<StreamProtocol> p) {
    if (p->drain_ready()) co_return;
    Future<void> waiter = create_future<void>();
    waiter.state()->mark_retrieved();
    p->drain_waiters_.push_back(waiter);
    std::exception_ptr error;
    try {
      co_await waiter;
    } catch (...) {
      error = std::current_exception();
    }
    auto& ws = p->drain_waiters_;
    ws.erase(std::remove(ws.begin(), ws.end(), waiter), ws.end());
    if (error) std::rethrow_exception(error);
  }

  Future<void> closed() const { return closed_; }

 private:
  // How much room the transport is given per read.
  static constexpr size_t kReadChunk = 64 * 1024;

  Ref<ReaderState> reader_;
  // Kept for the connection's life, as asyncio keeps _client_connected_cb:
  // a lambda coroutine's captures live in this very object, not in its
  // frame (dropping it after the call crashed ConcurrentDrains... in
  // network_test). So a callback that captures what comes to hold this
  // protocol (a future whose result is the writer) makes a cycle that the
  // closing loop does not free; asyncio frees it with its collector.
  ClientConnected client_connected_;
  std::shared_ptr<Transport> transport_;
  Task<void> task_;
  Future<void> closed_;
  bool paused_ = false;
  bool connection_lost_ = false;
  // The last get_buffer returned the waiting read_into's buffer.
  bool direct_ = false;
  std::deque<Future<void>> drain_waiters_;
};

namespace {

Coro<void> writer_drain(std::shared_ptr<Transport> transport, std::shared_ptr<StreamProtocol> protocol,
                        Ref<ReaderState> reader) {
  if (reader && reader->exception_) std::rethrow_exception(reader->exception_);
  if (transport->is_closing()) {
    // Let connection_lost run, so that a loop of write + drain sees the
    // connection's end (asyncio's comment).
    co_await sleep(absl::ZeroDuration());
  }
  if (protocol->drain_ready()) co_return;  // no second coroutine frame when nothing to wait for
  co_await StreamProtocol::drain_helper(std::move(protocol));
}

Coro<void> writer_wait_closed(std::shared_ptr<StreamProtocol> protocol) {
  Future<void> closed = protocol->closed();
  co_await closed;
}

}  // namespace

Coro<std::pair<StreamReader, StreamWriter>> open_stream(std::optional<SocketAddress> remote, std::string host,
                                                        uint16_t port, StreamOptions options) {
  Ref<ReaderState> reader = make_ref<ReaderState>(options.limit);
  auto protocol = std::make_shared<StreamProtocol>(reader, ClientConnected());
  AnyProtocolFactory factory = [protocol] { return protocol; };
  auto connected = co_await create_connection_any(std::move(factory), std::move(remote), std::move(host), port,
                                                  ConnectOptions{});
  StreamWriter writer(std::move(connected.first), protocol, reader);
  co_return std::pair<StreamReader, StreamWriter>(StreamReader(std::move(reader)), std::move(writer));
}

std::pair<StreamReader, StreamWriter> stream_over_channel(EventLoop& loop, std::unique_ptr<StreamChannel> channel,
                                                          StreamOptions options) {
  Ref<ReaderState> reader = make_ref<ReaderState>(options.limit);
  auto protocol = std::make_shared<StreamProtocol>(reader, ClientConnected());
  std::shared_ptr<Transport> transport = make_stream_transport(loop, std::move(channel), protocol, nullptr, Future<void>());
  StreamWriter writer(std::move(transport), protocol, reader);
  return {StreamReader(std::move(reader)), std::move(writer)};
}

Coro<Server> start_stream_server(ClientConnected client_connected, std::vector<SocketAddress> local, std::string host,
                                 uint16_t port, StreamOptions stream_options, ServerOptions server_options) {
  const size_t limit = stream_options.limit;
  if (limit == 0) throw std::invalid_argument("Limit cannot be <= 0");
  AnyProtocolFactory factory = [client_connected = std::move(client_connected), limit]() {
    return std::make_shared<StreamProtocol>(make_ref<ReaderState>(limit), client_connected);
  };
  co_return co_await create_server_any(std::move(factory), std::move(local), std::move(host), port, server_options);
}

void set_reader_transport(const StreamReader& reader, std::shared_ptr<Transport> transport) {
  ReaderState& r = *reader.state();
  r.transport_ = std::move(transport);
  if (!r.transport_) r.paused_ = false;
}

std::pair<StreamWriter, std::shared_ptr<BaseProtocol>> make_driven_writer(std::shared_ptr<Transport> transport) {
  // The protocol's reader is its own and unused: a write-only stream.
  auto protocol = std::make_shared<StreamProtocol>(make_ref<ReaderState>(kDefaultStreamLimit), ClientConnected());
  StreamWriter writer(std::move(transport), protocol, Ref<ReaderState>());
  return {std::move(writer), std::move(protocol)};
}

}  // namespace internal

// ---------------------------------------------------------------- StreamReader

StreamReader::StreamReader() : StreamReader(kDefaultStreamLimit) {}
StreamReader::~StreamReader() = default;
StreamReader::StreamReader(internal::Ref<internal::ReaderState> state) : state_(std::move(state)) {}
StreamReader::StreamReader(const StreamReader&) = default;
StreamReader& StreamReader::operator=(const StreamReader&) = default;
StreamReader::StreamReader(StreamReader&&) noexcept = default;
StreamReader& StreamReader::operator=(StreamReader&&) noexcept = default;
StreamReader::StreamReader(size_t limit) : state_(internal::make_ref<internal::ReaderState>(limit)) {}

Coro<std::string> StreamReader::read(std::ptrdiff_t n) { return internal::reader_read(state_, n); }
Coro<std::string> StreamReader::readline() { return internal::reader_readline(state_); }
Coro<std::string> StreamReader::readexactly(std::ptrdiff_t n) { return internal::reader_readexactly(state_, n); }
Coro<std::string> StreamReader::readuntil() { return readuntil(std::string("\n")); }
Coro<std::string> StreamReader::readuntil(std::string separator) {
  std::vector<std::string> seps;
  seps.push_back(std::move(separator));
  return internal::reader_readuntil(state_, std::move(seps));
}
Coro<std::string> StreamReader::readuntil(std::vector<std::string> separators) {
  return internal::reader_readuntil(state_, std::move(separators));
}
Coro<size_t> StreamReader::read_into(std::span<char> buf) { return internal::reader_read_into(state_, buf); }

bool StreamReader::at_eof() const { return state_->eof_ && state_->size() == 0; }
std::exception_ptr StreamReader::exception() const { return state_->exception_; }
void StreamReader::set_exception(std::exception_ptr error) { state_->set_exception(std::move(error)); }
void StreamReader::feed_data(std::string_view data) { state_->feed_data(data); }
void StreamReader::feed_eof() { state_->feed_eof(); }
size_t StreamReader::limit() const { return state_->limit_; }
size_t StreamReader::buffered() const { return state_->size(); }

// ---------------------------------------------------------------- StreamWriter

namespace internal {
struct WriterState {
  WriterState(std::shared_ptr<Transport> t, std::shared_ptr<StreamProtocol> p, Ref<ReaderState> r)
      : transport(std::move(t)), protocol(std::move(p)), reader(std::move(r)), loop(running_loop_or_null()) {}
  WriterState(const WriterState&) = delete;
  WriterState& operator=(const WriterState&) = delete;
  std::shared_ptr<Transport> transport;
  std::shared_ptr<StreamProtocol> protocol;
  Ref<ReaderState> reader;
  // The loop the stream was made on (null outside a loop).
  Ref<EventLoop> loop;
  // asyncio's StreamWriter.__del__ closes the transport only if the loop is
  // not closed (a writer held by a task the loop never finished, e.g. after
  // a deadlock, goes after the loop closed; closing would throw here).
  ~WriterState() {
    if (transport && !transport->is_closing() && !(loop && loop->is_closed())) transport->close();
  }
};
}  // namespace internal

StreamWriter::StreamWriter() = default;
StreamWriter::~StreamWriter() = default;
StreamWriter::StreamWriter(const StreamWriter&) = default;
StreamWriter& StreamWriter::operator=(const StreamWriter&) = default;
StreamWriter::StreamWriter(StreamWriter&&) noexcept = default;
StreamWriter& StreamWriter::operator=(StreamWriter&&) noexcept = default;

StreamWriter::StreamWriter(std::shared_ptr<Transport> transport, std::shared_ptr<internal::StreamProtocol> protocol,
                           internal::Ref<internal::ReaderState> reader)
    : state_(std::make_shared<internal::WriterState>(std::move(transport), std::move(protocol), std::move(reader))) {}

const std::shared_ptr<Transport>& StreamWriter::transport() const { return state_->transport; }
void StreamWriter::write(std::string_view data) { state_->transport->write(data); }
void StreamWriter::writelines(std::initializer_list<std::string_view> chunks) { state_->transport->writelines(chunks); }
void StreamWriter::writelines(const std::vector<std::string>& chunks) { state_->transport->writelines(chunks); }
bool StreamWriter::can_write_eof() const { return state_->transport->can_write_eof(); }
void StreamWriter::write_eof() { state_->transport->write_eof(); }
void StreamWriter::close() { state_->transport->close(); }
bool StreamWriter::is_closing() const { return state_->transport->is_closing(); }
Coro<void> StreamWriter::drain() { return internal::writer_drain(state_->transport, state_->protocol, state_->reader); }
Coro<void> StreamWriter::wait_closed() { return internal::writer_wait_closed(state_->protocol); }
std::any StreamWriter::get_extra_info(std::string_view name) const { return state_->transport->get_extra_info(name); }
std::any StreamWriter::get_extra_info(std::string_view name, std::any default_value) const {
  return state_->transport->get_extra_info(name, std::move(default_value));
}

// ---------------------------------------------------------------- opening

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, uint16_t port) {
  return internal::open_stream(std::nullopt, std::move(host), port, StreamOptions{});
}
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, uint16_t port, StreamOptions options) {
  return internal::open_stream(std::nullopt, std::move(host), port, options);
}
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path) {
  return open_unix_connection(std::move(path), StreamOptions{});
}
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path, StreamOptions options) {
  std::optional<SocketAddress> remote = SocketAddress::unix_path(std::move(path));
  return internal::open_stream(std::move(remote), std::string(), 0, options);
}

Coro<Server> start_server(ClientConnected client_connected, std::string host, uint16_t port) {
  return start_server(std::move(client_connected), std::move(host), port, StreamOptions{}, ServerOptions{});
}
Coro<Server> start_server(ClientConnected client_connected, std::string host, uint16_t port, StreamOptions options) {
  return start_server(std::move(client_connected), std::move(host), port, options, ServerOptions{});
}
Coro<Server> start_server(ClientConnected client_connected, std::string host, uint16_t port, StreamOptions options,
                          ServerOptions server_options) {
  return internal::start_stream_server(std::move(client_connected), {}, std::move(host), port, options,
                                       server_options);
}
Coro<Server> start_unix_server(ClientConnected client_connected, std::string path) {
  return start_unix_server(std::move(client_connected), std::move(path), StreamOptions{});
}
Coro<Server> start_unix_server(ClientConnected client_connected, std::string path, StreamOptions options) {
  std::vector<SocketAddress> local{SocketAddress::unix_path(std::move(path))};
  return internal::start_stream_server(std::move(client_connected), std::move(local), std::string(), 0, options,
                                       ServerOptions{});
}

}  // namespace twinloop
