"""Which candidate to serve: the one-standard-error rule on the validation day's MRR@k.

Validation MRR is an estimate from a day of sessions; two candidates a few thousandths apart may
swap places on the next day. The rule (Breiman et al.'s one-standard-error rule, as in CART and
glmnet's lambda.1se), with the standard error from the paired session bootstrap
(`evaluation.uncertainty`):

1. the leader is the candidate with the highest validation MRR;
2. a candidate is *within noise* of the leader when the leader's lead over it is at most one
   standard error of that lead (paired: the same resampled sessions for both);
3. of the candidates within noise, the simplest is chosen, in the order of `SIMPLICITY`
   (cheapest to train and serve, fewest parameters first). A candidate not in that list counts
   as more complex than every listed one; ties in rank go to the higher MRR.

So a candidate is served over a simpler one only when its lead is larger than the noise of
the comparison, and when nothing is within noise of the leader, the leader is served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from recs_platform.evaluation.uncertainty import SessionBootstrap, session_bootstrap

# Simplest first: the count models, then the torch models by parameters and training cost, the
# blend (which holds several of them) last.
SIMPLICITY = (
    "popularity",
    "markov",
    "vsknn",
    "context_chains",
    "shopper_kinds",
    "latent_intent",
    "gru4rec",
    "gru_transition",
    "sasrec",
    "blend",
)
RULE = (
    "one-standard-error rule: the simplest candidate whose validation MRR is within one paired "
    "bootstrap standard error of the best one's"
)


@dataclass(frozen=True)
class ValidationScore:
    """One candidate's validation MRR@k with its bootstrap interval and its place in the rule."""

    name: str
    mrr: float
    low: float
    high: float
    behind_leader: float  # the leader's MRR minus this one's (0 for the leader)
    behind_leader_se: float  # the paired bootstrap standard error of that difference
    probability_best: float  # share of resamples in which it has the highest MRR
    within_noise: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Selection:
    chosen: str
    leader: str
    scores: dict[str, ValidationScore]
    sessions: int
    targets: int
    rule: str = RULE

    def describe(self) -> str:
        chosen, leader = self.scores[self.chosen], self.scores[self.leader]
        if self.chosen == self.leader:
            others = [
                s.name for s in self.scores.values() if s.within_noise and s.name != leader.name
            ]
            tied = f"; within noise of it: {', '.join(others)}" if others else ""
            return (
                f"{chosen.name}: the best validation MRR ({chosen.mrr:.4f}, 95% interval "
                f"{chosen.low:.4f}-{chosen.high:.4f}), and none simpler within noise{tied}"
            )
        return (
            f"{chosen.name} (validation MRR {chosen.mrr:.4f}, {chosen.low:.4f}-{chosen.high:.4f}): "
            f"the simplest within one standard error of the leader {leader.name} "
            f"({leader.mrr:.4f}; lead {chosen.behind_leader:.4f} ± {chosen.behind_leader_se:.4f})"
        )

    def as_dict(self) -> dict:
        return {
            "chosen": self.chosen,
            "leader": self.leader,
            "rule": self.rule,
            "sessions": self.sessions,
            "targets": self.targets,
            "scores": {name: score.as_dict() for name, score in self.scores.items()},
        }


def simplicity_rank(name: str, order: Sequence[str] = SIMPLICITY) -> int:
    return order.index(name) if name in order else len(order)


def choose(bootstrap: SessionBootstrap, order: Sequence[str] = SIMPLICITY) -> Selection:
    """The rule of the module docstring applied to bootstrapped validation MRRs."""
    estimates = bootstrap.estimates
    if not estimates:
        raise ValueError("no candidates to choose from")
    leader = max(estimates, key=lambda name: (estimates[name], -simplicity_rank(name, order)))
    probability_best = bootstrap.probability_best()
    scores = {}
    for name, mrr in estimates.items():
        behind = estimates[leader] - mrr
        standard_error = bootstrap.difference_standard_error(leader, name) if name != leader else 0
        low, high = bootstrap.interval(name)
        scores[name] = ValidationScore(
            name=name,
            mrr=mrr,
            low=low,
            high=high,
            behind_leader=behind,
            behind_leader_se=standard_error,
            probability_best=probability_best[name],
            within_noise=bool(behind <= standard_error),
        )
    eligible = [name for name, score in scores.items() if score.within_noise]
    chosen = min(eligible, key=lambda name: (simplicity_rank(name, order), -estimates[name]))
    return Selection(chosen, leader, scores, bootstrap.sessions, bootstrap.targets)


def select(
    reciprocal_ranks_by_name: Mapping[str, np.ndarray],
    session_of_target: Sequence[int] | np.ndarray,
    order: Sequence[str] = SIMPLICITY,
    seed: int = 0,
) -> Selection:
    """Bootstrap the candidates' validation reciprocal ranks by session, then `choose`."""
    return choose(session_bootstrap(reciprocal_ranks_by_name, session_of_target, seed=seed), order)
