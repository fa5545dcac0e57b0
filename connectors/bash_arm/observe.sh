#!/usr/bin/env bash
# observe_command of the bash arm: print one JSON observation on stdout.
# The "arm" is a file holding the last commanded joint positions (a perfect position
# controller); a real robot would query its controller here. Reflex stamps the observation
# with the time it started this script, since no "timestamp" is given.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
state_file="${BASH_ARM_STATE:-${TMPDIR:-/tmp}/reflex_bash_arm_${REFLEX_SESSION_ID:-manual}.state}"
position="0,0,0,0,0,0,1,0,0,0,0,0,0,1"  # home: arm joints at zero, grippers open
if [[ -s "$state_file" ]]; then
  position="$(<"$state_file")"
fi
printf '{"state":[%s],"images":{"top":{"encoding":"path","path":"%s/top.png"}}}\n' "$position" "$here"
