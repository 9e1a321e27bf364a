#!/usr/bin/env bash
# make soak: the reliability suite in full (STEPBOX_SOAK=1: 1,000 cycles,
# every crash point, random mid-step kills), then each fuzz target for
# FUZZTIME (default 60s); the figures go into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
fuzztime=${FUZZTIME:-60s}
log=$(mktemp /tmp/stepbox-soak-XXXXXX.log)
stats=$(mktemp -d /tmp/stepbox-fuzz-stats-XXXXXX)
trap 'rm -rf "$stats"' EXIT
status=0
STEPBOX_SOAK=1 go test -p 1 -count=1 -timeout 3h -v \
  -run 'TestBuildAndTeardownCyclesLeakNothing|TestCleanupAfterKill9AtEveryStep|TestSessionNoticesAKilledBoxProcess|TestHostileBoxContentStaysInItsLimits|TestFillingTheUpperDirStopsAtItsFilesystem|TestEscapesFromAPivotedBoxFail' \
  ./repl/ 2>&1 | tee "$log" | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|soak:|known bug' || status=1
grep -q '^ok' "$log" || status=1
for target in FuzzCommandLine FuzzScriptRunner; do
  echo "== fuzz $target" | tee -a "$log"
  # One worker: the script runner drives real boxes as root.
  STEPBOX_FUZZ_STATS=$stats go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -parallel 1 ./repl/ 2>&1 | tee -a "$log" | tail -3 || status=1
done
[ -f bench/RESULTS.md ] || echo "# stepbox, measured" > bench/RESULTS.md
go run ./bench -out bench/RESULTS.md -reliability "$log" -fuzz-stats "$stats"
echo "soak log: $log"
exit $status
