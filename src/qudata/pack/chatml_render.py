"""``render: chatml``: a conversation as ChatML text, tool calling as Hermes/Qwen write it.

Every message is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``. With tool calling,
the convention of Qwen2.5's chat template (and Hermes):

- the tools go in the system turn: its content (if any), a blank line, then
  ``# Tools`` and one JSON schema per line inside ``<tools></tools>``;
- an assistant's calls follow its content, one ``<tool_call>\\n{"name": ...,
  "arguments": {...}}\\n</tool_call>`` each, on its own line;
- tool results are a ``user`` turn, one ``<tool_response>\\n...\\n</tool_response>``
  per result (consecutive results share the turn).

For a record with a system turn this is byte-identical to Qwen2.5's template (which
adds its own default system turn when there is none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qudata.normalize.tools import tools_prompt
from qudata.normalize.turns import message_text

__all__ = ["render_chatml"]


def render_chatml(
    messages: Sequence[Mapping[str, Any]], tools: list[dict[str, Any]] | None = None
) -> str:
    """The ChatML text of ``messages`` (and ``tools``)."""
    out: list[str] = []
    rest = list(messages)
    if tools:
        block = tools_prompt(tools)
        if rest and rest[0].get("role") == "system":
            own = rest.pop(0).get("content") or ""
            block = f"{own}\n\n{block}" if own else block
        out.append(f"<|im_start|>system\n{block}<|im_end|>\n")
    for number, message in enumerate(rest):
        role = message.get("role")
        if role == "tool":
            if number == 0 or rest[number - 1].get("role") != "tool":
                out.append("<|im_start|>user")
            out.append(f"\n<tool_response>\n{message.get('content') or ''}\n</tool_response>")
            if number == len(rest) - 1 or rest[number + 1].get("role") != "tool":
                out.append("<|im_end|>\n")
            continue
        out.append(f"<|im_start|>{role}\n{message_text(message)}<|im_end|>\n")
    return "".join(out)
