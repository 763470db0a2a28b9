"""What the PyTorch recommenders share: device, precision, seeds, item encoding, the training
loop with its progress log, batched scoring with the popularity fallback, sampled softmax, and
persistence.

Items are encoded as their position in `item_ids` plus one; 0 is padding. Output layers cover the
catalogue only (column j is item j), so scores need no shifting.

Device and precision: a model trains and scores on CUDA when it is available, else on the CPU
(`device` chooses). On CUDA its training steps run under autocast (mixed precision): bfloat16
where the GPU supports it, else float16 with a gradient scaler; the losses over the catalogue
(softmax, cross-entropy) are computed in float32 from the lower-precision logits. The CPU stays
in float32 throughout, and scoring is float32 everywhere: a ranking decides by small differences
between scores. `mixed_precision=False` turns it off on CUDA; neither `device` nor
`mixed_precision` is saved with the model, which loads on whatever device the loading machine has.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recs_platform.models.base import SessionRecommender, check_fitted, load_arrays, save_arrays
from recs_platform.models.popularity import item_counts

logger = logging.getLogger(__name__)

NETWORK_FILE = "network.pt"
HYPERPARAMETERS_FILE = "hyperparameters.json"
TRAINING_LOG_FILE = "training_log.json"

# Called after each epoch with the model in eval mode; returns a figure where higher is better
# (say, MRR@20 on a validation split).
Validation = Callable[[SessionRecommender], float]


# A model's constructor arguments that are how it runs, not what it is: never saved with it.
_RUNTIME_ARGUMENTS = (
    "self",
    "device",
    "mixed_precision",
    "log_interval_s",
    "num_threads",
    "__class__",
)


def hyperparameters_of(arguments: dict[str, Any]) -> dict[str, Any]:
    """A torch model's hyperparameters from its constructor's `locals()`."""
    return {key: value for key, value in arguments.items() if key not in _RUNTIME_ARGUMENTS}


# `loss="auto"`: the full catalogue's cross-entropy up to this many items, the sampled softmax
# above, where the output layer dominates a step and the sampled loss trains several times as
# many events a second (benchmarks/README.md, training by device).
SAMPLED_LOSS_ABOVE_ITEMS = 20_000


def uses_sampled_loss(loss: str, n_items: int) -> bool:
    """Whether a model with this `loss` setting trains with the sampled softmax."""
    return loss == "sampled" or (loss == "auto" and n_items > SAMPLED_LOSS_ABOVE_ITEMS)


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(
    device: torch.device, mixed_precision: bool | None, supported: bool = True
) -> torch.dtype | None:
    """The dtype training steps autocast to on `device`; None: float32.

    `mixed_precision` None means on CUDA, off on the CPU; True asks for it and fails where it
    cannot run (the CPU, or a model that is `supported=False`); False is float32 everywhere.
    On CUDA: bfloat16 where the GPU has it (float32's range, no scaler needed), else float16.
    """
    if mixed_precision is False:
        return None
    if not supported:
        if mixed_precision:
            raise ValueError("this model trains in float32 only: mixed_precision must not be True")
        return None
    if device.type != "cuda":
        if mixed_precision:
            raise ValueError(
                f"mixed precision runs on CUDA only; on {device} the model trains in float32 "
                "(leave mixed_precision unset or False)"
            )
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Precision:
    """How a training step runs: `autocast()` around the forward pass and the loss, `step()` for
    the backward pass and the update (with a gradient scaler for float16, whose narrow range
    would flush small gradients to zero)."""

    def __init__(self, device: torch.device, dtype: torch.dtype | None):
        self.device = device
        self.dtype = dtype
        self.scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (CUDA's too)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` inside the block (None: left as it is).

    On a small shared CPU one thread is often much faster than two: a busy core stalls every
    parallel op of a small network at its barrier.
    """
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode_sessions(sessions: Sequence[Sequence[str]], index: dict[str, int]) -> list[np.ndarray]:
    """Each session as int64 codes (item position + 1); unknown SKUs are dropped."""
    return [
        np.fromiter((index[sku] + 1 for sku in session if sku in index), dtype=np.int64)
        for session in sessions
    ]


def pad_right(sequences: Sequence[np.ndarray], fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """[batch, longest] int64 tensor padded on the right, and the lengths."""
    lengths = np.fromiter((len(sequence) for sequence in sequences), dtype=np.int64)
    padded = np.full((len(sequences), int(lengths.max())), fill, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return torch.from_numpy(padded), torch.from_numpy(lengths)


class DeadlineReached(Exception):
    """A fit's deadline passed during an epoch (raised by `ProgressLogger.update`, caught by
    the fit, which keeps the network trained so far)."""


class ProgressLogger:
    """Counts events and loss during an epoch; logs events/s and mean loss every `interval_s`.

    A loss may be a tensor: it is summed where it lives and read only when logged, so a step on
    the GPU does not wait for the device to finish (as `loss.item()` would). With a `deadline`
    (a `time.perf_counter()` value), the first update after it raises `DeadlineReached`: a fit
    meets its time budget even when one epoch takes longer than the budget's estimate.
    """

    def __init__(
        self,
        name: str,
        interval_s: float = 10.0,
        log: logging.Logger = logger,
        deadline: float | None = None,
    ):
        self.name = name
        self.interval_s = interval_s
        self.log = log
        self.deadline = deadline
        self.epoch = 0

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.started = self.last_report = time.perf_counter()
        self.events = 0
        self.loss_sum = 0.0
        self.loss_weight = 0

    def update(self, events: int, loss: float | torch.Tensor, weight: int) -> None:
        """`events` product views consumed; `loss` the mean over `weight` targets."""
        self.events += events
        if weight:
            if isinstance(loss, torch.Tensor):
                loss = loss.detach().to(torch.float64)
            self.loss_sum = self.loss_sum + loss * weight
            self.loss_weight += weight
        now = time.perf_counter()
        if self.deadline is not None and now >= self.deadline:
            raise DeadlineReached(f"{self.name}: the deadline passed in epoch {self.epoch}")
        if now - self.last_report >= self.interval_s:
            self.last_report = now
            self.log.info(
                "%s epoch %d: %d events, %.0f events/s, loss %.4f",
                self.name,
                self.epoch,
                self.events,
                self.events / (now - self.started),
                self.mean_loss(),
            )

    def mean_loss(self) -> float:
        return float(self.loss_sum) / max(self.loss_weight, 1)

    def end_epoch(self, events: int) -> dict[str, float]:
        """The epoch's record; events/s counts `events` (the training product views)."""
        mean_loss = self.mean_loss()  # waits for the device's last steps
        seconds = time.perf_counter() - self.started
        return {
            "epoch": self.epoch,
            "loss": mean_loss,
            "seconds": seconds,
            "events": events,
            "events_per_second": events / seconds if seconds > 0 else float("inf"),
        }


class NegativeSampler:
    """Items drawn with probability ~ popularity^alpha, in large pre-drawn chunks."""

    def __init__(self, counts: np.ndarray, alpha: float, rng: np.random.Generator, chunk=1 << 20):
        weights = np.power(np.maximum(counts, 0.0), alpha)
        self.probabilities = weights / weights.sum()
        self.rng = rng
        self.chunk = chunk
        self.buffer = np.zeros(0, dtype=np.int64)
        self.position = 0

    def draw(self, count: int) -> torch.Tensor:
        if self.position + count > len(self.buffer):
            size = max(self.chunk, count)
            self.buffer = self.rng.choice(len(self.probabilities), size=size, p=self.probabilities)
            self.position = 0
        drawn = self.buffer[self.position : self.position + count]
        self.position += count
        return torch.from_numpy(drawn)


class ScoringLayout:
    """A [d, n_items] copy of an [n_items, d] output layer, for scoring on the CPU.

    torch's CPU matrix product reads the transposed [n_items, d] layout far more slowly than
    the plain one, and with a large catalogue that product is most of a request's time
    (benchmarks/README.md, serving). The copy is remade whenever the weights change (training
    steps, a loaded state); it is never saved.
    """

    def __init__(self) -> None:
        self._state: tuple | None = None
        self._copy: torch.Tensor | None = None

    def transposed(self, weights: torch.Tensor) -> torch.Tensor:
        state = (weights.data_ptr(), weights._version, tuple(weights.shape), weights.device)
        if state != self._state:
            self._copy = weights.detach().T.contiguous()
            self._state = state
        return self._copy


def catalogue_logits(
    hidden: torch.Tensor,
    weights: torch.Tensor,
    bias: torch.Tensor | None,
    layout: ScoringLayout,
) -> torch.Tensor:
    """hidden [b, d] @ weights.T + bias: the logit of every item of the catalogue.

    Scoring on the CPU (no gradient) reads `layout`'s copy of the weights; training, and CUDA
    (whose matrix products take either layout), the weights themselves.
    """
    if torch.is_grad_enabled() or hidden.device.type != "cpu":
        product = hidden @ weights.T
    else:
        product = hidden @ layout.transposed(weights)
    return product + bias if bias is not None else product


def sampled_softmax_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    bias: torch.Tensor | None,
    negatives: torch.Tensor,
    log_q: torch.Tensor | None,
) -> torch.Tensor:
    """Cross-entropy of each target against the batch's other targets plus shared negatives.

    hidden [n, d], targets [n] (item columns), weights [n_items, d]. Candidates are the n targets
    followed by `negatives`; a candidate that is the row's own target anywhere but on the
    diagonal is masked, so no row learns against its own item. `log_q` (log of each item's
    expected count among the candidates) is subtracted when given: the log-Q correction that
    keeps the scores comparable with a full softmax.
    """
    candidates = torch.cat([targets, negatives])
    # float32 from here (under autocast the product comes out in lower precision): the softmax
    # over thousands of candidates needs it.
    logits = (hidden @ weights[candidates].T).float()
    if bias is not None:
        logits = logits + bias[candidates]
    if log_q is not None:
        logits = logits - log_q[candidates]
    rows = torch.arange(len(targets), device=hidden.device)
    collisions = candidates[None, :] == targets[:, None]
    collisions[rows, rows] = False
    logits = logits.masked_fill(collisions, float("-inf"))
    return nn.functional.cross_entropy(logits, rows)


def sampling_log_q(
    counts: np.ndarray, batch_targets: int, n_negatives: int, alpha: float
) -> torch.Tensor:
    """log of the expected count of each item among a batch's candidates (see above)."""
    popularity = counts / counts.sum()
    sampled = np.power(counts, alpha)
    sampled = sampled / sampled.sum()
    expected = batch_targets * popularity + n_negatives * sampled
    return torch.from_numpy(np.log(np.maximum(expected, 1e-12))).float()


class TorchSessionRecommender(SessionRecommender):
    """Base of the PyTorch recommenders: fit loop, batched scoring, save and load.

    Subclasses set `self.hyperparameters` (JSON-able constructor arguments) and implement
    `_build_network`, `_train_epoch` and `_prefix_scores`; a training step runs its forward pass
    and loss inside `self.precision.autocast()` and ends with `self.precision.step(loss,
    optimizer)`. A prefix with no known item (empty, or only SKUs unseen in training) is scored
    by the training popularity counts; unknown SKUs inside a prefix are dropped.
    """

    fits_within_deadline = True

    network: nn.Module | None
    # False where lower precision is not stable for the model's training (it stays float32).
    supports_mixed_precision = True

    def __init__(
        self,
        name: str,
        hyperparameters: dict[str, Any],
        device: str | torch.device | None,
        log_interval_s: float,
        num_threads: int | None = None,
        mixed_precision: bool | None = None,
    ):
        self.name = name
        self.num_threads = num_threads
        self.hyperparameters = hyperparameters
        self.seed = int(hyperparameters["seed"])
        self.device = choose_device(device)
        self.mixed_precision = mixed_precision
        dtype = autocast_dtype(self.device, mixed_precision, self.supports_mixed_precision)
        self.precision = Precision(self.device, dtype)
        self.log_interval_s = log_interval_s
        self.item_ids: list[str] = []
        self.popularity = np.zeros(0)
        self.network = None
        self.training_log: list[dict[str, float]] = []
        # Whether the last fit stopped at its deadline (inside an epoch or between two).
        self.stopped_at_deadline = False
        self.score_batch_size = 512

    def __getattr__(self, key: str) -> Any:
        # Hyperparameters read as attributes (self.epochs, self.batch_size, ...).
        hyperparameters = self.__dict__.get("hyperparameters")
        if hyperparameters is not None and key in hyperparameters:
            return hyperparameters[key]
        raise AttributeError(key)

    # --- what subclasses provide -------------------------------------------------------------

    @abstractmethod
    def _build_network(self, n_items: int, sessions: list[np.ndarray] | None = None) -> nn.Module:
        """The network for `n_items` items: from the encoded training `sessions` when fitting,
        `None` when loading (the saved state then fills it)."""

    @abstractmethod
    def _train_epoch(
        self,
        sessions: list[np.ndarray],
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        progress: ProgressLogger,
    ) -> None:
        """One pass over the encoded sessions (each of length >= 2), reporting to `progress`."""

    @abstractmethod
    def _prefix_scores(self, padded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """[batch, n_items] scores of the next item after each right-padded prefix."""

    def _truncate(self, prefix: np.ndarray) -> np.ndarray:
        return prefix

    # --- training ----------------------------------------------------------------------------

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups (one by default; a subclass may set some apart)."""
        return [{"params": list(self.network.parameters())}]

    def _optimizer(self) -> torch.optim.Optimizer:
        parameters = self._parameter_groups()
        name = self.hyperparameters.get("optimizer", "adam")
        if name == "adam":
            weight_decay = self.hyperparameters.get("weight_decay", 0.0)
            return torch.optim.Adam(parameters, lr=self.learning_rate, weight_decay=weight_decay)
        if name == "adagrad":
            return torch.optim.Adagrad(parameters, lr=self.learning_rate)
        raise ValueError(f"unknown optimizer {name!r}: adam or adagrad")

    def fit(
        self,
        sessions: Sequence[Sequence[str]],
        validation: Validation | None = None,
        patience: int | None = None,
        deadline: float | None = None,
    ) -> TorchSessionRecommender:
        """Train for `epochs` epochs; with `validation`, keep the epoch that scored best.

        `validation(model)` runs after every epoch; with `patience`, training stops once that
        many epochs in a row failed to beat the best. With `deadline` (a `time.perf_counter()`
        value), training stops at the first batch past it, inside an epoch if need be: the
        network trained so far is kept (scored like a whole epoch when `validation` is given),
        its record says `stopped_at_deadline` and the share of the epoch it saw. Each epoch's
        loss, seconds, events/s (the training product views over the epoch's seconds) and
        validation figure go to `training_log`.
        """
        with torch_threads(self.num_threads):
            return self._fit(sessions, validation, patience, deadline)

    def _fit(
        self,
        sessions: Sequence[Sequence[str]],
        validation: Validation | None,
        patience: int | None,
        deadline: float | None = None,
    ) -> TorchSessionRecommender:
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        self.item_ids, self.popularity = item_counts(sessions)
        encoded = [s for s in encode_sessions(sessions, self.item_index()) if len(s) >= 2]
        if not encoded:
            raise ValueError(f"{self.name}: no session with two items or more to learn from")
        training_events = sum(len(session) for session in sessions)
        self.network = self._build_network(len(self.item_ids), encoded).to(self.device)
        self.precision = Precision(self.device, self.precision.dtype)  # a fresh gradient scale
        logger.info(
            "%s: training on %s in %s",
            self.name,
            self.device,
            f"mixed precision ({self.precision.dtype})" if self.precision.dtype else "float32",
        )
        optimizer = self._optimizer()
        progress = ProgressLogger(self.name, self.log_interval_s, deadline=deadline)
        self.training_log = []
        self.stopped_at_deadline = False
        best_value, best_state, stale = -np.inf, None, 0
        for epoch in range(1, self.epochs + 1):
            if epoch > 1 and deadline is not None and time.perf_counter() >= deadline:
                logger.info("%s: the deadline passed after epoch %d", self.name, epoch - 1)
                self.stopped_at_deadline = True
                break
            self.network.train()
            progress.start_epoch(epoch)
            stopped = False
            try:
                self._train_epoch(encoded, optimizer, rng, progress)
            except DeadlineReached:
                stopped = True
            record = progress.end_epoch(progress.events if stopped else training_events)
            if stopped:
                self.stopped_at_deadline = True
                record["stopped_at_deadline"] = True
                record["epoch_share"] = progress.events / max(training_events, 1)
                logger.info(
                    "%s: the deadline passed in epoch %d, %.0f%% of it trained",
                    self.name,
                    epoch,
                    100 * record["epoch_share"],
                )
            if validation is not None:
                self.network.eval()
                value = float(validation(self))
                record["validation"] = value
                if value > best_value:
                    best_value, stale = value, 0
                    best_state = copy.deepcopy(self.network.state_dict())
                else:
                    stale += 1
            self.training_log.append(record)
            logger.info(
                "%s epoch %d done: loss %.4f, %.1f s, %.0f events/s%s",
                self.name,
                epoch,
                record["loss"],
                record["seconds"],
                record["events_per_second"],
                f", validation {record['validation']:.4f}" if validation is not None else "",
            )
            if stopped or (patience is not None and stale >= patience):
                break
        if best_state is not None:
            self.network.load_state_dict(best_state)
        self.network.eval()
        return self

    def best_epoch(self) -> int:
        """The epoch (from 1) whose network the model kept: the best on validation, else the
        last one trained."""
        scored = [entry.get("validation") for entry in self.training_log]
        if not scored or scored[0] is None:
            return len(self.training_log)
        return int(np.argmax(scored)) + 1

    def events_learnt(self) -> int:
        """The training product views the kept network learnt from: every epoch's up to the
        kept one (a part of an epoch cut by the deadline)."""
        return int(sum(entry["events"] for entry in self.training_log[: self.best_epoch()]))

    def best_validation(self) -> float:
        """The validation figure of the epoch kept (fitted with `validation` only)."""
        value = self.training_log[self.best_epoch() - 1].get("validation")
        if value is None:
            raise ValueError(f"{self.name} was fitted without validation")
        return float(value)

    # --- scoring -----------------------------------------------------------------------------

    def score(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        check_fitted(self)
        with torch_threads(self.num_threads):
            return self._score(prefixes)

    def _score(self, prefixes: Sequence[Sequence[str]], softmax: bool = False) -> np.ndarray:
        """The network's logits per prefix (with `softmax`, its next-item distribution); a
        prefix with no known item gets the popularity counts (their shares)."""
        encoded = encode_sessions(prefixes, self.item_index())
        fallback = self.popularity / self.popularity.sum() if softmax else self.popularity
        scores = np.tile(fallback, (len(prefixes), 1))
        known = [row for row, prefix in enumerate(encoded) if len(prefix)]
        self.network.eval()
        with torch.no_grad():
            for start in range(0, len(known), self.score_batch_size):
                rows = known[start : start + self.score_batch_size]
                padded, lengths = pad_right([self._truncate(encoded[row]) for row in rows])
                batch_scores = self._prefix_scores(padded.to(self.device), lengths).float()
                if softmax:
                    batch_scores = torch.softmax(batch_scores, dim=1)
                scores[rows] = batch_scores.cpu().numpy()
        return scores

    def probabilities(self, prefixes: Sequence[Sequence[str]]) -> np.ndarray:
        """The softmax of the logits: what the network was trained to predict."""
        check_fitted(self)
        with torch_threads(self.num_threads):
            probabilities = self._score(prefixes, softmax=True)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def probabilities_of_scores(
        self, prefixes: Sequence[Sequence[str]], scores: np.ndarray
    ) -> np.ndarray:
        """The softmax of the logits `score` gave (a prefix without a known item: the shares
        of the popularity counts it scored)."""
        scores = np.asarray(scores, dtype=np.float64)
        index = self.item_index()
        known = np.array([any(sku in index for sku in prefix) for prefix in prefixes], dtype=bool)
        weights = scores.copy()
        weights[known] = np.exp(scores[known] - scores[known].max(axis=1, keepdims=True))
        return weights / weights.sum(axis=1, keepdims=True)

    # --- persistence -------------------------------------------------------------------------

    def _save_state(self, folder: Path) -> None:
        save_arrays(folder, self.item_ids, popularity=self.popularity)
        torch.save(self.network.state_dict(), folder / NETWORK_FILE)
        (folder / HYPERPARAMETERS_FILE).write_text(json.dumps(self.hyperparameters, indent=2))
        (folder / TRAINING_LOG_FILE).write_text(json.dumps(self.training_log, indent=2))

    @classmethod
    def _saved_hyperparameters(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """The constructor arguments of a model saved by an earlier version of the class."""
        return saved

    @classmethod
    def _load_state(cls, folder: Path, device: str | None = None) -> TorchSessionRecommender:
        """The saved model, on `device` (default: CUDA when available, else the CPU)."""
        saved = json.loads((folder / HYPERPARAMETERS_FILE).read_text())
        model = cls(**cls._saved_hyperparameters(saved), device=device)
        model.item_ids, arrays = load_arrays(folder)
        model.popularity = arrays["popularity"]
        model.network = model._build_network(len(model.item_ids)).to(model.device)
        state = torch.load(folder / NETWORK_FILE, map_location=model.device, weights_only=True)
        model.network.load_state_dict(state)
        model.network.eval()
        log_path = folder / TRAINING_LOG_FILE
        if log_path.is_file():
            model.training_log = json.loads(log_path.read_text())
        return model
