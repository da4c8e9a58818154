"""Reading and writing directory files as YAML or JSON: the one home of PyYAML.

YAML is read with the safe loader, narrowed towards YAML 1.2 so that policy documents mean
what they say: ``Version: 2012-10-17`` stays a string (not a date), only ``true``/``false``
are booleans (not ``yes``/``no``/``on``/``off``), and a key given twice in one mapping is an
error rather than silently the last one.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

_DROPPED_RESOLVERS = ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")


class SyntaxProblem(ValueError):
    """The file is not well-formed YAML or JSON; the message says where."""


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key `{key}` twice",
                    key_node.start_mark,
                )
            seen.add(key if isinstance(key, str | int | float | bool) else id(key_node))
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag not in _DROPPED_RESOLVERS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("tTfF"))


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as people write YAML."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line text (SAML metadata) as a literal block, line for line; the emitter falls
    # back to a quoted scalar for text a block cannot hold exactly (trailing spaces, ...).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def parse(text: str, as_json: bool) -> object:
    """The data in ``text``; raises :class:`SyntaxProblem` with a line and column."""
    if as_json:
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise SyntaxProblem(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SyntaxProblem(f"{where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SyntaxProblem(str(exc)) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SyntaxProblem(f"found the key `{key}` twice in one object")
        out[key] = value
    return out


def dump(data: object, as_json: bool) -> str:
    """``data`` as JSON (indented) or as block-style YAML in the order given."""
    if as_json:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
