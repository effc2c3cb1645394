#!/usr/bin/env python3
"""Checks weir's layer rules (ARCHITECTURE.md, "Architecture invariants"):

- no import cycles between the top-level modules of src/ (a module is `src/x.rs` with `src/x/`);
- no import that a layer rule forbids (FORBIDDEN below);
- no file over MAX_FILE_LINES lines of non-test code, no function over MAX_FN_LINES lines.

Test code (files named tests.rs / fixtures.rs, files in a `tests/` directory of a module,
anything after `#[cfg(test)]`) is not counted.
Exit code 1 with one line per violation; 0 and a summary when everything holds.
Usage: scripts/layers.py [--graph]
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
MAX_FILE_LINES = 800
MAX_FN_LINES = 100

# (importer, imported): the importer must not use the imported module.
FORBIDDEN = {
    "cli": {"serve"},
    "plan": {"flink", "store", "git", "apply", "engine", "serve", "cli", "notify", "forge"},
    "render": {"flink", "store", "git", "apply", "engine", "serve", "cli", "notify", "forge"},
    "apply": {"audit", "engine", "serve", "cli", "render"},
    "notify": {"apply", "engine", "serve", "cli"},
    "forge": {"render", "engine", "serve", "cli", "apply"},
    "store": {"apply", "audit", "engine", "serve", "cli", "notify", "render", "plan", "flink", "forge"},
    "flink": {"store", "apply", "engine", "serve", "cli", "plan", "render", "audit", "notify"},
    "engine": {"serve", "cli"},
    "load": {"flink", "store", "apply", "engine", "serve", "cli", "render", "plan"},
    "clock": {"*"},
    "text": {"*"},
    "memory": {"*"},
    "textmap": {"*"},
}
TEST_FILES = {"tests.rs", "fixtures.rs"}
USE_RE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP_RE = re.compile(r"use\s+crate::\{([^;]*)\}", re.S)
FN_RE = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+([a-zA-Z0-9_]+)")


def top_module(path):
    rel = os.path.relpath(path, ROOT)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def code_of(path):
    """The non-test lines of a file (everything before the first `#[cfg(test)]`)."""
    rel_dirs = os.path.relpath(path, ROOT).split(os.sep)[:-1]
    if os.path.basename(path) in TEST_FILES or "tests" in rel_dirs:
        return []
    lines = []
    with open(path, encoding="utf-8") as f:
        raw = [line.rstrip("\n") for line in f]
    i = 0
    while i < len(raw):
        line = raw[i]
        if line.strip().startswith("#[cfg(test)]"):
            following = raw[i + 1].strip() if i + 1 < len(raw) else ""
            if re.match(r"(pub(\([^)]*\))?\s+)?mod\s+\w+\s*;", following):
                i += 2  # `#[cfg(test)] mod tests;`: the tests live in their own file
                continue
            if re.match(r"(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", following):
                break  # an inline test module: the rest of the file is tests
        lines.append(line)
        i += 1
    return lines


def strip_comments(line):
    in_str = False
    for i, ch in enumerate(line):
        if ch == '"' and (i == 0 or line[i - 1] != "\\"):
            in_str = not in_str
        if not in_str and line.startswith("//", i):
            return line[:i]
    return line


def long_functions(path, lines):
    found = []
    i = 0
    while i < len(lines):
        m = FN_RE.match(lines[i])
        if not m:
            i += 1
            continue
        depth, opened, start = 0, False, i
        j = i
        while j < len(lines):
            text = strip_comments(lines[j])
            depth += text.count("{") - text.count("}")
            if "{" in text:
                opened = True
            if not opened and text.rstrip().endswith(";"):
                break  # a declaration without a body
            if opened and depth <= 0:
                break
            j += 1
        length = j - start + 1
        if opened and length > MAX_FN_LINES:
            found.append((m.group(6), start + 1, length))
        i = start + 1 if not opened else start + 1
    return found


def main():
    graph = {}
    problems = []
    files = 0
    for dirpath, _, names in os.walk(ROOT):
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, os.path.join(ROOT, ".."))
            module = top_module(path)
            if module in ("lib", "main"):
                continue
            files += 1
            lines = code_of(path)
            code_lines = [l for l in lines if l.strip() and not l.strip().startswith("//")]
            if len(code_lines) > MAX_FILE_LINES:
                problems.append(f"{rel}: {len(code_lines)} lines of non-test code (limit {MAX_FILE_LINES})")
            for fn, line, length in long_functions(path, lines):
                problems.append(f"{rel}:{line}: fn {fn} has {length} lines (limit {MAX_FN_LINES})")
            text = "\n".join(strip_comments(l) for l in lines)
            used = set(USE_RE.findall(text))
            for group in USE_GROUP_RE.findall(text):
                used.update(re.findall(r"(?:^|[,{\s])([a-z_][a-z0-9_]*)\s*(?:::|,|\}|$)", group))
            used.discard(module)
            used.discard("self")
            for dep in used:
                graph.setdefault(module, {}).setdefault(dep, rel)
                banned = FORBIDDEN.get(module, set())
                if "*" in banned or dep in banned:
                    problems.append(f"{rel}: {module} must not import {dep}")
    problems.extend(cycles(graph))
    if "--graph" in sys.argv:
        for module in sorted(graph):
            print(f"{module} -> {', '.join(sorted(graph[module]))}")
    if problems:
        print("\n".join(sorted(set(problems))))
        print(f"{len(set(problems))} layer problems in {files} files")
        return 1
    print(f"layers OK: {files} files, {len(graph)} modules, no cycles, no forbidden imports, "
          f"no file over {MAX_FILE_LINES} lines, no function over {MAX_FN_LINES} lines")
    return 0


def cycles(graph):
    """Every strongly connected component of more than one module is a cycle (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                members = sorted(component)
                edges = [f"{a}->{b} ({graph[a][b]})" for a in members for b in graph.get(a, {}) if b in component]
                out.append("import cycle: " + "; ".join(edges))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
