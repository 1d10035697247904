"""Griffe extension: the docstrings' reStructuredText, written as the Markdown MkDocs renders.

The docstrings follow PyTorch Geometric's habit (Google-style ``Args:`` with Sphinx roles and
``.. math::`` blocks), which reads well in a terminal's ``help()``. For the site, each
docstring is rewritten once, when mkdocstrings loads the package:

- ``.. math::`` blocks become ``$$`` blocks and ``:math:`x``` becomes ``$x$`` (rendered by
  ``pymdownx.arithmatex`` and MathJax);
- ``.. code-block:: LANG`` and ``text::`` literal blocks become fenced code blocks;
- ``:class:`~a.b.C``` and the other roles become inline code (the last component when the
  target starts with ``~``), double back-ticks single ones;
- ```text <url>`_`` links become Markdown links.
"""

from __future__ import annotations

import re

from griffe import Extension

ROLE = re.compile(r":(?:class|func|meth|attr|obj|data|mod|exc|paramref):`(~?)([^`]+)`")
MATH_ROLE = re.compile(r":math:`([^`]+)`")
LINK = re.compile(r"`([^`<]+?)\s*<([^>]+)>`_{1,2}")
DOUBLE = re.compile(r"``([^`]+)``")
BLOCK_START = re.compile(r"^(\s*)\.\. (math|code-block)::\s*(\S*)\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The indented block after ``lines[start]`` (deeper than ``base``), dedented, and the
    index of the first line after it."""
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    body = lines[start + 1:end]
    while body and not body[-1].strip():
        body.pop()
        end -= 1
    while body and not body[0].strip():
        body.pop(0)
    depth = min((_indent(line) for line in body if line.strip()), default=0)
    return [line[depth:] for line in body], end


def _blocks(text: str) -> str:
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        directive = BLOCK_START.match(line)
        literal = line.rstrip().endswith("::") and not directive
        if not (directive or literal):
            out.append(line)
            i += 1
            continue
        base = _indent(line)
        body, i = _block(lines, i, base)
        pad = " " * base
        if directive and directive[2] == "math":
            out += [f"{pad}$$", *(pad + b if b else "" for b in body), f"{pad}$$"]
        else:
            if literal:
                lead = line.rstrip()[:-2].rstrip()
                if lead:
                    out += [lead + ":", ""]
            language = directive[3] if directive else "text"
            out += [f"{pad}```{language}", *(pad + b if b else "" for b in body), f"{pad}```"]
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    text = MATH_ROLE.sub(lambda m: f"${m[1].strip()}$", text)
    text = ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)
    text = LINK.sub(lambda m: f"[{m[1]}]({m[2]})", text)
    return DOUBLE.sub(lambda m: f"`{m[1]}`", text)


def rst_to_markdown(text: str) -> str:
    """``text`` (a docstring) with the reStructuredText above rewritten as Markdown; code
    blocks are left as written."""
    parts = re.split(r"(```.*?```)", _blocks(text), flags=re.DOTALL)
    return "".join(part if part.startswith("```") else _inline(part) for part in parts)


class RstDocstrings(Extension):
    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
