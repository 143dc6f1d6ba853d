// TWINLOOP_CHECK and TWINLOOP_DCHECK (api/internal/check.h).
//
// This file is compiled three ways (api/BUILD): as the build configures it
// (check_test: fastbuild has DCHECKs, --config=opt has not), with -DNDEBUG
// (check_ndebug_test: DCHECKs off whatever the configuration) and with
// -DNDEBUG -DTWINLOOP_DCHECKS (check_dchecks_test: back on). Each build
// counts how often a DCHECK evaluates its condition and its context.
#include "twinloop/api/internal/check.h"

#include <cstdint>
#include <string>

#include "gtest/gtest.h"

namespace twinloop::internal {
namespace {

// What this build should do, from the macros the rule is written in
// (NDEBUG, TWINLOOP_DCHECKS) rather than from TWINLOOP_DCHECK_IS_ON.
#if !defined(NDEBUG) || defined(TWINLOOP_DCHECKS)
constexpr bool kDchecksExpected = true;
#else
constexpr bool kDchecksExpected = false;
#endif
static_assert(TWINLOOP_DCHECK_IS_ON == (kDchecksExpected ? 1 : 0));

TEST(Check, PassingCheckEvaluatesItsConditionOnceAndGoesOn) {
  int evaluations = 0;
  auto holds = [&] {
    ++evaluations;
    return true;
  };
  TWINLOOP_CHECK(holds(), "the condition holds");
  EXPECT_EQ(evaluations, 1);
}

TEST(Check, PassingCheckBuildsNoContext) {
  int built = 0;
  auto context = [&] {
    ++built;
    return "context";
  };
  TWINLOOP_CHECK(1 + 1 == 2, "arithmetic works") << context();
  EXPECT_EQ(built, 0);
}

TEST(CheckDeathTest, FailingCheckNamesTheInvariantTheConditionAndWhere) {
  const int answer = 41;
  EXPECT_DEATH(TWINLOOP_CHECK(answer == 42, "the answer is 42"),
               "^twinloop: invariant violated: the answer is 42 \\(answer == 42\\) at [^ ]*api/check_test.cc:[0-9]+\n");
}

TEST(CheckDeathTest, FailingCheckStreamsItsContext) {
  const uint64_t value = 7;
  const int64_t delta = -3;
  const std::string site = "loop.timer_tie";
  EXPECT_DEATH(TWINLOOP_CHECK(value < 5, "a drawn value is in [0, n)")
                   << "site " << site << ", value " << value << ", delta " << delta << ", ok " << false << ", "
                   << 'c' << " " << 0.5,
               "invariant violated: a drawn value is in \\[0, n\\) \\(value < 5\\) at [^ ]*check_test.cc:[0-9]+: "
               "site loop.timer_tie, value 7, delta -3, ok false, c 0.5\n");
}

TEST(CheckDeathTest, CheckStaysOnWithNdebug) {
  // TWINLOOP_CHECK is always on: this holds in every build of this file.
  EXPECT_DEATH(TWINLOOP_CHECK(false, "always on"), "twinloop: invariant violated: always on \\(false\\)");
}

TEST(CheckDeathTest, AVeryLongContextIsCutNotOverflowed) {
  const std::string big(5000, 'x');
  EXPECT_DEATH(TWINLOOP_CHECK(big.empty(), "bounded") << big << big, "bounded \\(big.empty\\(\\)\\) at .*: xxxx");
}

TEST(Check, IsOneStatementUnderIfElse) {
  // No dangling else: the else belongs to the if, not to the check's loop.
  bool took_else = false;
  if (false)
    TWINLOOP_CHECK(false, "never evaluated");
  else
    took_else = true;
  EXPECT_TRUE(took_else);
}

TEST(Dcheck, EvaluatesItsConditionOnlyWhenOn) {
  int evaluations = 0;
  int built = 0;
  auto holds = [&] {
    ++evaluations;
    return true;
  };
  auto context = [&] {
    ++built;
    return 1;
  };
  TWINLOOP_DCHECK(holds(), "the condition holds") << context();
  EXPECT_EQ(evaluations, kDchecksExpected ? 1 : 0);
  EXPECT_EQ(built, 0);
}

TEST(DcheckDeathTest, FailingDcheckAbortsWhenOnAndIsSkippedWhenOff) {
  int evaluations = 0;
  auto fails = [&] {
    ++evaluations;
    return false;
  };
  if (kDchecksExpected) {
    EXPECT_DEATH(TWINLOOP_DCHECK(fails(), "a debug invariant"),
                 "^twinloop: invariant violated: a debug invariant \\(fails\\(\\)\\) at [^ ]*check_test.cc:[0-9]+\n");
  } else {
    TWINLOOP_DCHECK(fails(), "a debug invariant");
    EXPECT_EQ(evaluations, 0);
  }
}

}  // namespace
}  // namespace twinloop::internal
