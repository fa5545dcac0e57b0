#!/usr/bin/env bash
# action_command of the bash arm: execute one action. stdin is one JSON line such as
#   {"v":1,"op":"apply","id":7,...,"step":3,"chunk_id":1,"t_target":null,"action":[0.1,...]}
# Reflex writes compact JSON with keys in a fixed order, so a regex can pick the numbers out.
# Printing nothing (and exiting 0) acknowledges the action.
set -euo pipefail
state_file="${BASH_ARM_STATE:-${TMPDIR:-/tmp}/reflex_bash_arm_${REFLEX_SESSION_ID:-manual}.state}"
request="$(cat)"
if [[ "$request" =~ \"action\":\[([^]]*)\] ]]; then
  printf '%s' "${BASH_REMATCH[1]}" > "$state_file.tmp"
  mv "$state_file.tmp" "$state_file"  # atomic: observe.sh never reads half a line
else
  echo "act.sh: no action in request: $request" >&2
  exit 2
fi
