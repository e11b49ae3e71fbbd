#!/bin/sh
# Always fails: for testing failure handling (exit code from FAIL_EXIT_CODE, default 3).
echo "fail.sh: simulated failure while processing ${INPUT_NAME:-input}" >&2
echo "fail.sh: giving up with exit code ${FAIL_EXIT_CODE:-3}" >&2
exit "${FAIL_EXIT_CODE:-3}"
