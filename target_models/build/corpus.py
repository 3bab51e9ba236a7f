"""The pretraining haystack: genuine text that every fresh machine has identically.

It is the documentation (docstrings) of pinned packages the project installs anyway, read with `ast` (nothing is
imported), cut into passages, deduplicated and ordered deterministically. Its content hash is recorded in every
build, and a build refuses a haystack whose hash differs from the one its spec's record expects.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
from pathlib import Path

# Packages pinned in pyproject.toml; their versions fix the text.
SOURCES = (
    "transformers", "torch", "numpy", "scipy", "pandas", "matplotlib", "sklearn", "sympy", "datasets", "networkx",
    "statsmodels", "nltk", "plotly",
)
MIN_CHARS, MAX_CHARS = 200, 900
_WS = re.compile(r"[ \t]+")
# Lines that are code, tables or reference markup rather than prose.
_NOISE = re.compile(r"^\s*(>>>|\.\.\.|\.\. |:param|:type|:return|[-=~^]{4,}|\|)")


def _package_root(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _docstrings(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                out.append(doc)
    return out


def _prose(doc: str) -> str:
    lines = [_WS.sub(" ", ln).strip() for ln in doc.splitlines() if not _NOISE.match(ln)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _passages(text: str) -> list[str]:
    out, cur = [], ""
    for para in text.split("\n\n"):
        if len(cur) + len(para) > MAX_CHARS and cur:
            out.append(cur)
            cur = ""
        cur = f"{cur}\n\n{para}" if cur else para
    if cur:
        out.append(cur)
    return [p[:MAX_CHARS] for p in out if len(p) >= MIN_CHARS and sum(c.isalpha() for c in p) > 0.6 * len(p)]


def haystack(limit: int | None = None) -> list[dict]:
    """Passages as {'id', 'source', 'text'}; identical for identical package versions."""
    seen: set[str] = set()
    rows: list[dict] = []
    for pkg in SOURCES:
        root = _package_root(pkg)
        if root is None:
            continue
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root.parent).as_posix()
            if "/tests/" in rel or "/test_" in rel:
                continue
            for doc in _docstrings(path):
                for p in _passages(_prose(doc)):
                    key = hashlib.sha1(p.encode()).hexdigest()
                    if key in seen:
                        continue
                    seen.add(key)
                    rows.append({"id": f"web-{len(rows):06d}", "source": rel, "text": p})
                    if limit is not None and len(rows) >= limit:
                        return rows
    return rows


def content_hash(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(r["text"].encode())
        h.update(b"\0")
    return h.hexdigest()
