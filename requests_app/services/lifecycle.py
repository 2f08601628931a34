"""Requests about the life of a role: creating one (or a copy of another),
deleting one, changing its description and maximum session duration. Each is
an ordinary request, reviewed and applied like any other; the change types
are in `requests_app/changes/lifecycle.py`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from accounts.models import AwsAccount, IamRole
from iamportal import aws
from requests_app.changes import (
    ChangeInvalid,
    ChangeSpec,
    change_validate,
    protected_role_refusal,
    role_protected,
)
from requests_app.changes.lifecycle import CREATE_FIELDS, role_snapshot
from requests_app.findings import request_findings
from requests_app.models import Change, PolicyRequest
from requests_app.policy.trust import PresetInvalid, trust_statement, trust_with
from requests_app.services.common import OPEN_STATUSES, RequestInvalid
from requests_app.services.submit import (
    _acknowledgement,
    _expiry_errors,
    _justification_errors,
    _overlap_error,
    _request_create,
    policy_request_changes_submit,
)

# The parts of a role a clone may copy, by the name the page and API use.
CLONE_PARTS: dict[str, str] = {
    "trust": "trust_policy",
    "inline": "inline_policies",
    "managed": "managed_policy_arns",
    "tags": "tags",
    "boundary": "permissions_boundary_arn",
    "description": "description",
    "session_duration": "max_session_duration",
}


def new_role_arn(*, account: AwsAccount, name: str, path: str = "/") -> str:
    """The ARN a new role `name` under `path` would have in `account`."""
    path = path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    return aws.role_arn(account.account_id, path.lstrip("/") + name)


def access_tags_for(user: User, *, cli_only: bool = False) -> dict[str, str]:
    """The access tag that lets `user` use a new role through iamportal."""
    key = settings.IAMPORTAL_AUTH_CLI_TAG if cli_only else settings.IAMPORTAL_AUTH_TAG
    return {key: user.email or user.get_username()}


# --- trust policies from presets -----------------------------------------------------

TRUST_PRESETS: dict[str, str] = {
    "service": "An AWS service (such as lambda.amazonaws.com)",
    "role": "Another role iamportal knows, by its exact ARN",
    "account": "Another account, with an ExternalId",
    "saml": "A SAML identity provider",
    "oidc": "An OpenID Connect (web identity) provider",
    "document": "A trust policy written out (JSON)",
}
_CONDITION_VALUE = re.compile(r"[!-~]{1,512}", re.ASCII)


def trust_preset_document(
    *,
    preset: str,
    value: str = "",
    external_id: str = "",
    audience: str = "",
    subject: str = "",
) -> dict[str, Any]:
    """The trust policy of a preset (see TRUST_PRESETS): `value` is the service,
    the role's ARN (a role iamportal knows), the account id or the provider's ARN.
    An OpenID provider needs the audience (`aud`), and takes the subject (`sub`,
    * allowed). The statements come from `requests_app.policy.trust`, as in the
    trust policy editor. Raises RequestInvalid, keyed by the field at fault."""
    value = value.strip()
    if preset not in TRUST_PRESETS or preset == "document":
        raise RequestInvalid({"trust_preset": f"Choose one of: {', '.join(TRUST_PRESETS)}."})
    if preset == "role" and not IamRole.objects.filter(arn=value).exists():
        raise RequestInvalid(
            {"trust_value": "Give the exact ARN of a role in iamportal's inventory."}
        )
    extra = external_id if preset == "account" else audience
    try:
        statement = trust_statement(preset, value, extra)
    except PresetInvalid as exc:
        field = "trust_value"
        if exc.field == "extra":
            field = "trust_external_id" if preset == "account" else "trust_audience"
        raise RequestInvalid({field: exc.message}) from None
    if preset == "oidc" and subject.strip():
        if not _CONDITION_VALUE.fullmatch(subject.strip()):
            raise RequestInvalid({"trust_subject": "A subject is 1-512 printable characters."})
        host = value.split("oidc-provider/", 1)[1]
        statement["Condition"]["StringLike"] = {f"{host}:sub": subject.strip()}
    return trust_with(None, statement)


def role_create_findings(spec: ChangeSpec) -> list[Any]:
    """The findings a creation would have (a dry run shows them)."""
    return list(request_findings(role=None, changes=[spec]))


def role_create_submit(
    *,
    requester: User,
    target_arn: str,
    payload: Any,
    justification: str,
    expires_at: datetime | None = None,
    dry_run: bool = False,
    findings_acknowledgement: str = "",
) -> PolicyRequest | ChangeSpec:
    """Request a new role `target_arn` with the parts in `payload` (see
    `CREATE_FIELDS`). A temporary one is deleted at `expires_at`. With dry_run,
    return the validated change and create nothing. Error findings need
    `findings_acknowledgement`. Raises RequestInvalid."""
    justification = (justification or "").strip()
    errors = _justification_errors(justification) | _expiry_errors(expires_at)
    spec: ChangeSpec | None = None
    try:
        spec = change_validate(type=Change.Type.ROLE_CREATE, target_arn=target_arn, payload=payload)
    except ChangeInvalid as exc:
        errors |= exc.errors
    if spec is not None:
        errors |= _creating_elsewhere(spec.target_arn)
    if errors or spec is None:
        raise RequestInvalid(errors)
    overlap = _overlap_error([spec], temporary=expires_at is not None)
    if overlap:
        raise RequestInvalid({"target_arn": overlap})
    if dry_run:
        return spec
    account = AwsAccount.objects.get(account_id=spec.account_id)
    findings = [f.as_dict() for f in request_findings(role=None, changes=[spec])]
    return _request_create(
        requester=requester,
        role=None,
        new_role=(spec.target_arn, account),
        specs=[spec],
        justification=justification,
        expires_at=expires_at,
        findings=findings,
        acknowledgement=_acknowledgement(findings, findings_acknowledgement),
    )


def _creating_elsewhere(target_arn: str) -> dict[str, str]:
    """Two open requests must not create the same role: IAM names ignore case."""
    name = target_arn.rsplit("/", 1)[-1].lower()
    account_id = target_arn.split(":")[4]
    for change in Change.objects.filter(
        type=Change.Type.ROLE_CREATE,
        account_id=account_id,
        request__status__in=OPEN_STATUSES,
    ).only("request_id", "target_arn"):
        if change.target_arn.rsplit("/", 1)[-1].lower() == name:
            return {"target_arn": f"Request #{change.request_id} already creates this role."}
    return {}


# --- clone -------------------------------------------------------------------------------


def _arns_moved(value: Any, source: str, target: str) -> Any:
    """`value` with the account `source` replaced by `target` wherever it names
    that account: in ARNs (arn:aws:iam::SOURCE:...) and as a bare account id."""
    if isinstance(value, dict):
        return {k: _arns_moved(v, source, target) for k, v in value.items()}
    if isinstance(value, list):
        return [_arns_moved(v, source, target) for v in value]
    if isinstance(value, str):
        if value == source:
            return target
        return re.sub(rf"(arn:[^:\s]*:[^:\s]*:[^:\s]*:){source}(?=:)", rf"\g<1>{target}", value)
    return value


def role_clone_payload(*, source: IamRole, account: AwsAccount, parts: set[str]) -> dict[str, Any]:
    """The payload of a creation that copies `parts` (keys of CLONE_PARTS) of
    `source` into `account`, with every ARN and account id of the source's
    account rewritten to `account`."""
    snapshot = role_snapshot(source)
    wanted = {CLONE_PARTS[part] for part in parts if part in CLONE_PARTS}
    payload = {key: snapshot[key] for key in CREATE_FIELDS if key in wanted}
    return _arns_moved(payload, source.account.account_id, account.account_id)


def role_clone_submit(
    *,
    requester: User,
    source: IamRole,
    account: AwsAccount,
    name: str,
    path: str,
    parts: set[str],
    justification: str,
    trust_policy: dict[str, Any] | None = None,
    dry_run: bool = False,
    findings_acknowledgement: str = "",
) -> PolicyRequest | ChangeSpec:
    """Request a copy of `source`: a creation whose parts are computed now, so the
    reviewer sees exactly what will be created. Without "trust" in `parts`, the
    copy is trusted as `trust_policy` says (a role needs a trust policy).
    iamportal's own roles are not
    copied: a copy would carry their trust and permissions to a role requests
    may change. Raises RequestInvalid."""
    if role_protected(source.arn):
        raise RequestInvalid({"role": protected_role_refusal(source.name)})
    payload = role_clone_payload(source=source, account=account, parts=parts)
    if "trust_policy" not in payload:
        if trust_policy is None:
            raise RequestInvalid(
                {"trust_preset": "A role needs a trust policy: copy it, or say who may assume it."}
            )
        payload["trust_policy"] = trust_policy
    justification = (justification or "").strip()
    if justification:
        justification = f"Copy of {source.arn}. {justification}"
    return role_create_submit(
        requester=requester,
        target_arn=new_role_arn(account=account, name=name, path=path),
        payload=payload,
        justification=justification,
        dry_run=dry_run,
        findings_acknowledgement=findings_acknowledgement,
    )


# --- delete and update -------------------------------------------------------------------


def role_delete_submit(
    *, requester: User, role: IamRole, confirmation: str, reason: str, dry_run: bool = False
) -> PolicyRequest | list[ChangeSpec]:
    """Request the deletion of `role`. `confirmation` must be its name; `reason`
    is the justification, and also acknowledges the deletion's own error
    finding (typing the name is the acknowledgement). Raises RequestInvalid."""
    return policy_request_changes_submit(
        requester=requester,
        role=role,
        changes=[
            {
                "type": Change.Type.ROLE_DELETE,
                "target_arn": role.arn,
                "payload": {"confirmation": confirmation},
            }
        ],
        justification=reason,
        dry_run=dry_run,
        findings_acknowledgement=reason,
    )


def role_update_submit(
    *,
    requester: User,
    role: IamRole,
    description: str | None,
    max_session_duration: int | None,
    justification: str,
    expires_at: datetime | None = None,
    dry_run: bool = False,
) -> PolicyRequest | list[ChangeSpec]:
    """Request a new description and/or maximum session duration for `role`
    (given as None: left as it is). A temporary change puts the old values
    back at `expires_at`. Raises RequestInvalid."""
    payload: dict[str, Any] = {}
    if description is not None and description != role.description:
        payload["description"] = description
    if max_session_duration is not None and max_session_duration != role.max_session_duration:
        payload["max_session_duration"] = max_session_duration
    if not payload:
        raise RequestInvalid(
            {"payload": "The role already has this description and session duration."}
        )
    return policy_request_changes_submit(
        requester=requester,
        role=role,
        changes=[{"type": Change.Type.ROLE_UPDATE, "target_arn": role.arn, "payload": payload}],
        justification=justification,
        expires_at=expires_at,
        dry_run=dry_run,
    )
