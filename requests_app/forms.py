"""The wizard's forms. They bound and shape the input; what a permission grants
comes from requests_app.policy.generate, what a template makes from
requests_app.policy.templates, and whether a request is acceptable from
requests_app.services."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.forms.boundfield import BoundWidget
from django.utils import timezone

from accounts.selectors import SEARCH_MAX_LENGTH
from iamportal.parsers import json_load_bounded
from requests_app.models import PolicyTemplate
from requests_app.policy import permission_map
from requests_app.policy.generate import (
    ACCESS_LEVELS,
    MAX_SERVICE_CHARS,
    Intent,
    IntentError,
    policy_generate_with_notes,
)
from requests_app.policy.limits import ARN_MAX_LENGTH as MAX_ARN_CHARS
from requests_app.policy.permission_map import Service
from requests_app.policy.templates import (
    Parameter,
    TemplateInvalid,
    template_parameters,
    template_render,
)
from requests_app.services import ACCESS_DURATIONS, JUSTIFICATION_MAX_LENGTH, REASON_MAX_LENGTH

OTHER_SERVICE = "other"
# A pretty-printed policy at IAM's size limit is about twice as long as its
# compact form; anything much longer cannot be a policy IAM would accept.
DOCUMENT_MAX_LENGTH = 30_000

EXPIRY_CHOICES = [
    ("", "No expiry"),
    ("8h", "For 8 hours"),
    ("1d", "For 1 day"),
    ("7d", "For 7 days"),
    ("30d", "For 30 days"),
    ("date", "Until a date"),
]
_EXPIRY_DELTAS = {
    "8h": timedelta(hours=8),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


class _Form(forms.Form):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


# --- step 1 -----------------------------------------------------------------------


class RoleSearchForm(_Form):
    q = forms.CharField(
        label="Role name or ARN",
        required=False,
        max_length=SEARCH_MAX_LENGTH,
        error_messages={
            "max_length": f"Search text can be at most {SEARCH_MAX_LENGTH} characters: "
            "a role name or a part of its ARN."
        },
    )


# --- step 2: a permission by service ------------------------------------------------


def service_choices() -> list[tuple[str, Any]]:
    return [
        ("", "Choose a service…"),
        ("Common services", [(s.key, s.name) for s in permission_map.SERVICES]),
        ("Any other AWS service", [(OTHER_SERVICE, "Another service, by access level…")]),
    ]


def _option_field(name: str) -> str:
    return f"opt_{name}"


def _help_with_example(help_text: str, example: str) -> str:
    """A field's help, then its example: the example stays visible when there is help."""
    shown = f"For example {example}" if example else ""
    return " ".join(part for part in (help_text.strip(), shown) if part)


class PermissionForm(_Form):
    """One permission: a service, one resource and the access wanted on it. The
    fields after `service` depend on the service chosen."""

    service = forms.ChoiceField(
        label="Service",
        choices=service_choices,
        error_messages={
            "required": "Pick a service.",
            "invalid_choice": "Unknown service: pick one from the list, or “another service”.",
        },
    )
    other_service = forms.CharField(
        label="Service prefix",
        required=False,
        max_length=MAX_SERVICE_CHARS,
        help_text="The prefix IAM actions of the service start with, e.g. ec2, lambda, athena.",
    )
    resource = forms.CharField(
        label="Resource ARN",
        required=False,
        max_length=MAX_ARN_CHARS,
        error_messages={"max_length": f"An ARN is at most {MAX_ARN_CHARS} characters."},
    )
    access = forms.MultipleChoiceField(
        label="Access",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "%(value)s is not an access this service offers."},
    )
    include_destructive = forms.BooleanField(
        label="I need the destructive access ticked above",
        required=False,
        help_text="It can delete data or cut access for others; reviewers look at it closely.",
    )

    def __init__(self, *args: Any, service: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:
            service = str(self.data.get("service", "")).strip()
        self.spec: Service | None = permission_map.service_get(service)
        self.is_other = service == OTHER_SERVICE
        self.intent: Intent | None = None
        access = self.fields["access"]
        assert isinstance(access, forms.MultipleChoiceField)
        if self.spec is not None:
            access.choices = [(c.key, c.label) for c in self.spec.choices]
            self.fields["resource"].label = f"{self.spec.resource_label.capitalize()} ARN"
            self.fields["resource"].help_text = f"For example {self.spec.arn_example}"
            for piece in self.spec.fields:
                self.fields[_option_field(piece.name)] = forms.CharField(
                    label=piece.label,
                    required=False,
                    max_length=256,
                    help_text=f"For example {piece.example}",
                    initial=piece.default,
                )
            for option in self.spec.options:
                self.fields[_option_field(option.name)] = forms.CharField(
                    label=option.label,
                    required=False,
                    max_length=option.max_length,
                    help_text=_help_with_example(option.help, option.example),
                )
        else:
            access.choices = list(ACCESS_LEVELS)
            self.fields[
                "resource"
            ].help_text = "For example arn:aws:lambda:us-east-1:123456789012:function:my-function"

    @property
    def destructive_keys(self) -> set[str]:
        if self.spec is None:
            return {"write", "permissions-management"}
        return {c.key for c in self.spec.choices if c.destructive}

    @property
    def access_options(self) -> list[tuple[BoundWidget, bool]]:
        """Each access checkbox, and whether it can destroy data."""
        risky = self.destructive_keys
        return [(option, option.data["value"] in risky) for option in self["access"]]

    @property
    def piece_fields(self) -> list[forms.BoundField]:
        names = [p.name for p in self.spec.fields] if self.spec else []
        return [self[_option_field(name)] for name in names]

    @property
    def option_fields(self) -> list[forms.BoundField]:
        names = [o.name for o in self.spec.options] if self.spec else []
        return [self[_option_field(name)] for name in names]

    def _service_key(self) -> str:
        if self.is_other:
            return (self.cleaned_data.get("other_service") or "").strip().lower()
        return str(self.cleaned_data.get("service", ""))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        if self.is_other and not cleaned.get("other_service", "").strip():
            self.add_error("other_service", "Type the service prefix, e.g. lambda.")
            return cleaned
        if not cleaned.get("access"):
            self.add_error("access", "Pick at least one kind of access.")
            return cleaned
        if self.spec is not None and not cleaned.get("include_destructive"):
            risky = [
                c.label for c in self.spec.choices if c.destructive and c.key in cleaned["access"]
            ]
            if risky:
                self.add_error(
                    "include_destructive",
                    f"{', '.join(risky)} can destroy data: tick the box to confirm you need it.",
                )
                return cleaned
        options = {
            name[len("opt_") :]: value.strip()
            for name, value in cleaned.items()
            if name.startswith("opt_") and isinstance(value, str) and value.strip()
        }
        self.intent = Intent(
            service=self._service_key(),
            resource=cleaned.get("resource", "").strip(),
            access=tuple(cleaned["access"]),
            options=options,
            include_destructive=bool(cleaned.get("include_destructive")),
        )
        try:
            policy_generate_with_notes([self.intent])
        except IntentError as exc:
            self.add_error(self._field_for(exc.field), exc.message)
        return cleaned

    def _field_for(self, name: str) -> str | None:
        if name == "service" and self.is_other:
            return "other_service"
        if name in ("resource", "access", "include_destructive", "service"):
            return name
        if _option_field(name) in self.fields:
            return _option_field(name)
        return None

    def label(self) -> str:
        """The permission in a few words, for the list of added permissions."""
        assert self.intent is not None
        intent = self.intent
        if self.spec is not None:
            access = ", ".join(c.label for c in self.spec.choices if c.key in intent.access)
            name = self.spec.name
        else:
            levels = dict(ACCESS_LEVELS)
            access = ", ".join(levels[key] for key in intent.access)
            name = intent.service
        where = intent.resource or " / ".join(v for v in intent.options.values())
        refinements = [
            f"{option.label.lower()} {intent.options[option.name]}"
            for option in (self.spec.options if self.spec else ())
            if intent.options.get(option.name)
        ]
        shown = f"{name}: {access} on {where}"
        return f"{shown} ({', '.join(refinements)})" if refinements and intent.resource else shown


def intent_as_dict(intent: Intent) -> dict[str, Any]:
    return {
        "service": intent.service,
        "resource": intent.resource,
        "access": list(intent.access),
        "options": dict(intent.options),
        "include_destructive": intent.include_destructive,
    }


def intent_from_dict(data: dict[str, Any]) -> Intent:
    return Intent(
        service=str(data.get("service", "")),
        resource=str(data.get("resource", "")),
        access=tuple(str(a) for a in data.get("access", [])),
        options={str(k): str(v) for k, v in (data.get("options") or {}).items()},
        include_destructive=bool(data.get("include_destructive")),
    )


# --- step 2: a permission from a template -------------------------------------------


def _value_field(name: str) -> str:
    return f"value_{name}"


class TemplateValuesForm(_Form):
    """The values for one template's parameters."""

    template = forms.ModelChoiceField(
        queryset=PolicyTemplate.objects.filter(enabled=True),
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "This template is no longer offered: pick another."},
    )

    def __init__(
        self,
        *args: Any,
        template: PolicyTemplate | None,
        defaults: dict[str, str],
        prefill: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        """`prefill`: values given in the address, before the template's own defaults."""
        super().__init__(*args, **kwargs)
        prefill = prefill or {}
        self.policy_template = template
        self.document: dict[str, Any] | None = None
        self.parameters: list[Parameter] = []
        if template is None:
            return
        self.fields["template"].initial = template.pk
        try:
            self.parameters = template_parameters(template.parameters)
        except TemplateInvalid:
            self.parameters = []
        for parameter in self.parameters:
            self.fields[_value_field(parameter.name)] = forms.CharField(
                label=parameter.label,
                required=False,
                max_length=256,
                help_text=_help_with_example(parameter.help, parameter.example),
                initial=prefill.get(parameter.name)
                or parameter.default
                or defaults.get(parameter.name, ""),
            )

    def values(self) -> dict[str, str]:
        return {
            p.name: str(self.cleaned_data.get(_value_field(p.name)) or "") for p in self.parameters
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        template = cleaned.get("template")
        if self.errors or template is None:
            return cleaned
        if self.policy_template is None or template.pk != self.policy_template.pk:
            self.add_error("template", "Pick a template first.")
            return cleaned
        try:
            self.document = template_render(
                document=template.document, parameters=template.parameters, values=self.values()
            )
        except TemplateInvalid as exc:
            for field, message in exc.errors.items():
                name = _value_field(field)
                self.add_error(name if name in self.fields else None, message)
        return cleaned


# --- step 2: raw JSON ---------------------------------------------------------------


class RawPolicyForm(_Form):
    document = forms.CharField(
        label="Policy document (JSON)",
        max_length=DOCUMENT_MAX_LENGTH,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "mono"}),
        error_messages={
            "required": "Paste or write a policy document.",
            "max_length": f"A policy document here is at most {DOCUMENT_MAX_LENGTH:,} characters.",
        },
    )

    def clean_document(self) -> str:
        text: str = self.cleaned_data["document"]
        try:
            parsed = json_load_bounded(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError(
                'A policy is a JSON object: {"Version": "2012-10-17", "Statement": [...]}.'
            )
        return text


class LintForm(_Form):
    """Live lint as the requester types: only bounded, never refused for content."""

    document = forms.CharField(required=False, max_length=DOCUMENT_MAX_LENGTH, strip=False)


# --- step 3 -------------------------------------------------------------------------


class ReviewForm(_Form):
    # Not required here: the service says what a justification needs, for the
    # wizard and the API alike.
    justification = forms.CharField(
        label="Why do you need this access?",
        required=False,
        max_length=JUSTIFICATION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "required": True}),
        help_text="Reviewers decide on it: the task, the ticket, why this role.",
    )
    policy_name = forms.CharField(
        label="Policy name",
        required=False,
        max_length=128,
        help_text="The inline policy this request adds to the role (or replaces, if it exists).",
    )
    expiry = forms.ChoiceField(
        label="Access",
        choices=EXPIRY_CHOICES,
        required=False,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Pick one of the listed durations, or a date."},
    )
    expiry_date = forms.DateField(
        label="Until the end of",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Give the date as YYYY-MM-DD."},
    )

    acknowledge = forms.BooleanField(
        label="I have read the error findings and ask for this access anyway",
        required=False,
    )
    acknowledgement_reason = forms.CharField(
        label="Why the error findings are acceptable",
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Reviewers see it in the request's timeline.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("expiry") == "date" and not cleaned.get("expiry_date"):
            self.add_error("expiry_date", "Pick the date the access ends.")
        return cleaned

    def acknowledgement(self) -> str:
        """The reason given with the acknowledgement; empty unless it is ticked."""
        if not self.cleaned_data.get("acknowledge"):
            return ""
        return self.cleaned_data.get("acknowledgement_reason") or ""

    def expires_at(self, now: datetime | None = None) -> datetime | None:
        choice = self.cleaned_data.get("expiry") or ""
        now = now or timezone.now()
        if choice in _EXPIRY_DELTAS:
            return now + _EXPIRY_DELTAS[choice]
        if choice == "date":
            # Access lasts through the whole of the chosen day.
            return timezone.make_aware(datetime.combine(self.cleaned_data["expiry_date"], time.max))
        return None


# --- the request page ---------------------------------------------------------------

EXTEND_CHOICES = [("1d", "1 more day"), ("7d", "7 more days"), ("30d", "30 more days")]


class ExtendForm(_Form):
    """Asking to keep temporary access longer: a new request, reviewed as any other."""

    extend_by = forms.ChoiceField(
        label="Keep the access for",
        choices=EXTEND_CHOICES,
        initial="7d",
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Pick one of the listed durations."},
    )
    justification = forms.CharField(
        label="Why do you need it longer?",
        required=False,
        max_length=JUSTIFICATION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2, "required": True}),
    )

    def expires_at(self, current: datetime) -> datetime:
        """The new expiry, counted from the current one."""
        return current + _EXPIRY_DELTAS[self.cleaned_data["extend_by"]]


class ChangeEditForm(_Form):
    payload = forms.CharField(
        label="What this change does (JSON)",
        max_length=DOCUMENT_MAX_LENGTH * 2,
        widget=forms.Textarea(attrs={"rows": 14, "class": "mono", "spellcheck": "false"}),
    )

    def clean_payload(self) -> Any:
        try:
            return json_load_bounded(self.cleaned_data["payload"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


class RestoreForm(_Form):
    """Filing the request that puts a recorded version of a role back."""

    justification = forms.CharField(
        label="Why restore this version?",
        required=False,
        max_length=JUSTIFICATION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "required": True}),
        help_text="Reviewers decide on it: what went wrong with the current version, the ticket.",
    )
    acknowledge = forms.BooleanField(
        label="I have read the error findings and ask for this version anyway",
        required=False,
    )
    acknowledgement_reason = forms.CharField(
        label="Why the error findings are acceptable",
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Reviewers see it in the request's timeline.",
    )

    def acknowledgement(self) -> str:
        """The reason given with the acknowledgement; empty unless it is ticked."""
        if not self.cleaned_data.get("acknowledge"):
            return ""
        return self.cleaned_data.get("acknowledgement_reason") or ""


# --- access to a role ----------------------------------------------------------------

ACCESS_CHOICES = [
    *((key, label) for key, (_, label) in ACCESS_DURATIONS.items()),
    ("date", "Until a date"),
    ("permanent", "Permanently (where the account allows it)"),
]


class AccessRequestForm(_Form):
    """Asking to use a role: how long, from when, how, and why."""

    duration = forms.ChoiceField(
        label="For",
        choices=ACCESS_CHOICES,
        initial="8h",
        widget=forms.RadioSelect,
        error_messages={
            "invalid_choice": "Pick one of the listed durations, a date, or permanent access.",
            "required": "Choose how long you need the role.",
        },
    )
    until = forms.DateField(
        label="Until the end of",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Give the date as YYYY-MM-DD."},
    )
    starts_at = forms.DateTimeField(
        label="Starting (UTC, optional)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Leave empty to start as soon as it is approved.",
        error_messages={"invalid": "Give the start as YYYY-MM-DD HH:MM."},
    )
    cli_only = forms.BooleanField(
        label="From the command line only (no console sign-in)", required=False
    )
    justification = forms.CharField(
        label="Why do you need this role?",
        required=False,
        max_length=JUSTIFICATION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "required": True}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("duration") == "date" and not cleaned.get("until"):
            self.add_error("until", "Pick the date the access ends.")
        return cleaned

    def submit_arguments(self) -> dict[str, Any]:
        """The service's arguments for what was chosen."""
        choice = self.cleaned_data["duration"]
        arguments: dict[str, Any] = {
            "starts_at": self.cleaned_data.get("starts_at"),
            "cli_only": bool(self.cleaned_data.get("cli_only")),
            "justification": self.cleaned_data.get("justification") or "",
        }
        if choice in ACCESS_DURATIONS:
            arguments["duration"] = ACCESS_DURATIONS[choice][0]
        elif choice == "date":
            arguments["expires_at"] = timezone.make_aware(
                datetime.combine(self.cleaned_data["until"], time.max)
            )
        else:
            arguments["permanent"] = True
        return arguments
