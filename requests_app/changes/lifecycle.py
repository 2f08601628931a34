"""The life of a role itself: creating one (a clone is a creation whose parts were
copied at submit), deleting one, and changing its description and maximum
session duration.

A creation names the new role by its ARN (the request's role, not yet in the
inventory); its payload holds every part the role starts with, so the reviewer
sees exactly what will exist. A deletion keeps every part of the role, as the
inventory had it, in `Change.previous`: the request is the record of what was
deleted, and undoing it (a temporary deletion) creates the role again from it.
Both are resumable: applying again after a failure half way finishes the work.
"""

from __future__ import annotations

import re
from typing import Any

import boto3
from botocore.exceptions import ClientError

from accounts.models import IamRole
from accounts.selectors import role_protected
from requests_app.changes.base import ChangeInvalid, ChangeRefused, ChangeType, Checked, Slot
from requests_app.changes.common import (
    ALREADY_GONE,
    account_managed,
    dicts,
    dumps,
    error_code,
    iam_client,
    identity_document,
    invalid,
    json_size,
    last_segment,
    listing,
    payload_fields,
    payload_of,
    protected_role_refusal,
    reserved_policy_name,
    role_guard,
    role_managed,
    same_document,
    strs,
    tolerating,
)
from requests_app.changes.principal import as_document, principal_policy_payload
from requests_app.changes.tags import tags_checked
from requests_app.models import Change
from requests_app.policy.arns import POLICY_ARN, ROLE_ARN
from requests_app.policy.limits import (
    DESCRIPTION_MAX_LENGTH,
    IAM_PATH_MAX_LENGTH,
    INLINE_POLICIES_MAX_SIZE,
    ROLE_MANAGED_POLICIES_MAX,
    ROLE_TAGS_MAX,
    SESSION_DURATION_MAX,
    SESSION_DURATION_MIN,
    TRUST_POLICY_MAX_SIZE,
)
from requests_app.policy.names import POLICY_NAME

# The parts of a role a creation sets, in the order a person reads them.
CREATE_FIELDS = (
    "description",
    "max_session_duration",
    "trust_policy",
    "inline_policies",
    "managed_policy_arns",
    "permissions_boundary_arn",
    "tags",
)
# IAM's rule for a role's description: tab, line breaks and Latin-1 printables.
_DESCRIPTION = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]*")


# --- validation --------------------------------------------------------------------------


def _new_role_arn(target_arn: str) -> re.Match[str]:
    match = ROLE_ARN.fullmatch(target_arn)
    if match is None:
        invalid(
            "target_arn",
            "Name the new role by its ARN, such as arn:aws:iam::123456789012:role/payments-api "
            "(a name of 1-64 letters, digits or +=,.@_- characters).",
        )
    if len(match.group(3)) > IAM_PATH_MAX_LENGTH:
        invalid("target_arn", f"A role's path is at most {IAM_PATH_MAX_LENGTH} characters.")
    return match


def description_checked(value: Any, where: str = "payload.description") -> str:
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX_LENGTH:
        invalid(where, f"A description is text of at most {DESCRIPTION_MAX_LENGTH} characters.")
    if not _DESCRIPTION.fullmatch(value):
        invalid(where, "IAM takes only Latin-1 letters, digits and punctuation in a description.")
    return value


def session_duration_checked(value: Any, where: str = "payload.max_session_duration") -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not SESSION_DURATION_MIN <= value <= SESSION_DURATION_MAX
    ):
        invalid(
            where,
            f"The maximum session duration is a number of seconds from {SESSION_DURATION_MIN} "
            f"(1 hour) to {SESSION_DURATION_MAX} (12 hours).",
        )
    return value


def _policy_arn_checked(value: Any, *, where: str, partition: str, account_id: str) -> str:
    match = POLICY_ARN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        invalid(
            where,
            "Name a managed policy by its ARN, such as arn:aws:iam::aws:policy/ReadOnlyAccess.",
        )
    if match.group(1) != partition or match.group(2) not in ("aws", account_id):
        invalid(
            where,
            "A role can only use AWS-managed policies and the managed policies of its own "
            f"account ({account_id}).",
        )
    return match.group(0)


def _trust_checked(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        invalid("payload.trust_policy", "Give the trust policy as a JSON object.")
    try:
        checked = principal_policy_payload(
            {"document": value},
            previous=None,
            trust=True,
            max_size=TRUST_POLICY_MAX_SIZE,
            what="trust policy",
        )
    except ChangeInvalid as exc:
        raise ChangeInvalid({"payload.trust_policy": "; ".join(exc.errors.values())}) from None
    document: dict[str, Any] = checked["document"]
    return document


def _inline_checked(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        invalid("payload.inline_policies", "Give the inline policies as an object: name -> policy.")
    seen: set[str] = set()
    for name, document in value.items():
        if not POLICY_NAME.fullmatch(name):
            invalid(
                "payload.inline_policies",
                f"The policy name {name[:130]!r} is not 1-128 letters, digits or +=,.@_- "
                "characters.",
            )
        refusal = reserved_policy_name(name)
        if refusal:
            invalid("payload.inline_policies", refusal)
        if name.lower() in seen:
            invalid("payload.inline_policies", f"IAM policy names ignore case: {name!r} is twice.")
        seen.add(name.lower())
        others = sum(json_size(doc) for key, doc in value.items() if key != name)
        identity_document(
            document, where=f"payload.inline_policies.{name}", other_inline_size=others
        )
    total = sum(json_size(doc) for doc in value.values())
    if total > INLINE_POLICIES_MAX_SIZE:
        invalid(
            "payload.inline_policies",
            f"A role's inline policies together are at most {INLINE_POLICIES_MAX_SIZE} "
            f"characters without white space; these are {total}.",
        )
    return dict(value)


def _create_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    payload_fields(
        payload,
        required=("trust_policy",),
        optional=tuple(f for f in CREATE_FIELDS if f != "trust_policy"),
    )
    match = _new_role_arn(target_arn)
    partition, account_id, name = match.group(1), match.group(2), match.group(4)
    account = account_managed(account_id)
    if role_protected(target_arn):
        invalid("target_arn", protected_role_refusal(name))
    if IamRole.objects.filter(account=account, name__iexact=name).exists():
        invalid("target_arn", f"Account {account} already has a role named {name}.")
    managed = payload.get("managed_policy_arns", [])
    if not isinstance(managed, list) or len(managed) > ROLE_MANAGED_POLICIES_MAX:
        invalid(
            "payload.managed_policy_arns",
            f"Give a list of at most {ROLE_MANAGED_POLICIES_MAX} managed policy ARNs.",
        )
    arns: list[str] = []
    for arn in managed:
        checked = _policy_arn_checked(
            arn, where="payload.managed_policy_arns", partition=partition, account_id=account_id
        )
        if checked not in arns:
            arns.append(checked)
    tags = payload.get("tags", {})
    if tags != {}:
        tags_checked(tags)
        if len(tags) > ROLE_TAGS_MAX:
            invalid("payload.tags", f"A role has at most {ROLE_TAGS_MAX} tags.")
    boundary = payload.get("permissions_boundary_arn", "")
    if boundary:
        boundary = _policy_arn_checked(
            boundary,
            where="payload.permissions_boundary_arn",
            partition=partition,
            account_id=account_id,
        )
    elif account.new_roles_require_boundary:
        invalid(
            "payload.permissions_boundary_arn",
            f"Roles created in account {account} need a permissions boundary: name one.",
        )
    normalised = {
        "description": description_checked(payload.get("description", "")),
        "max_session_duration": session_duration_checked(
            payload.get("max_session_duration", SESSION_DURATION_MIN)
        ),
        "trust_policy": _trust_checked(payload["trust_policy"]),
        "inline_policies": _inline_checked(payload.get("inline_policies", {})),
        "managed_policy_arns": arns,
        "permissions_boundary_arn": boundary,
        "tags": dict(tags),
    }
    return Checked(account_id, normalised, None)


def role_snapshot(role: IamRole) -> dict[str, Any]:
    """Every part of `role` as the inventory has it, in the shape of a creation's
    payload (with when it was last used): what a deletion keeps, and what a clone
    copies. Not iamportal's revoked-sessions policy: it is about this role's
    sessions, lifted on its own, and no request writes it."""
    inline = {
        name: document
        for name, document in (role.inline_policies or {}).items()
        if not reserved_policy_name(name)
    }
    return {
        "description": role.description,
        "max_session_duration": role.max_session_duration,
        "trust_policy": role.trust_policy or {},
        "inline_policies": inline,
        "managed_policy_arns": [
            str(p.get("arn")) for p in role.managed_policies or [] if isinstance(p, dict)
        ],
        "permissions_boundary_arn": role.permissions_boundary_arn,
        "tags": dict(role.tags or {}),
        "last_used_on": role.last_used_on.isoformat() if role.last_used_on else None,
        "last_used_region": role.last_used_region,
    }


def _delete_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=("confirmation",))
    if payload["confirmation"] != role.name:
        invalid(
            "payload.confirmation",
            f"Type the name of the role, {role.name}, to confirm that it is to be deleted.",
        )
    return Checked(role.account.account_id, {"confirmation": role.name}, role_snapshot(role))


def _update_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    role = role_managed(target_arn)
    payload_fields(payload, required=(), optional=("description", "max_session_duration"))
    if not payload:
        invalid("payload", "Give description, max_session_duration or both.")
    normalised: dict[str, Any] = {}
    if "description" in payload:
        normalised["description"] = description_checked(payload["description"])
    if "max_session_duration" in payload:
        normalised["max_session_duration"] = session_duration_checked(
            payload["max_session_duration"]
        )
    previous = {
        "description": role.description,
        "max_session_duration": role.max_session_duration,
    }
    previous = {key: previous[key] for key in normalised}
    if previous == normalised:
        invalid("payload", f"Role {role.name} already has this description and session duration.")
    return Checked(role.account.account_id, normalised, previous)


# --- AWS ---------------------------------------------------------------------------------


def _live_role(iam: Any, arn: str) -> dict[str, Any] | None:
    """The role as IAM has it now, None when there is none by that name."""
    name = last_segment(arn)
    try:
        found: dict[str, Any] = iam.get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if error_code(exc) in ALREADY_GONE:
            return None
        raise
    if found.get("Arn") != arn:
        # IAM finds a role by name: never touch one with another path.
        raise ChangeRefused(f"The role named {name} is {found.get('Arn')}, not {arn}.")
    return found


def role_build(iam: Any, arn: str, parts: dict[str, Any]) -> dict[str, Any]:
    """Create the role `arn` with `parts` (a creation's payload), or finish one a
    failed attempt began: a role of that name whose trust policy is the one
    asked for is taken as ours, and every part is set again (each step is
    idempotent). A role of that name with another trust policy is refused."""
    name, path = last_segment(arn), arn.split(":role", 1)[1].rsplit("/", 1)[0] + "/"
    trust = parts.get("trust_policy") or {}
    description = str(parts.get("description") or "")
    duration = int(parts.get("max_session_duration") or SESSION_DURATION_MIN)
    boundary = str(parts.get("permissions_boundary_arn") or "")
    raw_tags = parts.get("tags")
    tags: dict[str, Any] = raw_tags if isinstance(raw_tags, dict) else {}
    found = _live_role(iam, arn)
    if found is None:
        params: dict[str, Any] = {
            "Path": path,
            "RoleName": name,
            "AssumeRolePolicyDocument": dumps(trust),
            "MaxSessionDuration": duration,
        }
        if description:
            params["Description"] = description
        if boundary:
            params["PermissionsBoundary"] = boundary
        if tags:
            params["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        iam.create_role(**params)
    else:
        if not same_document(as_document(found.get("AssumeRolePolicyDocument")), trust):
            raise ChangeRefused(
                f"Account already has a role named {name} with another trust policy: "
                "iamportal does not take it over. Nothing was changed."
            )
        iam.update_role(RoleName=name, Description=description, MaxSessionDuration=duration)
        if boundary:
            iam.put_role_permissions_boundary(RoleName=name, PermissionsBoundary=boundary)
        if tags:
            iam.tag_role(RoleName=name, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    raw = parts.get("inline_policies")
    inline: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for policy_name, document in inline.items():
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=dumps(document))
    for policy_arn in strs(parts.get("managed_policy_arns")):
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
    return {"adopted": found is not None}


def role_remove(iam: Any, arn: str) -> dict[str, Any]:
    """Delete the role `arn` the way IAM needs it: out of its instance profiles,
    its managed policies detached, its inline policies deleted, then the role.
    Each step tolerates what is already done, so running it again after a
    failure half way finishes the work. Returns what it removed."""
    name = last_segment(arn)
    if _live_role(iam, arn) is None:
        return {"already_deleted": True}
    profiles = [
        profile["InstanceProfileName"]
        for page in iam.get_paginator("list_instance_profiles_for_role").paginate(RoleName=name)
        for profile in page["InstanceProfiles"]
    ]
    for profile in profiles:
        tolerating(
            ALREADY_GONE,
            iam.remove_role_from_instance_profile,
            InstanceProfileName=profile,
            RoleName=name,
        )
    attached = [
        policy["PolicyArn"]
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
        for policy in page["AttachedPolicies"]
    ]
    for policy_arn in attached:
        tolerating(ALREADY_GONE, iam.detach_role_policy, RoleName=name, PolicyArn=policy_arn)
    inline = [
        policy_name
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
        for policy_name in page["PolicyNames"]
    ]
    for policy_name in inline:
        tolerating(ALREADY_GONE, iam.delete_role_policy, RoleName=name, PolicyName=policy_name)
    tolerating(ALREADY_GONE, iam.delete_role, RoleName=name)
    return {
        "instance_profiles": profiles,
        "managed_policy_arns": attached,
        "inline_policy_names": inline,
    }


def _create_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    return role_build(iam_client(session), change.target_arn, payload_of(change))


def _create_revert(change: Change, session: boto3.Session) -> None:
    # A temporary role: it goes when its time is up, with everything on it.
    role_remove(iam_client(session), change.target_arn)


def _delete_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    return role_remove(iam_client(session), change.target_arn)


def _delete_revert(change: Change, session: boto3.Session) -> None:
    # Put the role back as it was when the deletion was requested (its
    # instance-profile links are not restored: the profiles may be gone too).
    previous = change.previous if isinstance(change.previous, dict) else {}
    if not previous.get("trust_policy"):
        raise ChangeRefused("The deleted role's trust policy was not recorded: it cannot be made.")
    role_build(iam_client(session), change.target_arn, previous)


def _update_params(values: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if "description" in values:
        params["Description"] = str(values["description"] or "")
    if "max_session_duration" in values:
        params["MaxSessionDuration"] = int(values["max_session_duration"])
    return params


def _update_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam_client(session).update_role(
        RoleName=last_segment(change.target_arn), **_update_params(payload_of(change))
    )
    return {}


def _update_revert(change: Change, session: boto3.Session) -> None:
    previous = change.previous if isinstance(change.previous, dict) else {}
    params = _update_params(previous)
    if params:
        iam_client(session).update_role(RoleName=last_segment(change.target_arn), **params)


# --- what people read --------------------------------------------------------------------


def _create_document(change: Change) -> tuple[Any, Any] | None:
    payload = payload_of(change)
    return None, {key: payload[key] for key in CREATE_FIELDS if key in payload}


def _delete_document(change: Change) -> tuple[Any, Any] | None:
    previous = change.previous if isinstance(change.previous, dict) else {}
    return {key: previous[key] for key in CREATE_FIELDS if key in previous}, None


def _update_document(change: Change) -> tuple[Any, Any] | None:
    before = change.previous if isinstance(change.previous, dict) else {}
    return before, {**before, **payload_of(change)}


def trusted_principals(trust: Any) -> list[str]:
    """Who a trust policy lets assume the role, as short texts."""
    found: list[str] = []
    statements = trust.get("Statement") if isinstance(trust, dict) else None
    for statement in dicts(statements if isinstance(statements, list) else [statements]):
        principal = statement.get("Principal")
        if isinstance(principal, str):
            found.append(principal)
        for value in principal.values() if isinstance(principal, dict) else []:
            found += [value] if isinstance(value, str) else strs(value)
    return found


def _create_summary(change: Change) -> str:
    payload = payload_of(change)
    name, account = last_segment(change.target_arn), change.account_id
    inline = payload.get("inline_policies")
    parts = [
        f"trusting {listing(trusted_principals(payload.get('trust_policy'))) or 'nobody'}",
        f"{len(inline) if isinstance(inline, dict) else 0} inline policies",
        f"{len(strs(payload.get('managed_policy_arns')))} managed policies",
    ]
    if payload.get("permissions_boundary_arn"):
        parts.append(f"boundary {last_segment(str(payload['permissions_boundary_arn']))}")
    return f"Create role {name} in account {account} ({', '.join(parts)})"


def _delete_summary(change: Change) -> str:
    return (
        f"Delete role {last_segment(change.target_arn)} in account {change.account_id}, "
        "with its inline policies, managed policy attachments and instance-profile links"
    )


def _hours(seconds: Any) -> str:
    if isinstance(seconds, int) and seconds % 3600 == 0:
        return f"{seconds // 3600} hour{'s' if seconds != 3600 else ''}"
    return f"{seconds} seconds"


def _update_summary(change: Change) -> str:
    payload = payload_of(change)
    what: list[str] = []
    if "description" in payload:
        what.append(f"its description to {str(payload['description'])[:200]!r}")
    if "max_session_duration" in payload:
        what.append(f"its maximum session duration to {_hours(payload['max_session_duration'])}")
    return f"Set {' and '.join(what) or 'nothing'} on role {last_segment(change.target_arn)}"


def _role_slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    return {("role", target_arn, "")}


def _settings_slots(target_arn: str, payload: dict[str, Any]) -> set[Slot]:
    return {("role-settings", target_arn, key) for key in payload} or _role_slots(target_arn, {})


def _create_guard(change: Change, session: boto3.Session) -> None:
    """role_guard, and iamportal's own inline policy refused for a request filed
    before that name was refused at submission."""
    role_guard(change, session)
    policies = change.payload.get("inline_policies") if isinstance(change.payload, dict) else None
    for name in policies if isinstance(policies, dict) else {}:
        refusal = reserved_policy_name(str(name))
        if refusal:
            raise ChangeRefused(refusal + " Nothing was changed.")


ROLE_CREATE = ChangeType(
    type=Change.Type.ROLE_CREATE,
    validate=_create_validate,
    apply=_create_apply,
    revert=_create_revert,
    guard=_create_guard,
    document=_create_document,
    summary=_create_summary,
    slots=_role_slots,
    noun="role",
    targets_role=True,
    linted=False,
)

ROLE_DELETE = ChangeType(
    type=Change.Type.ROLE_DELETE,
    validate=_delete_validate,
    apply=_delete_apply,
    revert=_delete_revert,
    guard=role_guard,
    document=_delete_document,
    summary=_delete_summary,
    slots=_role_slots,
    noun="role",
    targets_role=True,
    linted=False,
)

ROLE_UPDATE = ChangeType(
    type=Change.Type.ROLE_UPDATE,
    validate=_update_validate,
    apply=_update_apply,
    revert=_update_revert,
    guard=role_guard,
    document=_update_document,
    summary=_update_summary,
    slots=_settings_slots,
    noun="setting",
    targets_role=True,
    linted=False,
)
