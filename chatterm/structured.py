"""Structured output: a JSON Schema or a GBNF grammar that the reply must follow.

``--schema`` takes a JSON Schema inline (``'{"type": "object", …}'``), as a path to a ``.json``
file, or in a concise form for the common case of one flat object (in the spirit of llm's
concise schemas)::

    name, age int, tags list, score float: how sure, 0 to 1

Fields are separated by commas or new lines; each is ``NAME [TYPE][: description]`` with
``TYPE`` one of ``str`` (the default), ``int``, ``float``, ``bool`` or ``list`` (a list of
strings). Every field is required and no others are allowed.

A local model is constrained by llama.cpp's grammar sampler, fed a GBNF grammar that
llama-cpp-python builds from the schema (``llama_cpp.llama_grammar.json_schema_to_gbnf``), so
its reply always parses; :func:`validate_reply` then checks it against the schema with
``jsonschema`` (types, ranges, patterns the grammar cannot express). Remote engines get the
schema as the OpenAI API's ``response_format``.

Every check here runs before a model loads: an invalid schema or grammar is a one-line
:class:`StructureError` (exit 2).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chatterm.errors import ChattermError, UsageError

CONCISE_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
}
_FIELD = re.compile(r"^\s*([A-Za-z_][\w-]*)(?:\s+([A-Za-z]+))?\s*(?::\s*(.*))?$", re.S)
MAX_SCHEMA_BYTES = 1_000_000


class StructureError(UsageError):
    """A schema or grammar that cannot be used (exit 2)."""


class ReplyInvalidError(ChattermError):
    """The reply does not match the schema (exit 1: the model's answer, not the input)."""


# -- schemas -------------------------------------------------------------------------------


def parse_schema(value: Any, *, base: Path | None = None) -> dict[str, Any]:
    """A JSON Schema from ``--schema``'s value or a front matter entry: a dict (as is), inline
    JSON, a path to a JSON file (relative to ``base`` when given), or the concise form.
    Checked against the JSON Schema meta-schema. Raises :class:`StructureError`."""
    if isinstance(value, dict):
        schema = value
    elif not isinstance(value, str) or not value.strip():
        raise StructureError("--schema: give a JSON Schema, a .json file or 'name, age int, …'")
    else:
        text = value.strip()
        if text.startswith(("{", "[", '"')):
            schema = _json(text, "--schema")
        elif _looks_like_path(text, base):
            schema = _json(_read(text, base), f"--schema {text}")
        else:
            schema = concise_schema(text)
    check_schema(schema)
    return schema


def _looks_like_path(text: str, base: Path | None) -> bool:
    if "\n" in text or "," in text and not text.endswith(".json"):
        return False
    path = (base / text) if base is not None and not Path(text).is_absolute() else Path(text)
    return text.endswith(".json") or path.expanduser().is_file()


def _read(text: str, base: Path | None) -> str:
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        if path.stat().st_size > MAX_SCHEMA_BYTES:
            raise StructureError(f"--schema {text}: larger than 1 MB; is it a schema?")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StructureError(f"--schema {text}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StructureError(f"--schema {text}: cannot read it ({exc})") from None


def _json(text: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StructureError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StructureError(f"{where}: a JSON Schema is an object ({{…}})")
    return data


def concise_schema(text: str) -> dict[str, Any]:
    """``'name, age int, tags list'`` → an object schema with those required fields."""
    properties: dict[str, Any] = {}
    separator = "\n" if "\n" in text.strip() else ","
    for part in text.split(separator):
        if not part.strip():
            continue
        match = _FIELD.match(part)
        if not match:
            raise StructureError(
                f"--schema: cannot read field {part.strip()!r}: write NAME [TYPE][: description]"
            )
        name, kind, description = match.group(1), match.group(2) or "str", match.group(3)
        if kind not in CONCISE_TYPES:
            known = ", ".join(CONCISE_TYPES)
            raise StructureError(f"--schema: field {name!r} has unknown type {kind!r} ({known})")
        if name in properties:
            raise StructureError(f"--schema: field {name!r} is given twice")
        prop = dict(CONCISE_TYPES[kind])
        if description and description.strip():
            prop["description"] = description.strip()
        properties[name] = prop
    if not properties:
        raise StructureError("--schema: no fields given")
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def check_schema(schema: dict[str, Any]) -> None:
    """Raise :class:`StructureError` unless ``schema`` is a valid JSON Schema."""
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise StructureError(
            f"--schema: not a valid JSON Schema: {exc.message}"
            + (f" (at {where})" if where else "")
        ) from None


def canonical(schema: dict[str, Any]) -> str:
    """The schema as compact JSON text: how sampling settings carry it."""
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def schema_grammar(schema_text: str) -> str:
    """The GBNF grammar llama-cpp-python builds from a schema (cached per schema). Raises
    :class:`StructureError` naming the construct it cannot convert."""
    return _schema_grammar(schema_text)


@functools.lru_cache(maxsize=16)
def _schema_grammar(schema_text: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(schema_text)
    except Exception as exc:  # the converter raises assertions and bare errors
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StructureError(
            f"--schema: llama.cpp cannot turn this schema into a grammar: {detail}"
        ) from None


# -- grammars ------------------------------------------------------------------------------


def read_grammar(path: str) -> str:
    """A GBNF file's text, checked with llama.cpp's own parser (:func:`check_grammar`)."""
    try:
        target = Path(path).expanduser()
        if target.stat().st_size > MAX_SCHEMA_BYTES:
            raise StructureError(f"--grammar {path}: larger than 1 MB; is it a grammar?")
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StructureError(f"--grammar {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StructureError(f"--grammar {path}: cannot read it ({exc})") from None
    check_grammar(text, where=f"--grammar {path}")
    return text


def check_grammar(text: str, *, where: str = "--grammar") -> None:
    """Parse ``text`` with llama.cpp's GBNF parser, no model needed (the parser wants a
    vocabulary only for ``<[id]>`` token references, which are then checked at load). Raises
    :class:`StructureError` with the parser's own message."""
    import llama_cpp

    if not text.strip():
        raise StructureError(f"{where}: the grammar is empty")
    with _captured_stderr() as captured:
        sampler = llama_cpp.llama_sampler_init_grammar(None, text.encode("utf-8"), b"root")
    if sampler:
        llama_cpp.llama_sampler_free(sampler)
        return
    message = captured()
    if "no vocab to parse token" in message:
        return  # token references: llama.cpp checks them against the model's vocabulary
    found = re.search(r"error parsing grammar: (.*)", message)
    detail = found.group(1).strip() if found else ""
    if not detail and "root" not in text:
        detail = "no 'root' rule"
    raise StructureError(f"{where}: not a valid GBNF grammar" + (f": {detail}" if detail else ""))


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Any]:
    """Capture what C code writes to file descriptor 2 (llama.cpp's grammar parser reports
    errors with ``fprintf(stderr, …)``, out of reach of ``sys.stderr``)."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            text: list[str] = []
            yield lambda: "".join(text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


# -- settings and replies ------------------------------------------------------------------


def grammar_for(schema: str, grammar: str) -> str:
    """The GBNF that constrains a reply: the raw grammar if one is set, else the schema's."""
    if grammar:
        return grammar
    return schema_grammar(schema) if schema else ""


def validate_reply(text: str, schema_text: str) -> Any:
    """The reply parsed as JSON and checked against the schema; raises
    :class:`ReplyInvalidError` saying where it fails."""
    from jsonschema import ValidationError, validators

    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReplyInvalidError(
            f"the reply is not valid JSON ({exc}); was it cut short by --max-tokens?"
        ) from None
    schema = json.loads(schema_text)
    validator = validators.validator_for(schema)(schema)
    try:
        validator.validate(data)
    except ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise ReplyInvalidError(
            f"the reply does not match the schema at {where}: {exc.message}"
        ) from None
    return data


def response_format(schema_text: str, *, json_object: bool = False) -> dict[str, Any]:
    """The OpenAI API's ``response_format`` for a schema, which llama-server, vLLM and
    Ollama's ``/v1`` take; with ``json_object``, the older ``{"type": "json_object",
    "schema": …}`` form, the only one llama-cpp-python's server accepts."""
    schema = json.loads(schema_text)
    if json_object:
        return {"type": "json_object", "schema": schema}
    return {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": schema, "strict": True},
    }
