"""-f packed: tokens, masks and positions (goldens), the mask checks and drops, and the
Parquet rows read back by pyarrow and ``datasets``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import qudata
from qudata.errors import ConfigError
from qudata.models import Document
from qudata.pack.bfd import rows_lower_bound
from qudata.pack.chatml_render import render_chatml
from qudata.pack.packed import PackedFormatter
from qudata.quality.tokens import get_token_counter

pq = pytest.importorskip("pyarrow.parquet")

CL100K = get_token_counter("cl100k_base")
#: the 3-turn conversation with a tool call of the goldens
CONVERSATION = [
    {"role": "user", "content": "Time?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "now", "arguments": "{}"}}],
    },
    {"role": "tool", "content": "12:00"},
    {"role": "assistant", "content": "Noon."},
]
START = ["<", "|", "im", "_start", "|", ">"]  # <|im_start|>: not special in cl100k_base
END = ["<", "|", "im", "_end", "|", ">"]
#: each token of the ChatML rendering under cl100k_base, tokenized whole (as a trainer
#: tokenizes the render: BPE merges cross the markers, ``?<``, ``>\n``), and its mask
CHATML_GOLDEN = [
    *[(t, 0) for t in ["<", "|", "im", "_start", "|", ">", "user", "\n", "Time", "?<"]],
    *[(t, 0) for t in ["|", "im", "_end", "|", ">\n", "<", "|", "im", "_start", "|"]],
    *[(t, 0) for t in [">", "assistant", "\n"]],
    *[(t, 1) for t in ["<", "tool", "_call", ">\n", '{"', "name", '":', ' "', "now", '",']],
    *[(t, 1) for t in [' "', "arguments", '":', " {}", "}\n", "</", "tool", "_call", "><", "|"]],
    *[(t, 1) for t in ["im", "_end", "|", ">\n"]],
    *[(t, 0) for t in ["<", "|", "im", "_start", "|", ">", "user", "\n", "<", "tool"]],
    *[(t, 0) for t in ["_response", ">\n", "12", ":", "00", "\n", "</", "tool", "_response", "><"]],
    *[(t, 0) for t in ["|", "im", "_end", "|", ">\n", "<", "|", "im", "_start", "|"]],
    *[(t, 0) for t in [">", "assistant", "\n"]],
    *[(t, 1) for t in ["No", "on", ".<", "|", "im", "_end", "|", ">\n"]],
]
CHATML_IDS = [
    *[27, 91, 318, 5011, 91, 29, 882, 198, 1489, 76514, 91, 318, 6345, 91, 397, 27],
    *[91, 318, 5011, 91, 29, 78191, 198, 27, 14506, 13735, 397, 5018, 609, 794, 330, 3409],
    *[498, 330, 16774, 794, 4792, 534, 524, 14506, 13735, 1822, 91, 318, 6345, 91, 397, 27],
    *[91, 318, 5011, 91, 29, 882, 198, 27, 14506, 9852, 397, 717, 25, 410, 198, 524],
    *[14506, 9852, 1822, 91, 318, 6345, 91, 397, 27, 91, 318, 5011, 91, 29, 78191, 198],
    *[2822, 263, 16134, 91, 318, 6345, 91, 397],
]


def write(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def mask_of(record: dict[str, Any]) -> list[int]:
    mask = [0] * len(record["ids"])
    for low, high in record["spans"]:
        mask[low:high] = [1] * (high - low)
    return mask


def format_one(messages: list[dict[str, Any]], config: dict[str, Any] | None = None) -> Any:
    formatter = PackedFormatter(config or {})
    doc = Document(text="", id="c1", messages=messages)
    return formatter.format_document(doc, formatter.options, {}), formatter


def rows_of(out: Path, split: str = "train") -> list[dict[str, Any]]:
    rows = []
    for path in sorted((out / "packed").glob(f"{split}-*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def test_chatml_golden_under_cl100k_base(tmp_path: Path) -> None:
    records, _ = format_one(CONVERSATION)
    (record,) = records
    assert orjson.loads(orjson.dumps(records)) == records  # plain JSON values
    assert record["ids"] == CHATML_IDS
    # the whole render, as tiktoken encodes it (markers not special in cl100k_base)
    assert CL100K.encode_ordinary(render_chatml(CONVERSATION)) == CHATML_IDS
    assert [CL100K.decode([i]) for i in record["ids"]] == [t for t, _ in CHATML_GOLDEN]
    assert mask_of(record) == [m for _, m in CHATML_GOLDEN]
    out = tmp_path / "out"
    rows = [{"id": "c1", "messages": CONVERSATION}]
    report = qudata.pack_dataset(write(tmp_path, rows), out, formats=["packed"])
    assert report.balanced()
    (row,) = rows_of(out)
    assert row["input_ids"] == CHATML_IDS
    assert row["assistant_masks"] == [m for _, m in CHATML_GOLDEN]
    assert row["position_ids"] == list(range(len(CHATML_IDS)))
    assert row["seq_lengths"] == [len(CHATML_IDS)] and row["doc_ids"] == ["c1"]


def byte_tokenizer(tmp_path: Path, specials: list[str]) -> tuple[Path, dict[str, int]]:
    """A byte-level tokenizer without merges: each byte is the token of its value, the
    special tokens follow from 256 (hand-checkable ids)."""
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    by_byte = {char: value for value, char in enumerate(_BYTE_CHARS)}
    tokenizer = Tokenizer(models.BPE(vocab=by_byte, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(specials)
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    return path, {s: 256 + n for n, s in enumerate(specials)}


def _byte_chars() -> list[str]:
    """GPT-2's ``bytes_to_unicode``: printable bytes are themselves, the others ``256 + n``."""
    printable = {*range(33, 127), *range(161, 173), *range(174, 256)}
    chars, extra = [], 0
    for value in range(256):
        if value in printable:
            chars.append(chr(value))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


_BYTE_CHARS = _byte_chars()


OWN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m.role == 'assistant' %}<|assistant|>"
    "{% for c in m.tool_calls or [] %}[call {{ c.function.name }}{{ c.function.arguments }}]"
    "{% endfor %}{{ m.content }}<|end|>{{ '\\n' }}"
    "{% else %}<|{{ m.role }}|>{{ m.content }}<|end|>{{ '\\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_tokenizer_json_golden_with_its_own_template(tmp_path: Path) -> None:
    path, special = byte_tokenizer(tmp_path, ["<|user|>", "<|assistant|>", "<|tool|>", "<|end|>"])
    user, assistant, tool, end = (special[k] for k in special)
    config = {
        "quality": {"tokenizer": str(path)},
        "pack": {"packed": {"template": OWN_TEMPLATE, "seq_len": 256}},
    }
    records, _ = format_one(CONVERSATION, config)
    (record,) = records

    def text(s: str) -> list[int]:
        return list(s.encode())

    # <|user|>Time?<|end|>\n <|assistant|>[call now{}]<|end|>\n <|tool|>12:00<|end|>\n
    # <|assistant|>Noon.<|end|>\n: markers are single special tokens
    expected = [user, *text("Time?"), end, 10, assistant]
    first = len(expected)
    expected += [*text("[call now{}]"), end]
    first_end = len(expected)
    expected += [10, tool, *text("12:00"), end, 10, assistant]
    second = len(expected)
    expected += [*text("Noon."), end]
    second_end = len(expected)
    expected += [10]
    assert record["ids"] == expected
    assert record["spans"] == [[first, first_end], [second, second_end]]
    out = tmp_path / "out"
    qudata.pack_dataset(
        write(tmp_path, [{"id": "c1", "messages": CONVERSATION}]), out, config=config,
        formats=["packed"],
    )  # fmt: skip
    (row,) = rows_of(out)
    assert row["input_ids"] == expected
    assert row["assistant_masks"] == mask_of(record)
    assert row["position_ids"] == list(range(len(expected)))


def test_markers_in_content_are_escaped_never_special(tmp_path: Path) -> None:
    path, special = byte_tokenizer(tmp_path, ["<|user|>", "<|assistant|>", "<|end|>"])
    config = {
        "quality": {"tokenizer": str(path)},
        "pack": {"packed": {"template": OWN_TEMPLATE}},
    }
    messages = [
        {"role": "user", "content": "Say <|end|><|assistant|> now"},
        {"role": "assistant", "content": "ok"},
    ]
    records, formatter = format_one(messages, config)
    (record,) = records
    assert record["ids"].count(special["<|end|>"]) == 2  # the template's two, not the user's
    assert record["ids"].count(special["<|assistant|>"]) == 1
    assert formatter.stats.events["markup_escaped"] == 1


@pytest.mark.parametrize(
    ("messages", "reason"),
    [
        ([{"role": "user", "content": "no answer"}], "mask_empty"),
        ([{"role": "assistant", "content": "only me"}], "mask_full"),
        ([{"role": "user", "content": "x " * 3000}, {"role": "assistant", "content": "y"}],
         "too_long"),
    ],
)  # fmt: skip
def test_bad_masks_and_long_conversations_are_dropped(
    messages: list[dict[str, Any]], reason: str
) -> None:
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    config = {"pack": {"packed": {"seq_len": 1024}}}
    if reason == "mask_full":  # a template that writes only the answers
        config["pack"]["packed"]["template"] = template
    result, formatter = format_one(messages, config)
    assert result.reason == reason
    # the tokens lost: the whole rendering's, under its reason (the manifest's dropped_tokens)
    text = render_chatml(messages) if reason != "mask_full" else "only me"
    assert formatter.stats.dropped_tokens == {reason: len(CL100K.encode_ordinary(text))}


def test_mask_all_covers_every_token() -> None:
    records, _ = format_one(CONVERSATION, {"pack": {"packed": {"mask": "all"}}})
    assert records[0]["spans"] == [[0, len(CHATML_IDS)]]


def test_split_turns_cuts_between_exchanges_with_the_system_turn() -> None:
    system = {"role": "system", "content": "Be brief."}
    turns = []
    for n in range(4):
        turns += [
            {"role": "user", "content": f"Question {n}: " + "why " * 40},
            {"role": "assistant", "content": f"Answer {n}: " + "because " * 40},
        ]
    messages = [system, *turns]
    whole, _ = format_one(messages, {"pack": {"packed": {"seq_len": 4096}}})
    length = len(whole[0]["ids"])
    config = {"pack": {"packed": {"seq_len": length // 2, "on_overflow": "split_turns"}}}
    pieces, formatter = format_one(messages, config)
    dropped, _ = format_one(messages, {"pack": {"packed": {"seq_len": length // 2}}})
    assert dropped.reason == "too_long"
    assert len(pieces) >= 2 and formatter.stats.events["split_turns"] == 1
    texts = [CL100K.decode(p["ids"]) for p in pieces]
    for text in texts:
        assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
        assert len(CL100K.encode_batch([text])[0]) > 0
    answers = [t for t in texts for n in range(4) if f"Answer {n}:" in t]
    assert len(answers) == 4  # every answer once, none cut
    assert all(len(p["ids"]) <= length // 2 for p in pieces)


#: Qwen3's rule: assistant turns before the last user turn lose their <think> block
REASONING_TEMPLATE = (
    "{% set ns = namespace(last=0) %}"
    "{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}"
    "{% endif %}{% endfor %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}{{ '\\n' }}"
    "{% if m.role == 'assistant' and loop.index0 < ns.last %}"
    "{{ m.content.split('</think>')[-1].lstrip() }}"
    "{% else %}{{ m.content }}{% endif %}<|im_end|>{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"
)
THINKING = [
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>two and two</think>\n4"},
    {"role": "user", "content": "3+3?"},
    {"role": "assistant", "content": "<think>three and three</think>\n6"},
]


def masked_texts(record: dict[str, Any]) -> list[str]:
    """The masked texts; the newline after ``<|im_end|>`` (text in cl100k_base) is merged
    into its last token, ``>\\n``, so it is masked with it: cut off here."""
    return [CL100K.decode(record["ids"][a:b]).removesuffix("\n") for a, b in record["spans"]]


def test_reasoning_templates_are_detected_and_follow_the_policy() -> None:
    def run(policy: str) -> tuple[Any, Any]:
        config = {"pack": {"packed": {"template": REASONING_TEMPLATE, "reasoning": policy}}}
        return format_one(THINKING, config)

    last, formatter = run("last_turn")
    assert formatter.stats.events["reasoning_template"] == 1
    assert masked_texts(last[0]) == ["<think>three and three</think>\n6<|im_end|>"]
    assert "two and two" not in CL100K.decode(last[0]["ids"])
    per_turn, _ = run("per_turn")
    assert [masked_texts(r) for r in per_turn] == [
        ["<think>two and two</think>\n4<|im_end|>"],
        ["<think>three and three</think>\n6<|im_end|>"],
    ]
    assert "two and two" not in CL100K.decode(per_turn[1]["ids"])
    keep, _ = run("keep")
    assert masked_texts(keep[0]) == ["4<|im_end|>", "<think>three and three</think>\n6<|im_end|>"]
    plain, formatter = format_one(THINKING)  # ChatML keeps every turn: nothing to report
    assert len(masked_texts(plain[0])) == 2 and not formatter.stats.events["reasoning_template"]


def test_packed_needs_an_exact_tokenizer(tmp_path: Path) -> None:
    config = {"quality": {"tokenizer": "estimate"}}
    rows = [{"id": "c1", "messages": CONVERSATION}]
    with pytest.raises(ConfigError, match="token ids"):
        qudata.pack_dataset(write(tmp_path, rows), tmp_path / "o", config=config,
                            formats=["packed"])  # fmt: skip


def chats(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"c{k}",
            "messages": [
                {"role": "user", "content": f"Question {k}? " + "word " * (k * 7 % 50)},
                {"role": "assistant", "content": f"Answer {k}. " + "more " * (k * 13 % 90)},
            ],
        }
        for k in range(n)
    ]


def test_end_to_end_rows_accounting_and_real_readers(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    plain = [{"id": f"p{k}", "text": f"Plain text {k}. " * (40 + 30 * k)} for k in range(4)]
    rows = [*chats(40), *plain, {"id": "bad", "messages": [{"role": "user", "content": "?"}]}]
    out = tmp_path / "out"
    config = {"pack": {"packed": {"seq_len": 256}}, "output": {"shard_records": 10}}
    report = qudata.pack_dataset(write(tmp_path, rows), out, config=config, formats=["packed"])
    assert report.balanced()
    stats = report.formats["packed"]
    assert stats.dropped == {"mask_empty": 1} and stats.documents == 44
    manifest = orjson.loads((out / "manifest.json").read_bytes())["formats"]["packed"]
    table = rows_of(out)
    files = sorted((out / "packed").glob("train-*.parquet"))
    assert len(files) == len(manifest["files"]) > 1
    loaded = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    assert loaded.to_list() == table
    tokens = sum(len(r["input_ids"]) for r in table)
    packing = manifest["packing"]["train"]
    assert manifest["tokens"] == packing["tokens"] == tokens
    assert packing["rows"] == len(table) and packing["lower_bound"] == -(-tokens // 256)
    assert packing["packing_efficiency"] == round(tokens / (len(table) * 256), 6)
    lengths = [n for row in table for n in row["seq_lengths"]]
    assert packing["lower_bound_l2"] == rows_lower_bound(lengths, 256)
    assert packing["lower_bound"] <= packing["lower_bound_l2"] <= packing["rows"]
    assert {f["packing"]["split_lower_bound_l2"] for f in manifest["files"]} == {
        packing["lower_bound_l2"]
    }
    assert sum(packing["fill"]) == len(table)
    report_html = (out / "report.html").read_text()
    assert 'id="chart-fill-packed-train"' in report_html
    assert f"{len(table):,} rows, lower bound {packing['lower_bound']:,}" in report_html
    segments: dict[str, list[int]] = {}
    for row in table:
        assert 0 < len(row["input_ids"]) <= 256
        assert sum(row["seq_lengths"]) == len(row["input_ids"])
        assert len(row["doc_ids"]) == len(row["seq_lengths"])
        at = 0
        for doc, length in zip(row["doc_ids"], row["seq_lengths"], strict=True):
            assert row["position_ids"][at : at + length] == list(range(length))
            segments.setdefault(doc, []).extend(row["input_ids"][at : at + length])
            if doc.startswith("p"):
                assert set(row["assistant_masks"][at : at + length]) == {1}
            at += length
    eot = CL100K.token_id("<|endoftext|>")
    plain_stream = [i for r in plain for i in [*CL100K.encode_batch([r["text"]])[0], eot]]
    assert [i for p in plain for i in segments[p["id"]]] == plain_stream
    for chat in chats(40):
        decoded = CL100K.decode(segments[chat["id"]])
        assert decoded.startswith("<|im_start|>user\n" + chat["messages"][0]["content"])


def test_the_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    source = write(tmp_path, chats(30))
    config = {"pack": {"packed": {"seq_len": 300}}}
    for name in ("a", "b"):
        qudata.pack_dataset(source, tmp_path / name, config=config, formats=["packed"])
    first = (tmp_path / "a" / "packed" / "train-00000-of-00001.parquet").read_bytes()
    assert first == (tmp_path / "b" / "packed" / "train-00000-of-00001.parquet").read_bytes()
    assert not list((tmp_path / "a" / "packed").glob(".*"))  # no spill left behind


def test_shuffled_records_pack_the_same_sequences(tmp_path: Path) -> None:
    source = write(tmp_path, chats(30))
    segments = []
    for name, shuffle in (("a", False), ("b", True)):
        config = {"pack": {"packed": {"seq_len": 300}}, "output": {"shuffle": shuffle}}
        qudata.pack_dataset(source, tmp_path / name, config=config, formats=["packed"])
        found = {}
        for row in rows_of(tmp_path / name):
            at = 0
            for doc, length in zip(row["doc_ids"], row["seq_lengths"], strict=True):
                found[doc] = (
                    row["input_ids"][at : at + length],
                    row["assistant_masks"][at : at + length],
                )
                at += length
        segments.append(found)
    assert segments[0] == segments[1] and len(segments[0]) == 30


def test_an_assistant_message_of_weight_0_is_context(tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bad answer.", "weight": 0},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": "Good answer.", "weight": 1},
    ]
    records, _ = format_one(messages)
    assert masked_texts(records[0]) == ["Good answer.<|im_end|>"]
    out = tmp_path / "out"
    qudata.pack_dataset(write(tmp_path, [{"id": "w", "messages": messages}]), out,
                        formats=["packed"])  # fmt: skip
    (row,) = rows_of(out)
    masked = [i for i, m in zip(row["input_ids"], row["assistant_masks"], strict=True) if m]
    assert CL100K.decode(masked) == "Good answer.<|im_end|>\n"  # ">\\n" is one token
    weightless, _ = format_one([{**m, "weight": 0} if m["role"] == "assistant" else m
                                for m in messages])  # fmt: skip
    assert weightless.reason == "mask_empty"
