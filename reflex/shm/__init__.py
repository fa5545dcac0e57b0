"""Shared-memory frame channels: one publisher process writes camera frames, many readers map them.

Modules: ``layout`` (the byte layout, documented there and in docs/cameras.md), ``segments``
(where channels live, ownership locks, stale-segment cleanup), ``writer``, ``reader`` and
``watchdog`` (removes a channel whose publisher was killed). This package file stays empty so the
watchdog process starts without importing numpy.
"""
