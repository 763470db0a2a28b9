"""A retrain's time budget: how long each candidate may take, and how much data fits in it.

A retrain (search, refit, blend, test evaluation, checklist) gets `total_s` seconds. A share of it
is kept for what follows the training (`evaluation_share`); the rest is shared out as the
candidates come, each one getting its own fixed costs (what its probe says its smallest window
costs, at most half the time left) and the rest of the time left divided by the candidates still
to train (`candidate_allowance`), so a quick candidate leaves its unused time to the ones after
it, and a slow-to-score one is not left to pay its fixed costs for the fewest sessions.

Before a candidate trains, a probe measures it: one fit (one epoch for a torch model) on the
most recent sessions (2 %, four times more until a fit takes 10 s), one on a quarter of them
(the line through the two separates what a fit costs whatever its size from what each session
adds), and a scoring of the validation day's first targets, scaled to the whole day (a model
slow to score on a large catalogue would otherwise spend its allowance on the timing). From
those timings `fit_window` sizes its search and refit to its allowance: first fewer search
trials (down to its defaults alone), then fewer training sessions, the most recent ones kept. A
shop's newest sessions say the most about tomorrow's, and a window cut from the old end keeps
every item that is still being viewed.

A probe is an estimate, and a cost that grows faster than the sessions (the latent-intent
chains' epoch on a large month) beats it. So the estimate also sets deadlines: a torch candidate's
search stops at the end of its search time and its refit at the end of its share, inside an
epoch if need be, keeping what it learnt (`TorchSessionRecommender.fit`); a search cut inside
its first epoch makes the refit train on that share of the window, the newest sessions; when
less than half the refit's estimate is left, the search's model serves unrefitted. The
candidate's `deadline_cuts` say which happened.

What is left when the candidates and the blend are done pays for the test evaluation: every
candidate, the oracle and the champion scored on the same test targets, then the checklist.
`evaluation_sample` times each of them on a few hundred test targets and keeps as many test
sessions as fit what is left (never fewer than `MIN_TEST_SESSIONS`); the served model's test
MRR then comes with its bootstrap interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Fewer sessions than this and no model learns anything useful: the window never goes below it.
MIN_TRAINING_SESSIONS = 1_000
# The test day is never scored on fewer sessions than this, even past the budget: below it the
# served model's test MRR is too uncertain to compare with a champion.
MIN_TEST_SESSIONS = 1_000
# Prefixes the checklist's invariants score with the served model (`evaluation/checklist.py`):
# its sample, each scored and ranked a few times.
CHECKLIST_PREFIXES = 1_500


@dataclass
class TimeBudget:
    total_s: float
    evaluation_share: float = 0.3  # kept for the blend, the test evaluation and the checklist
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if self.total_s <= 0:
            raise ValueError(f"a time budget must be positive, got {self.total_s} s")
        if not 0 <= self.evaluation_share < 1:
            raise ValueError(f"evaluation_share must be in [0, 1), got {self.evaluation_share}")

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def remaining_s(self) -> float:
        return self.total_s - self.elapsed_s()

    def training_left_s(self) -> float:
        """The seconds left for the candidates: the budget less the evaluation's share, less
        what has been spent."""
        return max(self.total_s * (1 - self.evaluation_share) - self.elapsed_s(), 0.0)

    def progress(self) -> str:
        return f"{self.elapsed_s() / 60:.1f} of {self.total_s / 60:.1f} min"


def candidate_allowance(
    training_left_s: float, candidates_left: int, fixed_s: float = 0.0
) -> float:
    """The seconds the next candidate may take out of `training_left_s`, `candidates_left`
    including it: its fixed costs (`fixed_s`, what its smallest window costs whatever the
    sessions: one scoring of the validation day, the fixed parts of a fit and a refit), at most
    half of what is left, then an equal share of the rest.

    An equal share alone starves a candidate whose fixed costs pass it (the shopper kinds on a
    50,000-item month: 4 ms to score a validation prefix): it would pay them and train on the
    fewest sessions. Taken off the top, they cost every candidate to come a little instead."""
    if candidates_left <= 1:
        return training_left_s
    fixed = min(max(fixed_s, 0.0), training_left_s / 2)
    return fixed + (training_left_s - fixed) / candidates_left


@dataclass(frozen=True)
class Probe:
    """What one candidate costs, measured on slices of the most recent training sessions.

    With a second, smaller fit (`small_sessions`, `small_fit_s`) the cost of a fit is the line
    through the two: a part that does not grow with the sessions (a count model's fit of its
    weights on a capped held-out sample, a torch model's set-up) and a part per session; a cost
    that grows faster than the sessions shows as a steeper line. Without it, the cost is
    proportional to the sessions.
    """

    sessions: int  # in the probe fit
    fit_s: float  # one fit (one epoch for a torch model) on those sessions
    validation_s: float  # one scoring of the validation day
    small_sessions: int = 0  # in the smaller fit; 0: none was made
    small_fit_s: float = 0.0

    @property
    def seconds_per_session_epoch(self) -> float:
        """The cost of one more session (per epoch): the slope of the line."""
        if 0 < self.small_sessions < self.sessions:
            slope = (self.fit_s - self.small_fit_s) / (self.sessions - self.small_sessions)
            return max(slope, 0.0)
        return self.fit_s / max(self.sessions, 1)

    @property
    def fixed_s(self) -> float:
        """The part of a fit (per epoch) that does not grow with the sessions (negative for a
        cost that grows faster than them)."""
        return self.fit_s - self.seconds_per_session_epoch * self.sessions

    def fit_seconds(self, sessions: int, epochs: int = 1) -> float:
        """One fit of `epochs` epochs on `sessions` sessions."""
        return epochs * max(self.fixed_s + self.seconds_per_session_epoch * sessions, 0.0)


@dataclass(frozen=True)
class TrainingWindow:
    """How a candidate trains within its allowance."""

    sessions: int  # the most recent training sessions it fits on
    available_sessions: int  # the whole training split
    trials: int  # search trials (1: its defaults only)
    estimated_s: float  # search + refit, by the probe
    allowance_s: float
    epochs: int | None = None  # the most a fit trains; None: not trained by epochs
    # The refit's sessions, the most recent of train + validation: all of them for a whole
    # window, as many as the search had for a cut one (0: not set, all of them).
    refit_sessions: int = 0
    refit_estimated_s: float = 0.0  # the refit's part of `estimated_s`

    @property
    def trimmed(self) -> bool:
        return self.sessions < self.available_sessions

    def describe(self) -> str:
        share = self.sessions / max(self.available_sessions, 1)
        epochs = f", at most {self.epochs} epoch(s)" if self.epochs is not None else ""
        return (
            f"{self.sessions:,} of {self.available_sessions:,} training sessions ({share:.0%}), "
            f"{self.trials} trial(s){epochs}, about {self.estimated_s:.0f} s of "
            f"{self.allowance_s:.0f} s"
        )


def probe_size(available_sessions: int) -> int:
    """How many of the most recent sessions a probe fits on: 2 % of them, at least 2,000."""
    return min(available_sessions, max(2_000, available_sessions // 50))


def estimated_seconds(
    probe: Probe,
    sessions: int,
    refit_sessions: int,
    epochs: int,
    scored_epochs: int,
    trials: int,
) -> float:
    """Search (`trials` fits on `sessions`, each scored `scored_epochs` times) plus the refit
    on `refit_sessions`."""
    search = trials * (probe.fit_seconds(sessions, epochs) + probe.validation_s * scored_epochs)
    return search + probe.fit_seconds(refit_sessions, epochs)


def fixed_costs_s(
    probe: Probe, available_sessions: int, min_sessions: int = MIN_TRAINING_SESSIONS
) -> float:
    """What a candidate costs whatever its window, by the probe: the smallest window's search
    and refit of one epoch each and one scoring of the validation day (`candidate_allowance`
    takes it off the top)."""
    smallest = min(available_sessions, min_sessions)
    return estimated_seconds(probe, smallest, smallest, 1, 1, 1)


def fit_window(
    probe: Probe,
    available_sessions: int,
    validation_sessions: int,
    epochs: int | None,
    scored_every_epoch: bool,
    trials: int,
    allowance_s: float,
    min_sessions: int = MIN_TRAINING_SESSIONS,
) -> TrainingWindow:
    """What fits `allowance_s` by the probe's estimate, giving up first search trials (down to
    the defaults alone), then epochs (down to one), then the oldest sessions (down to
    `min_sessions`). On a large shop one pass over many sessions teaches a model more than many
    passes over a few.

    `epochs`: the most a fit trains (None for a model that is not trained by epochs);
    `scored_every_epoch`: a torch model that stops early scores the validation day after every
    epoch, any other model once.
    """

    def window(sessions: int, trials_run: int, epochs_run: int | None) -> TrainingWindow:
        passes = epochs_run or 1
        scored = passes if scored_every_epoch else 1
        # The whole window refits on train + validation; a cut one on as many sessions as it
        # searched on, the most recent of train + validation (the validation day first).
        refit = sessions + validation_sessions if sessions >= available_sessions else sessions
        cost = estimated_seconds(probe, sessions, refit, passes, scored, trials_run)
        refit_s = probe.fit_seconds(refit, passes)
        return TrainingWindow(
            sessions, available_sessions, trials_run, cost, allowance_s, epochs_run, refit, refit_s
        )

    full = window(available_sessions, trials, epochs)
    if full.estimated_s <= allowance_s:
        return full
    defaults_only = window(available_sessions, 1, epochs)
    if defaults_only.estimated_s <= allowance_s:
        # As many trials as fit on the whole window.
        per_trial = (full.estimated_s - defaults_only.estimated_s) / max(trials - 1, 1)
        extra = int((allowance_s - defaults_only.estimated_s) // max(per_trial, 1e-9))
        return window(available_sessions, 1 + min(extra, trials - 1), epochs)
    for fewer in range((epochs or 1) - 1, 0, -1):
        shorter = window(available_sessions, 1, fewer)
        if shorter.estimated_s <= allowance_s:
            return shorter
    last = 1 if epochs is not None else None
    # One search fit and one refit of one epoch each, and one scoring of the validation day.
    fit = probe.seconds_per_session_epoch
    spare = allowance_s - probe.validation_s - 2 * probe.fixed_s
    if spare <= 0:  # nothing left: the fewest sessions, whatever the probe's slope says
        sessions = min_sessions
    elif fit > 0:
        sessions = int(spare / (2 * fit))
    else:  # a cost per session too small for the probe to tell from its noise
        sessions = available_sessions
    return window(min(max(sessions, min_sessions), available_sessions), 1, last)


@dataclass(frozen=True)
class EvaluationSample:
    """How many test sessions the test evaluation scores within what is left of the budget."""

    sessions: int  # scored
    available_sessions: int  # in the test sample before the budget cut it
    estimated_s: float  # the evaluation of `sessions`, checklist included
    remaining_s: float  # of the budget when it was sized

    @property
    def cut(self) -> bool:
        return self.sessions < self.available_sessions

    def describe(self) -> str:
        return (
            f"{self.sessions:,} of {self.available_sessions:,} test sessions, about "
            f"{self.estimated_s:.0f} s of the {max(self.remaining_s, 0.0):.0f} s left"
        )


def evaluation_sample(
    seconds_per_target: Mapping[str, float],
    served: str,
    targets_per_session: float,
    available_sessions: int,
    remaining_s: float,
    min_sessions: int | None = None,
) -> EvaluationSample:
    """As many of `available_sessions` as the models of `seconds_per_target` (each one's
    measured seconds to score a test target) can score in `remaining_s`, after the checklist of
    the `served` model; never fewer than `min_sessions` (default `MIN_TEST_SESSIONS`), or all
    of them if there are fewer."""
    min_sessions = MIN_TEST_SESSIONS if min_sessions is None else min_sessions
    checklist_s = seconds_per_target[served] * CHECKLIST_PREFIXES
    per_session = sum(seconds_per_target.values()) * targets_per_session
    fits = int((remaining_s - checklist_s) / per_session) if per_session > 0 else available_sessions
    sessions = min(available_sessions, max(fits, min_sessions))
    return EvaluationSample(
        sessions, available_sessions, checklist_s + per_session * sessions, remaining_s
    )
