#!/usr/bin/env bash
# Run the test suite with the given interpreter. pytest exits 5 when it collects no test; for this
# project that means the suite vanished (a bad path or a broken conftest), so say so and fail.
set -uo pipefail
PY="${1:-python3}"
shift || true
"$PY" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: the test suite is missing or was deselected" >&2
fi
exit "$rc"
