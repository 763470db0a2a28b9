"""A learned first-order transition term T[last item, next item] for the torch recommenders.

Parameters exist only for the item pairs (a, b) where b followed a in training, stored
row-compressed (CSR) by the code of a: the successors of code a are `items[start[a]:start[a+1]]`
with weights `weight[start[a]:start[a+1]]`. A batch gathers the rows of its last items and
scatters them into the logits; every other pair adds 0. The weights start at
log(count) + `offset` (so a pair seen once starts above the unseen pairs) and are trained with
the rest of the network by the same cross-entropy.

Codes are the torch models' item codes (position in `item_ids` + 1, 0 is padding); the logit
columns are the items (column j is code j + 1).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def transition_counts(
    sessions: list[np.ndarray], n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of the observed transitions between codes: start [n_items + 2], columns, counts.

    Columns are item columns (code - 1), sorted within each row.
    """
    sources = np.concatenate([session[:-1] for session in sessions if len(session) >= 2])
    targets = np.concatenate([session[1:] for session in sessions if len(session) >= 2])
    width = n_items + 1
    pairs, counts = np.unique(sources * width + targets, return_counts=True)
    rows, columns = pairs // width, pairs % width - 1
    start = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_items + 1))])
    return start.astype(np.int64), columns.astype(np.int64), counts.astype(np.float64)


def strongest_successors(
    start: np.ndarray, counts: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `limit` most frequent entries (ties to the lower column): the new row starts
    and the positions kept, in the CSR's order."""
    rows = np.repeat(np.arange(len(start) - 1), np.diff(start))
    # Rows in order, each by descending count; entries keep their column order within ties.
    order = np.lexsort((np.arange(len(counts)), -counts, rows))
    rank_in_row = np.arange(len(order)) - start[rows[order]]
    kept = np.sort(order[rank_in_row < limit])
    kept_start = np.concatenate([[0], np.cumsum(np.bincount(rows[kept], minlength=len(start) - 1))])
    return kept_start.astype(np.int64), kept


class SparseTransitions(nn.Module):
    """T[a, b] for the observed pairs; `add_to(logits, last)` adds T[last[r], :] to row r."""

    def __init__(self, n_items: int, start=None, columns=None, initial=None):
        super().__init__()
        if start is None:  # to be filled by load_state_dict
            start = np.zeros(n_items + 2, dtype=np.int64)
            columns = np.zeros(0, dtype=np.int64)
            initial = np.zeros(0, dtype=np.float32)
        self.register_buffer("start", torch.as_tensor(start, dtype=torch.int64))
        self.register_buffer("columns", torch.as_tensor(columns, dtype=torch.int64))
        self.weight = nn.Parameter(torch.as_tensor(initial, dtype=torch.float32).clone())

    @classmethod
    def from_sessions(
        cls, sessions: list[np.ndarray], n_items: int, offset: float = 1.0
    ) -> SparseTransitions:
        start, columns, counts = transition_counts(sessions, n_items)
        return cls(n_items, start, columns, np.log(counts) + offset)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The number of observed pairs is known only from the saved state: take its shapes.
        for name in ("start", "columns"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        if prefix + "weight" in state_dict:
            self.weight = nn.Parameter(torch.empty_like(state_dict[prefix + "weight"]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def gather(self, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, columns, weights) of the observed successors of each code in `last` [batch]."""
        first = self.start[last]
        counts = self.start[last + 1] - first
        rows = torch.repeat_interleave(torch.arange(len(last), device=last.device), counts)
        # Position of each entry in its row, plus the row's first entry.
        row_offsets = torch.cumsum(counts, 0) - counts
        positions = torch.arange(len(rows), device=last.device)
        positions = positions - row_offsets[rows] + first[rows]
        return rows, self.columns[positions], self.weight[positions]

    def add_to(self, logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """logits [batch, n_items] + T[last, :] (a new tensor; gradients reach the weights)."""
        rows, columns, weights = self.gather(last)
        return logits.index_put((rows, columns), weights.to(logits.dtype), accumulate=True)

    def pair_weights(self, sources: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """T[sources[r], columns[r]] for each r (0 for a pair not seen in training)."""
        if len(self.columns) == 0:
            return self.weight.new_zeros(len(sources))
        first = self.start[sources]
        end = self.start[sources + 1]
        # Binary search of each column inside its source's sorted row of columns.
        low, high = first.clone(), end.clone()
        while bool((low < high).any()):
            middle = (low + high) // 2
            go_right = (low < high) & (
                self.columns[middle.clamp(max=len(self.columns) - 1)] < columns
            )
            low = torch.where(go_right, middle + 1, low)
            high = torch.where((low < high) & ~go_right, middle, high)
        position = low.clamp(max=len(self.columns) - 1)
        found = (low < end) & (self.columns[position] == columns)
        return torch.where(found, self.weight[position], torch.zeros_like(self.weight[position]))

    def dense(self) -> torch.Tensor:
        """The whole [n_items + 1, n_items] matrix by code (for tests and inspection)."""
        n_codes = len(self.start) - 1
        matrix = torch.zeros(n_codes, int(n_codes - 1), dtype=self.weight.dtype)
        counts = self.start[1:] - self.start[:-1]
        rows = torch.repeat_interleave(torch.arange(n_codes), counts.cpu())
        matrix[rows, self.columns.cpu()] = self.weight.detach().cpu()
        return matrix
