"""Markdown read the way tests/test_docs_truth.py needs it: the pieces of a doc that name things.

A doc is cut into `Snippet`s, each with the line it starts on:
- `block`: a fenced code block's logical line — a line ending in `\\` joined with the next, and
  an indented line that opens with `[` or `--` (a usage wrapped for width) joined with the
  line above; a shell comment (`  # ...`) cut off;
- `inline`: an inline code span (`` `...` ``), wrapped lines joined with one space (and a
  `{a,b}` list wrapped after its comma joined with none);
- `prose`: a line of a paragraph with its code spans and link targets taken out.
A link's target is read apart (`links`), to be resolved from the doc's folder.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"\]\(([^()\s]+)\)")


@dataclass(frozen=True)
class Snippet:
    """A piece of a doc: a code block's logical line, an inline code span or a paragraph's prose."""

    line: int
    text: str
    kind: Literal["block", "inline", "prose"]


def snippets(text: str) -> Iterator[Snippet]:
    """Every code block's logical lines, then every paragraph's code spans and prose."""
    prose: list[tuple[int, str]] = []
    block: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            yield from (Snippet(first, strip_comment(body), "block") for first, body in logical_lines(block))
            block = []
        elif fenced:
            block.append((number, line))
        else:
            prose.append((number, line))
    for first, paragraph in paragraphs(prose):
        for match in INLINE.finditer(paragraph):
            yield Snippet(first + paragraph.count("\n", 0, match.start()), one_line(match.group(2)), "inline")
        bare = LINK.sub("]", INLINE.sub(lambda m: " " + "\n" * m.group(0).count("\n"), paragraph))
        yield from (Snippet(first + i, text, "prose") for i, text in enumerate(bare.split("\n")))


def links(text: str) -> Iterator[tuple[int, str]]:
    """(line, target) of every Markdown link outside code blocks, the `#anchor` cut off."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            yield from ((number, target.split("#")[0]) for target in LINK.findall(INLINE.sub(" ", line)))


def logical_lines(block: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    joined: list[tuple[int, str]] = []
    continues = False
    for number, line in block:
        wrapped = line[:1].isspace() and line.lstrip().startswith(("[", "--"))
        if joined and (continues or wrapped):
            joined[-1] = (joined[-1][0], joined[-1][1] + " " + line.strip())
        else:
            joined.append((number, line.strip()))
        continues = joined[-1][1].endswith("\\")
        if continues:
            joined[-1] = (joined[-1][0], joined[-1][1][:-1].rstrip())
    yield from joined


def paragraphs(lines: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Runs of consecutive non-blank prose lines: a code span may wrap a line, never a gap."""
    numbered = [(number, line) for number, line in lines if line.strip()]
    for _, run in itertools.groupby(enumerate(numbered), key=lambda item: item[1][0] - item[0]):
        group = [line for _, line in run]
        yield group[0][0], "\n".join(text for _, text in group)


def one_line(text: str) -> str:
    text = " ".join(text.split())
    return re.sub(r"\{[^{}]*\}", lambda m: m.group(0).replace(" ", ""), text)


def strip_comment(line: str) -> str:
    return re.split(r"(?:^|\s)#\s", line, maxsplit=1)[0]
