"""Damiao motors over CAN: protocol codec, motor chain driver and a simulated motor bus.

Nothing here imports python-can at module import time except :mod:`reflex.can.bus`,
:mod:`reflex.can.chain` and :mod:`reflex.can.sim.bus`, which only the ``yam_bimanual`` connector,
the ``reflex can`` commands, tests and benches import (python-can is the ``can`` extra).
"""
