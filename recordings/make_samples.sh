#!/usr/bin/env sh
# Regenerate the sample recordings (tests, README and docs/replay.md use them):
#   sh recordings/make_samples.sh
# Each run makes a new session (new ids and times); replaying it reproduces its own chunks.
set -eu
cd "$(dirname "$0")/.."
rm -rf recordings/sim_demo
python -m reflex connect --config recordings/sim_demo.yaml --record recordings/sim_demo --json > /dev/null
python -m reflex replay recordings/sim_demo --target builtin:demo --fail-on reproduce
du -sh recordings/sim_demo
