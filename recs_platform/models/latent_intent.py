"""A mixture of K intent-tilted Markov chains, with the session's intent inferred exactly.

Each session has one hidden intent z out of `intents` (learned, unlabelled). Under intent z

    P(first = j | z)        = softmax_j(c_j + theta[z, j])
    P(next = j | last i, z) = softmax_j(T[i, j] + B[cluster(i), j] + theta[z, j])
                              over the items not yet seen in the session (`exclude_seen`)

with T the learned first-order term over the item pairs seen in training (see `transitions`),
B a background logit of j after any item of i's cluster, c first-item biases and theta[z, j]
how much intent z favours item j (`intent_rank` factors theta = U V^T; None: theta free). The
clusters are k-means on a spectral embedding of the training transitions (`item_clusters`):
items that follow each other, a shop's categories. They give a rare item's unseen successors
its category's share instead of the catalogue's popularity.

The posterior over z after a prefix is Bayes' rule over the prefix's likelihood under each
intent (a forward pass, exact, no encoder to learn), and the next-item distribution is the
posterior-weighted mixture of the K chains. Training maximises the sessions' exact marginal
likelihood log sum_z P(z) P(x_1 | z) prod_t P(x_t | x_1..x_{t-1}, z) with Adam. The
log-normaliser of a chain after item i is one [clusters, K] table shared by the batch
(exp(B) @ exp(theta)^T), plus a correction over i's observed successors, minus the items
already seen: an epoch costs little more than counting the pairs.

Leaving the seen items out matches sessions that do not revisit a product (the evaluation
never recommends a seen item either): a return i -> j -> i is then not evidence against T[j, i],
and what the seen items say about the intent is weighed exactly. A target seen before is kept in
its step's normaliser, so sessions with revisits still have a finite likelihood.

With `members` > 1 the recommender trains that many such networks side by side, each from its
own seed (its initialisation, its clusters, its order of the batches), and scores by the average
of their next-item distributions: the intents and clusters a single run finds vary from seed to
seed, and the average is steadier than any one of them (benchmarks/README.md).

Initialisation: with theta = 0 every chain is the smoothed Markov chain
P(j | i) = (1 - s_i) count(i, j) / count(i) + s_i P(j | cluster(i)), P(j | c) the transitions
out of c's items with popularity-shaped pseudo-counts. The back-off's weight is Dirichlet's,
s_i = m / (count(i) + m) with m = `pseudo_count` (an item seen often trusts its own counts
more), or the constant `smoothing` where `pseudo_count` is None. theta starts small and random
so the intents can separate. Defaults (32 intents of rank 8, 40 clusters, pseudo-count 1000,
8 epochs) were chosen on the last training day of the default and mid shops; see
benchmarks/README.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg
from torch import nn

from recs_platform.models.torch_common import (
    ProgressLogger,
    TorchSessionRecommender,
    hyperparameters_of,
    pad_right,
)
from recs_platform.models.transitions import (
    SparseTransitions,
    strongest_successors,
    transition_counts,
)


class LatentIntentNetwork(nn.Module):
    def __init__(
        self,
        n_items: int,
        intents: int,
        intent_rank: int | None,
        init_scale: float,
        sessions: list[np.ndarray] | None = None,
        smoothing: float = 0.1,
        seed: int = 0,
        exclude_seen: bool = True,
        clusters: int = 1,
        pseudo_count: float | None = None,
        max_successors: int | None = None,
    ):
        super().__init__()
        self.n_items = n_items
        self.exclude_seen = exclude_seen
        generator = torch.Generator().manual_seed(seed)
        if intent_rank is None:
            self.theta_free = nn.Parameter(
                init_scale * torch.randn(intents, n_items, generator=generator)
            )
        else:
            scale = (init_scale / intent_rank**0.5) ** 0.5
            self.intent_factors = nn.Parameter(
                scale * torch.randn(intents, intent_rank, generator=generator)
            )
            self.item_factors = nn.Parameter(
                scale * torch.randn(n_items, intent_rank, generator=generator)
            )
        self.intent_rank = intent_rank
        self.prior = nn.Parameter(torch.zeros(intents))
        # A catalogue smaller than `clusters` gets a cluster per item at most.
        clusters = min(clusters, n_items)
        chain = _initial_chain(
            n_items, sessions, clusters, seed, smoothing, pseudo_count, max_successors
        )
        cluster_of, background, first_bias, transitions = chain
        self.register_buffer("cluster_of", cluster_of)
        self.background = nn.Parameter(background)
        self.first_bias = nn.Parameter(first_bias)
        self.transitions = transitions
        # What scoring keeps of the catalogue-wide terms, with the parameters' state they came
        # from (see _catalogue_terms); never saved.
        self._scoring_terms: tuple | None = None

    def theta(self) -> torch.Tensor:
        """[K, n_items]: how much each intent favours each item (log scale)."""
        if self.intent_rank is None:
            return self.theta_free
        return self.intent_factors @ self.item_factors.T

    def _catalogue_terms(self):
        """theta, the chain terms and the first items' log-normaliser per intent: what every
        prefix shares, over the whole catalogue.

        Scoring (no gradient) computes them once per change of the parameters and keeps them:
        with a large catalogue, computed per request they would be most of its time
        (benchmarks/README.md, serving).
        """
        if torch.is_grad_enabled():
            theta = self.theta()
            return theta, self._chain_terms(theta), None
        state = tuple((parameter.data_ptr(), parameter._version) for parameter in self.parameters())
        if self._scoring_terms is None or self._scoring_terms[0] != state:
            theta = self.theta()
            terms = (theta, self._chain_terms(theta), self._first_log_normaliser(theta))
            self._scoring_terms = (state, terms)
        return self._scoring_terms[1]

    def _chain_terms(self, theta: torch.Tensor):
        """exp(B - B_shift) [C, N], exp(theta - theta_shift) [K, N], totals [C, K], the shift.

        B[c, j] is the background logit of j after any item of cluster c; without T every
        chain is P(j | i, z) = exp(B[c(i), j] + theta[z, j]) / totals[c(i), z].
        """
        background_shift = self.background.detach().max()
        theta_shift = theta.detach().max()
        background = torch.exp(self.background - background_shift)
        tilt = torch.exp(theta - theta_shift)
        return background, tilt, background @ tilt.T, background_shift + theta_shift

    def _entry_logits(self, theta, shift, sources, columns, pair=None) -> torch.Tensor:
        """T[source, j] + B[c(source), j] + theta[z, j] - shift per entry: [entries, K].

        T is left out (0) unless `pair` holds its weights.
        """
        logits = self.background[self.cluster_of[sources], columns][:, None] + theta[:, columns].T
        if pair is not None:
            logits = logits + pair[:, None]
        return logits - shift

    def _log_normalisers(self, theta, terms, last, excluded=None) -> torch.Tensor:
        """log sum_j exp(T[last, j] + B[c(last), j] + theta[z, j] - shift): [len(last), K].

        `excluded` (rows, codes): items left out of row `rows[e]`'s sum (seen earlier).
        """
        _, _, totals, shift = terms
        totals = totals[self.cluster_of[last]]
        rows, columns, t = self.transitions.gather(last)
        correction = torch.exp(self._entry_logits(theta, shift, last[rows], columns))
        correction = correction * torch.expm1(t)[:, None]
        totals = totals.index_add(0, rows, correction)
        if excluded is not None and len(excluded[0]):
            rows, codes = excluded
            columns = codes - 1
            pair = self.transitions.pair_weights(last[rows], columns)
            seen = torch.exp(self._entry_logits(theta, shift, last[rows], columns, pair))
            totals = totals.index_add(0, rows, -seen)
        return torch.log(totals.clamp_min(1e-30))

    def step_log_likelihoods(self, theta, terms, previous, target, excluded=None):
        """log P(target | previous, z) for every pair (codes) and every intent: [pairs, K]."""
        columns = target - 1
        pair = self.transitions.pair_weights(previous, columns)
        numerator = self._entry_logits(theta, terms[3], previous, columns, pair)
        return numerator - self._log_normalisers(theta, terms, previous, excluded)

    def _first_log_normaliser(self, theta) -> torch.Tensor:
        """log sum_j exp(c_j + theta[z, j]) per intent: [K, 1]."""
        return torch.logsumexp(self.first_bias[None, :] + theta, dim=1, keepdim=True)

    def first_log_likelihoods(self, theta, first: torch.Tensor, log_normaliser=None):
        """log P(first item | z) + log P(z): [sessions, K].

        With `log_normaliser` (kept by scoring) only the first items' columns are computed; the
        values are the same.
        """
        if log_normaliser is None:
            logits = self.first_bias[None, :] + theta
            log_first = logits - torch.logsumexp(logits, dim=1, keepdim=True)
            log_first = log_first[:, first - 1]
        else:
            columns = first - 1
            log_first = (self.first_bias[columns][None, :] + theta[:, columns]) - log_normaliser
        return log_first.T + torch.log_softmax(self.prior, dim=0)[None, :]

    def session_log_likelihoods(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log P(x_1..x_n) of each right-padded session, the intent summed out: [batch]."""
        return torch.logsumexp(self.session_log_joint(padded, lengths), dim=1)

    def session_log_joint(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log P(z, x_1..x_n) for each right-padded prefix and intent: [batch, K]."""
        return self._log_joint(*self._catalogue_terms(), padded, lengths)

    def _log_joint(self, theta, terms, first_normaliser, padded, lengths) -> torch.Tensor:
        joint = self.first_log_likelihoods(theta, padded[:, 0], first_normaliser)
        lengths = lengths.to(padded.device)
        positions = torch.arange(padded.shape[1], device=padded.device)
        inside = (positions[None, :] >= 1) & (positions[None, :] < lengths[:, None])
        rows, steps = torch.nonzero(inside, as_tuple=True)
        if len(rows):
            excluded = None
            if self.exclude_seen:
                # Step (row, t) leaves out the distinct items before t, the target excepted.
                step_of = torch.full_like(padded, -1)
                step_of[rows, steps] = torch.arange(len(rows), device=padded.device)
                earlier = positions[None, :, None] > positions[None, None, :]  # [1, t, s]
                keep = earlier & inside[:, :, None] & _first_occurrences(padded)[:, None, :]
                keep = keep & (padded[:, :, None] != padded[:, None, :])
                batch, t, s = torch.nonzero(keep, as_tuple=True)
                excluded = (step_of[batch, t], padded[batch, s])
            step = self.step_log_likelihoods(
                theta, terms, padded[rows, steps - 1], padded[rows, steps], excluded
            )
            joint = joint.index_add(0, rows, step)
        return joint

    def next_scores(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log P(next = j | prefix) up to a constant per row: [batch, n_items]."""
        theta, terms, first_normaliser = self._catalogue_terms()
        joint = self._log_joint(theta, terms, first_normaliser, padded, lengths)
        posterior = torch.softmax(joint, dim=1)
        lengths = lengths.to(padded.device)
        last = padded[torch.arange(len(lengths), device=padded.device), lengths - 1]
        excluded = None
        if self.exclude_seen:
            positions = torch.arange(padded.shape[1], device=padded.device)
            seen = (positions[None, :] < lengths[:, None]) & _first_occurrences(padded)
            rows, s = torch.nonzero(seen, as_tuple=True)
            excluded = (rows, padded[rows, s])
        normalisers = self._log_normalisers(theta, terms, last, excluded)
        background, tilt, _, _ = terms
        # sum_z posterior_z exp(B + theta_z - shift) / Z_z, with the shifts cancelling out.
        mixture = ((posterior / torch.exp(normalisers)) @ tilt) * background[self.cluster_of[last]]
        return self.transitions.add_to(torch.log(mixture.clamp_min(1e-30)), last)


class LatentIntentMembers(nn.Module):
    """Several latent-intent networks, each from its own seed (initialisation and clusters) and
    trained on its own order of the sessions; the next-item distribution is their average."""

    def __init__(self, members: list[LatentIntentNetwork]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def next_scores(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """log of the members' average P(next = j | prefix) (each normalised over the unseen)."""
        scores = torch.stack([member.next_scores(padded, lengths) for member in self.members])
        return torch.logsumexp(scores, dim=0) - np.log(len(self.members))


def _first_occurrences(padded: torch.Tensor) -> torch.Tensor:
    """[batch, L]: True where the item has not occurred earlier in its row."""
    positions = torch.arange(padded.shape[1], device=padded.device)
    same = padded[:, :, None] == padded[:, None, :]  # [b, s, s']
    before = positions[None, :, None] > positions[None, None, :]
    return ~(same & before).any(dim=2)


def _initial_chain(
    n_items: int,
    sessions,
    clusters: int,
    seed: int,
    smoothing: float,
    pseudo_count: float | None,
    max_successors: int | None = None,
):
    """Clusters, background, first-item biases and T: with theta = 0 each chain is the
    smoothed Markov chain P(j | i) = (1 - s_i) count(i, j) / count(i) + s_i P(j | cluster of i),
    s_i = pseudo_count / (count(i) + pseudo_count), or `smoothing` without a pseudo-count.

    With `max_successors`, T keeps each item's that many most frequent successors; the rarer
    ones start at the back-off alone (as unobserved pairs do). Training reads every kept pair
    of each step's last item, so this bounds a step's cost as the history grows."""
    if sessions is None:  # loading: the saved state fills everything
        return (
            torch.zeros(n_items + 1, dtype=torch.int64),
            torch.zeros(clusters, n_items),
            torch.zeros(n_items),
            SparseTransitions(n_items),
        )
    codes = np.concatenate(sessions)
    popularity = (np.bincount(codes - 1, minlength=n_items) + 1.0) / (len(codes) + n_items)
    firsts = np.fromiter((session[0] for session in sessions), dtype=np.int64)
    first_share = (np.bincount(firsts - 1, minlength=n_items) + 1.0) / (len(firsts) + n_items)
    start, columns, counts = transition_counts(sessions, n_items)
    row_of = np.repeat(np.arange(n_items + 1), np.diff(start))
    cluster_of = np.zeros(n_items + 1, dtype=np.int64)
    cluster_of[1:] = item_clusters(n_items, row_of - 1, columns, counts, clusters, seed)
    # P(j | cluster c): the transitions out of c's items, with `prior` popularity-shaped
    # pseudo-counts, so that every item has some mass after every cluster.
    prior = 20.0
    flat = cluster_of[row_of] * n_items + columns
    into = np.bincount(flat, weights=counts, minlength=clusters * n_items).reshape(clusters, -1)
    by_cluster = (into + prior * popularity) / (into.sum(axis=1, keepdims=True) + prior)
    row_total = np.bincount(row_of, weights=counts, minlength=n_items + 1)[row_of]
    if pseudo_count is None:
        back_off = np.full(len(counts), smoothing)
    else:
        back_off = pseudo_count / (row_total + pseudo_count)
    # exp(T + B) over exp(B) is the pair's smoothed probability over its back-off share. The
    # chain after i then has normaliser 1 / s_i, and B's scale cancels in every normaliser.
    background = back_off * by_cluster[cluster_of[row_of], columns]
    pair_weight = np.log(((1 - back_off) * counts / row_total + background) / background)
    if max_successors is not None:
        start, kept = strongest_successors(start, counts, max_successors)
        columns, pair_weight = columns[kept], pair_weight[kept]
    return (
        torch.tensor(cluster_of),
        torch.tensor(np.log(by_cluster), dtype=torch.float32),
        torch.tensor(np.log(first_share), dtype=torch.float32),
        SparseTransitions(n_items, start, columns, pair_weight),
    )


def item_clusters(
    n_items: int,
    sources: np.ndarray,
    targets: np.ndarray,
    counts: np.ndarray,
    clusters: int,
    seed: int = 0,
    iterations: int = 30,
) -> np.ndarray:
    """A cluster per item column: k-means on a spectral embedding of the transition graph.

    Items that follow each other (either way) end up together: on a shop's sessions these are
    its categories. The embedding is the top singular vectors of the degree-normalised
    symmetric co-occurrence matrix, rows scaled to unit length; items never in a pair share
    whichever cluster is nearest to the zero vector.
    """
    if clusters <= 1:
        return np.zeros(n_items, dtype=np.int64)
    if clusters > n_items:
        raise ValueError(f"clusters must be at most the {n_items} items, got {clusters}")
    if n_items <= 3:  # too few for an embedding: one cluster per item, as far as they go
        return np.arange(n_items, dtype=np.int64) % clusters
    graph = sparse.coo_matrix((counts, (sources, targets)), shape=(n_items, n_items)).tocsr()
    graph = graph + graph.T
    degree = np.asarray(graph.sum(axis=1)).ravel()
    scale = sparse.diags(1 / np.sqrt(np.maximum(degree, 1e-12)))
    dimensions = min(clusters, 32, n_items - 2)
    vectors, _, _ = sparse_linalg.svds(
        scale @ graph @ scale, k=dimensions, random_state=seed, solver="arpack"
    )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    points = vectors / np.maximum(norms, 1e-12)
    return _k_means(points, clusters, np.random.default_rng(seed), iterations)


def _k_means(points: np.ndarray, k: int, rng: np.random.Generator, iterations: int) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding: the cluster of each row of `points`."""
    centres = [points[rng.integers(len(points))]]
    distances = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = distances.sum()
        if total > 0:
            chosen = rng.choice(len(points), p=distances / total)
        else:  # every point is a centre already
            chosen = rng.integers(len(points))
        centres.append(points[chosen])
        distances = np.minimum(distances, ((points - points[chosen]) ** 2).sum(axis=1))
    centres = np.array(centres)
    for _ in range(iterations):
        # Squared distances, up to each point's own norm (the same for every centre).
        assignment = ((centres**2).sum(axis=1) - 2 * points @ centres.T).argmin(axis=1)
        for cluster in range(k):
            members = points[assignment == cluster]
            if len(members):
                centres[cluster] = members.mean(axis=0)
    return assignment.astype(np.int64)


class LatentIntentRecommender(TorchSessionRecommender):
    """The latent-intent mixture of Markov chains; see the module docstring.

    Float32 only, on CUDA too: its exact likelihood sums exponentials of shifted logits over the
    catalogue into normalisers floored at 1e-30 (below float16's range) and subtracts the seen
    items' terms from them, a difference lower precision can cancel away. It has not been tried
    in lower precision.
    """

    supports_mixed_precision = False

    def __init__(
        self,
        name: str = "latent_intent",
        *,
        intents: int = 32,
        intent_rank: int | None = 8,
        init_scale: float = 0.3,
        pseudo_count: float | None = 1000.0,
        smoothing: float = 0.85,
        exclude_seen: bool = True,
        clusters: int = 40,
        max_successors: int | None = 256,
        members: int = 1,
        epochs: int = 8,
        batch_size: int = 256,
        learning_rate: float = 0.02,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        seed: int = 0,
        device: str | None = None,
        mixed_precision: bool | None = None,
        log_interval_s: float = 10.0,
        num_threads: int | None = None,
    ):
        if intents < 1:
            raise ValueError(f"intents must be at least 1, got {intents}")
        if intent_rank is not None and intent_rank < 1:
            raise ValueError(f"intent_rank must be at least 1 or None, got {intent_rank}")
        if pseudo_count is not None and not pseudo_count > 0:
            raise ValueError(f"pseudo_count must be positive or None, got {pseudo_count}")
        if not 0 < smoothing < 1:
            raise ValueError(f"smoothing must be between 0 and 1, got {smoothing}")
        if clusters < 1:
            raise ValueError(f"clusters must be at least 1, got {clusters}")
        if members < 1:
            raise ValueError(f"members must be at least 1, got {members}")
        if max_successors is not None and max_successors < 1:
            raise ValueError(f"max_successors must be at least 1 or None, got {max_successors}")
        hyperparameters = hyperparameters_of(locals())
        super().__init__(
            name, hyperparameters, device, log_interval_s, num_threads, mixed_precision
        )

    @classmethod
    def _saved_hyperparameters(cls, saved: dict[str, Any]) -> dict[str, Any]:
        # Saved before the pseudo-count or the successor cap existed: trained without them.
        return {"pseudo_count": None, "max_successors": None, **saved}

    def _build_network(
        self, n_items: int, sessions: list[np.ndarray] | None = None
    ) -> LatentIntentNetwork | LatentIntentMembers:
        networks = [
            LatentIntentNetwork(
                n_items,
                self.intents,
                self.intent_rank,
                self.init_scale,
                sessions,
                self.smoothing,
                self.seed + member,
                self.exclude_seen,
                self.clusters,
                self.pseudo_count,
                self.max_successors,
            )
            for member in range(self.members)
        ]
        return networks[0] if self.members == 1 else LatentIntentMembers(networks)

    def _train_epoch(
        self,
        sessions: list[np.ndarray],
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        progress: ProgressLogger,
    ) -> None:
        if isinstance(self.network, LatentIntentMembers):
            networks = list(self.network.members)
        else:
            networks = [self.network]
        # Each member its own order of the sessions: its own noise, as if trained alone.
        orders = [rng.permutation(len(sessions)) for _ in networks]
        for start in range(0, len(sessions), self.batch_size):
            for member, (network, order) in enumerate(zip(networks, orders, strict=True)):
                batch = [sessions[index] for index in order[start : start + self.batch_size]]
                padded, lengths = pad_right(batch)
                padded = padded.to(self.device)
                events = int(lengths.sum())
                loss = -network.session_log_likelihoods(padded, lengths).sum() / events
                # The other members' gradients stay None: Adam leaves their parameters alone.
                self.precision.step(loss, optimizer)
                # Events counted once per pass over the data; the loss is the members' mean.
                progress.update(events if member == 0 else 0, loss, events)

    def _prefix_scores(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.network.next_scores(padded, lengths)
