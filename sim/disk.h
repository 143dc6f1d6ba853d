// twinloop/sim/disk.h: a simulated disk per host, for crash durability.
//
//   twinloop::sim::Disk& disk = twinloop::sim::Disk::of(twinloop::get_running_loop());
//   disk.append("log", "k1=v1\n");          // on the calling task's host
//   co_await disk.sync("log");              // fsync: durable after a drawn delay
//   reply_ok();                             // only now acknowledge the write
//   ...
//   disk.crash("db");                       // power loss on host "db": every
//                                           // unsynced write is gone
//
// The model
// ---------
// Each simulated host (sim/network.h: hosts, the implicit "localhost") has
// its own set of files, by name (any non-empty string; there are no
// directories). A file is a byte string with two images:
//  - what reads see: every write so far (the page cache), and
//  - what is durable: the content as of its last completed sync (nothing, for
//    a file never synced).
// Writes (write, append, truncate) change what reads see at once and are
// kept, in order, as the file's unsynced writes. A sync makes the writes
// made before it started durable after a drawn virtual delay
// ("disk.sync_latency_us"), like fsync(2); writes made while it waits stay
// unsynced (the next sync covers them). remove() is durable at once (as if
// followed by an fsync of the directory): the file and its unsynced writes
// are gone, and a crash does not bring it back.
//
// A crash (crash(host), called by whoever crashes the host: a test, the
// crash machinery) is a power loss on that host's disk:
//  - clean (DiskCrashOptions::torn = false, the default): every unsynced write is
//    lost. Each file returns to its durable content; a file never synced
//    disappears.
//  - torn (DiskCrashOptions::torn = true, a fault): each unsynced write, in the
//    order written, is drawn lost, kept whole, or torn: only a prefix of it
//    reaches the disk ("disk.torn_fate", "disk.torn_prefix"). The kept parts
//    are applied over the durable content in the order written. So a later
//    write can survive while an earlier one is lost (a disk's write-back
//    order is not the order written), and an append that survives after a
//    lost one leaves a hole of zero bytes, as a file whose size reached the
//    disk before its data (Pillai et al., "All File Systems Are Not Created
//    Equal", OSDI 2014: appends and overwrites are neither atomic nor
//    ordered without fsync). A file never synced survives only if some of
//    its writes did.
// Synced data is never lost or torn: what a completed sync made durable
// survives every crash. The crash record (crashes(), describe()) says what
// each crash did to each file.
//
// A sync in progress at a crash never completes: its coroutine belongs to a
// task of the crashed host, which the crash machinery cancels. The disk
// keeps no reference to a waiting sync (the sync is a virtual-time sleep in
// the awaiting task; nothing is left to call back), and a sync that wakes
// after its host crashed changes nothing and throws DiskCrashedError.
// Cancelling a sync (wait_for, task.cancel()) leaves its writes unsynced.
//
// Writes past the end of a file extend it with zero bytes (a hole), as
// POSIX's write(2) after lseek(2) past the end; so does truncate() to a
// larger size.
//
// Determinism: every choice is a named draw through LoopBackend::choose (made
// on behalf of the task that syncs, or of whoever calls crash), files and
// hosts are kept in ordered maps, and nothing depends on addresses or the
// wall clock. Draw sites (sim/draw_sites.h):
//   disk.sync_latency_us  sync_latency_max - sync_latency_min in us, + 1   the minimum latency
//   disk.torn_fate        3 (2: a truncate, a write of under 2 bytes)     the write is lost
//   disk.torn_prefix      the write's bytes - 1                            only its first byte is kept
//
// Errors: std::invalid_argument for an empty file name, a negative offset or
// size, a file larger than DiskConfig::max_file_bytes, an unknown host or a
// bad DiskConfig; FileNotFoundError for sync() of a file that does not exist;
// std::runtime_error for Disk::of on a loop that is not simulated.
//
// Threads: the loop thread only, as the loop.
#ifndef TWINLOOP_SIM_DISK_H_
#define TWINLOOP_SIM_DISK_H_

#include <cerrno>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"

namespace twinloop::sim {

class SimBackend;

// How the disk behaves; Disk::set_config changes it from then on.
struct DiskConfig {
  // Each sync that has something to write back takes a drawn virtual
  // latency in [sync_latency_min, sync_latency_max], whole microseconds
  // ("disk.sync_latency_us"; nothing is drawn when they are equal). Zero is
  // allowed: the sync then completes on the next loop iteration.
  absl::Duration sync_latency_min = absl::ZeroDuration();
  absl::Duration sync_latency_max = absl::Microseconds(500);
  // No file grows past this many bytes (std::invalid_argument): a bad offset
  // is a clear error rather than a huge allocation.
  uint64_t max_file_bytes = uint64_t{64} << 20;
};

struct DiskCrashOptions {
  // false: every unsynced write is lost. true (a fault): each unsynced write
  // is drawn lost, kept or torn (see the header comment).
  bool torn = false;
};

// One file as stat() sees it.
struct FileStat {
  uint64_t size = 0;            // what reads see
  bool synced = false;          // some content of it is durable
  uint64_t synced_size = 0;     // the durable content's size (0 if none)
  uint64_t unsynced_writes = 0; // writes a crash would lose
  uint64_t unsynced_bytes = 0;  // their bytes (a truncate counts 0)
};

// What one crash did.
struct CrashRecord {
  // What a crash did to one file that had unsynced writes.
  struct File {
    std::string name;
    uint64_t writes_lost = 0;
    uint64_t bytes_lost = 0;
    uint64_t writes_kept = 0;       // survived whole (torn crashes only)
    uint64_t bytes_kept = 0;
    uint64_t writes_torn = 0;       // a prefix survived (torn crashes only)
    uint64_t bytes_torn_kept = 0;   // bytes of the torn writes that survived
    uint64_t bytes_torn_lost = 0;   // and that did not
    bool never_synced = false;      // the file had no durable content
    bool vanished = false;          // the file no longer exists
    friend bool operator==(const File&, const File&) = default;
  };
  absl::Duration time;  // virtual time of the crash (since the run started)
  std::string host;
  bool torn = false;
  std::vector<File> files;  // by name
  // One line: "host db: crash at 1.5ms lost 2 unsynced writes to 'log'
  // (37 bytes)"; "host db: torn crash at 3ms: 'log': 1 write kept (8 bytes),
  // 1 torn (kept 5 of 12 bytes), 2 lost (37 bytes)"; "host db: crash at 2s,
  // nothing unsynced".
  std::string description;
  friend bool operator==(const CrashRecord&, const CrashRecord&) = default;
};

// A sync woke after its host crashed (its writes were lost with the crash).
class DiskCrashedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// sync() of a file that does not exist (Python's FileNotFoundError, as
// os.open of a missing file): a std::system_error whose code() is ENOENT in
// std::generic_category(), as twinloop's ConnectionError family.
class FileNotFoundError : public std::system_error {
 public:
  explicit FileNotFoundError(const std::string& what) : std::system_error(ENOENT, std::generic_category(), what) {}
};

class Disk {
 public:
  // The simulated loop's disk, made on first use (one per loop, living as
  // long as the loop). std::runtime_error for a loop that is not simulated.
  static Disk& of(EventLoop& loop);

  Disk(EventLoop& loop, SimBackend& backend);
  ~Disk();
  Disk(const Disk&) = delete;
  Disk& operator=(const Disk&) = delete;

  // std::invalid_argument for a negative latency, max < min, a range over a
  // day or max_file_bytes == 0.
  void set_config(const DiskConfig& config);
  const DiskConfig& config() const { return config_; }

  // ---- files. Each operation acts on the host of the code running now
  // (Network::current_host: the calling task's host), or on `host` in the
  // overload that names it (std::invalid_argument for an unknown host).

  // Writes `data` at `offset` (creating the file if needed; past the end:
  // a hole of zero bytes before it). Seen by reads at once; unsynced.
  void write(std::string_view file, int64_t offset, std::string_view data);
  void write(std::string_view host, std::string_view file, int64_t offset, std::string_view data);
  // Writes `data` at the end of the file (creating it if needed) and
  // returns the offset it was written at. A write like any other: a crash
  // may lose it, or (torn) keep it and lose an earlier one.
  uint64_t append(std::string_view file, std::string_view data);
  uint64_t append(std::string_view host, std::string_view file, std::string_view data);
  // Cuts the file to `size` bytes, or extends it with zero bytes (creating
  // it if needed). Unsynced, as a write.
  void truncate(std::string_view file, int64_t size);
  void truncate(std::string_view host, std::string_view file, int64_t size);
  // The file's content as reads see it (every write so far); nullopt if it
  // does not exist.
  std::optional<std::string> read(std::string_view file) const;
  std::optional<std::string> read(std::string_view host, std::string_view file) const;
  // The content a crash would keep for sure (its durable image); nullopt if
  // none (never synced).
  std::optional<std::string> read_synced(std::string_view file) const;
  std::optional<std::string> read_synced(std::string_view host, std::string_view file) const;
  bool exists(std::string_view file) const;
  bool exists(std::string_view host, std::string_view file) const;
  // nullopt if the file does not exist.
  std::optional<uint64_t> size(std::string_view file) const;
  std::optional<uint64_t> size(std::string_view host, std::string_view file) const;
  std::optional<FileStat> stat(std::string_view file) const;
  std::optional<FileStat> stat(std::string_view host, std::string_view file) const;
  // Removes the file, durably at once; false if it did not exist.
  bool remove(std::string_view file);
  bool remove(std::string_view host, std::string_view file);
  // The host's files, by name.
  std::vector<std::string> list() const;
  std::vector<std::string> list(std::string_view host) const;

  // ---- durability

  // fsync(file): the file's writes made before this call are durable when
  // it returns, after a drawn virtual latency (drawn by the awaiting task;
  // a file with no unsynced write returns at once, drawing nothing). The
  // host is the caller's at the call (the overload's `host`). Throws
  // FileNotFoundError if the file does not exist, DiskCrashedError if the
  // host crashed while it waited (nothing is made durable then);
  // cancelling it leaves the writes unsynced.
  Coro<void> sync(std::string file);
  Coro<void> sync(std::string host, std::string file);
  // sync() of every file of the host at once (one drawn latency; syncfs(2)).
  Coro<void> sync_all();
  Coro<void> sync_all(std::string host);

  // ---- crashes

  // A power loss on `host`'s disk (see the header comment): unsynced writes
  // are lost, or with options.torn drawn lost, kept or torn. Syncs waiting
  // on this host will throw DiskCrashedError if they wake. Returns the
  // record, also kept in crashes(). std::invalid_argument for an unknown
  // host.
  CrashRecord crash(std::string_view host, DiskCrashOptions options = {});
  // Every crash so far, oldest first (the latest kMaxCrashRecords).
  const std::deque<CrashRecord>& crashes() const { return crashes_; }
  uint64_t crashes_dropped() const { return crashes_dropped_; }
  static constexpr size_t kMaxCrashRecords = 1000;

  // ---- reports

  // Each host's files (size, synced bytes, unsynced writes and bytes) and
  // the crashes so far, for failure reports; "" if no file exists and no
  // crash happened.
  std::string describe() const;

 private:
  struct Write;
  struct File;
  struct Host;

  // The host of the running code, and a named host (canonical name).
  Host& current();
  Host& host(std::string_view name);
  const Host* find_host(std::string_view name) const;
  std::string canonical(std::string_view name) const;  // std::invalid_argument if unknown

  void do_write(Host& h, std::string_view file, uint64_t offset, std::string_view data, const char* what);
  void do_truncate(Host& h, std::string_view file, int64_t size);
  bool do_remove(Host& h, std::string_view file);
  // Makes every unsynced write of `file` (every file if null) numbered up to
  // `last` durable.
  void make_durable(Host& h, const std::string* file, uint64_t last);
  Coro<void> sync_on(std::optional<std::string> host, std::optional<std::string> file);
  int64_t draw_sync_latency_ns();

  EventLoop& loop_;
  SimBackend& backend_;
  DiskConfig config_;
  // By lower-case host name (names are case-insensitive, as the network's).
  std::map<std::string, std::unique_ptr<Host>, std::less<>> hosts_;
  std::deque<CrashRecord> crashes_;
  uint64_t crashes_dropped_ = 0;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_DISK_H_
