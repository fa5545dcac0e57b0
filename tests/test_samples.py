"""The loop's latency samples stay bounded in memory however long a session runs."""

from __future__ import annotations

import numpy as np

from reflex.runtime.timing import Samples


def test_below_capacity_every_sample_is_kept_and_percentiles_are_exact() -> None:
    values = np.random.default_rng(1).exponential(2.0, 5000)
    s = Samples(capacity=8192)
    for v in values:
        s.add(float(v))
    got = s.summary()
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    assert s.kept == got["count"] == 5000
    assert (got["p50"], got["p90"], got["p99"]) == tuple(round(float(x), 4) for x in (p50, p90, p99))
    assert got["max"] == round(float(values.max()), 4) and got["mean"] == round(float(values.mean()), 4)


def test_past_capacity_memory_is_flat_and_the_reservoir_still_tracks_the_distribution() -> None:
    values = np.random.default_rng(2).uniform(0.0, 10.0, 200_000)
    values[123_456] = 500.0  # one stall late in the session: max stays exact
    s = Samples(capacity=4096)
    for v in values:
        s.add(float(v))
    got = s.summary()
    assert s.kept == 4096 and got["count"] == 200_000
    assert got["max"] == 500.0 and got["mean"] == round(float(values.mean()), 4)
    # a uniform sample of the whole session, not its first 4096 values: late values are present
    assert abs(got["p50"] - 5.0) < 0.3 and abs(got["p90"] - 9.0) < 0.3 and got["p99"] > 9.5


def test_the_same_samples_give_the_same_summary() -> None:
    a, b = Samples(capacity=64), Samples(capacity=64)
    for i in range(10_000):
        a.add(i % 97 / 10)
        b.add(i % 97 / 10)
    assert a.summary() == b.summary()
