"""Column mapping (input.columns, input.tags, input.role_map)."""

from __future__ import annotations

import pytest

from qudata.config import load_config
from qudata.errors import ConfigError
from qudata.normalize.columns import COLUMN_NAMES, TAG_NAMES, Shape


def test_columns_rename_to_the_detected_keys() -> None:
    shape = Shape(columns={"prompt": "q", "response": "a", "text": "body", "id": "key"})
    row = {"q": "Why?", "a": "Because.", "instruction": "shadowed", "extra": 1}
    # text and id are the normaliser's keys, not renamed here; a mapped key wins
    assert shape.apply(row) == {"instruction": "Why?", "output": "Because.", "extra": 1}
    assert Shape().apply(row) is row


def test_tags_and_role_map_give_roles() -> None:
    shape = Shape(
        tags={"role_tag": "who", "user_tag": "Customer", "function_tag": "call"},
        role_map={"Bing": "assistant"},
    )
    assert shape.role_key == "who" and shape.content_key is None
    assert shape.roles() == {"bing": "assistant", "customer": "user", "call": "function_call"}


def test_config_knows_every_name_and_refuses_others() -> None:
    cfg = load_config({"input": {"columns": dict.fromkeys(COLUMN_NAMES, "k")}})
    assert set(cfg.input.columns) == set(COLUMN_NAMES)
    assert load_config({"input": {"tags": dict.fromkeys(TAG_NAMES, "k")}}).input.tags
    with pytest.raises(ConfigError, match="unknown column 'answer'"):
        load_config({"input": {"columns": {"answer": "a"}}})
    with pytest.raises(ConfigError, match="unknown tag 'speaker'"):
        load_config({"input": {"tags": {"speaker": "a"}}})
    with pytest.raises(ConfigError, match=r"input\.role_map\.bing"):
        load_config({"input": {"role_map": {"bing": "robot"}}})


def test_text_and_id_columns_win_over_the_keys() -> None:
    cfg = load_config({"input": {"text_key": "t", "columns": {"text": "body", "id": "key"}}})
    assert (cfg.input.text_field, cfg.input.id_field) == ("body", "key")
