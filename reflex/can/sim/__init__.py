"""A simulated Damiao motor bus on python-can's ``virtual`` interface.

:mod:`reflex.can.sim.motor` is one motor (protocol state machine, registers, MIT law, plant);
:mod:`reflex.can.sim.bus` puts several motors on a channel with wire timing and fault injection;
:mod:`reflex.can.sim.registry` lets a test, a bench and a connector share one simulated bus.
"""
