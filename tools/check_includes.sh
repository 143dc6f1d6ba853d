#!/usr/bin/env bash
# Every include of a twinloop header names it under the project's prefix
# ("twinloop/api/task.h", never "api/task.h"): a consumer's own api/ or sim/
# folder must never shadow twinloop's headers (docs/building.md). Prints the
# offending lines and exits 1 if there are any.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
# The consumer examples are other projects: their own api/errors.h is
# included as "api/errors.h" on purpose (examples/consumer_bazel).
bad=$(git ls-files '*.h' '*.cc' | grep -v -e '^third_party/' -e '^examples/consumer_' |
      xargs grep -nE '^\s*#\s*include\s+"(api|real|sim|tests|bench|examples|tools)/' || true)
if [[ -n $bad ]]; then
  echo "includes of twinloop headers without the twinloop/ prefix:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "include style: every twinloop header is included as twinloop/<package>/<file>"
