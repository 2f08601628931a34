"""The role part editors: one form per part of a role (an inline policy, the
attached managed policies, the trust policy, the tags, the permissions
boundary), each turning what the requester typed into the part as it should
be. `requests_app.services.role_part_changes` turns that into the changes of an
ordinary request; the page shows their diff and findings before submitting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.urls import reverse_lazy

from accounts.models import IamRole, ManagedPolicy, RoleVersion
from accounts.selectors import role_protected
from iamportal.parsers import json_load_bounded
from requests_app.forms import DOCUMENT_MAX_LENGTH, RestoreForm
from requests_app.policy.limits import ARN_MAX_LENGTH
from requests_app.policy.trust import PRESETS, PresetInvalid, trust_statement, trust_with
from requests_app.services import JUSTIFICATION_MAX_LENGTH
from requests_app.wizard import policy_text

PARTS = {
    "inline": RoleVersion.Part.INLINE,
    "managed": RoleVersion.Part.MANAGED,
    "trust": RoleVersion.Part.TRUST,
    "tags": RoleVersion.Part.TAGS,
    "boundary": RoleVersion.Part.BOUNDARY,
}
TITLES = {
    "inline": "an inline policy",
    "managed": "the attached managed policies",
    "trust": "the trust policy",
    "tags": "the tags",
    "boundary": "the permissions boundary",
}
_POLICY_NAME_RE = re.compile(r"[\w+=,.@-]{1,128}")
_MANAGED_ARN_RE = re.compile(r"arn:aws[\w-]*:iam::(aws|\d{12}):policy/[\w+=,.@/-]{1,512}")
_TAG_LINE_RE = re.compile(r"([^=]+?)\s*=\s*(.*)")
MAX_LINES = 50
CHOICES_SHOWN = 500


class EditForm(RestoreForm):
    """The justification and acknowledgement every editor shares."""

    justification = forms.CharField(
        label="Why is this change needed?",
        required=False,  # a preview needs none; the request does (the service says so)
        max_length=JUSTIFICATION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Reviewers decide on it: the task, the ticket, what breaks without it.",
    )

    def desired(self, role: IamRole) -> tuple[str, Any]:
        """(key, document) of the part as it should be; call after is_valid()."""
        raise NotImplementedError


def _document(form: forms.Form, field: str) -> Any:
    text = form.cleaned_data.get(field) or ""
    try:
        document = json_load_bounded(text)
    except ValueError as exc:
        form.add_error(field, f"Not valid JSON: {exc}")
        return None
    if not isinstance(document, dict):
        form.add_error(field, "A policy is a JSON object.")
        return None
    return document


def _document_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=DOCUMENT_MAX_LENGTH,
        widget=forms.Textarea(
            attrs={
                "rows": 18,
                "class": "mono",
                "spellcheck": "false",
                # The policy editor takes over the field, marking the preview's findings.
                "data-policy-editor": "",
                "data-findings": "#part-findings",
                "data-actions-url": reverse_lazy("policy_actions"),
            }
        ),
        help_text=help_text,
    )


class InlineForm(EditForm):
    policy_name = forms.CharField(
        label="Policy name",
        max_length=128,
        help_text="1-128 letters, digits or +=,.@_- characters.",
    )
    document = _document_field("Policy document (JSON)", "The whole policy as it should be.")
    delete = forms.BooleanField(label="Delete this policy", required=False)

    def clean_policy_name(self) -> str:
        name = str(self.cleaned_data["policy_name"]).strip()
        if not _POLICY_NAME_RE.fullmatch(name):
            raise forms.ValidationError("1-128 letters, digits or +=,.@_- characters.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("delete"):
            data["parsed"] = _document(self, "document")
        return data

    def desired(self, role: IamRole) -> tuple[str, Any]:
        name = self.cleaned_data["policy_name"]
        return name, None if self.cleaned_data.get("delete") else self.cleaned_data["parsed"]


class TrustForm(EditForm):
    document = _document_field(
        "Trust policy (JSON)", "Who may assume the role. Or add a statement from a preset below."
    )
    preset = forms.ChoiceField(
        label="Add a statement for",
        required=False,
        choices=[("", "(no preset)"), *PRESETS],
    )
    preset_value = forms.CharField(
        label="Principal",
        required=False,
        max_length=ARN_MAX_LENGTH,
        help_text="The service, role ARN, account id or provider ARN.",
    )
    preset_extra = forms.CharField(
        label="ExternalId or audience",
        required=False,
        max_length=1224,
        help_text="Another account: the ExternalId it must send. OpenID Connect: the audience.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        document = _document(self, "document") if (data.get("document") or "").strip() else {}
        preset = data.get("preset")
        value = (data.get("preset_value") or "").strip()
        if preset == "role" and value and not IamRole.objects.filter(arn=value).exists():
            self.add_error("preset_value", "Give the exact ARN of a role in iamportal's inventory.")
            preset = ""
        if document is not None and preset:
            try:
                statement = trust_statement(
                    preset, data.get("preset_value") or "", data.get("preset_extra") or ""
                )
            except PresetInvalid as exc:
                field = {"value": "preset_value", "extra": "preset_extra"}.get(exc.field, "preset")
                self.add_error(field, exc.message)
            else:
                document = trust_with(document, statement)
        if document is not None and not document:
            self.add_error("document", "A role needs a trust policy: write one or add a preset.")
        data["parsed"] = document
        return data

    def desired(self, role: IamRole) -> tuple[str, Any]:
        return "", self.cleaned_data["parsed"]


class TagsForm(EditForm):
    tags = forms.CharField(
        label="Tags, one key=value per line",
        required=False,
        max_length=MAX_LINES * 400,
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono", "spellcheck": "false"}),
        help_text="A line removed removes the tag. Keys ignore case in IAM.",
    )

    def clean_tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        lines = [line for line in str(self.cleaned_data["tags"]).splitlines() if line.strip()]
        if len(lines) > MAX_LINES:
            raise forms.ValidationError(f"A role holds at most {MAX_LINES} tags.")
        for number, line in enumerate(lines, start=1):
            match = _TAG_LINE_RE.fullmatch(line.strip())
            if match is None:
                raise forms.ValidationError(f"Line {number} is not key=value.")
            key, value = match[1].strip(), match[2].strip()
            if key in tags:
                raise forms.ValidationError(f"The key {key!r} is given twice.")
            tags[key] = value
        return tags

    def desired(self, role: IamRole) -> tuple[str, Any]:
        return "", dict(sorted(self.cleaned_data["tags"].items()))


def _arn_lines(form: forms.Form, field: str, role: IamRole) -> list[str]:
    """ARNs of managed policies, one per line; a bare name is looked up in the
    role's account's customer-managed policies, then AWS's."""
    arns: list[str] = []
    for line in str(form.cleaned_data.get(field) or "").splitlines():
        text = line.strip()
        if not text:
            continue
        if not text.startswith("arn:"):
            found = ManagedPolicy.objects.filter(name=text, account=role.account).first()
            text = found.arn if found else f"arn:aws:iam::aws:policy/{text}"
        if not _MANAGED_ARN_RE.fullmatch(text):
            form.add_error(field, f"{line.strip()[:200]!r} is not a managed policy ARN or name.")
            continue
        if text not in arns:
            arns.append(text)
    if len(arns) > MAX_LINES:
        form.add_error(field, f"At most {MAX_LINES} policies.")
    return arns


class ManagedForm(EditForm):
    policies = forms.CharField(
        label="Attached policies, one ARN or name per line",
        required=False,
        max_length=MAX_LINES * (ARN_MAX_LENGTH + 1),
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono", "spellcheck": "false"}),
        help_text="A name is looked up in this account's policies, then AWS's. "
        "A line removed detaches the policy.",
    )

    def desired(self, role: IamRole) -> tuple[str, Any]:
        return "", sorted(_arn_lines(self, "policies", role))


class BoundaryForm(EditForm):
    policy = forms.CharField(
        label="Boundary policy ARN or name",
        required=False,
        max_length=ARN_MAX_LENGTH,
        help_text="Empty: remove the boundary.",
    )

    def desired(self, role: IamRole) -> tuple[str, Any]:
        arns = _arn_lines(self, "policy", role)
        return "", arns[0] if arns else None


FORMS: dict[str, type[EditForm]] = {
    "inline": InlineForm,
    "managed": ManagedForm,
    "trust": TrustForm,
    "tags": TagsForm,
    "boundary": BoundaryForm,
}


@dataclass(frozen=True)
class AccessTagWarning:
    key: str
    value: str


def access_tag_warnings(before: Any, after: Any) -> list[AccessTagWarning]:
    """iamportal's access tags the edit changes: they decide who may use the role."""
    watched = {settings.IAMPORTAL_AUTH_TAG.lower(), settings.IAMPORTAL_AUTH_CLI_TAG.lower()}
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    return [
        AccessTagWarning(key, str(after.get(key, "(removed)")))
        for key in sorted(set(before) | set(after))
        if key.lower() in watched and before.get(key) != after.get(key)
    ]


def initial_for(part: str, role: IamRole, current: Any, key: str) -> dict[str, Any]:
    """What the form shows before any edit: the part as the role has it."""
    if part == "inline":
        return {"policy_name": key, "document": policy_text(current) if current else ""}
    if part == "trust":
        return {"document": policy_text(current) if current else ""}
    if part == "tags":
        return {"tags": "\n".join(f"{k}={v}" for k, v in (current or {}).items())}
    if part == "managed":
        return {"policies": "\n".join(current or [])}
    return {"policy": current or ""}


def policy_choices(role: IamRole) -> list[str]:
    """ARNs offered for typing: this account's customer-managed policies and the
    AWS-managed ones the inventory has seen."""
    return list(
        ManagedPolicy.objects.filter(account=role.account)
        .order_by("name")
        .values_list("arn", flat=True)[:CHOICES_SHOWN]
    )


class DocumentForm(EditForm):
    """A resource policy or a customer-managed policy's document, filed under a
    role of the same account (every request belongs to a role: its reviewers
    are the account's)."""

    role = forms.TypedChoiceField(
        label="Request on behalf of",
        coerce=int,
        help_text="A role of the same account: usually the one that will use the change. "
        "Reviewers see it with the request.",
    )
    document = _document_field("Policy document (JSON)", "The whole policy as it should be.")

    def __init__(self, *args: Any, roles: list[IamRole], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(role.pk, role.name) for role in roles]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("document") or "").strip():
            data["parsed"] = _document(self, "document")
        else:
            self.add_error("document", "Write the policy: an empty document is not a policy.")
        return data

    def desired(self, role: IamRole) -> tuple[str, Any]:
        return "", self.cleaned_data.get("parsed")


ROLE_CHOICES = 500


def roles_to_file_under(*, account_id: int, usable: set[int]) -> list[IamRole]:
    """The roles of an account a document edit may be filed under: the ones the
    user may use first, never iamportal's own."""
    roles = [
        role
        for role in IamRole.objects.filter(account_id=account_id).order_by("name")[:ROLE_CHOICES]
        if not role_protected(role.arn)
    ]
    return sorted(roles, key=lambda role: role.pk not in usable)


# --- several edits, one request ----------------------------------------------------------

BASKET_KEY = "iamportal_collected_edits"
BASKET_MAX = 20


def _baskets(session: Any) -> dict[str, list[dict[str, Any]]]:
    found = session.get(BASKET_KEY)
    return found if isinstance(found, dict) else {}


def edits_collected(*, session: Any, role: IamRole) -> list[dict[str, Any]]:
    """The edits of `role`'s parts put aside for one request, in the order made:
    {"part", "key", "document"}; a later edit of a part replaced an earlier one."""
    edits = _baskets(session).get(str(role.pk))
    return [
        edit
        for edit in edits or []
        if isinstance(edit, dict) and edit.get("part") in PARTS and isinstance(edit.get("key"), str)
    ]


def edit_collect(*, session: Any, role: IamRole, part: str, key: str, document: Any) -> str:
    """Put an edit aside for the role's collected request; an error message when
    it cannot be (too many), else nothing."""
    edits = [
        e
        for e in edits_collected(session=session, role=role)
        if (e["part"], e["key"]) != (part, key)
    ]
    if len(edits) >= BASKET_MAX:
        return f"At most {BASKET_MAX} edits fit in one request: submit these first."
    baskets = _baskets(session)
    baskets[str(role.pk)] = [*edits, {"part": part, "key": key, "document": document}]
    session[BASKET_KEY] = baskets
    return ""


def edits_drop(*, session: Any, role: IamRole) -> None:
    baskets = _baskets(session)
    if baskets.pop(str(role.pk), None) is not None:
        session[BASKET_KEY] = baskets


def edit_title(edit: dict[str, Any]) -> str:
    if edit["part"] == "inline":
        return f"the inline policy {edit['key']}"
    return TITLES[edit["part"]]
