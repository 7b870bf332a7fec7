"""Parsing YAML and JSON documents from users with limits on size, nesting and alias expansion.

Suites, experiment configs and model or judge configs arrive as YAML or JSON files (the CLI), as JSON bodies
(the API) and as JSON model files. ``yaml.safe_load`` constructs no arbitrary objects, but it has no limits:

* an alias bomb ("billion laughs": nine aliases of nine aliases of ...) is a few hundred bytes that PyYAML
  loads as shared references, and that expands to billions of nodes as soon as anything walks it (hashing a
  suite's normalised definition ran 121 s and 1.1 GB before it was killed);
* a deeply nested document (``[[[[...]]]]``) ends in a ``RecursionError`` in the composer (YAML) or the
  decoder (JSON) instead of an error naming the input.

:func:`load_yaml` checks the event stream (libyaml's parser, which does not recurse) before anything is
built: the document's size, its nesting depth, its number of aliases and the number of nodes it would have
with every alias expanded. Only a document within every limit is composed and constructed. :func:`load_json`
and :func:`check_structure` do the same for JSON. Each refusal is an :class:`InvalidInput` naming the field,
the source and the limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eval_platform.core.errors import InvalidInput

#: a JSON string literal (escapes included): brackets inside one do not nest
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


@dataclass(frozen=True)
class Limits:
    """Bounds on a user's YAML or JSON document, checked before it is built (see the module's docstring)."""

    #: bytes of the document (UTF-8): suites and configs are a few kB
    max_bytes: int = 1 << 20
    #: nesting of mappings and sequences; the deepest shipped suite nests 6 levels
    max_depth: int = 64
    #: alias references (``*name``); anchors are fine, referring to them thousands of times is not
    max_aliases: int = 100
    #: nodes of the document with every alias expanded: what a consumer walking it sees (a bomb with few
    #: aliases still expands to billions)
    max_nodes: int = 100_000


DEFAULT_LIMITS = Limits()


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _check_size(text: str | bytes, field: str, source: str | None, limits: Limits) -> None:
    size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
    if size > limits.max_bytes:
        raise InvalidInput(field, f"{_where(source)}the document is {size} bytes, over the limit of {limits.max_bytes} bytes")


def load_yaml(text: str | bytes, *, field: str, source: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Any:
    """The single document in ``text`` (YAML, so JSON too), refused unless within ``limits``."""
    import yaml

    _check_size(text, field, source, limits)
    where = _where(source)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_events(yaml.parse(text, Loader=loader), _EventBudget(field, where, limits))
        # within every limit: composing (recursive, but at most max_depth deep) and constructing are bounded
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as error:
        if "maximum nesting depth" in str(error):  # libyaml's own bound (1000), met while scanning ahead
            raise InvalidInput(field, f"{where}nested deeper than {limits.max_depth} levels (limit {limits.max_depth})") from None
        raise InvalidInput(field, f"{where}not valid YAML/JSON: {error}") from error


def _check_events(events: Iterable[Any], budget: _EventBudget) -> None:
    """Walk libyaml's event stream once, counting into ``budget`` (which refuses the first event over a limit)."""
    import yaml

    for event in events:
        if isinstance(event, yaml.AliasEvent):
            budget.alias(event)
        elif isinstance(event, yaml.ScalarEvent):
            budget.scalar(event)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            budget.open_collection(event)
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            budget.close_collection()
        elif isinstance(event, yaml.DocumentEndEvent):
            budget.end_document()
        budget.check_nodes(event)


class _EventBudget:
    """Depth, aliases and expanded node count of a YAML event stream so far, checked against :class:`Limits`."""

    def __init__(self, field: str, where: str, limits: Limits):
        self.field, self.where, self.limits = field, where, limits
        self.depth = self.aliases = self.nodes = 0
        # an anchored collection's position in ``nodes`` when it opened: its expanded size is known when it closes
        self.open_collections: list[tuple[str | None, int]] = []
        self.sizes: dict[str, int] = {}  # anchor -> nodes it stands for when expanded

    def alias(self, event: Any) -> None:
        limits, where = self.limits, self.where
        self.aliases += 1
        if self.aliases > limits.max_aliases:
            raise InvalidInput(self.field, f"{where}more than {limits.max_aliases} aliases (limit {limits.max_aliases}), "
                                           f"at line {event.start_mark.line + 1}")
        if event.anchor not in self.sizes:
            # undefined, or an alias inside the node it names: a recursive structure nothing can hash
            raise InvalidInput(self.field, f"{where}alias *{event.anchor} at line {event.start_mark.line + 1} refers to "
                                           "no complete node before it (undefined or recursive)")
        self.nodes += self.sizes[event.anchor]

    def scalar(self, event: Any) -> None:
        self.nodes += 1
        if event.anchor is not None:
            self.sizes[event.anchor] = 1

    def open_collection(self, event: Any) -> None:
        limits = self.limits
        self.depth += 1
        if self.depth > limits.max_depth:
            raise InvalidInput(self.field, f"{self.where}nested deeper than {limits.max_depth} levels (limit {limits.max_depth}), "
                                           f"at line {event.start_mark.line + 1}")
        self.open_collections.append((event.anchor, self.nodes))
        self.nodes += 1

    def close_collection(self) -> None:
        self.depth -= 1
        anchor, opened_at = self.open_collections.pop()
        if anchor is not None:
            self.sizes[anchor] = self.nodes - opened_at

    def end_document(self) -> None:
        self.sizes.clear()  # anchors do not cross documents

    def check_nodes(self, event: Any) -> None:
        limits = self.limits
        if self.nodes > limits.max_nodes:
            raise InvalidInput(self.field, f"{self.where}expands to more than {limits.max_nodes} nodes with its aliases "
                                           f"(limit {limits.max_nodes}), at line {event.end_mark.line + 1}")


def load_json(text: str | bytes, *, field: str, source: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Any:
    """``json.loads`` refused unless within ``limits`` (size, depth, nodes); never a ``RecursionError``."""
    check_json_text(text, field=field, source=source, limits=limits)
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidInput(field, f"{_where(source)}not valid JSON: {error}") from error
    check_structure(value, field=field, source=source, limits=limits)
    return value


def check_json_text(text: str | bytes, *, field: str, source: str | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse JSON text over the size limit or nested deeper than the depth limit, before decoding it: json's
    decoder recurses once per level. Brackets inside strings do not count, so the scan keeps string state
    (fast enough: the text is at most ``max_bytes``)."""
    _check_size(text, field, source, limits)
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")  # for the scan only; json.loads decodes the original
    where = _where(source)
    if text.count("[") + text.count("{") <= limits.max_depth:
        return  # cannot nest deeper than its number of opening brackets
    import numpy as np

    # depth = running count of opening minus closing brackets outside strings (vectorised: 1 MiB in milliseconds)
    codes = np.frombuffer(_JSON_STRING.sub('""', text).encode("utf-8"), dtype=np.uint8)
    steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int32) - ((codes == ord("]")) | (codes == ord("}")))
    if len(steps) and int(np.cumsum(steps).max()) > limits.max_depth:
        raise InvalidInput(field, f"{where}nested deeper than {limits.max_depth} levels (limit {limits.max_depth})")


def check_structure(value: Any, *, field: str, source: str | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse an already parsed document (a JSON request body) nested deeper than ``limits.max_depth`` or
    holding more than ``limits.max_nodes`` nodes. Iterative, so a structure of any depth is refused cleanly."""
    where = _where(source)
    stack = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise InvalidInput(field, f"{where}more than {limits.max_nodes} nodes (limit {limits.max_nodes})")
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limits.max_depth:
            raise InvalidInput(field, f"{where}nested deeper than {limits.max_depth} levels (limit {limits.max_depth})")
        stack.extend((child, depth + 1) for child in children)
