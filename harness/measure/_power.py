"""Energy from power samples when the device has no energy counter: the integral over a window, edges included.

NVML's power reading (on Ampere and later a 1-s running average) is sampled at a few Hz. A
window's energy is the trapezoidal integral of the readings inside it plus its two edges, each
edge read when the window opened or closed, or else interpolated between the samples around it
(the nearest one where there is only one side). So a 0.3-s evaluation between two 4-Hz samples
still gets its share, and no window loses the time between its edge and its first sample.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def value_at(points: Sequence[tuple[float, float]], t: float) -> float | None:
    """The reading at time t, linearly interpolated between the samples around it (points sorted by time)."""
    if not points:
        return None
    times = [p[0] for p in points]
    i = bisect.bisect_left(times, t)
    if i < len(points) and times[i] == t:
        return points[i][1]
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (t0, p0), (t1, p1) = points[i - 1], points[i]
    return p0 + (p1 - p0) * (t - t0) / (t1 - t0)


def integrate(points: Sequence[tuple[float, float]], t_from: float, t_to: float) -> float | None:
    """The integral of the readings over [t_from, t_to] (J for W and s); None without a single reading."""
    points = sorted(points)
    start, end = value_at(points, t_from), value_at(points, t_to)
    if start is None or end is None or t_to < t_from:
        return None
    inside = [(t_from, start), *[(t, p) for t, p in points if t_from < t < t_to], (t_to, end)]
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(inside, inside[1:], strict=False))
