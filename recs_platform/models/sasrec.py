"""SASRec (Kang & McAuley 2018): a causal transformer over the session's items.

Item embeddings (shared with the output layer) plus learned position embeddings, `blocks`
pre-norm transformer blocks under a causal mask, and the next item predicted at every position
with cross-entropy over the full catalogue (or `"sampled"`: the batch's targets plus
`n_negatives` popularity^`sample_alpha` draws, log-Q corrected, for large catalogues; `"auto"`,
the default, picks the second above 20,000 items: `torch_common.SAMPLED_LOSS_ABOVE_ITEMS`). A
prefix is scored from its last position; prefixes longer than `max_length` keep their last
`max_length` items, and training sessions longer than `max_length + 1` are cut into windows of
that size.
Batches group sessions of similar length, so little is padded.

Defaults (chosen on the default simulated shop, trained on its first 11 days and validated on
the 12th, the last training day; see benchmarks/README.md): 128 dimensions, output layer tied
to the input item embeddings (as in SASRec), 2 blocks, 2 heads, max length 50, dropout 0.1,
Adam with learning rate 0.002, batch 128 sessions, 8 epochs, seed 0.
`tie_embeddings=False` gives the output layer its own embeddings.
"""

from __future__ import annotations

import math

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
    pad_right,
    sampled_softmax_loss,
    sampling_log_q,
    uses_sampled_loss,
)

LOSSES = ("auto", "cross-entropy", "sampled")
IGNORE = -100


class SASRecNetwork(nn.Module):
    def __init__(
        self,
        n_items: int,
        dimensions: int,
        blocks: int,
        heads: int,
        max_length: int,
        dropout: float,
        tie_embeddings: bool = True,
    ):
        super().__init__()
        self.dimensions = dimensions
        self.items = nn.Embedding(n_items + 1, dimensions, padding_idx=0)
        self.positions = nn.Embedding(max_length, dimensions)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dimensions,
            heads,
            dim_feedforward=4 * dimensions,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dimensions)
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.items.weight, std=dimensions**-0.5)
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.scoring_layout = ScoringLayout()
        self.untied_output = None
        if not tie_embeddings:
            self.untied_output = nn.Parameter(torch.empty(n_items, dimensions))
            nn.init.normal_(self.untied_output, std=dimensions**-0.5)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """items [batch, steps], right-padded -> hidden states [batch, steps, dimensions].

        Padding sits after every real item, so under the causal mask no real position attends
        to it.
        """
        steps = items.shape[1]
        positions = torch.arange(steps, device=items.device)
        x = self.items(items) * math.sqrt(self.dimensions) + self.positions(positions)
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=items.device)
        hidden = self.encoder(self.dropout(x), mask=mask, is_causal=True)
        return self.norm(hidden)

    @property
    def output(self) -> torch.Tensor:
        if self.untied_output is not None:
            return self.untied_output
        return self.items.weight[1:]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return catalogue_logits(hidden, self.output, self.output_bias, self.scoring_layout)


class SASRecRecommender(TorchSessionRecommender):
    """SASRec-style causal transformer; see the module docstring for the defaults."""

    def __init__(
        self,
        name: str = "sasrec",
        *,
        epochs: int = 8,
        batch_size: int = 128,
        dimensions: int = 128,
        blocks: int = 2,
        heads: int = 2,
        max_length: int = 50,
        dropout: float = 0.1,
        tie_embeddings: bool = True,
        learning_rate: float = 0.002,
        optimizer: str = "adam",
        loss: str = "auto",
        n_negatives: int = 2048,
        sample_alpha: float = 0.75,
        seed: int = 0,
        device: str | None = None,
        mixed_precision: bool | None = None,
        log_interval_s: float = 10.0,
        num_threads: int | None = None,
    ):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}: one of {LOSSES}")
        hyperparameters = hyperparameters_of(locals())
        super().__init__(
            name, hyperparameters, device, log_interval_s, num_threads, mixed_precision
        )

    def _build_network(
        self, n_items: int, sessions: list[np.ndarray] | None = None
    ) -> SASRecNetwork:
        return SASRecNetwork(
            n_items,
            self.dimensions,
            self.blocks,
            self.heads,
            self.max_length,
            self.dropout,
            self.tie_embeddings,
        )

    def _truncate(self, prefix: np.ndarray) -> np.ndarray:
        return prefix[-self.max_length :]

    def _windows(self, sessions: list[np.ndarray]) -> list[np.ndarray]:
        size = self.max_length + 1
        windows = []
        for session in sessions:
            if len(session) <= size:
                windows.append(session)
            else:
                # Windows overlapping by one item, so every transition is a target once.
                for start in range(0, len(session) - 1, size - 1):
                    window = session[start : start + size]
                    if len(window) >= 2:
                        windows.append(window)
        return windows

    def _train_epoch(
        self,
        sessions: list[np.ndarray],
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        progress: ProgressLogger,
    ) -> None:
        network = self.network
        device = self.device
        windows = self._windows(sessions)
        # Shuffle, sort chunks of 50 batches by length, then shuffle the batches.
        order = rng.permutation(len(windows))
        chunk = 50 * self.batch_size
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start : start + chunk]
            part = part[np.argsort([len(windows[index]) for index in part], kind="stable")]
            batches += [
                part[offset : offset + self.batch_size]
                for offset in range(0, len(part), self.batch_size)
            ]
        sampled = uses_sampled_loss(self.loss, len(self.item_ids))
        if sampled:
            sampler = NegativeSampler(self.popularity, self.sample_alpha, rng)
            mean_targets = sum(len(window) - 1 for window in windows) / max(len(batches), 1)
            log_q = sampling_log_q(
                self.popularity, mean_targets, self.n_negatives, self.sample_alpha
            ).to(device)
        for batch_index in rng.permutation(len(batches)):
            batch = [windows[index] for index in batches[batch_index]]
            inputs, _ = pad_right([window[:-1] for window in batch])
            targets, target_counts = pad_right([window[1:] - 1 for window in batch], fill=IGNORE)
            # The real (not padding) positions, found on the CPU: a mask on the device would
            # make every step wait for it.
            real = torch.nonzero(targets.flatten() != IGNORE).squeeze(1).to(device)
            inputs, targets = inputs.to(device), targets.flatten().to(device)[real]
            with self.precision.autocast():
                hidden = network(inputs).flatten(0, 1)[real]
                if sampled:
                    loss = sampled_softmax_loss(
                        hidden,
                        targets,
                        network.output,
                        network.output_bias,
                        sampler.draw(self.n_negatives).to(device),
                        log_q,
                    )
                else:
                    loss = nn.functional.cross_entropy(network.logits(hidden).float(), targets)
            self.precision.step(loss, optimizer)
            n_targets = int(target_counts.sum())
            progress.update(n_targets + len(batch), loss, n_targets)

    def _prefix_scores(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        hidden = self.network(padded)
        rows = torch.arange(len(lengths), device=padded.device)
        last = hidden[rows, lengths.to(padded.device) - 1]
        return self.network.logits(last)
