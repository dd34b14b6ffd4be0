"""Risk tiering of spec §2: points per factor, and the tier they add up to."""

from dataclasses import dataclass
from typing import Any

from .entries import Protocol, TierRules


@dataclass(frozen=True)
class Contribution:
    id: str
    kind: str
    label: str
    points: int
    source: str


@dataclass(frozen=True)
class Assessment:
    tier: str
    pain_points: int
    fracture_points: int
    factors: tuple[Contribution, ...]
    missing: tuple[str, ...]
    reasons: tuple[str, ...]

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)


def _high_reasons(
    points: dict[str, int], rules: TierRules, facts: dict[str, Any], new_fracture: bool, day14_pain: int | None
) -> list[str]:
    reasons = []
    if points["pain"] >= rules.high_pain_points:
        reasons.append(f"pain points {points['pain']} >= {rules.high_pain_points}")
    if points["fracture"] >= rules.high_fracture_points:
        reasons.append(f"fracture points {points['fracture']} >= {rules.high_fracture_points}")
    if new_fracture and rules.high_if_new_fracture:
        reasons.append("new vertebral fracture")
    if (
        facts.get("intravertebral_cleft")
        and day14_pain is not None
        and day14_pain >= rules.high_cleft_day14_pain_at_least
    ):
        reasons.append(f"cleft with pain {day14_pain}/10 at day 14")
    return reasons


def assess(
    facts: dict[str, Any], protocol: Protocol, *, new_fracture: bool = False, day14_pain: int | None = None
) -> Assessment:
    """Points and tier of spec §2. A missing fact adds 0 points and is listed in `missing`."""
    contributions, missing = [], []
    points = {"pain": 0, "fracture": 0}
    for factor in protocol.factors:
        results = [condition.holds(facts) for condition in factor.when]
        if any(results):
            contributions.append(Contribution(factor.id, factor.kind, factor.label, factor.points, factor.source))
            points[factor.kind] += factor.points
        # A fact not recorded is listed even when another one already scores: the profile is incomplete.
        missing.extend(
            c.fact
            for c, r in zip(factor.when, results, strict=True)
            if r is None or c.fact in facts.get("partly_recorded", ())
        )
    rules = protocol.tiers
    reasons = _high_reasons(points, rules, facts, new_fracture, day14_pain)
    if reasons:
        tier = "high"
    elif points["pain"] >= rules.elevated_pain_points or points["fracture"] >= rules.elevated_fracture_points:
        tier = "elevated"
        reasons.append(f"pain points {points['pain']}, fracture points {points['fracture']}")
    else:
        tier = "standard"
    return Assessment(
        tier=tier,
        pain_points=points["pain"],
        fracture_points=points["fracture"],
        factors=tuple(contributions),
        missing=tuple(dict.fromkeys(missing)),
        reasons=tuple(reasons),
    )
