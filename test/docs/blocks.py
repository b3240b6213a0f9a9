"""The fenced code blocks of README.md and docs/*.md, with the marks that say which of their
commands are not run by test/docs/test_docs.py.

A mark is an HTML comment on the line(s) directly above a block's opening fence (rendered
invisibly, found with ``grep -rn "not run here" README.md docs``)::

    <!-- not run here: needs a CUDA GPU -->                  the whole block
    <!-- not run here [ros2, wget]: needs a ROS 2 machine --> only its commands that start
                                                              with "ros2" or "wget"

A block may carry several marks (each with its own reason). The reason says why it cannot
run here, or which test runs or checks it instead ("covered by test/...py").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[^`\s]*)\s*$")
MARK = re.compile(r"^ *<!-- not run here(?: \[(?P<prefixes>[^\]]+)\])?: (?P<reason>.+?) -->\s*$")
MARK_HINT = (
    "put a line <!-- not run here: REASON --> (the whole block) or <!-- not run here [PREFIX, "
    "...]: REASON --> (its commands starting with a PREFIX) directly above the opening fence"
)


def documents() -> list[Path]:
    """README.md and every page of docs/, in a fixed order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Mark:
    """One ``<!-- not run here ... -->`` line: which commands (None: the whole block), why."""

    prefixes: tuple[str, ...] | None
    reason: str


@dataclass(frozen=True)
class Block:
    """A fenced code block: its file, the line of its opening fence (1-based), its language
    (the fence's info string, "" when none), its text (the fence's indentation removed) and
    the marks above it."""

    path: Path
    line: int
    lang: str
    text: str
    marks: tuple[Mark, ...] = field(default=())

    @property
    def id(self) -> str:
        """``docs/x.md:LINE``: where the block starts."""
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def whole_block_marked(self) -> bool:
        return any(mark.prefixes is None for mark in self.marks)

    def commands(self) -> list[str]:
        """Its shell commands (bash / sh): lines continued with a trailing backslash joined
        (newlines kept), comment-only and blank lines left out."""
        commands: list[str] = []
        current: list[str] = []
        for line in self.text.splitlines():
            if not current and (not line.strip() or line.lstrip().startswith("#")):
                continue
            current.append(line)
            if not line.rstrip().endswith("\\"):
                commands.append("\n".join(current))
                current = []
        if current:
            commands.append("\n".join(current))
        return commands

    def marked_commands(self) -> dict[str, Mark]:
        """The commands a prefix mark takes out, with their mark."""
        marked = {}
        for command in self.commands():
            for mark in self.marks:
                if mark.prefixes and command.lstrip().startswith(mark.prefixes):
                    marked.setdefault(command, mark)
        return marked

    def script(self) -> str:
        """The block's text without the commands a prefix mark takes out (comments kept)."""
        text = self.text
        for command in self.marked_commands():
            text = text.replace(command + "\n", "", 1)
        return text


def read_blocks(path: Path) -> list[Block]:
    """Every fenced code block of the Markdown file ``path``."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = len(opening["indent"])
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : end]]
        marks, above = [], i - 1
        while above >= 0 and (mark := MARK.match(lines[above])):
            prefixes = mark["prefixes"]
            split = None if prefixes is None else tuple(p.strip() for p in prefixes.split(","))
            marks.insert(0, Mark(split, mark["reason"]))
            above -= 1
        text = "\n".join(body) + "\n" if body else ""
        blocks.append(Block(path, i + 1, opening["lang"], text, tuple(marks)))
        i = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in read_blocks(path)]
