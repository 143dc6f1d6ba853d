// The probe catalog (api/probes.h): macros register before anything runs,
// the catalog is sorted by name, each probe keeps 2 bits per run and tells
// the observer only of first hits, failures throw AssertionError.
#include "twinloop/api/probes.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinloop {
namespace {

using internal::ProbeEntry;

const ProbeEntry* find(std::string_view name, ProbeKind kind) {
  for (const ProbeEntry* e : internal::probe_catalog()) {
    if (e->name == name && e->kind == kind) return e;
  }
  return nullptr;
}

// Never called: its probes are registered all the same.
[[maybe_unused]] void never_called(bool x) {
  TWINLOOP_SOMETIMES(x, "probes_test: zz never called sometimes");
  TWINLOOP_REACHABLE("probes_test: aa never called reachable");
  TWINLOOP_ALWAYS(x, "probes_test: mm never called always");
}

void hits(bool x) { TWINLOOP_SOMETIMES(x, "probes_test: hit"); }

struct Recorder : internal::ProbeObserver {
  std::vector<std::pair<std::string, bool>> first_hits;
  std::vector<std::string> failures;
  void on_first_hit(const ProbeEntry& e, bool value) override { first_hits.emplace_back(e.name, value); }
  void on_failure(const ProbeEntry& e, const std::string& message) override {
    failures.push_back(e.name + ": " + message);
  }
};

struct ObserverScope {
  explicit ObserverScope(Recorder* r) : previous(internal::set_probe_observer(r)) {}
  ~ObserverScope() { internal::set_probe_observer(previous); }
  internal::ProbeObserver* previous;
};

TEST(ProbeCatalog, MacrosRegisterBeforeTheyRun) {
  const ProbeEntry* s = find("probes_test: zz never called sometimes", ProbeKind::kSometimes);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->declared);
  EXPECT_EQ(s->ever.load(), 0);
  EXPECT_THAT(s->file, ::testing::HasSubstr("api/probes_test.cc"));
  EXPECT_GT(s->line, 0);
  EXPECT_NE(find("probes_test: aa never called reachable", ProbeKind::kReachable), nullptr);
  EXPECT_NE(find("probes_test: mm never called always", ProbeKind::kAlways), nullptr);
  // A function form registers at its first call only.
  EXPECT_EQ(find("probes_test: dynamic", ProbeKind::kSometimes), nullptr);
  sometimes(true, "probes_test: dynamic");
  const ProbeEntry* d = find("probes_test: dynamic", ProbeKind::kSometimes);
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(d->declared);
}

TEST(ProbeCatalog, SortedByNameNotByRegistration) {
  std::vector<std::string> names;
  for (const ProbeEntry* e : internal::probe_catalog()) names.push_back(e->name);
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end())) << ::testing::PrintToString(names);
  // "aa" was registered after "zz" (declaration order in never_called).
  const auto aa = std::find(names.begin(), names.end(), "probes_test: aa never called reachable");
  const auto zz = std::find(names.begin(), names.end(), "probes_test: zz never called sometimes");
  ASSERT_NE(aa, names.end());
  ASSERT_NE(zz, names.end());
  EXPECT_LT(aa, zz);
}

TEST(ProbeCatalog, TwoBitsPerRunFirstHitsOnly) {
  Recorder r;
  ObserverScope scope(&r);
  internal::begin_probe_run();
  hits(false);
  hits(false);
  hits(true);
  hits(true);
  hits(false);
  using Hit = std::pair<std::string, bool>;
  EXPECT_EQ(r.first_hits, (std::vector<Hit>{{"probes_test: hit", false}, {"probes_test: hit", true}}));
  const ProbeEntry* e = find("probes_test: hit", ProbeKind::kSometimes);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->ever.load(), 3);
  // A new run: first hits again.
  internal::begin_probe_run();
  hits(true);
  hits(true);
  EXPECT_EQ(r.first_hits.size(), 3u);
  EXPECT_EQ(r.first_hits.back(), (Hit{"probes_test: hit", true}));
  internal::reset_probe_totals();
  EXPECT_EQ(e->ever.load(), 0);
}

TEST(ProbeFailures, AlwaysFalseThrowsAndTellsTheObserver) {
  Recorder r;
  ObserverScope scope(&r);
  TWINLOOP_ALWAYS(1 + 1 == 2, "probes_test: arithmetic");
  try {
    TWINLOOP_ALWAYS(1 + 1 == 3, "probes_test: arithmetic");
    FAIL() << "no exception";
  } catch (const AssertionError& e) {
    EXPECT_EQ(e.probe(), "probes_test: arithmetic");
    EXPECT_THAT(e.what(), ::testing::HasSubstr("always probe 'probes_test: arithmetic' failed at "));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("probes_test.cc:"));
  }
  ASSERT_EQ(r.failures.size(), 1u);
  EXPECT_THAT(r.failures[0], ::testing::HasSubstr("probes_test: arithmetic"));
  EXPECT_THROW(always(false, "probes_test: function always"), AssertionError);
}

TEST(ProbeFailures, UnreachableThrowsWhenReached) {
  EXPECT_THROW(TWINLOOP_UNREACHABLE("probes_test: unreachable"), AssertionError);
  EXPECT_THROW(unreachable("probes_test: unreachable function"), AssertionError);
  const ProbeEntry* e = find("probes_test: unreachable", ProbeKind::kUnreachable);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->ever.load() & internal::kProbeSeenTrue, internal::kProbeSeenTrue);
}

TEST(ProbeKinds, Names) {
  EXPECT_STREQ(probe_kind_name(ProbeKind::kAlways), "always");
  EXPECT_STREQ(probe_kind_name(ProbeKind::kSometimes), "sometimes");
  EXPECT_STREQ(probe_kind_name(ProbeKind::kReachable), "reachable");
  EXPECT_STREQ(probe_kind_name(ProbeKind::kUnreachable), "unreachable");
}

}  // namespace
}  // namespace twinloop
