"""Masks under any text: ids decode to the ChatML rendering, masked ids to exactly the
answers (segment tokenisation around BPE-merge bait)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.account import Drop
from qudata.models import Document
from qudata.pack.chatml_render import render_chatml
from qudata.pack.masks import Rendering, Vocabulary, find_turns
from qudata.pack.packed import PackedFormatter
from qudata.quality.tokens import get_token_counter

CL100K = get_token_counter("cl100k_base")
# text with BPE-merge bait around the markers: |, >, newlines, spaces, non-ASCII
TEXT = st.text(alphabet="ab |>\n<é😀_", min_size=1, max_size=30)
TURNS = st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(TURNS, st.booleans())
def test_ids_decode_to_the_render_and_masks_to_the_answers(turns: Any, system: bool) -> None:
    messages = [{"role": "system", "content": "Sys |>"}] if system else []
    for question, answer in turns:
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    formatter = PackedFormatter({"pack": {"packed": {"seq_len": 100_000}}})
    doc = Document(text="", id="d", messages=messages)
    (record,) = formatter.format_document(doc, formatter.options, {})
    assert CL100K.decode(record["ids"]) == render_chatml(messages)
    masked = [CL100K.decode(record["ids"][a:b]) for a, b in record["spans"]]
    # whole-text tokenization: a token may join separator whitespace to a span's edge
    for got, (_, answer) in zip(masked, turns, strict=True):
        want = answer + "<|im_end|>"
        at = got.find(want)
        assert at >= 0 and not got[:at].strip() and not got[at + len(want) :].strip()


def test_the_whole_text_is_encoded_with_only_markers_special() -> None:
    vocab = Vocabulary(CL100K)
    encode = vocab.encoder(["<|endoftext|>"])
    text = "ab|>\ncd<|endoftext|>\nx<|fim_prefix|>"
    encoded = encode(text)
    # the whole text at once, as tiktoken's encode(allowed_special={marker}) does: the
    # text between markers as ordinary text, the marker its special id
    eot = CL100K.token_id("<|endoftext|>")
    expected = [*CL100K.encode_ordinary("ab|>\ncd"), eot]
    expected += CL100K.encode_ordinary("\nx<|fim_prefix|>")
    assert encoded.ids == expected and vocab.decode(encoded.ids) == text
    assert vocab.counter(["<|endoftext|>"])(text) == len(expected)
    assert encoded.ids.count(CL100K.token_id("<|endoftext|>")) == 1
    # <|fim_prefix|> is not a marker here: ordinary text, never the special id
    assert CL100K.token_id("<|fim_prefix|>") not in encoded.ids


def test_a_generation_prompt_that_is_not_a_prefix_is_unaligned() -> None:
    def render(messages: list[dict[str, Any]], generation: bool) -> str:
        text = "".join(f"[{m['role']}] {m['content']}\n" for m in messages)
        return text + ("[bot] " if generation else "")  # the turns say [assistant]

    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    result = find_turns(render, messages, [])
    assert isinstance(result, Drop) and result.reason == "mask_unaligned"
    stable = find_turns(lambda m, g: render(m, False) + ("[assistant] " if g else ""),
                        messages, [])  # fmt: skip
    assert isinstance(stable, Rendering)
    (turn,) = stable.turns
    assert stable.text[turn.start : turn.start + len(turn.span)] == "b" and turn.stable
