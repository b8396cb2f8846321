"""Preference records in the shapes they are published in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.normalize.preference import read_preference, split_transcript
from qudata.normalize.shapes import read_conversation
from qudata.normalize.turns import ConversationError, Turns


def test_split_transcript() -> None:
    assert split_transcript("\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Bye") == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
    ]
    assert split_transcript("Human: Hi\n\nAssistant: Hello") is not None  # no leading blank
    assert split_transcript("just text") is None
    assert split_transcript("Preamble\n\nHuman: Hi\n\nAssistant: x") is None


def test_hh_splits_at_the_common_prefix_ending_on_a_user_turn() -> None:
    row = {
        "chosen": "\n\nHuman: Q\n\nAssistant: Same start, good end.",
        "rejected": "\n\nHuman: Q\n\nAssistant: Same start, bad end.",
    }
    pair = read_preference(row, Turns())
    assert pair.kind == "hh_rlhf" and pair.prompt_turns == 1
    assert pair.messages[1]["content"] == "Same start, good end."
    assert pair.rejected == [{"role": "assistant", "content": "Same start, bad end."}]


def test_implicit_prompt_backs_off_to_the_last_user_turn() -> None:
    user = {"role": "user", "content": "Q"}
    same = {"role": "assistant", "content": "A"}
    row = {
        "chosen": [user, same, {"role": "user", "content": "more"}, same],
        "rejected": [user, same, {"role": "user", "content": "other"}, same],
    }
    pair = read_preference(row, Turns())
    assert pair.prompt_turns == 1  # the shared prefix ends on an assistant turn: backed off
    assert len(pair.rejected or []) == 3


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"chosen": "\n\nHuman: A\n\nAssistant: a", "rejected": "\n\nHuman: B\n\nAssistant: b"},
            "no_shared_prompt",
        ),
        ({"chosen": "good", "rejected": "bad"}, "unknown_shape"),
    ],
)
def test_unusable_pairs_are_refused_with_a_reason(row: dict[str, str], reason: str) -> None:
    with pytest.raises(ConversationError) as info:
        read_preference(row, Turns())
    assert info.value.reason == reason


def test_alpaca_ranking_and_tools() -> None:
    pair = read_conversation(
        {
            "instruction": "Pick",
            "input": "1 or 2",
            "chosen": "1",
            "rejected": "2",
            "tools": [{"name": "f"}],
        }
    )
    assert pair is not None and pair.kind == "ranking"
    assert pair.messages == [
        {"role": "user", "content": "Pick\n\n1 or 2"},
        {"role": "assistant", "content": "1"},
    ]
    assert pair.tools == [{"type": "function", "function": {"name": "f"}}]


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda t: "\n\nHuman: " not in t and "\n\nAssistant: " not in t and t.strip() == t
)


@settings(max_examples=60, deadline=None)
@given(
    exchanges=st.lists(st.tuples(_TEXT, _TEXT), min_size=0, max_size=3),
    question=_TEXT,
    good=_TEXT,
    bad=_TEXT,
)
def test_hh_round_trip(
    exchanges: list[tuple[str, str]], question: str, good: str, bad: str
) -> None:
    """Any transcript pair that differs in its last answer splits back into the prompt
    and the two answers."""
    if good == bad:
        return
    prefix = "".join(f"\n\nHuman: {q}\n\nAssistant: {a}" for q, a in exchanges)
    prefix += f"\n\nHuman: {question}\n\nAssistant: "
    pair = read_preference({"chosen": prefix + good, "rejected": prefix + bad}, Turns())
    assert pair.prompt_turns == 2 * len(exchanges) + 1
    assert pair.messages[pair.prompt_turns - 1] == {"role": "user", "content": question}
    assert pair.messages[pair.prompt_turns :] == [{"role": "assistant", "content": good}]
    assert pair.rejected == [{"role": "assistant", "content": bad}]


def test_whole_conversations_beside_a_prompt_that_repeats_them() -> None:
    """UltraFeedback's layout: prompt string, and chosen/rejected including it."""
    user = {"role": "user", "content": "Q"}
    row = {
        "prompt": "Q",
        "messages": [user, {"role": "assistant", "content": "good"}],
        "chosen": [user, {"role": "assistant", "content": "good"}],
        "rejected": [user, {"role": "assistant", "content": "bad"}],
    }
    pair = read_conversation(row)
    assert pair is not None and pair.kind == "preference" and pair.prompt_turns == 1
    assert pair.messages == row["chosen"]
    assert pair.rejected == [{"role": "assistant", "content": "bad"}]
