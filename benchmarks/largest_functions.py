"""Print the N largest functions (by source lines) of a package: a size check for refactors.

    python benchmarks/largest_functions.py src/learnerprobe [N]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def functions(root: Path) -> list[tuple[int, str]]:
    """(lines, "module:qualname") for every function and method under root."""
    out: list[tuple[int, str]] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = path.relative_to(root.parent).with_suffix("").as_posix().replace("/", ".")
        _walk(tree, module, "", out)
    return out


def _walk(node: ast.AST, module: str, prefix: str, out: list[tuple[int, str]]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{child.name}"
            out.append((child.end_lineno - child.lineno + 1, f"{module}:{name}"))
            _walk(child, module, f"{name}.", out)
        elif isinstance(child, ast.ClassDef):
            _walk(child, module, f"{prefix}{child.name}.", out)


def main(argv: list[str]) -> None:
    root = Path(argv[0] if argv else "src/learnerprobe").resolve()
    n = int(argv[1]) if len(argv) > 1 else 15
    for lines, name in sorted(functions(root), reverse=True)[:n]:
        print(f"{lines:5d}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
