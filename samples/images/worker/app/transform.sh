#!/bin/sh
# Per-file transform: upper-case (or lower-case) a text file and write a JSON summary.
# The input arrives as a resource file; its path comes from INPUT_PATH, never from the command line,
# so a hostile blob name cannot reach a shell.
set -eu
: "${INPUT_PATH:?INPUT_PATH is not set}"
out="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}/out"
mkdir -p "$out"
case "${TRANSFORM_MODE:-upper}" in
  upper) tr 'a-z' 'A-Z' < "$INPUT_PATH" > "$out/result.txt" ;;
  lower) tr 'A-Z' 'a-z' < "$INPUT_PATH" > "$out/result.txt" ;;
  *) echo "transform: unknown TRANSFORM_MODE '${TRANSFORM_MODE}' (use upper or lower)" >&2; exit 2 ;;
esac
lines=$(wc -l < "$INPUT_PATH")
words=$(wc -w < "$INPUT_PATH")
bytes=$(wc -c < "$INPUT_PATH")
sha=$(sha256sum < "$INPUT_PATH" | cut -d' ' -f1)
printf '{"lines": %d, "words": %d, "bytes": %d, "sha256": "%s", "mode": "%s"}\n' \
  "$lines" "$words" "$bytes" "$sha" "${TRANSFORM_MODE:-upper}" > "$out/summary.json"
echo "transform: $bytes bytes, $lines lines, mode ${TRANSFORM_MODE:-upper}"
