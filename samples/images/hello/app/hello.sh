#!/bin/sh
# ENTRYPOINT of the hello image: proves that an empty Batch command line runs the image's ENTRYPOINT.
wd="${AZ_BATCH_TASK_WORKING_DIR:-$PWD}"
echo "hello from the entrypoint, task ${AZ_BATCH_TASK_ID:-none}"
[ -d "$wd" ] && echo "entrypoint ran" > "$wd/hello.txt"
exit 0
