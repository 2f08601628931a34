"""The role lifecycle pages: create a role, clone one, delete one, change its
description and maximum session duration. Each is a form that files an
ordinary request; Preview (a dry run) shows exactly what would be requested,
Submit files it.

Status codes as in the wizard: a form with errors answers a plain POST with
400 and the whole page, an htmx POST with 200 and the swapped region.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from accounts.models import AwsAccount, IamRole
from accounts.selectors import account_for_user, role_for_user, role_protected
from brokering.selectors import users_for_role
from iamportal.htmx import HtmxHttpRequest, template_for
from requests_app import services
from requests_app.changes import (
    ChangeSpec,
    change_document,
    change_summary,
    protected_role_refusal,
)
from requests_app.changes.lifecycle import role_snapshot
from requests_app.lifecycle_forms import (
    RoleCloneForm,
    RoleCreateForm,
    RoleDeleteForm,
    RoleSettingsForm,
)
from requests_app.models import Change, PolicyRequest
from requests_app.policy.diff import policy_diff
from requests_app.selectors import requestable_role_for_user

# Where each error of the services is shown on the create and clone forms.
_CREATE_FIELDS = {
    "target_arn": "name",
    "payload.description": "description",
    "payload.max_session_duration": "max_session_duration",
    "payload.trust_policy": "trust_document",
    "payload.managed_policy_arns": "managed_policy_arns",
    "payload.tags": "tags",
    "payload.permissions_boundary_arn": "permissions_boundary_arn",
    "justification": "justification",
    "expires_at": "expires",
    "findings_acknowledgement": "acknowledge",
    "trust_preset": "trust_preset",
    "trust_value": "trust_value",
    "trust_external_id": "trust_external_id",
    "trust_audience": "trust_audience",
    "trust_subject": "trust_subject",
}


def _errors_shown(form: Any, errors: dict[str, str], fields: dict[str, str]) -> None:
    for key, message in errors.items():
        field = fields.get(key)
        if (
            field is None
            and key.startswith("payload.inline_policies")
            and hasattr(form, "inline_field_for")
        ):
            field = form.inline_field_for(key.removeprefix("payload.inline_policies").lstrip("."))
        if field is not None and field in form.fields:
            form.add_error(field, message)
        else:
            form.add_error(None, message)


def _invalid(request: HtmxHttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    return render(request, template, context, status=200 if request.htmx else 400)


def _submitted(request: HtmxHttpRequest, created: PolicyRequest, text: str) -> HttpResponse:
    messages.success(request, f"Request #{created.pk} is submitted: {text}")
    url = reverse("request_detail", args=[created.pk])
    if request.htmx and not request.htmx.boosted:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _preview(spec: ChangeSpec, findings: list[Any]) -> dict[str, Any]:
    """What a dry run shows: the change's summary, its diff and its findings."""
    change = Change(
        type=spec.type,
        target_arn=spec.target_arn,
        account_id=spec.account_id,
        payload=spec.payload,
        previous=spec.previous,
    )
    shown = change_document(change) or (None, None)
    return {
        "summary": change_summary(change),
        "target_arn": spec.target_arn,
        "diff": policy_diff(shown[0], shown[1], name="role", labels=("now", "requested")),
        "document": json.dumps(shown[1], indent=2),
        "findings": findings,
        "has_errors": any(f.severity == "error" for f in findings),
    }


# --- create ------------------------------------------------------------------------------


def _trust(data: dict[str, Any]) -> dict[str, Any] | None:
    """The trust policy the form's preset makes (None: no preset chosen).
    Raises RequestInvalid for a preset whose values make none."""
    if not data.get("trust_preset"):
        return None
    if data["trust_preset"] == "document":
        document: dict[str, Any] | None = data["trust_document"]
        return document
    return services.trust_preset_document(
        preset=data["trust_preset"],
        value=data["trust_value"],
        external_id=data["trust_external_id"],
        audience=data["trust_audience"],
        subject=data["trust_subject"],
    )


def _create_payload(form: RoleCreateForm, request: HtmxHttpRequest) -> dict[str, Any]:
    """The creation's payload from the form. Raises RequestInvalid for a preset
    that does not make a trust policy."""
    data = form.cleaned_data
    trust = _trust(data)
    tags = dict(data["tags"])
    if data["grant_me"]:
        # Added to whoever the tags already name (values are :-separated).
        for key, value in services.access_tags_for(request.user).items():
            named = [v for v in tags.get(key, "").split(":") if v]
            tags[key] = ":".join(named if value in named else [*named, value])
    return {
        "description": data["description"],
        "max_session_duration": data["max_session_duration"],
        "trust_policy": trust,
        "inline_policies": form.inline_policies(),
        "managed_policy_arns": data["managed_policy_arns"],
        "permissions_boundary_arn": data["permissions_boundary_arn"].strip(),
        "tags": tags,
    }


@login_required
@require_http_methods(["GET", "POST"])
def role_create(request: HtmxHttpRequest) -> HttpResponse:
    template = template_for(request, "requests_app/role_create.html", "create")
    if request.method == "GET":
        initial: dict[str, Any] = {}
        wanted = request.GET.get("account", "")
        if wanted.isdigit() and len(wanted) == 12:
            initial["account"] = account_for_user(user=request.user, account_id=wanted)
        return render(request, template, {"form": RoleCreateForm(initial=initial)})
    form = RoleCreateForm(request.POST)
    context: dict[str, Any] = {"form": form}
    if not form.is_valid():
        return _invalid(request, template, context)
    submit = "submit" in request.POST
    account: AwsAccount = form.cleaned_data["account"]
    try:
        payload = _create_payload(form, request)
        target_arn = services.new_role_arn(
            account=account, name=form.cleaned_data["name"], path=form.cleaned_data["path"]
        )
        dry = services.role_create_submit(
            requester=request.user,
            target_arn=target_arn,
            payload=payload,
            justification=form.cleaned_data["justification"],
            expires_at=form.expires_at(),
            dry_run=True,
        )
        assert isinstance(dry, ChangeSpec)
        context["preview"] = _preview(dry, services.role_create_findings(dry))
        if submit:
            created = services.role_create_submit(
                requester=request.user,
                target_arn=target_arn,
                payload=payload,
                justification=form.cleaned_data["justification"],
                expires_at=form.expires_at(),
                findings_acknowledgement=form.acknowledgement(),
            )
            assert isinstance(created, PolicyRequest)
            return _submitted(request, created, f"it creates the role {dry.target_arn}.")
    except services.RequestInvalid as exc:
        _errors_shown(form, exc.errors, _CREATE_FIELDS)
        return _invalid(request, template, context)
    return render(request, template, context)


# --- clone, delete, settings: pages of one role -------------------------------------------


def _role(request: HtmxHttpRequest, account_id: str, role_name: str) -> IamRole:
    role = role_for_user(user=request.user, account_id=account_id, role_name=role_name)
    return requestable_role_for_user(user=request.user, role_id=role.pk)


def _refused(role: IamRole) -> str:
    return protected_role_refusal(role.name) if role_protected(role.arn) else ""


@login_required
@require_http_methods(["GET", "POST"])
def role_clone(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    role = _role(request, account_id, role_name)
    template = template_for(request, "requests_app/role_clone.html", "clone")
    if request.method == "GET":
        form = RoleCloneForm(initial={"account": role.account, "name": f"{role.name}-copy"})
        return render(request, template, {"role": role, "form": form, "refused": _refused(role)})
    form = RoleCloneForm(request.POST)
    context: dict[str, Any] = {"role": role, "form": form, "refused": _refused(role)}
    if not form.is_valid():
        return _invalid(request, template, context)
    data = form.cleaned_data
    arguments: dict[str, Any] = {
        "requester": request.user,
        "source": role,
        "account": data["account"],
        "name": data["name"],
        "path": data["path"],
        "parts": set(data["parts"]),
        "justification": data["justification"],
    }
    try:
        if "trust" not in data["parts"]:
            arguments["trust_policy"] = _trust(data)
        dry = services.role_clone_submit(**arguments, dry_run=True)
        assert isinstance(dry, ChangeSpec)
        context["preview"] = _preview(dry, services.role_create_findings(dry))
        if "submit" in request.POST:
            created = services.role_clone_submit(
                **arguments, findings_acknowledgement=form.acknowledgement()
            )
            assert isinstance(created, PolicyRequest)
            return _submitted(
                request, created, f"it creates {dry.target_arn}, a copy of {role.name}."
            )
    except services.RequestInvalid as exc:
        _errors_shown(form, exc.errors, _CREATE_FIELDS)
        return _invalid(request, template, context)
    return render(request, template, context)


def _delete_context(role: IamRole, form: RoleDeleteForm) -> dict[str, Any]:
    snapshot = role_snapshot(role)
    return {
        "role": role,
        "form": form,
        "audience": users_for_role(role),
        "refused": _refused(role),
        "parts": json.dumps(
            {k: v for k, v in snapshot.items() if not k.startswith("last_used")}, indent=2
        ),
    }


@login_required
@require_http_methods(["GET", "POST"])
def role_delete(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    role = _role(request, account_id, role_name)
    template = template_for(request, "requests_app/role_delete.html", "delete")
    if request.method == "GET":
        return render(request, template, _delete_context(role, RoleDeleteForm()))
    form = RoleDeleteForm(request.POST)
    if not form.is_valid():
        return _invalid(request, template, _delete_context(role, form))
    try:
        created = services.role_delete_submit(
            requester=request.user,
            role=role,
            confirmation=form.cleaned_data["confirmation"].strip(),
            reason=form.cleaned_data["reason"],
        )
    except services.RequestInvalid as exc:
        fields = {
            "changes[0].payload.confirmation": "confirmation",
            "justification": "reason",
            "findings_acknowledgement": "reason",
        }
        _errors_shown(form, exc.errors, fields)
        return _invalid(request, template, _delete_context(role, form))
    assert isinstance(created, PolicyRequest)
    return _submitted(request, created, f"it deletes the role {role.name} once approved.")


@login_required
@require_http_methods(["GET", "POST"])
def role_settings_edit(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    role = _role(request, account_id, role_name)
    template = template_for(request, "requests_app/role_settings.html", "settings")
    current = role.max_session_duration
    if request.method == "GET":
        form = RoleSettingsForm(
            initial={"description": role.description, "max_session_duration": current},
            current_duration=current,
        )
        return render(request, template, {"role": role, "form": form, "refused": _refused(role)})
    form = RoleSettingsForm(request.POST, current_duration=current)
    context: dict[str, Any] = {"role": role, "form": form, "refused": _refused(role)}
    if not form.is_valid():
        return _invalid(request, template, context)
    arguments: dict[str, Any] = {
        "requester": request.user,
        "role": role,
        "description": form.cleaned_data["description"],
        "max_session_duration": form.cleaned_data["max_session_duration"],
        "justification": form.cleaned_data["justification"],
        "expires_at": form.expires_at(),
    }
    fields = {
        "changes[0].payload.description": "description",
        "changes[0].payload.max_session_duration": "max_session_duration",
        "justification": "justification",
        "expires_at": "expires",
    }
    try:
        specs = services.role_update_submit(**arguments, dry_run=True)
        assert isinstance(specs, list)
        context["preview"] = _preview(specs[0], [])
        if "submit" in request.POST:
            created = services.role_update_submit(**arguments)
            assert isinstance(created, PolicyRequest)
            return _submitted(request, created, f"it changes the settings of {role.name}.")
    except services.RequestInvalid as exc:
        _errors_shown(form, exc.errors, fields)
        return _invalid(request, template, context)
    return render(request, template, context)
