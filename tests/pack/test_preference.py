"""The preference format: TRL conversational preference records."""

from __future__ import annotations

from typing import Any

from qudata.pack.registry import get_formatter

PAIR = {"prompt": "2+2?", "chosen": "4", "rejected": "5", "source": "math.txt"}


def fmt(**options: Any) -> Any:
    return get_formatter("preference", {"quality": {"tokenizer": "none"}}, **options)


def test_the_docstring_example() -> None:
    assert fmt().format_documents([{"prompt": "2+2?", "chosen": "4", "rejected": "5"}]) == [
        {
            "prompt": [{"role": "user", "content": "2+2?"}],
            "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}],
        }
    ]


def test_metadata_and_tools() -> None:
    row = {**PAIR, "tools": '[{"name": "add"}]'}
    (record,) = fmt(include_metadata=True).format_documents([row])
    assert list(record) == ["prompt", "chosen", "rejected", "tools", "metadata"]
    assert record["tools"] == [{"type": "function", "function": {"name": "add"}}]
    assert record["metadata"]["source"] == "math.txt"


def test_what_is_not_a_usable_pair_is_dropped_with_a_reason() -> None:
    formatter = fmt()
    rows = [
        {"text": "a plain document"},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x"}]},
        {**PAIR, "rejected": "4"},
        {**PAIR, "chosen": ""},
        {
            "prompt": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
            "chosen": "B",
            "rejected": "C",
        },
    ]
    assert formatter.format_documents(rows) == []
    assert formatter.stats.dropped == {
        "not_preference": 2,
        "identical_pair": 1,
        "empty_content": 1,
        "prompt_not_user_last": 1,
    }


def test_validate_and_tokens() -> None:
    formatter = fmt()
    (record,) = formatter.format_documents([PAIR])
    assert formatter.validate(record, {}) == []
    assert formatter.validate({**record, "prompt": []}, {}) == ["missing_preference_field"]
    assert formatter.token_texts(record, None) == ["2+2?", "4", "5"]  # type: ignore[arg-type]
