// Replay files: recordings as text and back, and what the parser and the
// reader say about files that are not what they should be.
#include "twinloop/sim/harness/replay_file.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A recorded run with decisions (a timer tie, executor latencies) and events.
Recording record_run(uint64_t seed) {
  Simulation sim({.seed = seed, .record = true});
  sim.run([]() -> Coro<void> {
    std::vector<Task<void>> tasks;
    for (int i = 0; i < 3; ++i) {
      tasks.push_back(create_task([]() -> Coro<void> {
        co_await sleep(absl::Milliseconds(5));
        co_await to_thread([] {});
      }()));
    }
    for (Task<void>& t : tasks) co_await t;
  }());
  return sim.recording();
}

TEST(ReplayFile, RoundTripsThroughText) {
  Recording r = record_run(7);
  ASSERT_FALSE(r.decisions.empty());
  r.test = "Suite.Name with spaces";
  r.command = "bazel test //x:y --test_arg=--twinloop_seed=7";
  r.failure = "line one\nline two 100%";
  const std::string text = format_recording(r);
  EXPECT_THAT(text, HasSubstr("twinloop-replay 2\n"));
  EXPECT_THAT(text, HasSubstr("\nseed 7\n"));
  const Recording back = parse_recording(text);
  EXPECT_EQ(back.seed, r.seed);
  EXPECT_EQ(back.test, r.test);
  EXPECT_EQ(back.command, r.command);
  EXPECT_EQ(back.failure, r.failure);
  EXPECT_EQ(back.options, r.options);
  EXPECT_EQ(back.decisions, r.decisions);
  EXPECT_EQ(back.events, r.events);
}

// The simulated network's sends and deliveries are events too.
TEST(ReplayFile, RoundTripsNetworkEvents) {
  Simulation sim({.seed = 3, .record = true});
  sim.run([]() -> Coro<void> {
    NetBackend& net = *get_running_loop().backend().net();
    std::unique_ptr<StreamListener> l = net.listen(SocketAddress::inet("127.0.0.1", 80), ListenOptions{});
    Future<void> connected = get_running_loop().create_future<void>();
    net.connect(SocketAddress::inet("127.0.0.1", 80), ConnectOptions{},
                [connected](std::unique_ptr<StreamChannel>, std::exception_ptr) mutable { connected.set_result(); });
    co_await connected;
  }());
  const Recording r = sim.recording();
  const std::string text = format_recording(r);
  EXPECT_THAT(text, HasSubstr(" net_send "));
  EXPECT_THAT(text, HasSubstr(" net_deliver "));
  EXPECT_THAT(text, HasSubstr("option net_latency_max_us 50\n"));
  const Recording back = parse_recording(text);
  EXPECT_EQ(back.events, r.events);
  EXPECT_EQ(back.options, r.options);
}

TEST(ReplayFile, RejectsMalformedFilesNamingTheLine) {
  EXPECT_THROW(parse_recording(""), std::invalid_argument);
  try {
    parse_recording("twinloop-replay 2\nseed 1\ndecision / a 0 4\nend\n");
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("line 3"));
  }
  try {
    parse_recording("twinloop-replay 99\nend\n");
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("version 99 is not supported"));
  }
  try {
    parse_recording("twinloop-replay 1\nend\n");
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("record the run again"));
  }
  try {
    parse_recording("twinloop-replay 2\ndecision /main a 0 4 1\nend\n");
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("line 2"));
    EXPECT_THAT(e.what(), HasSubstr("not <name>#<index>"));
  }
  EXPECT_THROW(parse_recording("twinloop-replay 2\nseed 1\n"), std::invalid_argument);            // no end
  EXPECT_THROW(parse_recording("twinloop-replay 2\ndecision / a 0 4 4\nend\n"), std::invalid_argument);  // value >= n
  EXPECT_THROW(parse_recording("twinloop-replay 2\nevent 1 0 task_step 1 0\nend\n"), std::invalid_argument);
  EXPECT_THROW(read_recording_file("/nonexistent/replay.txt"), std::runtime_error);
}

std::string header() { return absl::StrCat("twinloop-replay ", Recording::kVersion, "\n"); }

// parse_recording's error message for `text`.
std::string parse_error(const std::string& text) {
  try {
    parse_recording(text);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

std::string read_error(const std::string& path) {
  try {
    read_recording_file(path);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

std::string tmp_path(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return absl::StrCat(d ? d : "/tmp", "/", name);
}

void expect_printable(const std::string& message) {
  for (unsigned char c : message) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "raw byte " << static_cast<int>(c) << " in: " << message;
  }
}

TEST(ReplayFile, ErrorMessagesEscapeAndBoundTheBytesTheyQuote) {
  const std::string garbage = header() + "seed 1\n\x1b[2J\x07junk\xff\xfe here\nend\n";
  const std::string m = parse_error(garbage);
  EXPECT_THAT(m, HasSubstr("line 3"));
  EXPECT_THAT(m, HasSubstr("\\x1b[2J\\x07junk\\xff\\xfe"));
  expect_printable(m);

  const std::string long_record = parse_error(header() + std::string(100000, 'x') + "\nend\n");
  EXPECT_THAT(long_record, HasSubstr("line 2"));
  EXPECT_LT(long_record.size(), 400u) << long_record;
  const std::string long_seed = parse_error(header() + "seed " + std::string(100000, '7') + "\nend\n");
  EXPECT_LT(long_seed.size(), 400u) << long_seed;

  const std::string bad_test = parse_error(header() + "test a%zz\x01\nend\n");
  EXPECT_THAT(bad_test, HasSubstr("line 2"));
  expect_printable(bad_test);
}

TEST(ReplayFile, OutOfRangeValuesNameTheAcceptedRange) {
  const std::string seed = parse_error(header() + "seed 18446744073709551616\nend\n");
  EXPECT_THAT(seed, HasSubstr("18446744073709551616 out of range: must be in [0, 2^64)"));
  const std::string option = parse_error(header() + "option time_limit_us 9223372036854775808\nend\n");
  EXPECT_THAT(option, HasSubstr("9223372036854775808 out of range: must be in [-2^63, 2^63)"));
  // A decision record written by this build, with a value out of its range.
  Recording r;
  r.decisions.push_back(Decision{.site = "loop.timer_tie", .occurrence = 0, .n = 4, .value = 7});
  EXPECT_THAT(parse_error(format_recording(r)), HasSubstr("value 7 out of range: must be in [0, 4)"));
  r.decisions[0].n = 0;
  r.decisions[0].value = 0;
  EXPECT_THAT(parse_error(format_recording(r)), HasSubstr("n = 0: a draw has at least 1 possible answer"));
  const std::string time = parse_error(header() + "event 0 9223372036854775808 task_step 1 0\nend\n");
  EXPECT_THAT(time, HasSubstr("9223372036854775808 out of range: must be in [-2^63, 2^63)"));
  EXPECT_THAT(parse_error(header() + "seed -1\nend\n"), HasSubstr("seed -1 out of range: must be in [0, 2^64)"));
}

TEST(ReplayFile, ReadErrorsSayWhatIsWrongWithThePath) {
  const std::string missing = read_error("/nonexistent/replay.txt");
  EXPECT_THAT(missing, HasSubstr("/nonexistent/replay.txt"));
  EXPECT_THAT(missing, HasSubstr("No such file or directory"));

  const std::string dir = tmp_path("a-directory");
  std::filesystem::create_directories(dir);
  const std::string directory = read_error(dir);
  EXPECT_THAT(directory, HasSubstr("is a directory"));
  EXPECT_THAT(directory, Not(HasSubstr("empty")));

  const std::string empty = tmp_path("empty.replay");
  std::ofstream(empty).close();
  EXPECT_THAT(read_error(empty), HasSubstr("is empty"));
  // Parse errors name the file.
  const std::string bad = tmp_path("bad.replay");
  std::ofstream(bad) << header() << "bogus\nend\n";
  EXPECT_THAT(read_error(bad), HasSubstr(bad));
  EXPECT_THAT(read_error(bad), HasSubstr("line 2"));
}

}  // namespace
}  // namespace twinloop::sim
