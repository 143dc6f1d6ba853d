// twinloop/sim/harness/replay_file.h: recordings (sim/recording.h) as replay
// files, and where the harness puts them.
//
// The replay file is text, one record per line, versioned (docs/testing.md
// has the grammar):
//
//   twinloop-replay 2
//   seed 42
//   test MySuite.MyTest
//   option executor_latency_max_us 10000
//   ...
//   failure deadlock at virtual time 3s ...
//   decision /guarded#0/worker#1 loop.timer_tie 0 2 1
//   decision /guarded#0/flush#2 buggify.fire:db.cc:12 3 4 3
//   event 0 0 task_step 1 9f2c0d1e33a4b5c6
//   end
//
//   twinloop::sim::write_recording_file("/tmp/run.replay", sim.recording());
//   twinloop::sim::Recording r = twinloop::sim::read_recording_file("/tmp/run.replay");
#ifndef TWINLOOP_SIM_HARNESS_REPLAY_FILE_H_
#define TWINLOOP_SIM_HARNESS_REPLAY_FILE_H_

#include <string>
#include <string_view>

#include "twinloop/sim/recording.h"

namespace twinloop::sim {

std::string format_recording(const Recording& r);
// Throws std::invalid_argument naming the line on a malformed file, and on a
// version this build does not read. Messages quote what they echo from the
// file with quote_bytes (escaped, bounded) and name the accepted range of an
// out-of-range value.
Recording parse_recording(std::string_view text);
// Throw std::runtime_error when the file cannot be written or read (with the
// system's reason: "No such file or directory", "it is a directory"), and
// read_recording_file std::invalid_argument naming the file when it does
// not parse.
void write_recording_file(const std::string& path, const Recording& r);
Recording read_recording_file(const std::string& path);

// Where replay files go unless told otherwise: $TWINLOOP_REPLAY_DIR, else
// $TEST_UNDECLARED_OUTPUTS_DIR (kept by Bazel), else the temporary directory.
std::string default_replay_dir();
// "<dir>/twinloop-<stem>.replay", with characters other than letters,
// digits, '-', '_' and '.' in `stem` replaced by '_'.
std::string replay_file_path(const std::string& dir, std::string_view stem);
// What a test target's replay files are named from, so that two targets with
// the same test name do not overwrite each other's files in one directory:
// $TEST_TARGET without its leading "@" and "/"
// ("//tests/planted:planted_bugs_test" -> "tests_planted_planted_bugs_test"),
// else the program's name; characters other than letters, digits, '-', '_'
// and '.' become '_'; "test" if that leaves nothing.
std::string target_slug();

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_HARNESS_REPLAY_FILE_H_
