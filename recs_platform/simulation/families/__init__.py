"""The shop families: documented generating processes, each with an exact oracle.

Every family is a `ShopFamily`: a prior over a session's latent states and
`step_probabilities(day, history, states)`, the distribution of the next product given the
products so far. The generator samples those rows and the oracle mixes the same rows over the
posterior of the states, so what is sampled is exactly what is computed. `ShopConfig.family`
picks one (`FAMILY_NAMES`); the package docstring of `recs_platform.simulation` has each
process's formulas.
"""

from __future__ import annotations

from recs_platform.simulation.catalogue import Catalogue
from recs_platform.simulation.config import FAMILY_NAMES, ShopConfig
from recs_platform.simulation.families.base import ShopFamily
from recs_platform.simulation.families.complements import ComplementsFamily
from recs_platform.simulation.families.intent import IntentFamily
from recs_platform.simulation.families.mixed import MixedFamily
from recs_platform.simulation.families.ordered import OrderedFamily
from recs_platform.simulation.families.revisits import RevisitsFamily
from recs_platform.simulation.families.trends import TrendsFamily

# The families a mixed shop draws from, with equal shares.
SINGLE_FAMILIES: dict[str, type[ShopFamily]] = {
    family.name: family
    for family in (IntentFamily, OrderedFamily, ComplementsFamily, TrendsFamily, RevisitsFamily)
}

# One line per family, for the command line's help.
FAMILY_SUMMARIES = {
    "intent": "a hidden (style, price level) per session tilts every choice (the default)",
    "ordered": "browsing along a hidden order of each category, keeping the direction",
    "complements": "main products lead to their accessories, accessories back to the anchor",
    "trends": "products surge during the window and fade: recent evidence matters",
    "revisits": "comparison shopping: returns to products seen a few steps earlier",
    "mixed": "each session follows one of the five families above, which one is hidden",
}


def build_family(config: ShopConfig, catalogue: Catalogue) -> ShopFamily:
    """The family `config.family` of the shop on `catalogue` (built from the same config)."""
    if config.family == MixedFamily.name:
        members = [family(config, catalogue) for family in SINGLE_FAMILIES.values()]
        return MixedFamily(config, catalogue, members)
    return SINGLE_FAMILIES[config.family](config, catalogue)


__all__ = [
    "FAMILY_NAMES",
    "FAMILY_SUMMARIES",
    "SINGLE_FAMILIES",
    "ComplementsFamily",
    "IntentFamily",
    "MixedFamily",
    "OrderedFamily",
    "RevisitsFamily",
    "ShopFamily",
    "TrendsFamily",
    "build_family",
]
