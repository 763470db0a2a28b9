"""The recommenders `session_model` can train, their defaults and their search spaces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recs_platform.models.base import SessionRecommender
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender

if TYPE_CHECKING:  # only in annotations: serving's command line lists the candidates
    import optuna

Params = dict[str, Any]


@dataclass(frozen=True)
class Candidate:
    name: str
    build: Callable[[Params], SessionRecommender]
    defaults: Params = field(default_factory=dict)
    # Suggests one configuration for an Optuna trial; None: nothing to tune.
    search_space: Callable[[optuna.Trial], Params] | None = None

    def make(self, params: Params | None = None) -> SessionRecommender:
        return self.build({**self.defaults, **(params or {})})

    def with_overrides(self, overrides: Params) -> Candidate:
        """These parameters replace the defaults and are fixed: the search may not change them."""
        space = self.search_space

        def space_without_overrides(trial: optuna.Trial) -> Params:
            return {key: value for key, value in space(trial).items() if key not in overrides}

        return Candidate(
            self.name,
            self.build,
            {**self.defaults, **overrides},
            space_without_overrides if space is not None else None,
        )


def _context_chains() -> Candidate:
    from recs_platform.models.context_chains import ContextChainsRecommender

    # Nothing to search: its mixture weights are fitted on held-out training sessions.
    return Candidate(
        "context_chains", lambda params: ContextChainsRecommender(name="context_chains", **params)
    )


def _shopper_kinds() -> Candidate:
    from recs_platform.models.shopper_kinds import ShopperKindsRecommender

    # Nothing to search: the kinds are found by EM on the training sessions, each kind's
    # chains fit their own weights.
    return Candidate(
        "shopper_kinds", lambda params: ShopperKindsRecommender(name="shopper_kinds", **params)
    )


def _vsknn() -> Candidate:
    from recs_platform.models.vsknn import VSKNNRecommender

    def space(trial: optuna.Trial) -> Params:
        return {
            "k": trial.suggest_categorical("k", [50, 100, 200, 500]),
            "sample_size": trial.suggest_categorical("sample_size", [500, 1000, 5000]),
        }

    return Candidate("vsknn", lambda params: VSKNNRecommender(name="vsknn", **params), {}, space)


def _gru_space() -> Callable[[optuna.Trial], Params]:
    """The search space of the GRU models (GRU4Rec, with or without the transition term).

    No torch candidate searches its epoch count: early stopping on the validation day finds it
    (the plan's `patience`), the candidate's `epochs` being the most it may train.
    """

    def space(trial: optuna.Trial) -> Params:
        return {
            "hidden_size": trial.suggest_categorical("hidden_size", [64, 128, 256]),
            "learning_rate": trial.suggest_float("learning_rate", 5e-4, 1e-2, log=True),
            "dropout_hidden": trial.suggest_float("dropout_hidden", 0.0, 0.5),
        }

    return space


def _gru4rec() -> Candidate:
    from recs_platform.models.gru4rec import GRU4RecRecommender

    return Candidate(
        "gru4rec",
        lambda params: GRU4RecRecommender(name="gru4rec", **params),
        {},
        _gru_space(),
    )


def _gru_transition() -> Candidate:
    from recs_platform.models.gru4rec import TransitionGRURecommender

    return Candidate(
        "gru_transition",
        lambda params: TransitionGRURecommender(name="gru_transition", **params),
        {},
        _gru_space(),
    )


def _sasrec() -> Candidate:
    from recs_platform.models.sasrec import SASRecRecommender

    def space(trial: optuna.Trial) -> Params:
        return {
            "dimensions": trial.suggest_categorical("dimensions", [32, 64, 128]),
            "learning_rate": trial.suggest_float("learning_rate", 5e-4, 1e-2, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        }

    return Candidate(
        "sasrec",
        lambda params: SASRecRecommender(name="sasrec", **params),
        {},
        space,
    )


def _latent_intent() -> Candidate:
    from recs_platform.models.latent_intent import LatentIntentRecommender

    def space(trial: optuna.Trial) -> Params:
        return {
            "intent_rank": trial.suggest_categorical("intent_rank", [4, 8, 16]),
            "clusters": trial.suggest_categorical("clusters", [1, 20, 40, 80]),
            "pseudo_count": trial.suggest_float("pseudo_count", 30.0, 3000.0, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 5e-3, 5e-2, log=True),
        }

    return Candidate(
        "latent_intent",
        lambda params: LatentIntentRecommender(name="latent_intent", **params),
        {},
        space,
    )


_FACTORIES: dict[str, Callable[[], Candidate]] = {
    "popularity": lambda: Candidate("popularity", lambda p: PopularityRecommender(**p)),
    "markov": lambda: Candidate("markov", lambda p: MarkovRecommender(**p)),
    "vsknn": _vsknn,
    # Counts of what followed the last few items, mixed by held-out likelihood
    # (models/context_chains.py).
    "context_chains": _context_chains,
    # The context chains counted apart for each kind of shopper found without labels, mixed per
    # session by the posterior over the kinds (models/shopper_kinds.py).
    "shopper_kinds": _shopper_kinds,
    "gru4rec": _gru4rec,
    "sasrec": _sasrec,
    # GRU4Rec with a learned first-order transition term (see models/gru4rec.py).
    "gru_transition": _gru_transition,
    # A mixture of intent-tilted Markov chains over learned item clusters (models/latent_intent.py).
    "latent_intent": _latent_intent,
}
# The mixture of the other candidates' next-item distributions, its weights fitted on the
# validation day (models/blend.py); the training pipeline builds it from the candidates it
# trained, so it has no factory here. Its overrides: `prior_strength`, `min_weight`,
# `pruning_tolerance` (nats of validation log-likelihood per target the blend may lose by leaving
# out members; 0.005 kept its test MRR@20 within 0.001 on the mixed and default shops while
# leaving out three of seven members).
BLEND = "blend"
# `serving_budget_ms` (off by default): the most milliseconds per request the members kept may
# take to score, timed where the retrain runs (torch on one thread, as the endpoint runs it).
BLEND_SETTINGS = ("prior_strength", "min_weight", "pruning_tolerance", "serving_budget_ms")
BLEND_PRUNING_TOLERANCE = 0.005
# The candidates a plan trains unless told otherwise (the demo's and `session_model`'s list):
# every one there is.
CANDIDATE_NAMES = (*_FACTORIES, BLEND)


def candidate(name: str, overrides: Params | None = None) -> Candidate:
    """The named candidate; `overrides` replace its defaults and are not searched."""
    if name == BLEND:
        raise ValueError("the blend is built by the training pipeline from the other candidates")
    if name not in _FACTORIES:
        choices = ", ".join(CANDIDATE_NAMES)
        raise ValueError(f"unknown candidate {name!r}; choose from {choices}")
    found = _FACTORIES[name]()
    return found.with_overrides(overrides) if overrides else found
