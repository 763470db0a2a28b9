"""Simulated sessions, and the raw events they produce written to the landing zone."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from recs_platform.events.landing import LandingWriter
from recs_platform.simulation.catalogue import (
    EVENT_STREAM,
    SEQUENCE_STREAM,
    Catalogue,
    build_catalogue,
    stream_rng,
)
from recs_platform.simulation.config import ShopConfig
from recs_platform.simulation.dynamics import ShopDay
from recs_platform.simulation.families import ShopFamily, build_family
from recs_platform.simulation.sampler import DaySampler, sample_views, sample_views_sparse
from recs_platform.simulation.stats import SimulationReport, gini

SOURCE = "simulator"
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MAX_GAP_MS = 20 * 60_000  # well inside the 30 min inactivity rule that ends a session
MAX_PAGEVIEWS_BEFORE = 6
WRITE_BATCH_LINES = 50_000
ENCODE_BLOCK_EVENTS = 100_000
EPOCH = dt.date(1970, 1, 1)

# Event kinds while rendering; RELOAD is a detail sent again, CHECKOUT a page view.
PAGEVIEW, DETAIL, RELOAD, ADD, REMOVE, PURCHASE, CHECKOUT = range(7)
_TYPE_AND_ACTION = {
    PAGEVIEW: ("pageview", None),
    CHECKOUT: ("pageview", None),
    DETAIL: ("event_product", "detail"),
    RELOAD: ("event_product", "detail"),
    ADD: ("event_product", "add"),
    REMOVE: ("event_product", "remove"),
    PURCHASE: ("event_product", "purchase"),
}


@dataclass(frozen=True)
class Intent:
    style: int
    price_level: int


@dataclass(frozen=True)
class SimulatedSession:
    """One session's product views in order (never the same product twice in a row) and its
    latent state: the family's state index, and the intent in the intent family (else None)."""

    session_id: str
    day: int
    date: dt.date
    intent: Intent | None
    items: tuple[int, ...]
    skus: tuple[str, ...]
    state: int = 0


@dataclass(frozen=True)
class SimulatedDay:
    """The sessions starting on one day, as arrays: session s viewed
    `items[offsets[s]:offsets[s + 1]]` in the latent state `states[s]` of the shop's family (in
    the intent family its intent index, style * n_price_levels + price level)."""

    day: int
    date: dt.date
    session_ids: list[str]
    states: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    family: str = "intent"

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def intents(self) -> np.ndarray | None:
        """Each session's intent index in the intent family; None in the others."""
        return self.states if self.family == "intent" else None


def _epoch_ms(day: dt.date) -> int:
    return (day - EPOCH).days * DAY_MS


def session_lengths(config: ShopConfig, rng: np.random.Generator, count: int) -> np.ndarray:
    """1 + NegativeBinomial(r, p) with mean `mean_session_length`, capped."""
    shape = config.session_length_dispersion
    success = shape / (shape + config.mean_session_length - 1)
    lengths = 1 + rng.negative_binomial(shape, success, size=count)
    return np.minimum(lengths, config.max_session_length)


def simulate_day(
    config: ShopConfig, catalogue: Catalogue, day: int, family: ShopFamily | None = None
) -> SimulatedDay:
    """The sessions starting on day `day`; `family` is `config.family` on `catalogue` (built
    here when not given)."""
    rng = stream_rng(config, SEQUENCE_STREAM, day)
    count = config.sessions_on(day)
    if config.family == "intent":
        states, views, lengths = _intent_views(config, catalogue, day, rng, count)
    else:
        family = family if family is not None else build_family(config, catalogue)
        states = rng.choice(family.n_states, size=count, p=family.state_prior())
        lengths = session_lengths(config, rng, count)
        sampler = family.sampler(day)
        if sampler is None:
            views = sample_views(family, day, rng, states, lengths)
        else:
            views = sample_views_sparse(family, sampler, day, rng, states, lengths)
        lengths = (views >= 0).sum(axis=1)
    date = config.date_of(day)
    prefix = f"s{config.seed}-{date:%Y%m%d}-"
    return SimulatedDay(
        day=day,
        date=date,
        session_ids=[f"{prefix}{index:06d}" for index in range(count)],
        states=states,
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        items=views[np.arange(views.shape[1])[None, :] < lengths[:, None]],
        family=config.family,
    )


def _intent_views(
    config: ShopConfig, catalogue: Catalogue, day: int, rng: np.random.Generator, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(intents, views [count, longest], lengths) of the intent family's sessions, drawn by
    the rejection sampler (faster than the generic one, and the draws the shop always had)."""
    shop_day = ShopDay(config, catalogue, day)
    sampler = DaySampler(shop_day)
    intents = rng.integers(config.n_intents, size=count)
    # A session also ends once it has seen every product available that day.
    lengths = np.minimum(session_lengths(config, rng, count), int(shop_day.available.sum()))
    longest = int(lengths.max()) if count else 0
    views = np.full((count, longest), -1, dtype=np.int64)
    if count:
        views[:, 0] = sampler.first(rng, intents)
    for position in range(1, longest):
        active = np.flatnonzero(lengths > position)
        views[active, position] = sampler.next(
            rng, views[active, position - 1], intents[active], views[active, :position]
        )
    return intents, views, lengths


def simulate_days(config: ShopConfig, catalogue: Catalogue | None = None) -> Iterator[SimulatedDay]:
    """The sessions of each day in turn; the same ones `simulate_to_landing` writes."""
    catalogue = catalogue if catalogue is not None else build_catalogue(config)
    family = build_family(config, catalogue)
    for day in range(config.days):
        yield simulate_day(config, catalogue, day, family)


def simulate_sessions(config: ShopConfig) -> list[SimulatedSession]:
    catalogue = build_catalogue(config)
    sessions = []
    for simulated in simulate_days(config, catalogue):
        for index, session_id in enumerate(simulated.session_ids):
            items = simulated.items[simulated.offsets[index] : simulated.offsets[index + 1]]
            state = int(simulated.states[index])
            intent = None
            if simulated.intents is not None:
                intent = Intent(*divmod(state, config.n_price_levels))
            sessions.append(
                SimulatedSession(
                    session_id=session_id,
                    day=simulated.day,
                    date=simulated.date,
                    intent=intent,
                    items=tuple(items.tolist()),
                    skus=tuple(catalogue.skus[item] for item in items),
                    state=state,
                )
            )
    return sessions


class _EventRenderer:
    """Turns a day's product views into raw-event lines, with the funnel and delivery quirks."""

    def __init__(self, config: ShopConfig, catalogue: Catalogue):
        self.config = config
        self.catalogue = catalogue
        self.hour_share = np.asarray(config.hour_profile, dtype=np.float64)
        self.hour_share /= self.hour_share.sum()
        self.product_urls = [f"/p/{sku}" for sku in catalogue.skus]
        self.category_urls = [f"/c/{name}" for name in catalogue.category_names]
        self.search_urls = [f"/search?q={name}" for name in catalogue.category_names]
        width = len(str(config.n_returning_shoppers - 1))
        self.user_ids = [f"user-{index:0{width}d}" for index in range(config.n_returning_shoppers)]

    def render(
        self, simulated: SimulatedDay, report: SimulationReport
    ) -> tuple[np.ndarray, list[bytes]]:
        """Encoded lines of the day's sessions and the server_ts of each line."""
        config = self.config
        rng = stream_rng(config, EVENT_STREAM, simulated.day)
        n_sessions = len(simulated.session_ids)
        lengths = simulated.lengths
        n_views = len(simulated.items)
        view_session = np.repeat(np.arange(n_sessions), lengths)
        view_position = np.arange(n_views) - np.repeat(simulated.offsets[:-1], lengths)

        start_ms = (
            _epoch_ms(simulated.date)
            + rng.choice(24, size=n_sessions, p=self.hour_share) * HOUR_MS
            + rng.integers(0, HOUR_MS, size=n_sessions)
        )
        returning = rng.random(n_sessions) < config.returning_shopper_share
        shopper = rng.integers(config.n_returning_shoppers, size=n_sessions)

        pageviews_before = np.minimum(
            rng.poisson(config.pageviews_per_product_view, size=n_views), MAX_PAGEVIEWS_BEFORE
        )
        reload = rng.random(n_views) < config.reload_rate
        add = rng.random(n_views) < config.add_to_cart_rate
        remove = add & (rng.random(n_views) < config.remove_rate)
        in_cart = add & ~remove
        has_cart = np.bincount(view_session, weights=in_cart, minlength=n_sessions) > 0
        purchase = has_cart & (rng.random(n_sessions) < config.purchase_rate)
        bought = in_cart & purchase[view_session]

        session, kind, item = _session_events(
            simulated, view_session, view_position, pageviews_before, reload, add, remove, bought
        )
        client_ts = _client_times(config, rng, start_ms, session, kind)
        n_events = len(kind)

        delay = rng.lognormal(math.log(config.network_delay_median_ms), 0.6, n_events)
        server_ts = client_ts + np.maximum(delay, 1).astype(np.int64)
        late = rng.random(n_events) < config.late_rate
        late_by = rng.integers(1, int(config.late_max_hours * HOUR_MS), size=n_events)
        server_ts = np.where(late, (client_ts // DAY_MS + 1) * DAY_MS + late_by, server_ts)
        duplicate = np.flatnonzero(rng.random(n_events) < config.duplicate_rate)
        duplicate_ts = server_ts[duplicate] + rng.integers(200, 120_000, size=len(duplicate))
        event_id_bytes = rng.bytes(16 * n_events)
        url_choice = rng.random(n_events)

        # Python objects for a block of events at a time: a day of a large shop is millions.
        shopper, returning = shopper.tolist(), returning.tolist()
        lines, duplicate_lines = [], []
        for start in range(0, n_events, ENCODE_BLOCK_EVENTS):
            block = slice(start, start + ENCODE_BLOCK_EVENTS)
            in_block = (duplicate >= start) & (duplicate < start + ENCODE_BLOCK_EVENTS)
            block_session = session[block].tolist()
            originals, copies = self._encode(
                _uuid4_strings(event_id_bytes[16 * start : 16 * (start + ENCODE_BLOCK_EVENTS)]),
                [simulated.session_ids[index] for index in block_session],
                [
                    self.user_ids[shopper[index]] if returning[index] else None
                    for index in block_session
                ],
                kind[block].tolist(),
                item[block].tolist(),
                url_choice[block].tolist(),
                client_ts[block].tolist(),
                server_ts[block].tolist(),
                (duplicate[in_block] - start).tolist(),
                duplicate_ts[in_block].tolist(),
            )
            lines += originals
            duplicate_lines += copies
        lines += duplicate_lines

        report.sessions += n_sessions
        report.product_views += n_views
        report.events += len(lines)
        report.duplicates += len(duplicate)
        report.late_events += int(late.sum())
        report.pageviews += int(((kind == PAGEVIEW) | (kind == CHECKOUT)).sum())
        report.reloads += int((kind == RELOAD).sum())
        report.adds += int(add.sum())
        report.removes += int(remove.sum())
        report.purchases += int(bought.sum())
        report.sessions_with_cart += int(has_cart.sum())
        report.sessions_with_purchase += int(purchase.sum())
        return np.concatenate([server_ts, duplicate_ts]), lines

    def _encode(
        self,
        event_ids,
        session_ids,
        user_ids,
        kinds,
        items,
        url_choices,
        client_ts,
        server_ts,
        duplicates,
        duplicate_ts,
    ) -> tuple[list[bytes], list[bytes]]:
        """The lines of a block of events, and of the second deliveries of `duplicates` (indices
        into the block)."""
        skus, category = self.catalogue.skus, self.catalogue.category.tolist()
        urls, product_skus = [], []
        for kind, item, choice in zip(kinds, items, url_choices, strict=True):
            # A page view's item is the product viewed next: its category picks the page.
            if kind == CHECKOUT:
                urls.append("/checkout")
            elif kind != PAGEVIEW:
                urls.append(self.product_urls[item])
            elif choice < 0.2:
                urls.append("/")
            elif choice < 0.7:
                urls.append(self.category_urls[category[item]])
            else:
                urls.append(self.search_urls[category[item]])
            product_skus.append(None if kind in (PAGEVIEW, CHECKOUT) else skus[item])
        events = [
            {
                "event_id": event_id,
                "session_id": session_id,
                "user_id": user_id,
                "event_type": _TYPE_AND_ACTION[kind][0],
                "product_action": _TYPE_AND_ACTION[kind][1],
                "product_sku": sku,
                "url": url,
                "client_ts": client,
                "server_ts": server,
                "source": SOURCE,
            }
            for event_id, session_id, user_id, kind, sku, url, client, server in zip(
                event_ids,
                session_ids,
                user_ids,
                kinds,
                product_skus,
                urls,
                client_ts,
                server_ts,
                strict=True,
            )
        ]
        # orjson's bytes keep its whole write buffer (4 KB a line with orjson 3.13: gigabytes for
        # a large day, benchmarks/README.md, simulator); adding the newline makes a copy of the
        # line's size.
        dumps = orjson.dumps
        lines = [dumps(event) + b"\n" for event in events]
        copies = [
            dumps({**events[index], "server_ts": arrived}) + b"\n"
            for index, arrived in zip(duplicates, duplicate_ts, strict=True)
        ]
        return lines, copies


def _session_events(
    simulated: SimulatedDay,
    view_session: np.ndarray,
    view_position: np.ndarray,
    pageviews_before: np.ndarray,
    reload: np.ndarray,
    add: np.ndarray,
    remove: np.ndarray,
    bought: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(session, kind, item) of every event, sessions in order, each session's in time order.

    Around each product view: page views, the detail, maybe its reload, maybe an add. At the
    end of the session: removes, then the checkout page and one purchase per item in the cart.
    A page view's item is the product viewed next (its category picks the page).
    """
    per_view = pageviews_before + 1 + reload + add
    event_view = np.repeat(np.arange(len(per_view)), per_view)
    within = np.arange(len(event_view)) - np.repeat(np.cumsum(per_view) - per_view, per_view)
    before = pageviews_before[event_view]
    view_kind = np.where(
        within < before,
        PAGEVIEW,
        np.where(
            within == before,
            DETAIL,
            np.where(reload[event_view] & (within == before + 1), RELOAD, ADD),
        ),
    )
    removed, purchased = np.flatnonzero(remove), np.flatnonzero(bought)
    checkout = np.unique(view_session[purchased])
    end = int(view_position.max(initial=0)) + 1  # after every product view
    session = np.concatenate(
        [view_session[event_view], view_session[removed], checkout, view_session[purchased]]
    )
    major = np.concatenate(
        [view_position[event_view], np.full(len(removed) + len(checkout) + len(purchased), end)]
    )
    minor = np.concatenate(
        [
            within,
            view_position[removed],
            np.full(len(checkout), end),
            end + 1 + view_position[purchased],
        ]
    )
    kind = np.concatenate(
        [
            view_kind,
            np.full(len(removed), REMOVE),
            np.full(len(checkout), CHECKOUT),
            np.full(len(purchased), PURCHASE),
        ]
    )
    item = np.concatenate(
        [
            simulated.items[event_view],
            simulated.items[removed],
            np.full(len(checkout), -1),
            simulated.items[purchased],
        ]
    )
    order = np.lexsort((minor, major, session))
    return session[order], kind[order], item[order]


def _client_times(
    config: ShopConfig,
    rng: np.random.Generator,
    start_ms: np.ndarray,
    session: np.ndarray,
    kind: np.ndarray,
) -> np.ndarray:
    """When each event happened: the session's start plus lognormal gaps, shorter for an add
    after its detail, a reload and the purchases of one checkout."""
    count = len(kind)
    gap = rng.lognormal(math.log(config.gap_median_seconds * 1000), config.gap_sigma, count)
    gap = np.where(kind == ADD, rng.lognormal(math.log(8000), 0.5, count), gap)
    gap = np.where(kind == RELOAD, rng.uniform(500, 5000, count), gap)
    gap = np.where(kind == PURCHASE, rng.uniform(50, 500, count), gap)
    gap = np.clip(gap, 1, MAX_GAP_MS).astype(np.int64)
    first = np.ones(count, dtype=bool)
    first[1:] = session[1:] != session[:-1]
    gap[first] = 0
    elapsed = np.cumsum(gap)
    return start_ms[session] + elapsed - elapsed[np.flatnonzero(first)][session]


def _uuid4_strings(random_bytes: bytes) -> list[str]:
    """Random (version 4) UUIDs from 16 bytes each of the seeded generator, so runs repeat."""
    count = len(random_bytes) // 16
    raw = np.frombuffer(random_bytes, dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    text = raw.tobytes().hex()
    return [
        f"{text[at : at + 8]}-{text[at + 8 : at + 12]}-{text[at + 12 : at + 16]}-"
        f"{text[at + 16 : at + 20]}-{text[at + 20 : at + 32]}"
        for at in range(0, 32 * count, 32)
    ]


class _ArrivalBuffer:
    """Holds lines until their arrival day is complete, then writes them in server_ts order.

    Sessions crossing midnight and late events arrive on a later day than the one simulated,
    so a day's file is only written once no earlier-simulated day can add to it.
    """

    def __init__(self, writer: LandingWriter):
        self.writer = writer
        self.pending: dict[int, list[tuple[np.ndarray, list[bytes]]]] = defaultdict(list)

    def add(self, server_ts: np.ndarray, lines: list[bytes]) -> None:
        order = np.argsort(server_ts, kind="stable")
        arrival_day = server_ts[order] // DAY_MS
        boundaries = np.flatnonzero(np.diff(arrival_day)) + 1
        for chunk in np.split(order, boundaries):
            if chunk.size:
                day = int(server_ts[chunk[0]] // DAY_MS)
                self.pending[day].append((server_ts[chunk], [lines[index] for index in chunk]))

    def flush_through(self, last_day: int) -> None:
        for day in sorted(day for day in self.pending if day <= last_day):
            chunks = self.pending.pop(day)
            server_ts = np.concatenate([chunk_ts for chunk_ts, _ in chunks])
            lines = [line for _, chunk_lines in chunks for line in chunk_lines]
            order = np.argsort(server_ts, kind="stable").tolist()
            date = EPOCH + dt.timedelta(days=day)
            for at in range(0, len(order), WRITE_BATCH_LINES):
                batch = order[at : at + WRITE_BATCH_LINES]
                self.writer.write_encoded(date, b"".join(lines[i] for i in batch), len(batch))

    def flush_all(self) -> None:
        if self.pending:
            self.flush_through(max(self.pending))


SHOP_CONFIG_FILE = "simulator/shop.json"


def simulate_to_landing(config: ShopConfig, landing_root: Path) -> SimulationReport:
    """Simulate the shop and write its raw events to `landing_root/events/date=.../`.

    The configuration goes to `landing_root/simulator/shop.json`, so the oracle of this shop can
    be evaluated downstream on the same targets as the models.
    """
    catalogue = build_catalogue(config)
    renderer = _EventRenderer(config, catalogue)
    report = SimulationReport(
        start=config.start, days=config.days, seed=config.seed, catalogue_items=catalogue.n_items
    )
    view_counts = np.zeros(catalogue.n_items, dtype=np.int64)
    writer = LandingWriter(
        Path(landing_root), SOURCE, file_stem=f"seed{config.seed}", skip_existing=False
    )
    with writer:
        buffer = _ArrivalBuffer(writer)
        for simulated in simulate_days(config, catalogue):
            view_counts += np.bincount(simulated.items, minlength=catalogue.n_items)
            buffer.add(*renderer.render(simulated, report))
            buffer.flush_through((simulated.date - EPOCH).days)
        buffer.flush_all()
    report.files_written = list(writer.summary.files_written)
    shop_path = Path(landing_root) / SHOP_CONFIG_FILE
    shop_path.parent.mkdir(parents=True, exist_ok=True)
    shop_path.write_text(config.to_json())
    report.distinct_items_viewed = int((view_counts > 0).sum())
    report.gini_product_views = gini(view_counts)
    return report
