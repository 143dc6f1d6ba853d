// The main of twinloop's Google Benchmark binaries: 5 repetitions and
// aggregates only by default; flags given on the command line come after
// the defaults and so override them.
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

int main(int argc, char** argv) {
  std::vector<char*> args{argv[0]};
  std::string reps = "--benchmark_repetitions=5";
  std::string aggregates = "--benchmark_display_aggregates_only=true";
  args.push_back(reps.data());
  args.push_back(aggregates.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  int n = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
