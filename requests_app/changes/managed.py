"""Customer-managed policies: create one, and make a new default version of one.
A new version changes every role that uses the policy, so it is refused while
one of iamportal's own roles uses it, at submission and again, live, at apply."""

from __future__ import annotations

import re
from typing import Any

import boto3
from botocore.exceptions import ClientError
from django.conf import settings

from accounts.fetch import policy_document
from accounts.models import IamRole, ManagedPolicy
from accounts.selectors import policy_uses, role_protected, spoke_role_names
from requests_app.changes.base import ChangeRefused, ChangeType, Checked
from requests_app.changes.common import (
    ALREADY_GONE,
    account_managed,
    document_slots,
    dumps,
    error_code,
    iam_client,
    identity_document,
    invalid,
    json_size,
    last_segment,
    outcome_of,
    payload_fields,
    payload_of,
    protected_policy_refusal,
    role_guard,
    same_document,
    tolerating,
)
from requests_app.models import Change
from requests_app.policy.arns import POLICY_ARN as _POLICY_ARN
from requests_app.policy.limits import (
    DESCRIPTION_MAX_LENGTH,
    IAM_PATH_MAX_LENGTH,
    MANAGED_POLICY_MAX_SIZE,
    POLICY_VERSIONS_MAX,
)

# --- validation --------------------------------------------------------------------------


def _managed_document(value: Any) -> dict[str, Any]:
    document = identity_document(value)
    size = json_size(document)
    if size > MANAGED_POLICY_MAX_SIZE:
        invalid(
            "payload.document",
            f"A managed policy is at most {MANAGED_POLICY_MAX_SIZE} characters without white "
            f"space; this one is {size}.",
        )
    return document


def _customer_policy_arn(target_arn: str) -> re.Match[str]:
    match = _POLICY_ARN.fullmatch(target_arn)
    if match is None:
        invalid(
            "target_arn",
            "Name a managed policy by its ARN, such as "
            "arn:aws:iam::123456789012:policy/invoices-read.",
        )
    if match.group(2) == "aws":
        invalid("target_arn", "AWS-managed policies belong to AWS: they cannot be changed.")
    if len(match.group(3)) > IAM_PATH_MAX_LENGTH:
        invalid("target_arn", f"A policy's path is at most {IAM_PATH_MAX_LENGTH} characters.")
    return match


def _managed_create_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    match = _customer_policy_arn(target_arn)
    account = account_managed(match.group(2))
    name = match.group(4)
    # IAM policy names are unique in an account whatever their case and path.
    if ManagedPolicy.objects.filter(account=account, name__iexact=name).exists():
        invalid("target_arn", f"Account {account.account_id} already has a policy named {name}.")
    payload_fields(payload, required=("document",), optional=("description",))
    normalised: dict[str, Any] = {"document": _managed_document(payload["document"])}
    if "description" in payload:
        description = payload["description"]
        if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_LENGTH:
            invalid(
                "payload.description",
                f"A description is a string of at most {DESCRIPTION_MAX_LENGTH} characters.",
            )
        if description:
            normalised["description"] = description
    return Checked(account.account_id, normalised, None)


def _managed_version_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    match = _customer_policy_arn(target_arn)
    account_managed(match.group(2))
    policy = ManagedPolicy.objects.filter(arn=target_arn).first()
    if policy is None:
        invalid(
            "target_arn",
            f"The policy {target_arn} is not in the inventory: check the ARN, or sync its account.",
        )
    # A new default version changes every role that uses the policy, whichever
    # role the request is about.
    protected = [
        (use.role.name, use.attached, use.boundary)
        for use in policy_uses(policy_arn=policy.arn)
        if use.protected
    ]
    if protected:
        invalid("target_arn", protected_policy_refusal(policy.arn, protected))
    payload_fields(payload, required=("document",))
    document = _managed_document(payload["document"])
    if document == policy.document:
        invalid("payload.document", "This is the document of the current default version.")
    return Checked(match.group(2), {"document": document}, policy.document or None)


# --- apply and revert --------------------------------------------------------------------


def _versions(iam: Any, arn: str) -> list[dict[str, Any]]:
    return [
        version
        for page in iam.get_paginator("list_policy_versions").paginate(PolicyArn=arn)
        for version in page["Versions"]
    ]


def _version_number(version: dict[str, Any]) -> int:
    # IAM numbers versions v1, v2, ... in the order they are created.
    digits = str(version.get("VersionId", "")).lstrip("v")
    return int(digits) if digits.isdigit() else 0


def _version_document(iam: Any, arn: str, version_id: str) -> Any:
    version = iam.get_policy_version(PolicyArn=arn, VersionId=version_id)["PolicyVersion"]
    return policy_document(version.get("Document"))


def _version_room_make(
    iam: Any, arn: str, versions: list[dict[str, Any]]
) -> tuple[str | None, Any]:
    """IAM keeps at most 5 versions of a policy: when it has 5, delete the oldest
    that is not the default. Returns its id and document (None, None when no
    room had to be made)."""
    if len(versions) < POLICY_VERSIONS_MAX:
        return None, None
    candidates = [v for v in versions if not v.get("IsDefaultVersion")]
    oldest = min(candidates, key=_version_number)
    document = _version_document(iam, arn, oldest["VersionId"])
    iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    return oldest["VersionId"], document


def _managed_create_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam, arn, payload = iam_client(session), change.target_arn, payload_of(change)
    match = _POLICY_ARN.fullmatch(arn)
    if match is None:
        raise ChangeRefused(f"{arn} is not a managed policy ARN.")
    params: dict[str, Any] = {
        "PolicyName": match.group(4),
        "Path": match.group(3),
        "PolicyDocument": dumps(payload["document"]),
    }
    if payload.get("description"):
        params["Description"] = payload["description"]
    try:
        created = iam.create_policy(**params)["Policy"]
    except ClientError as exc:
        if error_code(exc) != "EntityAlreadyExists":
            raise
        # A retried apply finds its own policy; anything else is someone else's.
        existing = iam.get_policy(PolicyArn=arn)["Policy"]
        version_id = existing["DefaultVersionId"]
        if not same_document(_version_document(iam, arn, version_id), payload["document"]):
            raise ChangeRefused(
                f"A policy {arn} already exists with another document: it was not created "
                "by this change."
            ) from None
        return {"policy_arn": arn, "version_id": version_id}
    return {"policy_arn": created["Arn"], "version_id": created.get("DefaultVersionId", "v1")}


def _attached_to(iam: Any, arn: str) -> list[str]:
    names: list[str] = []
    for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
        names += [f"role {r['RoleName']}" for r in page.get("PolicyRoles", [])]
        names += [f"user {u['UserName']}" for u in page.get("PolicyUsers", [])]
        names += [f"group {g['GroupName']}" for g in page.get("PolicyGroups", [])]
    return names


def _managed_create_revert(change: Change, session: boto3.Session) -> None:
    iam, arn = iam_client(session), change.target_arn
    attached = _attached_to(iam, arn)
    if attached:
        raise ChangeRefused(
            f"{arn} is still attached to {', '.join(attached[:5])}: detach it before the "
            "policy can be deleted."
        )
    # IAM deletes a policy only once its other versions are gone.
    for version in _versions(iam, arn):
        if not version.get("IsDefaultVersion"):
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=arn)


def _managed_version_apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    iam, arn = iam_client(session), change.target_arn
    document = payload_of(change)["document"]
    versions = _versions(iam, arn)
    default = next(v for v in versions if v.get("IsDefaultVersion"))
    if same_document(_version_document(iam, arn, default["VersionId"]), document):
        return _managed_version_found(iam, change, versions, default)
    pruned_id, pruned_document = _version_room_make(iam, arn, versions)
    created = iam.create_policy_version(
        PolicyArn=arn, PolicyDocument=dumps(document), SetAsDefault=True
    )["PolicyVersion"]
    return {
        "version_id": created["VersionId"],
        "previous_version_id": default["VersionId"],
        "pruned_version_id": pruned_id,
        "pruned_document": pruned_document,
    }


def _managed_version_found(
    iam: Any, change: Change, versions: list[dict[str, Any]], default: dict[str, Any]
) -> dict[str, Any]:
    """A retried apply: the document already is the default. The version that was
    the default before is the newest with the document the request saw, or else
    simply the newest of the others."""
    others = sorted(
        (v for v in versions if not v.get("IsDefaultVersion")), key=_version_number, reverse=True
    )
    previous = next(
        (
            v
            for v in others
            if same_document(
                _version_document(iam, change.target_arn, v["VersionId"]), change.previous
            )
        ),
        others[0] if others else None,
    )
    return {
        "version_id": default["VersionId"],
        "previous_version_id": previous["VersionId"] if previous else None,
        "pruned_version_id": None,
        "pruned_document": None,
    }


def _managed_version_revert(change: Change, session: boto3.Session) -> None:
    iam, arn, outcome = iam_client(session), change.target_arn, outcome_of(change)
    created = outcome.get("version_id")
    if not isinstance(created, str):
        raise ChangeRefused("The version this change created is not recorded: it cannot be undone.")
    versions = _versions(iam, arn)
    by_id = {v["VersionId"]: v for v in versions}
    if created not in by_id:
        return
    # Only while the created version is still the default: a version made since
    # then stays the default.
    if by_id[created].get("IsDefaultVersion"):
        previous_id = outcome.get("previous_version_id")
        if previous_id in by_id:
            iam.set_default_policy_version(PolicyArn=arn, VersionId=previous_id)
        elif isinstance(change.previous, dict):
            # The old default is gone: bring its document back as a new version.
            _version_room_make(iam, arn, versions)
            iam.create_policy_version(
                PolicyArn=arn, PolicyDocument=dumps(change.previous), SetAsDefault=True
            )
        else:
            raise ChangeRefused(
                f"The version of {arn} that was the default before is gone: set the default "
                "version by hand."
            )
    iam.delete_policy_version(PolicyArn=arn, VersionId=created)
    # The apply deleted the oldest version to make room: put its document back.
    pruned = outcome.get("pruned_document")
    if isinstance(pruned, dict) and len(_versions(iam, arn)) < POLICY_VERSIONS_MAX:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=dumps(pruned), SetAsDefault=False)


# --- the live check ----------------------------------------------------------------------


def _version_guard(change: Change, session: boto3.Session) -> None:
    """The inventory checked at submission may be stale (a policy attached to the
    spoke role by hand since): which roles use the policy is asked of AWS."""
    role_guard(change, session)
    uses = _protected_uses_live(iam_client(session), change.target_arn, change.account_id)
    if uses:
        raise ChangeRefused(
            protected_policy_refusal(change.target_arn, uses, live=True) + " Nothing was changed."
        )


def _protected_uses_live(
    iam: Any, policy_arn: str, account_id: str
) -> list[tuple[str, bool, bool]]:
    """(role name, attached, boundary) for each of iamportal's own roles that uses
    the policy in AWS now.

    ListEntitiesForPolicy without a usage filter answers both the roles the
    policy is attached to and those it is the permissions boundary of. The
    spoke role and the protected roles of the inventory are also read one by
    one (GetRole): that finds a boundary even where ListEntitiesForPolicy does
    not report boundaries (the embedded AWS of the demo and the tests)."""
    partition = policy_arn.split(":")[1]
    spokes = spoke_role_names(account_ids=[account_id])
    by_path = any("/" in pattern for pattern in settings.IAMPORTAL_PROTECTED_ROLES)
    listed: dict[str, str] = {}
    pages = iam.get_paginator("list_entities_for_policy").paginate(
        PolicyArn=policy_arn, EntityFilter="Role"
    )
    for page in pages:
        for entry in page.get("PolicyRoles", []):
            listed[str(entry["RoleName"]).lower()] = str(entry["RoleName"])
    candidates = {spokes.get(account_id) or settings.IAMPORTAL_SPOKE_ROLE_NAME.lower()}
    for arn in IamRole.objects.filter(account__account_id=account_id).values_list("arn", flat=True):
        if role_protected(arn, spoke_names=spokes):
            candidates.add(last_segment(arn).lower())
    uses: list[tuple[str, bool, bool]] = []
    for key in sorted(set(listed) | candidates):
        name = listed.get(key, key)
        by_name = f"arn:{partition}:iam::{account_id}:role/{name}"
        if (
            key not in candidates
            and not by_path
            and not role_protected(by_name, spoke_names=spokes)
        ):
            continue
        # Its path decides path patterns; its boundary, how it uses the policy.
        found = tolerating(ALREADY_GONE, iam.get_role, RoleName=name)
        if not found or not role_protected(found["Role"]["Arn"], spoke_names=spokes):
            continue
        boundary_arn = (found["Role"].get("PermissionsBoundary") or {}).get(
            "PermissionsBoundaryArn", ""
        )
        boundary = str(boundary_arn).lower() == policy_arn.lower()
        attached = key in listed and not boundary
        if attached or boundary:
            uses.append((str(found["Role"]["RoleName"]), attached, boundary))
    return uses


# --- the types ---------------------------------------------------------------------------


def _create_before_after(change: Change) -> tuple[Any, Any] | None:
    return None, payload_of(change).get("document")


def _version_before_after(change: Change) -> tuple[Any, Any] | None:
    return change.previous, payload_of(change).get("document")


def _create_summary(change: Change) -> str:
    name = last_segment(change.target_arn)
    return f"Create managed policy {name} in account {change.account_id}"


def _version_summary(change: Change) -> str:
    return f"New default version of managed policy {last_segment(change.target_arn)}"


MANAGED_POLICY_CREATE = ChangeType(
    type=Change.Type.MANAGED_POLICY_CREATE,
    validate=_managed_create_validate,
    apply=_managed_create_apply,
    revert=_managed_create_revert,
    guard=role_guard,
    document=_create_before_after,
    summary=_create_summary,
    slots=document_slots,
    noun="policy",
    targets_role=False,
    linted=True,
)

MANAGED_POLICY_VERSION = ChangeType(
    type=Change.Type.MANAGED_POLICY_VERSION,
    validate=_managed_version_validate,
    apply=_managed_version_apply,
    revert=_managed_version_revert,
    guard=_version_guard,
    document=_version_before_after,
    summary=_version_summary,
    slots=document_slots,
    noun="policy",
    targets_role=False,
    linted=True,
)
