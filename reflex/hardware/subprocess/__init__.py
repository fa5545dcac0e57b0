"""``hardware.kind: subprocess``: drive any robot through shell commands speaking a JSON contract.

Only :mod:`.config` and :mod:`.contract` are imported when a session file is parsed; the process
handling lives in modules that :meth:`SubprocessHardwareSpec.build` imports.
"""
