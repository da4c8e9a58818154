"""Load data-driven policy vectors: every ``*.json`` file under a folder holds a JSON list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS_DIR = Path(__file__).parent / "vectors"


def load_vectors(folder: Path | str) -> list[tuple[str, dict[str, Any]]]:
    """Every vector under ``folder`` (recursively), as ``(id, vector)`` in a stable order.

    The id is ``<file path relative to folder, without .json>::<vector name>``. A file that is
    not a JSON list of objects each with a unique ``name`` is a test-data bug and raises.
    """
    root = Path(folder)
    found: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for path in sorted(root.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of vectors")
        stem = path.relative_to(root).with_suffix("").as_posix()
        for index, vector in enumerate(data):
            if not isinstance(vector, dict) or not isinstance(vector.get("name"), str):
                raise ValueError(f"{path}: vector {index} needs a string `name`")
            vector_id = f"{stem}::{vector['name']}"
            if vector_id in seen:
                raise ValueError(f"{path}: duplicate vector name {vector['name']!r}")
            seen.add(vector_id)
            found.append((vector_id, vector))
    return found
