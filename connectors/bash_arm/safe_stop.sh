#!/usr/bin/env bash
# safe_stop_command of the bash arm: stop moving now. stdin carries the reason, e.g.
#   {"v":1,"op":"safe_stop",...,"step":12,"reason":"observe: ...","mode":"apply_actions"}
# This arm just holds where it is; a real robot would brake / hold / cut torque here.
set -euo pipefail
request="$(cat)"
echo "bash_arm: safe stop requested (step ${REFLEX_STEP:-?}): $request" >&2
