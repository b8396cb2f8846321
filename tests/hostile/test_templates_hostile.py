"""Hostile user templates: bounded in time and size, errors are drops, never tracebacks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qudata.config import load_config
from qudata.errors import ConfigError, InputError
from qudata.pack.chatml import ChatMLFormatter
from qudata.pack.templates import compile_chat_template, compile_template, render_bounded

from .hostile_limits import run_qudata, time_limit

# Each of these would run for minutes, allocate gigabytes, or raise inside Jinja.
PAYLOADS = {
    "power": "{{ 7 ** (10 ** 9) }}",
    "repeat": "{{ 'x' * 10 ** 8 }}",
    "repeat_list": "{{ ([1] * 10 ** 8) | length }}",
    "nested_loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "nested_output": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}"
    "{% endfor %}",
    "doubling": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    "doubling_plus": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
    "ljust": "{{ 'x'.ljust(10 ** 9) }}",
    "format_width": "{{ '{:>1000000000}'.format(1) }}",
    "percent_width": "{{ '%1000000000s' % 1 }}",
    "center": "{{ 'x' | center(10 ** 9) }}",
    "replace_filter": "{{ ('x' * 999) | replace('', 'y' * 999999) }}",
    "replace_method": "{{ ('x' * 999).replace('x', 'y' * 999999) }}",
    "join_filter": "{{ range(100000) | join('y' * 999999) }}",
    "join_filter_lazy": "{{ range(100000) | map('string') | join('y' * 999999) }}",
    "join_method": "{{ ('y' * 999999).join(range(100000) | map('string')) }}",
    "expandtabs": "{{ ('\\t' * 999999).expandtabs(999999) }}",
    "division": "{{ 1 / 0 }}",
    "include": "{% include 'other.txt' %}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "raise": "{{ raise_exception('no') }}",
    "undefined_call": "{{ nothing() }}",
}

DOC = {"id": "d1", "text": "Some text.", "title": "T"}
CONVERSATION = {
    "id": "c1",
    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
}


def _format(docs: list[dict[str, Any]], **chatml: Any) -> ChatMLFormatter:
    config = {
        "quality": {"tokenizer": "none"},
        "pack": {"chatml": {"template_timeout": 0.3, **chatml}},
    }
    formatter = ChatMLFormatter(config)
    formatter.format_documents(docs)
    return formatter


@pytest.mark.parametrize("key", ["user_template", "assistant_template"])
@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_prompt_template_payload_is_a_template_error_drop(key: str, name: str) -> None:
    started = time.monotonic()
    with time_limit(5):
        formatter = _format([DOC, DOC | {"id": "d2"}], **{key: PAYLOADS[name]})
    assert dict(formatter.stats.dropped) == {"template_error": 2}
    assert formatter.stats.documents == 0
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_chat_template_payload_is_a_template_error_drop(name: str) -> None:
    # the messages loop keeps the probe renderings of the template cheap to set up
    source = "{% for m in messages %}{{ m.content }}{% endfor %}" + PAYLOADS[name]
    with time_limit(8):
        formatter = _format([CONVERSATION], chat_template=source)
    assert dict(formatter.stats.dropped) == {"template_error": 1}


def test_a_timeout_ends_the_rendering_near_its_limit() -> None:
    template = compile_template(PAYLOADS["nested_loops"])
    started = time.monotonic()
    with time_limit(5), pytest.raises(Exception, match="ran out of time"):
        render_bounded(template, {}, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0


def test_the_output_limit_counts_characters() -> None:
    template = compile_template("{% for i in range(1000) %}abcdefghij{% endfor %}")
    assert len(render_bounded(template, {}, max_chars=10_000)) == 10_000
    with pytest.raises(Exception, match="exceeds 9,999 characters"):
        render_bounded(template, {}, max_chars=9_999)


def test_an_ordinary_template_is_unchanged_by_the_bounds() -> None:
    source = (
        "{% for m in messages %}{{ loop.index }}:{{ m.role }}={{ m.content | trim }}"
        "{% if loop.last %}!{% endif %}{% else %}empty{% endfor %}{{ '%-4s|' % 'ab' }}"
        "{{ 'x' * 3 }}{{ 2 ** 10 }}{{ [1, 2] + [3] }}{{ 'a' ~ 'b' }}"
    )
    messages = [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}]
    text = render_bounded(compile_chat_template(source), {"messages": messages})
    assert text == "1:user=hi2:assistant=yo!ab  |xxx1024[1, 2, 3]ab"


def test_a_constant_huge_power_does_not_hang_compilation() -> None:
    with time_limit(5):
        compile_template("{{ 9 ** 9 ** 9 ** 9 }}")


@pytest.mark.parametrize("name", ["messages", "tools", "documents", "add_generation_prompt"])
def test_a_template_var_named_like_a_render_argument_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=f"template_vars: {name} is set by qudata"):
        load_config({"pack": {"chatml": {"template_vars": {name: "x"}}}})


@pytest.mark.parametrize("sep", ["\n", " ", "\t", "a", ":", "||"])
def test_a_separator_template_var_is_not_a_marker(sep: str) -> None:
    source = "{% for m in messages %}{{ m.role }}{{ sep }}{{ m.content }}{{ sep }}{% endfor %}"
    conversation = {
        "messages": [
            {"role": "user", "content": f"a{sep}b\n\nc :: d || e"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    with time_limit(5):
        formatter = ChatMLFormatter(
            {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"chat_template": source}}}
        )
        records = formatter.format_documents([conversation], template_vars={"sep": sep})
    assert records[0]["messages"][0]["content"] == f"a{sep}b\n\nc :: d || e"
    assert formatter.stats.events == {}


def test_a_bad_template_in_a_run_is_counted_and_rejected(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    rows = [DOC | {"id": f"d{i}", "text": f"Text {i}."} for i in range(3)]
    source.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    config = tmp_path / "pack.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "quality": {"tokenizer": "none"},
                "pack": {
                    "formats": ["chatml", "jsonl"],
                    "chatml": {"user_template": PAYLOADS["power"], "template_timeout": 1},
                },
            }
        )
    )
    out = tmp_path / "out"
    result = run_qudata(["pack", str(source), "-o", str(out), "-c", str(config), "-q"], timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    chatml = manifest["formats"]["chatml"]
    assert chatml["dropped"] == {"template_error": 3}
    assert manifest["formats"]["jsonl"]["documents"] == 3
    rejects = [orjson.loads(line) for line in (out / "rejects.jsonl").read_bytes().splitlines()]
    assert [(r["format"], r["reason"]) for r in rejects] == [("chatml", "template_error")] * 3


def test_a_pathologically_nested_template_is_a_config_error() -> None:
    with time_limit(10), pytest.raises(ConfigError, match="template"):
        compile_template("{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}")


FRAGMENTS = [
    "{{ ",
    " }}",
    "{% ",
    " %}",
    "for x in range(99999)",
    "for y in 'abc' * 999",
    "endfor",
    "if x",
    "endif",
    "macro f(n)",
    "endmacro",
    "f(1)",
    "9",
    "'x'",
    " ** ",
    " * ",
    " ~ ",
    " + ",
    " % ",
    "(",
    ")",
    "|join('ab')",
    "|center(9999999)",
    "x",
    "loop.index",
    "1/0",
    "set ns = namespace(s='a')",
    "set ns.s = ns.s ~ ns.s",
    "ns.s",
    "text",
    "include 'x'",
]


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=24))
@settings(max_examples=60, deadline=None)
def test_random_templates_end_quickly_as_text_or_template_error(parts: list[str]) -> None:
    source = "".join(parts)
    with time_limit(5):
        try:
            template = compile_template(source)
        except ConfigError:
            return
        try:
            text = render_bounded(template, {"text": "t"}, timeout=0.2, max_chars=100_000)
        except InputError as exc:
            assert exc.reason == "template_error"
        else:
            assert len(text) <= 100_000


@pytest.mark.parametrize("name", ["nested_output", "repeat", "doubling", "ljust"])
def test_a_payload_inside_a_generation_block_is_bounded(name: str) -> None:
    """``{% generation %}`` renders its body through the same bounds; a tracked rendering
    that fails leaves no spans behind for the next one."""
    from qudata.pack.templates import render_tracked

    template = compile_chat_template("{% generation %}" + PAYLOADS[name] + "{% endgeneration %}")
    started = time.monotonic()
    with time_limit(8), pytest.raises(InputError):
        render_tracked(template, {}, timeout=0.5, max_chars=100_000)
    assert time.monotonic() - started < 5
    ok = compile_chat_template("a{% generation %}{{ x }}{% endgeneration %}b")
    assert render_tracked(ok, {"x": "yz"}) == ("ayzb", [(1, 3)])
    assert render_bounded(ok, {"x": "yz"}) == "ayzb"
