"""Policy documents shown as a unified diff, line by line, on pages and in the admin."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any


def json_pretty(document: Any) -> str:
    return json.dumps(document, indent=2, default=str)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del", "hunk", "file" or "same"
    text: str


def policy_diff(
    previous: Any,
    document: Any,
    *,
    name: str,
    labels: tuple[str, str] = ("current", "requested"),
) -> list[DiffLine]:
    """The unified diff, line by line, from the role's policy of that name (if
    any) to the requested one. `labels` name the two sides (the history shows
    one version against the one before it)."""
    before = json_pretty(previous).splitlines() if previous is not None else []
    after = json_pretty(document).splitlines()
    lines = difflib.unified_diff(
        before,
        after,
        fromfile=f"{name} ({labels[0]})" if previous is not None else f"{name} (none yet)",
        tofile=f"{name} ({labels[1]})",
        lineterm="",
    )
    shown = []
    for line in lines:
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        shown.append(DiffLine(kind, line))
    return shown
