"""Configuration: the spec's YAML loads, errors name the key path, YAML is loaded safely,
and formatter options follow kwargs > config= > constructor YAML > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from qudata.config import Config, load_config, parse_size
from qudata.errors import ConfigError
from qudata.pack import ChatMLFormatter, JSONLFormatter, PlainTextFormatter

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pack.yaml"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_spec_yaml_loads_with_its_values(spec_yaml: Path) -> None:
    cfg = load_config(spec_yaml)
    assert cfg.pack.chatml.system_message == "You are a helpful assistant."
    assert cfg.pack.chatml.include_metadata is True
    assert cfg.pack.chatml.max_tokens_per_message == 4096
    assert cfg.pack.jsonl.fields == ["text", "labels", "metadata", "quality_score"]
    assert cfg.pack.jsonl.filter_low_quality is True
    assert cfg.pack.jsonl.min_quality_score == 0.7
    assert cfg.pack.plain.separator == "\n---\n"
    assert cfg.pack.plain.include_headers is True
    assert cfg.pack.plain.max_line_length == 120


@pytest.mark.skipif(not EXAMPLE.exists(), reason="examples/pack.yaml not in this tree")
def test_example_config_loads() -> None:
    assert isinstance(load_config(EXAMPLE), Config)


def test_defaults() -> None:
    cfg = load_config()
    assert cfg.pack.formats == ["chatml", "jsonl", "plain"]
    assert cfg.pack.jsonl.fields == ["text", "labels", "metadata"]
    assert cfg.pack.chatml.system_message is None
    assert cfg.pack.plain.max_line_length is None
    assert cfg.input.on_error == "skip"
    assert cfg.output.overwrite is False


def test_empty_yaml_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == load_config()


def test_misspelt_key_names_path_and_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "pack:\n  chatml:\n    sytem_message: hi\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "unknown key 'pack.chatml.sytem_message'" in message
    assert "allowed keys:" in message
    assert "system_message" in message.split("allowed keys:")[1]
    assert "include_metadata" in message


def test_unknown_top_level_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'packing'.*allowed keys: .*pack"):
        load_config(write(tmp_path, "packing: {}\n"))


def test_wrong_type_names_path(tmp_path: Path) -> None:
    path = write(tmp_path, "pack:\n  plain:\n    max_line_length: wide\n")
    with pytest.raises(ConfigError, match=r"'pack\.plain\.max_line_length'") as info:
        load_config(path)
    assert "wide" in str(info.value)


def test_bad_value_in_range_names_path() -> None:
    with pytest.raises(ConfigError, match=r"pack\.jsonl\.min_quality_score"):
        load_config({"pack": {"jsonl": {"min_quality_score": 1.5}}})


def test_unknown_format_name_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"pack\.formats"):
        load_config({"pack": {"formats": ["chatml", "csv"]}})


def test_python_object_tag_is_rejected_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(
        tmp_path,
        f"pack: !!python/object/apply:os.system ['touch {marker}']\n",
    )
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    assert not marker.exists()


def test_python_object_new_tag_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "pack: !!python/object:collections.OrderedDict {}\n")
    with pytest.raises(ConfigError):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_win_over_file_and_merge_deeply(spec_yaml: Path) -> None:
    cfg = load_config(spec_yaml, overrides={"pack": {"chatml": {"system_message": "Other."}}})
    assert cfg.pack.chatml.system_message == "Other."
    assert cfg.pack.chatml.include_metadata is True  # sibling kept
    assert cfg.pack.jsonl.min_quality_score == 0.7


def test_tokenizer_none_with_explicit_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_tokens_per_message"):
        load_config(
            {"quality": {"tokenizer": "none"}, "pack": {"chatml": {"max_tokens_per_message": 10}}}
        )
    load_config({"quality": {"tokenizer": "none"}})  # the default limit alone is fine


def test_loaded_config_loads_again_unchanged() -> None:
    """A Config passed on (CLI -> pack_dataset -> formatters) must not fail validation."""
    cfg = load_config({"quality": {"tokenizer": "none"}})
    assert load_config(cfg) == cfg
    assert load_config(cfg, overrides={"output": {"overwrite": True}}).output.overwrite is True
    assert PlainTextFormatter(cfg).config == cfg


@pytest.mark.parametrize(
    ("split", "fragment"),
    [({"train": 0.5}, "add up to 1"), ({}, "at least one"), ({"tr ain": 1.0}, "split name")],
)
def test_bad_splits(split: dict[str, float], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config({"output": {"split": split}})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(10, 10), ("256MB", 256_000_000), ("1GiB", 2**30), ("1.5 kb", 1500), ("7", 7)],
)
def test_parse_size(value: int | str, expected: int) -> None:
    assert parse_size(value) == expected


def test_parse_size_rejects_unknown_unit() -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size("3 parsecs")


# --- option precedence on formatters: kwargs > config= > constructor YAML > defaults ---


def test_precedence_constructor_yaml_over_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "pack:\n  plain:\n    separator: '~~'\n")
    formatter = PlainTextFormatter(path)
    assert formatter.resolve().separator == "~~"
    assert formatter.resolve().include_headers is True  # default kept


def test_precedence_config_over_yaml_and_kwargs_over_config(tmp_path: Path) -> None:
    path = write(tmp_path, "pack:\n  plain:\n    separator: '~~'\n    include_headers: false\n")
    formatter = PlainTextFormatter(path)
    opts = formatter.resolve({"separator": "##"})
    assert (opts.separator, opts.include_headers) == ("##", False)
    opts = formatter.resolve({"separator": "##"}, separator="@@")
    assert opts.separator == "@@"
    # a call's options do not stick to the formatter
    assert formatter.resolve().separator == "~~"


def test_precedence_is_visible_in_output(tmp_path: Path) -> None:
    path = write(tmp_path, "pack:\n  jsonl:\n    fields: [text]\n")
    formatter = JSONLFormatter(path)
    docs = [{"id": "a", "text": "t", "labels": ["l"]}]
    assert formatter.format_documents(docs) == [{"text": "t"}]
    assert formatter.format_documents(docs, config={"fields": ["id"]}) == [{"id": "a"}]
    assert formatter.format_documents(docs, config={"fields": ["id"]}, fields=["labels"]) == [
        {"labels": ["l"]}
    ]


def test_constructor_kwargs_over_constructor_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "pack:\n  chatml:\n    system_message: From YAML.\n")
    assert ChatMLFormatter(path).options.system_message == "From YAML."
    assert ChatMLFormatter(path, system_message="Kw.").options.system_message == "Kw."


def test_misspelt_call_option_is_a_config_error_with_path() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'pack\.plain\.include_header'"):
        PlainTextFormatter().format_documents([{"text": "x"}], include_header=False)
    with pytest.raises(ConfigError, match=r"unknown key 'pack\.chatml\.sytem_message'"):
        ChatMLFormatter().format_documents([{"text": "x"}], config={"sytem_message": "x"})


def test_wrong_option_type_in_call_names_path() -> None:
    with pytest.raises(ConfigError, match=r"'pack\.plain\.max_line_length'"):
        PlainTextFormatter().format_documents([{"text": "x"}], max_line_length="wide")


# --- a format declares its options beside its class; the registry hands them to pack ---


def test_a_registered_format_brings_its_own_section(monkeypatch: pytest.MonkeyPatch) -> None:
    from qudata.config import FORMAT_OPTIONS
    from qudata.sections import Section

    class DemoOptions(Section):
        width: int = 80

    monkeypatch.setitem(FORMAT_OPTIONS, "demo", DemoOptions)
    cfg = load_config({"pack": {"formats": ["demo"], "demo": {"width": 3}}})
    assert cfg.pack.formats == ["demo"]
    assert cfg.pack.options("demo") == DemoOptions(width=3)
    assert load_config().pack.options("demo") == DemoOptions()  # defaults when absent
    with pytest.raises(ConfigError) as info:
        load_config({"pack": {"demo": {"widht": 3}}})
    assert str(info.value) == "unknown key 'pack.demo.widht' (allowed keys: width)"


def test_pack_section_errors_keep_their_wording() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"pack": {"csv": {}}})
    assert str(info.value) == (
        "unknown key 'pack.csv' (allowed keys: chatml, formats, jsonl, kto, llmbuilder, "
        "megatron, packed, parquet, plain, preference)"
    )
    with pytest.raises(ConfigError) as info:
        load_config({"pack": {"formats": "x", "jsonl": {"fields": ["a", "a"]}}})
    assert str(info.value) == (
        "'pack.formats': Input should be a valid list; got 'x'; "
        "'pack.jsonl.fields': fields must not repeat a name"
    )
    with pytest.raises(ConfigError) as info:
        load_config({"pack": {"chatml": 5}})
    assert str(info.value) == (
        "'pack.chatml': Input should be a valid dictionary or instance of ChatMLOptions; got 5"
    )
