"""Output metadata with one JSON type per key, so Arrow-based loaders never fail or coerce.

Known keys are always present with fixed types (``null`` when absent, ``topics``,
``labels`` and ``entities`` always lists). Unknown keys are kept; a value whose
JSON type differs from the type that key first had in this output is converted
to that type (to a string when the key is a string key; see :func:`_coerce`) and
counted as ``metadata_type_conflict``. Non-finite numbers
become ``null`` (``metadata_non_finite``): JSON has no NaN.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import orjson

from qudata.models import Document, json_kind

__all__ = ["KNOWN_FEATURES", "MetadataWriter", "feature_of_kind", "metadata_features"]


def _finite(value: Any, warnings: Counter[str]) -> Any:
    """``value`` with every NaN or infinity replaced by ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        warnings["metadata_non_finite"] += 1
        return None
    if isinstance(value, list | tuple):
        return [_finite(v, warnings) for v in value]
    if isinstance(value, dict):
        return {str(k): _finite(v, warnings) for k, v in value.items()}
    return value


def _coerce(value: Any, kind: str) -> Any:
    """``value`` in the JSON type ``kind``, or ``None`` when it has no such form.

    A string key gets the value as a string (JSON text for arrays and objects); a
    number or boolean key gets a numeric or ``true``/``false`` string parsed; an
    array key gets a one-element list. Anything else becomes ``null``.
    """
    if kind == "string":
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    if kind == "number" and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if kind == "array":
        return [value]
    return None


class MetadataWriter:
    """Builds the output ``metadata`` object of documents written to one output."""

    def __init__(self, warnings: Counter[str] | None = None) -> None:
        self._kinds: dict[str, str] = {}
        self.warnings: Counter[str] = warnings if warnings is not None else Counter()

    @property
    def kinds(self) -> dict[str, str]:
        """The JSON kind each unknown key (``a``, nested ``a.b``) has in this output."""
        return dict(self._kinds)

    def build(self, doc: Document) -> dict[str, Any]:
        meta = doc.metadata
        out: dict[str, Any] = {
            "source": meta.get("source"),
            "quality_score": doc.quality_score,
            "topics": list(meta.get("topics") or []),
            "title": meta.get("title"),
            "language": meta.get("language"),
            "labels": list(doc.labels),
            "author": meta.get("author"),
            "domain": meta.get("domain"),
            "entities": [
                _finite(e, self.warnings) if isinstance(e, dict) else {"text": str(e)}
                for e in meta.get("entities") or []
            ],
        }
        for key, value in meta.items():
            if key not in out:
                out[key] = self._stable(key, _finite(value, self.warnings))
        out["entities"] = [self._stable("entities[]", e) for e in out["entities"]]  # objects
        return out

    def _stable(self, path: str, value: Any) -> Any:
        """``value`` with the JSON type ``path`` first had, in nested objects too (Arrow
        infers one type per nested field). Elements of a list are left as they are: a
        number among strings has no lossless form in either type."""
        kind = json_kind(value)
        if kind == "null":
            return value
        first = self._kinds.setdefault(path, kind)
        if first != kind:
            self.warnings["metadata_type_conflict"] += 1
            return _coerce(value, first)
        if kind == "object":
            return {str(k): self._stable(f"{path}.{k}", v) for k, v in value.items()}
        return value


#: ``datasets`` feature of each JSON kind; arrays and objects of any shape are ``json``.
_FEATURE_DTYPES = {"string": "string", "number": "float64", "boolean": "bool"}
#: Features of the known metadata keys (their types are fixed).
KNOWN_FEATURES: dict[str, dict[str, Any]] = {
    "source": {"dtype": "string"},
    "quality_score": {"dtype": "float64"},
    "topics": {"sequence": "string"},
    "title": {"dtype": "string"},
    "language": {"dtype": "string"},
    "labels": {"sequence": "string"},
    "author": {"dtype": "string"},
    "domain": {"dtype": "string"},
    "entities": {"dtype": "json"},
}


def feature_of_kind(kind: str | None) -> dict[str, Any]:
    """The ``datasets`` feature for values of one JSON kind."""
    return {"dtype": _FEATURE_DTYPES.get(kind or "", "json")}


def metadata_features(writer: MetadataWriter | None) -> list[dict[str, Any]]:
    """The ``metadata`` struct: known keys, then every other key seen, with its enforced type.

    Declared in the dataset card, so ``datasets`` does not infer the schema from the first
    file (a key that first appears in a later shard would not fit it).
    """
    fields = [{"name": k, **v} for k, v in KNOWN_FEATURES.items()]
    kinds = writer.kinds if writer is not None else {}
    for path, kind in kinds.items():
        if "." not in path and "[" not in path and path not in KNOWN_FEATURES:
            fields.append({"name": path, **feature_of_kind(kind)})
    return fields
