"""What the kernel reports: one entry per read for the cell's execute_reply stamp, and the
refusal message a researcher sees. Imports nothing of the guard (every reader uses it)."""

from __future__ import annotations

from typing import Any


def read_entry(decision: dict, reader: str, target: str, *, rows: int | None, effect: str | None = None,
           **extra: Any) -> dict:
    """One read as the cell reports it (counts and names, never values)."""
    entry = {
        "dataset": decision.get("dataset"),
        "label": decision.get("label"),
        "effect": effect or decision.get("effect"),
        "permitted": bool(decision.get("permitted")) if effect is None else False,
        "target": decision.get("target") or target,
        "reader": reader,
        "rows": rows,
        "columns": {},
        "entity_counts": {},
        "audit_seq": decision.get("audit_seq"),
    }
    entry.update({k: v for k, v in extra.items() if v is not None})
    return entry


def refusal_message(decision: dict) -> str:
    """The server's who/what/why/who-to-ask, plus what to type when a justification would do."""
    message = decision.get("message") or (
        f"jupyter_guard refused reading {decision.get('target')}: " + " ".join(decision.get("reasons") or ())
    )
    if decision.get("effect") == "justify":
        message += (' To go ahead, give your reason with %guard justify "why you need this data" '
                    "and run the cell again; the reason is recorded for the data steward.")
    return message
