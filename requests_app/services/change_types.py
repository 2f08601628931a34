"""What each change type means to a request: the types that change the
request's own role, and what of a principal or resource a change sets (its
"slots"), which overlapping temporary requests must not share."""

from __future__ import annotations

from typing import Any

from requests_app.models import Change

# Changes to the principal itself: they must name the request's role.
ROLE_CHANGE_TYPES = frozenset(
    {
        Change.Type.INLINE_POLICY_PUT,
        Change.Type.INLINE_POLICY_DELETE,
        Change.Type.MANAGED_POLICY_ATTACH,
        Change.Type.MANAGED_POLICY_DETACH,
        Change.Type.TRUST_POLICY_UPDATE,
        Change.Type.TAGS_PUT,
        Change.Type.TAGS_DELETE,
        Change.Type.PERMISSIONS_BOUNDARY_PUT,
        Change.Type.PERMISSIONS_BOUNDARY_DELETE,
    }
)


def _slots(type: str, target_arn: str, payload: Any) -> set[tuple[str, str, str]]:
    """What of a principal or resource a change sets: an inline policy by name, a
    tag by key, an attachment, the boundary, a whole policy document. Statements
    merged by Sid take no slot: each request's Sids are its own."""
    payload = payload if isinstance(payload, dict) else {}
    kind = Change.Type
    if type in (kind.INLINE_POLICY_PUT, kind.INLINE_POLICY_DELETE):
        return {("inline", target_arn, str(payload.get("policy_name", "")))}
    if type in (kind.MANAGED_POLICY_ATTACH, kind.MANAGED_POLICY_DETACH):
        return {("attachment", target_arn, str(payload.get("policy_arn", "")))}
    if type == kind.TAGS_PUT and isinstance(payload.get("tags"), dict):
        return {("tag", target_arn, str(key).lower()) for key in payload["tags"]}
    if type == kind.TAGS_DELETE and isinstance(payload.get("keys"), list):
        return {("tag", target_arn, str(key).lower()) for key in payload["keys"]}
    if type in (kind.PERMISSIONS_BOUNDARY_PUT, kind.PERMISSIONS_BOUNDARY_DELETE):
        return {("boundary", target_arn, "")}
    if "statements" in payload:
        return set()
    return {("document", target_arn, "")}


def _slot_noun(type: str) -> str:
    kind = Change.Type
    return {
        kind.INLINE_POLICY_PUT: "inline policy",
        kind.INLINE_POLICY_DELETE: "inline policy",
        kind.TAGS_PUT: "tag",
        kind.TAGS_DELETE: "tag",
        kind.MANAGED_POLICY_ATTACH: "managed policy attachment",
        kind.MANAGED_POLICY_DETACH: "managed policy attachment",
        kind.PERMISSIONS_BOUNDARY_PUT: "permissions boundary",
        kind.PERMISSIONS_BOUNDARY_DELETE: "permissions boundary",
    }.get(Change.Type(type), "policy")
