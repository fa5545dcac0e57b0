"""Shared wire formats of the remote targets and ``reflex serve``.

``msgpack_numpy``: openpi-compatible msgpack with numpy arrays; ``jpeg``: image encoding within
a byte budget; ``fragments``: splitting messages above the SCTP message size limit; ``ice``:
pinning WebRTC host candidates to chosen interfaces; ``remote_spec`` / ``remote_client``: the
config fields and client plumbing every remote target shares.
"""
