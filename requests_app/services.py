"""Business actions on permission requests: submitting one (or a dry run)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.models import IamRole
from requests_app.models import Change, PolicyRequest, RequestEvent

JUSTIFICATION_MAX_LENGTH = 5000
MAX_EXPIRY = timedelta(days=90)
INLINE_POLICIES_LIMIT = 10_240  # IAM's limit for all of a role's inline policies together
_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
# Lint findings that make a document unusable, as opposed to risky: these block a
# submission; everything else is shown to the requester and the reviewers.
BLOCKING_LINT_CODES = frozenset(
    {
        "invalid-json",
        "duplicate-key",
        "document-not-object",
        "unknown-document-key",
        "version-invalid",
        "statement-missing",
        "statement-wrong-type",
        "statement-empty",
        "statement-not-object",
        "unknown-statement-key",
        "sid-invalid",
        "duplicate-sid",
        "effect-missing",
        "effect-invalid",
        "action-missing",
        "action-and-notaction",
        "resource-missing",
        "resource-and-notresource",
        "principal-in-identity-policy",
        "wrong-type",
        "condition-malformed",
        "unknown-condition-operator",
        "malformed-action",
        "unknown-service",
        "malformed-arn",
        "policy-too-large",
    }
)


class RequestInvalid(ValueError):
    """Bad input for a request: `errors` maps a field to its user-facing message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class RequestPreview:
    """Exactly what a submission would create; a dry run stops here."""

    role: IamRole
    policy_name: str
    document: dict[str, Any]
    previous: dict[str, Any] | None
    justification: str
    expires_at: datetime | None
    findings: list[Any] = field(default_factory=list)

    @property
    def inline_size_after(self) -> int:
        current = self.role.inline_policies or {}
        others = {k: v for k, v in current.items() if k != self.policy_name}
        return inline_policies_size(others) + compact_size(self.document)


def compact_size(document: Any) -> int:
    return len(json.dumps(document, separators=(",", ":")))


def inline_policies_size(policies: dict[str, Any]) -> int:
    return sum(compact_size(doc) for doc in policies.values())


def default_policy_name(role: IamRole) -> str:
    stamp = timezone.now().strftime("%Y%m%d")
    taken = set(role.inline_policies or {})
    for n in range(1, 1000):
        name = f"iamportal-{stamp}-{n}"
        if name not in taken:
            return name
    return f"iamportal-{stamp}-{timezone.now():%H%M%S}"


def policy_request_preview(
    *,
    role: IamRole,
    document: dict[str, Any],
    justification: str,
    policy_name: str | None = None,
    expires_at: datetime | None = None,
) -> RequestPreview:
    """Validate a request and describe what it would create. Raises RequestInvalid."""
    from requests_app.lint import policy_lint

    errors: dict[str, str] = {}
    justification = (justification or "").strip()
    if not justification:
        errors["justification"] = "Say why you need this access: reviewers decide on it."
    elif len(justification) > JUSTIFICATION_MAX_LENGTH:
        errors["justification"] = (
            f"Keep the justification under {JUSTIFICATION_MAX_LENGTH} characters."
        )
    name = (policy_name or "").strip() or default_policy_name(role)
    if not _POLICY_NAME.match(name):
        errors["policy_name"] = "A policy name is 1-128 letters, digits or +=,.@_- characters."
    if expires_at is not None:
        now = timezone.now()
        if expires_at <= now:
            errors["expires_at"] = "The expiry must be in the future."
        elif expires_at > now + MAX_EXPIRY:
            errors["expires_at"] = "Temporary access lasts at most 90 days."
    others = {k: v for k, v in (role.inline_policies or {}).items() if k != name}
    findings = policy_lint(document, other_inline_policies_size=inline_policies_size(others))
    blocking = [f for f in findings if f.severity == "error" and f.code in BLOCKING_LINT_CODES]
    if blocking:
        errors["document"] = "; ".join(f"{f.title}: {f.detail}" for f in blocking[:5])
    if errors:
        raise RequestInvalid(errors)
    return RequestPreview(
        role=role,
        policy_name=name,
        document=document,
        previous=(role.inline_policies or {}).get(name),
        justification=justification,
        expires_at=expires_at,
        findings=findings,
    )


def policy_request_submit(*, requester: User, preview: RequestPreview) -> PolicyRequest:
    """Create the pending request and its change from a validated preview."""
    role = preview.role
    with transaction.atomic():
        request = PolicyRequest.objects.create(
            requester=requester,
            role=role,
            role_arn=role.arn,
            account=role.account,
            justification=preview.justification,
            expires_at=preview.expires_at,
        )
        Change.objects.create(
            request=request,
            position=0,
            type=Change.Type.INLINE_POLICY_PUT,
            target_arn=role.arn,
            account_id=role.account.account_id,
            payload={"policy_name": preview.policy_name, "document": preview.document},
            previous=preview.previous,
        )
        RequestEvent.objects.create(
            request=request,
            actor=requester,
            kind=RequestEvent.Kind.SUBMITTED,
            message=preview.justification,
            data={"findings": [f.as_dict() for f in preview.findings]},
        )
    return request
