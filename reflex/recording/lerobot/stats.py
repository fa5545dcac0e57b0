"""Normalisation statistics in LeRobot's layout (min, max, mean, std, count, q01..q99).

Vectors: per dimension over the episode's rows, NaN-aware (held steps have no action). Images:
per channel in [0, 1], shape (3, 1, 1), from the 256-bin histograms the encoders keep, so the
quantiles are exact for the sampled pixels and the stats survive a crash with the histograms.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)


def vector_stats(values: np.ndarray) -> dict[str, Any] | None:
    """``values`` is (rows, dim) or (rows,); bools count as 0/1. ``None`` when some dimension has
    no finite value at all (e.g. an action that was never computed): stats are left out then,
    never made up."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.shape[0] == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: left out below
        out: dict[str, Any] = {
            "min": np.nanmin(x, axis=0),
            "max": np.nanmax(x, axis=0),
            "mean": np.nanmean(x, axis=0),
            "std": np.nanstd(x, axis=0),
            "count": np.array([x.shape[0]]),
        }
        for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
            out[key] = np.nanquantile(x, q, axis=0)
    if not all(np.all(np.isfinite(v)) for v in out.values()):
        return None
    return {k: _jsonable(v) for k, v in out.items()}


def image_stats(hist: np.ndarray, frames: int) -> dict[str, Any] | None:
    """Per-channel stats from (3, 256) pixel histograms, in LeRobot's (3, 1, 1) nesting."""
    if frames == 0 or np.any(hist.sum(axis=1) == 0):
        return None
    levels = np.arange(256, dtype=np.float64) / 255.0
    rows: dict[str, list[float]] = {k: [] for k in ("min", "max", "mean", "std", *QUANTILE_KEYS)}
    for c in range(3):
        h = hist[c].astype(np.float64)
        total = h.sum()
        present = np.nonzero(h)[0]
        mean = float((h * levels).sum() / total)
        rows["min"].append(float(levels[present[0]]))
        rows["max"].append(float(levels[present[-1]]))
        rows["mean"].append(mean)
        rows["std"].append(float(np.sqrt((h * (levels - mean) ** 2).sum() / total)))
        cdf = np.cumsum(h) / total
        for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
            rows[key].append(float(levels[int(np.searchsorted(cdf, q))]))
    out: dict[str, Any] = {k: [[[v]] for v in values] for k, values in rows.items()}
    out["count"] = [int(frames)]
    return out


def _jsonable(v: np.ndarray) -> list[Any]:
    arr = np.asarray(v)
    if arr.dtype.kind in "iub":
        return [int(x) for x in arr.ravel()]
    return [float(x) for x in arr.ravel()]


def merge_stats(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Stats of a dataset and of episodes appended to it, as one (LeRobot's aggregation): counts
    add, means and variances pool by count, min/max combine; quantiles (not poolable exactly)
    are the count-weighted mean of the two, as LeRobot approximates them."""
    out: dict[str, Any] = {}
    for feature in {**old, **new}:
        a, b = old.get(feature), new.get(feature)
        if a is None or b is None:
            out[feature] = a if b is None else b
            continue
        na, nb = float(np.sum(a["count"])), float(np.sum(b["count"]))
        wa, wb = na / (na + nb), nb / (na + nb)
        mean_a, mean_b = np.asarray(a["mean"], dtype=np.float64), np.asarray(b["mean"], dtype=np.float64)
        mean = wa * mean_a + wb * mean_b
        var = (wa * (np.asarray(a["std"], dtype=np.float64) ** 2 + (mean_a - mean) ** 2)
               + wb * (np.asarray(b["std"], dtype=np.float64) ** 2 + (mean_b - mean) ** 2))
        merged: dict[str, Any] = {
            "min": np.minimum(np.asarray(a["min"], dtype=np.float64), np.asarray(b["min"], dtype=np.float64)),
            "max": np.maximum(np.asarray(a["max"], dtype=np.float64), np.asarray(b["max"], dtype=np.float64)),
            "mean": mean,
            "std": np.sqrt(var),
        }
        for key in QUANTILE_KEYS:
            if key in a and key in b:
                merged[key] = wa * np.asarray(a[key], dtype=np.float64) + wb * np.asarray(b[key], dtype=np.float64)
        merged_json: dict[str, Any] = {k: np.asarray(v).tolist() for k, v in merged.items()}
        merged_json["count"] = [int(na + nb)]
        out[feature] = merged_json
    return out
