"""Reference for the `packed` job: TRL's own SFT preparation, as SFTTrainer runs it.

Alpaca-shaped records (``instruction``, ``input``, ``output``) become conversations (a
user turn: the instruction, then the input after a blank line when there is one; an
assistant turn: the output), as qudata reads them. Then ``SFTTrainer._prepare_dataset``
itself runs on them: ``apply_chat_template`` with the template's assistant mask
(``assistant_only_loss``), labels, and best-fit-decreasing packing to ``max_length``, with
``dataset_num_proc`` processes (the cores a user has). The packed rows are written as
Parquet (``Dataset.to_parquet``), as ``-f packed`` writes them.

The trainer method is called on a stand-in for the trainer: building a real
``SFTTrainer`` needs a model, which the preparation never touches.

    python ref_trl_sft.py ALPACA.jsonl OUT.parquet --tokenizer DIR --template FILE
        [--seq-len 2048] [--num-proc 2]
"""

from __future__ import annotations

import argparse
import json
import os
import types
from typing import Any


def conversation(example: dict[str, Any]) -> dict[str, Any]:
    """One Alpaca record as messages (qudata's reading of the shape)."""
    prompt = example["instruction"]
    if example.get("input"):
        prompt = f"{prompt}\n\n{example['input']}"
    return {
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": example["output"]},
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("output")
    parser.add_argument("--tokenizer", required=True, help="a folder with tokenizer.json")
    parser.add_argument("--template", required=True, help="a chat template (.jinja)")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--num-proc", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import datasets
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    datasets.disable_caching()
    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    with open(args.template, encoding="utf-8") as handle:
        template = handle.read()
    tokenizer.chat_template = template
    raw = datasets.load_dataset("json", data_files=args.corpus, split="train")
    chats = raw.map(conversation, remove_columns=raw.column_names, num_proc=args.num_proc)
    config = SFTConfig(
        output_dir=os.path.dirname(os.path.abspath(args.output)),
        max_length=args.seq_len,
        packing=True,
        packing_strategy="bfd",
        assistant_only_loss=True,
        dataset_num_proc=args.num_proc,
        shuffle_dataset=False,
        report_to=[],
        use_cpu=True,
        bf16=False,
    )
    trainer = types.SimpleNamespace(
        _tokenizer=tokenizer, chat_template=template, completion_only_loss=False
    )
    packed = SFTTrainer._prepare_dataset(
        trainer,
        chats,
        processing_class=tokenizer,
        args=config,
        packing=True,
        formatting_func=None,
        dataset_name="train",
    )
    packed.to_parquet(args.output)
    tokens = sum(sum(lengths) for lengths in packed["seq_lengths"])
    print(json.dumps({"read": len(raw), "written": len(chats), "rows": len(packed),
                      "tokens": tokens}))  # fmt: skip


if __name__ == "__main__":
    main()
