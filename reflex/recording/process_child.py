"""The recording process of ``record.isolation: process``: ``python -m reflex.recording.process_child FD``.

It runs an ordinary :class:`RecordingHub` with the session's recorders and is fed over the socket
``FD`` by :class:`reflex.recording.process_hub.ProcessRecordingHub`: steps, chunks and events
pickled, camera frames through a :class:`FrameRing`. It sends its recorders' status back every
``STATUS_EVERY_S`` and everything at close. When the session's process goes away (the socket
ends before a close was asked for, e.g. ``kill -9``), it closes every format, so the files stay
readable, and exits. Terminal signals (Ctrl-C, hang-up) are the session's to handle: this
process ignores them and follows the session's close.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

STATUS_EVERY_S = 0.1
PARENT_GONE_CLOSE_S = 30.0  # closing after the session died: as long as a normal close may take


class _Child:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.done = threading.Event()

    def send(self, msg: tuple[Any, ...]) -> None:
        # a session that is gone cannot be told; the close that follows still runs
        with self.send_lock, contextlib.suppress(OSError):
            self.conn.send(msg)

    def run(self) -> None:
        from reflex.ports import StepRecord
        from reflex.recording.factory import build_recorders
        from reflex.recording.frame_ring import FrameRing
        from reflex.recording.hub import RecordingHub

        try:
            init: dict[str, Any] = self.conn.recv()
        except (EOFError, OSError):  # the session went away before it said what to record
            return
        ring = FrameRing.attach(init["ring"], init["ringBytes"])
        directory = Path(init["directory"])
        try:
            recorders = build_recorders(init["formats"], directory, init["images"], init["imageEncoding"])
        except Exception as exc:
            self.send(("started", [f"record: {type(exc).__name__}: {exc}"]))
            ring.close()
            return
        for recorder in recorders:
            if init["resume"] and hasattr(recorder, "resume"):
                recorder.resume = True  # type: ignore[attr-defined]
        hub = RecordingHub(recorders, init["meta"], init["queueSize"], directory, init["budgetBytes"])
        self.send(("started", hub.start(init["openTimeoutS"])))

        def status() -> tuple[Any, ...]:
            return ([replace(s, extra=dict(s.extra)) for s in hub.stats()], hub.budget.max_used)

        def report_status() -> None:
            while not self.done.wait(STATUS_EVERY_S):
                self.send(("status", *status()))

        threading.Thread(target=report_status, name="reflex-rec-status", daemon=True).start()
        cut_short = threading.Event()
        closer: threading.Thread | None = None

        def finish(timeout_s: float, tell: bool) -> None:
            unfinished = hub.close(timeout_s, cut_short)
            self.done.set()
            if tell:
                self.send(("closed", *status(), unfinished))

        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "item":
                item, slots, release_to = msg[1], msg[2], msg[3]
                if slots and isinstance(item, StepRecord):
                    item = replace(item, frames=ring.take(slots, release_to))
                hub.submit(item)
            elif kind == "close" and closer is None:
                dropped, dropped_frames, fell_behind, timeout_s = msg[1:]
                hub.note_upstream_drops(dropped, dropped_frames, fell_behind)
                closer = threading.Thread(target=finish, args=(timeout_s, True), name="reflex-rec-close")
                closer.start()
            elif kind == "cut":
                cut_short.set()
        if closer is None:  # the session is gone without a close: finish the files
            finish(PARENT_GONE_CLOSE_S, False)
        else:
            closer.join()
        ring.close()


def main(argv: list[str]) -> None:
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    _Child(Connection(sock.detach())).run()


if __name__ == "__main__":
    main(sys.argv[1:])
