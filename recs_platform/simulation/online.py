"""The simulator's online mode: shoppers browse the storefront with the live carousel.

Offline, the simulator writes whole sessions; online, each simulated shopper walks one session
through the shop's pages, one product page at a time, and at each page the carousel is asked
for the session so far. What the shopper does next follows the shop's family exactly as
offline (the session's latent state is drawn from the family's prior, each next product from
the family's step probabilities for that state), so the sessions in the warehouse are the
family's whichever model serves. What the carousel changes is how the shopper gets there:

Click model (position-biased examination). The shopper already wants a next product, drawn
from the family's process. If that product is shown in the carousel at position p, the shopper
notices it with probability `attention / p ** position_decay` and clicks it: the click is the
next product view, carrying the impression's request id and position. Otherwise (not shown,
or not noticed) the shopper reaches it through the shop's other pages: a plain product view.
So P(click at p) = examination(p) * P(next = shown[p]): a carousel earns clicks in proportion
to the next-product probability it puts in its top positions, and the oracle's ranking (the
exact next-product distribution given the prefix, `oracle.py`) earns the most any carousel can
in expectation. Each impression also records the clicks the shown list and the oracle's list
were expected to earn under the session's true state: lower-variance figures than the clicks
drawn, and the oracle's says how many clicks the best possible carousel would earn.

After each product view the shopper adds it to the cart with the shop's `add_to_cart_rate`.
Events are dicts of the raw-event contract (DESIGN.md), without `server_ts` (the collector
stamps it); `send` gets each session's events in order, `recommend` answers one carousel.
Nothing here speaks HTTP or imports Dagster: `http_carousel` and `http_sender` are the adapters
for the live `/recommend` facade and collector.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from recs_platform.simulation.config import ShopConfig
from recs_platform.simulation.generator import session_lengths
from recs_platform.simulation.oracle import Oracle

# Milliseconds between a shopper's page views (a constant: timing is not what this mode studies).
PAGE_GAP_MS = 20_000


@dataclass(frozen=True)
class ClickModel:
    """P(the shopper notices position p, 1-based) = attention / p ** position_decay."""

    attention: float = 0.9
    position_decay: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.attention <= 1:
            raise ValueError(f"attention must be in (0, 1], got {self.attention}")
        if self.position_decay < 0:
            raise ValueError(f"position_decay must be >= 0, got {self.position_decay}")

    def examination(self, k: int) -> np.ndarray:
        return self.attention / np.arange(1, k + 1, dtype=np.float64) ** self.position_decay


@dataclass(frozen=True)
class Carousel:
    """One answer of `/recommend`: what to show, and who chose it."""

    request_id: str
    items: tuple[str, ...]
    model_name: str
    model_version: str | None
    variant: str


Recommend = Callable[[str, Sequence[str], int], Carousel]  # session id, SKUs so far, k
Send = Callable[[list[dict]], None]


@dataclass
class VariantTally:
    """What one variant's carousels earned."""

    sessions: int = 0
    impressions: int = 0
    clicks: int = 0
    add_to_carts_after_click: int = 0
    expected_clicks: float = 0.0  # sum over impressions of P(click | shown list, true state)
    oracle_expected_clicks: float = 0.0  # the same for the oracle's list on the same pages

    def _per_impression(self, clicks: float) -> float:
        return clicks / self.impressions if self.impressions else 0.0

    @property
    def ctr(self) -> float:
        return self._per_impression(self.clicks)

    @property
    def expected_ctr(self) -> float:
        return self._per_impression(self.expected_clicks)

    @property
    def oracle_ctr(self) -> float:
        return self._per_impression(self.oracle_expected_clicks)


@dataclass
class OnlineReport:
    """What the simulator sent, per variant and per event kind: the checksums an end-to-end
    test holds the warehouse to."""

    variants: dict[str, VariantTally] = field(default_factory=lambda: defaultdict(VariantTally))
    events: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    event_ids: list[str] = field(default_factory=list)
    # One per session that saw a carousel: the A/B test's unit (`evaluation.ab_test`).
    session_rows: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "events": dict(self.events),
            "variants": {
                name: {**vars(tally), "ctr": tally.ctr, "expected_ctr": tally.expected_ctr,
                       "oracle_ctr": tally.oracle_ctr}
                for name, tally in self.variants.items()
            },
        }  # fmt: skip


class OnlineShopper:
    """Walks sessions of `config`'s shop on day `day` through a live carousel."""

    def __init__(
        self,
        config: ShopConfig,
        recommend: Recommend,
        send: Send,
        click_model: ClickModel | None = None,
        day: int | None = None,
        k: int = 10,
        seed: int = 0,
        clock_ms: Callable[[], int] | None = None,
    ):
        """`clock_ms`: the wall clock (epoch ms) for live traffic, which a collector checks;
        None: a simulated clock from the start of `day`, `PAGE_GAP_MS` between events."""
        self.config = config
        self.oracle = Oracle(config)
        self.family = self.oracle.family
        self.skus = self.oracle.catalogue.skus
        self.recommend = recommend
        self.send = send
        self.click_model = click_model or ClickModel()
        self.day = config.days - 1 if day is None else day
        self.k = k
        self.rng = np.random.default_rng([config.seed, seed, 0x0DD])
        self.clock_ms = clock_ms
        self.last_ms = int(np.datetime64(config.date_of(self.day), "ms").astype(np.int64))
        self.report = OnlineReport()
        self._index = {sku: index for index, sku in enumerate(self.skus)}

    def browse(self, sessions: int) -> OnlineReport:
        for _ in range(sessions):
            self.browse_one()
        return self.report

    def browse_one(self) -> list[dict]:
        """One shopper's session, sent; returns its events."""
        rng = self.rng
        session_id = f"online-{uuid.UUID(bytes=rng.bytes(16), version=4).hex}"
        state = int(rng.choice(self.family.n_states, p=self.family.state_prior()))
        length = int(session_lengths(self.config, rng, 1)[0])
        examination = self.click_model.examination(self.k)
        history: list[int] = []
        events: list[dict] = []
        came_from: tuple[str, int] | None = None  # (request id, position) of a click
        variant: str | None = None
        seen = {"impressions": 0, "clicks": 0, "add_to_carts": 0}
        rows = self._next_rows(history, state)
        item = _draw(rng, rows) if rows.sum() > 0 else None
        while item is not None:
            history.append(item)
            sku = self.skus[item]
            events.append(self._view(session_id, sku, came_from))
            if rng.random() < self.config.add_to_cart_rate:
                events.append(self._event(session_id, "event_product", "add", sku))
                if came_from is not None:
                    self._tally(variant).add_to_carts_after_click += 1
                    seen["add_to_carts"] += 1
            # The carousel of this product page, then where the shopper goes next (nowhere
            # after the session's last page: no carousel can earn a click there).
            carousel = self.recommend(session_id, [self.skus[i] for i in history], self.k)
            if variant is None:
                variant = carousel.variant
                self._tally(variant).sessions += 1
            rows = self._next_rows(history, state) if len(history) < length else None
            item = _draw(rng, rows) if rows is not None and rows.sum() > 0 else None
            # The catalogue index of each position shown (-1: a SKU the shop does not know).
            shown = [self._index.get(shown_sku, -1) for shown_sku in carousel.items[: self.k]]
            came_from = None
            if shown:
                events.append(self._impression(session_id, sku, carousel))
                tally = self._tally(carousel.variant)
                tally.impressions += 1
                seen["impressions"] += 1
                if item is not None:
                    tally.expected_clicks += _expected_clicks(examination, rows, shown)
                    best = self._oracle_list(history)
                    tally.oracle_expected_clicks += _expected_clicks(examination, rows, best)
                if item in shown:
                    position = shown.index(item) + 1
                    if rng.random() < examination[position - 1]:
                        came_from = (carousel.request_id, position)
                        tally.clicks += 1
                        seen["clicks"] += 1
        self.send(events)
        if seen["impressions"]:
            self.report.session_rows.append({"session_id": session_id, "variant": variant, **seen})
        for event in events:
            self.report.events[_kind(event)] += 1
            self.report.event_ids.append(event["event_id"])
        return events

    def _next_rows(self, history: list[int], state: int) -> np.ndarray:
        """P(next product | history, the session's true state) over the catalogue."""
        past = np.array(history, dtype=np.int64).reshape(1, len(history))
        return self.family.step_probabilities(self.day, past, np.array([state]))[0]

    def _oracle_list(self, history: list[int]) -> list[int]:
        probabilities = self.oracle.next_item_probabilities(history, self.day)
        top = np.argsort(-probabilities, kind="stable")[: self.k]
        return [int(item) for item in top if probabilities[item] > 0]

    def _tally(self, variant: str | None) -> VariantTally:
        return self.report.variants[variant or "unknown"]

    def _event(self, session_id: str, event_type: str, action: str | None, sku: str) -> dict:
        # Strictly increasing, so that a session's events keep their order in the warehouse.
        now = self.clock_ms() if self.clock_ms is not None else self.last_ms + PAGE_GAP_MS
        self.last_ms = max(now, self.last_ms + 1)
        return {
            "event_id": str(uuid.UUID(bytes=self.rng.bytes(16), version=4)),
            "session_id": session_id,
            "user_id": None,
            "event_type": event_type,
            "product_action": action,
            "product_sku": sku,
            "url": f"/p/{sku}",
            "client_ts": self.last_ms,
            "source": "simulator",
        }

    def _view(self, session_id: str, sku: str, came_from: tuple[str, int] | None) -> dict:
        event = self._event(session_id, "event_product", "detail", sku)
        if came_from is not None:
            event["request_id"], event["position"] = came_from
        return event

    def _impression(self, session_id: str, anchor: str, carousel: Carousel) -> dict:
        event = self._event(session_id, "impression", None, anchor)
        event.update(
            request_id=carousel.request_id,
            shown_skus=list(carousel.items),
            model_name=carousel.model_name,
            model_version=carousel.model_version,
            variant=carousel.variant,
        )
        return event


def http_carousel(facade_url: str, timeout_s: float = 5.0) -> Recommend:
    """`recommend` through the live `GET /recommend` facade (the collector's, or the Lambda's
    behind API Gateway), with the session id that keeps a shopper on one variant."""
    import httpx

    client = httpx.Client(base_url=facade_url.rstrip("/"), timeout=timeout_s)

    def recommend(session_id: str, skus: Sequence[str], k: int) -> Carousel:
        params = {"session": ",".join(skus), "k": str(k), "session_id": session_id}
        response = client.get("/recommend", params=params)
        response.raise_for_status()
        answer = response.json()
        model = answer.get("model") or {}
        return Carousel(
            answer["request_id"],
            tuple(answer["items"]),
            str(model.get("name") or "unknown"),
            None if model.get("version") is None else str(model["version"]),
            answer["variant"],
        )

    return recommend


def http_sender(collector_url: str, timeout_s: float = 10.0) -> Send:
    """`send` through the collector's `POST /collect`; a refused event is an error, not a
    silently smaller count."""
    import httpx

    client = httpx.Client(base_url=collector_url.rstrip("/"), timeout=timeout_s)

    def send(events: list[dict]) -> None:
        if not events:
            return
        response = client.post("/collect", json=events)
        response.raise_for_status()
        document = response.json()
        if document.get("rejected"):
            raise RuntimeError(f"the collector rejected simulated events: {document}")

    return send


def _draw(rng: np.random.Generator, probabilities: np.ndarray) -> int:
    cumulative = np.cumsum(probabilities)
    return int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))


def _expected_clicks(examination: np.ndarray, next_rows: np.ndarray, shown: list[int]) -> float:
    """sum over positions p of examination(p) * P(next = shown[p]); unknown SKUs earn none."""
    total = next_rows.sum()
    probabilities = [next_rows[item] / total if item >= 0 else 0.0 for item in shown]
    return float(examination[: len(shown)] @ np.asarray(probabilities, dtype=np.float64))


def _kind(event: dict) -> str:
    if event["event_type"] == "impression":
        return "impression"
    if event.get("request_id") is not None:
        return "click"
    return event["product_action"] or event["event_type"]
