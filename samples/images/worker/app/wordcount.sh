#!/bin/sh
# Fan-out step: count the words of one input file into out/count.txt.
set -eu
: "${INPUT_PATH:?INPUT_PATH is not set}"
out="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}/out"
mkdir -p "$out"
wc -w < "$INPUT_PATH" | tr -d ' ' > "$out/count.txt"
echo "wordcount: $(cat "$out/count.txt") words"
