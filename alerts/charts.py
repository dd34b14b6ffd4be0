"""Server-rendered SVG charts: no JavaScript, readable with styles off, with text alternatives."""

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class PainPoint:
    day: int
    pain: int
    label: str  # e.g. "check-in", "phone", "CP-03"


WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 16, 16, 36


@dataclass(frozen=True)
class _Scale:
    """Chart coordinates of a day since the procedure (x) and a pain score (y)."""

    span: int  # days shown

    def x(self, day: int) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * day / self.span

    def y(self, pain: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (10 - pain) / 10


def pain_chart(points: list[PainPoint], *, baseline: int | None, moderate: int, improvement: int | None) -> str:
    """Pain (0–10) over days since the procedure, with the baseline, the moderate-pain line (spec §4:
    NRS >= 4) and the improvement the patient should reach (baseline minus the minimal important
    change)."""
    scale = _Scale(span=max([p.day for p in points] + [42]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="pain-title pain-desc" class="pain-chart" width="100%">',
        '<title id="pain-title">Pain score over time</title>',
        f'<desc id="pain-desc">{escape(_describe(points, baseline))}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="#fff" stroke="#999"/>',
        *_axes(scale),
        *_reference_lines(scale, baseline=baseline, moderate=moderate, improvement=improvement),
        *_scores(scale, points),
        "</svg>",
    ]
    return "".join(parts)


def _axes(scale: _Scale) -> list[str]:
    parts = [
        f'<text x="{LEFT - 8}" y="{scale.y(pain) + 4:.1f}" font-size="11" text-anchor="end">{pain}</text>'
        for pain in range(0, 11, 2)
    ]
    for day in _ticks(scale.span):
        parts.append(
            f'<text x="{scale.x(day):.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" text-anchor="middle">d{day}</text>'
        )
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" font-size="11" text-anchor="middle">days since procedure</text>'
    )
    return parts


def _reference_lines(scale: _Scale, *, baseline: int | None, moderate: int, improvement: int | None) -> list[str]:
    lines = [(moderate, "#b35c00", "4 2", f"moderate pain ({moderate})")]
    if baseline is not None:
        lines.append((baseline, "#555", "6 3", f"baseline ({baseline})"))
    if improvement is not None:
        lines.append((improvement, "#1b7f3b", "2 2", f"improvement target ({improvement})"))
    parts = []
    for index, (value, colour, dash, label) in enumerate(lines):
        # Labels alternate right, left, middle, so that lines at the same value stay readable.
        anchor, x_text = [("end", WIDTH - RIGHT - 4), ("start", LEFT + 4), ("middle", WIDTH / 2)][index % 3]
        y = scale.y(value)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-dasharray="{dash}"/><text x="{x_text}" y="{y - 4:.1f}" font-size="11" '
            f'text-anchor="{anchor}" fill="{colour}">{escape(label)}</text>'
        )
    return parts


def _scores(scale: _Scale, points: list[PainPoint]) -> list[str]:
    ordered = sorted(points, key=lambda p: p.day)
    parts = []
    if len(ordered) > 1:
        path = " ".join(f"{scale.x(p.day):.1f},{scale.y(p.pain):.1f}" for p in ordered)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#0b3d6b" stroke-width="2"/>')
    for p in ordered:
        parts.append(
            f'<circle cx="{scale.x(p.day):.1f}" cy="{scale.y(p.pain):.1f}" r="4" fill="#0b3d6b">'
            f"<title>day {p.day}: {p.pain}/10 ({escape(p.label)})</title></circle>"
        )
    return parts


def _ticks(span: int) -> list[int]:
    step = next(s for s in (7, 14, 28, 56, 91, 182, 365) if span / s <= 8)
    return list(range(0, span + 1, step))


def _describe(points: list[PainPoint], baseline: int | None) -> str:
    if not points:
        return "No pain scores recorded yet."
    scores = ", ".join(f"day {p.day}: {p.pain}" for p in sorted(points, key=lambda p: p.day))
    return f"Baseline {baseline if baseline is not None else 'not recorded'}; scores {scores}."
