"""A mixed shop: each session follows one of the other families, which one is hidden.

Real logs mix behaviours: one shopper pages through prices, another buys accessories, another
follows what is trending. Each session draws its family with equal shares, then that family's
own latent state; the latent state of a session is the pair (family, that family's state), and
the oracle's posterior runs over all of them: the prefix tells which kind of shopper it is.
The member families are the very shops of those names (same structures from the same seed).
"""

from __future__ import annotations

import numpy as np

from recs_platform.simulation.families.base import FamilySampler, ShopFamily


class MixedFamily(ShopFamily):
    """States: the members' states one after the other (member k's state s is
    `state_offsets[k] + s`)."""

    name = "mixed"

    def __init__(self, config, catalogue, members: list[ShopFamily]):
        super().__init__(config, catalogue)
        self.members = members
        self.revisits = any(member.revisits for member in members)
        sizes = [member.n_states for member in members]
        self.state_offsets = np.concatenate([[0], np.cumsum(sizes)])

    @property
    def n_states(self) -> int:
        return int(self.state_offsets[-1])

    def state_prior(self) -> np.ndarray:
        share = 1.0 / len(self.members)
        return np.concatenate([share * member.state_prior() for member in self.members])

    def member_of(self, states: np.ndarray) -> np.ndarray:
        """Index into `members` of each state's family."""
        return np.searchsorted(self.state_offsets, states, side="right") - 1

    def step_probabilities(self, day: int, history: np.ndarray, states: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(history), self.catalogue.n_items))
        member_index = self.member_of(states)
        for index, member in enumerate(self.members):
            selected = np.flatnonzero(member_index == index)
            if selected.size:
                rows[selected] = member.step_probabilities(
                    day, history[selected], states[selected] - self.state_offsets[index]
                )
        return rows

    def sampler(self, day: int) -> MixedSampler | None:
        samplers = [member.sampler(day) for member in self.members]
        return None if None in samplers else MixedSampler(self, samplers)


class MixedSampler(FamilySampler):
    """Each session drawn by its own family's sampler."""

    def __init__(self, family: MixedFamily, samplers: list[FamilySampler]):
        self.family = family
        self.samplers = samplers

    def _by_member(self, states, draw) -> np.ndarray:
        drawn = np.full(len(states), -1, dtype=np.int64)
        member_index = self.family.member_of(states)
        for index, sampler in enumerate(self.samplers):
            selected = np.flatnonzero(member_index == index)
            if selected.size:
                member_states = states[selected] - self.family.state_offsets[index]
                drawn[selected] = draw(sampler, selected, member_states)
        return drawn

    def first(self, rng, states):
        return self._by_member(
            states, lambda sampler, _, member_states: sampler.first(rng, member_states)
        )

    def next(self, rng, history, states):
        return self._by_member(
            states,
            lambda sampler, selected, member_states: sampler.next(
                rng, history[selected], member_states
            ),
        )
