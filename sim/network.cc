#include "twinloop/sim/network.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>
#include <set>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "twinloop/api/errors.h"
#include "twinloop/sim/draw_sites.h"

namespace twinloop::sim {
namespace {

// Linux's default ip_local_port_range.
constexpr uint32_t kEphemeralFirst = 32768;
constexpr uint32_t kEphemeralLast = 60999;
// A full backlog drops the SYN; the connector retransmits it after 1 s,
// doubling, six times (Linux: TCP_TIMEOUT_INIT, tcp_syn_retries).
constexpr int kSynRetries = 6;
constexpr int64_t kSynRtoNs = 1'000'000'000;
// Linux caps listen()'s backlog at net.core.somaxconn.
constexpr int kSomaxconn = 4096;

// What a segment carries.
enum SegmentKind : uint8_t {
  kData,     // bytes up to Segment::end
  kFin,      // the end of the stream
  kRst,      // reset
  kSyn,      // connection request (client -> server)
  kSynAck,   // the listener answers (server -> client)
  kAck,      // the handshake's last step (client -> server): ready to accept
  kRefused,  // RST answering a SYN: nothing listens
};

const char* kind_name(uint8_t kind) {
  switch (kind) {
    case kData:
      return "data";
    case kFin:
      return "FIN";
    case kRst:
      return "RST";
    case kSyn:
      return "SYN";
    case kSynAck:
      return "SYN-ACK";
    case kAck:
      return "ACK";
    case kRefused:
      return "RST (refused)";
  }
  return "?";
}

int family_index(SocketAddress::Family f) { return f == SocketAddress::Family::kInet6 ? 1 : 0; }

struct ParsedAddress {
  SocketAddress::Family family;
  std::string text;  // normalised (inet_ntop)
  bool loopback = false;
  bool wildcard = false;
  bool multicast = false;
};

// A numeric IPv4 or IPv6 address (inet_pton: pure parsing, no lookup).
std::optional<ParsedAddress> parse_address(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string z(s);
  char buf[INET6_ADDRSTRLEN];
  in_addr a4;
  if (inet_pton(AF_INET, z.c_str(), &a4) == 1) {
    ParsedAddress p{SocketAddress::Family::kInet, inet_ntop(AF_INET, &a4, buf, sizeof buf)};
    const uint32_t h = ntohl(a4.s_addr);
    p.loopback = (h >> 24) == 127;
    p.wildcard = h == 0;
    p.multicast = (h >> 28) == 0xE;
    return p;
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, z.c_str(), &a6) == 1) {
    ParsedAddress p{SocketAddress::Family::kInet6, inet_ntop(AF_INET6, &a6, buf, sizeof buf)};
    static const in6_addr kAny = IN6ADDR_ANY_INIT;
    static const in6_addr kLoop = IN6ADDR_LOOPBACK_INIT;
    p.loopback = std::memcmp(&a6, &kLoop, sizeof a6) == 0;
    p.wildcard = std::memcmp(&a6, &kAny, sizeof a6) == 0;
    p.multicast = a6.s6_addr[0] == 0xFF;
    return p;
  }
  return std::nullopt;
}

SocketAddress make_address(SocketAddress::Family family, std::string host, uint16_t port) {
  return family == SocketAddress::Family::kInet6 ? SocketAddress::inet6(std::move(host), port)
                                                 : SocketAddress::inet(std::move(host), port);
}

// Debian's Abseil has its own string_view type.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string lower(std::string_view s) { return absl::AsciiStrToLower(absl::string_view(s.data(), s.size())); }

std::string plural(uint64_t n, std::string_view one, std::string_view many) {
  return absl::StrCat(n, " ", n == 1 ? av(one) : av(many));
}

}  // namespace

// ---------------------------------------------------------------------------
// The model's parts.

struct Network::Host {
  HostId id = 0;
  std::string name;
  std::vector<std::string> addresses;  // normalised, without loopback
  // TCP ports in use (listeners, connections' source ports), IPv4 / IPv6.
  std::set<uint16_t> ports[2];
  std::map<std::pair<int, uint16_t>, Listener*> inet_listeners;  // (family index, port)
  std::map<std::string, Listener*, std::less<>> unix_listeners;  // path
  // A context in which the host variable is this host: network callbacks
  // for this host run in it (HostScope).
  internal::Ref<internal::ContextState> context;
  bool down = false;  // host_down
};

// One direction between two hosts (or a host and itself). Its state can
// change mid-run: set_link, and the faults, which act here.
struct Network::Link {
  HostId from = 0;
  HostId to = 0;
  LinkConfig config;
  bool custom = false;  // set with set_link: set_default_link leaves it
  bool carried = false;  // a connection has used it: changing it is a fault
  // Whether an arriving segment needs a look (the link is blocked, or its
  // receiving host is down): the only fault test an arrival makes.
  bool faulty = false;
  int64_t latency_min_ns = 0;
  uint64_t latency_range_us = 0;  // latency_max - latency_min in whole us
  int64_t busy_until_ns = 0;      // with a bandwidth: when the link is free
  // How many partitions and holds block it, by mode.
  uint32_t holds = 0;
  uint32_t loses = 0;
  // The flows whose head segment waits here (kHold), as (connection id,
  // direction), in the order they were stopped.
  std::vector<std::pair<uint64_t, uint8_t>> parked;
};

// A segment on its way: data up to `end`, or a control segment.
struct Network::Segment {
  uint64_t end = 0;
  int64_t arrival_ns = 0;
  uint32_t seq = 0;
  uint8_t kind = kData;
};

// The segments in flight of one connection direction, in order: a ring that
// grows to the most ever in flight at once (at most the receive window plus
// a few control segments), so the steady state allocates nothing.
class Network::SegmentQueue {
 public:
  bool empty() const { return count_ == 0; }
  size_t size() const { return count_; }
  const Segment& front() const { return slots_[head_]; }
  const Segment& at(size_t i) const { return slots_[(head_ + i) & (slots_.size() - 1)]; }
  Segment& at(size_t i) { return slots_[(head_ + i) & (slots_.size() - 1)]; }
  void push_back(const Segment& s) {
    if (count_ == slots_.size()) grow();
    slots_[(head_ + count_) & (slots_.size() - 1)] = s;
    ++count_;
  }
  void pop_front() {
    head_ = (head_ + 1) & (slots_.size() - 1);
    --count_;
  }
  void clear() {
    head_ = 0;
    count_ = 0;
  }

 private:
  void grow() {
    std::vector<Segment> bigger(std::max<size_t>(8, slots_.size() * 2));
    for (size_t i = 0; i < count_; ++i) bigger[i] = at(i);
    slots_.swap(bigger);
    head_ = 0;
  }

  std::vector<Segment> slots_;  // a power of two in size
  size_t head_ = 0;
  size_t count_ = 0;
};

// The bytes of one connection direction that were written and not yet read
// by the peer, addressed by stream offset: a power-of-two ring grown on
// demand up to the direction's limit (send + receive buffer).
class Network::ByteRing {
 public:
  // Stores `n` bytes at stream offset `at`; the ring already holds
  // [from, at).
  void write(uint64_t from, uint64_t at, const char* p, size_t n) {
    if (at + n - from > cap_) grow(at + n - from, from, at);
    const size_t pos = at & (cap_ - 1);
    const size_t first = std::min<size_t>(n, cap_ - pos);
    std::memcpy(buf_.get() + pos, p, first);
    std::memcpy(buf_.get(), p + first, n - first);
  }
  void read(uint64_t at, char* p, size_t n) const {
    const size_t pos = at & (cap_ - 1);
    const size_t first = std::min<size_t>(n, cap_ - pos);
    std::memcpy(p, buf_.get() + pos, first);
    std::memcpy(p + first, buf_.get(), n - first);
  }

 private:
  void grow(uint64_t need, uint64_t from, uint64_t to) {
    const uint64_t cap = std::max<uint64_t>(4096, std::bit_ceil(need));
    std::unique_ptr<char[]> bigger(new char[cap]);
    for (uint64_t o = from; o < to;) {
      const uint64_t old_pos = o & (cap_ - 1);
      const uint64_t new_pos = o & (cap - 1);
      const uint64_t run = std::min({to - o, cap_ - old_pos, cap - new_pos});
      std::memcpy(bigger.get() + new_pos, buf_.get() + old_pos, run);
      o += run;
    }
    buf_.swap(bigger);
    cap_ = cap;
  }

  std::unique_ptr<char[]> buf_;
  uint64_t cap_ = 0;
};

// One direction of a connection: from ends[dir] to ends[1 - dir]. Stream
// offsets: read_off <= recv_end <= sent_end <= write_end, where
//   [read_off, recv_end)   arrived, not yet read by the receiver
//   [recv_end, sent_end)   in flight (segs)
//   [sent_end, write_end)  taken by write(), not yet transmitted
// It is also the loop timer of its head segment's arrival (armed whenever a
// segment is in flight; a flow parked at a blocked link counts as armed, with
// no timer pending, so that nothing arms it or frees its connection until
// the link is unblocked).
struct Network::Flow final : internal::TimerTarget {
  void run() override;
  // The loop closed with the timer pending; shutdown() frees the connection.
  void drop() override { armed = false; }
  void release_timer() override { armed = false; }

  Connection* conn = nullptr;
  uint8_t dir = 0;
  Link* link = nullptr;
  ByteRing ring;
  uint64_t read_off = 0;
  uint64_t recv_end = 0;
  uint64_t sent_end = 0;
  uint64_t write_end = 0;
  uint64_t limit = 0;   // send + receive buffer: most written and unread
  uint64_t window = 0;  // receive buffer: most in flight or unread
  // The receiver's window as the sender knows it: it may send up to here.
  // Advanced when the reader frees at least half the window, or has read
  // everything sent (receiver-side silly-window avoidance, RFC 1122 4.2.3.3).
  uint64_t advertised = 0;
  bool fin_queued = false;
  bool fin_sent = false;
  bool fin_delivered = false;
  SegmentQueue segs;
  int64_t last_arrival_ns = 0;
  uint32_t next_seq = 0;
  bool armed = false;
  bool parked = false;  // its head segment waits at a blocked link (kHold)
};

// A pending notification of a channel's owner (the loop's ready queue holds
// it; at most one per end and direction).
struct Network::Notifier final : internal::Runnable {
  void run() override;
  void drop() override { pending = false; }

  End* end = nullptr;
  bool readable = false;
  bool pending = false;
};

// One end of a connection.
struct Network::End {
  enum class State : uint8_t {
    kNone,        // not there yet (a server end before the SYN arrives)
    kConnecting,  // the connector, until the SYN-ACK or refusal arrives
    kSynReceived,  // the acceptor, after the SYN, until the handshake's ACK
    kBacklog,     // in the listener's backlog, not yet accepted by its owner
    kOpen,        // a channel owns it
    kClosed,      // released by its owner (or refused, or dropped from a backlog)
  };
  bool present() const {
    return state == State::kConnecting || state == State::kSynReceived || state == State::kBacklog ||
           state == State::kOpen;
  }

  Connection* conn = nullptr;
  uint8_t side = 0;  // 0: the connector, 1: the acceptor
  State state = State::kNone;
  HostId host = kImplicit;
  SocketAddress local;
  SocketAddress peer;
  uint16_t port = 0;  // an ephemeral source port this end holds
  int port_family = 0;
  Channel* channel = nullptr;
  ChannelEvents* events = nullptr;
  bool want_read = false;
  bool want_write = false;
  // An RST arrived (or a fault failed the end): reads raise ECONNRESET
  // (`error`, when not 0), writes EPIPE (`error`).
  bool reset = false;
  bool rst_sent = false;  // this end reset the connection
  // Faults: sends nothing (its connection was cut, or its host went down).
  bool mute = false;
  bool vanished = false;  // its host went down (host_down)
  bool doomed = false;    // fails with ETIMEDOUT at doom_at_ns unless reset first
  int error = 0;
  int64_t doom_at_ns = 0;
  Notifier on_read;
  Notifier on_write;
};

struct Network::Connection {
  Connection(Network* n, uint64_t connection_id, bool unix) : net(n), id(connection_id), unix_socket(unix) {
    for (uint8_t s = 0; s < 2; ++s) {
      ends[s].conn = this;
      ends[s].side = s;
      ends[s].on_read.end = &ends[s];
      ends[s].on_read.readable = true;
      ends[s].on_write.end = &ends[s];
      flows[s].conn = this;
      flows[s].dir = s;
      flows[s].id_ = connection_id << 1 | s;
    }
  }

  Network* net;
  uint64_t id;
  bool unix_socket;
  End ends[2];
  Flow flows[2];  // flows[d]: from ends[d] to ends[1 - d]
  ConnectDone done;
  Listener* listener = nullptr;  // from the SYN until accepted (or the listener closes)
  int syn_retries = 0;
  int busy = 0;  // inside one of its callbacks: not freed
  bool cut = false;  // by a kLose partition: nothing crosses it any more
};

void Network::Flow::run() { conn->net->flow_due(*this); }
void Network::Notifier::run() { end->conn->net->notify(*this); }

struct Network::Listener final : internal::Runnable {
  void run() override { net->notify_listener(*this); }
  void drop() override { pending = false; }

  Network* net = nullptr;
  uint64_t id = 0;
  HostId host = kImplicit;
  SocketAddress local;
  bool unix_socket = false;
  bool wildcard = false;
  int family = 0;
  uint16_t port = 0;
  size_t backlog_max = 0;
  std::deque<Connection*> backlog;  // handshake done, not accepted yet
  size_t half_open = 0;             // SYN answered, handshake's ACK not arrived
  ListenerHandle* handle = nullptr;
  ChannelEvents* events = nullptr;
  bool want = false;
  bool pending = false;
  bool closed = false;
  int busy = 0;
};

// What the owner of a connection end holds (api/net_backend.h).
class Network::Channel final : public StreamChannel {
 public:
  explicit Channel(End& e) : end_(&e), local_(e.local), peer_(e.peer) {}
  ~Channel() override { close(false); }

  void set_events(ChannelEvents* events) override {
    if (!end_) return;
    end_->events = events;
    net().poke(*end_, true);
    net().poke(*end_, false);
  }
  void want_read(bool on) override {
    if (!end_) return;
    end_->want_read = on;
    net().poke(*end_, true);
  }
  void want_write(bool on) override {
    if (!end_) return;
    end_->want_write = on;
    net().poke(*end_, false);
  }
  std::ptrdiff_t read(char* buf, std::size_t n) override {
    if (!end_) throw_system_error(EBADF, absl::StrCat("read from ", peer_.to_string(), " on a closed channel"));
    return net().read(*end_, buf, n);
  }
  std::size_t write(const char* buf, std::size_t n) override {
    if (!end_) throw_system_error(EBADF, absl::StrCat("write to ", peer_.to_string(), " on a closed channel"));
    return net().write(*end_, buf, n);
  }
  void shutdown_write() override {
    if (end_) net().shutdown_write(*end_);
  }
  void close(bool abort) override {
    if (!end_) return;
    End* e = end_;
    end_ = nullptr;
    e->channel = nullptr;
    e->events = nullptr;
    e->conn->net->close_end(*e, abort);
  }
  SocketAddress local_address() const override { return local_; }
  SocketAddress peer_address() const override { return peer_; }

 private:
  friend class Network;
  Network& net() const { return *end_->conn->net; }

  End* end_;  // nullptr once closed or detached
  SocketAddress local_;
  SocketAddress peer_;
};

class Network::ListenerHandle final : public StreamListener {
 public:
  explicit ListenerHandle(Listener& l) : l_(&l), local_(l.local) {}
  ~ListenerHandle() override { close(); }

  void set_events(ChannelEvents* events) override {
    if (!l_) return;
    l_->events = events;
    l_->net->poke_listener(*l_);
  }
  void want_accept(bool on) override {
    if (!l_) return;
    l_->want = on;
    l_->net->poke_listener(*l_);
  }
  std::unique_ptr<StreamChannel> accept() override {
    if (!l_) throw_system_error(EBADF, absl::StrCat("accept on ", local_.to_string(), ", a closed listener"));
    Listener& l = *l_;
    if (l.backlog.empty()) return nullptr;
    Connection* c = l.backlog.front();
    l.backlog.pop_front();
    c->listener = nullptr;
    End& e = c->ends[1];
    e.state = End::State::kOpen;
    auto channel = std::make_unique<Channel>(e);
    e.channel = channel.get();
    return channel;
  }
  SocketAddress local_address() const override { return local_; }
  void close() override {
    if (!l_) return;
    Listener* l = l_;
    l_ = nullptr;
    l->handle = nullptr;
    l->events = nullptr;
    l->net->close_listener(*l);
  }

 private:
  friend class Network;
  Listener* l_;  // nullptr once closed or detached
  SocketAddress local_;
};

// Network callbacks (notifications, connect results) run on their
// channel's host: see current_host_id.
class Network::HostScope {
 public:
  HostScope(Network& net, HostId host) {
    if (!net.hosts_.empty()) scope_.emplace(net.host(host).context);
  }
  HostScope(const HostScope&) = delete;
  HostScope& operator=(const HostScope&) = delete;

 private:
  std::optional<internal::ContextScope> scope_;
};

// ---------------------------------------------------------------------------
// Construction, hosts and names.

namespace {
void check_config(const LinkConfig& c, std::string_view what) {
  if (c.latency_min < absl::ZeroDuration() || c.latency_max < c.latency_min) {
    throw std::invalid_argument(absl::StrCat(av(what), ": need 0 <= latency_min <= latency_max, got [",
                                             absl::FormatDuration(c.latency_min), ", ",
                                             absl::FormatDuration(c.latency_max), "]"));
  }
  if (c.latency_max > absl::Hours(24)) {
    throw std::invalid_argument(
        absl::StrCat(av(what), ": latency_max ", absl::FormatDuration(c.latency_max), " is over a day"));
  }
}
}  // namespace

Network::Network(SimBackend& backend, const Options& options)
    : backend_(backend),
      default_link_{options.net_latency_min, options.net_latency_max, options.net_bandwidth},
      max_segments_(options.net_max_segments),
      send_buffer_(options.net_send_buffer),
      receive_buffer_(options.net_receive_buffer) {
  check_config(default_link_, "sim::Options net_latency_min / net_latency_max");
  if (max_segments_ < 1) throw std::invalid_argument("sim::Options net_max_segments must be at least 1");
  if (send_buffer_ < 1 || receive_buffer_ < 1) {
    throw std::invalid_argument("sim::Options net_send_buffer and net_receive_buffer must be at least 1");
  }
}

Network::~Network() { shutdown(); }

void Network::ensure_hosts() {
  if (!hosts_.empty()) return;
  auto h = std::make_unique<Host>();
  h->id = kImplicit;
  h->name = std::string(kImplicitHost);
  h->context = host_context(kImplicit);
  hosts_.push_back(std::move(h));
  host_ids_.emplace(std::string(kImplicitHost), kImplicit);
}

Network::HostId Network::host_id(std::string_view name) const {
  auto it = host_ids_.find(lower(name));
  if (it == host_ids_.end()) {
    std::vector<std::string> names;
    for (const auto& h : hosts_) names.push_back(h->name);
    if (names.empty()) names.push_back(std::string(kImplicitHost));
    throw std::invalid_argument(
        absl::StrCat("unknown simulated host '", av(name), "' (hosts: ", absl::StrJoin(names, ", "), ")"));
  }
  return it->second;
}

namespace {
ParsedAddress host_address(std::string_view host_name, std::string_view address) {
  std::optional<ParsedAddress> p = parse_address(address);
  if (!p) {
    throw std::invalid_argument(
        absl::StrCat("host '", av(host_name), "': '", av(address), "' is not a numeric IPv4 or IPv6 address"));
  }
  if (p->loopback || p->wildcard || p->multicast) {
    throw std::invalid_argument(absl::StrCat("host '", av(host_name), "': ", p->text, " is a ",
                                             p->loopback   ? "loopback address (every host has its own)"
                                             : p->wildcard ? "wildcard address"
                                                           : "multicast address",
                                             ", not a host's address"));
  }
  return *p;
}
}  // namespace

void Network::add_host(std::string_view name, const std::vector<std::string>& addresses) {
  ensure_hosts();
  const std::string key = lower(name);
  if (key.empty()) throw std::invalid_argument("add_host: empty host name");
  if (key == kImplicitHost) {
    throw std::invalid_argument(
        "add_host: 'localhost' is the implicit host; give it addresses with add_address(\"localhost\", ...)");
  }
  if (host_ids_.count(key)) throw std::invalid_argument(absl::StrCat("add_host: host '", av(name), "' exists already"));
  if (aliases_.count(key)) throw std::invalid_argument(absl::StrCat("add_host: '", av(name), "' is a name (add_name)"));
  std::vector<std::string> normalised;
  for (const std::string& a : addresses) {
    const ParsedAddress p = host_address(name, a);
    if (auto it = address_owner_.find(p.text); it != address_owner_.end()) {
      throw std::invalid_argument(
          absl::StrCat("add_host '", av(name), "': address ", p.text, " belongs to host '", host(it->second).name, "'"));
    }
    if (std::find(normalised.begin(), normalised.end(), p.text) != normalised.end()) {
      throw std::invalid_argument(absl::StrCat("add_host '", av(name), "': address ", p.text, " given twice"));
    }
    normalised.push_back(p.text);
  }
  auto h = std::make_unique<Host>();
  h->id = static_cast<HostId>(hosts_.size());
  h->name = std::string(name);
  h->addresses = normalised;
  h->context = host_context(h->id);
  for (const std::string& a : normalised) address_owner_.emplace(a, h->id);
  host_ids_.emplace(key, h->id);
  hosts_.push_back(std::move(h));
}

void Network::add_address(std::string_view host_name, std::string_view address) {
  ensure_hosts();
  Host& h = host(host_id(host_name));
  const ParsedAddress p = host_address(host_name, address);
  if (auto it = address_owner_.find(p.text); it != address_owner_.end()) {
    throw std::invalid_argument(
        absl::StrCat("add_address: ", p.text, " belongs to host '", host(it->second).name, "' already"));
  }
  h.addresses.push_back(p.text);
  address_owner_.emplace(p.text, h.id);
}

void Network::add_name(std::string_view name, std::string_view address) {
  ensure_hosts();
  const std::string key = lower(name);
  if (key.empty()) throw std::invalid_argument("add_name: empty name");
  if (host_ids_.count(key)) {
    throw std::invalid_argument(absl::StrCat("add_name: '", av(name), "' is a host's name (it resolves to its addresses)"));
  }
  if (parse_address(key)) throw std::invalid_argument(absl::StrCat("add_name: '", av(name), "' is a numeric address"));
  std::optional<ParsedAddress> p = parse_address(address);
  if (!p) {
    throw std::invalid_argument(
        absl::StrCat("add_name '", av(name), "': '", av(address), "' is not a numeric IPv4 or IPv6 address"));
  }
  aliases_[key].push_back(p->text);
}

bool Network::has_host(std::string_view name) const {
  return lower(name) == kImplicitHost || host_ids_.count(lower(name)) != 0;
}

std::vector<std::string> Network::hosts() const {
  if (hosts_.empty()) return {std::string(kImplicitHost)};
  std::vector<std::string> out;
  for (const auto& h : hosts_) out.push_back(h->name);
  return out;
}

std::vector<std::string> Network::addresses(std::string_view host_name) const {
  if (hosts_.empty()) {
    if (lower(host_name) == kImplicitHost) return {};
    return host(host_id(host_name)).addresses;  // throws
  }
  return host(host_id(host_name)).addresses;
}

namespace {
// The current host, a context variable (api/contextvars.h): a task inherits
// its creator's value, a callback its scheduler's, and network callbacks run
// in their host's context (HostScope). Unset: the implicit host.
ContextVar<uint32_t>& host_var() {
  static ContextVar<uint32_t>* const kVar = new ContextVar<uint32_t>("twinloop.sim.host");
  return *kVar;
}
}  // namespace

internal::Ref<internal::ContextState> Network::host_context(HostId id) {
  Context c;
  c.run([id] { host_var().set(id); });
  return internal::ContextAccess::state(c);
}

// THE current host: see the header comment.
Network::HostId Network::current_host_id() const {
  const HostId id = host_var().get(kImplicit);
  // A value from another simulation's network (a context that outlived its
  // loop) names no host here.
  return id < hosts_.size() ? id : kImplicit;
}

const std::string& Network::host_name(HostId id) const { return host(id).name; }

Network::HostId Network::host_in(const internal::Ref<internal::ContextState>& context) const {
  const HostId id = context ? internal::ContextAccess::of(context).get(host_var()).value_or(kImplicit) : kImplicit;
  return id < hosts_.size() ? id : kImplicit;
}

std::string Network::current_host() const {
  const HostId id = current_host_id();
  return hosts_.empty() ? std::string(kImplicitHost) : host(id).name;
}

Context Network::context_on(std::string_view host_name, const std::optional<Context>& base) {
  ensure_hosts();
  const HostId id = host_id(host_name);
  Context c = base ? base->copy() : copy_context();
  c.run([id] { host_var().set(id); });
  return c;
}

Network& Network::of(EventLoop& loop) {
  auto* sim = dynamic_cast<SimBackend*>(&loop.backend());
  if (!sim) {
    throw std::runtime_error(
        "spawn_on: simulated hosts exist only on the simulated loop (sim::run, sim::Simulation)");
  }
  return sim->network();
}

// ---------------------------------------------------------------------------
// Links.

void Network::apply_config(Link& l, const LinkConfig& config) {
  l.config = config;
  l.latency_min_ns = absl::ToInt64Nanoseconds(config.latency_min);
  l.latency_range_us = static_cast<uint64_t>(absl::ToInt64Microseconds(config.latency_max - config.latency_min));
}

Network::Link& Network::link_between(HostId from, HostId to) {
  std::unique_ptr<Link>& slot = links_[{from, to}];
  if (!slot) {
    slot = std::make_unique<Link>();
    slot->from = from;
    slot->to = to;
    apply_config(*slot, default_link_);
    update_link(*slot);  // its receiving host may be down
  }
  return *slot;
}

void Network::set_default_link(const LinkConfig& config) {
  check_config(config, "set_default_link");
  default_link_ = config;
  bool in_use = false;
  for (auto& [key, l] : links_) {
    if (!l->custom) {
      in_use |= l->carried;
      apply_config(*l, config);
    }
  }
  if (in_use) note_link_change("set_default_link", "", "", config);
}

void Network::set_link(std::string_view from, std::string_view to, const LinkConfig& config) {
  ensure_hosts();
  check_config(config, absl::StrCat("set_link(", av(from), ", ", av(to), ")"));
  Link& l = link_between(host_id(from), host_id(to));
  l.custom = true;
  apply_config(l, config);
  if (l.carried) note_link_change("set_link", host(l.from).name, host(l.to).name, config);
}

LinkConfig Network::link(std::string_view from, std::string_view to) const {
  if (hosts_.empty()) {
    // Only the implicit host exists (not materialised yet).
    if (lower(from) != kImplicitHost) host_id(from);
    if (lower(to) != kImplicitHost) host_id(to);
    return default_link_;
  }
  auto it = links_.find({host_id(from), host_id(to)});
  return it == links_.end() ? default_link_ : it->second->config;
}

void Network::set_buffers(uint32_t send_bytes, uint32_t receive_bytes) {
  if (send_bytes < 1 || receive_bytes < 1) throw std::invalid_argument("set_buffers: each buffer needs at least 1 byte");
  send_buffer_ = send_bytes;
  receive_buffer_ = receive_bytes;
}

// ---------------------------------------------------------------------------
// Resolving, connecting, listening.

int64_t Network::now() const { return backend_.now_ns_; }
bool Network::loop_closed() const { return !backend_.loop_ || backend_.loop_->is_closed(); }
void Network::note(internal::EventKind kind, uint64_t id) { backend_.on_event(kind, id); }

namespace {
uint64_t segment_id(uint64_t connection_id, uint8_t dir, uint32_t seq) {
  return connection_id << 32 | static_cast<uint64_t>(dir) << 31 | (seq & 0x7FFFFFFFu);
}
}  // namespace

void Network::resolve(std::string name, uint16_t port, SocketAddress::Family family, ResolveDone done) {
  if (shut_down_ || loop_closed()) throw std::runtime_error("resolve: the simulated loop is closed");
  std::vector<SocketAddress> out;
  const auto add = [&](const std::string& a) {
    std::optional<ParsedAddress> p = parse_address(a);
    if (p && (family == SocketAddress::Family::kUnspecified || family == p->family)) {
      out.push_back(make_address(p->family, p->text, port));
    }
  };
  const std::string key = lower(name);
  if (std::optional<ParsedAddress> p = parse_address(name)) {
    add(p->text);
  } else if (key == kImplicitHost) {
    add("127.0.0.1");
    add("::1");
  } else if (auto h = host_ids_.find(key); h != host_ids_.end()) {
    for (const std::string& a : host(h->second).addresses) add(a);
  } else if (auto a = aliases_.find(key); a != aliases_.end()) {
    for (const std::string& s : a->second) add(s);
  }
  std::exception_ptr error;
  if (out.empty()) {
    error = std::make_exception_ptr(
        std::system_error(EAI_NONAME, resolver_category(), absl::StrCat("cannot resolve '", name, "'")));
  }
  backend_.loop_->call_soon([done = std::move(done), out = std::move(out), error]() mutable {
    done(std::move(out), error);
  });
}

void Network::fail_soon(ConnectDone done, int err, const std::string& what) {
  backend_.loop_->call_soon(
      [done = std::move(done), error = make_system_error(err, what)]() mutable { done(nullptr, error); });
}

uint16_t Network::draw_port(Host& h, int family) {
  const std::set<uint16_t>& used = h.ports[family];
  const auto first = used.lower_bound(static_cast<uint16_t>(kEphemeralFirst));
  const auto last = used.upper_bound(static_cast<uint16_t>(kEphemeralLast));
  const uint64_t taken = static_cast<uint64_t>(std::distance(first, last));
  const uint64_t free = kEphemeralLast - kEphemeralFirst + 1 - taken;
  if (free == 0) return 0;
  // The draw-th free port, counting up from the range's start.
  uint32_t port = kEphemeralFirst + static_cast<uint32_t>(backend_.choose(draw_sites::kNetEphemeralPort, free));
  for (auto it = first; it != last && *it <= port; ++it) ++port;
  return static_cast<uint16_t>(port);
}

void Network::release_port(End& e) {
  if (e.port == 0) return;
  host(e.host).ports[e.port_family].erase(e.port);
  e.port = 0;
}

Network::Connection& Network::new_connection(HostId from, HostId to, bool unix_socket) {
  const uint64_t id = next_connection_id_++;
  auto owned = std::make_unique<Connection>(this, id, unix_socket);
  Connection& c = *owned;
  c.flows[0].link = &link_between(from, to);
  c.flows[1].link = &link_between(to, from);
  c.flows[0].link->carried = c.flows[1].link->carried = true;
  for (Flow& f : c.flows) {
    f.limit = uint64_t{send_buffer_} + receive_buffer_;
    f.window = receive_buffer_;
    f.advertised = receive_buffer_;
  }
  c.ends[0].host = from;
  c.ends[1].host = to;
  conns_.emplace(id, std::move(owned));
  return c;
}

void Network::connect(const SocketAddress& remote, const ConnectOptions& options, ConnectDone done) {
  static_cast<void>(options);  // TCP_NODELAY: there is no Nagle here
  if (shut_down_ || loop_closed()) throw std::runtime_error("connect: the simulated loop is closed");
  ensure_hosts();
  const HostId src = current_host_id();
  Host& from = host(src);
  const std::string what = absl::StrCat("connect to ", remote.to_string());
  if (from.down) {
    fail_soon(std::move(done), ENETDOWN, absl::StrCat(what, " (host '", from.name, "' is down: host_down)"));
    return;
  }
  Connection* c = nullptr;
  if (remote.family == SocketAddress::Family::kUnix) {
    if (remote.path.empty() || !from.unix_listeners.count(remote.path)) {
      fail_soon(std::move(done), ENOENT, what);
      return;
    }
    c = &new_connection(src, src, /*unix_socket=*/true);
    c->ends[0].local = SocketAddress::unix_path("");
    c->ends[0].peer = remote;
  } else {
    std::optional<ParsedAddress> p = parse_address(remote.host);
    if (!p || (remote.family != SocketAddress::Family::kUnspecified && remote.family != p->family)) {
      fail_soon(std::move(done), EINVAL, absl::StrCat(what, " (not a numeric address of its family)"));
      return;
    }
    const int fi = family_index(p->family);
    HostId dst;
    std::string dst_address = p->text;
    std::string src_address;
    if (p->loopback || p->wildcard) {
      // Linux connects to the wildcard address as to the loopback.
      if (p->wildcard) dst_address = fi == 0 ? "127.0.0.1" : "::1";
      dst = src;
      src_address = dst_address;
    } else {
      auto owner = address_owner_.find(p->text);
      if (owner == address_owner_.end()) {
        fail_soon(std::move(done), ENETUNREACH, absl::StrCat(what, " (no simulated host has address ", p->text, ")"));
        return;
      }
      dst = owner->second;
      if (dst == src) {
        src_address = p->text;
      } else {
        for (const std::string& a : from.addresses) {
          if (parse_address(a)->family == p->family) {
            src_address = a;
            break;
          }
        }
        if (src_address.empty()) {
          fail_soon(std::move(done), ENETUNREACH,
                    absl::StrCat(what, " (host '", from.name, "' has no ", fi == 0 ? "IPv4" : "IPv6",
                                 " address to connect from: Network::add_address)"));
          return;
        }
      }
    }
    const uint16_t port = draw_port(from, fi);
    if (port == 0) {
      fail_soon(std::move(done), EADDRNOTAVAIL, absl::StrCat(what, " (no free ephemeral port)"));
      return;
    }
    from.ports[fi].insert(port);
    c = &new_connection(src, dst, /*unix_socket=*/false);
    c->ends[0].port = port;
    c->ends[0].port_family = fi;
    c->ends[0].local = make_address(p->family, src_address, port);
    c->ends[0].peer = make_address(p->family, dst_address, remote.port);
  }
  c->ends[1].local = c->ends[0].peer;
  c->ends[1].peer = c->ends[0].local;
  c->ends[0].state = End::State::kConnecting;
  c->done = std::move(done);
  enqueue(c->flows[0], kSyn, 0, 0, 0);
}

std::unique_ptr<StreamListener> Network::listen(const SocketAddress& local, const ListenOptions& options) {
  if (shut_down_ || loop_closed()) throw std::runtime_error("listen: the simulated loop is closed");
  ensure_hosts();
  const HostId hid = current_host_id();
  Host& h = host(hid);
  const std::string what = absl::StrCat("listen on ", local.to_string(), " (host '", h.name, "')");
  if (h.down) throw_system_error(ENETDOWN, absl::StrCat(what, ": the host is down (host_down)"));
  auto l = std::make_unique<Listener>();
  l->net = this;
  l->id = next_listener_id_++;
  l->host = hid;
  l->backlog_max = static_cast<size_t>(std::clamp(options.backlog, 0, kSomaxconn));
  if (local.family == SocketAddress::Family::kUnix) {
    if (local.path.empty()) throw_system_error(EINVAL, absl::StrCat(what, ": an unnamed Unix socket cannot listen"));
    if (h.unix_listeners.count(local.path)) throw_system_error(EADDRINUSE, what);
    l->unix_socket = true;
    l->local = local;
    h.unix_listeners.emplace(local.path, l.get());
  } else {
    if (local.family == SocketAddress::Family::kUnspecified) throw_system_error(EAFNOSUPPORT, what);
    const bool v6 = local.family == SocketAddress::Family::kInet6;
    std::optional<ParsedAddress> p = parse_address(local.host.empty() ? (v6 ? "::" : "0.0.0.0") : local.host);
    if (!p || p->family != local.family) throw_system_error(EINVAL, absl::StrCat(what, ": not a numeric address"));
    if (!p->wildcard && !p->loopback) {
      auto owner = address_owner_.find(p->text);
      if (owner == address_owner_.end() || owner->second != hid) throw_system_error(EADDRNOTAVAIL, what);
    }
    const int fi = family_index(p->family);
    uint16_t port = local.port;
    if (port == 0) {
      port = draw_port(h, fi);
      if (port == 0) throw_system_error(EADDRINUSE, absl::StrCat(what, " (no free ephemeral port)"));
    } else if (h.ports[fi].count(port)) {
      throw_system_error(EADDRINUSE, what);
    }
    h.ports[fi].insert(port);
    l->family = fi;
    l->port = port;
    l->wildcard = p->wildcard;
    l->local = make_address(p->family, p->text, port);
    h.inet_listeners.emplace(std::make_pair(fi, port), l.get());
  }
  auto handle = std::make_unique<ListenerHandle>(*l);
  l->handle = handle.get();
  const uint64_t id = l->id;
  listeners_.emplace(id, std::move(l));
  return handle;
}

Network::Listener* Network::find_listener(const Connection& c) const {
  const End& server = c.ends[1];
  const Host& h = host(server.host);
  if (c.unix_socket) {
    auto it = h.unix_listeners.find(server.local.path);
    return it == h.unix_listeners.end() ? nullptr : it->second;
  }
  auto it = h.inet_listeners.find({family_index(server.local.family), server.local.port});
  if (it == h.inet_listeners.end()) return nullptr;
  Listener* l = it->second;
  return l->wildcard || l->local.host == server.local.host ? l : nullptr;
}

// ---------------------------------------------------------------------------
// Segments.

// The chain kind of a connection's draws (sim/strategy.h, ChainScope).
constexpr std::string_view kConnectionChain = "net.connection";

void Network::enqueue(Flow& f, uint8_t kind, uint64_t end, uint64_t bytes, int64_t extra_ns) {
  Link& l = *f.link;
  const int64_t start = std::max(now() + extra_ns, l.busy_until_ns);
  int64_t serialise_ns = 0;
  if (l.config.bandwidth != 0 && bytes != 0) {
    serialise_ns = static_cast<int64_t>(
        (static_cast<unsigned __int128>(bytes) * 1'000'000'000u + l.config.bandwidth - 1) / l.config.bandwidth);
    l.busy_until_ns = start + serialise_ns;
  }
  int64_t latency_ns = l.latency_min_ns;
  if (l.latency_range_us != 0) {
    // The draw's chain, for pctcp (sim/strategy.h): this connection.
    const ChainScope chain(kConnectionChain, f.conn->id);
    latency_ns += static_cast<int64_t>(backend_.choose(draw_sites::kNetLatencyUs, l.latency_range_us + 1)) * 1000;
  }
  // Never before the segment sent before it: a connection keeps its order.
  const int64_t arrival = std::max(start + serialise_ns + latency_ns, f.last_arrival_ns);
  f.last_arrival_ns = arrival;
  const uint32_t seq = f.next_seq++;
  f.segs.push_back(Segment{end, arrival, seq, kind});
  note(internal::EventKind::kNetSend, segment_id(f.conn->id, f.dir, seq));
  if (!f.armed) arm(f, arrival);
}

void Network::arm(Flow& f, int64_t when_ns) {
  f.armed = true;
  if (loop_closed()) return;
  SimBackend::add_timer(*backend_.loop_, &f, when_ns);
}

void Network::flow_due(Flow& f) {
  f.armed = false;
  Connection& c = *f.conn;
  ++c.busy;
  if (!f.segs.empty()) {
    const Segment s = f.segs.front();
    if (s.arrival_ns > now()) {
      arm(f, s.arrival_ns);
    } else if (f.link->faulty) [[unlikely]] {
      stopped_arrival(f);
    } else {
      // One arrival per loop iteration: the receiver may read in between.
      f.segs.pop_front();
      deliver(f, s);
    }
  }
  if (!f.armed && !f.segs.empty()) arm(f, std::max(f.segs.front().arrival_ns, now()));
  --c.busy;
  maybe_free(c);
}

void Network::deliver(Flow& f, const Segment& s) {
  Connection& c = *f.conn;
  End& to = c.ends[1 - f.dir];
  note(internal::EventKind::kNetDeliver, segment_id(c.id, f.dir, s.seq));
  switch (s.kind) {
    case kData:
      if (to.present() && !to.reset && !to.rst_sent) {
        f.recv_end = s.end;
        poke(to, true);
      } else {
        // Nobody will read it. Data reaching a closed socket is answered
        // with an RST (Linux tcp_rcv_state_process).
        f.recv_end = f.read_off = s.end;
        if (to.state == End::State::kClosed && !to.rst_sent && !to.reset) send_rst(to);
      }
      break;
    case kFin:
      f.fin_delivered = true;
      poke(to, true);
      // A FIN reaching an end whose host crashed (and is back up): no socket
      // has it, so the host answers with an RST.
      if (to.vanished && !to.rst_sent) [[unlikely]] send_rst(to);
      break;
    case kRst:
      receive_rst(to);
      break;
    case kSyn:
      syn_arrived(c);
      break;
    case kSynAck:
      established(c);
      break;
    case kAck:
      handshake_done(c);
      break;
    case kRefused:
      connect_failed(c, ECONNREFUSED);
      break;
  }
}

void Network::syn_arrived(Connection& c) {
  Listener* l = find_listener(c);
  if (!l) {
    enqueue(c.flows[1], kRefused, 0, 0, 0);
    return;
  }
  // Linux's accept queue holds backlog + 1 (sk_acceptq_is_full); handshakes
  // under way count, so that the queue stays within its bound.
  if (l->backlog.size() + l->half_open > l->backlog_max) {
    if (c.unix_socket) {
      connect_failed(c, EAGAIN);  // unix_stream_connect, non-blocking
    } else if (c.syn_retries == kSynRetries) {
      connect_failed(c, ETIMEDOUT);
    } else {
      enqueue(c.flows[0], kSyn, 0, 0, kSynRtoNs << c.syn_retries++);
    }
    return;
  }
  c.ends[1].state = End::State::kSynReceived;
  c.listener = l;
  ++l->half_open;
  enqueue(c.flows[1], kSynAck, 0, 0, 0);
}

// The connector's ACK completes the handshake: the connection joins the
// backlog (Linux queues it for accept() only now, tcp_check_req).
void Network::handshake_done(Connection& c) {
  End& server = c.ends[1];
  if (server.state != End::State::kSynReceived) return;
  Listener* l = c.listener;
  if (!l) {
    // The listener closed meanwhile.
    server.state = End::State::kClosed;
    send_rst(server);
    return;
  }
  --l->half_open;
  server.state = End::State::kBacklog;
  l->backlog.push_back(&c);
  poke_listener(*l);
}

void Network::report_callback_error(const char* what) {
  backend_.loop_->call_exception_handler(
      ExceptionContext::of(absl::StrCat("Exception in ", what, " (simulated network)"), std::current_exception()));
}

void Network::established(Connection& c) {
  End& e = c.ends[0];
  if (e.state != End::State::kConnecting) {
    // The connector's host crashed meanwhile (and is up again): the SYN-ACK
    // finds no socket, and the acceptor's half-open connection is reset.
    if (e.vanished) forget_half_open(c);
    return;
  }
  e.state = End::State::kOpen;
  enqueue(c.flows[0], kAck, 0, 0, 0);  // before anything the owner writes
  auto channel = std::make_unique<Channel>(e);
  e.channel = channel.get();
  ConnectDone done = std::move(c.done);
  HostScope scope(*this, e.host);
  try {
    done(std::move(channel), nullptr);
  } catch (...) {
    report_callback_error("a connect callback");
  }
}

void Network::connect_failed(Connection& c, int err) {
  End& e = c.ends[0];
  if (e.state != End::State::kConnecting) return;
  e.state = End::State::kClosed;
  release_port(e);
  ConnectDone done = std::move(c.done);
  std::exception_ptr error = make_system_error(err, absl::StrCat("connect to ", e.peer.to_string()));
  HostScope scope(*this, e.host);
  try {
    done(nullptr, std::move(error));
  } catch (...) {
    report_callback_error("a connect callback");
  }
}

void Network::discard(Flow& f) {
  if (f.parked) [[unlikely]] {
    // No timer is pending; the link's list forgets it when unblocked.
    f.parked = false;
    f.armed = false;
  }
  f.segs.clear();
  f.read_off = f.recv_end = f.sent_end = f.write_end;
  f.advertised = f.read_off + f.window;
}

void Network::send_rst(End& e) {
  Connection& c = *e.conn;
  e.rst_sent = true;
  Flow& out = c.flows[e.side];
  discard(out);
  discard(c.flows[1 - e.side]);
  enqueue(out, kRst, out.write_end, 0, 0);
  // The peer's writes have room again (and go nowhere) until the RST arrives.
  poke(c.ends[1 - e.side], false);
}

void Network::receive_rst(End& e) {
  if (!e.present() || e.reset) return;
  Connection& c = *e.conn;
  if (e.state == End::State::kConnecting) {
    connect_failed(c, ECONNRESET);
    return;
  }
  e.reset = true;
  discard(c.flows[0]);
  discard(c.flows[1]);
  poke(e, true);
  poke(e, false);
}

void Network::transmit(Flow& f) {
  const End& from = f.conn->ends[f.dir];
  if (from.reset || from.rst_sent || from.mute) return;
  const uint64_t unsent = f.write_end - f.sent_end;
  const uint64_t room = f.advertised > f.sent_end ? f.advertised - f.sent_end : 0;
  if (unsent != 0 && room != 0) send_data(f, std::min(unsent, room));
  if (f.fin_queued && !f.fin_sent && f.sent_end == f.write_end) {
    f.fin_sent = true;
    enqueue(f, kFin, f.sent_end, 0, 0);
  }
}

void Network::send_data(Flow& f, uint64_t bytes) {
  const ChainScope chain(kConnectionChain, f.conn->id);  // for pctcp (sim/strategy.h)
  uint64_t pieces = 1;
  const uint64_t most = std::min<uint64_t>(max_segments_, bytes);
  if (most > 1) pieces += backend_.choose(draw_sites::kNetSegments, most);
  uint64_t left = bytes;
  for (uint64_t p = pieces; p > 0; --p) {
    // Leave at least a byte for each later piece.
    const uint64_t len = p == 1 ? left : 1 + backend_.choose(draw_sites::kNetSegmentCut, left - p + 1);
    left -= len;
    f.sent_end += len;
    enqueue(f, kData, f.sent_end, len, 0);
  }
}

void Network::consumed(Flow& f) {
  const uint64_t edge = f.read_off + f.window;
  if (edge - f.advertised >= f.window / 2 || f.read_off == f.sent_end) {
    f.advertised = edge;
    transmit(f);  // the window opened
  }
  poke(f.conn->ends[f.dir], false);
}

// ---------------------------------------------------------------------------
// Faults (sim/network.h, "Faults"; docs/network.md, "Network faults").

namespace {
// What kind of fault an event is: the top byte of its kFault event's id.
enum FaultCode : uint8_t {
  kFaultPartition = 1,
  kFaultHeal = 2,
  kFaultHealAll = 3,
  kFaultHold = 4,
  kFaultRelease = 5,
  kFaultReset = 6,
  kFaultHostDown = 7,
  kFaultHostUp = 8,
  kFaultLink = 9,
};

// FNV-1a: a hash that is the same in every process (absl::Hash is seeded).
uint64_t stable_hash(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

std::string format_config(const LinkConfig& c) {
  std::string s = c.latency_min == c.latency_max
                      ? absl::StrCat("latency ", absl::FormatDuration(c.latency_min))
                      : absl::StrCat("latency ", absl::FormatDuration(c.latency_min), "..",
                                     absl::FormatDuration(c.latency_max));
  absl::StrAppend(&s, c.bandwidth == 0 ? ", unlimited bandwidth" : absl::StrCat(", ", c.bandwidth, " bytes/s"));
  return s;
}
}  // namespace

std::string Network::fault(uint8_t code, std::string what) {
  faults_.push_back(AppliedFault{absl::Nanoseconds(now()), what});
  note(internal::EventKind::kFault, uint64_t{code} << 56 | (stable_hash(what) & ((uint64_t{1} << 56) - 1)));
  return what;
}

void Network::note_link_change(std::string_view call, std::string_view from, std::string_view to,
                               const LinkConfig& config) {
  // Configuring links no connection has used yet is setup; changing one in
  // use is a fault (a link slowed or sped up mid-run).
  fault(kFaultLink, from.empty() ? absl::StrCat(av(call), ": ", format_config(config))
                                 : absl::StrCat(av(call), " ", av(from), " -> ", av(to), ": ", format_config(config)));
}

std::vector<Network::HostId> Network::host_set(const std::vector<std::string>& names, const char* call) const {
  if (names.empty()) throw std::invalid_argument(absl::StrCat(call, ": an empty set of hosts"));
  std::vector<HostId> ids;
  for (const std::string& n : names) {
    const HostId id = host_id(n);  // std::invalid_argument naming the hosts
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
      throw std::invalid_argument(absl::StrCat(call, ": host '", n, "' is named twice"));
    }
    ids.push_back(id);
  }
  return ids;
}

std::string Network::set_names(const std::vector<HostId>& ids) const {
  std::vector<std::string> names;
  for (HostId id : ids) names.push_back(host(id).name);
  return absl::StrCat("{", absl::StrJoin(names, ", "), "}");
}

void Network::update_link(Link& l) { l.faulty = l.holds != 0 || l.loses != 0 || host(l.to).down; }

void Network::block(HostId from, HostId to, PartitionMode mode) {
  Link& l = link_between(from, to);
  if (mode == PartitionMode::kHold) {
    ++l.holds;
  } else {
    ++l.loses;
  }
  update_link(l);
  if (mode == PartitionMode::kLose && !l.parked.empty()) {
    // Segments waiting at a hold meet a kLose partition now: their
    // connections are cut.
    std::vector<std::pair<uint64_t, uint8_t>> parked;
    parked.swap(l.parked);
    for (const auto& [id, dir] : parked) {
      auto it = conns_.find(id);
      if (it != conns_.end() && it->second->flows[dir].parked) cut(*it->second);
    }
  }
}

void Network::unblock(HostId from, HostId to, PartitionMode mode) {
  Link& l = link_between(from, to);
  if (mode == PartitionMode::kHold) {
    --l.holds;
  } else {
    --l.loses;
  }
  update_link(l);
  if (l.holds == 0 && l.loses == 0) unpark_link(l);
}

// The link is unblocked: the segments that waited at it cross it, each
// arriving the link's latency (drawn again) from now, in order.
void Network::unpark_link(Link& l) {
  std::vector<std::pair<uint64_t, uint8_t>> parked;
  parked.swap(l.parked);
  for (const auto& [id, dir] : parked) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Connection& c = *it->second;
    Flow& f = c.flows[dir];
    if (!f.parked || f.link != &l) continue;
    f.parked = false;
    f.armed = false;
    const int64_t t = now();
    int64_t previous = 0;
    for (size_t i = 0; i < f.segs.size(); ++i) {
      Segment& s = f.segs.at(i);
      if (s.arrival_ns <= t) {
        int64_t latency_ns = l.latency_min_ns;
        if (l.latency_range_us != 0) {
          const ChainScope chain(kConnectionChain, id);  // for pctcp (sim/strategy.h)
          latency_ns +=
              static_cast<int64_t>(backend_.choose(draw_sites::kNetReleaseLatencyUs, l.latency_range_us + 1)) * 1000;
        }
        s.arrival_ns = t + latency_ns;
      }
      s.arrival_ns = std::max(s.arrival_ns, previous);
      previous = s.arrival_ns;
    }
    f.last_arrival_ns = std::max(f.last_arrival_ns, previous);
    if (!f.segs.empty()) arm(f, f.segs.front().arrival_ns);
    maybe_free(c);
  }
}

// The head segment of `f` is due at a faulty link: stopped by a partition
// or a hold, or lost at a host that is down.
void Network::stopped_arrival(Flow& f) {
  Connection& c = *f.conn;
  Link& l = *f.link;
  const Segment s = f.segs.front();
  const bool down = host(l.to).down;
  if (!down && l.holds == 0 && l.loses == 0) {
    f.segs.pop_front();
    deliver(f, s);
    return;
  }
  if (s.kind == kSyn || s.kind == kSynAck || s.kind == kRefused) {
    f.segs.pop_front();
    handshake_lost(f, s);
    return;
  }
  if (down) {
    // Lost: nothing answers it. The end that sent it learns only when its
    // retransmissions time out (or host_up answers them with an RST).
    f.segs.pop_front();
    if (s.kind != kRst) doom(c.ends[f.dir]);
    return;
  }
  if (l.loses != 0) {
    // A connection cut already sends nothing across: what it still sends
    // (the RST host_up answers a doomed peer with) is lost at the partition.
    if (c.cut) {
      f.segs.pop_front();
      return;
    }
    cut(c);
    return;
  }
  park(f);
}

void Network::park(Flow& f) {
  f.parked = true;
  f.armed = true;  // no timer: unpark_link arms it
  f.link->parked.emplace_back(f.conn->id, f.dir);
}

// The acceptor's half-open connection (SYN answered, ACK not arrived) is
// forgotten, as a SYN-ACK that is never acknowledged.
void Network::forget_half_open(Connection& c) {
  End& server = c.ends[1];
  if (server.state != End::State::kSynReceived) return;
  server.state = End::State::kNone;
  if (c.listener) {
    --c.listener->half_open;
    c.listener = nullptr;
  }
}

// A SYN, SYN-ACK or refusal stopped by a fault is lost: the connector sends
// its SYN again after its retransmission timeout (Linux: 1 s, doubling,
// tcp_syn_retries = 6), then gives up with ETIMEDOUT.
void Network::handshake_lost(Flow& f, const Segment& s) {
  Connection& c = *f.conn;
  if (s.kind == kSynAck) forget_half_open(c);
  if (c.ends[0].state != End::State::kConnecting) return;
  if (c.syn_retries == kSynRetries) {
    connect_failed(c, ETIMEDOUT);
  } else {
    enqueue(c.flows[0], kSyn, 0, 0, kSynRtoNs << c.syn_retries++);
  }
}

// A kLose partition stopped one of its segments: nothing crosses the
// connection any more and both ends time out.
void Network::cut(Connection& c) {
  if (c.cut) return;
  c.cut = true;
  for (Flow& f : c.flows) {
    // The bytes in flight are gone; they stay unacknowledged (sent, never
    // received), so the writer's buffers stay full.
    if (f.parked) {
      f.parked = false;
      f.armed = false;
    }
    f.segs.clear();
  }
  forget_half_open(c);
  for (End& e : c.ends) {
    e.mute = true;
    doom(e);
  }
  maybe_free(c);
}

void Network::doom(End& e) {
  if (!e.present() || e.reset || e.doomed) return;
  e.doomed = true;
  e.doom_at_ns = now() + retransmission_timeout_ns_;
  if (loop_closed()) return;
  backend_.loop_->call_later(absl::Nanoseconds(retransmission_timeout_ns_),
                             [this, id = e.conn->id, side = e.side] { end_timed_out(id, side); });
}

void Network::end_timed_out(uint64_t connection_id, uint8_t side) {
  auto it = conns_.find(connection_id);
  if (it == conns_.end()) return;
  Connection& c = *it->second;
  ++c.busy;
  fail_end(c.ends[side], ETIMEDOUT);
  --c.busy;
  maybe_free(c);
}

// The end fails with `err`: a connect under way fails, an open end's reads
// and writes raise it, its unread bytes are dropped.
void Network::fail_end(End& e, int err) {
  Connection& c = *e.conn;
  if (e.state == End::State::kConnecting) {
    connect_failed(c, err);
    return;
  }
  if (!e.present() || e.reset) return;
  e.reset = true;
  e.error = err;
  discard(c.flows[1 - e.side]);
  poke(e, true);
  poke(e, false);
}

void Network::reset_connection(Connection& c) {
  for (End& e : c.ends) {
    switch (e.state) {
      case End::State::kConnecting:
        connect_failed(c, ECONNRESET);
        break;
      case End::State::kSynReceived:
        forget_half_open(c);
        e.state = End::State::kClosed;
        break;
      case End::State::kBacklog:
        if (c.listener) {
          std::erase(c.listener->backlog, &c);
          c.listener = nullptr;
        }
        e.state = End::State::kClosed;
        break;
      case End::State::kOpen:
        if (!e.reset) {
          e.reset = true;
          e.error = 0;
        }
        break;
      case End::State::kNone:
      case End::State::kClosed:
        break;
    }
  }
  discard(c.flows[0]);
  discard(c.flows[1]);
  for (End& e : c.ends) {
    poke(e, true);
    poke(e, false);
  }
}

std::string Network::reset_where(const std::vector<uint64_t>& ids, std::string what) {
  for (uint64_t id : ids) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Connection& c = *it->second;
    ++c.busy;
    reset_connection(c);
    --c.busy;
    maybe_free(c);
  }
  return fault(kFaultReset, absl::StrCat(what, ": ", plural(ids.size(), "connection", "connections"), " reset"));
}

std::string Network::reset_connections(std::string_view host_a, std::string_view host_b) {
  ensure_hosts();
  const HostId a = host_id(host_a);
  const HostId b = host_id(host_b);
  std::vector<uint64_t> ids;
  for (const auto& [id, c] : conns_) {
    const HostId x = c->ends[0].host;
    const HostId y = c->ends[1].host;
    if ((x == a && y == b) || (x == b && y == a)) ids.push_back(id);
  }
  return reset_where(ids, absl::StrCat("reset_connections ", host(a).name, " <-> ", host(b).name));
}

std::string Network::reset_connections(std::string_view host_name) {
  ensure_hosts();
  const HostId h = host_id(host_name);
  std::vector<uint64_t> ids;
  for (const auto& [id, c] : conns_) {
    if (c->ends[0].host == h || c->ends[1].host == h) ids.push_back(id);
  }
  return reset_where(ids, absl::StrCat("reset_connections ", host(h).name));
}

std::string Network::partition(const std::vector<std::string>& a, const std::vector<std::string>& b,
                               const PartitionOptions& options) {
  ensure_hosts();
  const std::vector<HostId> left = host_set(a, "partition");
  const std::vector<HostId> right = host_set(b, "partition");
  for (HostId id : left) {
    if (std::find(right.begin(), right.end(), id) != right.end()) {
      throw std::invalid_argument(
          absl::StrCat("partition: host '", host(id).name, "' is on both sides (a host's loopback is never blocked)"));
    }
  }
  Partition p;
  p.mode = options.mode;
  p.what = absl::StrCat("partition ", set_names(left), options.one_way ? " -> " : " <-> ", set_names(right),
                        options.mode == PartitionMode::kHold ? " (hold)" : " (lose)");
  for (HostId x : left) {
    for (HostId y : right) {
      p.links.emplace_back(x, y);
      if (!options.one_way) p.links.emplace_back(y, x);
    }
  }
  std::sort(p.links.begin(), p.links.end());
  for (const auto& [x, y] : p.links) block(x, y, p.mode);
  std::string what = p.what;
  partitions_.push_back(std::move(p));
  return fault(kFaultPartition, std::move(what));
}

std::string Network::heal(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  ensure_hosts();
  const std::vector<HostId> left = host_set(a, "heal");
  const std::vector<HostId> right = host_set(b, "heal");
  const auto in = [](const std::vector<HostId>& v, HostId id) { return std::find(v.begin(), v.end(), id) != v.end(); };
  size_t unblocked = 0;
  std::vector<std::string> ended;
  for (Partition& p : partitions_) {
    std::vector<std::pair<HostId, HostId>> keep;
    for (const auto& [x, y] : p.links) {
      if ((in(left, x) && in(right, y)) || (in(right, x) && in(left, y))) {
        unblock(x, y, p.mode);
        ++unblocked;
      } else {
        keep.emplace_back(x, y);
      }
    }
    p.links.swap(keep);
    if (p.links.empty()) ended.push_back(p.what);
  }
  std::erase_if(partitions_, [](const Partition& p) { return p.links.empty(); });
  std::string what = absl::StrCat("heal ", set_names(left), " <-> ", set_names(right), ": ");
  if (unblocked == 0) {
    absl::StrAppend(&what, "nothing to heal");
  } else {
    absl::StrAppend(&what, plural(unblocked, "blocked link", "blocked links"), " unblocked");
    if (!ended.empty()) absl::StrAppend(&what, ", ended: ", absl::StrJoin(ended, "; "));
  }
  return fault(kFaultHeal, std::move(what));
}

std::string Network::heal_all() {
  std::vector<Partition> all;
  all.swap(partitions_);
  for (const Partition& p : all) {
    for (const auto& [x, y] : p.links) unblock(x, y, p.mode);
  }
  return fault(kFaultHealAll, all.empty() ? std::string("heal_all: nothing to heal")
                                          : absl::StrCat("heal_all: ", plural(all.size(), "partition or hold",
                                                                              "partitions and holds"),
                                                         " ended"));
}

std::string Network::hold(std::string_view from, std::string_view to) {
  ensure_hosts();
  const HostId x = host_id(from);
  const HostId y = host_id(to);
  if (x == y) {
    throw std::invalid_argument(
        absl::StrCat("hold(", host(x).name, ", ", host(y).name, "): a host's loopback cannot be held"));
  }
  for (const Partition& p : partitions_) {
    if (p.is_hold && p.links.front() == std::make_pair(x, y)) {
      throw std::logic_error(absl::StrCat("hold: ", host(x).name, " -> ", host(y).name, " is held already"));
    }
  }
  Partition p;
  p.is_hold = true;
  p.what = absl::StrCat("hold ", host(x).name, " -> ", host(y).name);
  p.links.emplace_back(x, y);
  block(x, y, PartitionMode::kHold);
  std::string what = p.what;
  partitions_.push_back(std::move(p));
  return fault(kFaultHold, std::move(what));
}

std::string Network::release(std::string_view from, std::string_view to) {
  ensure_hosts();
  const HostId x = host_id(from);
  const HostId y = host_id(to);
  auto it = std::find_if(partitions_.begin(), partitions_.end(), [&](const Partition& p) {
    return p.is_hold && p.links.front() == std::make_pair(x, y);
  });
  if (it == partitions_.end()) {
    throw std::logic_error(absl::StrCat("release: ", host(x).name, " -> ", host(y).name,
                                        " is not held (hold holds a link; a partition ends with heal)"));
  }
  partitions_.erase(it);
  unblock(x, y, PartitionMode::kHold);
  return fault(kFaultRelease, absl::StrCat("release ", host(x).name, " -> ", host(y).name));
}

// `e`'s host went down: the end is gone without a word.
void Network::vanish(End& e) {
  Connection& c = *e.conn;
  switch (e.state) {
    case End::State::kNone:
      return;  // a SYN to it is in flight, and will be lost
    case End::State::kConnecting:
      c.done = nullptr;  // the connect never calls back
      break;
    case End::State::kSynReceived:
      forget_half_open(c);
      break;
    case End::State::kBacklog:
      if (c.listener) {
        std::erase(c.listener->backlog, &c);
        c.listener = nullptr;
      }
      break;
    case End::State::kOpen:
    case End::State::kClosed:
      break;
  }
  if (e.channel) e.channel->end_ = nullptr;
  e.channel = nullptr;
  e.events = nullptr;
  e.state = End::State::kClosed;
  e.vanished = true;
  e.mute = true;
  release_port(e);
  // What it had not sent is gone (what it sent is on the wire).
  Flow& out = c.flows[e.side];
  out.write_end = out.sent_end;
  // Nobody reads here any more: the peer's bytes go out (and are lost at
  // the host), up to its buffers, as TCP's retransmissions would.
  Flow& in = c.flows[1 - e.side];
  in.advertised = std::max(in.advertised, in.read_off + in.limit);
  transmit(in);
}

// Marks `l` closed and frees its address and port on its host; false if it
// was closed already.
bool Network::unbind(Listener& l) {
  if (l.closed) return false;
  l.closed = true;
  Host& h = host(l.host);
  if (l.unix_socket) {
    h.unix_listeners.erase(l.local.path);
  } else {
    h.inet_listeners.erase({l.family, l.port});
    h.ports[l.family].erase(l.port);
  }
  return true;
}

void Network::vanish_listener(Listener& l) {
  if (!unbind(l)) return;
  if (l.handle) l.handle->l_ = nullptr;
  l.handle = nullptr;
  l.events = nullptr;
  maybe_free(l);
}

std::string Network::host_down(std::string_view host_name) {
  ensure_hosts();
  const HostId id = host_id(host_name);
  Host& h = host(id);
  if (h.down) throw std::logic_error(absl::StrCat("host_down: host '", h.name, "' is down already"));
  h.down = true;
  for (auto& [key, l] : links_) {
    if (key.second == id) update_link(*l);
  }
  size_t ends = 0;
  std::vector<uint64_t> ids;
  for (const auto& [cid, c] : conns_) {
    if (c->ends[0].host == id || c->ends[1].host == id) ids.push_back(cid);
  }
  for (uint64_t cid : ids) {
    auto it = conns_.find(cid);
    if (it == conns_.end()) continue;
    Connection& c = *it->second;
    ++c.busy;
    for (End& e : c.ends) {
      if (e.host == id && e.state != End::State::kNone && !e.vanished) {
        vanish(e);
        ++ends;
      }
    }
    --c.busy;
    maybe_free(c);
  }
  std::vector<uint64_t> listener_ids;
  for (const auto& [lid, l] : listeners_) {
    if (l->host == id && !l->closed) listener_ids.push_back(lid);
  }
  for (uint64_t lid : listener_ids) {
    auto it = listeners_.find(lid);
    if (it != listeners_.end()) vanish_listener(*it->second);
  }
  return fault(kFaultHostDown, absl::StrCat("host_down ", h.name, ": ", plural(ends, "connection end", "connection ends"),
                                            " and ", plural(listener_ids.size(), "listener", "listeners"),
                                            " vanished"));
}

std::string Network::host_up(std::string_view host_name) {
  ensure_hosts();
  const HostId id = host_id(host_name);
  Host& h = host(id);
  if (!h.down) throw std::logic_error(absl::StrCat("host_up: host '", h.name, "' is not down"));
  h.down = false;
  for (auto& [key, l] : links_) {
    if (key.second == id) update_link(*l);
  }
  // Every peer still retransmitting to a vanished end is answered with an
  // RST.
  size_t answered = 0;
  std::vector<uint64_t> ids;
  for (const auto& [cid, c] : conns_) {
    for (const End& e : c->ends) {
      const End& peer = c->ends[1 - e.side];
      if (e.host == id && e.vanished && !e.rst_sent && peer.doomed && peer.present() && !peer.reset) {
        ids.push_back(cid);
        break;
      }
    }
  }
  for (uint64_t cid : ids) {
    Connection& c = *conns_.at(cid);
    for (End& e : c.ends) {
      if (e.host == id && e.vanished && !e.rst_sent) {
        send_rst(e);
        ++answered;
        break;
      }
    }
  }
  return fault(kFaultHostUp, absl::StrCat("host_up ", h.name, ": ", plural(answered, "peer", "peers"),
                                          " answered with an RST"));
}

bool Network::is_down(std::string_view host_name) const {
  if (hosts_.empty()) {
    // Only the implicit host exists (not materialised yet).
    if (lower(host_name) != kImplicitHost) host_id(host_name);  // throws
    return false;
  }
  return host(host_id(host_name)).down;
}

void Network::set_retransmission_timeout(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) {
    throw std::invalid_argument(absl::StrCat("set_retransmission_timeout: need a positive duration, got ",
                                             absl::FormatDuration(timeout)));
  }
  retransmission_timeout_ns_ = absl::ToInt64Nanoseconds(timeout);
}

// ---------------------------------------------------------------------------
// Channel operations.

std::ptrdiff_t Network::read(End& e, char* buf, size_t n) {
  if (e.reset) {
    if (e.error != 0) throw_system_error(e.error, absl::StrCat("read from ", e.peer.to_string()));
    throw ConnectionResetError(absl::StrCat("read from ", e.peer.to_string()));
  }
  Flow& in = e.conn->flows[1 - e.side];
  const uint64_t avail = in.recv_end - in.read_off;
  if (avail == 0) return in.fin_delivered ? 0 : StreamChannel::kWouldBlock;
  if (n == 0) return 0;
  const size_t k = static_cast<size_t>(std::min<uint64_t>(n, avail));
  in.ring.read(in.read_off, buf, k);
  in.read_off += k;
  consumed(in);
  return static_cast<std::ptrdiff_t>(k);
}

size_t Network::write(End& e, const char* buf, size_t n) {
  Flow& out = e.conn->flows[e.side];
  if (e.reset) {
    if (e.error != 0) throw_system_error(e.error, absl::StrCat("write to ", e.peer.to_string()));
    throw BrokenPipeError(absl::StrCat("write to ", e.peer.to_string(), " (the connection was reset)"));
  }
  if (out.fin_queued) throw BrokenPipeError(absl::StrCat("write to ", e.peer.to_string(), " after shutdown_write"));
  const uint64_t used = out.write_end - out.read_off;
  const uint64_t room = out.limit > used ? out.limit - used : 0;
  const size_t k = static_cast<size_t>(std::min<uint64_t>(n, room));
  if (k == 0) return 0;
  out.ring.write(out.read_off, out.write_end, buf, k);
  out.write_end += k;
  transmit(out);
  return k;
}

void Network::shutdown_write(End& e) {
  Flow& out = e.conn->flows[e.side];
  if (e.reset || out.fin_queued) return;
  out.fin_queued = true;
  transmit(out);
}

void Network::close_end(End& e, bool abort) {
  Connection& c = *e.conn;
  if (e.state != End::State::kOpen) return;
  e.state = End::State::kClosed;
  if (!e.reset && !e.rst_sent && !e.mute) {
    const Flow& in = c.flows[1 - e.side];
    Flow& out = c.flows[e.side];
    // Closing with unread data sends an RST (Linux tcp_close).
    if (abort || in.recv_end != in.read_off) {
      send_rst(e);
    } else if (!out.fin_queued) {
      out.fin_queued = true;
      transmit(out);
    }
  }
  release_port(e);
  maybe_free(c);
}

// ---------------------------------------------------------------------------
// Notifications.

bool Network::readable(const End& e) {
  const Flow& in = e.conn->flows[1 - e.side];
  return e.reset || in.recv_end != in.read_off || in.fin_delivered;
}

bool Network::writable(const End& e) {
  const Flow& out = e.conn->flows[e.side];
  return e.reset || out.fin_queued || out.limit > out.write_end - out.read_off;
}

void Network::poke(End& e, bool readable_side) {
  Notifier& n = readable_side ? e.on_read : e.on_write;
  if (n.pending || e.state != End::State::kOpen || !e.events) return;
  if (readable_side ? !(e.want_read && readable(e)) : !(e.want_write && writable(e))) return;
  if (loop_closed()) return;
  n.pending = true;
  SimBackend::schedule_io(*backend_.loop_, &n);
}

void Network::notify(Notifier& n) {
  End& e = *n.end;
  Connection& c = *e.conn;
  ++c.busy;
  n.pending = false;
  const bool wanted = n.readable ? e.want_read && readable(e) : e.want_write && writable(e);
  if (e.state == End::State::kOpen && e.events && wanted) {
    HostScope scope(*this, e.host);
    try {
      if (n.readable) {
        e.events->on_readable();
      } else {
        e.events->on_writable();
      }
    } catch (...) {
      report_callback_error(n.readable ? "on_readable" : "on_writable");
    }
    // Level-triggered: again next iteration while it holds and is wanted.
    poke(e, n.readable);
  }
  --c.busy;
  maybe_free(c);
}

void Network::poke_listener(Listener& l) {
  if (l.pending || l.closed || !l.events || !l.want || l.backlog.empty() || loop_closed()) return;
  l.pending = true;
  SimBackend::schedule_io(*backend_.loop_, &l);
}

void Network::notify_listener(Listener& l) {
  ++l.busy;
  l.pending = false;
  if (!l.closed && l.events && l.want && !l.backlog.empty()) {
    HostScope scope(*this, l.host);
    try {
      l.events->on_readable();
    } catch (...) {
      report_callback_error("a listener's on_readable");
    }
    poke_listener(l);
  }
  --l.busy;
  maybe_free(l);
}

void Network::close_listener(Listener& l) {
  if (!unbind(l)) return;
  // Connections not accepted yet are reset; handshakes under way are reset
  // when their ACK arrives.
  for (auto& [id, c] : conns_) {
    if (c->listener == &l && c->ends[1].state == End::State::kSynReceived) c->listener = nullptr;
  }
  ++l.busy;
  while (!l.backlog.empty()) {
    Connection* c = l.backlog.front();
    l.backlog.pop_front();
    c->listener = nullptr;
    End& server = c->ends[1];
    server.state = End::State::kClosed;
    if (!server.reset && !server.rst_sent) send_rst(server);
    maybe_free(*c);
  }
  --l.busy;
  maybe_free(l);
}

void Network::maybe_free(Connection& c) {
  if (c.busy != 0 || c.flows[0].armed || c.flows[1].armed || c.listener) return;
  for (const End& e : c.ends) {
    if (e.present() || e.on_read.pending || e.on_write.pending) return;
  }
  conns_.erase(c.id);
}

void Network::maybe_free(Listener& l) {
  if (!l.closed || l.pending || l.busy != 0) return;
  listeners_.erase(l.id);
}

void Network::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& [id, c] : conns_) {
    for (End& e : c->ends) {
      if (e.channel) e.channel->end_ = nullptr;
      e.channel = nullptr;
    }
  }
  for (auto& [id, l] : listeners_) {
    if (l->handle) l->handle->l_ = nullptr;
    l->handle = nullptr;
  }
  for (auto& h : hosts_) {
    h->inet_listeners.clear();
    h->unix_listeners.clear();
    h->ports[0].clear();
    h->ports[1].clear();
  }
  conns_.clear();
  listeners_.clear();
}

// ---------------------------------------------------------------------------
// Reports.

namespace {
const char* state_name(int state) {
  switch (state) {
    case 0:
      return "not there";
    case 1:
      return "connecting";
    case 2:
      return "handshake under way";
    case 3:
      return "waiting to be accepted";
    case 4:
      return "open";
    case 5:
      return "closed";
  }
  return "?";
}
}  // namespace

std::string Network::describe_end(const Connection& c, int side) const {
  const End& e = c.ends[side];
  std::string s = absl::StrCat(hosts_.empty() ? std::string(kImplicitHost) : host(e.host).name, " ",
                               e.local.to_string(), " ", state_name(static_cast<int>(e.state)));
  if (e.reset) absl::StrAppend(&s, e.error == 0 ? ", reset" : absl::StrCat(", failed: ", std::strerror(e.error)));
  if (e.rst_sent) absl::StrAppend(&s, ", sent RST");
  if (e.vanished) absl::StrAppend(&s, ", vanished (host down)");
  if (e.doomed && !e.reset) {
    absl::StrAppend(&s, ", unanswered: ETIMEDOUT at t=", absl::FormatDuration(absl::Nanoseconds(e.doom_at_ns)));
  }
  if (e.state == End::State::kOpen) {
    absl::StrAppend(&s, e.events ? "" : ", no owner events", e.want_read ? ", wants read" : "",
                    e.want_write ? ", wants write" : "");
  }
  return s;
}

std::string Network::describe() const {
  std::string out = absl::StrFormat("simulated network at t=%s: %s, %s, %s\n",
                                    absl::FormatDuration(absl::Nanoseconds(now())),
                                    plural(std::max<size_t>(hosts_.size(), 1), "host", "hosts"),
                                    plural(listeners_.size(), "listener", "listeners"),
                                    plural(conns_.size(), "connection", "connections"));
  if (hosts_.empty()) {
    absl::StrAppend(&out, "  host localhost (implicit): 127.0.0.1 ::1\n");
  }
  for (const auto& h : hosts_) {
    absl::StrAppend(&out, "  host ", h->name, h->id == kImplicit ? " (implicit)" : "", h->down ? " (DOWN)" : "",
                    ": 127.0.0.1 ::1", h->addresses.empty() ? "" : " ", absl::StrJoin(h->addresses, " "), "\n");
  }
  for (const Partition& p : partitions_) {
    std::vector<std::string> links;
    for (const auto& [x, y] : p.links) links.push_back(absl::StrCat(host(x).name, " -> ", host(y).name));
    absl::StrAppend(&out, "  fault in effect: ", p.what, ", blocking ", absl::StrJoin(links, ", "), "\n");
  }
  // The last faults applied (the whole log is faults()).
  constexpr size_t kFaultsShown = 32;
  if (!faults_.empty()) {
    absl::StrAppend(&out, "  faults applied: ", faults_.size(),
                    faults_.size() > kFaultsShown ? absl::StrCat(" (the last ", kFaultsShown, ")") : "", "\n");
    for (size_t i = faults_.size() > kFaultsShown ? faults_.size() - kFaultsShown : 0; i < faults_.size(); ++i) {
      absl::StrAppend(&out, "    t=", absl::FormatDuration(faults_[i].at), " ", faults_[i].what, "\n");
    }
  }
  for (const auto& [id, l] : listeners_) {
    absl::StrAppendFormat(&out, "  listener #%d on %s %s%s: %s waiting to be accepted, %d in handshake (backlog %d)%s\n",
                          id, host(l->host).name, l->local.to_string(), l->unix_socket ? " (unix)" : "",
                          plural(l->backlog.size(), "connection", "connections"), l->half_open, l->backlog_max,
                          l->closed ? ", closed" : "");
  }
  for (const auto& [id, c] : conns_) {
    absl::StrAppendFormat(&out, "  connection #%d (%s%s): %s <-> %s\n", id, c->unix_socket ? "unix" : "tcp",
                          c->cut ? ", cut by a partition" : "", describe_end(*c, 0), describe_end(*c, 1));
    for (int d = 0; d < 2; ++d) {
      const Flow& f = c->flows[d];
      std::string line = absl::StrFormat(
          "    %s -> %s: %d unread at the receiver, %d in flight (%s), %d unsent", d == 0 ? "connector" : "acceptor",
          d == 0 ? "acceptor" : "connector", f.recv_end - f.read_off, f.sent_end - f.recv_end,
          plural(f.segs.size(), "segment", "segments"), f.write_end - f.sent_end);
      if (f.parked) {
        absl::StrAppendFormat(&line, "; next: %s waiting at a blocked link", kind_name(f.segs.front().kind));
      } else if (!f.segs.empty()) {
        absl::StrAppendFormat(&line, "; next: %s arriving at t=%s", kind_name(f.segs.front().kind),
                              absl::FormatDuration(absl::Nanoseconds(f.segs.front().arrival_ns)));
      }
      if (f.fin_delivered) {
        absl::StrAppend(&line, "; FIN delivered");
      } else if (f.fin_sent) {
        absl::StrAppend(&line, "; FIN sent");
      } else if (f.fin_queued) {
        absl::StrAppend(&line, "; FIN queued");
      }
      absl::StrAppend(&out, line, "\n");
    }
  }
  return out;
}

}  // namespace twinloop::sim
