"""``target.kind: webrtc``: observations over a WebRTC data channel to ``reflex serve``."""
