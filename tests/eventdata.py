"""Sample Lambda events from `events/`: the one way tests load them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"


def event_names(prefix: str = "") -> list[str]:
    """Names (file stems) of the sample events starting with `prefix`, sorted."""
    return sorted(
        path.stem
        for path in EVENTS_DIR.glob(f"{prefix}*.json")
        if path.name != "env.json"
    )


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of `events/<name>.json` (tests may change it freely)."""
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text())
    return event
