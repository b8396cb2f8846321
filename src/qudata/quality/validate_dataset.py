"""``qudata validate OUT_DIR``: a published dataset folder against its manifest.

Three checks, each reported per file:

- the manifest: every file it lists exists with its bytes, sha256 and records (tokens
  too, from a Megatron ``.idx``), the files of each format add up to its account, the
  account balances, no file is unlisted: the publish gate's own reconciliation
  (:func:`qudata.export.verify.differences`), run on the folder as published;
- the records: each data file of a format that has rules (chatml, jsonl, plain,
  preference) is validated with them (:func:`qudata.quality.validate.validate_file`);
- the tokens, given ``tokenizer`` and/or ``template``: the packed and megatron files
  against them (:mod:`qudata.quality.validate_tokens`).

A folder without ``manifest.json``, or a manifest qudata cannot read, is one
:class:`~qudata.errors.InputError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from qudata.errors import InputError
from qudata.export.verify import LocalFileSystem, differences
from qudata.quality.problems import FileValidation
from qudata.quality.validate import validate_file, validated_formats
from qudata.quality.validate_tokens import token_findings

__all__ = ["DatasetFile", "DatasetValidation", "is_dataset", "validate_dataset"]


@dataclass(slots=True)
class DatasetFile:
    """One file the manifest lists: its format, what the manifest says of it, and what
    differs (``problems``: one line each); ``rules``: its records' validation, if any;
    ``sequences``: ``(checked, held)`` by the token checks."""

    path: str
    format: str
    records: int
    bytes: int
    problems: list[str] = field(default_factory=list)
    rules: FileValidation | None = None
    sequences: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and (self.rules is None or self.rules.ok)


@dataclass(slots=True)
class DatasetValidation:
    """The files of a dataset and the problems that belong to no one file."""

    root: str
    files: list[DatasetFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "where: what"
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    tokenizer: str | None = None
    template: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and all(f.ok for f in self.files)


def is_dataset(path: str) -> bool:
    """A folder holding a ``manifest.json``."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json"))


def _manifest(root: str) -> dict[str, Any]:
    path = os.path.join(root, "manifest.json")
    try:
        with open(path, "rb") as handle:
            data = orjson.loads(handle.read())
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", source=path) from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc}", source=path) from None
    if not isinstance(data, dict) or not isinstance(data.get("formats"), dict):
        raise InputError("not a qudata manifest (no formats)", source=path)
    return data


def validate_dataset(
    root: str, *, tokenizer: str | None = None, template: str | None = None
) -> DatasetValidation:
    """Check the dataset folder ``root`` (see the module)."""
    root = root.rstrip("/") or "/"
    manifest = _manifest(root)
    result = DatasetValidation(root=root, tokenizer=tokenizer, template=template)
    by_path: dict[str, DatasetFile] = {}
    try:
        for fmt, stats in manifest["formats"].items():
            for entry in stats["files"]:
                item = DatasetFile(entry["path"], fmt, int(entry["records"]), int(entry["bytes"]))
                result.files.append(item)
                by_path[item.path] = item
        found = list(differences(LocalFileSystem(), root, manifest))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"not a qudata manifest ({type(exc).__name__}: {exc})",
            source=os.path.join(root, "manifest.json"),
        ) from None
    for mismatch in found:
        _place(result, by_path, mismatch.path, mismatch.what)
    _validate_records(root, manifest, result)
    if tokenizer is not None or template is not None:
        if not {"packed", "megatron"} & set(manifest["formats"]):
            result.notes.append(
                "no packed or megatron files: --tokenizer and --template check nothing here"
            )
        report = token_findings(root, manifest, tokenizer, template)
        for path, what in report.findings:
            _place(result, by_path, path, what)
        for path, counts in report.checked.items():
            if path in by_path:
                by_path[path].sequences = counts
    return result


def _place(
    result: DatasetValidation, by_path: dict[str, DatasetFile], path: str, what: str
) -> None:
    if path in by_path:
        by_path[path].problems.append(what)
    else:
        result.problems.append(f"{path}: {what}")


def _validate_records(root: str, manifest: dict[str, Any], result: DatasetValidation) -> None:
    """Each data file of a format with rules, with them (a file already found missing or
    changed is not read again)."""
    ruled = set(validated_formats())
    options = manifest.get("config", {}).get("pack", {})
    for item in result.files:
        if item.format not in ruled or item.problems:
            continue
        path = os.path.join(root, item.path)
        separator = (options.get(item.format) or {}).get("separator")
        try:
            item.rules = validate_file(
                path,
                item.format,
                separator=separator if isinstance(separator, str) else None,
            )
        except InputError as exc:
            item.problems.append(exc.detail)
