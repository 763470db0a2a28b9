"""Realised statistics of a simulated shop."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when all are equal, towards 1 when one has all."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    total = ordered.sum()
    if ordered.size == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, ordered.size + 1)
    return float(
        2 * (ranks * ordered).sum() / (ordered.size * total) - (ordered.size + 1) / ordered.size
    )


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


@dataclass
class SimulationReport:
    """What a simulation produced. Counts are of distinct events unless they say otherwise."""

    start: dt.date
    days: int
    seed: int
    catalogue_items: int
    sessions: int = 0
    product_views: int = 0  # distinct product views (reload repeats not counted)
    distinct_items_viewed: int = 0
    gini_product_views: float = 0.0  # over the whole catalogue, unviewed items included
    events: int = 0  # lines written, duplicate deliveries included
    pageviews: int = 0
    reloads: int = 0
    adds: int = 0
    removes: int = 0
    purchases: int = 0
    sessions_with_cart: int = 0  # a non-empty cart at the end of the session
    sessions_with_purchase: int = 0
    duplicates: int = 0  # extra deliveries of an event already written
    late_events: int = 0  # events that arrived after the next UTC midnight
    files_written: list[str] = field(default_factory=list)

    @property
    def unique_events(self) -> int:
        return self.events - self.duplicates

    @property
    def mean_session_length(self) -> float:
        return _ratio(self.product_views, self.sessions)

    @property
    def add_per_detail(self) -> float:
        return _ratio(self.adds, self.product_views)

    @property
    def purchase_per_cart_session(self) -> float:
        return _ratio(self.sessions_with_purchase, self.sessions_with_cart)

    @property
    def removes_per_add(self) -> float:
        return _ratio(self.removes, self.adds)

    @property
    def duplicate_rate(self) -> float:
        return _ratio(self.duplicates, self.unique_events)

    @property
    def late_rate(self) -> float:
        return _ratio(self.late_events, self.unique_events)

    def format_table(self) -> str:
        last_day = self.start + dt.timedelta(days=self.days - 1)
        rows = [
            ("window", f"{self.start} .. {last_day} ({self.days} days), seed {self.seed}"),
            ("sessions", f"{self.sessions:,}"),
            ("events written", f"{self.events:,}"),
            ("product views", f"{self.product_views:,}"),
            ("items viewed", f"{self.distinct_items_viewed:,} of {self.catalogue_items:,}"),
            ("gini of product views", f"{self.gini_product_views:.3f}"),
            ("mean session length", f"{self.mean_session_length:.2f} product views"),
            ("page views", f"{self.pageviews:,}"),
            ("adds per product view", f"{self.add_per_detail:.3f}"),
            ("removes per add", f"{self.removes_per_add:.3f}"),
            ("purchase per cart session", f"{self.purchase_per_cart_session:.3f}"),
            ("purchase events", f"{self.purchases:,}"),
            ("reloaded details", f"{self.reloads:,}"),
            ("duplicate rate", f"{self.duplicate_rate:.4f}"),
            ("late rate", f"{self.late_rate:.4f}"),
            ("files written", f"{len(self.files_written)}"),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
