// twinloop/api/subprocess.cc: asyncio's subprocess transport and Process
// over the loop's ProcessBackend (CPython 3.14 Lib/asyncio/base_subprocess.py,
// subprocess.py; the names below follow theirs).
#include "twinloop/api/subprocess.h"

#include <array>
#include <csignal>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/loop_backend.h"
#include "twinloop/api/task.h"

namespace twinloop {
namespace internal {
namespace {

ProcessBackend& processes_of(EventLoop& loop) {
  ProcessBackend* p = loop.backend().processes();
  if (!p) throw std::runtime_error("subprocesses are not supported by this event loop");
  return *p;
}

class SubprocessTransportImpl;

// asyncio's WriteSubprocessPipeProto / ReadSubprocessPipeProto: one pipe's
// protocol, forwarding to the subprocess transport.
class PipeProto final : public Protocol {
 public:
  PipeProto(std::weak_ptr<SubprocessTransportImpl> proc, int fd) : proc_(std::move(proc)), fd_(fd) {}

  void connection_made(std::shared_ptr<Transport> transport) override { pipe = std::move(transport); }
  void connection_lost(std::exception_ptr error) override;
  void pause_writing() override;
  void resume_writing() override;
  void data_received(std::string_view data) override;
  // The end of a pipe closes it (asyncio's read pipe transport closes at
  // EOF; the write pipe's "readable" is its reader going away).
  bool eof_received() override { return false; }

  std::shared_ptr<Transport> pipe;
  bool disconnected = false;

 private:
  std::weak_ptr<SubprocessTransportImpl> proc_;
  int fd_;
};

// base_subprocess.BaseSubprocessTransport.
class SubprocessTransportImpl final : public SubprocessTransport,
                                      public LoopResource,
                                      public std::enable_shared_from_this<SubprocessTransportImpl> {
 public:
  SubprocessTransportImpl(EventLoop& loop, std::shared_ptr<SubprocessProtocol> protocol)
      : loop_(&loop), protocol_(std::move(protocol)) {}
  ~SubprocessTransportImpl() override {
    if (registered_) LoopAccess::close_resource(*loop_, this);
  }

  // Starts the child and its pipes; `connected` is set once the protocol's
  // connection_made has run (asyncio's _connect_pipes waiter).
  void start(const SpawnRequest& request, Future<void> connected) {
    channel_ = processes_of(*loop_).spawn(request);
    pid_ = channel_->pid();
    std::weak_ptr<SubprocessTransportImpl> weak = weak_from_this();
    channel_->on_exit([weak](int returncode) {
      if (std::shared_ptr<SubprocessTransportImpl> self = weak.lock()) self->process_exited(returncode);
    });
    self_ = shared_from_this();
    LoopAccess::open_resource(*loop_, this);
    registered_ = true;
    for (int fd = 0; fd < 3; ++fd) {
      std::unique_ptr<StreamChannel> channel = channel_->take_pipe(fd);
      if (!channel) continue;
      auto proto = std::make_shared<PipeProto>(weak, fd);
      pipes_[fd] = proto;
      make_stream_transport(*loop_, std::move(channel), proto, nullptr, Future<void>());
    }
    // The pipes' connection_made run first (FIFO), then this.
    std::shared_ptr<SubprocessTransportImpl> self = self_;
    loop_->call_soon([self, connected]() mutable {
      if (self->protocol_) {
        std::shared_ptr<SubprocessProtocol> protocol = self->protocol_;
        self->loop_->call_soon([self, protocol] { protocol->connection_made(self); });
      }
      std::vector<absl::AnyInvocable<void()>> pending = std::move(*self->pending_calls_);
      self->pending_calls_.reset();
      for (absl::AnyInvocable<void()>& call : pending) self->loop_->call_soon(std::move(call));
      if (!connected.done()) connected.set_result();
    });
  }

  int get_pid() const override { return pid_; }
  std::optional<int> get_returncode() const override { return returncode_; }
  std::shared_ptr<Transport> get_pipe_transport(int fd) const override {
    if (fd < 0 || fd > 2 || !pipes_[fd]) return nullptr;
    return pipes_[fd]->pipe;
  }
  void send_signal(int sig) override {
    check_proc();
    channel_->send_signal(sig);
  }
  void terminate() override { send_signal(SIGTERM); }
  void kill() override { send_signal(SIGKILL); }
  bool is_closing() const override { return closed_; }

  void close() override {
    if (closed_) return;
    closed_ = true;
    for (const std::shared_ptr<PipeProto>& proto : pipes_) {
      if (proto && proto->pipe && !proto->pipe->is_closing()) proto->pipe->close();
    }
    // Kill a child that still runs, not one that has exited
    // (test_close_kill_running, test_close_dont_kill_finished).
    if (channel_ && !returncode_ && !channel_->exited()) {
      if (loop_->get_debug()) loop_->log(absl::StrCat("Close running child process: kill ", describe()));
      channel_->send_signal(SIGKILL);
    }
  }

  // asyncio's _wait: the return code once the child exited and every pipe
  // closed; at once when it is known already.
  static Coro<int> wait(std::shared_ptr<SubprocessTransportImpl> self) {
    if (self->returncode_) co_return *self->returncode_;
    Future<int> waiter = create_future<int>();
    self->exit_waiters_.push_back(waiter);
    co_return co_await waiter;
  }

  // LoopResource
  std::string describe() const override {
    return absl::StrCat("subprocess transport <pid=", pid_,
                        returncode_ ? absl::StrCat(" returncode=", *returncode_) : std::string(" running"), ">");
  }
  void on_loop_close() override {
    // asyncio: the transport's __del__ closes it, which kills a child
    // still running. Nothing may be scheduled now: only the kill.
    registered_ = false;
    std::shared_ptr<SubprocessTransportImpl> keep = std::move(self_);
    if (channel_ && !returncode_ && !channel_->exited()) {
      loop_->log(absl::StrCat("event loop closed with ", describe(), ": killed"));
      channel_->send_signal(SIGKILL);
    }
    closed_ = true;
    proc_gone_ = true;
    channel_.reset();
    protocol_.reset();
  }

  // From the pipes and the child.
  void pipe_data_received(int fd, std::string_view data) {
    std::shared_ptr<SubprocessProtocol> protocol = protocol_;
    if (!protocol) return;
    call([protocol, fd, copy = std::string(data)] { protocol->pipe_data_received(fd, copy); });
  }
  void pipe_connection_lost(int fd, std::exception_ptr error) {
    std::shared_ptr<SubprocessProtocol> protocol = protocol_;
    if (protocol) call([protocol, fd, error] { protocol->pipe_connection_lost(fd, error); });
    try_finish();
  }
  void pause_writing() {
    if (protocol_) protocol_->pause_writing();
  }
  void resume_writing() {
    if (protocol_) protocol_->resume_writing();
  }

 private:
  void check_proc() const {
    if (proc_gone_ || !channel_) throw ProcessLookupError("the subprocess transport is closed");
  }

  void call(absl::AnyInvocable<void()> f) {
    if (pending_calls_) {
      pending_calls_->push_back(std::move(f));
    } else {
      loop_->call_soon(std::move(f));
    }
  }

  void process_exited(int returncode) {
    if (returncode_ || proc_gone_) return;
    if (loop_->get_debug()) loop_->log(absl::StrCat(describe(), " exited with return code ", returncode));
    returncode_ = returncode;
    std::shared_ptr<SubprocessProtocol> protocol = protocol_;
    if (protocol) call([protocol] { protocol->process_exited(); });
    try_finish();
  }

  void try_finish() {
    if (finished_ || !returncode_) return;
    for (const std::shared_ptr<PipeProto>& proto : pipes_) {
      if (proto && !proto->disconnected) return;
    }
    finished_ = true;
    std::shared_ptr<SubprocessTransportImpl> self = self_;
    call([self] { self->call_connection_lost(nullptr); });
  }

  void call_connection_lost(std::exception_ptr error) {
    std::shared_ptr<SubprocessTransportImpl> keep = std::move(self_);
    struct Finally {
      SubprocessTransportImpl* t;
      ~Finally() {
        // Wake wait(): the child exited and every pipe closed.
        std::vector<Future<int>> waiters = std::move(t->exit_waiters_);
        for (Future<int>& w : waiters) {
          if (!w.done()) w.set_result(*t->returncode_);
        }
        t->proc_gone_ = true;
        t->protocol_.reset();
        t->channel_.reset();
        if (t->registered_) {
          t->registered_ = false;
          LoopAccess::close_resource(*t->loop_, t);
        }
      }
    } finally{this};
    if (protocol_) protocol_->connection_lost(error);
  }

  Ref<EventLoop> loop_;
  std::shared_ptr<SubprocessProtocol> protocol_;
  std::unique_ptr<ProcessChannel> channel_;
  int pid_ = -1;
  std::optional<int> returncode_;
  std::array<std::shared_ptr<PipeProto>, 3> pipes_;
  // Calls made before the protocol's connection_made ran (asyncio's
  // _pending_calls), in order; nullopt after.
  std::optional<std::vector<absl::AnyInvocable<void()>>> pending_calls_ =
      std::vector<absl::AnyInvocable<void()>>();
  std::vector<Future<int>> exit_waiters_;
  // Alive while the child or its pipes may still report (asyncio: the child
  // watcher's callback and the pipes hold the transport).
  std::shared_ptr<SubprocessTransportImpl> self_;
  bool closed_ = false;
  bool finished_ = false;
  // asyncio's self._proc is None: signals raise ProcessLookupError.
  bool proc_gone_ = false;
  bool registered_ = false;
};

void PipeProto::connection_lost(std::exception_ptr error) {
  disconnected = true;
  if (std::shared_ptr<SubprocessTransportImpl> proc = proc_.lock()) proc->pipe_connection_lost(fd_, error);
  proc_.reset();
}
void PipeProto::pause_writing() {
  if (std::shared_ptr<SubprocessTransportImpl> proc = proc_.lock()) proc->pause_writing();
}
void PipeProto::resume_writing() {
  if (std::shared_ptr<SubprocessTransportImpl> proc = proc_.lock()) proc->resume_writing();
}
void PipeProto::data_received(std::string_view data) {
  if (std::shared_ptr<SubprocessTransportImpl> proc = proc_.lock()) proc->pipe_data_received(fd_, data);
}

std::vector<std::string> env_entries(const std::map<std::string, std::string>& env) {
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& entry : env) {
    if (entry.first.empty() || entry.first.find('=') != std::string::npos) {
      throw std::invalid_argument(absl::StrCat("illegal environment variable name: '", entry.first, "'"));
    }
    out.push_back(absl::StrCat(entry.first, "=", entry.second));
  }
  return out;
}

SpawnRequest make_request(std::vector<std::string> argv, const SubprocessOptions& options) {
  // asyncio passes these to subprocess.Popen, which raises ValueError.
  if (options.stdin == Redirect::kStdout) throw std::invalid_argument("STDOUT can only be used for stderr");
  if (options.stdout == Redirect::kStdout) throw std::invalid_argument("STDOUT can only be used for stderr");
  if (options.limit == 0) throw std::invalid_argument("Limit cannot be <= 0");
  SpawnRequest r;
  r.argv = std::move(argv);
  r.executable = options.executable;
  if (options.env) r.env = env_entries(*options.env);
  r.cwd = options.cwd;
  r.stdin_mode = options.stdin;
  r.stdout_mode = options.stdout;
  r.stderr_mode = options.stderr;
  r.new_process_group = options.new_process_group;
  r.new_session = options.start_new_session;
  return r;
}

}  // namespace

std::vector<std::string> exec_argv(std::string program, std::vector<std::string> args) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 1);
  argv.push_back(std::move(program));
  for (std::string& a : args) argv.push_back(std::move(a));
  return argv;
}

std::vector<std::string> shell_argv(std::string cmd) { return {"/bin/sh", "-c", std::move(cmd)}; }

Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> subprocess_any(
    AnySubprocessFactory factory, std::vector<std::string> argv, SubprocessOptions options) {
  const SpawnRequest request = make_request(std::move(argv), options);
  EventLoop& loop = get_running_loop();
  std::shared_ptr<SubprocessProtocol> protocol = factory();
  auto transport = std::make_shared<SubprocessTransportImpl>(loop, protocol);
  Future<void> connected = create_future<void>();
  transport->start(request, connected);
  std::exception_ptr error;
  try {
    co_await connected;
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    // asyncio's _make_subprocess_transport: cancelled (or failed) while
    // connecting: close (killing the child) and wait for it, then raise.
    transport->close();
    co_await SubprocessTransportImpl::wait(transport);
    std::rethrow_exception(error);
  }
  co_return std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>(
      std::move(transport), std::move(protocol));
}

// asyncio.subprocess.SubprocessStreamProtocol.
class StreamSubprocessProtocol final : public SubprocessProtocol {
 public:
  explicit StreamSubprocessProtocol(size_t limit) : limit_(limit) {}

  void connection_made(std::shared_ptr<SubprocessTransport> transport) override {
    transport_ = transport;
    if (std::shared_ptr<Transport> out = transport->get_pipe_transport(1)) {
      stdout_.emplace(limit_);
      set_reader_transport(*stdout_, out);
      pipe_fds_.push_back(1);
    }
    if (std::shared_ptr<Transport> err = transport->get_pipe_transport(2)) {
      stderr_.emplace(limit_);
      set_reader_transport(*stderr_, err);
      pipe_fds_.push_back(2);
    }
    if (std::shared_ptr<Transport> in = transport->get_pipe_transport(0)) {
      std::pair<StreamWriter, std::shared_ptr<BaseProtocol>> writer = make_driven_writer(in);
      stdin_ = std::move(writer.first);
      stdin_flow_ = std::move(writer.second);
      stdin_flow_->connection_made(in);
    }
  }
  void pipe_data_received(int fd, std::string_view data) override {
    if (StreamReader* r = reader(fd)) r->feed_data(data);
  }
  void pipe_connection_lost(int fd, std::exception_ptr error) override {
    if (fd == 0) {
      if (stdin_) stdin_->close();
      if (stdin_flow_) stdin_flow_->connection_lost(error);
      return;
    }
    if (StreamReader* r = reader(fd)) {
      if (error) {
        r->set_exception(error);
      } else {
        r->feed_eof();
      }
      set_reader_transport(*r, nullptr);
    }
    std::erase(pipe_fds_, fd);
    maybe_close_transport();
  }
  void process_exited() override {
    process_exited_ = true;
    maybe_close_transport();
  }
  void pause_writing() override {
    if (stdin_flow_) stdin_flow_->pause_writing();
  }
  void resume_writing() override {
    if (stdin_flow_) stdin_flow_->resume_writing();
  }

  StreamReader* reader(int fd) {
    if (fd == 1 && stdout_) return &*stdout_;
    if (fd == 2 && stderr_) return &*stderr_;
    return nullptr;
  }

  std::optional<StreamWriter> stdin_;
  std::optional<StreamReader> stdout_;
  std::optional<StreamReader> stderr_;

 private:
  void maybe_close_transport() {
    if (pipe_fds_.empty() && process_exited_ && transport_) {
      transport_->close();
      transport_.reset();
    }
  }

  size_t limit_;
  std::shared_ptr<SubprocessTransport> transport_;
  std::shared_ptr<BaseProtocol> stdin_flow_;
  std::vector<int> pipe_fds_;
  bool process_exited_ = false;
};

class ProcessState {
 public:
  ProcessState(std::shared_ptr<SubprocessTransport> t, std::shared_ptr<StreamSubprocessProtocol> p)
      : transport(std::move(t)), protocol(std::move(p)) {}
  std::shared_ptr<SubprocessTransport> transport;
  std::shared_ptr<StreamSubprocessProtocol> protocol;
};

namespace {

Coro<Process> start_process(std::vector<std::string> argv, SubprocessOptions options) {
  const size_t limit = options.limit;
  AnySubprocessFactory factory = [limit]() -> std::shared_ptr<SubprocessProtocol> {
    return std::make_shared<StreamSubprocessProtocol>(limit);
  };
  std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>> started =
      co_await subprocess_any(std::move(factory), std::move(argv), std::move(options));
  auto protocol = std::static_pointer_cast<StreamSubprocessProtocol>(std::move(started.second));
  co_return Process(std::make_shared<ProcessState>(std::move(started.first), std::move(protocol)));
}

Coro<int> process_wait(std::shared_ptr<ProcessState> s) {
  // The transport is the implementation this file made.
  auto impl = std::static_pointer_cast<SubprocessTransportImpl>(s->transport);
  co_return co_await SubprocessTransportImpl::wait(std::move(impl));
}

// Process._feed_stdin: BrokenPipeError and ConnectionResetError are ignored
// (the child exited without reading all of its input).
Coro<bool> feed_stdin(std::shared_ptr<ProcessState> s, std::optional<std::string> input) {
  StreamWriter writer = *s->protocol->stdin_;
  bool fed = true;
  try {
    if (input) writer.write(*input);
    co_await writer.drain();
  } catch (const BrokenPipeError&) {
    fed = false;
  } catch (const ConnectionResetError&) {
    fed = false;
  }
  writer.close();
  co_return fed;
}

// Process._read_stream: to the end, then the pipe's transport is closed.
Coro<std::optional<std::string>> read_stream(std::shared_ptr<ProcessState> s, int fd) {
  StreamReader* reader = s->protocol->reader(fd);
  if (!reader) co_return std::nullopt;
  StreamReader r = *reader;
  std::string output = co_await r.read();
  if (std::shared_ptr<Transport> t = s->transport->get_pipe_transport(fd)) t->close();
  co_return output;
}

Coro<bool> no_stdin() { co_return true; }

Coro<std::pair<std::optional<std::string>, std::optional<std::string>>> process_communicate(
    std::shared_ptr<ProcessState> s, std::optional<std::string> input) {
  Coro<bool> in = s->protocol->stdin_ ? feed_stdin(s, std::move(input)) : no_stdin();
  Coro<std::optional<std::string>> out = read_stream(s, 1);
  Coro<std::optional<std::string>> err = read_stream(s, 2);
  std::tuple<bool, std::optional<std::string>, std::optional<std::string>> results =
      co_await gather(std::move(in), std::move(out), std::move(err));
  co_await process_wait(s);
  co_return std::pair<std::optional<std::string>, std::optional<std::string>>(std::move(std::get<1>(results)),
                                                                             std::move(std::get<2>(results)));
}

}  // namespace
}  // namespace internal

Process::Process() = default;
Process::~Process() = default;
Process::Process(const Process&) = default;
Process& Process::operator=(const Process&) = default;
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::Process(std::shared_ptr<internal::ProcessState> state) : state_(std::move(state)) {}

int Process::pid() const { return state_->transport->get_pid(); }
std::optional<int> Process::returncode() const { return state_->transport->get_returncode(); }
StreamWriter* Process::stdin() const { return state_->protocol->stdin_ ? &*state_->protocol->stdin_ : nullptr; }
StreamReader* Process::stdout() const { return state_->protocol->reader(1); }
StreamReader* Process::stderr() const { return state_->protocol->reader(2); }
Coro<int> Process::wait() const { return internal::process_wait(state_); }
Coro<std::pair<std::optional<std::string>, std::optional<std::string>>> Process::communicate() const {
  return internal::process_communicate(state_, std::nullopt);
}
Coro<std::pair<std::optional<std::string>, std::optional<std::string>>> Process::communicate(
    std::string input) const {
  return internal::process_communicate(state_, std::move(input));
}
void Process::send_signal(int sig) const { state_->transport->send_signal(sig); }
void Process::terminate() const { state_->transport->terminate(); }
void Process::kill() const { state_->transport->kill(); }
const std::shared_ptr<SubprocessTransport>& Process::transport() const { return state_->transport; }

Coro<Process> create_subprocess_exec(std::string program) {
  return create_subprocess_exec(std::move(program), {}, SubprocessOptions());
}
Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args) {
  return create_subprocess_exec(std::move(program), std::move(args), SubprocessOptions());
}
Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args, SubprocessOptions options) {
  return internal::start_process(internal::exec_argv(std::move(program), std::move(args)), std::move(options));
}
Coro<Process> create_subprocess_shell(std::string cmd) {
  return create_subprocess_shell(std::move(cmd), SubprocessOptions());
}
Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options) {
  return internal::start_process(internal::shell_argv(std::move(cmd)), std::move(options));
}

}  // namespace twinloop
