"""Champion against challenger on live traffic: rates with intervals, the lift, a decision.

The unit of randomisation is the session (the endpoint hashes the session id to a variant), so
the unit of analysis is the session too: a rate such as the click-through rate is a ratio of
two per-session sums (clicks over impressions), and its variance comes from the delta method
over sessions, not from treating every impression as independent (a shopper who clicks once
tends to click again; counting impressions as independent would make every interval too narrow).

For a ratio R = sum(y) / sum(x) over n sessions the linearised per-session terms are
d_i = (y_i - R x_i) / mean(x), and var(R) is about var(d) / n. The relative lift of the
challenger B over the champion A is R_B / R_A - 1; its interval comes from the interval of
log(R_B / R_A), whose variance is var(R_A) / R_A^2 + var(R_B) / R_B^2 (independent groups).

Decision at the configured confidence: the challenger *wins* when the lift's interval lies
above 0, *loses* when it lies below 0, and is *not yet known* otherwise, or while either
variant has fewer sessions than `min_sessions` (a guard against deciding on a handful of
shoppers). The test is fixed-horizon: looking every day and stopping at the first "wins"
raises the false-positive rate above 1 - confidence. `sessions_needed` says, from the
variances seen so far, how many sessions a test of the configured minimum detectable effect
needs; decide when that many have been seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from statistics import NormalDist

import numpy as np
import pandas as pd

CHAMPION = "champion"
CHALLENGER = "challenger"
# Per session: what the carousel showed and what came of it.
SESSION_COLUMNS = ("session_id", "variant", "impressions", "clicks", "add_to_carts")


class Decision(StrEnum):
    WINS = "challenger wins"
    LOSES = "challenger loses"
    NOT_YET_KNOWN = "not yet known"


@dataclass(frozen=True)
class Rate:
    """A ratio of per-session sums, with its delta-method interval."""

    value: float
    low: float
    high: float
    variance: float  # of the estimate
    unit_variance: float  # of one session's linearised term: variance * sessions
    numerator: float
    denominator: float


def ratio_rate(numerators: np.ndarray, denominators: np.ndarray, confidence: float) -> Rate:
    """sum(numerators) / sum(denominators) over sessions, with its delta-method interval."""
    numerators = np.asarray(numerators, dtype=np.float64)
    denominators = np.asarray(denominators, dtype=np.float64)
    n, total = len(denominators), float(denominators.sum())
    if n == 0 or total <= 0:
        raise ValueError("a rate needs at least one session with a positive denominator")
    value = float(numerators.sum()) / total
    linearised = (numerators - value * denominators) / denominators.mean()
    unit_variance = float(linearised.var(ddof=1)) if n > 1 else math.inf
    variance = unit_variance / n
    half = _z(confidence) * math.sqrt(variance)
    return Rate(
        value,
        max(value - half, 0.0),
        value + half,
        variance,
        unit_variance,
        float(numerators.sum()),
        total,
    )


@dataclass(frozen=True)
class Lift:
    """The challenger's rate relative to the champion's: R_B / R_A - 1, with its interval."""

    value: float
    low: float
    high: float


def relative_lift(champion: Rate, challenger: Rate, confidence: float) -> Lift:
    """R_B / R_A - 1; with a zero rate on either side the interval is unbounded."""
    if champion.value <= 0 or challenger.value <= 0:
        value = challenger.value / champion.value - 1 if champion.value else math.nan
        return Lift(value, -math.inf, math.inf)
    log_ratio = math.log(challenger.value / champion.value)
    se = math.sqrt(
        champion.variance / champion.value**2 + challenger.variance / challenger.value**2
    )
    half = _z(confidence) * se
    return Lift(
        math.exp(log_ratio) - 1, math.exp(log_ratio - half) - 1, math.exp(log_ratio + half) - 1
    )


def sessions_needed(
    champion: Rate,
    challenger: Rate,
    minimum_detectable_effect: float,
    challenger_share: float,
    confidence: float,
    power: float,
) -> int:
    """Sessions in all (both variants) for a two-sided test at `confidence` to detect a relative
    change of `minimum_detectable_effect` in the champion's rate with probability `power`, the
    challenger getting `challenger_share` of them, with the per-session variances seen."""
    delta = minimum_detectable_effect * champion.value
    if delta <= 0 or not math.isfinite(champion.unit_variance + challenger.unit_variance):
        return 0
    z = _z(confidence) + NormalDist().inv_cdf(power)
    per_total = (
        champion.unit_variance / (1 - challenger_share)
        + challenger.unit_variance / challenger_share
    )
    return math.ceil(z**2 * per_total / delta**2)


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    sessions: int
    impressions: int
    clicks: int
    add_to_carts: int
    ctr: Rate
    add_to_cart_rate: Rate  # adds to cart after a recommended click, per impression


@dataclass(frozen=True)
class ABTestReport:
    champion: VariantSummary
    challenger: VariantSummary
    ctr_lift: Lift
    add_to_cart_lift: Lift
    sessions_needed: int  # in all, for the minimum detectable effect on the CTR
    decision: Decision
    confidence: float
    minimum_detectable_effect: float
    reason: str

    def as_dict(self) -> dict:
        return {**asdict(self), "decision": str(self.decision)}

    def describe(self) -> str:
        a, b = self.champion.ctr, self.challenger.ctr
        return (
            f"{self.decision}: CTR {b.value:.4f} ({b.low:.4f}-{b.high:.4f}) against the "
            f"champion's {a.value:.4f} ({a.low:.4f}-{a.high:.4f}), lift "
            f"{self.ctr_lift.value:+.1%} ({self.ctr_lift.low:+.1%} to {self.ctr_lift.high:+.1%}, "
            f"{self.confidence:.0%}); {self.reason}"
        )


def ab_test(
    sessions: pd.DataFrame,
    confidence: float = 0.95,
    minimum_detectable_effect: float = 0.05,
    power: float = 0.8,
    min_sessions: int = 1_000,
    variants: Sequence[str] = (CHAMPION, CHALLENGER),
) -> ABTestReport:
    """The report of one test from per-session rows (`SESSION_COLUMNS`) of both variants."""
    missing = set(SESSION_COLUMNS) - set(sessions.columns)
    if missing:
        raise ValueError(f"per-session rows lack {sorted(missing)}")
    if not 0 < confidence < 1 or not 0 < power < 1 or minimum_detectable_effect <= 0:
        raise ValueError("confidence and power must be in (0, 1), the effect positive")
    shown = sessions[sessions["impressions"] > 0]
    summaries = []
    for variant in variants:
        rows = shown[shown["variant"] == variant]
        if rows.empty:
            raise ValueError(f"no session of variant {variant!r} saw a recommendation")
        summaries.append(
            VariantSummary(
                variant,
                len(rows),
                int(rows["impressions"].sum()),
                int(rows["clicks"].sum()),
                int(rows["add_to_carts"].sum()),
                ratio_rate(rows["clicks"], rows["impressions"], confidence),
                ratio_rate(rows["add_to_carts"], rows["impressions"], confidence),
            )
        )
    champion, challenger = summaries
    ctr_lift = relative_lift(champion.ctr, challenger.ctr, confidence)
    share = challenger.sessions / (champion.sessions + challenger.sessions)
    needed = sessions_needed(
        champion.ctr, challenger.ctr, minimum_detectable_effect, share, confidence, power
    )
    if min(champion.sessions, challenger.sessions) < min_sessions:
        decision = Decision.NOT_YET_KNOWN
        reason = f"fewer than {min_sessions:,} sessions in a variant"
    elif ctr_lift.low > 0:
        decision, reason = Decision.WINS, "the lift's interval lies above 0"
    elif ctr_lift.high < 0:
        decision, reason = Decision.LOSES, "the lift's interval lies below 0"
    else:
        decision, reason = Decision.NOT_YET_KNOWN, "the lift's interval contains 0"
    return ABTestReport(
        champion,
        challenger,
        ctr_lift,
        relative_lift(champion.add_to_cart_rate, challenger.add_to_cart_rate, confidence),
        needed,
        decision,
        confidence,
        minimum_detectable_effect,
        f"{reason}; {champion.sessions + challenger.sessions:,} sessions seen, {needed:,} "
        f"needed for a {minimum_detectable_effect:.0%} effect",
    )


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)
