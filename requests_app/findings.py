"""Findings on a whole request, for every change type, and on what the role can
do once the request is applied.

`policy_lint` judges one identity policy on its own. A request is more than
that: a managed policy to attach, a trust policy, a bucket policy, a boundary
removed; and a policy that is harmless alone can complete an escalation path
with what the role already has (`iam:PassRole` today, `ec2:RunInstances`
tomorrow). `request_findings` answers for all of it:

- each change's own findings: the lint of the identity policies it writes
  (with JSON Pointer locations into them), the managed policy it attaches
  (risky AWS-managed policies by name, others by the lint of their document
  in the inventory), the principals of the trust or resource policy it
  writes, the boundary it removes, the access tags it sets;
- the effective result: the role's inline policies and attached managed
  policies, with the changes of its other approved but not yet applied
  requests, then this request's changes, checked for escalation paths that
  only the combination completes. Those findings name the existing policies
  that contribute.

The request stores what this returns at submit and after each edit, so the
review queue shows the highest severity without linting again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

from django.conf import settings

from accounts.models import AwsAccount, IamRole, ManagedPolicy
from requests_app.models import Change, PolicyRequest
from requests_app.policy.aws_managed import AWS_MANAGED_DOCUMENTS
from requests_app.policy.limits import compact_size
from requests_app.policy.lint import (
    action_display_name,
    escalation_paths,
    policy_grants,
    policy_lint,
)
from requests_app.policy.lint_rules import RULES, Severity

RISK_NONE = "none"
_RANK = {"error": 0, "warning": 1, "info": 2}

FINDING_RULES: dict[str, tuple[Severity, str]] = {
    "escalation-together": (
        "error",
        "Privilege escalation together with what the role already has",
    ),
    "managed-policy-admin": ("error", "Attaches full administrator access"),
    "managed-policy-broad": ("error", "Attaches near-administrator access"),
    "managed-policy-iam-write": ("error", "Attaches a policy that writes IAM"),
    "managed-policy-escalation": ("error", "Attaches a policy that allows privilege escalation"),
    "managed-policy-not-action": ("error", "Attaches a policy with Allow and NotAction"),
    "managed-policy-not-resource": ("error", "Attaches a policy with Allow and NotResource"),
    "trust-public": ("error", "Anyone may assume the role"),
    "trust-external-account": ("error", "Trusts an account outside the inventory"),
    "trust-federated-unconditioned": ("error", "Federated principal without its conditions"),
    "trust-service-unconditioned": ("info", "Service principal without a source condition"),
    "public-resource-policy": ("error", "Public resource policy"),
    "resource-external-account": ("warning", "Grants an account outside the inventory"),
    "allow-with-notprincipal": ("error", "Allow with NotPrincipal"),
    "boundary-removed": ("error", "Removes the permissions boundary"),
    "access-tags": ("warning", "Changes who may use the role"),
    "role-delete": ("error", "Deletes the role"),
}

# AWS-managed policies are not in the inventory (it holds each account's own
# policies): the risky ones are known by name. The documents iamportal knows
# (requests_app/policy/aws_managed.py), reduced to what the escalation check
# needs, stand in for the real ones.
AWS_MANAGED_RISKY: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "AdministratorAccess": (
        "managed-policy-admin",
        "allows every action on every resource: full administrator access to the account",
        AWS_MANAGED_DOCUMENTS["AdministratorAccess"],
    ),
    "PowerUserAccess": (
        "managed-policy-broad",
        "allows every action of every service except IAM, Organizations and account "
        "management, including starting instances, functions and containers that run "
        "with other roles",
        AWS_MANAGED_DOCUMENTS["PowerUserAccess"],
    ),
    "IAMFullAccess": (
        "managed-policy-iam-write",
        "allows every IAM action: the role can give itself, or anyone, any permission",
        AWS_MANAGED_DOCUMENTS["IAMFullAccess"],
    ),
    "AWSOrganizationsFullAccess": (
        "managed-policy-broad",
        "allows every Organizations action: creating accounts, moving them and changing "
        "the service control policies that cap every account",
        None,
    ),
    "AdministratorAccess-Amplify": (
        "managed-policy-iam-write",
        "creates roles and passes them to the services Amplify deploys",
        None,
    ),
    "AdministratorAccess-AWSElasticBeanstalk": (
        "managed-policy-iam-write",
        "creates roles and passes them to the instances Elastic Beanstalk starts",
        None,
    ),
}

# What the lint of an attached policy's document means for the attachment.
_ATTACHED_CODES = {
    "full-admin": "managed-policy-admin",
    "privilege-escalation": "managed-policy-escalation",
    "allow-with-notaction": "managed-policy-not-action",
    "allow-with-notresource": "managed-policy-not-resource",
}

# Condition keys that narrow a "*" principal to known callers.
RESTRICTING_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:SourceArn",
        "aws:SourceAccount",
        "aws:SourceOwner",
        "aws:SourceOrgID",
        "aws:SourceOrgPaths",
        "aws:SourceVpc",
        "aws:SourceVpce",
        "aws:PrincipalOrgID",
        "aws:PrincipalOrgPaths",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
    )
)
# Services that assume a role only for the account's own compute: confused-
# deputy conditions are not expected for them.
_COMPUTE_SERVICES = frozenset(
    {
        "ec2.amazonaws.com",
        "lambda.amazonaws.com",
        "edgelambda.amazonaws.com",
        "ecs-tasks.amazonaws.com",
        "eks.amazonaws.com",
        "eks-fargate-pods.amazonaws.com",
        "pods.eks.amazonaws.com",
    }
)
_ACCESS_TAG_SETTINGS = ("IAMPORTAL_AUTH_TAG", "IAMPORTAL_AUTH_CLI_TAG")
_ACCOUNT_IN_ARN = re.compile(r"arn:[a-z-]+:(?:iam|sts)::([0-9]{12}):")
_OIDC_PROVIDER = re.compile(r"arn:[a-z-]+:iam::[0-9]{12}:oidc-provider/(.+)")
_SAML_PROVIDER = re.compile(r"arn:[a-z-]+:iam::[0-9]{12}:saml-provider/.+")
_LISTED = 5


@dataclass(frozen=True)
class ChangeFinding:
    """A finding about one change of a request (`change`: its position)."""

    change: int
    severity: Severity
    code: str
    title: str
    detail: str
    location: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChangeLike(Protocol):
    """A change to judge: a stored `Change`, or a validated `ChangeSpec`."""

    type: str
    target_arn: str
    payload: Any
    previous: Any


def findings_risk(findings: Iterable[ChangeFinding | dict[str, Any]]) -> str:
    """The highest severity among the findings: error, warning, info, or none."""
    severities = {
        f.severity if isinstance(f, ChangeFinding) else str(f.get("severity")) for f in findings
    }
    for severity in ("error", "warning", "info"):
        if severity in severities:
            return severity
    return RISK_NONE


def findings_errors(findings: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The error-level ones, as stored: what an acknowledgement covers."""
    return [f for f in findings if isinstance(f, dict) and f.get("severity") == "error"]


def request_findings(
    *,
    role: IamRole | None,
    changes: Sequence[ChangeLike],
    exclude_request_id: int | None = None,
) -> list[ChangeFinding]:
    """Every finding on the changes (by their position in `changes`), most severe
    first within each change. `exclude_request_id` is the request the changes
    belong to, when it exists already: it is not one of "the others"."""
    found: list[ChangeFinding] = []
    known_accounts = set(AwsAccount.objects.values_list("account_id", flat=True))
    for position, change in enumerate(changes):
        found += _change_findings(position, change, role=role, known_accounts=known_accounts)
    if role is not None:
        found += _effective_findings(role, changes, exclude_request_id=exclude_request_id)
    return sorted(found, key=lambda f: (f.change, _RANK[f.severity]))


# --- one change at a time -----------------------------------------------------------------


def _finding(
    position: int, code: str, detail: str, location: str = "", severity: Severity | None = None
) -> ChangeFinding:
    default, title = FINDING_RULES[code] if code in FINDING_RULES else RULES[code]
    return ChangeFinding(position, severity or default, code, title, detail, location)


def _payload(change: ChangeLike) -> dict[str, Any]:
    return change.payload if isinstance(change.payload, dict) else {}


def _change_findings(
    position: int, change: ChangeLike, *, role: IamRole | None, known_accounts: set[str]
) -> list[ChangeFinding]:
    payload = _payload(change)
    kind = change.type
    if kind == Change.Type.INLINE_POLICY_PUT:
        name = payload.get("policy_name")
        current = (role.inline_policies or {}) if role is not None else {}
        others = sum(compact_size(doc) for key, doc in current.items() if key != name)
        return _linted(position, payload.get("document"), other_inline_policies_size=others)
    if kind in (Change.Type.MANAGED_POLICY_CREATE, Change.Type.MANAGED_POLICY_VERSION):
        return _linted(position, payload.get("document"))
    if kind == Change.Type.MANAGED_POLICY_ATTACH:
        return _attach_findings(position, str(payload.get("policy_arn", "")))
    if kind in (Change.Type.TRUST_POLICY_UPDATE, Change.Type.RESOURCE_POLICY_PUT):
        return _principal_findings(
            position,
            payload,
            trust=kind == Change.Type.TRUST_POLICY_UPDATE,
            known_accounts=known_accounts,
        )
    if kind == Change.Type.PERMISSIONS_BOUNDARY_DELETE:
        return [
            _finding(
                position,
                "boundary-removed",
                f"The boundary {change.previous or ''} caps what the role can do whatever its "
                "policies allow; without it, every policy attached to the role counts in full.",
            )
        ]
    if kind == Change.Type.ROLE_CREATE:
        return _create_findings(position, payload, known_accounts=known_accounts)
    if kind == Change.Type.ROLE_DELETE:
        return [
            _finding(
                position,
                "role-delete",
                "Everything that uses the role stops working: its sessions, services and "
                "instances that assume it, and other accounts that trust it. IAM cannot undelete "
                "a role; iamportal keeps its parts in this request.",
            )
        ]
    if kind == Change.Type.TAGS_PUT and isinstance(payload.get("tags"), dict):
        access = {str(getattr(settings, name)).lower() for name in _ACCESS_TAG_SETTINGS}
        keys = sorted(key for key in payload["tags"] if str(key).lower() in access)
        if keys:
            return [
                _finding(
                    position,
                    "access-tags",
                    f"The tags {', '.join(keys)} decide who may use the role through "
                    "iamportal: check the groups and people they name.",
                )
            ]
    return []


def _create_findings(
    position: int, payload: dict[str, Any], *, known_accounts: set[str]
) -> list[ChangeFinding]:
    """A new role: its trust policy, each inline policy and attachment, its access tags."""
    found = [
        replace(f, location=f"/trust_policy{f.location}")
        for f in _principal_findings(
            position,
            {"document": payload.get("trust_policy")},
            trust=True,
            known_accounts=known_accounts,
        )
    ]
    raw = payload.get("inline_policies")
    inline: dict[str, Any] = raw if isinstance(raw, dict) else {}
    for name, document in inline.items():
        others = sum(compact_size(doc) for key, doc in inline.items() if key != name)
        found += [
            replace(f, location=f"/inline_policies/{name}{f.location}")
            for f in _linted(position, document, other_inline_policies_size=others)
        ]
    arns = payload.get("managed_policy_arns")
    for arn in arns if isinstance(arns, list) else []:
        found += _attach_findings(position, str(arn))
    tags = payload.get("tags")
    access = {str(getattr(settings, name)).lower() for name in _ACCESS_TAG_SETTINGS}
    keys = sorted(k for k in tags if str(k).lower() in access) if isinstance(tags, dict) else []
    if keys:
        found.append(
            _finding(
                position,
                "access-tags",
                f"The tags {', '.join(keys)} decide who may use the new role through "
                "iamportal: check the groups and people they name.",
            )
        )
    return found


def _linted(position: int, document: Any, **kwargs: Any) -> list[ChangeFinding]:
    if not isinstance(document, dict):
        return []
    return [
        ChangeFinding(position, f.severity, f.code, f.title, f.detail, f.location)
        for f in policy_lint(document, **kwargs)
    ]


def _policy_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _attach_findings(position: int, arn: str) -> list[ChangeFinding]:
    name = _policy_name(arn)
    if ":iam::aws:policy/" in arn and name in AWS_MANAGED_RISKY:
        code, why, _ = AWS_MANAGED_RISKY[name]
        return [_finding(position, code, f"The AWS-managed policy {name} {why}.")]
    policy = ManagedPolicy.objects.filter(arn=arn).only("document").first()
    if policy is None or not isinstance(policy.document, dict):
        return []
    found = []
    for lint_finding in policy_lint(policy.document):
        attached_code = _ATTACHED_CODES.get(lint_finding.code)
        if attached_code is not None and lint_finding.severity == "error":
            found.append(
                _finding(
                    position,
                    attached_code,
                    f"The managed policy {name}, as the inventory knows it: {lint_finding.detail}",
                )
            )
    return found


def _statements(document: Any) -> list[tuple[str, Any]]:
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement")
    if isinstance(statements, dict):
        return [("/Statement", statements)]
    if isinstance(statements, list):
        return [(f"/Statement/{index}", s) for index, s in enumerate(statements)]
    return []


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _condition_keys(statement: dict[str, Any]) -> set[str]:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return set()
    return {
        str(key).lower() for block in condition.values() if isinstance(block, dict) for key in block
    }


def _account_of(principal: str) -> str | None:
    if re.fullmatch(r"[0-9]{12}", principal):
        return principal
    match = _ACCOUNT_IN_ARN.match(principal)
    return match.group(1) if match else None


def _principal_findings(
    position: int, payload: dict[str, Any], *, trust: bool, known_accounts: set[str]
) -> list[ChangeFinding]:
    # Merged statements are this request's; the rest of the policy was there
    # before and is not its doing. A whole new document is all its doing.
    if "statements" in payload:
        located = [
            (f"/statements/{index}", s) for index, s in enumerate(_strings_or_dicts(payload))
        ]
    else:
        located = _statements(payload.get("document"))
    found: list[ChangeFinding] = []
    for location, statement in located:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        found += _statement_findings(
            position, location, statement, trust=trust, known_accounts=known_accounts
        )
    return found


def _strings_or_dicts(payload: dict[str, Any]) -> list[Any]:
    statements = payload.get("statements")
    return statements if isinstance(statements, list) else []


def _statement_findings(
    position: int,
    location: str,
    statement: dict[str, Any],
    *,
    trust: bool,
    known_accounts: set[str],
) -> list[ChangeFinding]:
    found: list[ChangeFinding] = []
    keys = _condition_keys(statement)
    what = "the role" if trust else "the resource"
    if "NotPrincipal" in statement:
        found.append(
            _finding(
                position,
                "allow-with-notprincipal",
                f"Allow with NotPrincipal lets everyone except the listed principals use {what}, "
                "including anonymous callers and every other AWS account. Name the principals "
                "in Principal instead.",
                f"{location}/NotPrincipal",
            )
        )
    if "NotAction" in statement:
        found.append(
            _finding(
                position,
                "allow-with-notaction",
                "Allow with NotAction grants every action except the listed ones, including "
                "actions AWS adds later. List the actions in Action instead.",
                f"{location}/NotAction",
            )
        )
    if not trust and "NotResource" in statement:
        found.append(
            _finding(
                position,
                "allow-with-notresource",
                "Allow with NotResource grants the actions on every resource except the listed "
                "ones. List the resources in Resource instead.",
                f"{location}/NotResource",
            )
        )
    principal = statement.get("Principal")
    if principal is None:
        return found
    where = f"{location}/Principal"
    by_type: dict[str, list[str]] = (
        {"AWS": ["*"]}
        if principal == "*"
        else {str(k): _strings(v) for k, v in principal.items()}
        if isinstance(principal, dict)
        else {}
    )
    aws = by_type.get("AWS", [])
    if "*" in aws and not keys & RESTRICTING_KEYS:
        if trust:
            found.append(
                _finding(
                    position,
                    "trust-public",
                    'A "*" principal lets any AWS identity, in any account, assume the role. '
                    "Name the accounts or roles that need it.",
                    where,
                )
            )
        else:
            found.append(
                _finding(
                    position,
                    "public-resource-policy",
                    'A "*" principal without a condition that limits it (aws:SourceArn, '
                    "aws:SourceAccount, aws:PrincipalOrgID, aws:SourceVpce...) makes the "
                    "resource public: anyone, in any account, may use these actions.",
                    where,
                )
            )
    outside = sorted(
        {
            account
            for value in aws
            if (account := _account_of(value)) is not None and account not in known_accounts
        }
    )
    if outside:
        shown = ", ".join(outside[:_LISTED])
        if trust:
            conditioned = bool(keys)
            found.append(
                _finding(
                    position,
                    "trust-external-account",
                    f"Account {shown} is not one iamportal manages: identities there may assume "
                    "the role"
                    + (
                        " (with the statement's conditions). Check who owns the account."
                        if conditioned
                        else ", with no condition such as sts:ExternalId. Check who owns the "
                        "account and require an external id."
                    ),
                    where,
                    severity="warning" if conditioned else None,
                )
            )
        else:
            found.append(
                _finding(
                    position,
                    "resource-external-account",
                    f"Account {shown} is not one iamportal manages: identities there get these "
                    "actions on the resource. Check who owns the account.",
                    where,
                )
            )
    if trust:
        for provider in by_type.get("Federated", []):
            found += _federated_findings(position, where, provider, keys)
        services = [s for s in by_type.get("Service", []) if s.lower() not in _COMPUTE_SERVICES]
        if services and not keys & RESTRICTING_KEYS:
            found.append(
                _finding(
                    position,
                    "trust-service-unconditioned",
                    f"{', '.join(sorted(services)[:_LISTED])} may assume the role on behalf of "
                    "any account that uses the service. Add aws:SourceAccount or aws:SourceArn "
                    "so that only this account's resources can.",
                    where,
                )
            )
    return found


def _federated_findings(
    position: int, where: str, provider: str, keys: set[str]
) -> list[ChangeFinding]:
    oidc = _OIDC_PROVIDER.fullmatch(provider)
    if oidc is not None or ("." in provider and not _SAML_PROVIDER.fullmatch(provider)):
        host = (oidc.group(1) if oidc else provider).lower()
        needed = [f"{host}:aud", f"{host}:sub"] if oidc else [f"{host}:aud"]
        missing = [key for key in needed if key.lower() not in keys]
        if missing:
            return [
                _finding(
                    position,
                    "trust-federated-unconditioned",
                    f"Any token {host} issues could assume the role: for GitHub Actions, any "
                    f"repository's workflow. Add conditions on {' and '.join(missing)} naming "
                    "the audience and the subjects (repositories, service accounts) allowed.",
                    where,
                )
            ]
        return []
    if _SAML_PROVIDER.fullmatch(provider) and "saml:aud" not in keys:
        return [
            _finding(
                position,
                "trust-federated-unconditioned",
                f"{provider} has no condition on SAML:aud: assertions meant for another "
                "service provider could be used to assume the role.",
                where,
                severity="warning",
            )
        ]
    return []


# --- the effective result ------------------------------------------------------------


@dataclass
class _Source:
    """An identity policy of the role after (or before) the request."""

    label: str
    document: Any
    position: int | None = None  # the request's change that brings it, if any


def _inventory_document(arn: str) -> Any:
    name = _policy_name(arn)
    if ":iam::aws:policy/" in arn and name in AWS_MANAGED_RISKY:
        return AWS_MANAGED_RISKY[name][2]
    policy = ManagedPolicy.objects.filter(arn=arn).only("document").first()
    return policy.document if policy is not None else None


class _Role:
    """The role's identity policies as they would be, change after change."""

    def __init__(self, role: IamRole) -> None:
        self.inline: dict[str, _Source] = {
            name: _Source(f'inline policy "{name}" (already on the role)', document)
            for name, document in (role.inline_policies or {}).items()
        }
        self.attached: dict[str, _Source] = {}
        for item in role.managed_policies or []:
            arn = str(item.get("arn", "")) if isinstance(item, dict) else ""
            if arn:
                self.attached[arn] = _Source(f"managed policy {_policy_name(arn)} (attached)", None)
        # New versions and new policies of the request or of the others.
        self.documents: dict[str, _Source] = {}

    def copy(self) -> _Role:
        clone = object.__new__(_Role)
        clone.inline = dict(self.inline)
        clone.attached = dict(self.attached)
        clone.documents = dict(self.documents)
        return clone

    def apply(self, change: ChangeLike, *, role_arn: str, label: str, position: int | None) -> None:
        payload = _payload(change)
        kind = change.type
        if kind in (Change.Type.MANAGED_POLICY_CREATE, Change.Type.MANAGED_POLICY_VERSION):
            name = _policy_name(change.target_arn)
            self.documents[change.target_arn] = _Source(
                f"managed policy {name} ({label})", payload.get("document"), position
            )
            return
        if change.target_arn != role_arn:
            return
        if kind == Change.Type.INLINE_POLICY_PUT:
            name = str(payload.get("policy_name", ""))
            self.inline[name] = _Source(
                f'inline policy "{name}" ({label})', payload.get("document"), position
            )
        elif kind == Change.Type.INLINE_POLICY_DELETE:
            self.inline.pop(str(payload.get("policy_name", "")), None)
        elif kind == Change.Type.MANAGED_POLICY_ATTACH:
            arn = str(payload.get("policy_arn", ""))
            self.attached[arn] = _Source(
                f"managed policy {_policy_name(arn)} ({label})", None, position
            )
        elif kind == Change.Type.MANAGED_POLICY_DETACH:
            self.attached.pop(str(payload.get("policy_arn", "")), None)

    def sources(self) -> list[_Source]:
        found = list(self.inline.values())
        for arn, attachment in self.attached.items():
            version = self.documents.get(arn)
            document = version.document if version is not None else _inventory_document(arn)
            # A new version is the request's doing even when the attachment is not.
            position = version.position if version is not None else attachment.position
            label = version.label if version is not None else attachment.label
            found.append(_Source(label, document, position))
        return [source for source in found if isinstance(source.document, dict)]


def _others_pending(role: IamRole, exclude_request_id: int | None) -> list[tuple[int, Change]]:
    """Changes of the role's other approved requests that are not applied yet."""
    rows = (
        Change.objects.filter(
            request__role_arn=role.arn,
            request__status__in=[PolicyRequest.Status.APPROVED, PolicyRequest.Status.APPLYING],
            status=Change.Status.PENDING,
        )
        .order_by("request_id", "position", "id")
        .only("type", "target_arn", "payload", "previous", "request_id")
    )
    if exclude_request_id is not None:
        rows = rows.exclude(request_id=exclude_request_id)
    return [(row.request_id, row) for row in rows]


def _grants(sources: list[_Source]) -> tuple[dict[str, _Source], dict[str, str]]:
    """Which source first grants each sensitive action (and where in it)."""
    by_action: dict[str, _Source] = {}
    where: dict[str, str] = {}
    denied: set[str] = set()
    # The request's own policies first: when it grants what the role has
    # already, the finding points at the request's statement.
    for source in sorted(sources, key=lambda s: s.position is None):
        granted, taken = policy_grants(source.document)
        denied |= taken
        for name, location in granted.items():
            if name not in by_action:
                by_action[name] = source
                where[name] = location
    for name in denied:
        by_action.pop(name, None)
    return by_action, where


def _effective_findings(
    role: IamRole, changes: Sequence[ChangeLike], *, exclude_request_id: int | None
) -> list[ChangeFinding]:
    before = _Role(role)
    for request_id, other in _others_pending(role, exclude_request_id):
        before.apply(
            other,
            role_arn=role.arn,
            label=f"request #{request_id}, approved, not yet applied",
            position=None,
        )
    after = before.copy()
    for position, change in enumerate(changes):
        after.apply(change, role_arn=role.arn, label="this request", position=position)
    after_sources = after.sources()
    own = [source for source in after_sources if source.position is not None]
    if not own:
        return []
    had, _ = _grants(before.sources())
    has, where = _grants(after_sources)
    paths: dict[tuple[int, str], list[str]] = {}
    for names, reason in escalation_paths():
        if not all(name in has for name in names) or all(name in had for name in names):
            continue
        contributors = {id(has[name]) for name in names}
        if len(contributors) == 1:
            continue  # one policy alone: its own lint says so, at its statement
        first_own = next((name for name in names if has[name].position is not None), None)
        if first_own is None:
            continue
        source = has[first_own]
        assert source.position is not None
        shown = " with ".join(
            f"{action_display_name(name)} (from {has[name].label})" for name in names
        )
        location = where[first_own] if _is_inline(changes, source.position) else ""
        paths.setdefault((source.position, location), []).append(f"{shown}: {reason}")
    found = []
    for (position, location), described in paths.items():
        found.append(
            _finding(
                position,
                "escalation-together",
                "Together with what the role already has, this request lets the role give "
                f"itself more permissions than it was granted: {'; '.join(described)}. Remove "
                "one side, or limit it to resources that cannot be used this way.",
                location,
            )
        )
    return found


def _is_inline(changes: Sequence[ChangeLike], position: int) -> bool:
    """Whether the change's document is the request's own text, so that a JSON
    Pointer into it means something to the reader."""
    return changes[position].type in (
        Change.Type.INLINE_POLICY_PUT,
        Change.Type.MANAGED_POLICY_VERSION,
        Change.Type.MANAGED_POLICY_CREATE,
    )
