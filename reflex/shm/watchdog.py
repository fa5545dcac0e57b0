"""``python -m reflex.shm.watchdog PATH INODE DEV``: remove a channel once its publisher is gone.

The publisher starts this helper with a pipe on stdin and never writes to it. When the
publisher exits, however it exits (SIGKILL included), the kernel closes the pipe; the helper
then removes the channel, but only if the path still names the very file (inode, device) it
was started for and nobody holds its ownership lock. A clean publisher has already removed its
channel, so the helper finds nothing to do. Stdlib only, so it starts fast.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from reflex.shm.segments import remove_if_stale

LOCK_RELEASE_WAIT_S = 2.0  # the kernel may close our pipe a moment before it drops the lock


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m reflex.shm.watchdog PATH INODE DEV", file=sys.stderr)
        return 2
    path, inode, dev = Path(argv[0]), int(argv[1]), int(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass  # the publisher never writes; read() returns b"" once it is gone
    remove_if_stale(path, only_inode=(inode, dev), wait_s=LOCK_RELEASE_WAIT_S)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
