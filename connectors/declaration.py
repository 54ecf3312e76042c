"""What each connector type can be configured with, declared once, read by everything else.

The convention, for every connector type: the class names its configuration dataclass in
`config_class` (one field per key, with its type, its default and its meaning: a
`metadata={"doc": ...}` or the attribute docstring under the field) and its secrets in
`secret_keys`; `config_aliases` maps accepted spellings to a field (LDAP's `url` for `urls`).
From that one declaration:
- `options(type)` lists the keys (name, kind, required, default, secret, doc) for the CLI, the
  admin API's forms and the README;
- `form(type)` describes the same keys as a JSON Schema object, for the admin API's and the
  console's forms (a field's `metadata={"label_vi": ..., "label_en": ...}` becomes its
  `x-label-vi` / `x-label-en`, the console's labels; without them the key name is the label);
- `check(type, config)` refuses unknown keys, values of the wrong kind and missing required
  keys before anything is written, naming each key;
- `public_view` and `merge_secrets` make secrets write-only: they are never shown back (only
  whether one is set), and an edit that leaves a secret out keeps the stored one.
The connector itself still validates the meaning (an issuer's scheme, an LDAP filter) when the
registry opens it before saving.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass
from typing import Any

from connectors.base import LevelOfAssurance

KINDS = ("string", "integer", "number", "boolean", "list", "mapping", "level", "key")


class ConfigRefused(ValueError):
    """A configuration the declaration does not allow; `problems` names each key."""

    def __init__(self, type_name: str, problems: list[str]) -> None:
        self.type_name = type_name
        self.problems = problems
        super().__init__(f"{type_name} connector: " + "; ".join(problems))


@dataclass(frozen=True)
class Option:
    name: str
    kind: str
    required: bool
    default: Any
    secret: bool
    doc: str

    def as_dict(self) -> dict[str, Any]:
        default = self.default
        if isinstance(default, LevelOfAssurance):
            default = default.name.lower()
        elif isinstance(default, tuple):
            default = list(default)
        return {"name": self.name, "kind": self.kind, "required": self.required, "default": None if self.secret else default,
                "secret": self.secret, "doc": self.doc}


def _kind(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        kinds = {_kind(a) for a in args}
        if kinds == {"mapping", "string"}:
            return "key"  # a JWK (mapping) or PEM (string)
        return kinds.pop() if len(kinds) == 1 else "string"
    if hint is LevelOfAssurance:
        return "level"
    if hint is bool:
        return "boolean"
    if hint is int:
        return "integer"
    if hint is float:
        return "number"
    if hint is str:
        return "string"
    if origin in (tuple, list) or hint in (tuple, list):
        return "list"
    if origin in (dict, Mapping, typing.Mapping) or hint in (dict, Mapping):
        return "mapping"
    return "string"


def _attribute_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (the upstream OpenID connector's style)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def connector_class(type_name: str) -> type:
    from connectors.registry import load_type

    return load_type(type_name)


def options(type_name: str) -> tuple[Option, ...]:
    cls = connector_class(type_name)
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        raise TypeError(f"connector type {type_name} declares no config_class")
    secrets = frozenset(getattr(cls, "secret_keys", ()))
    hints = typing.get_type_hints(config_class)
    docs = _attribute_docs(config_class)
    out = []
    for f in dataclasses.fields(config_class):
        if f.default is not MISSING:
            default, required = f.default, False
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            default, required = f.default_factory(), False  # type: ignore[misc]
        else:
            default, required = None, True
        doc = str(f.metadata.get("doc") or docs.get(f.name) or "")
        out.append(Option(f.name, _kind(hints.get(f.name, str)), required, default, f.name in secrets, doc))
    return tuple(out)


_SCHEMA_OF_KIND: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "list": {"type": "array", "items": {"type": "string"}},
    "mapping": {"type": "object"},
    "level": {"type": "string", "enum": [level.name.lower() for level in LevelOfAssurance]},
    "key": {"type": ["object", "string"], "description": "A JWK (object) or a PEM (string)"},
}


def form(type_name: str) -> dict[str, Any]:
    """The type's configuration as a JSON Schema (2020-12) object: one property per declared
    key with its kind, default and doc; secrets `writeOnly` (and without a default); no other
    key allowed. What a form generator needs, and what `check` enforces."""
    properties: dict[str, Any] = {}
    labels = _labels(type_name)
    for option in options(type_name):
        shown = option.as_dict()
        prop = {**_SCHEMA_OF_KIND[option.kind], "title": option.name}
        if option.doc:
            prop["description"] = option.doc
        if option.secret:
            prop["writeOnly"] = True
            if option.kind == "string":
                prop["format"] = "password"
        elif shown["default"] is not None:
            prop["default"] = shown["default"]
        prop.update(labels.get(option.name, {}))
        properties[option.name] = prop
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False,
                           "required": [o.name for o in options(type_name) if o.required]}
    spelled = aliases(type_name)
    if spelled:
        out["x-aliases"] = dict(spelled)
    return out


def _labels(type_name: str) -> dict[str, dict[str, str]]:
    """The human labels a configuration field declares, by key: {"x-label-vi": ..., "x-label-en": ...}."""
    config_class = connector_class(type_name).config_class
    return {f.name: {f"x-label-{lang}": str(f.metadata[f"label_{lang}"]) for lang in ("vi", "en") if f.metadata.get(f"label_{lang}")}
            for f in dataclasses.fields(config_class)}


def aliases(type_name: str) -> Mapping[str, str]:
    return dict(getattr(connector_class(type_name), "config_aliases", {}))


def _kind_problem(option: Option, value: Any) -> str | None:
    if value is None or value == "":
        return None  # "use the default" (connectors.base.config_value)
    kind = option.kind
    ok: bool
    if kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(value, str):
            try:
                float(value)
                ok = True
            except ValueError:
                ok = False
    elif kind == "list":
        ok = isinstance(value, (list, tuple, str)) and all(isinstance(v, str) for v in ([value] if isinstance(value, str) else value))
    elif kind == "mapping":
        ok = isinstance(value, Mapping)
    elif kind == "key":
        ok = isinstance(value, (Mapping, str))
    elif kind == "level":
        try:
            LevelOfAssurance.parse(value)
            ok = True
        except (ValueError, KeyError, TypeError):
            ok = False
    else:
        ok = isinstance(value, str)
    return None if ok else f"`{option.name}` must be {'a ' if kind != 'integer' else 'an '}{kind}"


def check(type_name: str, config: Mapping[str, Any]) -> None:
    """Raise ConfigRefused unless every key is declared, of its kind, and the required ones set."""
    declared = {o.name: o for o in options(type_name)}
    spelled = aliases(type_name)
    problems = []
    unknown = sorted(k for k in config if k not in declared and k not in spelled)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(declared))})")
    for key, value in config.items():
        option = declared.get(spelled.get(key, key))
        if option is not None:
            problem = _kind_problem(option, value)
            if problem:
                problems.append(problem)
    given = {spelled.get(k, k) for k, v in config.items() if v not in (None, "")}
    missing = [o.name for o in declared.values() if o.required and o.name not in given]
    if missing:
        problems.append(f"missing required key(s) {', '.join(missing)}")
    if problems:
        raise ConfigRefused(type_name, problems)


def public_view(type_name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as an administrator may see it: each secret only as set or not."""
    secrets = {o.name for o in options(type_name) if o.secret}
    return {k: ({"set": v not in (None, "")} if k in secrets else v) for k, v in config.items()}


def merge_secrets(type_name: str, stored: Mapping[str, Any], edited: Mapping[str, Any]) -> dict[str, Any]:
    """An edit of a configuration: a secret left out (or empty) keeps the stored value."""
    out = dict(edited)
    for option in options(type_name):
        if option.secret and out.get(option.name) in (None, "") and stored.get(option.name) not in (None, ""):
            out[option.name] = stored[option.name]
    return out


def changed_keys(type_name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What an edit changed, for the audit: values before and after, secrets only as changed."""
    secrets = {o.name for o in options(type_name) if o.secret}
    out: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            out[key] = "(changed)" if key in secrets else {"before": before.get(key), "after": after.get(key)}
    return out
