"""The dataset card: ``OUT_DIR/README.md`` in the Hugging Face dataset-card format.

Its YAML front matter lists one config per format with its split files, so
``datasets.load_dataset(OUT_DIR, "chatml")`` loads every split with no other
argument. ``datasets`` picks one builder for all configs of a card (the first
config's), so the top card lists only the JSON formats (``chatml``, ``jsonl``);
Parquet output gets its own card in ``OUT_DIR/parquet/`` and loads with
``load_dataset(OUT_DIR + "/parquet")``. Plain text and LLMBuilder output are
for reading and for LLMBuilder, not for ``datasets``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["card_formats", "code_block", "code_span", "render_card", "render_folder_card"]


def card_formats(manifest: dict[str, Any], card: str) -> list[str]:
    """The formats of ``manifest`` with files whose registry entry has ``card`` (see
    :attr:`qudata.pack.base.Formatter.card`)."""
    from qudata.pack.registry import FORMATTERS

    return [
        name
        for name, fmt in manifest["formats"].items()
        if name in FORMATTERS and FORMATTERS[name].card == card and fmt["files"]
    ]


def _configs(manifest: dict[str, Any], names: list[str], prefix: str = "") -> list[dict[str, Any]]:
    configs = []
    for name in names:
        by_split: dict[str, list[str]] = defaultdict(list)
        for file in manifest["formats"][name]["files"]:
            by_split[file["split"]].append(file["path"].removeprefix(prefix))
        if by_split:
            configs.append(
                {
                    "config_name": name,
                    "data_files": [{"split": s, "path": paths} for s, paths in by_split.items()],
                }
            )
    return configs


def _front_matter(
    configs: list[dict[str, Any]],
    features: dict[str, list[dict[str, Any]]] | None = None,
    statement: Mapping[str, Any] | None = None,
) -> str:
    data: dict[str, Any] = {}
    for key in ("license", "pretty_name"):  # the Hub's keys, as the user stated them
        if statement and statement.get(key):
            data[key] = str(statement[key])
    if configs:
        data["configs"] = configs
    infos = [
        {"config_name": c["config_name"], "features": features[c["config_name"]]}
        for c in configs
        if features and features.get(c["config_name"])
    ]
    if infos:  # declared, so datasets does not infer the schema from the first file
        data["dataset_info"] = infos
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return f"---\n{body}---\n"


def _sizes(manifest: dict[str, Any]) -> list[str]:
    lines = [
        "| format | split | files | documents | records | tokens | bytes |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, fmt in manifest["formats"].items():
        splits: dict[str, dict[str, int]] = {}
        for file in fmt["files"]:
            row = splits.setdefault(file["split"], defaultdict(int))
            row["files"] += 1
            for key in ("documents", "records", "bytes"):
                row[key] += file[key]
            row["tokens"] += file.get("tokens") or 0
        for split, row in splits.items():
            tokens = f"{row['tokens']:,}" if fmt.get("tokens") is not None else "-"
            lines.append(
                f"| {name} | {split} | {row['files']} | {row['documents']:,} | "
                f"{row['records']:,} | {tokens} | {row['bytes']:,} |"
            )
    return lines


def _filters(manifest: dict[str, Any]) -> list[str]:
    cfg, counts = manifest["config"], manifest["counts"]
    dropped = ", ".join(f"{r} {n:,}" for r, n in counts["dropped"].items()) or "none"
    quality = cfg["quality"]
    dedup = cfg["dedup"]
    lines = [
        f"- Read {counts['read']:,} documents; accepted {counts['accepted']:,}; "
        f"dropped before formatting: {dropped}.",
        f"- Quality: `min_quality_score` {_shown(quality['min_quality_score'])}, documents "
        f"without a score: `{quality['missing_score']}`.",
        f"- Duplicates: `{dedup['method']}`"
        + (f" (Jaccard >= {dedup['threshold']})" if dedup["method"] == "near" else "")
        + "; the first copy seen is kept.",
        *_dedup_line(manifest.get("dedup")),
        *_input_keys(counts.get("input_keys")),
        f"- Tokens counted with {code_span(quality['tokenizer'])}.",
    ]
    contaminated = counts.get("contaminated")
    if contaminated is not None:
        found = manifest.get("decontamination", {})
        files = ", ".join(
            f"{code_span(f)} ({n:,} dropped"
            + (f", {_items(found[f]['items'])} matched)" if f in found else ")")
            for f, n in contaminated.items()
        )
        ngram = quality["decontamination"]["ngram"]
        lines.append(f"- Decontaminated against {files}: {ngram}-word n-grams.")
    if quality.get("languages"):
        kept = ", ".join(quality["languages"])
        lines.append(f"- Languages kept: {kept} (identified with py3langid when not given).")
    if dedup["method"] == "near":
        lines.append(
            "- Splits follow duplicate clusters: exact and near duplicates never cross splits."
        )
    else:
        lines.append(
            "- Splits follow exact-text clusters: exact duplicates never cross splits, "
            "but near duplicates can (use `--dedup near` to keep them apart)."
        )
    for name, fmt in manifest["formats"].items():
        if fmt.get("events", {}).get("reasoning_messages"):
            tokens = fmt["events"].get("reasoning_tokens")
            lines.append(
                f"- `{name}` keeps `reasoning_content` in {fmt['events']['reasoning_messages']:,}"
                " messages" + (f" ({tokens:,} tokens)." if tokens else ".")
            )
        if fmt["dropped"]:
            reasons = ", ".join(f"{r} {n:,}" for r, n in fmt["dropped"].items())
            lines.append(f"- `{name}` dropped: {reasons}.")
    return lines


def _items(n: int) -> str:
    return f"{n:,} benchmark item{'' if n == 1 else 's'}"


def _input_keys(keys: dict[str, dict[str, int]] | None) -> list[str]:
    """The field-level account: every input key, mapped, carried or dropped, by name."""
    if not keys or not any(keys.values()):
        return []
    parts = []
    for name in ("mapped", "carried", "dropped"):
        counts = sorted(keys.get(name, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        if counts:
            shown = ", ".join(f"{code_span(k)} {n:,}" for k, n in counts[:20])
            more = f" and {len(counts) - 20} more" if len(counts) > 20 else ""
            parts.append(f"{name} {shown}{more}")
    return [f"- Input keys (records): {'; '.join(parts)}."]


def _dedup_line(found: dict[str, Any] | None) -> list[str]:
    """The clusters found, and how near duplicates were found (the manifest's ``dedup``)."""
    if not found:
        return []
    with_copies = sum(n for size, n in found["cluster_sizes"].items() if size != "1")
    largest = max((int(size) for size in found["cluster_sizes"]), default=0)
    line = (
        f"- {found['documents']:,} documents in {found['clusters']:,} clusters; "
        f"{with_copies:,} with copies (the largest: {largest:,} documents)"
    )
    if found["method"] == "near":
        line += (
            f"; MinHash LSH with {found['permutations']} permutations, {found['bands']} bands "
            f"x {found['rows']} rows, {found['shingle_size']}-word shingles, seed {found['seed']}"
        )
    return [line + "."]


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def _visible(text: str) -> str:
    """Control characters as escapes (``\\n``): a line break in a file name would end a
    paragraph or a table row."""
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode(), text)


def _fence(text: str, least: int) -> str:
    """A backtick fence longer than any backtick run in ``text`` (CommonMark closes a code
    span or block only with a run of the same length), so ``text`` cannot break out."""
    runs = [len(r) for r in re.findall(r"`+", text)]
    return "`" * max(least, max(runs, default=0) + 1)


def code_span(value: Any) -> str:
    """``value`` as inline code, whatever it holds (backticks, HTML, line breaks)."""
    text = _visible(str(value))
    fence = _fence(text, 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(text: str) -> str:
    """``text`` as a fenced code block that no line of it can close."""
    fence = _fence(text, 3)
    return f"{fence}\n{text}\n{fence}\n"


def _mix(mix: dict[str, Any]) -> list[str]:
    lines = [
        "Weights are shares of output tokens, after every filter and deduplication "
        f"(seed {mix['seed']}).",
        "",
        "| source | weight | share | tokens | documents | repeated | down-sampled |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in mix["sources"]:
        lines.append(
            f"| {code_span(s['path'])} | {s['weight']:.4g} | {s['share']:.4g} | {s['tokens']:,} | "
            f"{s['documents']:,} | {s['repeated']:,} | {s['downsampled']:,} |"
        )
    return lines


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


#: Inputs listed by name in the card (manifest.json lists every one).
MAX_INPUTS = 20


def _sources(
    manifest: dict[str, Any], statement: Mapping[str, Any], licenses: Mapping[str, int] | None
) -> list[str]:
    """The inputs (name, records, sha256), the user's licence, the records' own."""
    lines = []
    stated = statement.get("license")
    if stated:
        lines.append(f"Licence: {code_span(stated)} (stated in `output.card.license`).")
    else:
        lines.append(
            "No licence stated: set `output.card.license` (an SPDX id such as `cc-by-4.0`, "
            "or `other`) and `output.card.description` in the configuration."
        )
    inputs = manifest.get("inputs") or []
    if inputs:
        lines += ["", "| input | records | sha256 |", "|---|---:|---|"]
        for entry in inputs[:MAX_INPUTS]:
            sha, pieces = entry.get("sha256"), entry.get("pieces")
            shown = code_span(sha[:16]) if sha else "-"
            if not sha and pieces:  # a remote file hashed range by range
                shown = f"{len(pieces):,} ranges (`manifest.json`)"
            lines.append(f"| {code_span(entry['path'])} | {int(entry['records']):,} | {shown} |")
        if len(inputs) > MAX_INPUTS:
            lines.append(f"| and {len(inputs) - MAX_INPUTS:,} more (see `manifest.json`) | | |")
    accepted = int(manifest["counts"]["accepted"])
    found = sorted((licenses or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    lines.append("")
    if found:
        without = accepted - sum(n for _, n in found)
        shown = ", ".join(f"{code_span(name)} {n:,}" for name, n in found[:10])
        if len(found) > 10:
            shown += f" and {len(found) - 10:,} more"
        lines.append(
            "The records' own `license` fields (documents accepted): "
            + shown
            + (f"; without one: {without:,}." if without > 0 else ".")
        )
    else:
        lines.append("No record carries a `license` (or `licence`) field.")
    return lines


def _warnings(manifest: dict[str, Any]) -> list[str]:
    """The manifest's warning counters (kept documents), largest first."""
    lines = []
    named = [("", manifest["counts"].get("warnings") or {})]
    named += [(f" in `{n}`", f.get("warnings") or {}) for n, f in manifest["formats"].items()]
    for where, counts in named:
        if counts:
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{code_span(k)} {v:,}" for k, v in ranked)
            lines.append(f"- Warnings{where} (documents kept): {shown}.")
    return lines


def render_card(
    manifest: dict[str, Any],
    *,
    command: str | None = None,
    features: dict[str, list[dict[str, Any]]] | None = None,
    licenses: Mapping[str, int] | None = None,
) -> str:
    """The README.md of a dataset folder, from its manifest (and the JSON formats'
    ``datasets`` features; ``licenses``: documents per value of the records' own
    ``license`` field). The user's statement (``output.card``) heads it."""
    statement: Mapping[str, Any] = manifest["config"].get("output", {}).get("card") or {}
    names = card_formats(manifest, "root")
    title = _visible(str(statement.get("pretty_name") or "Dataset card"))
    parts = [
        _front_matter(_configs(manifest, names), features, statement)
        if names or statement.get("license") or statement.get("pretty_name")
        else "",
        f"# {title}\n",
    ]
    if statement.get("description"):
        parts.append(str(statement["description"]).strip() + "\n")
    parts.append(
        f"Packed by qudata {manifest['qudata_version']}"
        + (f" with:\n\n{code_block(command)}" if command else ".\n")
    )
    sources = _sources(manifest, statement, licenses)
    parts.append("## Sources and licence\n\n" + "\n".join(sources) + "\n")
    parts.append("## Sizes\n\n" + "\n".join(_sizes(manifest)) + "\n")
    filters = _filters(manifest) + _warnings(manifest)
    parts.append("## Filters and duplicates\n\n" + "\n".join(filters) + "\n")
    if manifest.get("mix"):
        parts.append("## Mix\n\n" + "\n".join(_mix(manifest["mix"])) + "\n")
    loading = ["```python", "from datasets import load_dataset", ""]
    loading += [f'{n} = load_dataset("path/to/this/folder", "{n}")' for n in names]
    for name in card_formats(manifest, "folder"):
        loading.append(f'{name} = load_dataset("path/to/this/folder/{name}")')
    loading.append("```")
    if any(f["path"].endswith(".zst") for n in names for f in manifest["formats"][n]["files"]):
        loading.append(
            "\nThe files are zstd-compressed (`.zst`): `datasets` reads them only where "
            "the `zstandard` package is installed (`pip install zstandard`)."
        )
    parts.append(
        "## Loading\n\n" + "\n".join(loading) + "\n\n`manifest.json` holds the full "
        "account (every file's sha256, every drop by reason); `rejects.jsonl` lists "
        "each dropped document.\n"
    )
    return "\n".join(p for p in parts if p)


def render_folder_card(manifest: dict[str, Any], name: str) -> str:
    """``OUT_DIR/<name>/README.md`` of a format with a card of its own (Parquet), so that
    ``datasets`` uses that format's builder for its folder."""
    configs = _configs(manifest, [name], prefix=f"{name}/")
    return _front_matter(configs) + (
        f"# {name}\n\nThe {name} files of this dataset; see the card one folder up.\n"
    )
