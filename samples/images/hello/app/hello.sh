#!/bin/sh
# ENTRYPOINT of the hello image: proves that an empty Batch command line runs the image's ENTRYPOINT.
# As the `greet` pipeline's task it also greets its input: INPUT_PATH is relative to the task working directory
# (no wrapper runs in ENTRYPOINT mode), which is where Batch starts the container.
wd="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}"
echo "hello from the entrypoint, task ${AZ_BATCH_TASK_ID:-none}"
[ -d "$wd" ] && echo "entrypoint ran" > "$wd/hello.txt"
if [ -n "${INPUT_PATH:-}" ]; then
  mkdir -p "$wd/out"
  lines=$(wc -l < "$INPUT_PATH") || exit 3
  printf 'hello from the entrypoint: %d line(s) in %s\n' "$lines" "${INPUT_NAME:-?}" > "$wd/out/greeting.txt"
fi
exit 0
