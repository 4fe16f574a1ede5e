"""The runbook JSON Schema (package data) and its errors rewritten for people.

jsonschema reports *what* failed in schema terms; :func:`schema_problems` turns every error
(all of them, not the first) into a located line that says what is wrong and what to do.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

from drdrill.runbook.durations import DURATION_PATTERN
from drdrill.runbook.source import PathItem, Problem, Source, show, type_name

STEP_KINDS = ("playbook", "probe", "wait_for", "manual", "pause", "notify", "command")

_TYPE_WORDS = {
    "object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
    "number": "a number", "boolean": "true or false", "null": "empty",
}
_PATTERN_HINTS = {
    DURATION_PATTERN: "is not a duration — write e.g. 90s, 5m, 1h30m, 250ms or a number "
                      "of seconds",
    r"^[a-z0-9][a-z0-9_-]*$": "is not a valid name — use lowercase letters, digits, - and _, "
                             "starting with a letter or digit",
    r"^[A-Za-z_][A-Za-z0-9_]*$": "is not a valid variable name — use letters, digits and _, "
                                "not starting with a digit",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]*$": "is not a valid checkpoint name — use letters, digits, "
                                    "., - and _",
    "^https?://": "is not an http(s) URL — start it with http:// or https://",
    r"^(https?://|\{\{ *[A-Za-z_][A-Za-z0-9_]* *\}\})": "is not an http(s) URL — start it "
    "with http://, https:// or an inventory variable ({{ service_url }}/...)",
}


def schema_text() -> str:
    """The schema file as shipped (what ``drdrill schema`` prints)."""
    return (resources.files("drdrill") / "schema" / "runbook.schema.json").read_text("utf-8")


@lru_cache(maxsize=1)
def runbook_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(runbook_schema())


def schema_problems(source: Source) -> list[Problem]:
    """Every schema violation in ``source.data``, located and worded for a person."""
    seen: set[tuple[int, int, str]] = set()
    out: list[Problem] = []
    for error in _validator().iter_errors(source.data):
        for path, message, on_key in _explain(error):
            problem = source.problem(path, message, key=on_key)
            marker = (problem.line, problem.col, problem.message)
            if marker not in seen:
                seen.add(marker)
                out.append(problem)
    return out


Explained = tuple[list[PathItem], str, bool]


def _explain(error: ValidationError) -> Iterator[Explained]:
    """(path, message, locate-on-key) for one jsonschema error; some yield several."""
    path: list[PathItem] = list(error.absolute_path)
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    if kind == "additionalProperties" and isinstance(instance, dict):
        yield from _unknown_keys(path, instance, schema)
    elif kind == "required" and isinstance(instance, dict):
        required: Any = error.validator_value
        for key in required:
            if key not in instance:
                yield path, _missing(path, key), False
    elif kind == "dependentRequired" and isinstance(instance, dict):
        yield from _dependents(path, instance, error.validator_value)
    elif kind == "oneOf" and _is_kind_choice(schema):
        if not isinstance(instance, dict):
            return  # not a mapping: the type error says so
        present = [k for k in STEP_KINDS if k in instance]
        if not present and "parallel" in instance:
            return  # a nested group: its unknown key says so
        if not present:
            yield path, ("the step does nothing — give exactly one of "
                         + ", ".join(STEP_KINDS)), False
        else:
            yield path + [present[1]], (f"the step has both {present[0]} and {present[1]} — "
                                        "a step does exactly one thing; split it in two"), True
    elif kind == "pattern" and list(error.absolute_schema_path)[-2:-1] == ["propertyNames"]:
        yield path + [str(instance)], _pattern_message(instance, error), True
    elif kind == "pattern":
        yield path, _pattern_message(instance, error), False
    elif kind == "type":
        yield path, _type_message(instance, error.validator_value, schema), False
    elif kind in ("enum", "const"):
        yield path, _choice_message(instance, error.validator_value, kind), False
    elif error.context:
        yield from _explain(best_match(error.context))
    else:
        yield path, _plain_message(error), False


_DEPENDENT_HINTS = {
    "playbook": "a playbook step needs role: — name the role whose hosts it runs on",
    "local": "local: belongs to command steps — add command: [argv...] or drop local:",
    "fact": "fact: belongs to command steps — add command: [argv...] or drop fact:",
}


def _dependents(path: list[PathItem], instance: dict[str, Any],
                rules: Any) -> Iterator[Explained]:
    for key, needs in (rules.items() if isinstance(rules, dict) else ()):
        if key in instance and any(n not in instance for n in needs):
            yield path + [key], _DEPENDENT_HINTS.get(key, f"{key} needs {', '.join(needs)}"), True


def _is_kind_choice(schema: dict[str, Any]) -> bool:
    options = schema.get("oneOf", [])
    return [o.get("required") for o in options] == [[k] for k in STEP_KINDS]


def _unknown_keys(path: list[PathItem], instance: dict[str, Any],
                  schema: dict[str, Any]) -> Iterator[Explained]:
    known = list(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    for key in instance:
        if key in known or any(re.search(p, key) for p in patterns):
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if key == "parallel" and "parallel" in path:
            hint = ("parallel groups do not nest — list these steps in the outer group, or "
                    "make it a group of its own before or after")
        elif "parallel" in instance and key != "parallel":
            hint = (f"a parallel group takes only parallel: and name: — put {key}: on its "
                    "member steps")
        elif close:
            hint = f"did you mean {close[0]!r}?"
        elif known:
            hint = "allowed here: " + ", ".join(known)
        else:
            hint = "remove it"
        yield path + [key], f"unknown key {show(key)} — {hint}", True


def _missing(path: Sequence[PathItem], key: str) -> str:
    where = "the runbook" if not path else "this mapping"
    return f"{where} is missing {key}: — add it"


def _type_message(instance: Any, expected: Any, schema: dict[str, Any]) -> str:
    wanted = [expected] if isinstance(expected, str) else list(expected)
    if "pattern" in schema and schema.get("pattern") == DURATION_PATTERN:
        words = "a duration such as 90s, 5m, 1h30m, 250ms or a number of seconds"
    elif sorted(wanted) == ["object", "string"]:
        words = "a probe name or an inline probe mapping"
    else:
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
    if instance is None:
        return f"is empty — give {words}"
    return f"expected {words}, got {type_name(instance)} {show(instance)}"


def _choice_message(instance: Any, allowed: Any, kind: str) -> str:
    options = [allowed] if kind == "const" else list(allowed)
    words = [str(o) for o in options]
    close = difflib.get_close_matches(str(instance), words, n=1, cutoff=0.5)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif len(words) == 1:
        hint = f"use {words[0]}"
    else:
        hint = "use one of " + ", ".join(words)
    return f"{show(instance)} is not allowed here — {hint}"


def _pattern_message(instance: Any, error: ValidationError) -> str:
    pattern = error.validator_value
    hint = _PATTERN_HINTS.get(str(pattern), f"does not match {pattern}")
    return f"{show(instance)} {hint}"


def _plain_message(error: ValidationError) -> str:
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "minimum":
        return f"{show(instance)} is below {value} — give a value of at least {value}"
    if kind == "maximum":
        return f"{show(instance)} is above {value} — give a value of at most {value}"
    if kind == "minItems":
        return f"the list is empty — give at least {value} item{'s' if value != 1 else ''}"
    if kind == "uniqueItems":
        return "the list repeats an item — list each one once"
    if kind == "minLength":
        return "is empty — give a value"
    if kind == "maxLength":
        return f"is longer than {value} characters — shorten it"
    return f"{error.message} — see `drdrill schema`"
