"""The interface every shop family implements, and the building blocks the families share.

A family's `step_probabilities` is the whole generating process of a session's product
sequence: the generic sampler draws from its rows and the oracle multiplies and mixes the same
rows, so what is sampled is exactly what is computed.

Rows are computed for a block of sessions at once ([B, n_items]); every block shares one
prefix length t, so `history` is a plain [B, t] array of item indices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recs_platform.simulation.catalogue import FAMILY_STREAM, Catalogue, stream_rng
from recs_platform.simulation.config import FAMILY_NAMES, ShopConfig

# A component's weight: one number for every row, or one per row.
Weight = float | np.ndarray
# Days whose arrays a family keeps (the oracle walks a day's prefixes, then the next day's).
DAYS_KEPT = 4


class FamilySampler(ABC):
    """One day of a family drawn without its [B, n_items] rows: component, then item.

    Both methods return one product per session, or -1 where the sampler leaves the draw to
    the exact rows (a session that may have nothing left to view, or whose unseen products
    the rejection rounds kept missing); the law of what they return is the family's rows.
    """

    @abstractmethod
    def first(self, rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
        """First products of sessions in `states`."""

    @abstractmethod
    def next(self, rng: np.random.Generator, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Next products after `history` [B, t >= 1], restricted as the family's rows are."""


class ShopFamily(ABC):
    """One generating process of the shop's sessions.

    `n_states` latent states (1 when the prefix tells everything the process knows), drawn
    once per session from `state_prior()`; then, at each position, the next product is drawn
    from `step_probabilities(day, history, states)`.
    """

    name: str = ""
    # Whether a session may view a product it viewed before (not the one it views right now).
    revisits: bool = False

    def __init__(self, config: ShopConfig, catalogue: Catalogue):
        self.config = config
        self.catalogue = catalogue
        self._days: dict[int, object] = {}

    @property
    def n_states(self) -> int:
        return 1

    def state_prior(self) -> np.ndarray:
        """P(state) for each latent state: [n_states], sums to 1."""
        return np.ones(1)

    @abstractmethod
    def step_probabilities(self, day: int, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        """P(next product = j | the products so far, the latent state, the day): [B, n_items].

        `history` [B, t] holds each session's item indices in order (t may be 0: the first
        product), `states` [B] each session's latent state. A row sums to 1, or is all zero
        where the session cannot continue (every product it may view is seen).
        """

    def sampler(self, day: int) -> FamilySampler | None:
        """Draws of day `day` without dense rows (`FamilySampler`), or None where the family
        has none (the generator then draws from `step_probabilities`)."""
        return None

    def _day(self, day: int):
        """The family's arrays of day `day` (`_build_day`), kept for the last few days asked
        for, so memory does not grow with the days of a long window."""
        if day not in self._days:
            if len(self._days) >= DAYS_KEPT:
                del self._days[next(iter(self._days))]
            self._days[day] = self._build_day(day)
        return self._days[day]

    def _build_day(self, day: int):
        return DayPopularity.of(self.catalogue, self.catalogue.popularity_on(day))


def family_rng(config: ShopConfig, family_name: str) -> np.random.Generator:
    """The family's own random stream, for its structures (never for sessions)."""
    return stream_rng(config, FAMILY_STREAM, FAMILY_NAMES.index(family_name))


@dataclass(frozen=True)
class DayPopularity:
    """The popularity-driven distributions of one day, from pop_j(d) (zero when unavailable).

    GlobalPop_d(j) = pop_j(d) / sum_k pop_k(d); CatPop_d(j | c) = pop_j(d) [cat(j) = c] / the
    same sum over c's items; Nbr_d(j | i) = w_ij [j available] / sum over i's neighbours.
    """

    popularity: np.ndarray  # [n_items] pop_j(d)
    global_share: np.ndarray  # [n_items] GlobalPop_d(j)
    category_share: np.ndarray  # [n_items] CatPop_d(j | cat(j))
    category_has_items: np.ndarray  # [C] whether category c has an available product
    neighbour_weight: np.ndarray  # [n_items, K] w_ij for available neighbours, else 0

    @classmethod
    def of(
        cls,
        catalogue: Catalogue,
        popularity: np.ndarray,
        neighbour_factor: np.ndarray | None = None,
    ) -> DayPopularity:
        """`neighbour_factor` [n_items] multiplies the weight of j as anyone's neighbour."""
        category_mass = np.bincount(
            catalogue.category, weights=popularity, minlength=catalogue.n_categories
        )
        safe_mass = np.where(category_mass > 0, category_mass, 1.0)
        available = popularity > 0
        factor = available if neighbour_factor is None else available * neighbour_factor
        padded = np.maximum(catalogue.neighbours, 0)
        return cls(
            popularity=popularity,
            global_share=popularity / popularity.sum(),
            category_share=popularity / safe_mass[catalogue.category],
            category_has_items=category_mass > 0,
            neighbour_weight=catalogue.neighbour_weight * factor[padded],
        )


@dataclass(frozen=True)
class Component:
    """One source of the next product: its weight, its rows [B, n_items] (each a distribution)
    and which rows have any mass ([B] bool; a row without mass drops out)."""

    weight: Weight
    rows: np.ndarray
    has_mass: np.ndarray


def mix(components: Sequence[Component]) -> np.ndarray:
    """sum_k w_k rows_k over the components with mass, the weights renormalised over those.

    A component with no available product (a category not launched yet, an item whose
    neighbours are all unlaunched) drops out, as in the intent shop; rows where every
    component dropped out are zero.
    """
    result = np.zeros_like(components[0].rows)
    total_weight = np.zeros(len(result))
    for component in components:
        weight = np.where(component.has_mass, component.weight, 0.0)
        total_weight += weight
        result += weight[:, None] * component.rows
    return result / np.where(total_weight > 0, total_weight, 1.0)[:, None]


def restrict_to_unseen(rows: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Rows with the session's seen products zeroed and renormalised (zero rows stay zero)."""
    rows = rows.copy()
    if history.shape[1]:
        rows[np.arange(len(rows))[:, None], history] = 0.0
    mass = rows.sum(axis=1, keepdims=True)
    return np.divide(rows, mass, out=np.zeros_like(rows), where=mass > 0)


def shared_component(weight: Weight, distribution: np.ndarray, count: int) -> Component:
    """The same distribution [n_items] in each of `count` rows (GlobalPop_d, for instance)."""
    rows = np.broadcast_to(distribution, (count, len(distribution)))
    return Component(weight, rows, np.full(count, distribution.sum() > 0))


def neighbour_rows(catalogue: Catalogue, neighbour_weight: np.ndarray, items: np.ndarray):
    """(Nbr(j | i) for each item i of `items`: [B, n_items], whether i has a neighbour)."""
    weights = neighbour_weight[items]
    total = weights.sum(axis=1)
    has_mass = total > 0
    slots = catalogue.neighbours[items]
    valid = (slots >= 0) & has_mass[:, None]
    rows = np.zeros((len(items), catalogue.n_items))
    row_index = np.broadcast_to(np.arange(len(items))[:, None], slots.shape)
    rows[row_index[valid], slots[valid]] = (weights / np.where(has_mass, total, 1.0)[:, None])[
        valid
    ]
    return rows, has_mass


def category_rows(catalogue: Catalogue, day: DayPopularity, categories: np.ndarray):
    """(CatPop_d(j | c) for each category c of `categories`: [B, n_items], whether c has an
    available product)."""
    same = catalogue.category[None, :] == categories[:, None]
    return day.category_share[None, :] * same, day.category_has_items[categories]


def switch_rows(catalogue: Catalogue, day: DayPopularity, categories: np.ndarray):
    """(sum_{c' != c} Q(c' | c) CatPop_d(j | c') for each c of `categories`, whether any other
    category has an available product); Q renormalised over those categories."""
    switch = catalogue.category_switch[categories] * day.category_has_items[None, :]
    mass = switch.sum(axis=1)
    has_mass = mass > 0
    switch /= np.where(has_mass, mass, 1.0)[:, None]
    return switch[:, catalogue.category] * day.category_share[None, :], has_mass


def one_hot_rows(items: np.ndarray, n_items: int) -> np.ndarray:
    """[B, n_items] with a 1 at each row's item, nothing where the item is -1."""
    rows = np.zeros((len(items), n_items))
    present = items >= 0
    rows[np.flatnonzero(present), items[present]] = 1.0
    return rows
