"""The wizard's draft: what a requester put together for one role before
submitting it.

Drafts live in the session, one per role, bounded in number and size; nothing
reaches the database before "Submit". A draft is a list of permissions (asked
in plain terms, or a filled-in template) or the JSON the requester edited by
hand, and the policy it makes.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

from accounts.models import AwsAccount, CloudResource, IamRole
from iamportal.parsers import json_load_bounded
from requests_app.forms import intent_from_dict
from requests_app.policy.arns import ARN_PARTS, QUEUE_OR_TOPIC_ARN, ROLE_ARN
from requests_app.policy.generate import IntentError, PolicyNote, policy_generate_with_notes
from requests_app.policy.templates import policy_merge

# The drafts are kept in the session row: a few roles at a time, each with a
# bounded list of permissions and a bounded size.
SESSION_KEY = "requests_app.drafts"
MAX_DRAFTS = 5
MAX_PERMISSIONS = 20
DRAFT_MAX_CHARS = 120_000
EMPTY_POLICY = {"Version": "2012-10-17", "Statement": []}


def policy_text(document: Any) -> str:
    """A policy as the pages show and edit it."""
    return json.dumps(document, indent=2, default=str)


@dataclass
class Draft:
    """What the requester put together so far for one role. `permissions` are
    {"kind": "intent", "label", "intent"} or {"kind": "template", "label",
    "document"}; `raw` is the JSON the requester edited by hand, which then
    replaces what the permissions generate."""

    permissions: list[dict[str, Any]] = field(default_factory=list)
    raw: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"permissions": self.permissions, "raw": self.raw, "touched": time.time()}


def policy_empty(document: Any) -> bool:
    """Whether a policy document grants nothing because it has no statement."""
    if not isinstance(document, dict):
        return False
    statements = document.get("Statement")
    return statements is None or statements == [] or statements == {}


@dataclass
class DraftPolicy:
    document: dict[str, Any] | None
    text: str
    notes: list[PolicyNote] = field(default_factory=list)
    error: str = ""
    raw: bool = False

    @property
    def empty(self) -> bool:
        return policy_empty(self.document)


def _drafts(session: SessionBase) -> dict[str, Any]:
    drafts = session.get(SESSION_KEY)
    return drafts if isinstance(drafts, dict) else {}


def _well_formed(permission: object) -> bool:
    # A draft saved by an older version of these pages is dropped piece by piece.
    if not isinstance(permission, dict):
        return False
    if permission.get("kind") == "intent":
        return isinstance(permission.get("intent"), dict)
    return permission.get("kind") == "template" and isinstance(permission.get("document"), dict)


def draft_load(*, session: SessionBase, role: IamRole) -> Draft:
    data = _drafts(session).get(str(role.pk))
    if not isinstance(data, dict):
        return Draft()
    permissions = [p for p in data.get("permissions") or [] if _well_formed(p)]
    raw = data.get("raw")
    return Draft(permissions=permissions, raw=raw if isinstance(raw, str) else None)


def draft_too_big(draft: Draft) -> str:
    """Why `draft` cannot be kept, or nothing when it can."""
    if len(draft.permissions) > MAX_PERMISSIONS:
        return f"A request holds at most {MAX_PERMISSIONS} permissions: submit these first."
    if len(json.dumps(draft.as_dict())) > DRAFT_MAX_CHARS:
        return "This request has grown too big: submit what you have, then start another."
    return ""


def draft_save(*, session: SessionBase, role: IamRole, draft: Draft) -> None:
    drafts = _drafts(session)
    drafts[str(role.pk)] = draft.as_dict()
    if len(drafts) > MAX_DRAFTS:
        oldest = sorted(drafts, key=lambda key: drafts[key].get("touched", 0))
        for key in oldest[: len(drafts) - MAX_DRAFTS]:
            del drafts[key]
    session[SESSION_KEY] = drafts


def draft_drop(*, session: SessionBase, role: IamRole) -> None:
    drafts = _drafts(session)
    if drafts.pop(str(role.pk), None) is not None:
        session[SESSION_KEY] = drafts


def draft_policy(draft: Draft) -> DraftPolicy:
    """The policy the draft makes: the hand-edited JSON, or the generated
    permissions merged with the filled-in templates."""
    if draft.raw is not None:
        try:
            parsed = json_load_bounded(draft.raw)
        except ValueError as exc:
            return DraftPolicy(document=None, text=draft.raw, error=str(exc), raw=True)
        if not isinstance(parsed, dict):
            return DraftPolicy(
                document=None, text=draft.raw, error="A policy is a JSON object.", raw=True
            )
        return DraftPolicy(document=parsed, text=draft.raw, raw=True)
    if not draft.permissions:
        return DraftPolicy(document=None, text="", error="Add at least one permission.")
    intents = [intent_from_dict(p["intent"]) for p in draft.permissions if p["kind"] == "intent"]
    documents = [p["document"] for p in draft.permissions if p["kind"] == "template"]
    notes: list[PolicyNote] = []
    if intents:
        try:
            generated = policy_generate_with_notes(intents)
        except IntentError as exc:
            return DraftPolicy(document=None, text="", error=exc.message)
        documents.insert(0, generated.document)
        notes = list(generated.notes)
    document = policy_merge(documents)
    return DraftPolicy(document=document, text=policy_text(document), notes=notes)


ALREADY_IN_DRAFT = "This permission is already in the request."


def draft_add(draft: Draft, permission: dict[str, Any]) -> str:
    """Add a permission to the draft; returns an error message instead when
    it is already there, the draft is full, or the permissions together no
    longer make a policy."""

    def bare(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k != "label"}

    if any(bare(p) == bare(permission) for p in draft.permissions):
        return ALREADY_IN_DRAFT
    candidate = Draft(permissions=[*draft.permissions, permission], raw=draft.raw)
    error = draft_too_big(candidate) or draft_policy(Draft(candidate.permissions)).error
    if not error:
        draft.permissions = candidate.permissions
    return error


# Resources checked against the inventory per policy: a policy at IAM's size
# limit names far fewer.
RESOURCES_CHECKED_MAX = 200
_WILDCARD = ("*", "?", "${")


@dataclass(frozen=True)
class InventoryWarning:
    """A resource the policy names that the inventory does not hold: maybe a
    typo, maybe created since the last sync. A warning, never a refusal."""

    arn: str
    message: str


def _named_resources(document: Any) -> list[str]:
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    found: dict[str, None] = {}
    for statement in statements if isinstance(statements, list) else []:
        if not isinstance(statement, dict):
            continue
        resources = statement.get("Resource")
        for resource in [resources] if isinstance(resources, str) else resources or []:
            if isinstance(resource, str):
                found.setdefault(resource, None)
    return list(found)[:RESOURCES_CHECKED_MAX]


def _exact(match: re.Match[str]) -> bool:
    """Whether an ARN names its resource exactly: for a bucket, its name (object
    keys may hold wildcards); for anything else, the whole ARN."""
    if match.group("service") == "s3":
        named = match.group("resource").split("/", 1)[0]
    else:
        named = match.group(0)
    return not any(wildcard in named for wildcard in _WILDCARD)


def inventory_warnings(document: Any) -> list[InventoryWarning]:
    """The resources `document` names exactly that the inventory does not know:
    buckets, queues, topics and roles it would hold, and ARNs in accounts
    iamportal does not manage. Wildcards and other services' resources, which
    the inventory does not hold, are not judged."""
    parsed = [(arn, ARN_PARTS.fullmatch(arn)) for arn in _named_resources(document)]
    arns = [(arn, match) for arn, match in parsed if match is not None and _exact(match)]
    if not arns:
        return []
    accounts = {match.group("account") for _, match in arns if match.group("account")}
    managed = set(
        AwsAccount.objects.filter(account_id__in=accounts, enabled=True).values_list(
            "account_id", flat=True
        )
    )
    buckets = {
        arn: arn.split(":", 5)[5].split("/", 1)[0] for arn, m in arns if m["service"] == "s3"
    }
    known_buckets = set(
        CloudResource.objects.filter(
            type=CloudResource.Type.S3, name__in=set(buckets.values()), account__enabled=True
        ).values_list("name", flat=True)
    )
    queues_and_topics = [arn for arn, _ in arns if QUEUE_OR_TOPIC_ARN.fullmatch(arn)]
    roles = [arn for arn, _ in arns if ROLE_ARN.fullmatch(arn)]
    known = set(
        CloudResource.objects.filter(arn__in=queues_and_topics).values_list("arn", flat=True)
    ) | set(IamRole.objects.filter(arn__in=roles).values_list("arn", flat=True))
    warnings = []
    warned: set[str] = set()
    for arn, match in arns:
        account = match.group("account")
        if account.isdigit() and len(account) == 12 and account not in managed:
            warnings.append(
                InventoryWarning(
                    arn,
                    f"{arn} is in account {account}, which iamportal does not manage: "
                    "check the account id.",
                )
            )
        elif arn in buckets and buckets[arn] not in known_buckets:
            if buckets[arn] in warned:
                continue  # the bucket and its objects: one warning
            warned.add(buckets[arn])
            warnings.append(
                InventoryWarning(
                    arn,
                    f"The bucket {buckets[arn]} is not in the inventory: check its name, "
                    "or it may be newer than the last sync.",
                )
            )
        elif (arn in queues_and_topics or arn in roles) and arn not in known:
            warnings.append(
                InventoryWarning(
                    arn,
                    f"{arn} is not in the inventory: check the ARN, or it may be newer "
                    "than the last sync.",
                )
            )
    return warnings
