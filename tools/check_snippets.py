#!/usr/bin/env python3
"""Checks that the docs' snippets of the consumer examples are copied from them.

A fenced code block right after a line

    <!-- snippet: examples/consumer_bazel/WORKSPACE -->

must be a run of consecutive lines of that file, exactly, or with their
common indentation removed (so the README's
"Using twinloop in your project" cannot drift from the projects CI builds).
Checks README.md and docs/building.md, and that each consumer's build files
are shown at least once. Prints what differs and exits 1.
"""

import difflib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "docs/building.md"]
# Every one of these must be the source of at least one snippet.
REQUIRED = [
    "examples/consumer_bazel/WORKSPACE",
    "examples/consumer_bazel/BUILD",
    "examples/consumer_cmake/CMakeLists.txt",
]
MARKER = re.compile(r"^<!-- snippet: (\S+) -->\s*$")


def snippets(doc):
    """(line number, source path, block lines) for each marked block of `doc`."""
    lines = open(os.path.join(ROOT, doc)).read().split("\n")
    out = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            out.append((i + 1, m.group(1), None))
            continue
        end = i + 2
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        out.append((i + 1, m.group(1), lines[i + 2:end]))
    return out


def dedent(lines):
    """`lines` without the indentation they all share (blank lines aside)."""
    indents = [len(l) - len(l.lstrip(" ")) for l in lines if l.strip()]
    cut = min(indents) if indents else 0
    return [l[cut:] if l.strip() else l for l in lines]


def contains_run(haystack, needle):
    n = len(needle)
    return n > 0 and any(dedent(haystack[i:i + n]) == needle for i in range(len(haystack) - n + 1))


def main():
    errors = []
    seen = set()
    for doc in DOCS:
        for line, source, block in snippets(doc):
            where = f"{doc}:{line}"
            if block is None:
                errors.append(f"{where}: the snippet marker for {source} is not followed by a ``` block")
                continue
            path = os.path.join(ROOT, source)
            if not os.path.isfile(path):
                errors.append(f"{where}: {source} does not exist")
                continue
            seen.add(source)
            text = open(path).read().split("\n")
            if not contains_run(text, block):
                # Show the block against the closest part of the file.
                best = max(range(max(1, len(text) - len(block) + 1)),
                           key=lambda i: difflib.SequenceMatcher(None, text[i:i + len(block)], block).ratio())
                diff = "\n".join(difflib.unified_diff(text[best:best + len(block)], block, source, where, lineterm=""))
                errors.append(f"{where}: the block is not a copy of lines of {source}:\n{diff}")
    for source in REQUIRED:
        if source not in seen:
            errors.append(f"no snippet of {source} in {', '.join(DOCS)} (<!-- snippet: {source} --> before a block)")
    if errors:
        print("\n".join(errors), file=sys.stderr)
        sys.exit(1)
    print(f"snippets: {len(seen)} files quoted in {', '.join(DOCS)}, each a copy of its lines")


if __name__ == "__main__":
    main()
