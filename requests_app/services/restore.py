"""Putting a part of a role back as one of its recorded versions: an ordinary
request (reviewed, applied, audited) made of the changes that lead from what
the role has now to that version. Also which part of a role a change writes,
so the refresh after an apply records its new versions as the request's."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from accounts.models import IamRole, RoleVersion
from accounts.services import role_parts
from requests_app.models import Change, PolicyRequest
from requests_app.services.common import RequestInvalid
from requests_app.services.submit import policy_request_changes_submit

_PARTS: dict[str, str] = {
    Change.Type.INLINE_POLICY_PUT: RoleVersion.Part.INLINE,
    Change.Type.INLINE_POLICY_DELETE: RoleVersion.Part.INLINE,
    Change.Type.MANAGED_POLICY_ATTACH: RoleVersion.Part.MANAGED,
    Change.Type.MANAGED_POLICY_DETACH: RoleVersion.Part.MANAGED,
    Change.Type.TRUST_POLICY_UPDATE: RoleVersion.Part.TRUST,
    Change.Type.TAGS_PUT: RoleVersion.Part.TAGS,
    Change.Type.TAGS_DELETE: RoleVersion.Part.TAGS,
    Change.Type.PERMISSIONS_BOUNDARY_PUT: RoleVersion.Part.BOUNDARY,
    Change.Type.PERMISSIONS_BOUNDARY_DELETE: RoleVersion.Part.BOUNDARY,
}


def change_role_part(change: Change) -> tuple[str, str] | None:
    """The (part, key) of its role that `change` writes, as the history keys it;
    None for a change that writes no part of a role (a managed policy's new
    version, a resource policy)."""
    part = _PARTS.get(change.type)
    if part is None or ":role/" not in change.target_arn:
        return None
    if part == RoleVersion.Part.INLINE:
        payload = change.payload if isinstance(change.payload, dict) else {}
        return part, str(payload.get("policy_name", ""))
    return part, ""


def role_version_restore_changes(*, role: IamRole, version: RoleVersion) -> list[dict[str, Any]]:
    """The changes (type, target_arn, payload) that put `version` back on `role`,
    judged against the role as the inventory has it; empty when the role
    already has it."""
    return role_part_changes(
        role=role, part=version.part, key=version.key, document=version.document
    )


def role_part_changes(*, role: IamRole, part: str, key: str, document: Any) -> list[dict[str, Any]]:
    """The changes (type, target_arn, payload) that give `role` the `document`
    for one of its parts, in the form `accounts.services.role_parts` keeps
    them (an inline policy by its name `key`, None for "absent"; the sorted ARNs
    of the attached managed policies; the trust policy; the boundary's ARN or
    None; the tags), judged against the role as the inventory has it; empty
    when the role already has it. Used by restore and by the part editors."""
    current = role_parts(role).get((part, key))
    old = document
    arn = role.arn

    def change(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"type": type_, "target_arn": arn, "payload": payload}

    if part == RoleVersion.Part.INLINE:
        if old is None:
            if current is None:
                return []
            return [change(Change.Type.INLINE_POLICY_DELETE, {"policy_name": key})]
        if current == old:
            return []
        return [change(Change.Type.INLINE_POLICY_PUT, {"policy_name": key, "document": old})]
    if part == RoleVersion.Part.TRUST:
        if old is None or current == old:
            return []
        return [change(Change.Type.TRUST_POLICY_UPDATE, {"document": old})]
    if part == RoleVersion.Part.BOUNDARY:
        if current == old:
            return []
        if old is None:
            return [change(Change.Type.PERMISSIONS_BOUNDARY_DELETE, {})]
        return [change(Change.Type.PERMISSIONS_BOUNDARY_PUT, {"policy_arn": old})]
    if part == RoleVersion.Part.TAGS:
        old_tags = old if isinstance(old, dict) else {}
        now_tags = current if isinstance(current, dict) else {}
        wanted = {key: value for key, value in old_tags.items() if now_tags.get(key) != value}
        # IAM tag keys ignore case: a key put back in another case replaces it.
        put = {key.lower() for key in wanted}
        gone = sorted(key for key in now_tags if key not in old_tags and key.lower() not in put)
        found = []
        if gone:
            found.append(change(Change.Type.TAGS_DELETE, {"keys": gone}))
        if wanted:
            found.append(change(Change.Type.TAGS_PUT, {"tags": wanted}))
        return found
    if part == RoleVersion.Part.MANAGED:
        old_set = {str(a) for a in old or []}
        now_set = {str(a) for a in current or []}
        return [
            *(
                change(Change.Type.MANAGED_POLICY_DETACH, {"policy_arn": a})
                for a in sorted(now_set - old_set)
            ),
            *(
                change(Change.Type.MANAGED_POLICY_ATTACH, {"policy_arn": a})
                for a in sorted(old_set - now_set)
            ),
        ]
    return []


def role_version_restore_submit(
    *,
    requester: User,
    role: IamRole,
    version: RoleVersion,
    justification: str,
    findings_acknowledgement: str = "",
) -> PolicyRequest:
    """File the request that puts `version` back on `role`. The justification
    is required and is told which version it restores. Raises RequestInvalid
    (also when the role already has that version)."""
    if version.role_id != role.pk:
        raise RequestInvalid({"version": "This version is of another role."})
    changes = role_version_restore_changes(role=role, version=version)
    if not changes:
        raise RequestInvalid(
            {"version": f"The role already has this version of its {version.label}."}
        )
    justification = (justification or "").strip()
    if justification:
        justification = (
            f"Restore the {version.label} as of {version.recorded_at:%Y-%m-%d %H:%M} UTC "
            f"(version {version.pk}). {justification}"
        )
    request = policy_request_changes_submit(
        requester=requester,
        role=role,
        changes=changes,
        justification=justification,
        findings_acknowledgement=findings_acknowledgement,
    )
    assert isinstance(request, PolicyRequest)  # not a dry run
    return request
