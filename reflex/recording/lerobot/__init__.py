"""``lerobot`` recorder: a LeRobot v3.0 dataset (one episode per session), videos encoded live.

Modules: ``layout`` (paths and features), ``journal`` (crash-safe row journal), ``video``
(live H.264 encoder and remux), ``stats`` (normalisation stats), ``finalize`` (turn the
journal and partial videos into the dataset; also the crash repair), ``recorder`` (the port).
"""
