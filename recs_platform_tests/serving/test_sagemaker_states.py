"""The SageMaker deployment's state machine: the table itself (the paths through it run in
test_sagemaker.py)."""

from __future__ import annotations

import pytest

from recs_platform.serving.sagemaker import TRANSITIONS, DeploymentState, transition

ENDINGS = {
    DeploymentState.UNCHANGED,
    DeploymentState.CREATED,
    DeploymentState.UPDATED,
    DeploymentState.REWEIGHTED,
    DeploymentState.ABORTED,
    DeploymentState.ROLLED_BACK,
    DeploymentState.ROLLING_BACK,
    DeploymentState.FAILED,
    DeploymentState.TIMED_OUT,
    DeploymentState.GONE,
    DeploymentState.UNKNOWN,
}


def _reachable(start: DeploymentState) -> set[DeploymentState]:
    seen, frontier = {start}, [start]
    while frontier:
        for state in TRANSITIONS[frontier.pop()] - seen:
            seen.add(state)
            frontier.append(state)
    return seen


def test_every_state_has_one_row_and_is_reachable_from_the_start() -> None:
    assert set(TRANSITIONS) == set(DeploymentState)
    assert _reachable(DeploymentState.STARTED) == set(DeploymentState)


def test_the_states_a_deployment_ends_in_have_no_exits_and_every_other_leads_to_one() -> None:
    assert {state for state, exits in TRANSITIONS.items() if not exits} == ENDINGS
    for state in set(DeploymentState) - ENDINGS:
        assert _reachable(state) & ENDINGS, state
    assert DeploymentState.STARTED not in set().union(*TRANSITIONS.values())


def test_a_deployment_changes_the_endpoint_only_after_staging_or_by_its_weights() -> None:
    """New models need a new config (staging); the same models with a new share of traffic
    only get new weights (reweighting), never a rollback."""
    assert TRANSITIONS[DeploymentState.STARTED] == {
        DeploymentState.UNCHANGED,
        DeploymentState.ABORTED,
        DeploymentState.STAGING,
        DeploymentState.REWEIGHTING,
    }
    assert TRANSITIONS[DeploymentState.REWEIGHTING] == {
        DeploymentState.REWEIGHTED,
        DeploymentState.FAILED,
        DeploymentState.TIMED_OUT,
        DeploymentState.GONE,
        DeploymentState.UNKNOWN,
    }
    # A SageMaker rollback (its own, or ours after a Failed update) follows an update only.
    assert {
        state
        for state, exits in TRANSITIONS.items()
        if exits & {DeploymentState.ROLLED_BACK, DeploymentState.ROLLING_BACK}
    } == {DeploymentState.UPDATING}


def test_the_successful_endings_read_as_the_deployments_action() -> None:
    """The asset's `action` metadata is the state's string."""
    assert [
        DeploymentState.CREATED,
        DeploymentState.UPDATED,
        DeploymentState.REWEIGHTED,
        DeploymentState.UNCHANGED,
    ] == ["created", "updated", "reweighted", "unchanged"]
    assert DeploymentState.ROLLED_BACK.value == "rolled-back"
    assert type(DeploymentState.CREATED.value) is str


def test_a_legal_move_returns_the_new_state() -> None:
    assert transition(DeploymentState.UPDATING, DeploymentState.ROLLED_BACK) == "rolled-back"


@pytest.mark.parametrize(
    ("state", "to", "says"),
    [
        (DeploymentState.STARTED, DeploymentState.CREATING, "from started to creating"),
        (DeploymentState.CREATING, DeploymentState.ROLLED_BACK, "from creating to rolled-back"),
        (DeploymentState.CREATED, DeploymentState.UPDATING, "it moves to nowhere"),
        (DeploymentState.FAILED, DeploymentState.ROLLING_BACK, "a deployment ends there"),
    ],
)
def test_an_illegal_move_raises_and_names_the_legal_ones(
    state: DeploymentState, to: DeploymentState, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        transition(state, to)
    assert f"cannot move from {state} to {to}" in str(raised.value)
