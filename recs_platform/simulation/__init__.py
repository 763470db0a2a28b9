"""A synthetic shop whose best possible next-product ranking (the oracle) is known exactly.

The generative model, in the order the simulator draws it (all from one seed):

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

Session length (distinct product views) is independent of everything else: 1 + NegativeBinomial
with mean `mean_session_length` (5), capped at `max_session_length` (50), and shorter only when
every product available that day has been viewed.

Oracle. Given a prefix x_1..x_t on day d, the posterior over intents is

    P(z | x) ~ GlobalPop_z(x_1, d) * prod_{s=2..t} P_z(x_s | x_1..x_{s-1}, d),

with each step's exclusion renormalisation, and the next-product distribution is
sum_z P(z | x) P_z(j | x, d). No recommender can rank better in expectation.

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
from recs_platform.simulation.config import FAMILY_NAMES, ShopConfig
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
