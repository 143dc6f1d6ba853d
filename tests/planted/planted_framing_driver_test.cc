// The planted framing bug (planted_framing_test.cc: a server that takes one
// read() for one request), end to end, as planted_driver_test does for the
// other planted bugs: runs the failing binary as a subprocess and checks
// that
//  - the default seed sweep finds it, and the report names the failed check
//    and shows the simulated network (hosts, connections, bytes in flight);
//  - the printed command reproduces it;
//  - shrinking leaves fewer non-default decisions, all of them segment cuts
//    (net.segments / net.segment_cut): latencies, ports and orders back to
//    their defaults, the cut alone exposes the bug;
//  - replaying the minimal file fails exactly as it records;
//  - with cutting off (net_max_segments = 1) the same service passes every
//    seed: the bug hides when each write arrives whole.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/sim/recording.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::planted {
namespace {

using ::testing::HasSubstr;

using Result = ::twinloop::test_util::CommandResult;

Result run(const std::string& command) { return ::twinloop::test_util::run_command(command); }

// From the BUILD target's env (tests/subprocess.h): found whether twinloop is
// the main repository or an external one.
std::string binary() { return ::twinloop::test_util::runfile_from_env("PLANTED_FRAMING_TEST"); }

std::string out_dir(const std::string& name) { return ::twinloop::test_util::test_dir("planted-framing-" + name); }

using ::twinloop::test_util::first_match;

// The failed check of planted_framing_test.cc (its EXPECT_EQ message).
constexpr char kFramingCheck[] = "wrong reply to request";

TEST(PlantedFraming, FoundShrunkToTheSegmentCutAndReplayed) {
  const std::string dir = out_dir("found");
  // The default seed count: no --twinloop_seeds.
  Result found = run(absl::StrCat(binary(), " --gtest_filter=PlantedNet.OneReadIsNotOneMessage --twinloop_shrink",
                                  " --twinloop_shrink_seconds=20 --twinloop_replay_dir=", dir));
  ASSERT_NE(found.exit_code, 0) << "the planted framing bug was not found:\n" << found.output;
  const std::string seed = first_match(found.output, R"(FAILED at seed (\d+))");
  ASSERT_FALSE(seed.empty()) << found.output;
  EXPECT_THAT(found.output, HasSubstr("what failed (assertion)"));
  EXPECT_THAT(found.output, HasSubstr(kFramingCheck));
  // What the server answered shows the cut request.
  EXPECT_THAT(found.output, HasSubstr("ERR bad request '"));
  // The network at the failure: the hosts, the connections, what is in flight.
  EXPECT_THAT(found.output, HasSubstr("\nnetwork:\n  simulated network at t="));
  EXPECT_THAT(found.output, HasSubstr("host cache: 127.0.0.1 ::1 10.0.0.1"));
  EXPECT_THAT(found.output, HasSubstr("host web0: 127.0.0.1 ::1 10.0.1.1"));
  EXPECT_THAT(found.output, HasSubstr("listener #1 on cache 0.0.0.0:6379"));
  EXPECT_THAT(found.output, HasSubstr("connection #1 (tcp): web"));
  EXPECT_THAT(found.output, HasSubstr("connector -> acceptor: "));
  EXPECT_THAT(found.output, HasSubstr(" in flight ("));

  // The printed command reproduces this seed's failure.
  const std::string command = first_match(found.output, R"((\S+ --gtest_filter=\S+ --twinloop_seed=\d+))");
  ASSERT_FALSE(command.empty()) << found.output;
  Result again = run(absl::StrCat(command, " --twinloop_replay_dir=", dir));
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_EQ(first_match(again.output, R"(FAILED at seed (\d+))"), seed) << again.output;
  EXPECT_THAT(again.output, HasSubstr(kFramingCheck));

  // Shrinking: fewer non-default decisions, and only segment cuts left.
  const std::string original_path = first_match(found.output, "\nreplay file: (\\S+)");
  const std::string minimal_path = first_match(found.output, "\nminimal replay file: (\\S+)");
  ASSERT_FALSE(original_path.empty()) << found.output;
  ASSERT_FALSE(minimal_path.empty()) << found.output;
  const sim::Recording original = sim::read_recording_file(original_path);
  const sim::Recording minimal = sim::read_recording_file(minimal_path);
  const size_t before = sim::non_default_choices(original.decisions);
  const size_t after = sim::non_default_choices(minimal.decisions);
  EXPECT_LT(after, before) << found.output;
  EXPECT_GE(after, 1u) << "a run without a cut cannot fail";
  int cuts = 0;
  for (const sim::Decision& d : minimal.decisions) {
    if (d.value == 0) continue;
    EXPECT_TRUE(d.site == "net.segments" || d.site == "net.segment_cut")
        << "the minimal run keeps a non-default " << d.site << " decision (" << d.task << " #" << d.occurrence
        << ": " << d.value << " of " << d.n << ")";
    if (d.site == "net.segments") ++cuts;
  }
  EXPECT_GE(cuts, 1) << "no transmission of the minimal run is cut";
  // The original run drew latencies too: shrinking put them back to the minimum.
  bool original_drew_latencies = false;
  for (const sim::Decision& d : original.decisions) original_drew_latencies |= d.site == "net.latency_us" && d.value;
  EXPECT_TRUE(original_drew_latencies);

  // Replaying the minimal file fails as it records (the framing check).
  Result replayed = run(absl::StrCat(binary(), " --gtest_filter=PlantedNet.OneReadIsNotOneMessage --twinloop_replay=",
                                     minimal_path, " --twinloop_replay_dir=", dir));
  EXPECT_NE(replayed.exit_code, 0) << "the minimal replay does not fail:\n" << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr("the run matches the recording")) << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr("recorded failure reproduced (assertion)")) << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr(kFramingCheck)) << replayed.output;
}

TEST(PlantedFraming, HiddenWhenEveryWriteArrivesInOneSegment) {
  // The same service and clients, segment cutting off: every seed of the
  // default sweep passes.
  Result r = run(absl::StrCat(binary(), " --gtest_filter=PlantedNet.HiddenWhenWritesArriveWhole --twinloop_replay_dir=",
                              out_dir("hidden")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[  PASSED  ] 1 test"));
}

}  // namespace
}  // namespace twinloop::planted
