"""Tool-call arguments as templates expect them, declared so ``datasets`` reads them back.

Normalised calls hold OpenAI's form, ``arguments`` a JSON string
(:mod:`qudata.normalize.tools`). ChatML writes them as the JSON value by default
(``pack.chatml.tool_arguments: object``), what transformers' chat templates expect:
rendered from a string, the training text would hold stringified JSON. Arguments vary in
structure from call to call, so the card declares them with ``datasets``' ``Json``
feature (values of any structure, read back as written).
"""

from __future__ import annotations

from typing import Any

__all__ = ["json_arguments"]


def json_arguments(message: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The features of a message with tool-call ``arguments`` declared ``json``."""
    out = []
    for feature in message:
        if feature["name"] == "tool_calls" and isinstance(feature.get("list"), list):
            calls = []
            for item in feature["list"]:
                if item["name"] == "function" and isinstance(item.get("struct"), list):
                    struct = [
                        {"name": "arguments", "dtype": "json"} if f["name"] == "arguments" else f
                        for f in item["struct"]
                    ]
                    item = {**item, "struct": struct}
                calls.append(item)
            feature = {**feature, "list": calls}
        out.append(feature)
    return out
