"""The content revision of a request: what a reviewer approves.

A hash of everything that decides what reaches AWS: each change in order (its
type, target, account, payload, and whether iamportal added it for a
cross-account grant) and the expiry, since a reviewer approves a duration too.
An approval records the revision it was given for; an edit makes a new one, and
apply refuses a request whose approvals are for another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from requests_app.models import Change, PolicyRequest

# Shown to people; the full hash is what approvals carry and compare.
SHORT_LENGTH = 12
LENGTH = 64


class _ChangeContent(Protocol):
    type: str
    target_arn: str
    account_id: str
    payload: Any
    automatic: bool


def revision_compute(changes: Iterable[_ChangeContent], expires_at: datetime | None) -> str:
    """The revision of these changes (in the order given, which must be the
    request's position order) and this expiry: sha256 of canonical JSON."""
    content = {
        "changes": [
            {
                "type": str(change.type),
                "target_arn": change.target_arn,
                "account_id": change.account_id,
                "payload": change.payload,
                "automatic": bool(change.automatic),
            }
            for change in changes
        ],
        "expires_at": expires_at.astimezone(UTC).isoformat() if expires_at else None,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def revision_of_request(request_id: int) -> str:
    """The revision recomputed from the rows as they are in the database now."""
    expires_at = PolicyRequest.objects.filter(pk=request_id).values_list("expires_at", flat=True)
    changes = Change.objects.filter(request_id=request_id).order_by("position", "id")
    return revision_compute(changes, expires_at.first())


def revision_short(revision: str) -> str:
    return revision[:SHORT_LENGTH]
