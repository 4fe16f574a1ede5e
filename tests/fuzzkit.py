"""Shared hypothesis mutations of YAML text, for the loader and plan fuzz tests."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

OPS = ("drop", "dup", "swap", "value", "insert", "unicode", "indent", "truncate")


def mutate_lines(draw: st.DrawFn, text: str, values: Sequence[str], nasty: Sequence[str],
                 min_ops: int = 0, max_ops: int = 4) -> str:
    """Apply a few line-level mutations: drop, duplicate, swap, retype a value, insert a
    nasty fragment or random unicode, re-indent, truncate."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(min_ops, max_ops))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(OPS))
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "value" and ": " in lines[i]:
            lines[i] = f"{lines[i].split(': ', 1)[0]}: {draw(st.sampled_from(list(values)))}"
        elif op in ("insert", "unicode"):
            pos = draw(st.integers(0, len(lines[i])))
            piece = (draw(st.sampled_from(list(nasty))) if op == "insert"
                     else draw(st.text(max_size=8)))
            lines[i] = lines[i][:pos] + piece + lines[i][pos:]
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 6)) + lines[i].lstrip()
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return "\n".join(lines) + "\n"
