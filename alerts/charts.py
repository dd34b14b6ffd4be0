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


def pain_chart(points: list[PainPoint], *, baseline: int | None, moderate: int, improvement: int | None) -> str:
    """Pain (0–10) over days since the procedure, with the baseline, the moderate-pain line (spec §4:
    NRS >= 4) and the improvement the patient should reach (baseline minus the minimal important
    change)."""
    last_day = max([p.day for p in points] + [42])
    span = max(last_day, 1)

    def x(day: int) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * day / span

    def y(pain: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (10 - pain) / 10

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="pain-title pain-desc" class="pain-chart" width="100%">',
        '<title id="pain-title">Pain score over time</title>',
        f'<desc id="pain-desc">{escape(_describe(points, baseline))}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
        'fill="#fff" stroke="#999"/>',
    ]
    for pain in range(0, 11, 2):
        parts.append(f'<text x="{LEFT - 8}" y="{y(pain) + 4:.1f}" font-size="11" text-anchor="end">{pain}</text>')
    for day in _ticks(span):
        parts.append(
            f'<text x="{x(day):.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="11" text-anchor="middle">d{day}</text>'
        )
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 4}" font-size="11" text-anchor="middle">days since procedure</text>'
    )
    lines = [(moderate, "#b35c00", "4 2", f"moderate pain ({moderate})")]
    if baseline is not None:
        lines.append((baseline, "#555", "6 3", f"baseline ({baseline})"))
    if improvement is not None:
        lines.append((improvement, "#1b7f3b", "2 2", f"improvement target ({improvement})"))
    for index, (value, colour, dash, label) in enumerate(lines):
        # Labels alternate right, left, middle, so that lines at the same value stay readable.
        anchor, x_text = [("end", WIDTH - RIGHT - 4), ("start", LEFT + 4), ("middle", WIDTH / 2)][index % 3]
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{colour}" '
            f'stroke-dasharray="{dash}"/><text x="{x_text}" y="{y(value) - 4:.1f}" font-size="11" '
            f'text-anchor="{anchor}" fill="{colour}">{escape(label)}</text>'
        )
    ordered = sorted(points, key=lambda p: p.day)
    if len(ordered) > 1:
        path = " ".join(f"{x(p.day):.1f},{y(p.pain):.1f}" for p in ordered)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#0b3d6b" stroke-width="2"/>')
    for p in ordered:
        parts.append(
            f'<circle cx="{x(p.day):.1f}" cy="{y(p.pain):.1f}" r="4" fill="#0b3d6b">'
            f"<title>day {p.day}: {p.pain}/10 ({escape(p.label)})</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(span: int) -> list[int]:
    step = next(s for s in (7, 14, 28, 56, 91, 182, 365) if span / s <= 8)
    return list(range(0, span + 1, step))


def _describe(points: list[PainPoint], baseline: int | None) -> str:
    if not points:
        return "No pain scores recorded yet."
    scores = ", ".join(f"day {p.day}: {p.pain}" for p in sorted(points, key=lambda p: p.day))
    return f"Baseline {baseline if baseline is not None else 'not recorded'}; scores {scores}."
