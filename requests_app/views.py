"""The self-service wizard and the request pages.

Step 1 picks the role, step 2 collects permissions (by service, from a
template, or as raw JSON), step 3 reviews the policy and submits it. Every
step has its own URL. The draft (`requests_app/wizard.py`) lives in the session,
one per role; nothing reaches the database before "Submit".

Status codes: a form with errors answers a plain POST with 400 and the whole
page again, errors shown; it answers an htmx request with 200 and the swapped
region, errors shown, because htmx swaps only 2xx answers and a 4xx would
leave the page as it was, the error unseen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from accounts.denied import denied_call_of_role, denied_call_suggestion
from accounts.models import AwsAccount, CloudResource, IamRole, ManagedPolicy, RoleVersion
from accounts.selectors import (
    PolicyUse,
    policy_uses,
    resources_search,
    role_protected,
    role_version_for_user,
    roles_search,
    spoke_role_names,
)
from accounts.services import role_parts
from brokering.selectors import RoleAmbiguous, eligible_role_ids
from iamportal.htmx import HtmxHttpRequest, region_only, template_for
from iamportal.parsers import JSON_MAX_DEPTH, json_nesting_depth
from iamportal.permissions import is_reviewer
from requests_app import services
from requests_app.changes import (
    ChangeSpec,
    change_document,
    change_summary,
    change_type,
    cross_account_changes,
    protected_role_refusal,
)
from requests_app.findings import ChangeFinding, request_findings
from requests_app.forms import (
    DOCUMENT_MAX_LENGTH,
    AccessRequestForm,
    ChangeEditForm,
    ExtendForm,
    LintForm,
    PermissionForm,
    RawPolicyForm,
    RestoreForm,
    ReviewForm,
    RoleSearchForm,
    TemplateValuesForm,
    intent_as_dict,
)
from requests_app.guardrails import ChangeGuardrails, changes_guardrails
from requests_app.models import Change, PolicyRequest, PolicyTemplate
from requests_app.policy.diff import DiffLine, policy_diff
from requests_app.policy.generate import (
    crud_service_list,
)
from requests_app.policy.limits import INLINE_POLICIES_MAX_SIZE
from requests_app.policy.lint import Finding, policy_lint
from requests_app.policy.templates import VALUE_MAX_LENGTH, TemplateInvalid, template_parameters
from requests_app.revision import revision_compute, revision_short
from requests_app.selectors import (
    request_for_user,
    requestable_role_for_user,
    requestable_role_resolve,
    requests_filtered,
    requests_listed,
    requests_of,
)
from requests_app.wizard import (
    ALREADY_IN_DRAFT,
    EMPTY_POLICY,
    Draft,
    DraftPolicy,
    draft_add,
    draft_drop,
    draft_load,
    draft_policy,
    draft_save,
    draft_too_big,
    inventory_warnings,
    policy_text,
)

ROLE_RESULTS = 20
# Services whose resources the typeahead offers from the inventory.
RESOURCE_TYPES = {
    "s3": CloudResource.Type.S3,
    "sqs": CloudResource.Type.SQS,
    "sns": CloudResource.Type.SNS,
}
RESOURCE_RESULTS = 50
REQUESTS_PAGE_SIZE = 50


def _invalid_status(request: HtmxHttpRequest) -> int:
    return 200 if request.htmx else 400


class _RoleProtected(Exception):
    def __init__(self, role: IamRole) -> None:
        super().__init__(role.arn)
        self.role = role


def _wizard_role(request: HtmxHttpRequest, role_id: int) -> IamRole:
    """The role a wizard step is about (the requests' access gate), except
    iamportal's own roles: the step answers with step 1 and why."""
    role = requestable_role_for_user(user=request.user, role_id=role_id)
    if role_protected(role.arn):
        raise _RoleProtected(role)
    return role


def _protected_role_refused(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """A wizard step for one of iamportal's own roles (step 1 never offers them,
    but a URL can name one) answers with step 1 and a form error saying why."""

    @functools.wraps(view)
    def wrapped(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except _RoleProtected as exc:
            form = RoleSearchForm({"q": exc.role.name})
            form.is_valid()
            form.add_error("q", protected_role_refusal(exc.role.name) + " Choose another role.")
            context = {"form": form, "choices": [], "more": False, "own": []}
            return render(request, "requests_app/request_new.html", context, status=400)

    return wrapped


# --- shown pieces -------------------------------------------------------------------


def _rate_limited(request: HtmxHttpRequest) -> str:
    """Why this lint, generation or dry run is refused (too many this minute), or
    nothing when it may go ahead."""
    try:
        services.policy_tools_rate_check(user=request.user)
    except services.PolicyToolsRateLimited as exc:
        return exc.message
    return ""


def _others_size(role: IamRole | None, policy_name: str | None) -> int:
    policies = (role.inline_policies or {}) if role is not None else {}
    return services.inline_policies_size({k: v for k, v in policies.items() if k != policy_name})


def _lint(
    document: dict[str, Any] | str, role: IamRole | None, policy_name: str | None
) -> list[Finding]:
    return policy_lint(document, other_inline_policies_size=_others_size(role, policy_name))


def _lint_text(text: str, role: IamRole) -> tuple[list[Finding], str]:
    """Findings for the editor's text (a new policy: every current one counts
    against the size limit), or why it was not linted."""
    if len(text) > DOCUMENT_MAX_LENGTH:
        return [], f"A policy document here is at most {DOCUMENT_MAX_LENGTH:,} characters."
    if json_nesting_depth(text) > JSON_MAX_DEPTH:
        return [], f"The JSON is nested more than {JSON_MAX_DEPTH} levels deep."
    if not text.strip():
        return [], ""
    return _lint(text, role, None), ""


# --- step 1: the role ---------------------------------------------------------------


@dataclass(frozen=True)
class RoleChoice:
    role: IamRole
    may_use: bool
    cli_only: bool


def _roles_offered(roles: Iterable[IamRole]) -> tuple[list[IamRole], list[IamRole]]:
    """Up to ROLE_RESULTS + 1 of `roles` a request may be about, and iamportal's
    own roles passed over on the way, which step 1 names but does not offer."""
    offered: list[IamRole] = []
    own: list[IamRole] = []
    spokes = spoke_role_names()
    for role in roles:
        if role_protected(role.arn, spoke_names=spokes):
            own.append(role)
            continue
        offered.append(role)
        if len(offered) > ROLE_RESULTS:
            break
    return offered, own


@login_required
@require_GET
@vary_on_headers("HX-Request")
def request_new(request: HtmxHttpRequest) -> HttpResponse:
    form = RoleSearchForm(request.GET)
    choices: list[RoleChoice] = []
    own: list[IamRole] = []
    more = False
    if form.is_valid():
        found, own = _roles_offered(
            roles_search(query=form.cleaned_data["q"].strip(), account_id=None).iterator(
                chunk_size=2 * ROLE_RESULTS
            )
        )
        more = len(found) > ROLE_RESULTS
        eligible = eligible_role_ids(request.user)
        choices = [
            RoleChoice(role, role.pk in eligible, eligible.get(role.pk, False))
            for role in found[:ROLE_RESULTS]
        ]
    context = {"form": form, "choices": choices, "more": more, "own": own}
    return render(
        request, template_for(request, "requests_app/request_new.html", "results"), context
    )


# --- step 2: the permissions --------------------------------------------------------


def _template_defaults(role: IamRole) -> dict[str, str]:
    """Values a template parameter of that name starts with: the role's own account."""
    regions = role.account.sync_regions
    return {"account_id": role.account.account_id, "region": regions[0] if regions else ""}


def _template_prefill(request: HtmxHttpRequest, template: PolicyTemplate | None) -> dict[str, str]:
    """Values for the template's parameters given in the address (a link from the
    Databases page fills in the database); checked like typed values on Add."""
    if template is None:
        return {}
    try:
        declared = template_parameters(template.parameters)
    except TemplateInvalid:
        return {}
    return {
        p.name: str(request.GET[p.name])[:VALUE_MAX_LENGTH]
        for p in declared
        if request.GET.get(p.name)
    }


def _chosentemplate_for(value: object) -> PolicyTemplate | None:
    try:
        pk = int(str(value))
    except ValueError:
        return None
    return PolicyTemplate.objects.filter(pk=pk, enabled=True).first()


def _workspace(
    request: HtmxHttpRequest,
    role: IamRole,
    draft: Draft,
    *,
    permission_form: PermissionForm | None = None,
    template_form: TemplateValuesForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """Step 2: the page, or its workspace region (the forms, the permissions
    added so far and the policy they make)."""
    if permission_form is None:
        service = str(request.GET.get("service", ""))[:64]
        resource = str(request.GET.get("resource", ""))[:2048]
        permission_form = PermissionForm(
            service=service, initial={"service": service, "resource": resource}
        )
    if template_form is None:
        template = _chosentemplate_for(request.GET.get("template", ""))
        template_form = TemplateValuesForm(
            template=template,
            defaults=_template_defaults(role),
            prefill=_template_prefill(request, template),
        )
    spec = permission_form.spec
    typeahead = spec is not None and spec.key in RESOURCE_TYPES
    policy = draft_policy(draft)
    context = {
        "role": role,
        "draft": draft,
        "policy": policy,
        "inventory_warnings": inventory_warnings(policy.document),
        "permission_form": permission_form,
        "template_form": template_form,
        "templates": PolicyTemplate.objects.filter(enabled=True),
        "typeahead": typeahead,
        "resources": _resource_options(spec.key, "") if spec is not None and typeahead else [],
        "region_only": region_only(request),
        "other_services": crud_service_list() if permission_form.is_other else [],
    }
    name = template_for(request, "requests_app/request_permissions.html", "workspace")
    return render(request, name, context, status=status)


def _to_permissions(
    request: HtmxHttpRequest, role: IamRole, draft: Draft, *, service: str = ""
) -> HttpResponse:
    """After a change to the draft: the fresh workspace for htmx (the same
    service chosen, to add another of its kind), a redirect otherwise."""
    if request.htmx and not request.htmx.boosted:
        form = PermissionForm(service=service, initial={"service": service})
        return _workspace(request, role, draft, permission_form=form)
    url = reverse("request_permissions", args=[role.pk])
    return redirect(f"{url}?{urlencode({'service': service})}" if service else url)


@login_required
@require_GET
@vary_on_headers("HX-Request")
@_protected_role_refused
def request_permissions(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    role = _wizard_role(request, role_id)
    return _workspace(request, role, draft_load(session=request.session, role=role))


@login_required
@require_POST
@_protected_role_refused
def request_permission_add(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    role = _wizard_role(request, role_id)
    draft = draft_load(session=request.session, role=role)
    form = PermissionForm(request.POST)
    limited = _rate_limited(request)
    if limited:
        form.add_error(None, limited)
    elif form.is_valid() and form.intent is not None:
        label = form.label()
        error = draft_add(
            draft, {"kind": "intent", "label": label, "intent": intent_as_dict(form.intent)}
        )
        if not error:
            draft_save(session=request.session, role=role, draft=draft)
            messages.success(request, f"Added: {label}.")
            return _to_permissions(request, role, draft, service=form.cleaned_data["service"])
        form.add_error(None, error)
    status = _invalid_status(request)
    return _workspace(request, role, draft, permission_form=form, status=status)


@login_required
@require_POST
@_protected_role_refused
def request_template_add(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    role = _wizard_role(request, role_id)
    draft = draft_load(session=request.session, role=role)
    template = _chosentemplate_for(request.POST.get("template", ""))
    form = TemplateValuesForm(request.POST, template=template, defaults=_template_defaults(role))
    if form.is_valid() and template is not None and form.document is not None:
        values = ", ".join(f"{k}={v}" for k, v in form.values().items())
        label = f"{template.name} ({values})" if values else template.name
        error = draft_add(draft, {"kind": "template", "label": label, "document": form.document})
        if not error:
            draft_save(session=request.session, role=role, draft=draft)
            messages.success(request, f"Added: {label}.")
            return _to_permissions(request, role, draft)
        form.add_error(None, error)
    status = _invalid_status(request)
    return _workspace(request, role, draft, template_form=form, status=status)


@login_required
@require_POST
@_protected_role_refused
def request_denied_call(request: HtmxHttpRequest, role_id: int, call_id: int) -> HttpResponse:
    """ "Request this" on a call AWS denied: its least-privilege statement joins the
    role's draft, and the requester lands on the review step."""
    role = _wizard_role(request, role_id)
    call = denied_call_of_role(role=role, pk=call_id)
    suggestion = denied_call_suggestion(call)
    if suggestion.policy is None:
        messages.error(request, f"No grant can be generated for this call: {suggestion.reason}")
        return redirect("role_detail", account_id=role.account.account_id, role_name=role.name)
    draft = draft_load(session=request.session, role=role)
    if draft.raw is not None:
        messages.error(
            request,
            "This request's policy is being edited as JSON: add the statement there, or "
            "discard the hand edits first.",
        )
        return redirect("request_editor", role_id=role.pk)
    label = f"Denied call: {call.action} on {call.resource}"
    error = draft_add(
        draft, {"kind": "template", "label": label, "document": suggestion.policy.document}
    )
    if error and error != ALREADY_IN_DRAFT:
        messages.error(request, error)
        return redirect("request_permissions", role_id=role.pk)
    draft_save(session=request.session, role=role, draft=draft)
    if not error:
        messages.success(request, f"Added: {label}.")
    return redirect("request_review", role_id=role.pk)


@login_required
@require_POST
@_protected_role_refused
def request_permission_remove(request: HtmxHttpRequest, role_id: int, index: int) -> HttpResponse:
    role = _wizard_role(request, role_id)
    draft = draft_load(session=request.session, role=role)
    if not 0 <= index < len(draft.permissions):
        raise Http404("No such permission in this request.")
    removed = draft.permissions.pop(index)
    draft_save(session=request.session, role=role, draft=draft)
    messages.info(request, f"Removed: {removed.get('label', 'the permission')}.")
    return _to_permissions(request, role, draft)


def _resource_options(service: str, query: str) -> list[CloudResource]:
    found = resources_search(query=query, account_id=None, resource_type=RESOURCE_TYPES[service])
    return list(found[:RESOURCE_RESULTS])


@login_required
@require_GET
@_protected_role_refused
def request_resources(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    """The typeahead: inventory resources of the chosen service matching what was typed."""
    role = _wizard_role(request, role_id)
    service = str(request.GET.get("service", ""))
    query = str(request.GET.get("resource", "")).strip()[:200]
    resources = _resource_options(service, query) if service in RESOURCE_TYPES else []
    context = {"role": role, "resources": resources}
    return render(request, "requests_app/request_permissions.html#resource_options", context)


# --- step 2: raw JSON ---------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@_protected_role_refused
def request_editor(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    role = _wizard_role(request, role_id)
    draft = draft_load(session=request.session, role=role)
    status = 200
    if request.method == "POST":
        form = RawPolicyForm(request.POST)
        if form.is_valid():
            edited = Draft(permissions=draft.permissions, raw=form.cleaned_data["document"])
            error = draft_too_big(edited)
            if not error:
                draft_save(session=request.session, role=role, draft=edited)
                messages.success(request, "Your policy document is saved; review it below.")
                return redirect("request_review", role_id=role.pk)
            form.add_error("document", error)
        status = _invalid_status(request)
        text = str(request.POST.get("document", ""))
    else:
        policy = draft_policy(draft)
        text = policy.text or policy_text(EMPTY_POLICY)
        form = RawPolicyForm(initial={"document": text})
    findings, lint_error = _lint_text(text, role)
    context = {
        "role": role,
        "draft": draft,
        "form": form,
        "findings": findings,
        "lint_error": lint_error,
    }
    return render(request, "requests_app/request_editor.html", context, status=status)


@login_required
@require_POST
@_protected_role_refused
def request_editor_lint(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    """Live lint of the editor's text (a partial, so always 200: see the module doc)."""
    role = _wizard_role(request, role_id)
    form = LintForm(request.POST)
    findings: list[Finding] = []
    error = _rate_limited(request)
    if not error and form.is_valid():
        findings, error = _lint_text(form.cleaned_data["document"], role)
    elif not error:
        error = "; ".join(str(e) for errors in form.errors.values() for e in errors)
    context = {"role": role, "findings": findings, "lint_error": error}
    return render(request, "requests_app/request_editor.html#findings", context)


@login_required
@require_POST
@_protected_role_refused
def request_editor_discard(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    """Back to the builder: the hand-edited JSON goes, the permissions stay."""
    role = _wizard_role(request, role_id)
    draft = draft_load(session=request.session, role=role)
    if draft.raw is not None:
        draft.raw = None
        draft_save(session=request.session, role=role, draft=draft)
        messages.info(request, "Your JSON edits are discarded; the policy is generated again.")
    return redirect("request_permissions", role_id=role.pk)


# --- step 3: review and submit ------------------------------------------------------


@dataclass(frozen=True)
class CrossAccountShown:
    """A change iamportal adds in another account, as the review step shows it
    before Submit: what it is, and its diff against the policy there now."""

    spec: ChangeSpec
    summary: str
    diff: list[DiffLine]
    text: str


def _cross_account_shown(specs: list[ChangeSpec]) -> list[CrossAccountShown]:
    shown = []
    for spec in specs:
        # Not saved: the registry describes it exactly as it will the stored change.
        change = Change(
            type=spec.type,
            target_arn=spec.target_arn,
            account_id=spec.account_id,
            payload=spec.payload,
            previous=spec.previous,
            automatic=spec.automatic,
            note=spec.note,
        )
        documents = change_document(change)
        name = spec.target_arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        diff = policy_diff(documents[0], documents[1], name=name) if documents else []
        shown.append(
            CrossAccountShown(spec, change_summary(change), diff, policy_text(spec.payload))
        )
    return shown


def _review_context(
    role: IamRole,
    policy: DraftPolicy,
    form: ReviewForm,
    policy_name: str,
    preview: services.RequestPreview | None = None,
) -> dict[str, Any]:
    previous = (role.inline_policies or {}).get(policy_name)
    findings = _draft_findings(role, policy, policy_name, preview)
    if preview is not None:
        automatic = preview.automatic
    elif policy.document:
        automatic = cross_account_changes(role=role, document=policy.document)
    else:
        automatic = []
    return {
        "role": role,
        "guardrails": _draft_guardrails(role, policy, policy_name),
        # Shown in full before submitting: what iamportal adds in the other accounts.
        "cross_account": _cross_account_shown(automatic),
        "policy": policy,
        "inventory_warnings": inventory_warnings(policy.document),
        "form": form,
        "policy_name": policy_name,
        "diff": policy_diff(previous, policy.document, name=policy_name) if policy.document else [],
        "replaces": previous is not None,
        "findings": findings,
        "has_errors": any(f.severity == "error" for f in findings),
        "inline_policies": sorted((role.inline_policies or {}).keys()),
        "preview": preview,
        "limit": INLINE_POLICIES_MAX_SIZE,
    }


def _draft_findings(
    role: IamRole,
    policy: DraftPolicy,
    policy_name: str,
    preview: services.RequestPreview | None,
) -> list[Any]:
    """The findings a submission would carry: the policy's own lint and what the
    role could do with it together with what it has."""
    if preview is not None:
        return list(preview.findings)
    if policy.document is None:
        return []
    spec = ChangeSpec(
        type=Change.Type.INLINE_POLICY_PUT,
        target_arn=role.arn,
        account_id=role.account.account_id,
        payload={"policy_name": policy_name, "document": policy.document},
        previous=(role.inline_policies or {}).get(policy_name),
    )
    return request_findings(role=role, changes=[spec])


def _draft_guardrails(role: IamRole, policy: DraftPolicy, policy_name: str) -> ChangeGuardrails:
    """What the account's SCPs and the role's boundary would deny of the draft's policy."""
    if policy.document is None:
        return ChangeGuardrails(notes=[])
    spec = ChangeSpec(
        type=Change.Type.INLINE_POLICY_PUT,
        target_arn=role.arn,
        account_id=role.account.account_id,
        payload={"policy_name": policy_name, "document": policy.document},
        previous=None,
    )
    return changes_guardrails(role=role, changes=[spec])[0]


def _request_errors(form: ReviewForm, errors: dict[str, str]) -> None:
    for key, message in errors.items():
        if key == "expires_at":
            chosen = form.cleaned_data.get("expiry")
            form.add_error("expiry_date" if chosen == "date" else "expiry", message)
        elif key in ("justification", "policy_name"):
            form.add_error(key, message)
        elif key == "findings_acknowledgement":
            form.add_error("acknowledge", message)
        else:
            form.add_error(None, message)


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@_protected_role_refused
def request_review(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    role = _wizard_role(request, role_id)
    draft = draft_load(session=request.session, role=role)
    policy = draft_policy(draft)
    template = template_for(request, "requests_app/request_review.html", "review")
    if request.method == "GET":
        name = services.default_policy_name(role, document=policy.document)
        form = ReviewForm(initial={"policy_name": name, "expiry": ""})
        return render(request, template, _review_context(role, policy, form, name))

    form = ReviewForm(request.POST)
    valid = form.is_valid()
    name = (form.cleaned_data.get("policy_name") or "").strip() if valid else ""
    name = name or services.default_policy_name(role, document=policy.document)
    preview = None
    dry_run = request.POST.get("action") != "submit"
    limited = _rate_limited(request) if dry_run and valid else ""
    if limited:
        form.add_error(None, limited)
    elif valid and policy.document is None:
        form.add_error(None, policy.error)
    elif valid and policy.document is not None:
        try:
            preview = services.policy_request_preview(
                role=role,
                document=policy.document,
                justification=form.cleaned_data["justification"],
                policy_name=name,
                expires_at=form.expires_at(),
            )
        except services.RequestInvalid as exc:
            _request_errors(form, exc.errors)
    if preview is None:
        context = _review_context(role, policy, form, name)
        return render(request, template, context, status=_invalid_status(request))
    if not dry_run:
        try:
            created = services.policy_request_submit(
                requester=request.user,
                preview=preview,
                findings_acknowledgement=form.acknowledgement(),
            )
        except services.RequestInvalid as exc:
            _request_errors(form, exc.errors)
            context = _review_context(role, policy, form, name, preview)
            return render(request, template, context, status=_invalid_status(request))
        draft_drop(session=request.session, role=role)
        messages.success(request, f"Request #{created.pk} is submitted; reviewers are on it.")
        url = reverse("request_detail", args=[created.pk])
        if request.htmx and not request.htmx.boosted:
            return HttpResponseClientRedirect(url)
        return redirect(url)
    return render(request, template, _review_context(role, policy, form, name, preview))


# --- request pages ------------------------------------------------------------------


@login_required
@require_GET
def request_list(request: HtmxHttpRequest) -> HttpResponse:
    requests = requests_of(request.user).select_related("role")
    page = Paginator(requests, REQUESTS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "requests_app/request_list.html", {"page": page})


@dataclass(frozen=True)
class ChangeShown:
    change: Change
    summary: str
    diff: list[DiffLine]
    findings: list[Any]
    linted: bool
    editable: bool
    # A rejected edit: the text as typed, and what is wrong with it.
    edit_text: str = ""
    edit_errors: list[str] = field(default_factory=list)
    # A managed policy's new version reaches every role that uses the policy.
    uses: list[PolicyUse] = field(default_factory=list)
    # Attachments AWS counted (users and groups too) that the inventory's roles do not explain.
    uses_unlisted: int = 0
    # What the account's SCPs and the role's permissions boundary would deny of it.
    guardrails: ChangeGuardrails | None = None

    @property
    def attached_to(self) -> list[PolicyUse]:
        return [use for use in self.uses if use.attached]

    @property
    def boundary_of(self) -> list[PolicyUse]:
        return [use for use in self.uses if use.boundary]


def _stored_finding(stored: dict[str, Any]) -> Any:
    return ChangeFinding(
        change=int(stored.get("change") or 0),
        severity=stored.get("severity", "info"),
        code=str(stored.get("code", "")),
        title=str(stored.get("title", "")),
        detail=str(stored.get("detail", "")),
        location=str(stored.get("location", "")),
    )


def _change_shown(
    policy_request: PolicyRequest,
    change: Change,
    *,
    position: int,
    mine: bool,
    edit: tuple[int, str, list[str]] | None = None,
) -> ChangeShown:
    documents = change_document(change)
    diff: list[DiffLine] = []
    findings: list[Any] = []
    linted = bool(policy_request.risk)
    if linted:
        # As judged at submit or at the last edit: what the reviewers approve.
        findings = [
            _stored_finding(f)
            for f in policy_request.findings or []
            if isinstance(f, dict) and f.get("change") == position
        ]
    if documents is not None:
        before, after = documents
        payload = change.payload if isinstance(change.payload, dict) else {}
        name = str(payload.get("policy_name", "")) or change.target_arn.rsplit("/", 1)[-1]
        diff = policy_diff(before, after, name=name)
        if not linted and change_type(change.type).linted and isinstance(after, dict):
            findings = _lint(after, policy_request.role, payload.get("policy_name"))
            linted = True
    edited = edit is not None and edit[0] == change.pk
    uses: list[PolicyUse] = []
    unlisted = 0
    if change.type == Change.Type.MANAGED_POLICY_VERSION:
        uses = policy_uses(policy_arn=change.target_arn)
        counted = ManagedPolicy.objects.filter(arn=change.target_arn).values_list(
            "attachment_count", flat=True
        )
        unlisted = max(0, (counted.first() or 0) - sum(1 for use in uses if use.attached))
    return ChangeShown(
        change=change,
        summary=change_summary(change),
        diff=diff,
        findings=findings,
        linted=linted,
        editable=mine and policy_request.is_open and not change.automatic,
        edit_text=edit[1] if edit is not None and edited else policy_text(change.payload),
        edit_errors=edit[2] if edit is not None and edited else [],
        uses=uses,
        uses_unlisted=unlisted,
    )


def _status_context(policy_request: PolicyRequest, changes: list[Change]) -> dict[str, Any]:
    """What the request's status region shows: the facts about the request that
    a background job changes, and how far its changes got."""
    approvals = list(policy_request.approvals.select_related("reviewer"))
    # Of exactly the rows shown: the approve form carries it, and the service
    # refuses it if the request changed in the meantime.
    revision = revision_compute(changes, policy_request.expires_at)
    return {
        "policy_request": policy_request,
        "approvals": approvals,
        "revision": revision,
        "revision_short": revision_short(revision),
        "extensions": policy_request.extensions.all(),
        "change_states": changes,
        "changes_applied": sum(1 for c in changes if c.status == Change.Status.APPLIED),
    }


def _detail(
    request: HtmxHttpRequest,
    policy_request: PolicyRequest,
    *,
    edit: tuple[int, str, list[str]] | None = None,
    extend_form: ExtendForm | None = None,
    approve_error: str = "",
    status: int = 200,
) -> HttpResponse:
    # Which forms to show; the services decide whether the action is allowed.
    reviewer = is_reviewer(request.user)
    mine = policy_request.requester_id == request.user.pk
    changes = list(policy_request.changes.all())
    facts = _status_context(policy_request, changes)
    can_extend = (
        mine
        and policy_request.status == PolicyRequest.Status.APPLIED
        and policy_request.expires_at is not None
    )
    guardrails = changes_guardrails(role=policy_request.role, changes=changes)
    context = {
        **facts,
        "changes": [
            replace(
                _change_shown(policy_request, c, position=position, mine=mine, edit=edit),
                guardrails=guardrails[position],
            )
            for position, c in enumerate(changes)
        ],
        "approve_error": approve_error,
        "error_findings": policy_request.risk == PolicyRequest.Risk.ERROR,
        "events": policy_request.events.select_related("actor"),
        "approved_by_me": any(a.reviewer_id == request.user.pk for a in facts["approvals"]),
        "approve_refusal": (
            services.approval_groups_refusal(policy_request, request.user) if reviewer else None
        ),
        "is_reviewer": reviewer,
        "show_review": reviewer and policy_request.is_open,
        "show_cancel": mine and policy_request.is_open,
        "show_retry": reviewer and policy_request.status == PolicyRequest.Status.FAILED,
        "show_extend": can_extend,
        "show_end_grant": (mine or reviewer)
        and policy_request.kind == PolicyRequest.Kind.ACCESS
        and policy_request.status == PolicyRequest.Status.APPLIED,
        "extend_form": extend_form or ExtendForm(),
        "reason_max": services.REASON_MAX_LENGTH,
        "comment_max": services.COMMENT_MAX_LENGTH,
    }
    return render(request, "requests_app/request_detail.html", context, status=status)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def request_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """The request. While a background job applies it (or removes expired access)
    its status region polls this page, which answers htmx with the region alone;
    the region stops polling once the request is no longer in progress."""
    policy_request = request_for_user(user=request.user, pk=pk)
    if region_only(request):
        context = {**_status_context(policy_request, list(policy_request.changes.all()))}
        context["polled"] = True
        return render(request, "requests_app/request_detail.html#status", context)
    return _detail(request, policy_request)


@login_required
@require_POST
def change_edit(request: HtmxHttpRequest, pk: int, change_id: int) -> HttpResponse:
    """The requester rewrites a change of their pending request."""
    policy_request = request_for_user(user=request.user, pk=pk)
    if not policy_request.changes.filter(pk=change_id).exists():
        raise Http404("No such change.")
    form = ChangeEditForm(request.POST)
    text = str(request.POST.get("payload", ""))
    if not form.is_valid():
        errors = [str(e) for e in form.errors.get("payload", ["Give the change as JSON."])]
        return _detail(request, policy_request, edit=(change_id, text, errors), status=400)
    acknowledged = request.POST.get("acknowledge") == "on"
    try:
        services.change_edit(
            change_id=change_id,
            editor=request.user,
            payload=form.cleaned_data["payload"],
            findings_acknowledgement=(
                str(request.POST.get("acknowledgement_reason", "")) if acknowledged else ""
            ),
        )
    except services.RequestInvalid as exc:
        errors = [f"{key}: {message}" for key, message in exc.errors.items()]
        return _detail(request, policy_request, edit=(change_id, text, errors), status=400)
    except services.RequestActionRefused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "The change is updated; reviewers see the new version.")
    return redirect("request_detail", pk=pk)


@login_required
@require_POST
def request_extend(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Ask to keep temporary access longer."""
    policy_request = request_for_user(user=request.user, pk=pk)
    form = ExtendForm(request.POST)
    if not form.is_valid():
        return _detail(request, policy_request, extend_form=form, status=400)
    current = policy_request.expires_at
    try:
        # The service says why a permanent or finished request cannot be extended.
        extension = services.policy_request_extend(
            request_id=pk,
            requester=request.user,
            expires_at=form.expires_at(current) if current is not None else None,
            justification=form.cleaned_data["justification"],
        )
    except services.RequestInvalid as exc:
        for key, message in exc.errors.items():
            form.add_error(key if key in form.fields else None, message)
        return _detail(request, policy_request, extend_form=form, status=400)
    except services.RequestActionRefused as exc:
        messages.error(request, exc.message)
        return redirect("request_detail", pk=pk)
    messages.success(
        request,
        f"Extension requested as #{extension.pk}; reviewers decide on it as on any request.",
    )
    return redirect("request_detail", pk=extension.pk)


def _request_act(
    request: HtmxHttpRequest, pk: int, action: Callable[[], object], done: str
) -> HttpResponse:
    """Run a review action and go back to the request page, saying what happened
    or why it was refused."""
    try:
        action()
    except services.RequestActionRefused as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done)
    return redirect("request_detail", pk=pk)


@login_required
@require_POST
def request_approve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    policy_request = request_for_user(user=request.user, pk=pk, for_review=True)
    revision = str(request.POST.get("revision", ""))[: services.REVISION_MAX_LENGTH]
    try:
        approved = services.policy_request_approve(
            request_id=pk,
            reviewer=request.user,
            revision=revision,
            findings_acknowledged=request.POST.get("findings_acknowledged") == "on",
        )
    except services.FindingsNotAcknowledged:
        error = "Tick the box to confirm you have read the error findings before approving."
        return _detail(request, policy_request, approve_error=error, status=400)
    except services.RequestActionRefused as exc:
        # A stale revision: the page it comes back to shows the new version.
        messages.error(request, exc.message)
        return redirect("request_detail", pk=pk)
    given = approved.approvals.filter(revision=approved.revision).count()
    if approved.status == PolicyRequest.Status.PENDING:
        messages.success(
            request,
            f"Your approval is recorded ({given} of {approved.approvals_required}); "
            "another reviewer must approve too.",
        )
    else:
        messages.success(request, f"Request #{pk} is approved; its changes are being applied.")
    return redirect("request_detail", pk=pk)


@login_required
@require_POST
def request_reject(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    policy_request = request_for_user(user=request.user, pk=pk, for_review=True)
    reason = str(request.POST.get("reason", ""))
    return _request_act(
        request,
        policy_request.pk,
        lambda: services.policy_request_reject(request_id=pk, reviewer=request.user, reason=reason),
        f"Request #{pk} is rejected.",
    )


@login_required
@require_POST
def request_retry(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    policy_request = request_for_user(user=request.user, pk=pk, for_review=True)
    return _request_act(
        request,
        policy_request.pk,
        lambda: services.policy_request_retry(request_id=pk, reviewer=request.user),
        f"Request #{pk} is queued to apply again.",
    )


@login_required
@require_POST
def request_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    policy_request = request_for_user(user=request.user, pk=pk)
    return _request_act(
        request,
        policy_request.pk,
        lambda: services.policy_request_cancel(request_id=pk, requester=request.user),
        f"Request #{pk} is cancelled.",
    )


@login_required
@require_POST
def request_comment(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    policy_request = request_for_user(user=request.user, pk=pk)
    body = str(request.POST.get("body", ""))
    return _request_act(
        request,
        policy_request.pk,
        lambda: services.policy_request_comment(request_id=pk, author=request.user, body=body),
        "Your comment is added.",
    )


QUEUE_AGES = {"1": "more than a day", "3": "more than 3 days", "7": "more than a week"}


@login_required
@require_GET
def request_queue(request: HtmxHttpRequest) -> HttpResponse:
    """Pending requests, oldest first, for reviewers."""
    try:
        everyone = requests_listed(request.user, everyone=True)
    except PermissionDenied:
        raise Http404("No such page.") from None
    account = str(request.GET.get("account", "")).strip()[:12]
    requester = str(request.GET.get("requester", "")).strip()[:150]
    age = str(request.GET.get("age", ""))
    pending = (
        requests_filtered(everyone, status=PolicyRequest.Status.PENDING, account_id=account)
        .select_related("requester", "role")
        .annotate(approvals_given=Count("approvals"))
        .order_by("created_at", "id")
    )
    if requester:
        pending = pending.filter(requester__username__icontains=requester)
    if age in QUEUE_AGES:
        pending = pending.filter(created_at__lte=timezone.now() - timedelta(days=int(age)))
    context = {
        "page": Paginator(pending, REQUESTS_PAGE_SIZE).get_page(request.GET.get("page")),
        "accounts": AwsAccount.objects.filter(
            policy_requests__status=PolicyRequest.Status.PENDING
        ).distinct(),
        "ages": QUEUE_AGES,
        "chosen": {"account": account, "requester": requester, "age": age},
        "query": urlencode({"account": account, "requester": requester, "age": age}),
    }
    return render(request, "requests_app/request_queue.html", context)


# --- restoring a recorded version of a role ---------------------------------------------


def _restore_context(
    role: IamRole, version: RoleVersion, form: RestoreForm, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    """What the restore request will change: the diff from the role as it is to
    the version, each change it files, and the findings it would carry."""
    changes = services.role_version_restore_changes(role=role, version=version)
    current = role_parts(role).get((version.part, version.key))
    summaries = [
        change_summary(Change(type=c["type"], target_arn=c["target_arn"], payload=c["payload"]))
        for c in changes
    ]
    findings: list[Any] = []
    refused = ""
    if changes:
        try:
            specs = services.changes_validate(role=role, changes=changes)
            findings = list(services.changes_findings(role=role, specs=specs))
        except services.RequestInvalid as exc:
            refused = " ".join(exc.errors.values())
    if role_protected(role.arn):
        refused = protected_role_refusal(role.name)
    return {
        "role": role,
        "version": version,
        "form": form,
        "changes": summaries,
        "diff": policy_diff(
            current, version.document, name=version.label, labels=("now", "restored")
        ),
        "findings": findings,
        "has_errors": any(f.severity == "error" for f in findings),
        "refused": refused,
        "errors": errors or {},
    }


@login_required
@require_http_methods(["GET", "POST"])
def role_version_restore(
    request: HtmxHttpRequest, account_id: str, role_name: str, version_id: int
) -> HttpResponse:
    version = role_version_for_user(
        user=request.user, account_id=account_id, role_name=role_name, version_id=version_id
    )
    role = requestable_role_for_user(user=request.user, role_id=version.role_id)
    template = "requests_app/role_version_restore.html"
    if request.method == "GET":
        return render(request, template, _restore_context(role, version, RestoreForm()))
    form = RestoreForm(request.POST)
    if not form.is_valid():
        return render(request, template, _restore_context(role, version, form), status=400)
    try:
        created = services.role_version_restore_submit(
            requester=request.user,
            role=role,
            version=version,
            justification=form.cleaned_data["justification"],
            findings_acknowledgement=form.acknowledgement(),
        )
    except services.RequestInvalid as exc:
        for key, message in exc.errors.items():
            if key == "justification":
                form.add_error("justification", message)
            elif key == "findings_acknowledgement":
                form.add_error("acknowledge", message)
            else:
                form.add_error(None, message)
        return render(request, template, _restore_context(role, version, form), status=400)
    messages.success(
        request, f"Request #{created.pk} is submitted: it restores the {version.label}."
    )
    return redirect("request_detail", pk=created.pk)


# --- access to a role ---------------------------------------------------------------


def _access_context(request: HtmxHttpRequest, role: IamRole) -> dict[str, Any]:
    eligible = eligible_role_ids(request.user)
    return {
        "role": role,
        "may_use": role.pk in eligible,
        "cli_only_now": eligible.get(role.pk, False),
        "pending": services.access_request_pending(user=request.user, role=role),
        "protected": role_protected(role.arn),
        "longest": services.access_max_duration(role.account),
    }


@login_required
@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def access_request_new(request: HtmxHttpRequest) -> HttpResponse:
    """Ask to use a role. Without a role: find one (the typeahead). With one (its
    id or ARN, `?role=`): the form, or the request already waiting for it."""
    requested = (request.GET.get("role") or "").strip()
    if not requested:
        if request.method == "POST":
            raise Http404("Choose a role first.")
        search = RoleSearchForm(request.GET)
        choices: list[RoleChoice] = []
        more = False
        if search.is_valid() and search.cleaned_data["q"].strip():
            found, _ = _roles_offered(
                roles_search(query=search.cleaned_data["q"].strip(), account_id=None).iterator(
                    chunk_size=2 * ROLE_RESULTS
                )
            )
            more = len(found) > ROLE_RESULTS
            eligible = eligible_role_ids(request.user)
            choices = [
                RoleChoice(role, role.pk in eligible, eligible.get(role.pk, False))
                for role in found[:ROLE_RESULTS]
            ]
        context = {"form": search, "choices": choices, "more": more, "searched": search.is_bound}
        return render(
            request,
            template_for(request, "requests_app/access_request_find.html", "results"),
            context,
        )
    try:
        role = requestable_role_resolve(user=request.user, requested=requested[:2048])
    except (RoleAmbiguous, Http404):
        # Several roles, or none, go by that name: search for it instead.
        query = requested.rpartition("/")[2] if requested.startswith("arn:") else requested
        return redirect(reverse("access_request_new") + "?" + urlencode({"q": query[:200]}))
    context = _access_context(request, role)
    if request.method == "GET":
        context["form"] = AccessRequestForm()
        return render(request, "requests_app/access_request_new.html", context)
    form = AccessRequestForm(request.POST)
    context["form"] = form
    if not form.is_valid():
        return render(request, "requests_app/access_request_new.html", context, status=400)
    try:
        access_request = services.access_request_submit(
            requester=request.user, role=role, **form.submit_arguments()
        )
    except services.RequestInvalid as exc:
        for key, message in exc.errors.items():
            field_name = {"expires_at": "until"}.get(key, key)
            form.add_error(field_name if field_name in form.fields else None, message)
        return render(request, "requests_app/access_request_new.html", context, status=400)
    access_request.refresh_from_db()
    messages.success(
        request,
        f"Access requested as #{access_request.pk}."
        + (
            " Approved automatically by an approval policy."
            if access_request.status != PolicyRequest.Status.PENDING
            else " Reviewers have been told."
        ),
    )
    return redirect("request_detail", pk=access_request.pk)


@login_required
@require_POST
def access_grant_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """End an access grant: its holder gives it up, or a reviewer revokes it."""
    policy_request = request_for_user(user=request.user, pk=pk)
    reason = (request.POST.get("reason") or "").strip()[: services.REASON_MAX_LENGTH]
    try:
        services.access_grant_revoke(
            request_id=policy_request.pk, actor=request.user, reason=reason
        )
    except services.RequestActionRefused as exc:
        messages.error(request, exc.message)
    except services.RequestInvalid as exc:
        messages.error(request, "; ".join(exc.errors.values()))
    else:
        given_up = policy_request.requester_id == request.user.pk
        messages.success(
            request,
            "You gave the access up: its sessions are being ended."
            if given_up
            else "Access revoked: its sessions are being ended.",
        )
    target = request.POST.get("next") or ""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return redirect(target)
    return redirect("request_detail", pk=policy_request.pk)
