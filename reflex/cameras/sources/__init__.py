"""Frame sources shared by the camera publisher and the direct camera kinds.

``pattern`` (synthetic, verifiable), ``video`` (a file through PyAV, looped at its own fps) and
``v4l2`` (a device through PyAV, or OpenCV when asked). ``factory.open_source`` parses the
``--source`` argument of ``reflex camera publish``.
"""
