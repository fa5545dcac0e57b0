"""``safety.stop``: what a safe stop leaves the robot doing (connectors that can choose)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reflex.config.base import StrictModel


class StopConfig(StrictModel):
    """How a safe stop ends. An arm without brakes falls when its motors stop making torque, so
    the default holds it, then damps it, and only then disables (docs/safety.md)."""

    mode: Literal["hold", "damp", "disable"] = Field(
        "hold",
        description="hold: keep the measured pose at reduced stiffness for hold_s, then damp. "
        "damp: zero stiffness, velocity damping and the torque that was holding each joint, for "
        "damp_s. disable: ramp the stiffness to zero over ramp_s and disable (a gravity-loaded "
        "arm falls: explicit opt-in only). Every mode ends with the motors disabled; a further "
        "Ctrl-C skips to that end at once.",
    )
    hold_s: float = Field(1.0, ge=0, le=60, description="Mode hold: seconds of holding before damping.")
    hold_stiffness: float = Field(
        0.3, gt=0, le=1, description="Mode hold: stiffness while holding, as a fraction of each joint's kp."
    )
    damp_s: float = Field(2.0, ge=0, le=600, description="Modes hold and damp: seconds of damping before disabling.")
    damp_kd: float | None = Field(
        None, ge=0, le=5, description="Damping gain while damping (Nm s/rad); default each joint's own kd."
    )
    ramp_s: float = Field(0.3, ge=0, le=5, description="Mode disable: stiffness ramp to zero before disabling.")
