"""GRU4Rec (Hidasi et al. 2016, 2018): a GRU over the session, trained on session-parallel
mini-batches to predict the next item.

Session-parallel mini-batches: `batch_size` lanes each hold one session; every step feeds each
lane's current item and predicts its next one; a lane whose session ends takes the next session
and its hidden state is reset to zero. With `bptt=1` (the original) the hidden state carries
over between steps without gradient; `bptt=n` (default 10) backpropagates through the last n
steps, one update per n steps, so the network learns what of the history to keep (better on
validation; benchmarks/README.md has the figures) and spends less time in the optimizer.

Loss: `"cross-entropy"` over the full catalogue (fine up to ~20k items on a CPU), or
`"sampled"`: softmax over the batch's targets plus `n_negatives` items drawn with probability
~ popularity^`sample_alpha`, with the log-Q correction, for large catalogues; `"auto"` (the
default) is the first up to `SAMPLED_LOSS_ABOVE_ITEMS` (20,000) items, the second above.

With `transition_term=True` (`TransitionGRURecommender`) the logits get a learned first-order
term T[last item, j] over the item pairs seen in training (sparse, see `transitions`), trained
with the rest; `session_term=False` drops the GRU's part (T + b only), for ablations;
`encoder="sum"` replaces the GRU by a sum of per-item intent evidence with a softmax (tried:
weaker than the GRU on validation).

Defaults (chosen on the default simulated shop, trained on its first 11 days and validated on
the 12th, the last training day; see benchmarks/README.md): embedding 64, hidden 128, one
layer, dropout 0.1 on the embedding and 0.1 on the GRU output, backpropagation through 10 steps,
Adam with learning rate 0.003, batch 128, 10 epochs, seed 0. Pass `num_threads=1` on a small
shared CPU (see torch_common).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recs_platform.models.torch_common import (
    NegativeSampler,
    ProgressLogger,
    ScoringLayout,
    TorchSessionRecommender,
    catalogue_logits,
    hyperparameters_of,
    sampled_softmax_loss,
    sampling_log_q,
    uses_sampled_loss,
)
from recs_platform.models.transitions import SparseTransitions

LOSSES = ("auto", "cross-entropy", "sampled")
ENCODERS = ("gru", "sum")


class GRU4RecNetwork(nn.Module):
    def __init__(
        self,
        n_items: int,
        embedding_size: int,
        hidden_size: int,
        layers: int,
        dropout_embedding: float,
        dropout_hidden: float,
        transitions: SparseTransitions | None = None,
        session_term: bool = True,
        encoder: str = "gru",
    ):
        super().__init__()
        self.transitions = transitions
        self.session_term = session_term
        self.encoder = encoder
        if encoder == "sum":
            # Each item's evidence about the session's latent intent (hidden_size of them),
            # summed over the prefix: the state is the log-posterior, its softmax the output.
            self.evidence = nn.Embedding(n_items + 1, hidden_size, padding_idx=0)
            nn.init.normal_(self.evidence.weight, std=0.5)
            with torch.no_grad():
                self.evidence.weight[0].zero_()
        self.embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=0)
        self.gru = nn.GRU(
            embedding_size,
            hidden_size,
            num_layers=layers,
            batch_first=True,
            dropout=dropout_hidden if layers > 1 else 0.0,
        )
        self.dropout_embedding = nn.Dropout(dropout_embedding)
        self.dropout_hidden = nn.Dropout(dropout_hidden)
        self.output = nn.Parameter(torch.empty(n_items, hidden_size))
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.output, std=hidden_size**-0.5)
        self.scoring_layout = ScoringLayout()

    def forward(
        self, items: torch.Tensor, hidden: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """items [batch, steps] -> GRU outputs [batch, steps, hidden] (dropout applied), state."""
        if self.encoder == "sum":
            evidence = torch.cumsum(self.dropout_embedding(self.evidence(items)), dim=1)
            if hidden is not None:
                evidence = evidence + hidden[-1][:, None]
            outputs = torch.softmax(evidence, dim=-1)
            return self.dropout_hidden(outputs), evidence[:, -1][None]
        outputs, hidden = self.gru(self.dropout_embedding(self.embedding(items)), hidden)
        return self.dropout_hidden(outputs), hidden

    def logits(self, outputs: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of every item: <u, v_j> + b_j (+ T[last, j] with the transition term)."""
        if self.session_term:
            logits = catalogue_logits(outputs, self.output, self.output_bias, self.scoring_layout)
        else:
            logits = self.output_bias.expand(len(outputs), -1)
        if self.transitions is not None:
            logits = self.transitions.add_to(logits, last)
        return logits


class GRU4RecRecommender(TorchSessionRecommender):
    """GRU4Rec with session-parallel mini-batches; see the module docstring for the defaults."""

    def __init__(
        self,
        name: str = "gru4rec",
        *,
        epochs: int = 10,
        batch_size: int = 128,
        embedding_size: int = 64,
        hidden_size: int = 128,
        layers: int = 1,
        dropout_embedding: float = 0.1,
        dropout_hidden: float = 0.1,
        learning_rate: float = 0.003,
        optimizer: str = "adam",
        loss: str = "auto",
        n_negatives: int = 2048,
        sample_alpha: float = 0.75,
        bptt: int = 10,
        transition_term: bool = False,
        transition_offset: float = 1.0,
        transition_learning_rate: float | None = None,
        session_term: bool = True,
        encoder: str = "gru",
        seed: int = 0,
        device: str | None = None,
        mixed_precision: bool | None = None,
        log_interval_s: float = 10.0,
        num_threads: int | None = None,
    ):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}: one of {LOSSES}")
        if bptt < 1:
            raise ValueError(f"bptt must be at least 1, got {bptt}")
        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}: one of {ENCODERS}")
        if encoder == "sum" and layers != 1:
            raise ValueError("the sum encoder has one layer")
        if transition_term and loss == "sampled":
            # "auto" is the full cross-entropy with the transition term, at any size.
            raise ValueError("transition_term needs the full cross-entropy loss")
        if not (transition_term or session_term):
            raise ValueError("at least one of transition_term and session_term is needed")
        hyperparameters = hyperparameters_of(locals())
        super().__init__(
            name, hyperparameters, device, log_interval_s, num_threads, mixed_precision
        )

    def _parameter_groups(self) -> list[dict]:
        transitions = self.network.transitions
        if transitions is None or self.transition_learning_rate is None:
            return super()._parameter_groups()
        others = [p for p in self.network.parameters() if p is not transitions.weight]
        return [
            {"params": others},
            {"params": [transitions.weight], "lr": self.transition_learning_rate},
        ]

    def _build_network(
        self, n_items: int, sessions: list[np.ndarray] | None = None
    ) -> GRU4RecNetwork:
        transitions = None
        if self.transition_term:
            # From the training sessions when fitting; empty, to be filled by the saved state,
            # when loading.
            transitions = (
                SparseTransitions.from_sessions(sessions, n_items, self.transition_offset)
                if sessions is not None
                else SparseTransitions(n_items)
            )
        return GRU4RecNetwork(
            n_items,
            self.embedding_size,
            self.hidden_size,
            self.layers,
            self.dropout_embedding,
            self.dropout_hidden,
            transitions,
            self.session_term,
            self.encoder,
        )

    def _train_epoch(
        self,
        sessions: list[np.ndarray],
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        progress: ProgressLogger,
    ) -> None:
        network = self.network
        device = self.device
        order = rng.permutation(len(sessions))
        lengths = np.array([len(sessions[index]) for index in order], dtype=np.int64)
        clicks = torch.from_numpy(np.concatenate([sessions[index] for index in order]))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        sampled = not self.transition_term and uses_sampled_loss(self.loss, len(self.item_ids))
        if sampled:
            sampler = NegativeSampler(self.popularity, self.sample_alpha, rng)
            log_q = sampling_log_q(
                self.popularity, self.batch_size, self.n_negatives, self.sample_alpha
            ).to(device)

        lanes = min(self.batch_size, len(sessions))
        next_session = lanes
        lane_session = np.arange(lanes)
        position = offsets[lane_session].copy()  # index in `clicks` of each lane's current item
        end = offsets[lane_session + 1].copy()
        hidden = torch.zeros(self.layers, lanes, self.hidden_size, device=device)
        pending: list[torch.Tensor] = []  # step losses since the last update

        def update(hidden: torch.Tensor) -> torch.Tensor:
            self.precision.step(torch.stack(pending).mean(), optimizer)
            pending.clear()
            return hidden.detach()

        while len(lane_session):
            steps = int((end - position).min()) - 1
            for step in range(steps):
                inputs = clicks[position + step].to(device)
                targets = clicks[position + step + 1].to(device) - 1
                with self.precision.autocast():
                    outputs, hidden = network(inputs[:, None], hidden)
                    outputs = outputs[:, 0]
                    if sampled:
                        loss = sampled_softmax_loss(
                            outputs,
                            targets,
                            network.output,
                            network.output_bias,
                            sampler.draw(self.n_negatives).to(device),
                            log_q,
                        )
                    else:
                        logits = network.logits(outputs, inputs).float()
                        loss = nn.functional.cross_entropy(logits, targets)
                pending.append(loss)
                progress.update(len(targets), loss, len(targets))
                if len(pending) == self.bptt:
                    hidden = update(hidden)
            position += steps
            # Lanes at their session's last item take the next session, or close.
            finished = np.flatnonzero(end - position <= 1)
            progress.update(len(finished), 0.0, 0)
            refill = finished[: max(0, len(sessions) - next_session)]
            new_sessions = np.arange(next_session, next_session + len(refill))
            next_session += len(refill)
            lane_session[refill] = new_sessions
            position[refill] = offsets[new_sessions]
            end[refill] = offsets[new_sessions + 1]
            if len(refill):
                # A new session starts from a zero state (by a product, so the graph of the
                # steps not yet backpropagated stays intact).
                reset = torch.ones(len(lane_session), 1, device=device)
                reset[torch.from_numpy(refill).to(device)] = 0.0
                hidden = hidden * reset
            closed = finished[len(refill) :]
            if len(closed):
                keep = np.setdiff1d(np.arange(len(lane_session)), closed)
                lane_session, position, end = lane_session[keep], position[keep], end[keep]
                hidden = hidden[:, torch.from_numpy(keep).to(device)]
        if pending:
            update(hidden)

    def _prefix_scores(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.network(padded)
        rows = torch.arange(len(lengths), device=padded.device)
        last = lengths.to(padded.device) - 1
        return self.network.logits(outputs[rows, last], padded[rows, last])


TRANSITION_DEFAULTS = {"epochs": 15, "dropout_hidden": 0.5, "dropout_embedding": 0.3}


class TransitionGRURecommender(GRU4RecRecommender):
    """GRU4Rec with the learned first-order transition term on by default.

    logits(j | prefix) = T[last item, j] + <u(prefix), v_j> + b_j: T (see `transitions`) is as
    exact as a Markov chain's counts on the pairs seen in training, the GRU's state u carries
    what the whole prefix says beyond the last item (the session's intent). Both are trained
    together by the full cross-entropy. `session_term=False` leaves T + b only (a Markov chain
    trained by cross-entropy), for ablations.
    """

    def __init__(self, name: str = "gru_transition", **settings):
        # 15 epochs, dropout 0.5 on the GRU output and 0.3 on the embedding: chosen on the
        # validation day of both benchmark shops (the figures: benchmarks/README.md).
        settings = {"transition_term": True, **TRANSITION_DEFAULTS, **settings}
        super().__init__(name, **settings)
