"""Sampling product sequences for all sessions of a day at once (session-parallel steps).

`DaySampler` draws the intent family by rejection from its mixture (fast, and today's draws);
`sample_views_sparse` draws a family through its `FamilySampler` (component, then product:
no [sessions, n_items] rows, so it scales to large catalogues), leaving only the rare
leftovers to the exact rows; `sample_views` draws any family from its `step_probabilities`
rows by inverse CDF (the reference: its cost grows with views x items).
"""

from __future__ import annotations

import numpy as np

from recs_platform.simulation.families.base import (
    FamilySampler,
    ShopFamily,
    restrict_to_unseen,
)
from recs_platform.simulation.families.intent import DaySampler

__all__ = [
    "BLOCK_CELLS",
    "DaySampler",
    "draw_from_rows",
    "exact_draws",
    "sample_views",
    "sample_views_sparse",
]


# Probabilities the generic sampler holds at once ([rows, n_items] float64): 8 MB a block.
BLOCK_CELLS = 1_000_000


def draw_from_rows(rows: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """One index per row ~ the row's weights, by inverse CDF with `uniform` in [0, 1); -1 for a
    row without mass. An index with zero weight is never drawn."""
    cumulative = np.cumsum(rows, axis=1)
    total = cumulative[:, -1]
    drawn = (cumulative <= (uniform * total)[:, None]).sum(axis=1)
    # u * total can round up to total itself: take the last index with weight.
    last_with_weight = rows.shape[1] - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
    drawn = np.minimum(drawn, last_with_weight)
    return np.where(total > 0, drawn, -1)


def sample_views(
    family: ShopFamily,
    day: int,
    rng: np.random.Generator,
    states: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """Every session's product views, drawn position by position from the family's rows.

    [sessions, max(lengths)], -1 after a session's last view: a session ends at its length or
    earlier, when its row has no mass (nothing left it may view). Rows are computed for blocks
    of sessions (`BLOCK_CELLS`), so memory does not grow with the day's sessions; the draws do
    not depend on the block size.
    """
    count = len(states)
    longest = int(lengths.max()) if count else 0
    views = np.full((count, longest), -1, dtype=np.int64)
    alive = np.ones(count, dtype=bool)
    block = max(1, BLOCK_CELLS // family.catalogue.n_items)
    for position in range(longest):
        active = np.flatnonzero(alive & (lengths > position))
        uniform = rng.random(len(active))
        for start in range(0, len(active), block):
            sessions = active[start : start + block]
            rows = family.step_probabilities(day, views[sessions, :position], states[sessions])
            views[sessions, position] = draw_from_rows(rows, uniform[start : start + block])
        alive[active] = views[active, position] >= 0
    return views


def exact_draws(
    family: ShopFamily,
    day: int,
    rng: np.random.Generator,
    history: np.ndarray,
    states: np.ndarray,
) -> np.ndarray:
    """Draws from the family's rows for sessions a `FamilySampler` left undecided: the row
    restricted to unseen products where it has mass there (what a sampler that settled on a
    new product was drawing), else the whole row; -1 where the row has no mass."""
    drawn = np.full(len(states), -1, dtype=np.int64)
    block = max(1, BLOCK_CELLS // family.catalogue.n_items)
    uniform = rng.random(len(states))
    for start in range(0, len(states), block):
        sessions = slice(start, start + block)
        rows = family.step_probabilities(day, history[sessions], states[sessions])
        unseen = restrict_to_unseen(rows, history[sessions])
        rows = np.where(unseen.sum(axis=1, keepdims=True) > 0, unseen, rows)
        drawn[sessions] = draw_from_rows(rows, uniform[sessions])
    return drawn


def sample_views_sparse(
    family: ShopFamily,
    sampler: FamilySampler,
    day: int,
    rng: np.random.Generator,
    states: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """Every session's product views, as `sample_views` (same law, other draws), through the
    family's `sampler` of that day: memory and time per view do not grow with the catalogue."""
    count = len(states)
    longest = int(lengths.max()) if count else 0
    views = np.full((count, longest), -1, dtype=np.int64)
    alive = np.ones(count, dtype=bool)
    for position in range(longest):
        active = np.flatnonzero(alive & (lengths > position))
        history = views[active, :position]
        if position == 0:
            drawn = sampler.first(rng, states[active])
        else:
            drawn = sampler.next(rng, history, states[active])
        undecided = np.flatnonzero(drawn < 0)
        if undecided.size:
            drawn[undecided] = exact_draws(
                family, day, rng, history[undecided], states[active[undecided]]
            )
        views[active, position] = drawn
        alive[active] = drawn >= 0
    return views
