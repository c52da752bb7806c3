#!/usr/bin/env python3
"""Finds import cycles between the files of the workspace's crates.

    python3 tools/check_imports.py [--include-tests] [--verbose] [CRATE_SRC_DIR ...]

Default crates: the facade (src/), encoders/src/ and wsi/src/. Each .rs file is a module
(lib.rs: the crate root; a/mod.rs and a.rs: `a`; a/b.rs: `a::b`). A file refers to another
when its code names a path into it:

- `use` declarations (`pub use` included) starting with `crate::`, `super::`, `self::` or the
  name of a child module (`pub use child::X` in a mod.rs is an edge mod.rs -> child);
- paths in code: `crate::x::y`, `super::x`, `self::x::y`, `child::f`.

Each path goes to the longest module path that is a file (so `crate::Foo`, a root
re-export, is a reference to lib.rs). `mod x;` declarations are not references. Comments
(doc comments included) and string literals are ignored. `#[cfg(test)]` modules (inline
`mod tests { ... }` blocks, and files declared with `#[cfg(test)] mod x;`) are left out unless
--include-tests is given. cfg'd features are all taken as on. Files pulled in with
`#[path = ...]` are not followed.

Prints every pair of files that refer to each other (a <-> b), with the line of one
reference each way, then longer cycles (one shortest cycle of three files or more per
strongly connected set that has one). Exit status 1 if there is any cycle, else 0 with a
one-line summary.
"""

import argparse
import os
import re
import sys
from collections import defaultdict, deque

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CRATES = ["src", "encoders/src", "wsi/src"]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def is_ident_char(ch):
    return ch.isalnum() or ch == "_"


def starts_raw_string(text, i):
    """Whether a raw string literal (r"", r#""#, br"") starts at the `r` at i."""
    if not re.match(r'r#*"', text[i:]):
        return False
    if i == 0 or not is_ident_char(text[i - 1]):
        return True
    return text[i - 1] == "b" and (i == 1 or not is_ident_char(text[i - 2]))


def strip_comments_and_strings(text):
    """The code with comments removed and string/char literals emptied; newlines kept, so
    offsets map to the same line numbers."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n":
                        out.append("\n")
                    i += 1
            out.append(" ")
            continue
        # Raw strings: r"..", r#".."#, br#".."#.
        if c == "r" and starts_raw_string(text, i):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
            continue
        if c == "'":
            # A char literal ('x', '\n', '\u{1F600}', '"'), or a lifetime / label ('a).
            if nxt == "\\":
                j = text.find("'", i + 3)
                if j > 0:
                    out.append("' '")
                    i = j + 1
                    continue
            elif i + 2 < n and text[i + 2] == "'":
                out.append("' '")
                i += 3
                continue
        out.append(c)
        i += 1
    return "".join(out)


def blank(text, start, end):
    """text with [start, end) replaced by spaces, newlines kept."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def matching_brace(code, open_at):
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(code) - 1


TEST_ATTR = r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]"
OTHER_ATTRS = r"(?:\s*#\s*\[[^\]]*\])*"
VIS = r"(?:pub\s*(?:\([^)]*\))?\s*)?"


def test_modules(code):
    """(inline test module spans, names of file test modules declared here)."""
    spans, files = [], []
    for m in re.finditer(TEST_ATTR + OTHER_ATTRS + r"\s*" + VIS + r"mod\s+(" + IDENT + r")\s*([{;])", code):
        if m.group(2) == "{":
            spans.append((m.start(), matching_brace(code, m.end() - 1) + 1))
        else:
            files.append(m.group(1))
    return spans, files


def inline_modules(code):
    """Spans of inline `mod name { ... }` blocks: (start of body, end of body, name)."""
    result = []
    for m in re.finditer(r"(?<![A-Za-z0-9_])mod\s+(" + IDENT + r")\s*\{", code):
        result.append((m.end() - 1, matching_brace(code, m.end() - 1), m.group(1)))
    return result


def split_use_tree(tree):
    """`a::{b::C, d as E, self}` -> [[a, b, C], [a, d], [a]] (globs and renames dropped)."""
    tree = re.sub(r"\s+", " ", tree).strip()
    pos = 0

    def parse(prefix):
        nonlocal pos
        paths = []
        segs = list(prefix)
        while pos < len(tree):
            while pos < len(tree) and tree[pos] == " ":
                pos += 1
            if pos >= len(tree):
                break
            ch = tree[pos]
            if ch == "{":
                pos += 1
                paths.extend(parse_list(segs))
                return paths
            if ch in ",}":
                break
            if tree.startswith("::", pos):
                pos += 2
                continue
            if ch == "*":
                pos += 1
                continue
            m = re.match(r"\$?" + IDENT, tree[pos:])
            if not m:
                pos += 1
                continue
            word = m.group(0)
            pos += len(word)
            if word == "as":
                m2 = re.match(r"\s*" + IDENT, tree[pos:])
                pos += len(m2.group(0)) if m2 else 0
                continue
            if word == "self" and prefix and segs == list(prefix):
                continue  # `{self, ...}`: the prefix itself
            segs.append(word)
        paths.append(segs)
        return paths

    def parse_list(prefix):
        nonlocal pos
        paths = []
        while pos < len(tree):
            while pos < len(tree) and tree[pos] in " ,":
                pos += 1
            if pos < len(tree) and tree[pos] == "}":
                pos += 1
                break
            if pos >= len(tree):
                break
            paths.extend(parse(prefix))
        return paths

    leading_colons = tree.startswith("::")
    if leading_colons:
        return []  # `::name`: an external crate
    return [p for p in parse([]) if p]


class Crate:
    def __init__(self, src_dir):
        self.src_dir = src_dir
        self.files = {}  # module path (tuple) -> file path (relative to ROOT)
        for dirpath, _, names in os.walk(src_dir):
            for name in sorted(names):
                if not name.endswith(".rs"):
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, src_dir).replace(os.sep, "/")
                parts = rel[:-3].split("/")
                if parts[-1] in ("lib", "main") and len(parts) == 1:
                    mod = ()
                elif parts[-1] == "mod":
                    mod = tuple(parts[:-1])
                else:
                    mod = tuple(parts)
                self.files[mod] = os.path.relpath(full, ROOT)
        self.modules = set(self.files)

    def file_of(self, path):
        """The longest prefix of `path` that is a file module."""
        for k in range(len(path), -1, -1):
            if tuple(path[:k]) in self.files:
                return tuple(path[:k])
        return None

    def resolve(self, segs, here):
        """An absolute module path for `segs` seen in module `here`, or None (external)."""
        segs = [s.lstrip("$") for s in segs]
        if not segs:
            return None
        first = segs[0]
        if first == "crate":
            return list(segs[1:])
        if first in ("super", "self"):
            base = list(here)
            rest = list(segs)
            if rest[0] == "self":
                rest = rest[1:]
            while rest and rest[0] == "super":
                if not base:
                    return None
                base.pop()
                rest = rest[1:]
            return base + rest
        # A relative path: only a child module of `here` counts (others are external crates,
        # std, local names).
        if tuple(here) + (first,) in self.modules or (tuple(here) + (first,)) in self.inline_names:
            return list(here) + list(segs)
        return None


def analyse(crate, include_tests):
    """Edges: {(from_mod, to_mod): (line, text)}."""
    edges = {}
    crate.inline_names = set()
    codes = {}
    skip_files = set()
    for mod, rel in crate.files.items():
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            code = strip_comments_and_strings(f.read())
        code = re.sub(r"pub\s*\(\s*in\s+[^)]*\)", lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)
        spans, test_files = test_modules(code)
        if not include_tests:
            for start, end in spans:
                code = blank(code, start, end)
            for name in test_files:
                skip_files.add(mod + (name,))
        codes[mod] = code
        for _, _, name in inline_modules(code):
            crate.inline_names.add(mod + (name,))
    # Files declared as test modules, and their children, are left out.
    if not include_tests:
        for mod in list(codes):
            if any(mod[: len(s)] == s for s in skip_files):
                del codes[mod]

    for mod, code in codes.items():
        inl = inline_modules(code)

        def here_at(offset):
            path = list(mod)
            for start, end, name in sorted(inl):
                if start < offset <= end:
                    path.append(name)
            return path

        def line_of(offset):
            return code.count("\n", 0, offset) + 1

        def add(path, offset, what):
            target = crate.file_of(path)
            if target is None or target == mod or target not in codes:
                return
            edges.setdefault((mod, target), (line_of(offset), what))

        # use declarations
        for m in re.finditer(r"(?<![A-Za-z0-9_$])use\s+([^;]+);", code):
            here = here_at(m.start())
            for segs in split_use_tree(m.group(1)):
                path = crate.resolve(segs, here)
                if path is not None:
                    add(path, m.start(), "use " + "::".join(segs))
            code = blank(code, m.start(), m.end())
        # paths in code
        for m in re.finditer(r"(?<![A-Za-z0-9_:.$'])(\$?" + IDENT + r")((?:\s*::\s*" + IDENT + r")+)", code):
            segs = [m.group(1)] + re.findall(IDENT, m.group(2))
            path = crate.resolve(segs, here_at(m.start()))
            if path is not None:
                add(path, m.start(), "::".join(segs))
    return codes, edges


def name(crate, mod):
    return crate.files[mod]


def sccs(nodes, succ):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def shortest_long_cycle(comp, succ):
    """A shortest cycle of 3 files or more inside `comp`, or None."""
    members = set(comp)
    best = None
    for u in comp:
        for v in succ[u]:
            if v not in members:
                continue
            # shortest path v -> u that does not go straight back (v -> u directly).
            prev = {v: None}
            queue = deque([v])
            while queue:
                x = queue.popleft()
                if x == u:
                    break
                for y in succ[x]:
                    if y in members and y not in prev and not (x == v and y == u):
                        prev[y] = x
                        queue.append(y)
            if u in prev:
                path = [u]
                while path[-1] != v:
                    path.append(prev[path[-1]])
                cycle = [u] + list(reversed(path))[:-1]  # u -> v -> ... -> (before u)
                if len(cycle) >= 3 and (best is None or len(cycle) < len(best)):
                    best = cycle
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("crates", nargs="*", default=DEFAULT_CRATES, help="crate source folders, relative to the repository root")
    ap.add_argument("--include-tests", action="store_true", help="count #[cfg(test)] modules too")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every edge")
    args = ap.parse_args()

    total_files = total_edges = 0
    problems = []
    for src in args.crates:
        crate = Crate(os.path.join(ROOT, src))
        codes, edges = analyse(crate, args.include_tests)
        total_files += len(codes)
        total_edges += len(edges)
        succ = defaultdict(set)
        for a, b in edges:
            succ[a].add(b)
        if args.verbose:
            for (a, b), (line, what) in sorted(edges.items()):
                print(f"{name(crate, a)}:{line} -> {name(crate, b)}  ({what})")
        for a, b in sorted(edges):
            if a < b and (b, a) in edges:
                la, wa = edges[(a, b)]
                lb, wb = edges[(b, a)]
                problems.append(f"{name(crate, a)} <-> {name(crate, b)}: {name(crate, a)}:{la} `{wa}`; {name(crate, b)}:{lb} `{wb}`")
        for comp in sccs(sorted(codes), succ):
            if len(comp) < 3:
                continue
            cycle = shortest_long_cycle(sorted(comp), succ)
            if cycle:
                steps = []
                for x, y in zip(cycle, cycle[1:] + cycle[:1]):
                    line, what = edges[(x, y)]
                    steps.append(f"{name(crate, x)}:{line} `{what}`")
                members = ", ".join(name(crate, m) for m in sorted(comp))
                problems.append(f"cycle of {len(cycle)}: " + " -> ".join(steps) + f" -> back (strongly connected: {members})")
    tests = "with" if args.include_tests else "without"
    if problems:
        print(f"{len(problems)} import cycle(s) ({total_files} files, {total_edges} edges, {tests} #[cfg(test)] modules):")
        for p in problems:
            print("  " + p)
        return 1
    print(f"no import cycles: {total_files} files in {len(args.crates)} crates, {total_edges} edges ({tests} #[cfg(test)] modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
