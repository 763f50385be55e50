#!/usr/bin/env python3
"""Checks the layering of src/ (docs/architecture.md): no folder cycles inside an assembly, and the core never names ML.NET.

For each project under src/, every top-level type declared in a folder is a node's export; a file that names a type
exported by another folder of the same project is an edge from its folder to that one. A cycle among folders fails.
Exit code 1 with the cycle (or the offending core line) printed; 0 with a one-line summary otherwise.
"""
import os, re, sys

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
decl = re.compile(r"^(?:public |internal )?(?:static |sealed |abstract |partial |readonly )*(?:class|record|struct|interface|enum)\s+(\w+)", re.M)
failed = False

def strip(text):
    text = re.sub(r"//.*", "", text)          # comments (docs mention other types freely)
    return re.sub(r'\$?@?"(?:[^"\\]|\\.)*"', '""', text)  # string literals

for project in sorted(os.listdir(root)):
    pdir = os.path.join(root, project)
    if not os.path.isdir(pdir):
        continue
    files = {}
    for dirpath, dirs, names in os.walk(pdir):
        dirs[:] = [d for d in dirs if d not in ("bin", "obj")]
        for n in names:
            if n.endswith(".cs"):
                rel = os.path.relpath(os.path.join(dirpath, n), pdir)
                folder = rel.split(os.sep)[0] if os.sep in rel else "."
                files[os.path.join(dirpath, n)] = (folder, strip(open(os.path.join(dirpath, n), encoding="utf-8").read()))
    exports = {}
    for path, (folder, text) in files.items():
        for name in decl.findall(text):
            exports.setdefault(name, set()).add(folder)
    edges = {}
    for path, (folder, text) in files.items():
        words = set(re.findall(r"\b[A-Z]\w*\b", text))
        for w in words & exports.keys():
            for target in exports[w]:
                if target != folder:
                    edges.setdefault(folder, set()).add(target)
    # Cycle search (DFS with colours).
    colour, stack = {}, []
    def visit(n):
        global failed
        colour[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if colour.get(m) == 1:
                print(f"{project}: folder cycle {' -> '.join(stack[stack.index(m):] + [m])}")
                failed = True
            elif m not in colour:
                visit(m)
        stack.pop()
        colour[n] = 2
    for n in sorted(edges):
        if n not in colour:
            visit(n)
    print(f"{project}: " + "; ".join(f"{a} -> {', '.join(sorted(b))}" for a, b in sorted(edges.items())))
    if project.endswith(".Core"):
        for path, (folder, text) in files.items():
            for i, line in enumerate(text.splitlines(), 1):
                if re.search(r"\bMicrosoft\.ML\.(?!Adversarial\b)\w+|\bMLContext\b|\bIDataView\b", line):
                    print(f"{os.path.relpath(path, root)}:{i}: the core names ML.NET: {line.strip()}")
                    failed = True
sys.exit(1 if failed else 0)
