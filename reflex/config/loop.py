"""``loop``: how the control loop's own thread is run (real-time scheduling, CPU pinning)."""

from __future__ import annotations

from pydantic import Field

from reflex.config.base import StrictModel


class RealtimeConfig(StrictModel):
    """The control-loop thread alone in SCHED_FIFO (Linux; CAP_SYS_NICE or an rtprio limit), see docs/performance.md.

    A busy machine can then no longer keep the loop waiting for a CPU; threads the loop starts,
    recorders, cameras and inference stay in the normal class."""

    priority: int = Field(
        50, ge=1, le=98,
        description="SCHED_FIFO priority (1-98; 99 is left to the kernel's watchdogs). 50 is the "
        "usual choice for a control loop (ros2_control's default); threaded IRQs also run at 50.",
    )
    cpu: int | None = Field(
        None, ge=0, le=4095,
        description="Pin the loop thread to this CPU (best with the CPU isolated: isolcpus, cpuset); "
        "unset: any CPU the process may use.",
    )
    required: bool = Field(
        False,
        description="false: if the OS refuses (no permission, not Linux), warn once, report it "
        "under loop.realtime and run normally. true: the refusal fails the session at set-up "
        "(exit 3), before the target connects or any motor is powered.",
    )


class LoopConfig(StrictModel):
    """Settings of the control loop's thread."""

    realtime: RealtimeConfig | None = Field(
        None,
        description="Real-time scheduling for the control-loop thread; unset: the normal "
        "time-sharing class. Result: loop.realtime {requested, granted, reason, ...}.",
    )
