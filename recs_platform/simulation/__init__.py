"""A synthetic shop whose best possible next-product ranking (the oracle) is known exactly.

The shop is a family of shops (`ShopConfig.family`): one catalogue, several generating
processes of the sessions' product sequences, each with its exact oracle. The default family,
`intent`, is described first, in the order the simulator draws it (all from one seed); the
other families follow ("Other families"), then what every family shares (session lengths,
the oracle, the events).

Catalogue. N items (`n_items`) in C categories (`n_categories`). Category sizes follow a Zipf
law (share of the category of rank r ~ r^-a_cat); item base popularity too (base_j ~ r_j^-a_pop
for a random popularity rank r_j). Each item has a style s_j in {0..S-1} and a price level p_j
in {0..P-1}, uniformly at random. About 10% of the items are launched on a day inside the window
and cannot be viewed before it (avail_d(j) = [d >= launch_j]). Popularity drifts slowly:

    log pop_j(d) = log base_j + drift_j * d,    drift_j ~ Normal(0, sd), plus a positive mean
                                                for items launched in the window.

Each item i has K in-category neighbours (drawn without replacement, favouring popular items)
with weights w_ij = base_j^gamma * LogNormal(0, sigma). Each category c has a few related
categories; switching from c goes to c' != c with probability

    Q(c' | c) = rho * Uniform(related(c))(c') + (1 - rho) * catpop(c') / (1 - catpop(c)).

Intent. Each session has a latent intent z = (style, price level), uniform over the S * P pairs.
It tilts every choice of the session towards matching items:

    tilt_z(j) = exp(beta_style * [s_j = z.style] - beta_price * |p_j - z.price|).

One product says little about z (a shopper who wants style 2 still views other styles); the
sequence as a whole reveals it, so history matters beyond the last product.

Next product. After viewing item i of category c, on day d, under intent z:

    M_z(j | i, d) = p_stay * [alpha * Nbr_z(j | i) + (1 - alpha) * CatPop_z(j | c, d)]
                    + (1 - p_stay) * sum_{c' != c} Q(c' | c) * CatPop_z(j | c', d)

    Nbr_z(j | i)       = w_ij tilt_z(j) avail_d(j) / sum over i's neighbours k of the same
    CatPop_z(j | c, d) = pop_j(d) tilt_z(j) avail_d(j) / sum over the items k of c of the same

The first product is drawn from GlobalPop_z(j, d) ~ pop_j(d) tilt_z(j) avail_d(j). A component
with no available product that day (all of i's neighbours not yet launched, a category with
only unlaunched items) drops out and the remaining weights are renormalised; Q is renormalised
over the categories with an available product. A shopper never views a product twice in a
session: the next product is drawn from M restricted to unseen products,

    P(j | prefix) = M_z(j | i, d) [j unseen] / (1 - sum over seen k of M_z(k | i, d)),

which the simulator samples by rejection and the oracle computes in closed form. A session
lives on the day it starts (d), even when its events cross midnight.

Other families. Each has its own structures, drawn from a random stream of its own (the
catalogue stays the same), and a small jump component eps GlobalPop_d(j) with
GlobalPop_d(j) = pop_j(d) / sum_k pop_k(d), so a session can always continue. Nbr_d(j | i) and
CatPop_d(j | c) are the intent family's without the tilt. Unless a family says otherwise, the
first product ~ GlobalPop_d, the next one is drawn from the family's mixture restricted to
unseen products and renormalised, and a component with no available product drops out.
Each family's module (`families/`) has its parameters and why they are plausible.
Every family's mixture is a few sparse or per-category parts, so the generator draws it part by
part (`families/draws.py`: the component, then the category, then the product, seen products
by rejection), never as a row over the whole catalogue; sessions that keep drawing seen
products, or have nothing left, are drawn from the exact rows (`step_probabilities`).

- `ordered` (`families/ordered.py`): each category's products have a hidden order (a random
  permutation: a price or size the logs do not show). After item i (category c, position q),
  with delta the sign of the last step if it moved inside c (else no direction):

      P(j) ~ 0.95 [0.8 Walk(j | i, delta) + 0.2 sum_{c' != c} Q(c' | c) CatPop_d(j | c')]
             + 0.05 GlobalPop_d(j),
      Walk(j | i, delta) ~ 0.5^(|s| - 1) (0.85 if sign(s) = delta else 0.15) pop_j(d)

  over the available products j of c at position q + s, s != 0 (0.5 each way without delta).
- `complements` (`families/complements.py`): 40 % of the categories are accessories; each main
  category has 2 accessory categories, each main item m 5 accessories from them (drawn ~
  popularity; weights a_mj = popularity times LogNormal(0, 0.5)), Acc(j | m) ~ a_mj avail_d(j).
  With the anchor m = the last main item of the prefix: first ~ 0.85 MainPop_d + 0.15
  AccessoryPop_d; after a main item i, 0.55 Acc(j | i) + 0.35 Nbr_d(j | i) + 0.1 GlobalPop_d;
  after an accessory i, 0.5 Acc(j | m) + 0.3 Nbr_d(j | m) + 0.1 CatPop_d(j | cat(i)) + 0.1
  GlobalPop_d, or without an anchor 0.45 CatPop_d(j | cat(i)) + 0.45 ServedPop_d(j | cat(i))
  + 0.1 GlobalPop_d (ServedPop: popularity among the main items of the categories cat(i)
  serves).
- `trends` (`families/trends.py`): 15 % of the items surge once, on day t_j (the launch day for
  an item launched in the window, else uniform over [-3, days)), by A_j ~ LogNormal(log 8,
  0.5), fading with tau = 2 days: pop'_j(d) = pop_j(d) (1 + A_j exp(-(d - t_j) / tau)
  [d >= t_j]). First ~ GlobalPop'_d; after i, 0.5 Nbr'_d(j | i) (weights times the surge
  factor) + 0.3 CatPop'_d(j | cat(i)) + 0.2 GlobalPop'_d(j).
- `revisits` (`families/revisits.py`): with r_1 (the last), r_2, r_3 the last three distinct
  products in the order of their last view: with probability 0.25 (when r_2 exists) a return
  to r_2 (0.6) or r_3 (0.4), renormalised over those that exist; otherwise a new product ~
  0.95 sum_l w_l [0.7 Nbr_d(j | r_l) + 0.3 CatPop_d(j | cat(r_l))] + 0.05 GlobalPop_d(j),
  w = (0.5, 0.3, 0.2) over the r_l that exist, restricted to unseen products and renormalised.
  A product is never viewed twice in a row.
- `mixed` (`families/mixed.py`): each session draws one of the five families above with equal
  shares, then that family's latent state; which one is hidden.

Session length (product views) is independent of everything else: 1 + NegativeBinomial with
mean `mean_session_length` (5), capped at `max_session_length` (50), and shorter only when the
session has nothing left it may view (every product available that day seen, in the families
without returns).

Oracle. A family has latent states s (the intent z; in a mixed shop the pair (family, that
family's state); one state where the prefix tells everything) with a prior P(s). Given a
prefix x_1..x_t on day d, the posterior is

    P(s | x) ~ P(s) * prod_{k=1..t} P_s(x_k | x_1..x_{k-1}, d),

each step's probability the one the generator drew it with (exclusion renormalisation
included), and the next-product distribution is sum_s P(s | x) P_s(j | x, d), restricted to
the products not in the prefix and renormalised: what a recommender ranks, as none may show a
seen product. No recommender can rank better in expectation.

Events. Around each product view (an `event_product`/`detail` event at `/p/<sku>`) the simulator
adds plain page views (home, category and search pages) before it, a reload (the same detail
again at once, new event_id; the warehouse removes such consecutive repeats), an add to cart
shortly after (`add_to_cart_rate` per view), a later remove of some added items, and at session
end a purchase of the remaining cart with probability `purchase_rate` (one purchase event per
item). Sessions start on a weekly profile (`sessions_per_day` on average) and an hour-of-day
profile; gaps between events are lognormal (median 30 s). A share of sessions carries a
returning shopper's user_id. Delivery is imperfect on purpose: `duplicate_rate` of events are
written twice (same event_id, second copy a little later) and `late_rate` arrive after the next
UTC midnight, landing in the next day's folder.
"""

from recs_platform.simulation.catalogue import Catalogue, build_catalogue
from recs_platform.simulation.config import FAMILY_NAMES, PRESETS, ShopConfig
from recs_platform.simulation.families import FAMILY_SUMMARIES, ShopFamily, build_family
from recs_platform.simulation.generator import (
    SHOP_CONFIG_FILE,
    Intent,
    SimulatedDay,
    SimulatedSession,
    simulate_days,
    simulate_sessions,
    simulate_to_landing,
)
from recs_platform.simulation.oracle import Oracle, OracleRanker
from recs_platform.simulation.stats import SimulationReport, gini

__all__ = [
    "FAMILY_NAMES",
    "FAMILY_SUMMARIES",
    "PRESETS",
    "SHOP_CONFIG_FILE",
    "Catalogue",
    "Intent",
    "Oracle",
    "OracleRanker",
    "ShopConfig",
    "ShopFamily",
    "SimulatedDay",
    "SimulatedSession",
    "SimulationReport",
    "build_catalogue",
    "build_family",
    "gini",
    "simulate_days",
    "simulate_sessions",
    "simulate_to_landing",
]
