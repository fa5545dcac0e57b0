#!/usr/bin/env bash
# teardown_command of the bash arm: runs once at the end of every session, also after errors.
set -euo pipefail
state_file="${BASH_ARM_STATE:-${TMPDIR:-/tmp}/reflex_bash_arm_${REFLEX_SESSION_ID:-manual}.state}"
rm -f "$state_file" "$state_file.tmp"
