"""YAML for user files (suites, gate rules, bias and probe specs) with limits checked before expansion.

``yaml.safe_load`` builds no objects, but it still follows anchors and aliases: a few hundred bytes of
nested aliases ("billion laughs") stand for billions of nodes, and anything that walks the result
(``str()``, hashing, JSON) runs out of memory. :class:`BoundedSafeLoader` refuses, after composing and
before constructing anything,

- a document larger than :data:`MAX_YAML_BYTES` (1 MiB),
- more than :data:`MAX_ALIASES` alias uses (``*name``), and
- a document whose nodes, counted with every alias expanded, exceed :data:`MAX_EXPANDED_NODES`
  (also catches an alias that refers to itself).

Each refusal is a one-line :class:`~t2i_audit.errors.InputError` naming the file.
"""

from __future__ import annotations

import yaml

from t2i_audit.errors import InputError

MAX_YAML_BYTES = 1 << 20
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 200_000


class YAMLLimitError(InputError):
    """A YAML document exceeds a size or alias-expansion limit."""


def check_yaml_size(text: str | bytes, source: str) -> None:
    n = len(text.encode("utf-8") if isinstance(text, str) else text)
    if n > MAX_YAML_BYTES:
        raise YAMLLimitError(f"{source}: {n:,} bytes is larger than the {MAX_YAML_BYTES:,}-byte limit for a "
                             "YAML file; split it (suites can `include:` others)")


def check_yaml_file(path, source: str | None = None) -> None:
    """:func:`check_yaml_size` from the file's size on disk, before it is read."""
    import os

    n = os.stat(path).st_size
    if n > MAX_YAML_BYTES:
        raise YAMLLimitError(f"{source or path}: {n:,} bytes is larger than the {MAX_YAML_BYTES:,}-byte limit "
                             "for a YAML file; split it (suites can `include:` others)")


def expanded_size(node, source: str) -> int:
    """Nodes in ``node`` counted as if every alias were copied out; raises past the limit or on a cycle."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def walk(n) -> int:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YAMLLimitError(f"{source}: an alias refers to a node that contains it (a recursive "
                                 "structure); write the values out")
        active.add(key)
        total = 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                total += walk(k) + walk(v)
                if total > MAX_EXPANDED_NODES:
                    break
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                total += walk(v)
                if total > MAX_EXPANDED_NODES:
                    break
        active.discard(key)
        if total > MAX_EXPANDED_NODES:
            raise YAMLLimitError(f"{source}: its anchors and aliases expand to more than "
                                 f"{MAX_EXPANDED_NODES:,} YAML nodes (an alias bomb?); write the values out")
        sizes[key] = total
        return total

    return walk(node)


class BoundedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the limits of this module; ``name`` names the source in errors."""

    def __init__(self, stream, source: str | None = None):
        if source is not None:
            check_yaml_size(stream, source)
        super().__init__(stream)
        self._source = source
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YAMLLimitError(f"{self._source or self.name}: more than {MAX_ALIASES} YAML aliases "
                                     "(*name); write the values out")
        return super().compose_node(parent, index)

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        expanded_size(node, self._source or self.name)
        return self.construct_document(node)


def safe_load(text: str, source: str):
    """``yaml.safe_load`` with this module's limits; YAML syntax errors propagate as ``yaml.YAMLError``."""
    loader = BoundedSafeLoader(text, source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
