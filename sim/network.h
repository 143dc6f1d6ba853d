// twinloop/sim/network.h: the simulated network, the simulated loop's side of
// the networking seam (api/net_backend.h).
//
//   twinloop::sim::Simulation sim({.seed = 7});
//   sim.network().add_host("db", "10.0.0.1");
//   sim.network().add_host("app", "10.0.0.2", "fd00::2");
//   sim.network().set_link("app", "db", {.latency_min = absl::Microseconds(100),
//                                        .latency_max = absl::Milliseconds(2)});
//   sim.run([]() -> twinloop::Coro<void> {
//     auto db = twinloop::sim::spawn_on("db", serve_db());       // runs on host "db"
//     co_await twinloop::sim::spawn_on("app", run_app());        // connects to "db"
//   }());
//
// The model
// ---------
// Hosts. A host has a name, addresses (IPv4 and/or IPv6), its own loopback
// (127.0.0.0/8 and ::1 reach the host itself), its own TCP port space per
// family and its own Unix-socket namespace (path -> listener). Names resolve
// to their host's addresses (add_name adds aliases, as DNS records; names are
// case-insensitive); "localhost" resolves to 127.0.0.1 then ::1 on every
// host. There is always an implicit host "localhost" with only loopback
// addresses: with no host added every task runs there, so code written for
// the real loop over loopback runs unchanged. It can be given routable
// addresses with add_address("localhost", ...) to talk to other hosts.
//
// Tasks belong to hosts. The current host is a context variable
// (api/contextvars.h), so it follows asyncio's context rules: a task belongs
// to the host of the code that created it (a task created by a task: that
// task's host; a callback scheduled with call_soon / call_later runs on its
// scheduler's host); network callbacks (a channel notification, a connect
// result, a listener's accept) run on their channel's host, so the tasks
// they create (a server's client handlers) belong to it too; anything else
// runs on the implicit host. spawn_on(host, coro) starts a task on a named
// host (in a copy of the current context, or of TaskOptions::context, with
// the host set). Network::current_host_id() (network.cc) reads it.
//
// Links. Every ordered pair of hosts (and each host to itself: loopback and
// Unix sockets) is a link with a latency range and a bandwidth
// (LinkConfig; defaults from sim::Options, 50 us fixed and unlimited). Each
// segment draws its latency in [latency_min, latency_max] (whole
// microseconds); with a bandwidth, a segment of b bytes occupies its link
// for b / bandwidth after the link's earlier segments (the link is a FIFO
// shared by all its connections). A connection never reorders its own
// bytes: a segment arrives no earlier than the one sent before it. Links can
// be reconfigured mid-run; segments sent from then on use the new values.
//
// Connections are TCP-like byte streams:
//  - connect() sends a SYN over the link; a listener with room in its
//    backlog answers with a SYN-ACK; the connector gets its channel when the
//    SYN-ACK arrives (one round trip) and answers with an ACK, on whose
//    arrival the connection joins the backlog for accept() (as Linux, which
//    queues a connection only once the handshake is complete). Nothing
//    listening: ConnectionRefusedError after the round trip. A full backlog
//    drops the SYN and the connector retries after 1, 2, 4, 8, 16 and 32
//    seconds, then fails with ETIMEDOUT (Linux's tcp_syn_retries = 6). An
//    address no host has: ENETUNREACH at once; a Unix path nobody listens
//    on: ENOENT (Unix connects with a full backlog: EAGAIN).
//  - Source ports are drawn among the free ports of 32768..60999
//    ("net.ephemeral_port"; 0: the lowest free one); so are listeners' ports
//    when port 0 is asked for.
//  - Flow control. Per direction the sender has a send buffer and the
//    receiver a receive buffer (64 KiB each by default). write() takes at
//    most what keeps the bytes written and not yet read by the peer within
//    their sum; at most the receive buffer is in flight or waiting to be
//    read. The rest waits at the sender and is transmitted when the reader
//    has read enough (at once: window updates are not delayed), in one
//    transmission once the window is at least half the receive buffer or
//    takes everything waiting (receiver-side silly-window avoidance). So a
//    writer whose peer does not read stops after send + receive buffer
//    bytes, and on_writable comes back only once the peer has read. Every
//    buffer is bounded: a direction's bytes live in one ring of at most
//    twice the sum of the buffers (a power of two), its segments in flight
//    in a ring of at most one entry per byte of the receive buffer.
//  - A transmission may be cut into segments ("net.segments",
//    "net.segment_cut"), each with its own latency, arriving in order; each
//    arrival is delivered on its own loop iteration, so a reader can see
//    several reads for one write (short reads). Draws of 0: one segment.
//  - shutdown_write(): FIN after the data; the peer reads the end of the
//    stream after the data. Writes after it: BrokenPipeError.
//  - close(abort = false): FIN after the data (Linux: an RST instead if
//    data the owner never read is waiting, tcp_close()). Data arriving at a
//    closed end is answered with an RST (Linux).
//  - close(abort = true): RST. What this end had not yet delivered is
//    dropped (unsent and in flight), and so is what was in flight to it.
//    When the RST arrives, the peer's unread data is dropped; its reads then
//    fail with ConnectionResetError and its writes with BrokenPipeError
//    (EPIPE), as Linux after a reset once the error was reported.
//  - Notifications to a channel's owner go through the loop's ready queue,
//    at most one pending per channel and direction, none after close(), and
//    level-triggered: while a wanted condition holds, the owner is notified
//    again each loop iteration (epoll's level triggering).
//
// Determinism. Every decision is a named draw through LoopBackend::choose
// (recorded, replayed, shrunk; made on behalf of the task that sends, or of
// the loop for segments sent from network callbacks; a fault's draws: its
// caller's). Nothing iterates an unordered container or compares addresses.
// Arrivals are loop timers (one
// per connection direction, embedded in the connection), so arrivals of
// different connections at the same virtual time are ordered by the loop's
// tie rule ("loop.timer_tie"), the same mechanism as every other timer tie.
// Every segment sent and delivered is an event (EventKind::kNetSend,
// kNetDeliver; id = connection id << 32 | direction << 31 | sequence number)
// in the event hash and in recordings.
//
// Draw sites (site, n, what 0 means):
//   net.latency_us      link latency_max - latency_min in us, + 1   the link's minimum latency
//   net.segments        min(max_segments, bytes)                     one segment (no cut)
//   net.segment_cut     bytes left - segments left + 1               this segment is 1 byte long
//   net.ephemeral_port  free ports in 32768..60999                   the lowest free port
//   net.release_latency_us  as net.latency_us, for a held segment    the link's minimum latency
//                       crossing its link again after the release
//
// Limits (today): window updates reach the sender at once; no Nagle, no
// MSS (a transmission is one segment unless cut by a draw); no TIME_WAIT
// (a closed connection's port is free at once); one listener per (host,
// family, port) even with reuse_port; a listener bound to one address of a
// host still holds the port for the whole host; names resolve the same on
// every host; resolution takes one loop iteration.
//
// Faults (docs/network.md, "Network faults"). Each is a call on this class,
// made at any virtual time on the loop's thread (from a task, a callback,
// or before the run). It acts at once, returns a one-line description of
// what it did, is logged with its virtual time in faults(), and is an event
// (EventKind::kFault, id: the fault's code << 56 | the description's
// FNV-1a hash in 56 bits) in the event hash and in recordings, so that a
// replay applying other faults diverges visibly. describe() (in deadlock,
// time-limit and failure reports) lists the faults in effect and the last
// 32 applied. Misuse (an unknown host, an empty set, a host on both
// sides, holding a held link, host_down on a host that is down ...) throws
// and changes nothing.
//  - partition(a, b, {mode, one_way}) blocks every link from a host of `a`
//    to a host of `b`, and back unless one_way. A segment is stopped when it
//    would arrive while its link is blocked, so segments in flight when the
//    partition starts are stopped like later ones (turmoil#251).
//    kHold: a connection's stopped segments wait at the partition, in order;
//    when the link is unblocked, each that waited arrives the link's latency
//    after the unblocking, drawn again ("net.release_latency_us"), never
//    before the segment before it. The writer's buffers fill meanwhile, as
//    TCP's would.
//    kLose (a partition outlasting TCP's retransmissions): the first segment
//    it stops cuts its connection: what is in flight either way is dropped,
//    neither end sends anything more (writes fill the buffers, then wait;
//    reads wait), and both ends fail with ETIMEDOUT (std::system_error, from
//    reads and writes) the retransmission timeout after the cut, healed or
//    not. A connection that sends nothing across the partition while it
//    lasts is untouched.
//    Handshakes never wait, in either mode: a SYN, SYN-ACK or refusal
//    stopped by a blocked link is lost (a SYN-ACK's half-open connection is
//    forgotten), and the connector sends its SYN again 1, 2, 4 ... 32 s
//    later, then fails with ETIMEDOUT (as for a full backlog). The
//    handshake's last ACK travels with the data (held or cutting).
//    Partitions compose: a link is blocked while any partition or hold
//    blocks it, and a kLose one wins over kHold. A host's loopback is never
//    blocked.
//  - heal(a, b): traffic flows again both ways between the hosts of `a` and
//    those of `b` (every partition and hold between them ends there);
//    heal_all(): everywhere. Nothing to heal is not an error.
//  - hold(from, to) / release(from, to): one direction blocked as by a
//    one-way kHold partition / unblocked again.
//  - reset_connections(a, b) / reset_connections(h): every connection
//    between hosts a and b (a == b: the host's loopback and Unix
//    connections) / with an end on h is reset at both ends at once, as if
//    each end had received an RST: bytes in flight and unread are dropped,
//    reads raise ConnectionResetError and writes BrokenPipeError; a connect
//    under way fails with ConnectionResetError; a connection not yet
//    accepted leaves the listener's backlog. Ends their owners closed
//    already are gone at once.
//  - set_link / set_default_link changing a link that a connection has used
//    (a link slowed or sped up mid-run) are faults too; configuring links
//    before they carry a connection is setup, not logged. The new latency
//    applies to segments sent from then on, the new bandwidth to segments
//    queued behind the link's earlier ones; a connection is never reordered
//    (a segment never arrives before the one sent before it).
//  - host_down(h), the network side of a host crash: h sends nothing more,
//    not even an RST. Its listeners vanish (their ports are free again);
//    its connection ends vanish: their channels and listener handles are
//    detached (calls raise EBADF, no notifications, a connect under way
//    never calls back), and what they had not sent is dropped. Segments h
//    sent before are on the wire and still arrive. connect() and listen()
//    on h raise ENETDOWN. A segment reaching h while it is down is lost: a
//    SYN as at a partition (retried, then ETIMEDOUT); any other dooms the
//    end that sent it, which fails with ETIMEDOUT the retransmission
//    timeout later unless h comes back first. A peer that only reads never
//    learns (TCP without keepalive: give reads a timeout).
//    host_up(h): h answers again. Every doomed peer is sent an RST at once
//    (ConnectionResetError when it arrives, the link's latency later); a
//    segment reaching a vanished end is answered with an RST, as for any
//    closed socket; a SYN to a port with no listener is refused.
//  - set_retransmission_timeout(d): how long a cut or doomed end lasts
//    before ETIMEDOUT, for cuts and dooms from then on (default 100 s, RFC
//    1122's least R2; Linux's tcp_retries2 = 15 is about 15 minutes).
//
// Threads: the loop thread only, as the loop.
#ifndef TWINLOOP_SIM_NETWORK_H_
#define TWINLOOP_SIM_NETWORK_H_

#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/net_backend.h"
#include "twinloop/api/task.h"
#include "twinloop/sim/sim_backend.h"

namespace twinloop::sim {

// One direction of a link: how long its segments take.
struct LinkConfig {
  // Each segment's latency is drawn in [latency_min, latency_max] (whole
  // microseconds; nothing is drawn when they are equal).
  absl::Duration latency_min = absl::Microseconds(50);
  absl::Duration latency_max = absl::Microseconds(50);
  // Bytes per second; 0: unlimited (no serialisation delay).
  uint64_t bandwidth = 0;
  friend bool operator==(const LinkConfig&, const LinkConfig&) = default;
};

// What a partition does to the segments it stops (see the header comment).
enum class PartitionMode : uint8_t {
  // They wait at the partition and arrive after the heal, in order.
  kHold,
  // The connections crossing it are cut: their bytes in flight are gone and
  // both ends fail with ETIMEDOUT after the retransmission timeout.
  kLose,
};

struct PartitionOptions {
  PartitionMode mode = PartitionMode::kHold;
  // Only from the first set of hosts to the second.
  bool one_way = false;
};

class Network final : public NetBackend {
 public:
  // The host every task runs on unless placed elsewhere.
  static constexpr std::string_view kImplicitHost = "localhost";

  // std::invalid_argument for bad network options (latency range, zero
  // buffers or segments).
  Network(SimBackend& backend, const Options& options);
  ~Network() override;
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // ---- hosts and names

  // Adds a host with these addresses (numeric IPv4 / IPv6; none: the host
  // has only its loopback). std::invalid_argument for an empty or taken
  // name (names are case-insensitive; "localhost" is the implicit host's),
  // an address that does not parse, a loopback, wildcard or multicast
  // address, or one another host has.
  void add_host(std::string_view name, const std::vector<std::string>& addresses);
  template <class... A>
  void add_host(std::string_view name, const A&... addresses) {
    add_host(name, std::vector<std::string>{std::string(addresses)...});
  }
  // Gives an existing host (the implicit one too) one more address.
  void add_address(std::string_view host, std::string_view address);
  // Makes `name` resolve to `address` too (after the addresses it already
  // has): an alias or a DNS record. The address need not belong to a host
  // (connecting to it then fails with ENETUNREACH). std::invalid_argument
  // for an empty name, "localhost", a host's name, or a bad address.
  void add_name(std::string_view name, std::string_view address);
  bool has_host(std::string_view name) const;
  // Host names, the implicit host first, then in the order added.
  std::vector<std::string> hosts() const;
  // A host's addresses (normalised: "::0:1" is "::1"), without loopback.
  // std::invalid_argument for an unknown host.
  std::vector<std::string> addresses(std::string_view host) const;
  // The host the code running now belongs to (see the header comment).
  std::string current_host() const;

  // ---- links

  // The configuration of every link not set with set_link, from now on.
  void set_default_link(const LinkConfig& config);
  // The link from `from` to `to` (one direction; from == to: that host's
  // loopback), from now on. std::invalid_argument for an unknown host or a
  // bad range.
  void set_link(std::string_view from, std::string_view to, const LinkConfig& config);
  LinkConfig link(std::string_view from, std::string_view to) const;
  // Buffer sizes of connections made from now on (each >= 1).
  void set_buffers(uint32_t send_bytes, uint32_t receive_bytes);

  // ---- faults (see the header comment; each returns its description)

  // Blocks every link from a host of `a` to a host of `b` (and back unless
  // options.one_way). std::invalid_argument for an empty side, an unknown
  // host, a host named twice, or a host on both sides.
  std::string partition(const std::vector<std::string>& a, const std::vector<std::string>& b,
                        const PartitionOptions& options);
  std::string partition(const std::vector<std::string>& a, const std::vector<std::string>& b) {
    return partition(a, b, PartitionOptions());
  }
  // Unblocks the links between a host of `a` and a host of `b`, both ways:
  // every partition and hold between them ends there (nothing to heal: the
  // description says so). std::invalid_argument as partition.
  std::string heal(const std::vector<std::string>& a, const std::vector<std::string>& b);
  // Every partition and every hold.
  std::string heal_all();
  // Blocks / unblocks one direction as a one-way kHold partition does.
  // std::invalid_argument for an unknown host or from == to;
  // std::logic_error for holding a link held already or releasing one that
  // is not held (by hold: a partition ends with heal).
  std::string hold(std::string_view from, std::string_view to);
  std::string release(std::string_view from, std::string_view to);
  // Resets every connection between the two hosts (either may have
  // connected; a == b: the host's loopback connections) / every connection
  // with an end on `host`, at both ends, now. std::invalid_argument for an
  // unknown host.
  std::string reset_connections(std::string_view host_a, std::string_view host_b);
  std::string reset_connections(std::string_view host);
  // The network side of a host crash and restart. std::invalid_argument for
  // an unknown host; std::logic_error for host_down on a host that is down,
  // host_up on one that is up.
  std::string host_down(std::string_view host);
  std::string host_up(std::string_view host);
  bool is_down(std::string_view host) const;
  // How long a cut or doomed connection end lasts before it fails with
  // ETIMEDOUT, for cuts and dooms from now on. Default 100 s.
  // std::invalid_argument unless positive.
  void set_retransmission_timeout(absl::Duration timeout);
  absl::Duration retransmission_timeout() const { return absl::Nanoseconds(retransmission_timeout_ns_); }
  // Every fault applied so far, in order (for failure reports).
  struct AppliedFault {
    absl::Duration at;  // the loop's virtual time when it was applied
    std::string what;   // the description the call returned
  };
  const std::vector<AppliedFault>& faults() const { return faults_; }

  // ---- reports

  // The hosts, listeners and open connections (both ends' states, bytes
  // buffered, in flight and waiting each way), the faults in effect
  // (partitions, holds, hosts down) and the last faults applied, with their
  // virtual times, for failure reports.
  std::string describe() const;
  // Whether any connection or listener exists or a fault was applied
  // (deadlock and time-limit reports include describe() then).
  bool active() const { return !conns_.empty() || !listeners_.empty() || !faults_.empty(); }
  size_t connection_count() const { return conns_.size(); }
  size_t listener_count() const { return listeners_.size(); }

  // ---- NetBackend (api/net_backend.h)

  void resolve(std::string host, uint16_t port, SocketAddress::Family family, ResolveDone done) override;
  void connect(const SocketAddress& remote, const ConnectOptions& options, ConnectDone done) override;
  std::unique_ptr<StreamListener> listen(const SocketAddress& local, const ListenOptions& options) override;

  // ---- for the backend and spawn_on

  // The loop closed: every connection and listener is released; channels
  // and listeners still owned elsewhere are detached (their calls fail).
  void shutdown();
  // The simulated loop's network, or std::runtime_error for another loop.
  static Network& of(EventLoop& loop);

  // A copy of `base` (else of the current context) in which the current
  // host is `host` (spawn_on). std::invalid_argument for an unknown host.
  Context context_on(std::string_view host, const std::optional<Context>& base);

 private:
  using HostId = uint32_t;
  static constexpr HostId kImplicit = 0;

  struct Host;
  struct Link;
  // A partition or hold in effect: the directed links it still blocks
  // (heal removes some), sorted.
  struct Partition {
    PartitionMode mode = PartitionMode::kHold;
    bool is_hold = false;
    std::string what;
    std::vector<std::pair<HostId, HostId>> links;
  };
  struct Segment;
  class SegmentQueue;
  class ByteRing;
  struct Flow;
  struct Notifier;
  struct End;
  struct Connection;
  struct Listener;
  class Channel;
  class ListenerHandle;
  class HostScope;
  friend class Channel;
  friend class ListenerHandle;
  friend class World;  // hosts' clocks, crashes (sim/world.h)

  // THE current host: see the header comment.
  HostId current_host_id() const;
  // A new context in which the current host is `id`.
  static internal::Ref<internal::ContextState> host_context(HostId id);
  // The host of code running in `context` (a task's, a callback's).
  HostId host_in(const internal::Ref<internal::ContextState>& context) const;

  void ensure_hosts();
  HostId host_id(std::string_view name) const;  // std::invalid_argument if unknown
  Host& host(HostId id) const { return *hosts_[id]; }
  const std::string& host_name(HostId id) const;
  Link& link_between(HostId from, HostId to);
  void check_link_config(const LinkConfig& config) const;
  void apply_config(Link& l, const LinkConfig& config);

  // Connections.
  Connection& new_connection(HostId from, HostId to, bool unix_socket);
  void fail_soon(ConnectDone done, int err, const std::string& what);
  uint16_t draw_port(Host& h, int family_index);  // 0: none free
  void release_port(End& e);
  Listener* find_listener(const Connection& c) const;

  // Flows and segments.
  void transmit(Flow& f);
  void send_data(Flow& f, uint64_t bytes);
  void enqueue(Flow& f, uint8_t kind, uint64_t end, uint64_t bytes, int64_t extra_ns);
  void arm(Flow& f, int64_t when_ns);
  void flow_due(Flow& f);
  void deliver(Flow& f, const Segment& s);
  void syn_arrived(Connection& c);
  void established(Connection& c);
  void handshake_done(Connection& c);
  void connect_failed(Connection& c, int err);
  void send_rst(End& e);
  void receive_rst(End& e);
  static void discard(Flow& f);
  void consumed(Flow& f);

  // Faults.
  std::string fault(uint8_t code, std::string what);
  std::vector<HostId> host_set(const std::vector<std::string>& names, const char* call) const;
  std::string set_names(const std::vector<HostId>& ids) const;
  void block(HostId from, HostId to, PartitionMode mode);
  void unblock(HostId from, HostId to, PartitionMode mode);
  void update_link(Link& l);
  void unpark_link(Link& l);
  void stopped_arrival(Flow& f);
  void handshake_lost(Flow& f, const Segment& s);
  void forget_half_open(Connection& c);
  void park(Flow& f);
  void cut(Connection& c);
  void doom(End& e);
  void fail_end(End& e, int err);
  void end_timed_out(uint64_t connection_id, uint8_t side);
  void reset_connection(Connection& c);
  std::string reset_where(const std::vector<uint64_t>& ids, std::string what);
  void vanish(End& e);
  void vanish_listener(Listener& l);
  void note_link_change(std::string_view call, std::string_view from, std::string_view to, const LinkConfig& config);

  // Channel operations.
  std::ptrdiff_t read(End& e, char* buf, size_t n);
  size_t write(End& e, const char* buf, size_t n);
  void shutdown_write(End& e);
  void close_end(End& e, bool abort);

  // Notifications.
  static bool readable(const End& e);
  static bool writable(const End& e);
  void poke(End& e, bool readable_side);
  void notify(Notifier& n);
  void poke_listener(Listener& l);
  void notify_listener(Listener& l);
  void close_listener(Listener& l);
  bool unbind(Listener& l);
  void report_callback_error(const char* what);

  void maybe_free(Connection& c);
  void maybe_free(Listener& l);
  void note(internal::EventKind kind, uint64_t id);
  int64_t now() const;
  bool loop_closed() const;

  std::string describe_end(const Connection& c, int side) const;

  SimBackend& backend_;
  LinkConfig default_link_;
  uint32_t max_segments_;
  uint32_t send_buffer_;
  uint32_t receive_buffer_;
  bool shut_down_ = false;

  // Hosts by id (0: the implicit host), made on first use so that a run
  // without networking allocates nothing here.
  std::vector<std::unique_ptr<Host>> hosts_;
  std::map<std::string, HostId, std::less<>> host_ids_;     // lower-case name
  std::map<std::string, HostId, std::less<>> address_owner_;  // normalised address
  std::map<std::string, std::vector<std::string>, std::less<>> aliases_;
  std::map<std::pair<HostId, HostId>, std::unique_ptr<Link>> links_;

  // Faults in effect (partitions and holds in the order made; hosts down
  // are marked on the host), and the log.
  std::vector<Partition> partitions_;
  int64_t retransmission_timeout_ns_ = 100'000'000'000;
  std::vector<AppliedFault> faults_;

  uint64_t next_connection_id_ = 1;
  uint64_t next_listener_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Connection>> conns_;
  std::map<uint64_t, std::unique_ptr<Listener>> listeners_;
};

// Starts `coro` as a task on the simulated host `host` (create_task on that
// host): the task and the tasks it creates belong to `host`, so their
// connections leave from its addresses and its loopback is theirs.
// std::invalid_argument for an unknown host; std::runtime_error outside the
// simulated loop. (Two overloads rather than a defaulted TaskOptions: see
// twinloop::create_task.)
template <class T>
Task<T> spawn_on(std::string_view host, Coro<T> coro, TaskOptions options) {
  EventLoop& loop = get_running_loop();
  options.context = Network::of(loop).context_on(host, options.context);
  return loop.create_task(std::move(coro), std::move(options));
}
template <class T>
Task<T> spawn_on(std::string_view host, Coro<T> coro) {
  return spawn_on(host, std::move(coro), TaskOptions());
}

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_NETWORK_H_
