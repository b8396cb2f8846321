"""-f packed with a SentencePiece (Metaspace) tokenizer, as Llama-2 and Mistral ship theirs.

A small SentencePiece BPE model is trained here (byte fallback, as Llama's) and converted
to ``tokenizer.json`` by ``transformers``' ``LlamaTokenizer`` from the ``tokenizer.model``. Its
``▁`` prefix is added once, at the start of the text: a conversation tokenized segment by
segment would get one per segment; tokenized whole, its ids are ``apply_chat_template``'s.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from qudata.models import Document
from qudata.pack.packed import PackedFormatter

spm = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")

#: Llama-2-chat's template (``[INST]``, ``<<SYS>>``, ``bos_token``/``eos_token``)
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}"
    "{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog;", "hello,"]
WORDS += ["world!", "data", "model", "token"]
ODD = ["", " ", "  ", "\n", "\n\n", "\t", "é", "😀", "日本", "—", "  x", "1234"]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sp")
    rng = random.Random(7)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(3000)))
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "sp"),
        vocab_size=360,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    slow = folder / "slow"  # a Llama-2 repository's layout: tokenizer.model only
    slow.mkdir()
    (slow / "tokenizer.model").write_bytes((folder / "sp.model").read_bytes())
    out = folder / "hf"
    transformers.LlamaTokenizer.from_pretrained(str(slow)).save_pretrained(str(out))
    assert '"Metaspace"' in (out / "tokenizer.json").read_text()
    # the legacy layout of Llama-2's own tokenizer.json (older transformers converted it
    # so): a Prepend("▁") + Replace normalizer, no pre-tokenizer; every piece after a
    # special token starts with "▁" (what Llama-2 reads: "<s>▁[INST]")
    data = json.loads((out / "tokenizer.json").read_text())
    data["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        ],
    }
    data["pre_tokenizer"] = None
    legacy = folder / "legacy"
    legacy.mkdir()
    (legacy / "tokenizer.json").write_text(json.dumps(data))
    return out


def _conversations(count: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(11)

    def text() -> str:
        words = rng.choices(WORDS, k=rng.randint(1, 9))
        return rng.choice(ODD) + " ".join(words) + rng.choice(ODD) + rng.choice(WORDS)

    out = []
    for n in range(count):
        messages: list[dict[str, Any]] = []
        if n % 3 == 0:
            messages.append({"role": "system", "content": text()})
        for _ in range(rng.randint(1, 3)):
            messages += [
                {"role": "user", "content": text()},
                {"role": "assistant", "content": text()},
            ]
        out.append(messages)
    return out


@pytest.mark.parametrize(
    ("template", "layout"), [("chatml", "hf"), ("llama2", "hf"), ("llama2", "legacy")]
)
def test_sentencepiece_conversations_pack_as_transformers_tokenizes_them(
    tokenizer_dir: Path, template: str, layout: str
) -> None:
    path = tokenizer_dir / "tokenizer.json"
    if layout == "legacy":
        path = tokenizer_dir.parent / "legacy" / "tokenizer.json"
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(path), bos_token="<s>", eos_token="</s>"
    )
    config = {
        "quality": {"tokenizer": str(path)},
        "pack": {
            "packed": {
                "seq_len": 100_000,
                "template": "chatml" if template == "chatml" else LLAMA2,
                "template_vars": {"bos_token": "<s>", "eos_token": "</s>"}
                if template == "llama2"
                else {},
            }
        },
    }
    formatter = PackedFormatter(config)
    conversations = _conversations(200)
    written = 0
    for number, messages in enumerate(conversations):
        doc = Document(text="", id=str(number), messages=messages)
        result = formatter.format_document(doc, formatter.options, {})
        if not isinstance(result, list):
            continue
        written += 1
        (record,) = result
        if template == "chatml":
            text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        else:
            text = tokenizer.apply_chat_template(messages, chat_template=LLAMA2, tokenize=False)
        ids = record["ids"]
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
        if layout == "legacy":  # its decoder shows the "▁" after each marker as a space
            text = text.replace("<s>", "<s> ")
        assert tokenizer.decode(ids) == text
        masked = tokenizer.decode(
            [i for low, high in record["spans"] for i in ids[low:high]]
        ).replace(" ", "")
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        squeezed = "".join(answers).replace(" ", "")
        marker = "<|im_end|>\n" if template == "chatml" else "</s>"
        for answer in answers:  # the answers, in order, and nothing of the prompts
            assert answer.strip().replace(" ", "") in masked
        assert len(masked) - len(squeezed) <= len(answers) * (len(marker) + 4)
    assert written >= 0.99 * len(conversations)
    assert not formatter.stats.dropped
