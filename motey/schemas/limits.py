"""Limits every parser applies before it builds objects from untrusted text.

Python's ``json`` and PyYAML's composer recurse once per nesting level, so ``[`` × 50000
ends in a ``RecursionError`` deep inside them (a 500 and a long traceback), and a YAML
alias bomb of a few hundred bytes expands into millions of nodes. Both are refused here,
before any object is built, with a :class:`~motey.errors.ValidationError` that says what
was too deep or too large.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
import yaml.nodes

from motey.errors import ValidationError

#: Deepest nesting of lists and mappings any message may have. Blueprints, capability
#: lists and node messages need four or five levels; 32 leaves room for Docker parameters.
MAX_DEPTH = 32

#: Most nodes (scalars, lists, mappings) a YAML document may stand for once its aliases
#: are expanded. A full 256 KiB blueprint written out has far fewer.
MAX_YAML_NODES = 20_000

#: Most aliases one YAML document may use; anchors for shared settings need a handful.
MAX_YAML_ALIASES = 100

# Escape pairs, string quotes and brackets: everything the depth scan looks at. An escape
# pair is consumed whole, so an escaped quote never ends a string.
_DEPTH_TOKENS = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def check_json_depth(text: str | bytes, what: str, limit: int = MAX_DEPTH) -> None:
    """Refuse text whose brackets nest deeper than ``limit``, without parsing it.

    One linear pass (the regular expression finds the next interesting character in C;
    brackets inside double-quoted strings do not count). Used for JSON and for YAML's
    flow collections; a YAML single-quoted string's brackets do count, which can only
    refuse a document with more than ``limit`` unbalanced brackets inside one.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if text.count("[") + text.count("{") <= limit:
        return  # cannot be deeper than it has brackets: the common case, counted in C
    depth = 0
    in_string = False
    for match in _DEPTH_TOKENS.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or len(token) > 1:
            continue
        elif token in "[{":
            depth += 1
            if depth > limit:
                raise ValidationError(
                    f"{what} is nested deeper than {limit} levels", field="(document)"
                )
        else:
            depth -= 1


def loads_json(text: str | bytes, what: str, limit: int = MAX_DEPTH) -> Any:
    """``json.loads`` after the depth check; any failure is a :class:`ValidationError`."""
    check_json_depth(text, what, limit)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}", field="(document)") from None


class _LimitedLoader(yaml.SafeLoader):
    """A SafeLoader whose composer counts depth and aliases as it goes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise ValidationError(
                    f"YAML uses more than {MAX_YAML_ALIASES} aliases (line {mark.line + 1})",
                    field="(document)",
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ValidationError(
                    f"YAML is nested deeper than {MAX_DEPTH} levels (line {mark.line + 1})",
                    field="(document)",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(node: yaml.nodes.Node, memo: dict[int, int], active: set[int]) -> int:
    """Nodes ``node`` stands for once every alias is written out (memoised per node)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ValidationError("YAML contains a recursive alias", field="(document)")
    if isinstance(node, yaml.nodes.ScalarNode):
        return 1
    active.add(key)
    children: list[yaml.nodes.Node] = []
    if isinstance(node, yaml.nodes.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.nodes.MappingNode):
        for k, v in node.value:
            children.extend((k, v))
    total = 1
    for child in children:
        total += _expanded_size(child, memo, active)
        if total > MAX_YAML_NODES:
            break
    active.discard(key)
    memo[key] = total
    return total


def _depth(node: yaml.nodes.Node, memo: dict[int, int]) -> int:
    """Nesting depth of ``node`` with aliases followed (acyclic by now)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if isinstance(node, yaml.nodes.ScalarNode):
        return 0
    if isinstance(node, yaml.nodes.MappingNode):
        children = [c for pair in node.value for c in pair]
    else:
        children = list(node.value)
    result = 1 + max((_depth(c, memo) for c in children), default=0)
    memo[key] = result
    return result


def safe_load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses deep nesting, alias bombs and recursive aliases.

    Composing first (aliases stay references to one node) lets the expanded size be
    counted without expanding anything; only a document within the limits is built.
    PyYAML errors pass through as :class:`yaml.YAMLError` for the caller to describe.
    """
    # Flow collections ([ and {) are counted before the scanner sees them: PyYAML's
    # scanner looks far ahead in flow context, so 50000 brackets would cost it seconds.
    # Block nesting (indentation) is counted by the composer below.
    check_json_depth(text, "YAML")
    loader = _LimitedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ValidationError(
                f"YAML is nested deeper than {MAX_DEPTH} levels", field="(document)"
            ) from None
        if node is None:
            return None
        try:
            size = _expanded_size(node, {}, set())
            depth = _depth(node, {})
        except RecursionError:
            raise ValidationError(
                "YAML aliases nest deeper than Motey follows", field="(document)"
            ) from None
        if size > MAX_YAML_NODES:
            raise ValidationError(
                f"YAML expands to more than {MAX_YAML_NODES} values once its aliases are "
                "written out (an alias bomb?)",
                field="(document)",
            )
        if depth > MAX_DEPTH:
            raise ValidationError(
                f"YAML is nested deeper than {MAX_DEPTH} levels once its aliases are written out",
                field="(document)",
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()
