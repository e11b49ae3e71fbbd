#!/bin/sh
# Fan-out step: count the words of one input file into out/count.txt. A file that is not text (it holds NUL
# bytes) is refused, naming the input, so a request with a bad file shows what a partial request looks like.
set -eu
: "${INPUT_PATH:?INPUT_PATH is not set}"
out="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}/out"
mkdir -p "$out"
if ! tr -d '\000' < "$INPUT_PATH" | cmp -s - "$INPUT_PATH"; then
  echo "wordcount: ${INPUT_NAME:-input} is not a text file (it contains NUL bytes)" >&2
  exit 2
fi
wc -w < "$INPUT_PATH" | tr -d ' ' > "$out/count.txt"
echo "wordcount: $(cat "$out/count.txt") words"
