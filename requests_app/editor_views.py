"""The role part editors' page: edit one part of a role, see the diff against
what the role has and the findings of the result, then submit an ordinary
request (reviewed, applied by a worker, audited). Works without JavaScript:
"Preview" and "Submit" are plain form posts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import CloudResource, ManagedPolicy
from accounts.selectors import policy_for_user, resource_for_user, role_for_user, role_protected
from accounts.services import role_parts
from brokering.selectors import eligible_role_ids
from iamportal.htmx import HtmxHttpRequest
from requests_app import services
from requests_app.changes import change_summary, protected_role_refusal
from requests_app.editors import (
    FORMS,
    PARTS,
    TITLES,
    DocumentForm,
    EditForm,
    access_tag_warnings,
    edit_collect,
    edit_title,
    edits_collected,
    edits_drop,
    initial_for,
    policy_choices,
    roles_to_file_under,
)
from requests_app.editors import (
    EditForm as CollectedForm,
)
from requests_app.models import Change
from requests_app.policy.diff import policy_diff
from requests_app.policy.reference import action_names
from requests_app.selectors import requestable_role_for_user
from requests_app.wizard import policy_text

TEMPLATE = "requests_app/role_part_edit.html"


def _fingerprint(part: str, key: str, desired: Any) -> str:
    """What a preview showed, so a submit can tell the form changed since."""
    text = json.dumps([part, key, desired], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _preview(role: Any, part: str, key: str, desired: Any) -> dict[str, Any]:
    """The changes the edit makes, their diff and findings, or why it is refused."""
    current = role_parts(role).get((PARTS[part], key))
    changes = services.role_part_changes(role=role, part=PARTS[part], key=key, document=desired)
    findings: list[Any] = []
    refused = ""
    if changes:
        try:
            specs = services.changes_validate(role=role, changes=changes)
            findings = list(services.changes_findings(role=role, specs=specs))
        except services.RequestInvalid as exc:
            refused = " ".join(exc.errors.values())
    return {
        "previewed": True,
        "changes": [
            change_summary(Change(type=c["type"], target_arn=c["target_arn"], payload=c["payload"]))
            for c in changes
        ],
        "diff": policy_diff(current, desired, name=TITLES[part], labels=("now", "after")),
        "findings": findings,
        "has_errors": any(f.severity == "error" for f in findings),
        "refused": refused,
        "tag_warnings": access_tag_warnings(current, desired) if part == "tags" else [],
    }


@login_required
@require_http_methods(["GET", "POST"])
def role_part_edit(
    request: HtmxHttpRequest, account_id: str, role_name: str, part: str
) -> HttpResponse:
    if part not in FORMS:
        raise Http404("No such part of a role.")
    seen = role_for_user(user=request.user, account_id=account_id, role_name=role_name)
    role = requestable_role_for_user(user=request.user, role_id=seen.pk)
    key = str(request.GET.get("policy", ""))[:128] if part == "inline" else ""
    if part == "inline" and key and key not in (role.inline_policies or {}):
        raise Http404("The role has no inline policy of this name.")
    context: dict[str, Any] = {
        "role": role,
        "part": part,
        "title": TITLES[part],
        "key": key,
        "choices": policy_choices(role) if part in ("managed", "boundary") else [],
        "refused": protected_role_refusal(role.name) if role_protected(role.arn) else "",
    }
    if request.method == "GET":
        current = role_parts(role).get((PARTS[part], key))
        context["form"] = FORMS[part](initial=initial_for(part, role, current, key))
        return render(request, TEMPLATE, context)

    form: EditForm = FORMS[part](request.POST)
    context["form"] = form
    if context["refused"] or not form.is_valid():
        return render(request, TEMPLATE, context, status=400)
    key, desired = form.desired(role)
    if form.errors:  # desired() reports what it could not read
        return render(request, TEMPLATE, context, status=400)
    context["key"] = key
    context.update(_preview(role, part, key, desired))
    if context["refused"]:
        return render(request, TEMPLATE, context, status=400)
    context["preview_of"] = _fingerprint(part, key, desired)
    context["collected"] = len(edits_collected(session=request.session, role=role))
    action = request.POST.get("action")
    if action not in ("submit", "collect") or not context["changes"]:
        return render(request, TEMPLATE, context)
    if request.POST.get("preview_of") != context["preview_of"]:
        # Submitted without previewing what is in the form now.
        form.add_error(None, "This changed since the preview: check it below, then submit.")
        return render(request, TEMPLATE, context, status=409)
    if action == "collect":
        error = edit_collect(
            session=request.session, role=role, part=part, key=key, document=desired
        )
        if error:
            form.add_error(None, error)
            return render(request, TEMPLATE, context, status=400)
        messages.success(request, f"Put aside: {TITLES[part]}. Edit another part, or submit them.")
        return redirect(
            "role_edits_collected", account_id=role.account.account_id, role_name=role.name
        )
    try:
        created = services.policy_request_changes_submit(
            requester=request.user,
            role=role,
            changes=services.role_part_changes(
                role=role, part=PARTS[part], key=key, document=desired
            ),
            justification=form.cleaned_data["justification"],
            findings_acknowledgement=form.acknowledgement(),
        )
    except services.RequestInvalid as exc:
        for field, message in exc.errors.items():
            if field == "justification":
                form.add_error("justification", message)
            elif field == "findings_acknowledgement":
                form.add_error("acknowledge", message)
            else:
                form.add_error(None, message)
        return render(request, TEMPLATE, context, status=400)
    assert not isinstance(created, list)  # not a dry run
    messages.success(request, f"Request #{created.pk} is submitted: it changes {TITLES[part]}.")
    return redirect("request_detail", pk=created.pk)


@login_required
@require_GET
@cache_control(private=True, max_age=86400)
def policy_actions(request: HtmxHttpRequest) -> JsonResponse:
    """Every IAM action the policy data knows, for the policy editor's completion."""
    return JsonResponse({"actions": action_names()})


DOCUMENT_TEMPLATE = "requests_app/document_edit.html"


def _document_edit(
    request: HtmxHttpRequest,
    *,
    target: CloudResource | ManagedPolicy,
    change_type: str,
    current: Any,
    title: str,
    context: dict[str, Any],
) -> HttpResponse:
    """Edit one policy document that is not part of a role (a resource policy, a
    customer-managed policy), filed under a role of the same account."""
    usable = set(eligible_role_ids(request.user))
    roles = roles_to_file_under(account_id=target.account_id, usable=usable)
    context |= {"target": target, "title": title, "has_roles": bool(roles)}
    if request.method == "GET":
        initial: dict[str, Any] = {"document": policy_text(current) if current else ""}
        if roles:
            initial["role"] = roles[0].pk
        context["form"] = DocumentForm(initial=initial, roles=roles)
        return render(request, DOCUMENT_TEMPLATE, context)
    form = DocumentForm(request.POST, roles=roles)
    context["form"] = form
    if not form.is_valid():
        return render(request, DOCUMENT_TEMPLATE, context, status=400)
    role = requestable_role_for_user(user=request.user, role_id=form.cleaned_data["role"])
    _, desired = form.desired(role)
    changes: list[dict[str, Any]] = [
        {"type": change_type, "target_arn": target.arn, "payload": {"document": desired}}
    ]
    findings: list[Any] = []
    refused = ""
    try:
        specs = services.changes_validate(role=role, changes=changes)
        findings = list(services.changes_findings(role=role, specs=specs))
    except services.RequestInvalid as exc:
        refused = " ".join(exc.errors.values())
    context |= {
        "previewed": True,
        "changes": []
        if refused
        else [
            change_summary(Change(type=c["type"], target_arn=c["target_arn"], payload=c["payload"]))
            for c in changes
        ],
        "diff": policy_diff(current, desired, name=title, labels=("now", "after")),
        "findings": findings,
        "has_errors": any(f.severity == "error" for f in findings),
        "refused": refused,
        "preview_of": _fingerprint(change_type, str(role.pk), desired),
    }
    if refused:
        return render(request, DOCUMENT_TEMPLATE, context, status=400)
    if request.POST.get("action") != "submit":
        return render(request, DOCUMENT_TEMPLATE, context)
    if request.POST.get("preview_of") != context["preview_of"]:
        form.add_error(None, "This changed since the preview: check it below, then submit.")
        return render(request, DOCUMENT_TEMPLATE, context, status=409)
    try:
        created = services.policy_request_changes_submit(
            requester=request.user,
            role=role,
            changes=changes,
            justification=form.cleaned_data["justification"],
            findings_acknowledgement=form.acknowledgement(),
        )
    except services.RequestInvalid as exc:
        for field, message in exc.errors.items():
            if field == "justification":
                form.add_error("justification", message)
            elif field == "findings_acknowledgement":
                form.add_error("acknowledge", message)
            else:
                form.add_error(None, message)
        return render(request, DOCUMENT_TEMPLATE, context, status=400)
    assert not isinstance(created, list)  # not a dry run
    messages.success(request, f"Request #{created.pk} is submitted: it changes {title}.")
    return redirect("request_detail", pk=created.pk)


@login_required
@require_http_methods(["GET", "POST"])
def resource_policy_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    resource = resource_for_user(user=request.user, pk=pk)
    return _document_edit(
        request,
        target=resource,
        change_type=Change.Type.RESOURCE_POLICY_PUT,
        current=resource.policy,
        title=f"the policy of {resource.name}",
        context={"back": reverse("resource_detail", args=[resource.pk])},
    )


@login_required
@require_http_methods(["GET", "POST"])
def managed_policy_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    policy = policy_for_user(user=request.user, pk=pk)
    return _document_edit(
        request,
        target=policy,
        change_type=Change.Type.MANAGED_POLICY_VERSION,
        current=policy.document,
        title=f"the managed policy {policy.name} (a new default version)",
        context={"back": reverse("policy_detail", args=[policy.pk])},
    )


@login_required
@require_GET
def resource_request_access(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """ "Request access to this": the wizard for the chosen role, on this resource."""
    resource = resource_for_user(user=request.user, pk=pk)
    try:
        role_id = int(request.GET.get("role", ""))
    except ValueError:
        return redirect("resource_detail", pk=resource.pk)
    role = requestable_role_for_user(user=request.user, role_id=role_id)
    url = reverse("request_permissions", args=[role.pk])
    return redirect(f"{url}?{urlencode({'service': resource.type, 'resource': resource.arn})}")


COLLECTED_TEMPLATE = "requests_app/role_edits_collected.html"


@login_required
@require_http_methods(["GET", "POST"])
def role_edits_collected(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    """The edits put aside for one role, each with its diff, submitted as one request."""
    seen = role_for_user(user=request.user, account_id=account_id, role_name=role_name)
    role = requestable_role_for_user(user=request.user, role_id=seen.pk)
    edits = edits_collected(session=request.session, role=role)
    if request.method == "POST" and request.POST.get("action") == "discard":
        edits_drop(session=request.session, role=role)
        messages.info(request, "The collected edits are discarded.")
        return redirect("role_detail", account_id=role.account.account_id, role_name=role.name)
    shown = []
    changes: list[dict[str, Any]] = []
    for edit in edits:
        current = role_parts(role).get((PARTS[edit["part"]], edit["key"]))
        found = services.role_part_changes(
            role=role, part=PARTS[edit["part"]], key=edit["key"], document=edit["document"]
        )
        changes.extend(found)
        shown.append(
            {
                "title": edit_title(edit),
                "diff": policy_diff(
                    current, edit["document"], name=edit_title(edit), labels=("now", "after")
                ),
                "unchanged": not found,
            }
        )
    findings: list[Any] = []
    refused = protected_role_refusal(role.name) if role_protected(role.arn) else ""
    if changes and not refused:
        try:
            specs = services.changes_validate(role=role, changes=changes)
            findings = list(services.changes_findings(role=role, specs=specs))
        except services.RequestInvalid as exc:
            refused = " ".join(exc.errors.values())
    form = CollectedForm(request.POST if request.method == "POST" else None)
    context = {
        "role": role,
        "edits": shown,
        "changes": [
            change_summary(Change(type=c["type"], target_arn=c["target_arn"], payload=c["payload"]))
            for c in changes
        ],
        "findings": findings,
        "has_errors": any(f.severity == "error" for f in findings),
        "refused": refused,
        "form": form,
        "preview_of": _fingerprint("collected", str(role.pk), changes),
    }
    if request.method == "GET":
        return render(request, COLLECTED_TEMPLATE, context)
    if refused or not changes or not form.is_valid():
        return render(request, COLLECTED_TEMPLATE, context, status=400)
    if request.POST.get("preview_of") != context["preview_of"]:
        form.add_error(
            None, "The collected edits changed since this page was shown: check them again."
        )
        return render(request, COLLECTED_TEMPLATE, context, status=409)
    try:
        created = services.policy_request_changes_submit(
            requester=request.user,
            role=role,
            changes=changes,
            justification=form.cleaned_data["justification"],
            findings_acknowledgement=form.acknowledgement(),
        )
    except services.RequestInvalid as exc:
        for field, message in exc.errors.items():
            if field == "justification":
                form.add_error("justification", message)
            elif field == "findings_acknowledgement":
                form.add_error("acknowledge", message)
            else:
                form.add_error(None, message)
        return render(request, COLLECTED_TEMPLATE, context, status=400)
    assert not isinstance(created, list)  # not a dry run
    edits_drop(session=request.session, role=role)
    messages.success(request, f"Request #{created.pk} is submitted with {len(edits)} edits.")
    return redirect("request_detail", pk=created.pk)
