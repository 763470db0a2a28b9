"""Context chains: what followed the session's last few items, counted, and mixed by weights
fitted on held-out sessions.

For a prefix x_1 .. x_t the next-item distribution is a mixture of count-based components,

    P(next = j | x) = sum_c w[b(t), c] * P_c(j | x, j unseen)

    last      P(j | x_t)              j came right after x_t
    second    P(j | x_{t-1})          j came two steps after x_{t-1}
    third     P(j | x_{t-2})          j came three steps after x_{t-2}
    before    P(j | x_t)              j came right before x_t (browsing back)
    together  the mean over the last `window` items i of P(j | i), j within `window` steps of i
              in either direction (what the session is about)
    pair      P(j | x_{t-1}, x_t)     j came right after that ordered pair (the direction of the
              last step), backing off to `last`
    popular   the share of views of j
    recent    the share of views of j in the most recent `recent_share` of the sessions

each conditional smoothed towards popularity with `pseudo_count` m (Dirichlet: P(j | i) =
(count(i, j) + m P(j)) / (count(i) + m); `pair` backs off to `last` the same way), and each
renormalised over the items the prefix has not seen (what the carousel and the evaluation ask
for). A component the prefix is too short for (`third` after two items) is its back-off.

The weights are fitted the way interpolated n-gram language models fit theirs (deleted
interpolation): the counts of the oldest (1 - `holdout_share`) of the training sessions score
the next items of the newest ones, EM finds the weights of the mixture that make those most
likely, per prefix-length bucket (`models/blend.py`'s `mixture_weights`, each bucket with a
Dirichlet prior centred on the weights of all buckets), and then every count is taken again over
all the sessions. No structure is assumed: a shop where the last item decides puts its weight on
`last`, one where the direction matters on `pair`, one where an anchor several steps back
matters on `together` and `third`, one with launches and trends on `recent`. Fitting is counting
(seconds for a month of a mid-sized shop), with no epochs and nothing to tune on the validation
day.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from scipy import sparse

from recs_platform.models.base import SessionRecommender, check_fitted, load_arrays, save_arrays
from recs_platform.models.blend import length_buckets, mixture_weights

COMPONENTS = ("last", "second", "third", "before", "together", "pair", "popular", "recent")
# The single-item conditionals: which item of the prefix each reads (1 = the last).
_STEPS_BACK = {"last": 1, "second": 2, "third": 3, "before": 1}
# The components kept as [from item, to item] count tables.
_TABLES = (*_STEPS_BACK, "together")
# Upper ends of the prefix-length buckets of the weights (inclusive); the last is everything longer.
LENGTH_BOUNDS = (1, 2, 3, 5)
SETTINGS_FILE = "context_chains.json"
# Prefixes whose mixtures are kept (a few kilobytes each): a session's prefixes are scored in
# turn, and the shopper kinds ask for a prefix's next-item probability after scoring it.
_MIXTURE_CACHE_LIMIT = 4096
_UNKNOWN = object()


def _flatten(sessions: Sequence[Sequence[str]], index: dict[str, int]) -> tuple[np.ndarray, ...]:
    """Every view's item code and the position of its session, in order."""
    lengths = np.fromiter((len(session) for session in sessions), np.int64, len(sessions))
    items = np.fromiter(
        (index[sku] for session in sessions for sku in session), np.int64, int(lengths.sum())
    )
    return items, np.repeat(np.arange(len(sessions)), lengths)


def _pair_counts(
    items: np.ndarray, session_of: np.ndarray, n_items: int, distances: Sequence[int]
) -> sparse.csr_matrix:
    """[from, to] counts of ordered pairs `distance` steps apart inside a session (a negative
    distance: the earlier item is the `to`); pairs of an item with itself are left out."""
    counts = sparse.csr_matrix((n_items, n_items), dtype=np.float64)
    for distance in distances:
        gap = abs(distance)
        if gap == 0 or gap >= len(items):
            continue
        inside = (session_of[gap:] == session_of[:-gap]) & (items[gap:] != items[:-gap])
        earlier, later = items[:-gap][inside], items[gap:][inside]
        rows, columns = (earlier, later) if distance > 0 else (later, earlier)
        counts = counts + sparse.csr_matrix(
            (np.ones(len(rows)), (rows, columns)), shape=(n_items, n_items)
        )
    counts.sum_duplicates()
    return counts


@dataclass
class _Component:
    """A distribution over the items without a dense row: `popular` x the popularity vector +
    `recent` x the recent popularity vector + sum of scale x counts[columns] over `terms` (each
    term's columns distinct and sorted: a row of a count table)."""

    popular: float = 0.0
    recent: float = 0.0
    terms: list[tuple[float, np.ndarray, np.ndarray]] = field(default_factory=list)

    def scaled(self, factor: float) -> _Component:
        terms = [(scale * factor, columns, counts) for scale, columns, counts in self.terms]
        return _Component(self.popular * factor, self.recent * factor, terms)

    def plus(self, other: _Component) -> _Component:
        return _Component(
            self.popular + other.popular, self.recent + other.recent, self.terms + other.terms
        )

    @staticmethod
    def mean(components: Sequence[_Component], weights: Sequence[float] | None = None):
        """The weighted sum of `components` (weights default to 1 / their number)."""
        if weights is None:
            weights = [1.0 / len(components)] * len(components)
        total = _Component()
        for component, weight in zip(components, weights, strict=True):
            total = total.plus(component.scaled(float(weight)))
        return total

    def at(self, items: np.ndarray, popular: np.ndarray, recent: np.ndarray) -> np.ndarray:
        """The values at `items` (item codes)."""
        values = self.popular * popular[items] + self.recent * recent[items]
        for scale, columns, counts in self.terms:
            if not len(columns):
                continue
            position = np.minimum(np.searchsorted(columns, items), len(columns) - 1)
            values += np.where(columns[position] == items, scale * counts[position], 0.0)
        return values

    def dense(self, popular: np.ndarray, recent: np.ndarray) -> np.ndarray:
        row = self.popular * popular + self.recent * recent
        for scale, columns, counts in self.terms:
            row[columns] += scale * counts
        return row


def _values_at(
    components: Sequence[_Component], items: np.ndarray, popular: np.ndarray, recent: np.ndarray
) -> np.ndarray:
    """[components, items]: each component's values at `items` (`_Component.at` of each; a
    count row two components share, `pair` backing off to `last`, is searched once)."""
    values = np.outer([c.popular for c in components], popular[items])
    values += np.outer([c.recent for c in components], recent[items])
    found: dict[int, np.ndarray] = {}
    for row, component in enumerate(components):
        for scale, columns, counts in component.terms:
            hits = found.get(id(counts))
            if hits is None:
                hits = np.zeros(len(items))
                if len(columns):
                    position = columns.searchsorted(items)
                    inside = position < len(columns)
                    inside[inside] = columns[position[inside]] == items[inside]
                    hits[inside] = counts[position[inside]]
                found[id(counts)] = hits
            values[row] += scale * hits
    return values


def _sorted_keys(counts: sparse.csr_matrix) -> np.ndarray:
    """Each stored entry of a [from, to] table (its indices sorted) as from * n + to, ascending."""
    rows = np.repeat(np.arange(counts.shape[0], dtype=np.int64), np.diff(counts.indptr))
    return rows * counts.shape[1] + counts.indices.astype(np.int64)


def _looked_up(
    keys: np.ndarray, values: np.ndarray, wanted: np.ndarray, order: np.ndarray | None = None
) -> np.ndarray:
    """values[position of each wanted key in the sorted `keys`], 0 where it is not there.

    `order` (`np.argsort(wanted)`, where the caller shares one over several tables): the keys
    are searched in sorted order, five times faster than scattered look-ups into a large table.
    """
    found = np.zeros(len(wanted))
    if len(keys):
        order = np.argsort(wanted) if order is None else order
        position = np.empty(len(wanted), dtype=np.int64)
        position[order] = np.searchsorted(keys, wanted[order])
        position = np.minimum(position, len(keys) - 1)
        hit = keys[position] == wanted
        found[hit] = values[position[hit]]
    return found


@dataclass
class SessionSteps:
    """The steps of some sessions to an item not seen earlier in them, as arrays.

    `session[s]` and `position[s]`: step s predicts item `position[s]` of session `session[s]`
    from the items before it; `target[s]` is that item's code in the model and `previous[s]` the
    code of the item just before it (-1: unknown to the model).
    """

    session: np.ndarray
    position: np.ndarray
    target: np.ndarray
    previous: np.ndarray

    def take(self, rows: np.ndarray) -> SessionSteps:
        """The steps `rows` (indices or a mask)."""
        return SessionSteps(*(getattr(self, name)[rows] for name in _STEP_FIELDS))


_STEP_FIELDS = tuple(step_field.name for step_field in fields(SessionSteps))


@dataclass(frozen=True)
class _StepLookups:
    """What scoring many steps at once searches: each table's entries as sorted keys
    (`_sorted_keys`), the ordered pairs' (context, item) keys and each context's total."""

    keys: dict[str, np.ndarray]
    triple_keys: np.ndarray
    context_totals: np.ndarray


def _joined(parts: Sequence[tuple[SessionSteps, np.ndarray]]) -> tuple[SessionSteps, np.ndarray]:
    """The steps and values of consecutive chunks as one."""
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return SessionSteps(*(empty for _ in _STEP_FIELDS)), np.zeros(0)
    steps = SessionSteps(
        *(np.concatenate([getattr(part, name) for part, _ in parts]) for name in _STEP_FIELDS)
    )
    return steps, np.concatenate([values for _, values in parts])


class ContextChainsRecommender(SessionRecommender):
    """The interpolated count chains of the module docstring."""

    def __init__(
        self,
        name: str = "context_chains",
        pseudo_count: float = 5.0,
        window: int = 3,
        holdout_share: float = 0.1,
        recent_share: float = 0.1,
        max_holdout_targets: int = 20_000,
        prior_strength: float = 50.0,
        seed: int = 0,
    ):
        if pseudo_count <= 0:
            raise ValueError(f"pseudo_count must be positive, got {pseudo_count}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        for label, share in (("holdout_share", holdout_share), ("recent_share", recent_share)):
            if not 0 < share < 1:
                raise ValueError(f"{label} must be between 0 and 1, got {share}")
        self.name = name
        self.pseudo_count = float(pseudo_count)
        self.window = int(window)
        self.holdout_share = float(holdout_share)
        self.recent_share = float(recent_share)
        self.max_holdout_targets = int(max_holdout_targets)
        self.prior_strength = float(prior_strength)
        self.seed = seed
        self.item_ids: list[str] = []
        self.weights = np.full((len(LENGTH_BOUNDS) + 1, len(COMPONENTS)), 1 / len(COMPONENTS))
        self.tables: dict[str, sparse.csr_matrix] = {}
        self.totals: dict[str, np.ndarray] = {}
        self._mixtures: dict[tuple[str, ...], _Component | None] = {}

    # --- counting ----------------------------------------------------------------------------

    def _count(self, sessions: Sequence[Sequence[str]]) -> None:
        """Every component's counts over `sessions` (the catalogue is `item_ids`)."""
        n_items = len(self.item_ids)
        items, session_of = _flatten(sessions, self.item_index())
        views = np.bincount(items, minlength=n_items).astype(np.float64)
        self.popular = (views + 1) / (views.sum() + n_items)
        recent_from = len(sessions) - max(1, round(len(sessions) * self.recent_share))
        recent_views = np.bincount(items[session_of >= recent_from], minlength=n_items)
        self.recent = (recent_views + 1) / (recent_views.sum() + n_items)
        after = [_pair_counts(items, session_of, n_items, [step]) for step in (1, 2, 3)]
        near = list(range(1, self.window + 1))
        self.tables = {
            "last": after[0],
            "second": after[1],
            "third": after[2],
            "before": after[0].T.tocsr(),
            "together": _pair_counts(items, session_of, n_items, near + [-d for d in near]),
        }
        self._index_tables()
        # The ordered pair (a, b) as one code a * n + b, and what followed it.
        inside = (session_of[2:] == session_of[:-2]) & (session_of[1:-1] == session_of[:-2])
        first, middle, then = items[:-2][inside], items[1:-1][inside], items[2:][inside]
        distinct = (first != middle) & (middle != then) & (first != then)
        codes = (first[distinct] * n_items + middle[distinct]) * n_items + then[distinct]
        triples, triple_counts = np.unique(codes, return_counts=True)
        contexts = triples // n_items
        self.pair_contexts, starts = np.unique(contexts, return_index=True)
        self.pair_start = np.append(starts, len(triples)).astype(np.int64)
        self.pair_items = (triples % n_items).astype(np.int64)
        self.pair_counts = triple_counts.astype(np.float64)

    def _index_tables(self) -> None:
        """Each table's rows sorted by column (what `_Component.at` searches) and row totals."""
        for counts in self.tables.values():
            counts.sort_indices()
        self._mixtures = {}
        self._lookups = None  # the step look-ups' sorted keys, built when first asked for
        self.totals = {
            name: np.asarray(counts.sum(axis=1)).ravel() for name, counts in self.tables.items()
        }

    # --- the components of one prefix ---------------------------------------------------------

    def _conditional(self, table: str, item: int) -> _Component:
        """P(j | item) of one single-item component (popularity for an unknown item)."""
        if item < 0:
            return _Component(popular=1.0)
        counts = self.tables[table]
        start, stop = counts.indptr[item], counts.indptr[item + 1]
        scale = 1.0 / (self.totals[table][item] + self.pseudo_count)
        return _Component(
            popular=self.pseudo_count * scale,
            terms=[(scale, counts.indices[start:stop], counts.data[start:stop])],
        )

    def _pair(self, before_last: int, last: int, last_component: _Component) -> _Component:
        """P(j | the ordered pair), backing off to `last` (itself, where the pair is unknown)."""
        if before_last < 0 or last < 0:
            return last_component
        code = before_last * len(self.item_ids) + last
        position = int(np.searchsorted(self.pair_contexts, code))
        if position == len(self.pair_contexts) or self.pair_contexts[position] != code:
            return last_component
        start, stop = self.pair_start[position], self.pair_start[position + 1]
        scale = 1.0 / (self.pair_counts[start:stop].sum() + self.pseudo_count)
        counted = _Component(
            terms=[(scale, self.pair_items[start:stop], self.pair_counts[start:stop])]
        )
        return counted.plus(last_component.scaled(self.pseudo_count * scale))

    def _components(self, codes: Sequence[int]) -> list[_Component]:
        """Each component's P(j | prefix), in `COMPONENTS` order (item codes, -1 unknown)."""
        found: dict[str, _Component] = {}

        def back(steps: int) -> int:
            return codes[-steps] if len(codes) >= steps else -1

        for component in COMPONENTS:
            if component in _STEPS_BACK:
                found[component] = self._conditional(component, back(_STEPS_BACK[component]))
            elif component == "together":
                near = [code for code in codes[-self.window :] if code >= 0]
                found[component] = (
                    _Component.mean([self._conditional("together", code) for code in near])
                    if near
                    else _Component(popular=1.0)
                )
            elif component == "pair":
                found[component] = self._pair(back(2), back(1), found["last"])
            elif component == "popular":
                found[component] = _Component(popular=1.0)
            else:
                found[component] = _Component(recent=1.0)
        return [found[component] for component in COMPONENTS]

    def _renormalised(
        self, prefix: Sequence[str], targets: Sequence[int] = ()
    ) -> tuple[list[_Component], np.ndarray, np.ndarray]:
        """The prefix's components, for each 1 / its mass on the items not seen (what
        renormalises it over them: the carousel and the evaluation never show a seen item), and
        [components, targets] their values at the `targets` (item codes), not yet renormalised."""
        index = self.item_index()
        codes = [index.get(sku, -1) for sku in prefix]
        components = self._components(codes)
        seen = sorted({code for code in codes if code >= 0})
        values = _values_at(
            components, np.array([*seen, *targets], dtype=np.int64), self.popular, self.recent
        )
        seen_mass = values[:, : len(seen)].sum(axis=1)
        return components, 1.0 / np.maximum(1.0 - seen_mass, 1e-12), values[:, len(seen) :]

    # --- fit and score ------------------------------------------------------------------------

    def fit(self, sessions: Sequence[Sequence[str]]) -> ContextChainsRecommender:
        self.item_ids = sorted({sku for session in sessions for sku in session})
        if not self.item_ids:
            raise ValueError("no items to fit on: every session is empty")
        held_out_from = len(sessions) - round(len(sessions) * self.holdout_share)
        self._count(sessions[:held_out_from])
        self.weights = self._fitted_weights(sessions[held_out_from:])
        self._count(sessions)  # with the weights fitted: `_index_tables` drops the kept mixtures
        return self

    def _fitted_weights(self, held_out: Sequence[Sequence[str]]) -> np.ndarray:
        """The mixture weights per length bucket that make the held-out next items likeliest."""
        steps, likelihoods = self.step_component_probabilities(held_out)
        if len(likelihoods) > self.max_holdout_targets:
            rng = np.random.default_rng(self.seed)
            chosen = np.sort(rng.choice(len(likelihoods), self.max_holdout_targets, replace=False))
            steps = steps.take(chosen)
            likelihoods = likelihoods[chosen]
        likelihoods = likelihoods.reshape(len(likelihoods), len(COMPONENTS))
        buckets = length_buckets(steps.position, LENGTH_BOUNDS)
        overall = mixture_weights(likelihoods)
        return np.array(
            [
                mixture_weights(likelihoods[buckets == bucket], overall, self.prior_strength)
                for bucket in range(len(LENGTH_BOUNDS) + 1)
            ]
        )

    def component_probabilities(self, prefix: Sequence[str], target: str) -> np.ndarray:
        """Each component's P(next = target | prefix, target unseen), in `COMPONENTS` order."""
        _, renormalise, values = self._renormalised(prefix, [self.item_index()[target]])
        return renormalise * values[:, 0]

    def step_probabilities(
        self, sessions: Sequence[Sequence[str]], chunk: int = 100_000
    ) -> tuple[SessionSteps, np.ndarray]:
        """Every step of `sessions` to an item not seen earlier in its session, and
        P(next = that item | the items before it) of each: what `next_probabilities` gives it
        (0 for an item the model does not know), computed for all steps at once, `chunk`
        sessions at a time."""
        check_fitted(self)
        parts = []
        for start in range(0, len(sessions), chunk):
            steps, components, known_before = self._step_values(sessions[start : start + chunk])
            buckets = length_buckets(steps.position, LENGTH_BOUNDS)
            mixed = (self.weights[buckets] * components).sum(axis=1)
            popular = np.where(steps.target >= 0, self.popular[np.maximum(steps.target, 0)], 0.0)
            steps.session = steps.session + start
            parts.append((steps, np.where(known_before, mixed, popular)))
        return _joined(parts)

    def step_component_probabilities(
        self, sessions: Sequence[Sequence[str]]
    ) -> tuple[SessionSteps, np.ndarray]:
        """The steps of `sessions` (as `step_probabilities`) and [steps, components] each
        component's P(next = the step's item | prefix, item unseen), `component_probabilities`
        of every step at once."""
        check_fitted(self)
        steps, components, _ = self._step_values(sessions)
        return steps, components

    def _step_values(self, sessions: Sequence[Sequence[str]]):
        """(steps, [steps, components] renormalised component values at each step's item, and
        whether the step's prefix holds an item the model knows)."""
        index, n_items = self.item_index(), len(self.item_ids)
        local: dict[str, int] = {}  # every SKU a number: the model's code, or n + k if unknown
        lengths = np.fromiter((len(session) for session in sessions), np.int64, len(sessions))
        ids = np.fromiter(
            (
                index[sku] if sku in index else local.setdefault(sku, n_items + len(local))
                for session in sessions
                for sku in session
            ),
            np.int64,
            int(lengths.sum()),
        )
        codes = np.where(ids < n_items, ids, -1)
        session_of = np.repeat(np.arange(len(sessions)), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        position = np.arange(len(ids)) - np.repeat(starts, lengths)
        # The first view of each SKU in its session (flat order is session, then position).
        _, first_at, inverse = np.unique(
            session_of * (n_items + len(local)) + ids, return_index=True, return_inverse=True
        )
        first_view = first_at[inverse] == np.arange(len(ids))
        entries = np.flatnonzero(first_view & (position >= 1))
        # Known items before each view: the running count minus the count at its session's start.
        running = np.concatenate([[0], np.cumsum(codes >= 0)])
        known_before = running[entries] - running[starts[session_of[entries]]] > 0

        def back(distance: int) -> np.ndarray:
            """The code `distance` views before each step's item (-1: none or unknown)."""
            reaches = position[entries] >= distance
            return np.where(reaches, codes[np.where(reaches, entries - distance, 0)], -1)

        sources = {distance: back(distance) for distance in range(1, max(3, self.window) + 1)}
        steps = SessionSteps(session_of[entries], position[entries], codes[entries], sources[1])
        # The distinct known items each step's prefix holds: (step, item) pairs.
        seen_steps, seen_items = [], []
        longest = int(position.max()) if len(position) else 0
        for distance in range(1, longest + 1):
            reaches = position[entries] >= distance
            earlier = entries[reaches] - distance
            kept = first_view[earlier] & (codes[earlier] >= 0)
            seen_steps.append(np.flatnonzero(reaches)[kept])
            seen_items.append(codes[earlier][kept])
        seen_steps = np.concatenate(seen_steps) if seen_steps else np.zeros(0, np.int64)
        seen_items = np.concatenate(seen_items) if seen_items else np.zeros(0, np.int64)

        at_target = self._values_of(sources, np.arange(len(entries)), steps.target)
        seen_values = self._values_of(sources, seen_steps, seen_items)
        seen_mass = np.stack(
            [np.bincount(seen_steps, column, len(entries)) for column in seen_values.T], axis=1
        )
        renormalise = 1.0 / np.maximum(1.0 - seen_mass, 1e-12)
        return steps, renormalise * at_target, known_before

    def _step_lookups(self) -> _StepLookups:
        """The sorted keys `_values_of` searches, built on first use after each count (a model
        that only serves requests never pays for them)."""
        if self._lookups is None:
            pairs_of_context = np.diff(self.pair_start)
            self._lookups = _StepLookups(
                keys={name: _sorted_keys(counts) for name, counts in self.tables.items()},
                triple_keys=np.repeat(self.pair_contexts, pairs_of_context) * len(self.item_ids)
                + self.pair_items,
                context_totals=np.bincount(
                    np.repeat(np.arange(len(self.pair_contexts)), pairs_of_context),
                    self.pair_counts,
                    len(self.pair_contexts),
                ),
            )
        return self._lookups

    def _values_of(self, sources: dict[int, np.ndarray], rows: np.ndarray, items: np.ndarray):
        """[len(rows), components]: each component's value (before renormalising) at item
        `items[r]` (-1: 0 everywhere) for the prefix of step `rows[r]`, whose earlier items are
        `sources[distance][step]`."""
        lookups = self._step_lookups()
        n_items, m = len(self.item_ids), self.pseudo_count
        valid = items >= 0
        item = np.maximum(items, 0)
        popular, recent = self.popular[item], self.recent[item]

        # The (earlier item, item) keys of each distance back, sorted once for every table.
        wanted, order = {}, {}
        for distance in range(1, max(3, self.window) + 1):
            wanted[distance] = np.maximum(sources[distance][rows], 0) * n_items + item
            order[distance] = np.argsort(wanted[distance])

        def conditional(table: str, distance: int) -> np.ndarray:
            source = sources[distance][rows]
            data = self.tables[table].data
            counts = _looked_up(lookups.keys[table], data, wanted[distance], order[distance])
            total = self.totals[table][np.maximum(source, 0)]
            return np.where(source >= 0, (counts + m * popular) / (total + m), popular)

        values = {}
        for name, distance in _STEPS_BACK.items():
            values[name] = conditional(name, distance)
        near_sum, near_count = np.zeros(len(rows)), np.zeros(len(rows))
        for distance in range(1, self.window + 1):
            source = sources[distance][rows]
            near_sum += np.where(source >= 0, conditional("together", distance), 0.0)
            near_count += source >= 0
        values["together"] = np.where(near_count > 0, near_sum / np.maximum(near_count, 1), popular)
        # The ordered pair's counts where training saw it, backing off to `last`.
        before_last, last = sources[2][rows], sources[1][rows]
        context = np.maximum(before_last, 0) * n_items + np.maximum(last, 0)
        context[(before_last < 0) | (last < 0)] = -1
        slot = _looked_up(self.pair_contexts, np.arange(len(self.pair_contexts)) + 1, context) - 1
        slot = slot.astype(np.int64)
        triple = _looked_up(lookups.triple_keys, self.pair_counts, context * n_items + item)
        context_total = np.zeros(len(rows))
        context_total[slot >= 0] = lookups.context_totals[slot[slot >= 0]]
        values["pair"] = np.where(
            slot >= 0, (triple + m * values["last"]) / (context_total + m), values["last"]
        )
        values["popular"], values["recent"] = popular, recent
        stacked = np.stack([values[name] for name in COMPONENTS], axis=1)
        return np.where(valid[:, None], stacked, 0.0)

    def _mixture(self, prefix: Sequence[str]) -> _Component | None:
        """The prefix's P(next = j | prefix, j unseen) as one weighted component (None where the
        prefix holds no known item: popularity), kept for the prefixes asked for again."""
        key = tuple(prefix)
        mixture = self._mixtures.get(key, _UNKNOWN)
        if mixture is _UNKNOWN:
            mixture = None
            if any(sku in self.item_index() for sku in key):
                components, renormalise, _ = self._renormalised(key)
                bucket = length_buckets([len(key)], LENGTH_BOUNDS)[0]
                mixture = _Component.mean(components, self.weights[bucket] * renormalise)
            if len(self._mixtures) >= _MIXTURE_CACHE_LIMIT:
                self._mixtures.clear()
            self._mixtures[key] = mixture
        return mixture

    def next_probabilities(self, prefix: Sequence[str], skus: Sequence[str]) -> np.ndarray:
        """P(next = sku | prefix, sku unseen) of a few SKUs, what `score` gives them, without
        a row over the catalogue (0 for an SKU the model does not know)."""
        check_fitted(self)
        index = self.item_index()
        codes = np.array([index.get(sku, -1) for sku in skus], dtype=np.int64)
        known = codes >= 0
        values = np.zeros(len(skus))
        mixture = self._mixture(prefix)
        if mixture is None:  # nothing known: what everyone views
            values[known] = self.popular[codes[known]]
        else:
            values[known] = mixture.at(codes[known], self.popular, self.recent)
        return values

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """P(next = j | prefix, j unseen) for the unseen items (the seen ones score what their
        components' renormalised values give; the ranking leaves them out). A prefix without a
        known item (the empty one too) scores popularity, exactly the popularity ranking."""
        check_fitted(self)
        scores = np.empty((len(prefixes), len(self.item_ids)))
        for row, prefix in enumerate(prefixes):
            mixture = self._mixture(prefix)
            scores[row] = (
                self.popular if mixture is None else mixture.dense(self.popular, self.recent)
            )
        return scores

    def add_weighted_scores(
        self,
        prefixes: Sequence[Sequence[str]],
        weights: np.ndarray,
        target: np.ndarray,
        columns: np.ndarray,
    ) -> None:
        """target[row, columns] += weights[row] * score(prefixes)[row], `columns` being this
        model's items' columns in `target` (a wider catalogue), without a dense row of scores:
        each row's popularity parts in one product over the catalogue, its count rows added on
        their own columns (what a mixture of several such models needs at 50,000 items)."""
        check_fitted(self)
        basis = np.zeros((2, target.shape[1]))
        basis[0, columns], basis[1, columns] = self.popular, self.recent
        coefficients = np.zeros((len(prefixes), 2))
        for row, (prefix, weight) in enumerate(zip(prefixes, weights, strict=True)):
            if not weight:
                continue
            mixture = self._mixture(prefix)
            if mixture is None:  # nothing known: what everyone views
                coefficients[row, 0] = weight
                continue
            coefficients[row] = weight * mixture.popular, weight * mixture.recent
            for scale, term_columns, counts in mixture.terms:
                target[row, columns[term_columns]] += (weight * scale) * counts
        target += coefficients @ basis

    # --- persistence --------------------------------------------------------------------------

    def _save_state(self, folder: Path) -> None:
        tables = {}
        for component, counts in self.tables.items():
            tables[f"{component}_start"] = counts.indptr.astype(np.int64)
            tables[f"{component}_items"] = counts.indices.astype(np.int32)
            tables[f"{component}_counts"] = counts.data
        save_arrays(
            folder,
            self.item_ids,
            weights=self.weights,
            popular=self.popular,
            recent=self.recent,
            pair_contexts=self.pair_contexts,
            pair_start=self.pair_start,
            pair_items=self.pair_items,
            pair_counts=self.pair_counts,
            **tables,
        )
        settings = {"pseudo_count": self.pseudo_count, "window": self.window}
        (Path(folder) / SETTINGS_FILE).write_text(json.dumps(settings))

    @classmethod
    def _load_state(cls, folder: Path) -> ContextChainsRecommender:
        model = cls(**json.loads((Path(folder) / SETTINGS_FILE).read_text()))
        model.item_ids, arrays = load_arrays(folder)
        n_items = len(model.item_ids)
        for component in _TABLES:
            model.tables[component] = sparse.csr_matrix(
                (
                    arrays.pop(f"{component}_counts"),
                    arrays.pop(f"{component}_items"),
                    arrays.pop(f"{component}_start"),
                ),
                shape=(n_items, n_items),
            )
        for key, value in arrays.items():
            setattr(model, key, value)
        model._index_tables()
        return model
