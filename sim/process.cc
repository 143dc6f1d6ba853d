// The simulated loop's child processes (sim/process.h).
#include "twinloop/sim/process.h"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/sim_backend.h"
#include "twinloop/sim/world.h"

namespace twinloop::sim {

namespace {

// Linux's default pipe capacity (pipe(7)).
constexpr size_t kPipeCapacity = 64 * 1024;
// The drawn latencies' ranges, in microseconds (0: the shortest).
constexpr uint64_t kPipeLatencyMaxUs = 20;
constexpr uint64_t kSignalLatencyMaxUs = 20;
constexpr uint64_t kExitLatencyMaxUs = 100;
// A chunked read takes at most this many bytes.
constexpr uint64_t kChunkMax = 512;
// Linux's signal numbers run from 1 to 64.
constexpr int kMaxSignal = 64;

const char* const kDefaultPath = "/usr/bin:/bin";

// The pid of the process the code running now belongs to (unset: none).
ContextVar<int>& process_var() {
  static ContextVar<int>* const kVar = new ContextVar<int>("twinloop.sim.process");
  return *kVar;
}

void check_signal(int sig) {
  if (sig < 0 || sig > kMaxSignal) throw std::invalid_argument(absl::StrCat("invalid signal number ", sig));
}

// Signals whose default action is to do nothing (signal(7)): SIGCHLD,
// SIGCONT, SIGURG, SIGWINCH; and the stop signals, not modelled.
bool ignored_by_default(int sig) {
  return sig == SIGCHLD || sig == SIGCONT || sig == SIGURG || sig == SIGWINCH || sig == SIGSTOP || sig == SIGTSTP ||
         sig == SIGTTIN || sig == SIGTTOU;
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGKILL:
      return "SIGKILL";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGTERM:
      return "SIGTERM";
    case SIGPIPE:
      return "SIGPIPE";
    default:
      return absl::StrCat("signal ", sig);
  }
}

std::string exception_text(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const BaseException& x) {
    const std::string what = x.what();
    return what.empty() ? std::string("CancelledError") : what;
  } catch (...) {
    return "unknown exception";
  }
}

// Runs `fn` with the empty context current: what it schedules belongs to
// no process and no host's crash cancels it.
template <class F>
void outside(F&& fn) {
  Context none;
  none.run(std::forward<F>(fn));
}

// std::string_view for absl (which has its own string_view here).
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A timer of Processes::at: runs once, then deletes itself.
class OneShot final : public internal::TimerTarget {
 public:
  explicit OneShot(std::function<void()> fn) : fn_(std::move(fn)) {}
  void run() override {
    std::function<void()> fn = std::move(fn_);
    delete this;
    fn();
  }
  void drop() override { delete this; }
  void release_timer() override { delete this; }

 private:
  std::function<void()> fn_;
};

}  // namespace

// ---------------------------------------------------------------------------
// Pipes.

struct Pipe;

// One end of a pipe, shared by its channel and (while queued) its
// notifications.
struct PipeEnd final : std::enable_shared_from_this<PipeEnd> {
  enum class Role : uint8_t {
    kRead,        // reads the data
    kWrite,       // writes data
    kParentStdin  // writes data; readable (read() 0) once the reader closed
  };
  struct Notifier final : internal::Runnable {
    void run() override;
    void drop() override {
      pending = false;
      keep.reset();
    }
    PipeEnd* end = nullptr;
    bool readable = false;
    bool pending = false;
    std::shared_ptr<PipeEnd> keep;  // alive while queued
  };

  PipeEnd(std::shared_ptr<Pipe> p, Role r, internal::Ref<internal::ContextState> ctx)
      : pipe(std::move(p)), role(r), context(std::move(ctx)) {
    on_read.end = this;
    on_read.readable = true;
    on_write.end = this;
  }

  bool is_reader() const { return role == Role::kRead; }
  bool readable() const;
  bool writable() const;
  void poke(bool readable_side);
  void notify(Notifier& n);
  void close();

  std::shared_ptr<Pipe> pipe;
  Role role;
  internal::Ref<internal::ContextState> context;  // where its owner's code runs
  ChannelEvents* events = nullptr;
  bool want_read = false;
  bool want_write = false;
  bool closed = false;
  bool write_shut = false;  // a writer's shutdown_write
  Notifier on_read;
  Notifier on_write;
  std::function<void()> on_close;
};

struct Pipe final : internal::TimerTarget, std::enable_shared_from_this<Pipe> {
  enum class Sink : uint8_t { kNone, kDevNull, kConsole };
  struct Chunk {
    int64_t ready_ns;
    std::string bytes;
  };

  void run() override {
    armed = false;
    std::shared_ptr<Pipe> hold = std::move(keep);
    arrive();
  }
  void drop() override {
    armed = false;
    keep.reset();
  }
  void release_timer() override { drop(); }

  size_t buffered() const { return data.size() - off + flight_bytes; }
  bool at_eof() const { return writers == 0 && off == data.size() && flight.empty(); }
  void arm(int64_t when_ns) {
    if (armed || procs->closed()) return;
    armed = true;
    keep = shared_from_this();
    id_ = id << 20 | (++timer_seq & 0xFFFFF);
    SimBackend::add_timer(procs->loop(), this, when_ns);
  }
  void arrive();
  void poke_all(bool reader_side);
  void reader_closed();
  void writer_closed();
  size_t write(PipeEnd& e, const char* buf, size_t n);
  std::ptrdiff_t read(PipeEnd& e, char* buf, size_t n);

  Processes* procs = nullptr;
  uint64_t id = 0;
  uint64_t timer_seq = 0;
  Sink sink = Sink::kNone;
  std::string console_host;
  std::string data;  // arrived: data[off..] is readable
  size_t off = 0;
  std::deque<Chunk> flight;
  size_t flight_bytes = 0;
  int writers = 0;
  bool reader_open = true;
  bool armed = false;
  std::shared_ptr<Pipe> keep;  // alive while the timer is armed
  std::vector<PipeEnd*> ends;  // open ends
  // The program writing into it (stdout, stderr): SIGPIPE, slow output.
  std::weak_ptr<ProcessState> writer_process;
  int64_t slow_max_us = 0;  // slow output fault: extra latency per transfer
  bool chunked = false;     // chunked output fault: reads in small pieces
};

class PipeChannel final : public StreamChannel {
 public:
  explicit PipeChannel(std::shared_ptr<PipeEnd> end) : end_(std::move(end)) {}
  ~PipeChannel() override { close(false); }

  void set_events(ChannelEvents* events) override {
    end_->events = events;
    end_->poke(true);
    end_->poke(false);
  }
  void want_read(bool on) override {
    end_->want_read = on;
    if (on) end_->poke(true);
  }
  void want_write(bool on) override {
    end_->want_write = on;
    if (on) end_->poke(false);
  }
  std::ptrdiff_t read(char* buf, std::size_t n) override {
    if (end_->closed) throw std::system_error(EBADF, std::generic_category(), "read from a closed pipe");
    return end_->pipe->read(*end_, buf, n);
  }
  std::size_t write(const char* buf, std::size_t n) override {
    if (end_->closed || end_->write_shut) {
      throw std::system_error(EBADF, std::generic_category(), "write to a closed pipe end");
    }
    if (end_->is_reader()) throw std::system_error(EBADF, std::generic_category(), "write to a pipe's read end");
    return end_->pipe->write(*end_, buf, n);
  }
  void shutdown_write() override {
    if (end_->closed || end_->write_shut || end_->is_reader()) return;
    end_->write_shut = true;
    end_->pipe->writer_closed();
  }
  void close(bool /*abort*/) override { end_->close(); }
  SocketAddress local_address() const override { return SocketAddress::unix_path(""); }
  SocketAddress peer_address() const override { return SocketAddress::unix_path(""); }

 private:
  std::shared_ptr<PipeEnd> end_;
};

bool PipeEnd::readable() const {
  switch (role) {
    case Role::kRead:
      return pipe->off != pipe->data.size() || pipe->at_eof();
    case Role::kParentStdin:
      return !pipe->reader_open;
    case Role::kWrite:
      return false;
  }
  return false;
}

bool PipeEnd::writable() const {
  if (role == Role::kRead || write_shut) return false;
  return !pipe->reader_open || pipe->sink != Pipe::Sink::kNone || pipe->buffered() < kPipeCapacity;
}

void PipeEnd::poke(bool readable_side) {
  Notifier& n = readable_side ? on_read : on_write;
  if (n.pending || closed || !events) return;
  if (readable_side ? !(want_read && readable()) : !(want_write && writable())) return;
  if (pipe->procs->closed()) return;
  n.pending = true;
  n.keep = shared_from_this();
  SimBackend::schedule_io(pipe->procs->loop(), &n);
}

void PipeEnd::Notifier::run() {
  std::shared_ptr<PipeEnd> hold = std::move(keep);
  end->notify(*this);
}

void PipeEnd::notify(Notifier& n) {
  n.pending = false;
  const bool wanted = n.readable ? want_read && readable() : want_write && writable();
  if (closed || !events || !wanted) return;
  {
    internal::ContextScope scope(context);
    try {
      if (n.readable) {
        events->on_readable();
      } else {
        events->on_writable();
      }
    } catch (...) {
      pipe->procs->loop().call_exception_handler(ExceptionContext::of(
          absl::StrCat("Exception in ", n.readable ? "on_readable" : "on_writable", " (simulated pipe)"),
          std::current_exception()));
    }
  }
  // Level-triggered: again next iteration while it holds and is wanted.
  poke(n.readable);
}

void PipeEnd::close() {
  if (closed) return;
  closed = true;
  events = nullptr;
  auto& list = pipe->ends;
  list.erase(std::remove(list.begin(), list.end(), this), list.end());
  if (role == Role::kRead) {
    pipe->reader_closed();
  } else if (!write_shut) {
    write_shut = true;
    pipe->writer_closed();
  }
  if (on_close) std::exchange(on_close, nullptr)();
}

void Pipe::poke_all(bool reader_side) {
  // A copy: a notification is only queued here, but stay safe.
  const std::vector<PipeEnd*> now = ends;
  for (PipeEnd* e : now) {
    if (reader_side) {
      e->poke(true);
    } else {
      e->poke(false);
      if (e->role == PipeEnd::Role::kParentStdin) e->poke(true);
    }
  }
}

void Pipe::reader_closed() {
  reader_open = false;
  data.clear();
  off = 0;
  flight.clear();
  flight_bytes = 0;
  poke_all(false);
}

void Pipe::writer_closed() {
  --writers;
  if (writers == 0) poke_all(true);
}

void Pipe::arrive() {
  const int64_t now = procs->backend_time();
  while (!flight.empty() && flight.front().ready_ns <= now) {
    data.append(flight.front().bytes);
    flight_bytes -= flight.front().bytes.size();
    flight.pop_front();
  }
  if (!flight.empty()) arm(flight.front().ready_ns);
  poke_all(true);
}

size_t Pipe::write(PipeEnd& /*e*/, const char* buf, size_t n) {
  if (!reader_open) {
    if (std::shared_ptr<ProcessState> p = writer_process.lock()) procs->sigpipe(p);
    throw BrokenPipeError("[Errno 32] Broken pipe");
  }
  if (n == 0) return 0;
  if (sink == Sink::kDevNull) return n;
  if (sink == Sink::kConsole) {
    procs->console_[console_host].append(buf, n);
    return n;
  }
  const size_t room = kPipeCapacity - std::min(kPipeCapacity, buffered());
  const size_t take = std::min(n, room);
  if (take == 0) return 0;
  int64_t latency_us = static_cast<int64_t>(procs->choose(draw_sites::kProcessPipeLatencyUs, kPipeLatencyMaxUs + 1));
  if (slow_max_us > 0) {
    latency_us += static_cast<int64_t>(procs->choose(draw_sites::kProcessSlowUs, static_cast<uint64_t>(slow_max_us) + 1));
  }
  int64_t ready = procs->backend_time() + latency_us * 1000;
  // A pipe never reorders: no transfer is readable before an earlier one.
  if (!flight.empty()) ready = std::max(ready, flight.back().ready_ns);
  flight.push_back(Chunk{ready, std::string(buf, take)});
  flight_bytes += take;
  arm(flight.front().ready_ns);
  return take;
}

std::ptrdiff_t Pipe::read(PipeEnd& e, char* buf, size_t n) {
  if (e.role == PipeEnd::Role::kParentStdin) return reader_open ? StreamChannel::kWouldBlock : 0;
  if (e.role == PipeEnd::Role::kWrite) return StreamChannel::kWouldBlock;
  const size_t avail = data.size() - off;
  if (avail == 0) return at_eof() ? 0 : StreamChannel::kWouldBlock;
  if (n == 0) return 0;
  size_t m = std::min(n, avail);
  if (chunked) m = 1 + procs->choose(draw_sites::kProcessChunkBytes, std::min<uint64_t>(m, kChunkMax));
  std::memcpy(buf, data.data() + off, m);
  off += m;
  if (off == data.size()) {
    data.clear();
    off = 0;
  } else if (off > 4096 && off > data.size() / 2) {
    data.erase(0, off);
    off = 0;
  }
  poke_all(false);  // room again
  return static_cast<std::ptrdiff_t>(m);
}

// ---------------------------------------------------------------------------
// Processes.

struct ProcessState {
  enum class Phase : uint8_t {
    kRunning,  // its program runs (or hangs)
    kExiting,  // it returned; its output drains into the pipes
    kDead,     // ended; the exit is reported (or about to be)
  };

  int pid = 0;
  std::string host;
  std::string name;  // argv[0]
  Phase phase = Phase::kRunning;
  int returncode = 0;
  bool observed = false;  // on_exit's callback is queued or has run
  bool reported = false;  // exit reported (the timer armed)
  std::optional<absl::AnyInvocable<void(int)>> on_exit;
  std::unique_ptr<ProgramContext> ctx;
  internal::Ref<internal::ContextState> context;  // the process's
  Program program;
  std::optional<Task<int>> main;
  // The program's ends of its pipes: stdin's read end, its output ends.
  std::shared_ptr<PipeEnd> stdin_end;
  std::vector<std::shared_ptr<PipeEnd>> output_ends;
  int outputs_open = 0;
  // Faults drawn at spawn.
  std::optional<int> exit_status_fault;
  std::string ended;  // "exit 3", "signal 9"
};

class SimProcessChannel final : public ProcessChannel {
 public:
  SimProcessChannel(Processes& procs, std::shared_ptr<ProcessState> p) : procs_(procs), p_(std::move(p)) {}

  int pid() const override { return p_->pid; }
  std::unique_ptr<StreamChannel> take_pipe(int fd) override {
    if (fd < 0 || fd > 2) throw std::invalid_argument(absl::StrCat("take_pipe: fd ", fd, " is not 0, 1 or 2"));
    return std::move(pipes_[fd]);
  }
  void on_exit(absl::AnyInvocable<void(int returncode)> done) override {
    if (p_->on_exit) throw std::logic_error("on_exit: set already");
    p_->on_exit = std::move(done);
    if (p_->observed) {
      // Observed already: the callback still runs through the ready queue.
      std::shared_ptr<ProcessState> p = p_;
      procs_.at(0, [p] {
        if (p->on_exit && *p->on_exit) (*p->on_exit)(p->returncode);
      });
    }
  }
  void send_signal(int sig) override {
    check_signal(sig);
    if (p_->observed || sig == 0) return;
    const auto us = static_cast<int64_t>(procs_.choose(draw_sites::kProcessSignalLatencyUs, kSignalLatencyMaxUs + 1));
    std::shared_ptr<ProcessState> p = p_;
    Processes* procs = &procs_;
    procs_.at(us * 1000, [procs, p, sig] { procs->deliver(p, sig); });
  }
  bool exited() const override { return p_->observed; }

  std::unique_ptr<StreamChannel> pipes_[3];

 private:
  Processes& procs_;
  std::shared_ptr<ProcessState> p_;
};

// ---- ProgramContext

ProgramContext::~ProgramContext() = default;

std::optional<std::string> ProgramContext::getenv(std::string_view name) const {
  for (const std::string& e : env_) {
    const size_t eq = e.find('=');
    if (eq != std::string::npos && std::string_view(e).substr(0, eq) == name) return e.substr(eq + 1);
  }
  return std::nullopt;
}

void ProgramContext::handle_signal(int sig) {
  check_signal(sig);
  if (sig == 0) throw std::invalid_argument("handle_signal: signal 0 is no signal");
  if (sig == SIGKILL || sig == SIGSTOP) {
    throw std::invalid_argument(absl::StrCat("handle_signal: ", sig == SIGKILL ? "SIGKILL" : "SIGSTOP",
                                             " cannot be caught (signal(7))"));
  }
  handled_.insert(sig);
}

Coro<int> ProgramContext::next_signal() {
  if (waiter_ && waiter_->done()) waiter_.reset();  // its waiter was cancelled
  if (!arrived_.empty()) {
    const int sig = arrived_.front();
    arrived_.pop_front();
    co_return sig;
  }
  if (waiter_) throw std::logic_error("next_signal: another task waits for a signal already");
  Future<int> f = get_running_loop().create_future<int>();
  waiter_ = f;
  const int sig = co_await f;
  co_return sig;
}

// ---- Processes

Processes::Processes(SimBackend& backend) : backend_(backend) {}
Processes::~Processes() {
  // Nothing reacts to the streams' last closes any more.
  shut_down_ = true;
  procs_.clear();
}

Processes& Processes::of(EventLoop& loop) {
  auto* sim = dynamic_cast<SimBackend*>(&loop.backend());
  if (!sim) {
    throw std::runtime_error("sim: simulated programs exist only on the simulated loop (sim::run, sim::Simulation)");
  }
  return sim->process_table();
}

EventLoop& Processes::loop() const { return *backend_.loop_; }
int64_t Processes::backend_time() const { return backend_.time_ns(); }
uint64_t Processes::choose(std::string_view site, uint64_t n) { return backend_.choose(site, n); }
bool Processes::closed() const { return shut_down_ || !backend_.loop_ || backend_.loop_->is_closed(); }

void Processes::at(int64_t delay_ns, std::function<void()> fn) {
  if (closed()) return;
  auto* t = new OneShot(std::move(fn));
  t->id_ = ++next_timer_id_;
  SimBackend::add_timer(loop(), t, backend_.time_ns() + delay_ns);
}

void Processes::register_program(std::string name, Program program) {
  if (name.empty()) throw std::invalid_argument("register_program: an empty name");
  if (!program) throw std::invalid_argument(absl::StrCat("register_program: an empty program for '", name, "'"));
  programs_[std::move(name)] = std::move(program);
}

std::string Processes::host_name(std::string_view host) const {
  for (const std::string& h : backend_.network().hosts()) {
    if (absl::EqualsIgnoreCase(h, av(host))) return h;
  }
  throw std::invalid_argument(absl::StrCat("sim: unknown host '", av(host), "'"));
}

void Processes::set_host_environment(std::string_view host, std::vector<std::string> env) {
  host_env_[host_name(host)] = std::move(env);
}

std::string Processes::console_output(std::string_view host) const {
  auto it = console_.find(host_name(host));
  return it == console_.end() ? std::string() : it->second;
}

size_t Processes::running() const {
  size_t n = 0;
  for (const auto& [pid, p] : procs_) n += p->phase != ProcessState::Phase::kDead;
  return n;
}

std::string Processes::describe() const {
  std::string out;
  for (const auto& [pid, p] : procs_) {
    absl::StrAppend(&out, out.empty() ? "" : "; ", pid, " '", p->name, "' on '", p->host, "': ",
                    p->ended.empty() ? std::string("running") : p->ended);
  }
  return out;
}

void Processes::fault(std::string what) { backend_.world().fault(std::move(what)); }

const Program* Processes::find_program(const std::string& file, const std::vector<std::string>& env,
                                       const std::string& host, std::string* found) const {
  if (auto it = programs_.find(file); it != programs_.end()) {
    *found = file;
    return &it->second;
  }
  if (file.find('/') != std::string::npos) return nullptr;
  // execvp's rule: each directory of PATH in turn.
  std::optional<std::string> path;
  const auto path_in = [](const std::vector<std::string>& entries) -> std::optional<std::string> {
    for (const std::string& e : entries) {
      if (e.rfind("PATH=", 0) == 0) return e.substr(5);
    }
    return std::nullopt;
  };
  path = path_in(env);
  if (!path) {
    auto it = host_env_.find(host);
    if (it != host_env_.end()) path = path_in(it->second);
  }
  if (!path) path = kDefaultPath;
  for (absl::string_view dir : absl::StrSplit(*path, ':')) {
    // An empty entry is the working directory, as execvp's.
    const std::string candidate = dir.empty() ? absl::StrCat("./", file)
                                  : dir.back() == '/' ? absl::StrCat(dir, file)
                                                      : absl::StrCat(dir, "/", file);
    if (auto it = programs_.find(candidate); it != programs_.end()) {
      *found = candidate;
      return &it->second;
    }
  }
  return nullptr;
}

std::unique_ptr<ProcessChannel> Processes::spawn(const SpawnRequest& request) {
  if (request.argv.empty()) throw std::invalid_argument("spawn: an empty argv");
  if (request.stdin_mode == Redirect::kStdout || request.stdout_mode == Redirect::kStdout) {
    throw std::invalid_argument("spawn: STDOUT is only for stderr");
  }
  if (closed()) throw std::runtime_error("spawn: the loop is closed");
  Network& net = backend_.network();
  const std::string host = net.current_host();
  std::vector<std::string> env;
  if (request.env) {
    env = *request.env;
  } else if (auto it = host_env_.find(host); it != host_env_.end()) {
    env = it->second;
  } else {
    env = {absl::StrCat("PATH=", kDefaultPath)};
  }
  const std::string& file = request.executable.empty() ? request.argv[0] : request.executable;
  std::string found;
  const Program* program = find_program(file, env, host, &found);
  if (!program) {
    throw std::system_error(ENOENT, std::generic_category(),
                            absl::StrCat("[Errno 2] No such file or directory: '", file, "'"));
  }

  // Faults drawn for this spawn (World::inject's process_* chances).
  World* world = backend_.world_.get();
  const World::ProcessFaultChances* chances = world ? world->process_fault_chances() : nullptr;
  const auto fires = [&](std::string_view kind, double chance) {
    return chance > 0 && world->fires(std::string(draw_sites::kFaultFirePrefix).append(kind), chance, absl::Seconds(1));
  };
  const int pid = next_pid_++;
  const std::string who = absl::StrFormat("process %d '%s' on host '%s'", pid, request.argv[0], host);
  if (chances && fires("process_spawn_failures", chances->spawn_failures)) {
    const int err = choose(draw_sites::kProcessSpawnErrno, 2) == 0 ? ENOENT : EAGAIN;
    fault(absl::StrCat("spawn of ", who, " fails: ", err == ENOENT ? "ENOENT" : "EAGAIN"));
    throw std::system_error(err, std::generic_category(),
                            err == ENOENT ? absl::StrCat("[Errno 2] No such file or directory: '", file, "'")
                                          : std::string("[Errno 11] Resource temporarily unavailable"));
  }

  auto p = std::make_shared<ProcessState>();
  p->pid = pid;
  p->host = host;
  p->name = request.argv[0];
  p->program = *program;
  {
    Context c = net.context_on(host, Context());
    c.run([pid] { process_var().set(pid); });
    p->context = internal::ContextAccess::state(c);
  }
  const internal::Ref<internal::ContextState> parent_context =
      internal::ContextAccess::state(net.context_on(host, Context()));

  auto ctx = std::unique_ptr<ProgramContext>(new ProgramContext());
  ctx->argv_ = request.argv;
  ctx->env_ = env;
  ctx->cwd_ = request.cwd.empty() ? std::string("/") : request.cwd;
  ctx->pid_ = pid;

  auto channel = std::make_unique<SimProcessChannel>(*this, p);
  const auto new_pipe = [&]() {
    auto pipe = std::make_shared<Pipe>();
    pipe->procs = this;
    pipe->id = next_pipe_id_++;
    return pipe;
  };
  const auto new_end = [&](const std::shared_ptr<Pipe>& pipe, PipeEnd::Role role,
                           const internal::Ref<internal::ContextState>& context) {
    auto end = std::make_shared<PipeEnd>(pipe, role, context);
    pipe->ends.push_back(end.get());
    if (role != PipeEnd::Role::kRead) ++pipe->writers;
    return end;
  };
  // Stdin: the parent's pipe, or an input that ends at once.
  std::shared_ptr<Pipe> in = new_pipe();
  if (request.stdin_mode == Redirect::kPipe) {
    channel->pipes_[0] = std::make_unique<PipeChannel>(new_end(in, PipeEnd::Role::kParentStdin, parent_context));
  }
  p->stdin_end = new_end(in, PipeEnd::Role::kRead, p->context);
  // Stdout and stderr: a pipe to the parent, /dev/null, the host's console.
  const auto output = [&](Redirect mode, int fd) {
    std::shared_ptr<Pipe> pipe = new_pipe();
    pipe->writer_process = p;
    if (mode == Redirect::kPipe) {
      channel->pipes_[fd] = std::make_unique<PipeChannel>(new_end(pipe, PipeEnd::Role::kRead, parent_context));
    } else if (mode == Redirect::kDevNull) {
      pipe->sink = Pipe::Sink::kDevNull;
    } else {
      pipe->sink = Pipe::Sink::kConsole;
      pipe->console_host = host;
    }
    return pipe;
  };
  std::shared_ptr<Pipe> out = output(request.stdout_mode, 1);
  std::shared_ptr<Pipe> err = request.stderr_mode == Redirect::kStdout ? out : output(request.stderr_mode, 2);
  Processes* self = this;
  ProcessState* raw = p.get();
  for (const std::shared_ptr<Pipe>& pipe : {out, err}) {
    std::shared_ptr<PipeEnd> end = new_end(pipe, PipeEnd::Role::kWrite, p->context);
    end->on_close = [self, raw] { self->output_closed(*raw); };
    p->output_ends.push_back(end);
    ++p->outputs_open;
  }

  // The program's streams, in no process's context (so that its end does
  // not cancel their transports' callbacks).
  outside([&] {
    auto in_streams = internal::stream_over_channel(loop(), std::make_unique<PipeChannel>(p->stdin_end), StreamOptions{});
    ctx->stdin_ = std::move(in_streams.first);
    ctx->stdin_writer_ = std::move(in_streams.second);
    auto out_streams =
        internal::stream_over_channel(loop(), std::make_unique<PipeChannel>(p->output_ends[0]), StreamOptions{});
    ctx->stdout_ = std::move(out_streams.second);
    auto err_streams =
        internal::stream_over_channel(loop(), std::make_unique<PipeChannel>(p->output_ends[1]), StreamOptions{});
    ctx->stderr_ = std::move(err_streams.second);
  });
  p->ctx = std::move(ctx);
  procs_.emplace(pid, p);

  // The other faults.
  bool hangs = false;
  if (chances) {
    if (fires("process_hangs", chances->hangs)) {
      hangs = true;
      fault(absl::StrCat(who, " hangs"));
    }
    if (fires("process_crashes", chances->crashes)) {
      static constexpr int kSignals[] = {SIGKILL, SIGSEGV, SIGABRT};
      const int sig = kSignals[choose(draw_sites::kProcessCrashSignal, 3)];
      const auto us = static_cast<int64_t>(
          choose(draw_sites::kProcessCrashAfterUs,
                 static_cast<uint64_t>(absl::ToInt64Microseconds(chances->crash_max)) + 1));
      std::shared_ptr<ProcessState> hold = p;
      at(us * 1000, [self, hold, sig, who] {
        if (hold->phase == ProcessState::Phase::kDead) return;
        self->fault(absl::StrCat(who, " crashes: ", signal_name(sig)));
        self->terminate(hold, sig);
      });
    }
    if (fires("process_slow_output", chances->slow_output)) {
      const int64_t max_us = std::max<int64_t>(1, absl::ToInt64Microseconds(chances->slow_max));
      out->slow_max_us = max_us;
      err->slow_max_us = max_us;
      fault(absl::StrCat(who, ": slow output (up to ", absl::FormatDuration(absl::Microseconds(max_us)),
                         " per transfer)"));
    }
    if (fires("process_chunked_output", chances->chunked_output)) {
      out->chunked = true;
      err->chunked = true;
      fault(absl::StrCat(who, ": chunked output"));
    }
    if (fires("process_exit_failures", chances->exit_failures)) {
      p->exit_status_fault = 1 + static_cast<int>(choose(draw_sites::kProcessExitStatus, 255));
    }
  }
  if (!hangs) start(p);
  return channel;
}

namespace {
// The program, with an escaping exception made exit status 1 and one line
// on its stderr.
Coro<int> run_program(Program program, ProgramContext* ctx) {
  std::exception_ptr error;
  int status = 0;
  try {
    status = co_await program(*ctx);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    const std::string line = absl::StrCat(ctx->argv()[0], ": uncaught exception: ", exception_text(error), "\n");
    ctx->stderr().write(line);
    status = 1;
  }
  co_return status & 0xff;
}
}  // namespace

void Processes::start(const std::shared_ptr<ProcessState>& p) {
  TaskOptions options;
  options.name = absl::StrCat("process:", p->name);
  options.eager_start = false;
  options.context = internal::ContextAccess::of(p->context);
  // Copied: a later registration does not change a running program.
  Program program = p->program;
  Task<int> task = loop().create_task(run_program(std::move(program), p->ctx.get()), std::move(options));
  std::shared_ptr<ProcessState> hold = p;
  Processes* self = this;
  task.add_done_callback([self, hold](Future<int> f) { self->program_done(hold, std::move(f)); }, Context());
  p->main = std::move(task);
}

void Processes::program_done(const std::shared_ptr<ProcessState>& p, Future<int> f) {
  p->main.reset();
  if (p->phase != ProcessState::Phase::kRunning) return;
  if (f.cancelled()) {
    terminate(p, SIGKILL);
    return;
  }
  int status = f.result();
  if (status == 0 && p->exit_status_fault) {
    status = *p->exit_status_fault;
    fault(absl::StrFormat("process %d '%s' on host '%s' exits with status %d instead of 0", p->pid, p->name,
                          p->host, status));
  }
  p->phase = ProcessState::Phase::kExiting;
  p->returncode = status;
  const int pid = p->pid;
  // The tasks it left end with it, as a process's threads do.
  SimBackend::abandon(loop(), [pid](const Context& c) {
    const std::optional<int> v = c.get(process_var());
    return v && *v == pid;
  });
  outside([&] {
    p->stdin_end->close();
    p->ctx->stdin_writer_.close();
    p->ctx->stdout_.close();
    p->ctx->stderr_.close();
  });
  maybe_exit(p);
}

void Processes::output_closed(ProcessState& p) {
  --p.outputs_open;
  if (shut_down_) return;
  if (p.phase == ProcessState::Phase::kExiting) maybe_exit(procs_.at(p.pid));
}

void Processes::maybe_exit(const std::shared_ptr<ProcessState>& p) {
  if (p->phase == ProcessState::Phase::kExiting && p->outputs_open == 0) {
    p->phase = ProcessState::Phase::kDead;
    p->ended = absl::StrCat("exit ", p->returncode);
    report_exit(p);
  }
}

void Processes::terminate(const std::shared_ptr<ProcessState>& p, int sig) {
  if (p->phase == ProcessState::Phase::kDead) return;
  p->phase = ProcessState::Phase::kDead;
  p->returncode = -sig;
  p->ended = absl::StrCat("signal ", sig);
  const int pid = p->pid;
  SimBackend::abandon(loop(), [pid](const Context& c) {
    const std::optional<int> v = c.get(process_var());
    return v && *v == pid;
  });
  p->main.reset();
  // Its pipes close now; what its transports still buffered is lost.
  outside([&] {
    p->stdin_end->close();
    for (const std::shared_ptr<PipeEnd>& e : p->output_ends) e->close();
    if (p->ctx) {
      for (StreamWriter* w : {&p->ctx->stdin_writer_, &p->ctx->stdout_, &p->ctx->stderr_}) {
        if (w->transport()) w->transport()->abort();
      }
    }
  });
  report_exit(p);
}

void Processes::deliver(const std::shared_ptr<ProcessState>& p, int sig) {
  if (p->phase == ProcessState::Phase::kDead) return;
  if (sig == SIGKILL) {
    terminate(p, sig);
    return;
  }
  ProgramContext& ctx = *p->ctx;
  if (ctx.handled_.count(sig)) {
    if (p->phase != ProcessState::Phase::kRunning) return;  // its handler is gone
    if (ctx.waiter_ && !ctx.waiter_->done()) {
      Future<int> w = *std::exchange(ctx.waiter_, std::nullopt);
      w.set_result(sig);
    } else {
      ctx.waiter_.reset();
      ctx.arrived_.push_back(sig);
    }
    return;
  }
  if (ignored_by_default(sig)) return;
  terminate(p, sig);
}

void Processes::sigpipe(const std::shared_ptr<ProcessState>& p) {
  if (p->phase == ProcessState::Phase::kDead) return;
  Processes* self = this;
  std::shared_ptr<ProcessState> hold = p;
  at(0, [self, hold] { self->deliver(hold, SIGPIPE); });
}

void Processes::report_exit(const std::shared_ptr<ProcessState>& p) {
  if (p->reported) return;
  p->reported = true;
  const auto us = static_cast<int64_t>(choose(draw_sites::kProcessExitLatencyUs, kExitLatencyMaxUs + 1));
  std::shared_ptr<ProcessState> hold = p;
  at(us * 1000, [hold] {
    hold->observed = true;
    // Its streams go with it (in no process's context).
    outside([&] { hold->ctx.reset(); });
    if (hold->on_exit && *hold->on_exit) (*hold->on_exit)(hold->returncode);
  });
}

size_t Processes::host_crashed(std::string_view host) {
  std::vector<std::shared_ptr<ProcessState>> victims;
  for (const auto& [pid, p] : procs_) {
    if (p->host == host && p->phase != ProcessState::Phase::kDead) victims.push_back(p);
  }
  for (const auto& p : victims) terminate(p, SIGKILL);
  return victims.size();
}

void Processes::shutdown() {
  shut_down_ = true;
  // A process holds the loop (its streams' transports, its task) and the
  // loop holds the process table: the loop's close breaks that cycle here.
  // The loop is closed already, so the streams going now close nothing and
  // schedule nothing.
  std::map<int, std::shared_ptr<ProcessState>> procs = std::move(procs_);
  procs_.clear();
  procs.clear();
}

// ---------------------------------------------------------------------------

void register_program(EventLoop& loop, std::string name, Program program) {
  Processes::of(loop).register_program(std::move(name), std::move(program));
}

void set_host_environment(EventLoop& loop, std::string_view host, std::vector<std::string> env) {
  Processes::of(loop).set_host_environment(host, std::move(env));
}

std::string console_output(EventLoop& loop, std::string_view host) { return Processes::of(loop).console_output(host); }

}  // namespace twinloop::sim
