"""Files a user hands us (values, lint inputs, scenario files): read within a size limit, parsed
by a YAML loader whose work is bounded. Every problem is a `UserError` naming the file.

YAML aliases let a 700-byte document describe a tree of billions of nodes ("billion laughs"):
each alias stands for the whole node it names. The loader below charges every node it composes,
and every alias at the full size of the tree it stands for, and stops at `MAX_YAML_NODES`, so
that neither the loader nor the code walking its result can be made to do exponential work.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from .errors import UserError

# Helm values with --all are ~100 KB and `helm template` output a few MB.
MAX_LINT_INPUT_BYTES = 8 * 1024 * 1024
# Values and scenario files are hand-written: a few KB.
MAX_VALUES_BYTES = 1024 * 1024
# A real Cilium values file is a few thousand nodes, expanded.
MAX_YAML_NODES = 200_000


def read_text(path, what: str, limit: int, dir_hint: str = "a file") -> str:
    """The UTF-8 text of `path` ('-': stdin), or a UserError naming it. `what` is how the
    message names the file (e.g. "--values values.yaml")."""
    try:
        if str(path) == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read(limit + 1) if stream is not None else sys.stdin.read(limit + 1).encode("utf-8")
        else:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        raise UserError(f"{what}: no such file; check the path") from None
    except IsADirectoryError:
        raise UserError(f"{what}: is a directory; pass {dir_hint}") from None
    except OSError as exc:
        raise UserError(f"{what}: cannot read ({exc.strerror or exc}); check permissions") from None
    if len(data) > limit:
        raise UserError(f"{what}: larger than {_size(limit)} (the limit for this file; see docs/limits.md)")
    if b"\0" in data:
        raise UserError(f"{what}: not a UTF-8 text file (binary content); pass a YAML or text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what}: not a UTF-8 text file (invalid byte at offset {exc.start}); pass a YAML or text file") from None


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


class YamlTooLarge(yaml.YAMLError):
    pass


class DuplicateKey(yaml.YAMLError):
    pass


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents whose alias-expanded size exceeds MAX_YAML_NODES."""

    max_nodes = MAX_YAML_NODES

    def __init__(self, stream):
        super().__init__(stream)
        self._charged = 0
        self._sizes = {}
        self._complete = set()  # anchors whose node is fully composed

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                if id(node) not in self._sizes and event.anchor not in self._complete:
                    raise YamlTooLarge(f"the alias *{event.anchor} refers to a node that contains it (infinite)")
                self._charge(self._expanded(node))
            return super().compose_node(parent, index)
        self._charge(1)
        node = super().compose_node(parent, index)
        if getattr(event, "anchor", None):
            self._complete.add(event.anchor)
        return node

    def construct_mapping(self, node, deep=False):
        """A mapping that names a key twice is refused: YAML keeps one of the two silently, and
        which one the user meant cannot be known."""
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise DuplicateKey(f"the key {key_node.value!r} appears twice in one mapping (lines {seen[key] + 1} "
                                       f"and {key_node.start_mark.line + 1}); keep one")
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def _charge(self, nodes):
        self._charged += nodes
        if self._charged > self.max_nodes:
            raise YamlTooLarge(f"more than {self.max_nodes} YAML nodes once aliases are expanded (an alias bomb?)")

    def _expanded(self, node):
        """Nodes in `node`'s tree with every alias expanded (memoised: linear in the document)."""
        key = id(node)
        size = self._sizes.get(key)
        if size is None:
            size = 1
            if isinstance(node, yaml.SequenceNode):
                size += sum(self._expanded(child) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                size += sum(self._expanded(k) + self._expanded(v) for k, v in node.value)
            self._sizes[key] = size
        return size


# Scalars are typed as YAML 1.2 (and Go's YAML readers, and Cilium) type them, not YAML 1.1:
# only true/false (three spellings) are booleans, so `yes`, `on` or `y` stay text for the code
# that reads them to judge; and `1e3` is a number, as users mean it (YAML 1.1 needs `1.0e+3`).
_BOOL = "tag:yaml.org,2002:bool"
BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
BoundedLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"), list("-+0123456789.")
)


def yaml_error(what: str, exc: yaml.YAMLError, fix: str = "fix the syntax") -> UserError:
    if isinstance(exc, (YamlTooLarge, DuplicateKey)):
        return UserError(f"{what}: refused: {exc}")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None)
    return UserError(f"{what}: malformed YAML{where}{f' ({problem})' if problem else ''}; {fix}")


def load_yaml(text: str, what: str):
    """One YAML document through the bounded loader."""
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - BoundedLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise yaml_error(what, exc) from None


def load_yaml_file(path, what: str, limit: int = MAX_VALUES_BYTES):
    return load_yaml(read_text(Path(path) if str(path) != "-" else path, what, limit), what)
