"""The forms of the role lifecycle pages: create, clone, delete, and change the
description and maximum session duration. Each only parses what a person
typed; the services validate the role and file the request."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone

from accounts.models import AwsAccount
from iamportal.parsers import json_load_bounded
from requests_app.policy.limits import (
    ARN_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    IAM_PATH_MAX_LENGTH,
    ROLE_NAME_MAX_LENGTH,
    SESSION_DURATION_MAX,
    SESSION_DURATION_MIN,
)
from requests_app.services import (
    CLONE_PARTS,
    JUSTIFICATION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    TRUST_PRESETS,
)

DOCUMENT_MAX_LENGTH = 30_000
INLINE_POLICY_SLOTS = 3
INLINE_POLICY_NAME_MAX_LENGTH = 128
LIST_MAX_LENGTH = 5000
HOURS = [(h * 3600, f"{h} hour{'s' if h > 1 else ''}") for h in range(1, 13)]
EXPIRY_CHOICES = [
    ("", "Permanent"),
    ("8h", "For 8 hours"),
    ("1d", "For 1 day"),
    ("7d", "For 7 days"),
    ("30d", "For 30 days"),
]
_EXPIRY = {
    "8h": timedelta(hours=8),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
CLONE_PART_LABELS = {
    "trust": "Trust policy",
    "inline": "Inline policies",
    "managed": "Attached managed policies",
    "tags": "Tags (including access tags)",
    "boundary": "Permissions boundary",
    "description": "Description",
    "session_duration": "Maximum session duration",
}


ROLE_NAME_VALIDATOR = RegexValidator(
    r"\A[\w+=,.@-]+\Z", "A role name is 1-64 letters, digits or +=,.@_- characters.", flags=re.ASCII
)


class _Form(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        parsed = json_load_bounded(text)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None
    if not isinstance(parsed, dict):
        raise forms.ValidationError(f"A {what} is a JSON object: {{...}}.")
    return parsed


class _Acknowledging(_Form):
    """Error findings are submitted only with the requester's reason."""

    acknowledge = forms.BooleanField(
        label="I have read the error findings and ask for this anyway", required=False
    )
    acknowledgement_reason = forms.CharField(
        label="Why the error findings are acceptable",
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Reviewers see it in the request's timeline.",
    )

    def acknowledgement(self) -> str:
        if not self.cleaned_data.get("acknowledge"):
            return ""
        return self.cleaned_data.get("acknowledgement_reason") or ""


def _justification(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=JUSTIFICATION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "required": True}),
        help_text="Reviewers decide on it: what it is for, the ticket.",
    )


class _TrustPreset(_Form):
    """Who may assume a role: a preset (see TRUST_PRESETS) and its values, or a
    trust policy written out."""

    trust_preset = forms.ChoiceField(
        label="Who may assume the role",
        choices=list(TRUST_PRESETS.items()),
        initial="service",
        widget=forms.RadioSelect,
    )
    trust_value = forms.CharField(
        label="Service, role ARN, account id or provider ARN",
        max_length=ARN_MAX_LENGTH,
        required=False,
        help_text="lambda.amazonaws.com; arn:aws:iam::123456789012:role/deployer; 123456789012; "
        "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com.",
    )
    trust_external_id = forms.CharField(
        label="ExternalId (another account)", max_length=1224, required=False
    )
    trust_audience = forms.CharField(
        label="Audience, aud (OpenID Connect)", max_length=512, required=False
    )
    trust_subject = forms.CharField(
        label="Subject, sub (OpenID Connect; * allowed)", max_length=512, required=False
    )
    trust_document = forms.CharField(
        label="Trust policy (JSON)",
        max_length=DOCUMENT_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "mono", "spellcheck": "false"}),
    )

    def clean_trust_document(self) -> dict[str, Any] | None:
        text = self.cleaned_data["trust_document"].strip()
        return _json_object(text, "trust policy") if text else None

    def trust_missing(self, data: dict[str, Any]) -> None:
        if data.get("trust_preset") == "document" and data.get("trust_document") is None:
            self.add_error("trust_document", "Write the trust policy, or choose a preset.")


class RoleCreateForm(_TrustPreset, _Acknowledging):
    account = forms.ModelChoiceField(
        queryset=AwsAccount.objects.filter(enabled=True),
        to_field_name="account_id",
        empty_label="Choose an account",
    )
    name = forms.CharField(
        max_length=ROLE_NAME_MAX_LENGTH,
        validators=[ROLE_NAME_VALIDATOR],
        help_text="1-64 letters, digits or +=,.@_-.",
    )
    path = forms.CharField(
        max_length=IAM_PATH_MAX_LENGTH,
        initial="/",
        required=False,
        help_text="Such as /teams/payments/.",
    )
    description = forms.CharField(
        max_length=DESCRIPTION_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    max_session_duration = forms.TypedChoiceField(
        label="Maximum session duration",
        choices=HOURS,
        coerce=int,
        initial=SESSION_DURATION_MIN,
    )
    managed_policy_arns = forms.CharField(
        label="Managed policies to attach",
        max_length=LIST_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="One ARN a line.",
    )
    tags = forms.CharField(
        max_length=LIST_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="One key=value a line.",
    )
    grant_me = forms.BooleanField(
        label="Let me use the role through iamportal (adds an access tag naming me)",
        required=False,
        initial=True,
    )
    permissions_boundary_arn = forms.CharField(
        label="Permissions boundary (policy ARN)", max_length=ARN_MAX_LENGTH, required=False
    )
    justification = _justification("Why is this role needed?")
    expires = forms.ChoiceField(
        label="How long",
        choices=EXPIRY_CHOICES,
        required=False,
        help_text="A temporary role is deleted when its time is up.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A fixed number of blank inline policies: no script needed to add one.
        for n in range(1, INLINE_POLICY_SLOTS + 1):
            self.fields[f"inline_policy_name_{n}"] = forms.CharField(
                label=f"Inline policy {n}: name",
                max_length=INLINE_POLICY_NAME_MAX_LENGTH,
                required=False,
            )
            self.fields[f"inline_policy_document_{n}"] = forms.CharField(
                label=f"Inline policy {n} (JSON)",
                max_length=DOCUMENT_MAX_LENGTH,
                required=False,
                widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "spellcheck": "false"}),
            )

    def inline_slots(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        """Each inline policy's (name, document) fields, for the page."""
        return [
            (self[f"inline_policy_name_{n}"], self[f"inline_policy_document_{n}"])
            for n in range(1, INLINE_POLICY_SLOTS + 1)
        ]

    def inline_policies(self) -> dict[str, dict[str, Any]]:
        """The inline policies filled in, name -> document (after is_valid)."""
        return {
            self.cleaned_data[f"inline_policy_name_{n}"].strip(): document
            for n in range(1, INLINE_POLICY_SLOTS + 1)
            if (document := self.cleaned_data.get(f"inline_policy_document_{n}")) is not None
        }

    def inline_field_for(self, name: str) -> str:
        """The field to show an error about the inline policy `name` on."""
        for n in range(1, INLINE_POLICY_SLOTS + 1):
            if (self.data.get(f"inline_policy_name_{n}") or "").strip() == name:
                return f"inline_policy_document_{n}"
        return "inline_policy_document_1"

    def _clean_inline(self) -> None:
        seen: set[str] = set()
        for n in range(1, INLINE_POLICY_SLOTS + 1):
            name_field, document_field = f"inline_policy_name_{n}", f"inline_policy_document_{n}"
            name = (self.cleaned_data.get(name_field) or "").strip()
            text = (self.cleaned_data.get(document_field) or "").strip()
            document = None
            if text:
                try:
                    document = _json_object(text, "policy")
                except forms.ValidationError as exc:
                    self.add_error(document_field, exc)
                    continue
            self.cleaned_data[document_field] = document
            if document is not None and not name:
                self.add_error(name_field, "Name the inline policy.")
            if name and not text:
                self.add_error(document_field, "Give the inline policy's document.")
            if name and name.lower() in seen:
                self.add_error(
                    name_field, f"Another inline policy is named {name}: IAM ignores case."
                )
            if name:
                seen.add(name.lower())

    def clean_managed_policy_arns(self) -> list[str]:
        return [
            line.strip()
            for line in self.cleaned_data["managed_policy_arns"].splitlines()
            if line.strip()
        ]

    def clean_tags(self) -> dict[str, str]:
        tags: dict[str, str] = {}
        for line in self.cleaned_data["tags"].splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise forms.ValidationError(f"Write each tag as key=value: {line.strip()[:60]!r}.")
            tags[key.strip()] = value.strip()
        return tags

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self._clean_inline()
        self.trust_missing(data)
        return data

    def expires_at(self) -> datetime | None:
        span = _EXPIRY.get(self.cleaned_data.get("expires") or "")
        return timezone.now() + span if span else None


class RoleCloneForm(_TrustPreset, _Acknowledging):
    account = forms.ModelChoiceField(
        label="Into account",
        queryset=AwsAccount.objects.filter(enabled=True),
        to_field_name="account_id",
    )
    name = forms.CharField(
        label="Name of the copy", max_length=ROLE_NAME_MAX_LENGTH, validators=[ROLE_NAME_VALIDATOR]
    )
    path = forms.CharField(max_length=IAM_PATH_MAX_LENGTH, initial="/", required=False)
    parts = forms.MultipleChoiceField(
        label="Copy",
        choices=[(key, CLONE_PART_LABELS[key]) for key in CLONE_PARTS],
        initial=list(CLONE_PARTS),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    justification = _justification("Why copy this role?")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only when the trust policy is not copied.
        self.fields["trust_preset"].required = False
        self.fields["trust_preset"].initial = ""
        self.fields["trust_preset"].label = "Or who may assume the copy (trust policy not copied)"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "trust" not in (data.get("parts") or []):
            if not data.get("trust_preset"):
                self.add_error(
                    "trust_preset",
                    "A role needs a trust policy: copy it, or choose who may assume the copy.",
                )
            self.trust_missing(data)
        return data


class RoleDeleteForm(_Form):
    confirmation = forms.CharField(
        label="Type the role's name to confirm",
        max_length=ROLE_NAME_MAX_LENGTH + 10,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    reason = forms.CharField(
        label="Why delete it?",
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "required": True}),
        help_text="Reviewers decide on it; it also stands as your acknowledgement that deleting "
        "a role cannot be undone in IAM.",
    )


class RoleSettingsForm(_Form):
    description = forms.CharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    max_session_duration = forms.TypedChoiceField(
        label="Maximum session duration", choices=HOURS, coerce=int
    )
    justification = _justification("Why change them?")
    expires = forms.ChoiceField(
        label="How long",
        choices=EXPIRY_CHOICES,
        required=False,
        help_text="A temporary change puts the old values back when its time is up.",
    )

    def __init__(
        self, *args: Any, current_duration: int = SESSION_DURATION_MIN, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["max_session_duration"]
        assert isinstance(field, forms.TypedChoiceField)
        if (
            current_duration % 3600
            and SESSION_DURATION_MIN <= current_duration <= SESSION_DURATION_MAX
        ):
            # A duration set outside iamportal in minutes stays choosable as it is.
            field.choices = [*HOURS, (current_duration, f"{current_duration} seconds (now)")]

    def expires_at(self) -> datetime | None:
        span = _EXPIRY.get(self.cleaned_data.get("expires") or "")
        return timezone.now() + span if span else None
