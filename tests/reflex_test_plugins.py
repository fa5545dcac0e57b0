"""Plugin kinds used by the tests (loaded through the real dotted-path plugin mechanism).

They wrap the real sim robot and the real demo policy and add what tests need to observe:
a JSON journal of every port call written to a file, and controllable failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from reflex.hardware.sim.config import SimConfig
from reflex.hardware.sim.robot import SimRobot
from reflex.ports import Observation, StateSample, TargetInfo
from reflex.targets.export_manifest import resolve_export_dir
from reflex.targets.local.config import LocalTargetSpec
from reflex.targets.local.target import LocalTarget


class JournalSim(SimRobot):
    """The sim robot, journaling each port call to ``journal`` (one JSON line per call)."""

    def __init__(
        self, journal: str, stale_after: int | None = None, home_s: float = 0.0, **config: object
    ) -> None:
        super().__init__(SimConfig.model_validate(config))
        self._journal = Path(journal)
        self._stale_after = stale_after
        self._home_s = home_s  # go_home takes this long (a slow drive home, as on real arms)
        self.last_read_step: int | None = None
        self._write("init")

    def _write(self, call: str, **data: object) -> None:
        with self._journal.open("a") as fh:
            fh.write(json.dumps({"call": call, "t": time.monotonic(), **data}) + "\n")

    def connect(self) -> None:
        self._write("connect")
        super().connect()

    def enable(self) -> None:
        self._write("enable")
        super().enable()

    accepts_step = True
    accepts_chunk_context = True

    def read_state(self, step: int | None = None) -> StateSample:
        self.last_read_step = step
        sample = super().read_state()
        if self._stale_after is not None and self._reads > self._stale_after:
            sample.t_capture -= 10.0  # a sensor that stopped updating
        return sample

    def apply(self, action: np.ndarray, step: int, chunk_id: int | None = None, t_target: float | None = None) -> None:
        self._write("apply", step=step, action=[float(x) for x in action], measured=[float(x) for x in self._q],
                    chunk_id=chunk_id, t_target=t_target, read_step=self.last_read_step)
        super().apply(action, step)

    def safe_stop(self, reason: str) -> None:
        self._write("safe_stop", reason=reason)
        super().safe_stop(reason)

    def close(self) -> None:
        self._write("close")
        super().close()

    def go_home(self) -> None:
        self._write("home_start")
        deadline = time.monotonic() + self._home_s
        while time.monotonic() < deadline:
            time.sleep(0.005)
        self._write("home_end")


class SchedulingSim(JournalSim):
    """Journals, from inside the control loop (the read of step ``probe_step``), how the thread
    calling it is scheduled, how a thread it starts there is, and every other thread of the process."""

    def __init__(self, journal: str, probe_step: int = 5, **config: object) -> None:
        super().__init__(journal, **config)
        self._probe_step = probe_step

    def read_state(self, step: int | None = None) -> StateSample:
        if step == self._probe_step:
            self._probe()
        return super().read_state(step)

    def _probe(self) -> None:
        from reflex.runtime.realtime import policy_name, thread_policy

        started: dict[str, object] = {}

        def child() -> None:
            started["policy"] = policy_name(thread_policy())

        worker = threading.Thread(target=child, name="started-in-loop")
        worker.start()
        worker.join()
        own = threading.get_native_id()
        names = {t.native_id: t.name for t in threading.enumerate()}
        others = {}
        for tid in os.listdir("/proc/self/task"):
            if int(tid) != own:
                with contextlib.suppress(OSError):  # the thread ended meanwhile
                    others[names.get(int(tid), f"tid-{tid}")] = policy_name(thread_policy(int(tid)))
        self._write("probe", policy=policy_name(thread_policy()), priority=os.sched_getparam(0).sched_priority,
                    cpus=sorted(os.sched_getaffinity(0)), started=started.get("policy"), others=others)


def read_journal(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ScriptedTarget:
    """The demo policy with scripted misbehaviour: slow connect, failing or corrupt chunks."""

    def __init__(
        self,
        connect_marker: str | None = None,
        connect_delay_s: float = 0.0,
        fail_at_call: int | None = None,
        nan_at_call: int | None = None,
        wrong_width_at_call: int | None = None,
        infer_delay_s: float = 0.0,
        connect_error: str | None = None,
    ) -> None:
        export = resolve_export_dir("builtin:demo", Path.cwd())
        self._inner = LocalTarget(LocalTargetSpec(export="builtin:demo"), export)
        self.connect_marker = connect_marker
        self.connect_delay_s = connect_delay_s
        self.fail_at_call = fail_at_call
        self.nan_at_call = nan_at_call
        self.wrong_width_at_call = wrong_width_at_call
        self.infer_delay_s = infer_delay_s
        self.connect_error = connect_error
        self.calls = 0

    def connect(self) -> TargetInfo:
        if self.connect_marker:
            Path(self.connect_marker).write_text("connecting")
        deadline = time.monotonic() + self.connect_delay_s
        while time.monotonic() < deadline:
            time.sleep(0.01)
        if self.connect_error:
            raise ConnectionError(self.connect_error)
        return self._inner.connect()

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        call = self.calls
        self.calls += 1
        if self.infer_delay_s:
            time.sleep(self.infer_delay_s)
        if call == self.fail_at_call:
            raise RuntimeError(f"scripted inference failure at call {call}")
        chunk, timing = self._inner.infer(obs)
        if call == self.nan_at_call:
            chunk = chunk.copy()
            chunk[3, 2] = np.nan
        if call == self.wrong_width_at_call:
            chunk = chunk[:, :13]
        return chunk, timing

    def close(self) -> None:
        self._inner.close()


class FailingEnableSim(JournalSim):
    """Enabling fails half-way (think: one arm came up, the other did not)."""

    def enable(self) -> None:
        self._write("enable")
        raise RuntimeError("right arm did not answer the enable frame")


class DeclaringTarget:
    """The demo policy (14-D, camera ``top``) declaring whatever a test says about itself.

    ``None`` leaves a fact undeclared; ``width`` cuts or pads every chunk to that many columns
    (what a policy server with another action space would send)."""

    def __init__(
        self,
        state_dim: int | None = None,
        action_dim: int | None = None,
        action_names: list[str] | None = None,
        image_keys: list[str] | None = None,
        width: int = 14,
    ) -> None:
        export = resolve_export_dir("builtin:demo", Path.cwd())
        self._inner = LocalTarget(LocalTargetSpec(export="builtin:demo"), export)
        self.declared = (state_dim, action_dim, tuple(action_names or ()), tuple(image_keys or ()))
        self.width = width

    def connect(self) -> TargetInfo:
        real = self._inner.connect()
        state_dim, action_dim, names, keys = self.declared
        return TargetInfo(
            kind="declaring", action_dim=action_dim, state_dim=state_dim, chunk_length=None,
            action_dt=real.action_dt, image_keys=keys, action_names=names,
        )

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        chunk, timing = self._inner.infer(obs)
        if self.width <= chunk.shape[1]:
            return chunk[:, : self.width], timing
        return np.pad(chunk, ((0, 0), (0, self.width - chunk.shape[1]))), timing

    def close(self) -> None:
        self._inner.close()


class OffsetTarget(ScriptedTarget):
    """The demo policy whose successive chunks disagree: each is shifted by +offset or -offset in
    turn (a policy that cannot make up its mind), so every chunk switch has a seam."""

    def __init__(self, offset: float = 0.02, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.offset = offset

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]:
        sign = 1.0 if self.calls % 2 == 0 else -1.0
        chunk, timing = super().infer(obs)
        return chunk + sign * self.offset, timing
