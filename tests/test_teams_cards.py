"""The Adaptive Card harness (tests/teams_support.py::assert_valid_card) catches what Teams would
reject: Microsoft's renderer (npm `adaptivecards`, plain Node) plus our Action.Execute rule."""

from __future__ import annotations

import pytest
from microsoft_teams.cards import AdaptiveCard, ExecuteAction, TextBlock, TextInput

from tests.teams_support import assert_valid_card, card_errors


def good_card() -> AdaptiveCard:
    return AdaptiveCard(
        version="1.5",
        body=[TextBlock(text="A new concern needs your attention", wrap=True, weight="Bolder"),
              TextInput(id="note", label="Note", is_required=True, error_message="Please add a note")],
        actions=[ExecuteAction(title="Acknowledge", verb="acknowledge", data={"action": "acknowledge", "ref": "SG-1"})],
    )


def test_a_card_built_with_the_sdk_models_is_valid():
    assert card_errors(good_card()) == []
    assert_valid_card(good_card())


@pytest.mark.parametrize("breakage,expected", [
    (lambda c: c["body"].append({"type": "Bogus"}), "Unknown element type"),
    (lambda c: c["body"][1].pop("id"), "unique Id"),
    (lambda c: c["body"].append({"type": "Input.Text", "id": "note"}), "Duplicate id"),
    (lambda c: c["actions"].append({"type": "Action.Teleport", "title": "x"}), "Unknown action type"),
    (lambda c: c["actions"][0].pop("verb"), "has no verb"),
    (lambda c: c["actions"][0]["data"].pop("action"), "has no data.action"),
])
def test_broken_cards_are_caught(breakage, expected):
    card = good_card().model_dump(by_alias=True, exclude_none=True, mode="json")
    breakage(card)
    with pytest.raises(AssertionError) as err:
        assert_valid_card(card)
    assert expected.lower() in str(err.value).lower()
