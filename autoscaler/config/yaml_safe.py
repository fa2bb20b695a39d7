"""A bounded YAML reader for policy files, the daemon config and annotation values.

Plain ``yaml.safe_load`` let one file take the daemon down: 5,000 nested brackets raised
``RecursionError``, a 4,301-digit integer ``ValueError``, and an alias bomb ("billion laughs")
ran out of memory after 48 s. Here the text is read as a stream of ruamel.yaml parser events
(the parser keeps its own stack, so depth costs no Python recursion) and the data is built
from them in one pass, checking as it goes:

- size: the text is refused before parsing when over ``max_bytes``;
- depth: nesting over ``max_depth``, counting what aliases expand to;
- aliases: at most ``max_aliases``, and the data they expand to at most ``max_nodes`` nodes,
  counted from the anchored nodes' sizes, never by expanding;
- numbers: an int or float literal over ``max_number_chars`` characters is refused unread;
- duplicate keys: each is reported with the lines of both occurrences;
- keys must be scalars, an alias may not point into the node that holds it (a cycle), and
  only the core tags (null, bool, int, float, str, timestamp, map, seq) are read.

Every failure is a ``Problem`` naming the file, line and column; nothing else leaves this
module (anything unexpected from the parser becomes a problem too). YAML 1.2 is read (ruamel's
default): ``yes``/``no``/``on``/``off`` are strings and ``22:00`` is not a number; a file can
ask for ``%YAML 1.1``. Merge keys (``<<: *base``) work as in PyYAML.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.scanner import Scanner

from autoscaler.config.problems import NO_VALUE, PolicyFileError, Problem


@dataclass(frozen=True, slots=True)
class YamlLimits:
    max_bytes: int = 256 * 1024
    max_depth: int = 64
    max_aliases: int = 100
    max_nodes: int = 200_000
    max_number_chars: int = 100


DEFAULT_LIMITS: Final = YamlLimits()

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS: Final = frozenset(
    _TAG + name for name in ("null", "bool", "int", "float", "str", "timestamp")
)
_NUMBER_TAGS: Final = frozenset((_TAG + "int", _TAG + "float"))
_MERGE_TAG: Final = _TAG + "merge"
_COLLECTION_TAGS: Final = {
    MappingStartEvent: (None, "!", _TAG + "map"),
    SequenceStartEvent: (None, "!", _TAG + "seq"),
}


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Plain Python data, where each key path (``deployments[2].min_replicas``) was written,
    and the problems that did not stop the reading (duplicate keys, overlong numbers)."""

    source: str
    data: Any
    lines: dict[str, int]
    problems: tuple[Problem, ...] = ()

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest enclosing key (a cross-field rule about
        a key the file never wrote points at the block that lacks it)."""
        while True:
            line = self.lines.get(path)
            if line is not None or not path:
                return line
            path = _parent(path)

    def locate(self, problems: list[Problem]) -> list[Problem]:
        """``problems`` with the line filled in for those about this document."""
        return [
            _with_line(p, self.line_of(p.path)) if p.file == self.source and p.line is None else p
            for p in problems
        ]


def _with_line(problem: Problem, line: int | None) -> Problem:
    if line is None:
        return problem
    return Problem(problem.file, problem.path, problem.value, problem.rule, line)


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def load_yaml(text: str, source: str, limits: YamlLimits = DEFAULT_LIMITS) -> Any:
    """The data in ``text``; raises ``PolicyFileError`` (and nothing else) listing every
    problem."""
    document = parse_yaml(text, source, limits)
    if document.problems:
        raise PolicyFileError(document.problems)
    return document.data


def parse_yaml(text: str, source: str, limits: YamlLimits = DEFAULT_LIMITS) -> YamlDocument:
    """Read ``text`` within ``limits``. Raises ``PolicyFileError`` when the data cannot be
    read at all; problems that leave it readable come back in ``YamlDocument.problems``."""
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > limits.max_bytes else 0
    if size > limits.max_bytes:
        raise PolicyFileError(
            [Problem(source, "", None, f"larger than {limits.max_bytes} bytes ({size})")]
        )
    builder = _Builder(source, limits)
    try:
        builder.run(text)
    except _Stop as stop:
        raise PolicyFileError([*builder.problems, stop.problem]) from None
    except _FlowTooDeep as deep:
        # The top-level node counts as a level for the parser but not for the scanner.
        rule = f"nested deeper than {limits.max_depth} levels"
        problem = Problem(source, "", None, rule, deep.mark.line + 1, deep.mark.column + 1)
        raise PolicyFileError([*builder.problems, problem]) from None
    except MarkedYAMLError as exc:
        raise PolicyFileError([*builder.problems, _syntax_problem(source, exc)]) from None
    except YAMLError as exc:
        raise PolicyFileError([*builder.problems, _unmarked_problem(source, exc)]) from None
    except Exception as exc:
        # The parser's own slips (an AssertionError on `%YAML 1.10`), and anything the limits
        # above should already prevent (RecursionError, MemoryError): no input may take a
        # caller down.
        rule = f"cannot read as YAML ({type(exc).__name__}: {exc})"
        raise PolicyFileError([*builder.problems, Problem(source, "", None, rule)]) from None
    return YamlDocument(source, builder.root, builder.lines, tuple(builder.problems))


def _syntax_problem(source: str, exc: MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    parts = [str(p).strip() for p in (exc.context, exc.problem) if p]
    rule = "invalid YAML: " + ": ".join(parts).replace("\n", " ")
    if mark is None:
        return Problem(source, "", None, rule)
    return Problem(source, "", None, rule, mark.line + 1, mark.column + 1)


def _unmarked_problem(source: str, exc: YAMLError) -> Problem:
    # A ReaderError (a control character) knows its offset, not its line.
    text = str(exc).replace("\n", " ").replace('"<unicode string>"', "").strip()
    return Problem(source, "", None, f"invalid YAML: {text}")


class _FlowScanner(Scanner):
    """Refuses a ``[`` or ``{`` past the depth limit as it scans it. The parser would too,
    but only after the scanner has looked ahead for a possible key behind every open bracket
    (up to 1,024 characters, across every flow level at each step): a line of 5,000 ``[``
    cost 1.4 s before the first event."""

    max_flow_level = DEFAULT_LIMITS.max_depth

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if self.flow_level >= self.max_flow_level:
            raise _FlowTooDeep(self.reader.get_mark())
        super().fetch_flow_collection_start(TokenClass, to_push)


class _FlowTooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        super().__init__("flow collections nested too deep")
        self.mark = mark


class _Stop(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(slots=True)
class _Anchored:
    value: Any
    size: int
    height: int
    is_mapping: bool


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence being built."""

    value: Any
    path: str
    anchor: str | None
    depth: int
    size: int = 1
    height: int = 1
    key: Hashable = None
    has_key: bool = False
    key_line: int = 0
    key_is_merge: bool = False
    first_line: dict[Hashable, int] = field(default_factory=dict)
    merges: list[dict[Any, Any]] = field(default_factory=list)


class _Builder:
    def __init__(self, source: str, limits: YamlLimits) -> None:
        self.source = source
        self.limits = limits
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}
        self.root: Any = None
        self.anchors: dict[str, _Anchored] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.aliases = 0
        self.documents = 0
        self.yaml = YAML(typ="safe", pure=True)
        # A subclass per limit, so concurrent readers with other limits do not share one.
        self.yaml.Scanner = type(
            "_LimitedFlowScanner", (_FlowScanner,), {"max_flow_level": limits.max_depth}
        )
        constructors = self.yaml.constructor.yaml_constructors
        self.scalar_constructors: dict[str, Callable[[Any, Any], Any]] = {
            tag: constructors[tag] for tag in _SCALAR_TAGS
        }

    # --- the event loop -------------------------------------------------------------------

    def run(self, text: str) -> None:
        for event in self.yaml.parse(text):
            if isinstance(event, ScalarEvent):
                self.scalar(event)
            elif isinstance(event, MappingStartEvent | SequenceStartEvent):
                self.start(event)
            elif isinstance(event, MappingEndEvent | SequenceEndEvent):
                self.end()
            elif isinstance(event, AliasEvent):
                self.alias(event)
            elif isinstance(event, DocumentStartEvent):
                self.documents += 1
                if self.documents > 1:
                    self.stop(event, "must hold one YAML document (found a second '---')")

    def stop(self, event: Event, rule: str, path: str = "") -> NoReturn:
        mark = event.start_mark
        value = NO_VALUE if path else None
        raise _Stop(Problem(self.source, path, value, rule, mark.line + 1, mark.column + 1))

    # --- nodes ----------------------------------------------------------------------------

    def start(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        depth = len(self.stack) + 1
        if depth > self.limits.max_depth:
            self.stop(event, f"nested deeper than {self.limits.max_depth} levels")
        if event.tag not in _COLLECTION_TAGS[type(event)]:
            self.stop(event, f"unsupported tag {event.tag}")
        path = self.child_path(event)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        value: Any = {} if isinstance(event, MappingStartEvent) else []
        self.stack.append(_Frame(value, path, event.anchor, depth))

    def end(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            for merged in reversed(frame.merges):
                for key, item in merged.items():
                    frame.value.setdefault(key, item)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = _Anchored(
                frame.value, frame.size, frame.height, isinstance(frame.value, dict)
            )
        self.attach(frame.value, frame.size, frame.height)

    def scalar(self, event: ScalarEvent) -> None:
        parent = self.stack[-1] if self.stack else None
        is_key = parent is not None and isinstance(parent.value, dict) and not parent.has_key
        if parent is not None and is_key and _is_merge_key(event):
            self.take_key(parent, event, "<<", is_merge=True)
            return
        value = self.construct(event)
        if parent is not None and is_key:
            self.take_key(parent, event, value, is_merge=False)
        else:
            self.child_path(event)
            self.attach(value, 1, 0)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchored(value, 1, 0, is_mapping=False)

    def alias(self, event: AliasEvent) -> None:
        self.aliases += 1
        if self.aliases > self.limits.max_aliases:
            self.stop(event, f"more than {self.limits.max_aliases} aliases")
        name = event.anchor
        if name in self.open_anchors:
            self.stop(event, f"alias *{name} refers to a node that contains it (a cycle)")
        anchored = self.anchors.get(name)
        if anchored is None:
            self.stop(event, f"alias *{name} names no anchor defined before it")
        if len(self.stack) + anchored.height > self.limits.max_depth:
            self.stop(event, f"nested deeper than {self.limits.max_depth} levels (via *{name})")
        parent = self.stack[-1] if self.stack else None
        if isinstance(parent, _Frame) and isinstance(parent.value, dict) and not parent.has_key:
            if anchored.height:
                self.stop(event, "a mapping key must be a scalar")
            self.take_key(parent, event, anchored.value, is_merge=False)
            return
        self.child_path(event)
        self.attach(anchored.value, anchored.size, anchored.height, merge_ok=anchored.is_mapping)

    def attach(self, value: Any, size: int, height: int, *, merge_ok: bool = False) -> None:
        if not self.stack:
            self.root = value
            return
        parent = self.stack[-1]
        parent.size += size
        parent.height = max(parent.height, height + 1)
        if parent.size > self.limits.max_nodes:
            raise _Stop(
                Problem(
                    self.source,
                    parent.path,
                    NO_VALUE,
                    f"expands to more than {self.limits.max_nodes} values (aliases repeat "
                    "what they name: an alias bomb?)",
                    self.lines.get(parent.path),
                )
            )
        if isinstance(parent.value, list):
            parent.value.append(value)
            return
        parent.has_key = False
        if parent.key_is_merge:
            self.merge(parent, value, merge_ok or isinstance(value, dict))
        else:
            parent.value[parent.key] = value

    def merge(self, frame: _Frame, value: Any, is_mapping: bool) -> None:
        sources = value if isinstance(value, list) else [value]
        if not is_mapping and not (
            isinstance(value, list) and all(isinstance(v, dict) for v in value)
        ):
            self.problems.append(
                Problem(
                    self.source,
                    frame.path,
                    NO_VALUE,
                    "a merge key (<<) takes a mapping or a list of mappings",
                    frame.key_line,
                )
            )
            return
        # Earlier sources win over later ones, and the mapping's own keys over all of them.
        frame.merges.extend(reversed(sources))

    def take_key(self, frame: _Frame, event: Event, key: Any, is_merge: bool) -> None:
        if not isinstance(key, Hashable):
            self.stop(event, "a mapping key must be a scalar")
        line = event.start_mark.line + 1
        frame.has_key, frame.key, frame.key_line, frame.key_is_merge = True, key, line, is_merge
        if is_merge:
            return
        path = _join(frame.path, str(key))
        first = frame.first_line.get(key)
        if first is not None:
            self.problems.append(
                Problem(
                    self.source,
                    path,
                    NO_VALUE,
                    f"duplicate key (first at line {first})",
                    line,
                )
            )
        else:
            frame.first_line[key] = line
            self.lines[path] = line

    def child_path(self, event: Event) -> str:
        """The key path of the node ``event`` starts, recording where it was written."""
        if not self.stack:
            self.lines.setdefault("", event.start_mark.line + 1)
            return ""
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            path = f"{parent.path}[{len(parent.value)}]"
            self.lines[path] = event.start_mark.line + 1
            return path
        if not parent.has_key:
            self.stop(event, "a mapping key must be a scalar", parent.path)
        return _join(parent.path, str(parent.key))

    # --- scalars --------------------------------------------------------------------------

    def construct(self, event: ScalarEvent) -> Any:
        text: str = event.value
        if event.tag is None or event.tag == "!":
            # Quoted scalars (implicit[0] false) are strings; plain ones are resolved.
            tag = str(self.yaml.resolver.resolve(ScalarNode, text, event.implicit))
        else:
            tag = event.tag
        if tag == _MERGE_TAG:  # `<<` where no key is expected: plain text
            return text
        constructor = self.scalar_constructors.get(tag)
        if constructor is None:
            self.stop(event, f"unsupported tag {tag}")
        if tag in _NUMBER_TAGS and len(text) > self.limits.max_number_chars:
            line, column = event.start_mark.line + 1, event.start_mark.column + 1
            self.problems.append(
                Problem(
                    self.source,
                    self.peek_path(),
                    text,
                    f"number longer than {self.limits.max_number_chars} characters",
                    line,
                    column,
                )
            )
            return text
        node = ScalarNode(tag, text, event.start_mark, event.end_mark, style=event.style)
        try:
            return constructor(self.yaml.constructor, node)
        except (ValueError, TypeError, KeyError, IndexError, ArithmeticError, YAMLError):
            # e.g. `!!int abc`, or `!!timestamp` on a date that does not exist.
            self.stop(event, f"{text[:40]!r} is not a valid {tag.removeprefix(_TAG)}")

    def peek_path(self) -> str:
        """The path the scalar being read will take (for a problem about it)."""
        if not self.stack:
            return ""
        parent = self.stack[-1]
        if isinstance(parent.value, list):
            return f"{parent.path}[{len(parent.value)}]"
        if parent.has_key:
            return _join(parent.path, str(parent.key))
        return parent.path


def _is_merge_key(event: ScalarEvent) -> bool:
    return event.value == "<<" and event.tag is None and bool(event.implicit[0])


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
