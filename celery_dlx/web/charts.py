"""Geometry of the dashboard's small bar charts, drawn as inline SVG by the templates (no
JavaScript, no image files).  Pure: numbers in, rectangles out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    """One bar: its label and value, and its rectangle in the chart's coordinates."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


def bars(values: Sequence[tuple[str, int]], width: float, height: float, gap: float = 2.0) -> list[Bar]:
    """Bars for ``values`` side by side across ``width``, scaled so the largest fills
    ``height``; a non-zero value is at least one unit tall so it never looks empty."""
    if not values:
        return []
    top = max(value for _, value in values) or 1
    slot = width / len(values)
    out = []
    for i, (label, value) in enumerate(values):
        h = 0.0 if value <= 0 else max(1.0, height * value / top)
        out.append(Bar(label, value, i * slot + gap / 2, height - h, max(slot - gap, 1.0), h))
    return out
