#!/usr/bin/env python3
"""Import cycles between the runtime crate's top-level modules (python3 standard library only).

A module is a top-level file of tasker-telemetry/src with its submodules (`spans.rs` and
`spans/*`). An edge A -> B is any `crate::B` path in A's code (comments and doc comments left
out; `#[cfg(test)]` modules included, as they are code too). Prints every strongly connected
group of two or more modules and exits 1 if there is one.

Usage: python3 scripts/module_cycles.py [--src DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import sys


def modules(src: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in sorted(os.listdir(src)):
        path = os.path.join(src, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs",):
            found.setdefault(entry[:-3], []).append(path)
        elif os.path.isdir(path):
            for root, _, files in os.walk(path):
                for f in files:
                    if f.endswith(".rs"):
                        found.setdefault(entry, []).append(os.path.join(root, f))
    return found


def edges(files: list[str], names: set[str], own: str) -> set[str]:
    out: set[str] = set()
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                code = line.split("//", 1)[0]
                for m in re.finditer(r"\bcrate::([a-z_][a-z0-9_]*)", code):
                    target = m.group(1)
                    if target in names and target != own:
                        out.add(target)
                # `use crate::{a, b::c}` groups.
                for group in re.finditer(r"\bcrate::\{([^}]*)\}", code):
                    for item in re.findall(r"(?:^|,)\s*([a-z_][a-z0-9_]*)", group.group(1)):
                        if item in names and item != own:
                            out.add(item)
    return out


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        # Iterative Tarjan: (node, iterator over its successors).
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--src", default=os.path.join(os.path.dirname(__file__), "..", "tasker-telemetry", "src"))
    args = parser.parse_args()
    found = modules(args.src)
    names = set(found)
    graph = {name: edges(files, names, name) for name, files in found.items()}
    groups = strongly_connected(graph)
    for group in groups:
        inside = {m: sorted(graph[m] & set(group)) for m in group}
        print("cycle among " + ", ".join(group) + ": " + "; ".join(f"{m} -> {', '.join(t)}" for m, t in inside.items()))
    if not groups:
        print(f"no import cycles among {len(names)} modules")
    return 1 if groups else 0


if __name__ == "__main__":
    sys.exit(main())
