#!/bin/sh
# Merge step: total every count.txt under in/ (the fan-out tasks' outputs, staged as resource files).
set -eu
wd="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}"
out="$wd/out"
mkdir -p "$out"
total=0
files=0
find "$wd/in" -type f -name count.txt > "$wd/counts.list"
while IFS= read -r f; do
  n=$(cat "$f")
  total=$((total + n))
  files=$((files + 1))
done < "$wd/counts.list"
printf '{"files": %d, "words": %d}\n' "$files" "$total" > "$out/total.json"
echo "merge: $files files, $total words"
