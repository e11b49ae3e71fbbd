#!/bin/sh
# Merge step: total every count.txt under in/ (the fan-out tasks' outputs, staged as resource files) and report
# the inputs that did not make it: $EVENTBATCH_FAILED_DIR/<run id> holds the stderr of each fan-out task that
# failed while it ran; EVENTBATCH_INPUT_COUNT says how many inputs there were, so inputs that failed before
# running (they upload nothing) are counted too.
set -eu
wd="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}"
out="$wd/out"
mkdir -p "$out"
total=0
files=0
failed_dir="$wd/${EVENTBATCH_FAILED_DIR:-in/_failed}"
find "$wd/in" -type f -name count.txt ! -path "$failed_dir/*" > "$wd/counts.list"
while IFS= read -r f; do
  n=$(cat "$f")
  total=$((total + n))
  files=$((files + 1))
done < "$wd/counts.list"
expected="${EVENTBATCH_INPUT_COUNT:-$files}"
failed=0
list=""
if [ -d "$failed_dir" ]; then
  for f in "$failed_dir"/*; do
    [ -f "$f" ] || continue
    run=$(basename "$f")
    # The last line of the task's stderr: the worker's own words for what went wrong (JSON-escaped).
    why=$(tail -n 1 "$f" | tr -d '\r' | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\000-\037')
    list="$list${list:+, }{\"runId\": \"$run\", \"error\": \"$why\"}"
    failed=$((failed + 1))
    echo "merge: input of run $run failed: $why"
  done
fi
missing=$((expected - files - failed))
[ "$missing" -ge 0 ] || missing=0
partial=false
[ $((failed + missing)) -eq 0 ] || partial=true
printf '{"files": %d, "words": %d, "inputsExpected": %d, "inputsFailed": %d, "partial": %s, "failed": [%s]}\n' \
  "$files" "$total" "$expected" "$((failed + missing))" "$partial" "$list" > "$out/total.json"
echo "merge: $files files, $total words"
if [ "$partial" = true ]; then
  echo "merge: partial: $((failed + missing)) of $expected input(s) failed ($missing before running)"
fi
