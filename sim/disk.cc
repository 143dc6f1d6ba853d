#include "twinloop/sim/disk.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "twinloop/api/internal/check.h"
#include "twinloop/api/task.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/sim_backend.h"

namespace twinloop::sim {

// One write not yet durable: `data` at `offset`, or a truncate to `offset`
// bytes. `seq` numbers the host's writes from 1 in the order made, so that a
// sync knows which writes came before it.
struct Disk::Write {
  uint64_t seq = 0;
  bool truncate = false;
  uint64_t offset = 0;
  std::string data;

  uint64_t bytes() const { return truncate ? 0 : data.size(); }

  // Applies the first `kept` bytes of this write (all of a truncate) to
  // `content`. A write that starts past the end leaves a hole of zero bytes
  // before it; an empty write changes nothing (write(2) of 0 bytes does not
  // extend a file).
  void apply(std::string& content, uint64_t kept) const {
    if (truncate) {
      content.resize(offset, '\0');
      return;
    }
    TWINLOOP_DCHECK(kept <= data.size(), "a write keeps at most its own bytes");
    if (kept == 0) return;
    if (content.size() < offset + kept) content.resize(offset + kept, '\0');
    content.replace(offset, kept, data, 0, kept);
  }
};

struct Disk::File {
  std::string content;                 // what reads see
  std::optional<std::string> durable;  // nullopt: never synced
  std::deque<Write> unsynced;          // in the order written
};

struct Disk::Host {
  std::string name;  // as the network spells it
  std::map<std::string, File, std::less<>> files;
  uint64_t last_seq = 0;
  // Crashes so far: a sync that wakes to a different count lost its writes.
  uint64_t crashes = 0;
};

namespace {

// absl's string_view is not std::string_view in this build.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string lower(std::string_view s) { return absl::AsciiStrToLower(av(s)); }

std::string quote(std::string_view name) { return absl::StrCat("'", absl::CHexEscape(av(name)), "'"); }

std::string count(uint64_t n, std::string_view noun) { return absl::StrCat(n, " ", av(noun), n == 1 ? "" : "s"); }

void check_file_name(std::string_view file, const char* what) {
  if (file.empty()) throw std::invalid_argument(absl::StrCat(what, ": a file needs a non-empty name"));
}

// What a torn crash does to one unsynced write ("disk.torn_fate"): 0, the
// default, is what a clean crash does.
enum Fate : uint64_t { kLost = 0, kKept = 1, kTorn = 2 };

}  // namespace

// ---------------------------------------------------------------------------
// The disk of a loop.

Disk& Disk::of(EventLoop& loop) {
  auto* sim = dynamic_cast<SimBackend*>(&loop.backend());
  if (!sim) {
    throw std::runtime_error(
        "Disk::of: the simulated disk exists only on the simulated loop (sim::run, sim::Simulation)");
  }
  if (!sim->disk_) sim->disk_ = std::make_unique<Disk>(loop, *sim);
  return *sim->disk_;
}

Disk::Disk(EventLoop& loop, SimBackend& backend) : loop_(loop), backend_(backend) {}
Disk::~Disk() = default;

void Disk::set_config(const DiskConfig& config) {
  if (config.sync_latency_min < absl::ZeroDuration() || config.sync_latency_max < config.sync_latency_min) {
    throw std::invalid_argument(absl::StrCat("Disk::set_config: the sync latency range [",
                                             absl::FormatDuration(config.sync_latency_min), ", ",
                                             absl::FormatDuration(config.sync_latency_max),
                                             "] is not a range of non-negative durations"));
  }
  if (config.sync_latency_max > absl::Hours(24)) {
    throw std::invalid_argument(absl::StrCat("Disk::set_config: sync_latency_max ",
                                             absl::FormatDuration(config.sync_latency_max), " is over a day"));
  }
  if (config.max_file_bytes == 0) throw std::invalid_argument("Disk::set_config: max_file_bytes must be at least 1");
  config_ = config;
}

// ---------------------------------------------------------------------------
// Hosts.

std::string Disk::canonical(std::string_view name) const {
  const Network& net = backend_.network();
  if (net.has_host(name)) {
    const std::string key = lower(name);
    for (const std::string& h : net.hosts()) {
      if (lower(h) == key) return h;
    }
    // The implicit host before the network made its hosts.
    if (key == Network::kImplicitHost) return std::string(Network::kImplicitHost);
  }
  throw std::invalid_argument(absl::StrCat("disk: unknown host ", quote(name), " (hosts: ",
                                           absl::StrJoin(net.hosts(), ", "), ")"));
}

Disk::Host& Disk::host(std::string_view name) {
  const std::string key = lower(name);
  auto it = hosts_.find(key);
  if (it != hosts_.end()) return *it->second;
  auto h = std::make_unique<Host>();
  h->name = canonical(name);
  return *hosts_.emplace(key, std::move(h)).first->second;
}

const Disk::Host* Disk::find_host(std::string_view name) const {
  auto it = hosts_.find(lower(name));
  if (it != hosts_.end()) return it->second.get();
  canonical(name);  // throws for an unknown host
  return nullptr;
}

Disk::Host& Disk::current() { return host(backend_.network().current_host()); }

// ---------------------------------------------------------------------------
// Files.

void Disk::do_write(Host& h, std::string_view file, uint64_t offset, std::string_view data, const char* what) {
  check_file_name(file, what);
  if (offset > config_.max_file_bytes || data.size() > config_.max_file_bytes - offset) {
    throw std::invalid_argument(absl::StrCat(what, ": ", data.size(), " bytes at offset ", offset, " of ",
                                             quote(file), " on host ", h.name,
                                             " would pass the file size limit (DiskConfig::max_file_bytes = ",
                                             config_.max_file_bytes, ")"));
  }
  auto [it, created] = h.files.try_emplace(std::string(file));
  // An empty write to an existing file changes nothing and needs no sync.
  if (data.empty() && !created) return;
  Write w{.seq = ++h.last_seq, .truncate = false, .offset = offset, .data = std::string(data)};
  w.apply(it->second.content, w.bytes());
  it->second.unsynced.push_back(std::move(w));
}

void Disk::do_truncate(Host& h, std::string_view file, int64_t size) {
  check_file_name(file, "truncate");
  if (size < 0) throw std::invalid_argument(absl::StrCat("truncate: negative size ", size, " for ", quote(file)));
  if (static_cast<uint64_t>(size) > config_.max_file_bytes) {
    throw std::invalid_argument(absl::StrCat("truncate: ", size, " bytes for ", quote(file), " on host ", h.name,
                                             " would pass the file size limit (DiskConfig::max_file_bytes = ",
                                             config_.max_file_bytes, ")"));
  }
  File& f = h.files[std::string(file)];
  Write w{.seq = ++h.last_seq, .truncate = true, .offset = static_cast<uint64_t>(size), .data = {}};
  w.apply(f.content, 0);
  f.unsynced.push_back(std::move(w));
}

bool Disk::do_remove(Host& h, std::string_view file) {
  check_file_name(file, "remove");
  auto it = h.files.find(file);
  if (it == h.files.end()) return false;
  h.files.erase(it);
  return true;
}

void Disk::write(std::string_view file, int64_t offset, std::string_view data) {
  write(current().name, file, offset, data);
}
void Disk::write(std::string_view host_name, std::string_view file, int64_t offset, std::string_view data) {
  if (offset < 0) throw std::invalid_argument(absl::StrCat("write: negative offset ", offset, " in ", quote(file)));
  do_write(host(host_name), file, static_cast<uint64_t>(offset), data, "write");
}

uint64_t Disk::append(std::string_view file, std::string_view data) { return append(current().name, file, data); }
uint64_t Disk::append(std::string_view host_name, std::string_view file, std::string_view data) {
  Host& h = host(host_name);
  auto it = h.files.find(file);
  const uint64_t offset = it == h.files.end() ? 0 : it->second.content.size();
  do_write(h, file, offset, data, "append");
  return offset;
}

void Disk::truncate(std::string_view file, int64_t size) { do_truncate(current(), file, size); }
void Disk::truncate(std::string_view host_name, std::string_view file, int64_t size) {
  do_truncate(host(host_name), file, size);
}

std::optional<std::string> Disk::read(std::string_view file) const {
  return read(backend_.network().current_host(), file);
}
std::optional<std::string> Disk::read(std::string_view host_name, std::string_view file) const {
  const Host* h = find_host(host_name);
  if (!h) return std::nullopt;
  auto it = h->files.find(file);
  if (it == h->files.end()) return std::nullopt;
  return it->second.content;
}

std::optional<std::string> Disk::read_synced(std::string_view file) const {
  return read_synced(backend_.network().current_host(), file);
}
std::optional<std::string> Disk::read_synced(std::string_view host_name, std::string_view file) const {
  const Host* h = find_host(host_name);
  if (!h) return std::nullopt;
  auto it = h->files.find(file);
  if (it == h->files.end()) return std::nullopt;
  return it->second.durable;
}

bool Disk::exists(std::string_view file) const { return exists(backend_.network().current_host(), file); }
bool Disk::exists(std::string_view host_name, std::string_view file) const {
  const Host* h = find_host(host_name);
  return h && h->files.count(file) != 0;
}

std::optional<uint64_t> Disk::size(std::string_view file) const {
  return size(backend_.network().current_host(), file);
}
std::optional<uint64_t> Disk::size(std::string_view host_name, std::string_view file) const {
  const Host* h = find_host(host_name);
  if (!h) return std::nullopt;
  auto it = h->files.find(file);
  if (it == h->files.end()) return std::nullopt;
  return it->second.content.size();
}

std::optional<FileStat> Disk::stat(std::string_view file) const {
  return stat(backend_.network().current_host(), file);
}
std::optional<FileStat> Disk::stat(std::string_view host_name, std::string_view file) const {
  const Host* h = find_host(host_name);
  if (!h) return std::nullopt;
  auto it = h->files.find(file);
  if (it == h->files.end()) return std::nullopt;
  const File& f = it->second;
  FileStat s;
  s.size = f.content.size();
  s.synced = f.durable.has_value();
  s.synced_size = f.durable ? f.durable->size() : 0;
  s.unsynced_writes = f.unsynced.size();
  for (const Write& w : f.unsynced) s.unsynced_bytes += w.bytes();
  return s;
}

bool Disk::remove(std::string_view file) { return do_remove(current(), file); }
bool Disk::remove(std::string_view host_name, std::string_view file) { return do_remove(host(host_name), file); }

std::vector<std::string> Disk::list() const { return list(backend_.network().current_host()); }
std::vector<std::string> Disk::list(std::string_view host_name) const {
  std::vector<std::string> out;
  const Host* h = find_host(host_name);
  if (!h) return out;
  for (const auto& [name, f] : h->files) out.push_back(name);
  return out;
}

// ---------------------------------------------------------------------------
// Durability.

int64_t Disk::draw_sync_latency_ns() {
  const int64_t min_ns = absl::ToInt64Nanoseconds(config_.sync_latency_min);
  const auto range_us =
      static_cast<uint64_t>(absl::ToInt64Microseconds(config_.sync_latency_max - config_.sync_latency_min));
  if (range_us == 0) return min_ns;
  return min_ns + static_cast<int64_t>(backend_.choose(draw_sites::kDiskSyncLatencyUs, range_us + 1)) * 1000;
}

void Disk::make_durable(Host& h, const std::string* file, uint64_t last) {
  auto settle = [last](File& f) {
    while (!f.unsynced.empty() && f.unsynced.front().seq <= last) {
      const Write& w = f.unsynced.front();
      if (!f.durable) f.durable.emplace();
      w.apply(*f.durable, w.bytes());
      f.unsynced.pop_front();
    }
    // With nothing left unsynced the durable image is what reads see.
    TWINLOOP_DCHECK(!f.unsynced.empty() || f.durable == f.content, "a synced file's images agree");
  };
  if (file) {
    // The file may have been removed (and made again) while the sync waited:
    // its writes numbered up to `last` are then gone, and later ones are not
    // this sync's.
    auto it = h.files.find(*file);
    if (it != h.files.end()) settle(it->second);
    return;
  }
  for (auto& [name, f] : h.files) settle(f);
}

Coro<void> Disk::sync(std::string file) { return sync_on(std::nullopt, std::optional<std::string>(std::move(file))); }
Coro<void> Disk::sync(std::string host_name, std::string file) {
  return sync_on(std::optional<std::string>(std::move(host_name)), std::optional<std::string>(std::move(file)));
}
Coro<void> Disk::sync_all() { return sync_on(std::nullopt, std::nullopt); }
Coro<void> Disk::sync_all(std::string host_name) {
  return sync_on(std::optional<std::string>(std::move(host_name)), std::nullopt);
}

// Everything happens when the sync is awaited, as a Python coroutine's body:
// the host (the awaiting task's, unless named), the checks, the draw. The
// disk keeps no reference to the waiting sync: it is a sleep of the awaiting
// task, so a crash has nothing to cancel and the crash machinery's
// cancelling that task leaves nothing behind.
Coro<void> Disk::sync_on(std::optional<std::string> host_name, std::optional<std::string> file) {
  Host* hp = nullptr;
  if (host_name) {
    hp = &host(*host_name);
  } else {
    hp = &current();
  }
  // Hosts are never erased while the disk lives, and the disk outlives every
  // task of its loop.
  Host& h = *hp;
  uint64_t dirty = 0;
  if (file) {
    check_file_name(*file, "sync");
    auto it = h.files.find(*file);
    if (it == h.files.end()) {
      throw FileNotFoundError(absl::StrCat("sync: no file ", quote(*file), " on host ", h.name));
    }
    dirty = it->second.unsynced.size();
  } else {
    for (const auto& [name, f] : h.files) dirty += f.unsynced.size();
  }
  if (dirty == 0) co_return;
  const uint64_t last = h.last_seq;
  const uint64_t crashes = h.crashes;
  const int64_t latency_ns = draw_sync_latency_ns();
  co_await sleep(absl::Nanoseconds(latency_ns));
  if (h.crashes != crashes) {
    std::string what = file ? absl::StrCat("sync of ", quote(*file)) : std::string("sync_all");
    throw DiskCrashedError(
        absl::StrCat(what, ": host ", h.name, " crashed during the sync; its unsynced writes were lost"));
  }
  make_durable(h, file ? &*file : nullptr, last);
}

// ---------------------------------------------------------------------------
// Crashes.

namespace {

std::string describe_crash(const CrashRecord& r) {
  const std::string head =
      absl::StrCat("host ", r.host, ": ", r.torn ? "torn crash" : "crash", " at ", absl::FormatDuration(r.time));
  if (r.files.empty()) return absl::StrCat(head, ", nothing unsynced");
  std::vector<std::string> parts;
  if (!r.torn) {
    for (const CrashRecord::File& f : r.files) {
      std::string p = absl::StrCat(parts.empty() ? count(f.writes_lost, "unsynced write") : absl::StrCat(f.writes_lost),
                                   " to ", quote(f.name), " (", count(f.bytes_lost, "byte"));
      if (f.vanished) absl::StrAppend(&p, "; never synced: gone");
      parts.push_back(absl::StrCat(p, ")"));
    }
    return absl::StrCat(head, " lost ", absl::StrJoin(parts, ", "));
  }
  for (const CrashRecord::File& f : r.files) {
    // "'log': 1 write kept (8 bytes), 1 torn (kept 5 of 12 bytes), 2 lost
    // (37 bytes)": the first count names the noun.
    std::vector<std::string> what;
    const auto add = [&what](uint64_t n, std::string rest) {
      if (n == 0) return;
      what.push_back(absl::StrCat(what.empty() ? count(n, "write") : absl::StrCat(n), " ", rest));
    };
    add(f.writes_kept, absl::StrCat("kept (", count(f.bytes_kept, "byte"), ")"));
    add(f.writes_torn, absl::StrCat("torn (kept ", f.bytes_torn_kept, " of ",
                                    count(f.bytes_torn_kept + f.bytes_torn_lost, "byte"), ")"));
    add(f.writes_lost, absl::StrCat("lost (", count(f.bytes_lost, "byte"), ")"));
    std::string p = absl::StrCat(quote(f.name), ": ", absl::StrJoin(what, ", "));
    if (f.vanished) absl::StrAppend(&p, "; never synced: gone");
    parts.push_back(std::move(p));
  }
  return absl::StrCat(head, ": ", absl::StrJoin(parts, "; "));
}

}  // namespace

CrashRecord Disk::crash(std::string_view host_name, DiskCrashOptions options) {
  Host& h = host(host_name);
  ++h.crashes;
  CrashRecord r;
  r.time = absl::Nanoseconds(loop_.time_ns());
  r.host = h.name;
  r.torn = options.torn;
  for (auto it = h.files.begin(); it != h.files.end();) {
    File& f = it->second;
    if (f.unsynced.empty()) {
      ++it;
      continue;
    }
    CrashRecord::File out;
    out.name = it->first;
    out.never_synced = !f.durable;
    for (const Write& w : f.unsynced) {
      const uint64_t bytes = w.bytes();
      uint64_t fate = kLost;
      uint64_t kept = 0;
      if (options.torn) {
        // A truncate or a write of fewer than 2 bytes has no proper prefix.
        const bool can_tear = !w.truncate && bytes >= 2;
        fate = backend_.choose(draw_sites::kDiskTornFate, can_tear ? 3 : 2);
        if (fate == kKept) kept = bytes;
        if (fate == kTorn) kept = 1 + backend_.choose(draw_sites::kDiskTornPrefix, bytes - 1);
      }
      switch (fate) {
        case kLost:
          ++out.writes_lost;
          out.bytes_lost += bytes;
          continue;
        case kKept:
          ++out.writes_kept;
          out.bytes_kept += bytes;
          break;
        default:
          TWINLOOP_CHECK(fate == kTorn && kept >= 1 && kept < bytes, "a torn write keeps a proper prefix")
              << "fate " << fate << ", kept " << kept << " of " << bytes;
          ++out.writes_torn;
          out.bytes_torn_kept += kept;
          out.bytes_torn_lost += bytes - kept;
          break;
      }
      if (!f.durable) f.durable.emplace();
      w.apply(*f.durable, kept);
    }
    f.unsynced.clear();
    if (f.durable) {
      f.content = *f.durable;
      ++it;
    } else {
      out.vanished = true;
      it = h.files.erase(it);
    }
    r.files.push_back(std::move(out));
  }
  r.description = describe_crash(r);
  if (crashes_.size() == kMaxCrashRecords) {
    crashes_.pop_front();
    ++crashes_dropped_;
  }
  crashes_.push_back(r);
  return r;
}

// ---------------------------------------------------------------------------
// Reports.

std::string Disk::describe() const {
  bool any_file = false;
  for (const auto& [key, h] : hosts_) any_file = any_file || !h->files.empty();
  if (!any_file && crashes_.empty()) return "";
  std::string out = absl::StrCat("simulated disk at t=", absl::FormatDuration(absl::Nanoseconds(loop_.time_ns())),
                                 " (sync latency ", absl::FormatDuration(config_.sync_latency_min), "..",
                                 absl::FormatDuration(config_.sync_latency_max), "):\n");
  for (const auto& [key, h] : hosts_) {
    if (h->files.empty()) continue;
    absl::StrAppend(&out, "  host ", h->name, ": ", count(h->files.size(), "file"), "\n");
    for (const auto& [name, f] : h->files) {
      absl::StrAppend(&out, "    ", quote(name), ": ", count(f.content.size(), "byte"));
      if (f.unsynced.empty()) {
        absl::StrAppend(&out, ", synced\n");
        continue;
      }
      uint64_t bytes = 0;
      for (const Write& w : f.unsynced) bytes += w.bytes();
      if (f.durable) {
        absl::StrAppend(&out, ", ", f.durable->size(), " synced");
      } else {
        absl::StrAppend(&out, ", never synced");
      }
      absl::StrAppend(&out, ", ", count(f.unsynced.size(), "unsynced write"), " (", count(bytes, "byte"), ")\n");
    }
  }
  if (!crashes_.empty()) {
    absl::StrAppend(&out, "  crashes (", crashes_.size() + crashes_dropped_, "):\n");
    if (crashes_dropped_) absl::StrAppend(&out, "    (", crashes_dropped_, " earlier not kept)\n");
    for (const CrashRecord& r : crashes_) absl::StrAppend(&out, "    ", r.description, "\n");
  }
  return out;
}

}  // namespace twinloop::sim
