"""Read a runbook file into plain data while keeping the line and column of every YAML node.

Every problem found later (schema, semantic) is located through :class:`Source`; problems
found here (unreadable file, bad YAML, duplicate keys...) are returned, never raised as
anything but :class:`SourceError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PathItem = str | int
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Problem:
    """One located problem; ``line``/``col`` are 1-based."""

    line: int
    col: int
    message: str

    def render(self, file: str) -> str:
        return f"{file}:{self.line}:{self.col}: {self.message}"


def json_path(path: Sequence[PathItem]) -> str:
    """``("steps", 2, "timeout")`` → ``steps[2].timeout``; the empty path is ``(top level)``."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        elif _IDENT.match(item):
            out += f".{item}" if out else item
        else:
            out += f"[{item!r}]"
    return out or "(top level)"


def show(value: object, limit: int = 60) -> str:
    """A value as it may appear in a message: repr, shortened, never raising on odd text."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SourceError(Exception):
    """The file cannot be turned into data at all; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mapping keys are the scalar's own text (so ``on:`` stays ``"on"``,
    ``1:`` stays ``"1"``), whose timestamps stay strings, and which records duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[Problem] = []

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain string, not a list or a mapping",
                    key_node.start_mark)
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            if key in seen:
                mark = key_node.start_mark
                self.duplicates.append(Problem(
                    mark.line + 1, mark.column + 1,
                    f"duplicate key {show(key)} (first at line {seen[key]}) — keep only one"))
            else:
                seen[key] = key_node.start_mark.line + 1
        self.flatten_mapping(node)
        mapping: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):  # a merged mapping's key
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain string, not a list or a mapping",
                    key_node.start_mark)
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


def _timestamp_as_text(loader: _Loader, node: Node) -> Any:
    """``2024-01-31`` stays the string it looks like (as in YAML 1.2 and in editors)."""
    return loader.construct_yaml_str(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


@dataclass
class Source:
    """A parsed runbook: ``data`` (plain Python) and ``root`` (the YAML node tree)."""

    path: Path
    raw: bytes
    root: Node
    data: Any
    problems: list[Problem] = field(default_factory=list)

    def locate(self, path: Sequence[PathItem], key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the node at ``path`` (of its key with ``key=True``), or of
        the deepest existing node on the way there."""
        node: Node = self.root
        key_node: Node | None = None
        for item in path:
            found: Node | None = None
            if isinstance(node, MappingNode) and isinstance(item, str):
                for k, v in node.value:  # last one wins, as in the constructed data
                    if isinstance(k, ScalarNode) and k.value == item:
                        key_node, found = k, v
            elif (isinstance(node, SequenceNode) and isinstance(item, int)
                  and 0 <= item < len(node.value)):
                found, key_node = node.value[item], None
            if found is None:
                key_node = None
                break
            node = found
        target = key_node if key and key_node is not None else node
        return target.start_mark.line + 1, target.start_mark.column + 1

    def problem(self, path: Sequence[PathItem], message: str, key: bool = False) -> Problem:
        line, col = self.locate(path, key=key)
        return Problem(line, col, f"{json_path(path)}: {message}")


def _fatal(line: int, col: int, message: str) -> SourceError:
    return SourceError(Problem(line, col, message))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise _fatal(line, col, "the file is not UTF-8 text — save it as UTF-8") from None


def _position(text: str, index: int) -> tuple[int, int]:
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def read_source(path: Path) -> Source:
    """Read and parse ``path``; raise :class:`SourceError` if there is no usable mapping."""
    try:
        if path.is_dir():
            raise _fatal(1, 1, "is a directory, not a runbook file — name a .yml file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fatal(1, 1, "runbook not found — check the path") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _fatal(1, 1, f"cannot read the runbook: {reason}") from None
    text = _decode(raw)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position)
        raise _fatal(line, col, f"invalid YAML: {exc.reason} (character "
                                f"{exc.character!r}) — remove it") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            context += f" (line {exc.context_mark.line + 1})"
        what = ", ".join(p for p in (context, exc.problem) if p)
        raise _fatal(line, col, f"invalid YAML: {what} — fix the syntax here") from None
    except yaml.YAMLError as exc:
        raise _fatal(1, 1, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _fatal(1, 1, "invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None or data is None:
        raise _fatal(1, 1, "the runbook is empty — start with version: 1, name:, "
                           "objectives: and steps:")
    if not isinstance(data, dict):
        mark = root.start_mark
        raise _fatal(mark.line + 1, mark.column + 1,
                     f"the top level must be a mapping (name:, objectives:, steps: ...), "
                     f"not {type_name(data)}")
    source = Source(path=path, raw=raw, root=root, data=data)
    source.problems.extend(loader.duplicates)
    source.problems.extend(_odd_values(source, data, []))
    return source


def type_name(value: object) -> str:
    """The YAML word for a Python value's type, with an article."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


_MAX_VALUES = 100_000
_MAX_DEPTH = 40


def _odd_values(source: Source, value: Any, path: list[PathItem]) -> list[Problem]:
    """Values that no JSON consumer can take: non-finite numbers, binary, sets; raise
    SourceError for a structure that contains itself or explodes through aliases."""
    out: list[Problem] = []
    ancestors: set[int] = set()
    count = 0

    def walk(item: Any, where: list[PathItem]) -> None:
        nonlocal count
        count += 1
        if len(where) > _MAX_DEPTH:
            line, col = source.locate(where)
            raise _fatal(line, col, f"nested more than {_MAX_DEPTH} levels deep — flatten it")
        if count > _MAX_VALUES:
            line, col = source.locate(where)
            raise _fatal(line, col, "too many values (aliases expand too far) — "
                                    "write the runbook without nested aliases")
        if isinstance(item, dict | list):
            if id(item) in ancestors:
                line, col = source.locate(where)
                raise _fatal(line, col, "a YAML alias refers to a node that contains it — "
                                        "remove the alias")
            ancestors.add(id(item))
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for k, v in pairs:
                walk(v, [*where, k if isinstance(k, int) and isinstance(item, list) else str(k)])
            ancestors.discard(id(item))
        elif isinstance(item, float) and not math.isfinite(item):
            out.append(source.problem(where, f"{item} is not a usable number — "
                                             "give a finite value"))
        elif not isinstance(item, str | int | float | bool | type(None)):
            out.append(source.problem(where, f"{type_name(item)} is not allowed — "
                                             "use a string, number, list or mapping"))

    walk(value, path)
    return out
