"""``reflex serve``: host one exported policy over HTTP, WebSocket (openpi protocol) and WebRTC.

The app (``app.create_app``) is built from a :class:`~reflex.serve.host.PolicyHost`, which owns
the model, its warm-up/health state and the concurrency limit. Every transport decodes its
request into the same validated :class:`~reflex.serve.request.ActRequest` and answers with the
same response dict (``response.build_response``).
"""
