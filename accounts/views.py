"""Pages for accounts and the inventory: the dashboard, search, role, resource and
policy pages. Each page and its swappable region share one template; an htmx
request gets the region only."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh

from accounts import denied, entries, selectors, services
from accounts.forms import (
    GlobalSearchForm,
    IdentitySearchForm,
    PolicySearchForm,
    ResourceSearchForm,
    RoleSearchForm,
)
from accounts.models import AwsAccount, IamRole, InventoryEntry, RoleVersion
from accounts.usage import selectors as usage_selectors
from brokering import selectors as brokering_selectors
from brokering.services import session_name_for
from iamportal.htmx import HtmxHttpRequest, region_only, template_for
from iamportal.permissions import (
    AnyUser,
    can_manage_accounts,
    can_sync_accounts,
    can_view_inventory,
    is_reviewer,
)
from requests_app.editors import edits_collected
from requests_app.policy.diff import policy_diff
from requests_app.selectors import access_request_pending_for, role_grants

PAGE_SIZE = 50
REQUEST_ROLES_SHOWN = 200


def _pretty(document: Any) -> str:
    return json.dumps(document, indent=2, default=str)


def _role_access(user: AnyUser, role: IamRole) -> dict[str, Any]:
    """Whether `user` may use `role`; who else may, and who did, for reviewers only."""
    cli_only = brokering_selectors.eligible_role_ids(user).get(role.pk)
    access: dict[str, Any] = {
        "may_use": cli_only is not None,
        "may_use_console": cli_only is False,
        "sees_audience": is_reviewer(user),
    }
    access["grants"] = role_grants(user=user, role=role)
    if not access["may_use_console"]:
        access["access_pending"] = access_request_pending_for(user=user, role=role)
    if access["sees_audience"]:
        access["audience"] = brokering_selectors.users_for_role(role)
        access["issuances"] = brokering_selectors.recent_issuances(role)
    return access


def _guardrails(account: AwsAccount) -> dict[str, Any]:
    return {
        "org_place": selectors.account_org_place(account=account),
        "scps": selectors.scps_for_account(account=account),
    }


def _inventory_more(account: AwsAccount) -> dict[str, Any]:
    """The users, groups and databases an account page shows beyond its sync runs."""
    return {
        "iam_user_count": account.iam_users.count(),
        "iam_group_count": account.iam_groups.count(),
        "databases": selectors.account_databases(account=account),
        **_guardrails(account),
    }


@login_required
@require_GET
@vary_on_headers("HX-Request")
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    accounts = list(selectors.accounts_overview())
    context = {
        "accounts": accounts,
        "totals": selectors.inventory_totals(accounts),
        "can_manage_accounts": can_manage_accounts(request.user),
    }
    return render(request, template_for(request, "accounts/dashboard.html", "accounts"), context)


@login_required
@require_GET
def account_list(request: HtmxHttpRequest) -> HttpResponse:
    accounts = list(selectors.accounts_overview())
    context = {"accounts": accounts, "totals": selectors.inventory_totals(accounts)}
    return render(request, "accounts/account_list.html", context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def account_detail(request: HtmxHttpRequest, account_id: str) -> HttpResponse:
    account = selectors.account_for_user(user=request.user, account_id=account_id)
    context = {
        "account": account,
        "runs": selectors.account_sync_runs(account=account),
        "unreadable": selectors.account_unreadable_resources(account=account),
        "can_sync": can_sync_accounts(request.user),
        **_inventory_more(account),
    }
    return render(request, template_for(request, "accounts/account_detail.html", "runs"), context)


@login_required
@require_POST
def account_sync(request: HtmxHttpRequest, account_id: str) -> HttpResponse:
    if not can_sync_accounts(request.user):
        raise Http404("No such account.")
    account = selectors.account_for_user(user=request.user, account_id=account_id)
    run = services.account_sync_request(account=account, user=request.user)
    messages.success(request, f"Sync of {account} is {run.get_status_display().lower()}.")
    return redirect("account_detail", account_id=account.account_id)


def _page_number(text: str | None) -> int:
    """A page number from a link; anything else is the first page."""
    try:
        return max(1, int(text or 1))
    except ValueError:
        return 1


@login_required
@require_GET
@vary_on_headers("HX-Request")
def role_list(request: HtmxHttpRequest) -> HttpResponse:
    form = RoleSearchForm(request.GET)
    page = None
    if form.is_valid():
        page = selectors.roles_page(
            query=form.cleaned_data["q"],
            account_id=form.account_id,
            number=_page_number(request.GET.get("page")),
            size=PAGE_SIZE,
            among=usage_selectors.roles_with_unused() if form.unused_only else None,
        )
    context = {
        "form": form,
        "page": page,
        "match_limit": selectors.SEARCH_MATCH_LIMIT,
        "protected_ids": selectors.protected_role_ids(page.roles) if page else set(),
    }
    return render(request, template_for(request, "accounts/role_list.html", "results"), context)


ROLE_TAB_TITLES = {
    "overview": "",
    "inline": "Inline policies",
    "managed": "Managed policies",
    "trust": "Trust policy",
    "tags": "Tags",
    "boundary": "Permissions boundary",
    "history": "History",
    "usage": "Usage",
}


def role_page_context(request: HtmxHttpRequest, role: IamRole, *, tab: str) -> dict[str, Any]:
    """What the header and the tab bar every tab of a role page shares need."""
    return {
        "role": role,
        "tab": tab,
        "tab_title": ROLE_TAB_TITLES[tab],
        # A tab link swaps the panel alone: it carries the page's title along.
        "title_in_panel": region_only(request),
        "protected": selectors.role_protected(role.arn),
        "sees_audience": is_reviewer(request.user),
        "collected_edits": len(edits_collected(session=request.session, role=role)),
    }


def role_tab_template(
    request: HtmxHttpRequest, name: str, *, regions: Mapping[str, str] | None = None
) -> str:
    """A tab of a role page: the whole page; its panel (the tab bar and the tab)
    for a tab link; or a smaller region when an htmx request targets its element
    by id (`regions`: element id -> partial; the refresh poll, a page of history)."""
    target = request.htmx.target if request.htmx else None
    region = (regions or {}).get(target or "", "panel")
    return template_for(request, name, region)


def role_for_tab(request: HtmxHttpRequest, account_id: str, role_name: str) -> IamRole | None:
    """The role page's one gate, for every tab. None for an htmx request about a
    role that is gone (a refresh found it deleted in AWS): the caller reloads the
    page, so a poll ends on "not found"."""
    try:
        return selectors.role_for_user(
            user=request.user, account_id=account_id, role_name=role_name
        )
    except Http404:
        if region_only(request):
            return None
        raise


@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def role_detail(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    """The Overview tab: your access, the grants, the facts, who may use the role."""
    role = role_for_tab(request, account_id, role_name)
    if role is None:
        return HttpResponseClientRefresh()
    context = {
        **role_page_context(request, role, tab="overview"),
        "tags": sorted(role.tags.items()),
        **_guardrails(role.account),
        **_role_access(request.user, role),
        "denied": denied.recently_denied(role=role),
        "denied_events_read": bool(settings.IAMPORTAL_DENIED_EVENTS_QUEUE_URL),
        "my_session_name": session_name_for(request.user) if request.user.is_authenticated else "",
        **usage_selectors.notice_banner(role),
    }
    template = role_tab_template(
        request, "accounts/role_detail.html", regions={"role-detail": "detail"}
    )
    return render(request, template, context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def role_part(request: HtmxHttpRequest, account_id: str, role_name: str, tab: str) -> HttpResponse:
    """The tab of one part of a role: `tab` (inline, managed, trust, tags or
    boundary) comes with its URL."""
    role = role_for_tab(request, account_id, role_name)
    if role is None:
        return HttpResponseClientRefresh()
    context = role_page_context(request, role, tab=tab)
    if tab == "inline":
        context["inline_policies"] = [
            (name, _pretty(document)) for name, document in sorted(role.inline_policies.items())
        ]
    elif tab == "managed":
        context["attached_policies"] = selectors.role_attached_policies(role=role)
    elif tab == "trust":
        context["trust_policy"] = _pretty(role.trust_policy)
    elif tab == "tags":
        context["tags"] = sorted(role.tags.items())
    elif tab == "boundary":
        boundary = selectors.boundary_policy(arn=role.permissions_boundary_arn)
        context["boundary_document"] = _pretty(boundary.document) if boundary else ""
    return render(request, role_tab_template(request, "accounts/role_part.html"), context)


HISTORY_PAGE_SIZE = 20


def _versions_shown(page: Page[RoleVersion]) -> list[dict[str, Any]]:
    """Each version on a page of history, with its diff against the one before."""
    return [
        {
            "version": version,
            "document": _pretty(version.document),
            "diff": policy_diff(
                version.previous_document,  # type: ignore[attr-defined]
                version.document,
                name=version.label,
                labels=("before", "this version"),
            )
            if version.previous_id is not None  # type: ignore[attr-defined]
            else [],
        }
        for version in page.object_list
    ]


@login_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def role_history(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    """The History tab; for a role deleted since, the versions it left behind."""
    try:
        role = selectors.role_for_user(
            user=request.user, account_id=account_id, role_name=role_name
        )
    except Http404:
        if region_only(request) and request.htmx.target == "role-panel":
            # A tab link of a role deleted meanwhile: the whole page says so.
            return HttpResponseClientRefresh()
        return _deleted_role_history(request, account_id, role_name)
    page = Paginator(selectors.role_history(role=role), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        **role_page_context(request, role, tab="history"),
        "page": page,
        "versions": _versions_shown(page),
    }
    template = role_tab_template(
        request, "accounts/role_history.html", regions={"results": "results"}
    )
    return render(request, template, context)


def _deleted_role_history(
    request: HtmxHttpRequest, account_id: str, role_name: str
) -> HttpResponse:
    history = selectors.deleted_role_history_for_user(
        user=request.user, account_id=account_id, role_name=role_name
    )
    page = Paginator(history, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    latest = history.first()
    context = {
        "account": latest.account if latest else None,
        "role_name": role_name,
        "role_arn": latest.role_arn if latest else "",
        "page": page,
        "versions": _versions_shown(page),
        "deleted": True,
    }
    template = template_for(request, "accounts/role_history_deleted.html", "results")
    return render(request, template, context)


@login_required
@require_POST
def role_refresh(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    role = selectors.role_for_user(user=request.user, account_id=account_id, role_name=role_name)
    services.role_refresh_request(role=role)
    messages.success(request, f"Refreshing {role.name} from AWS.")
    return redirect("role_detail", account_id=role.account.account_id, role_name=role.name)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def resource_list(request: HtmxHttpRequest) -> HttpResponse:
    form = ResourceSearchForm(request.GET)
    page = None
    if form.is_valid():
        resources = selectors.resources_search(
            query=form.cleaned_data["q"],
            account_id=form.account_id,
            resource_type=form.cleaned_data["type"],
        )
        page = Paginator(resources, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page}
    return render(request, template_for(request, "accounts/resource_list.html", "results"), context)


@login_required
@require_GET
def resource_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    resource = selectors.resource_for_user(user=request.user, pk=pk)
    context = {
        "resource": resource,
        "policy": _pretty(resource.policy) if resource.policy else "",
        "attributes": _pretty(resource.attributes),
        "tags": sorted(resource.tags.items()),
        # "Request access to this": the wizard, for one of the roles the user may use.
        "request_roles": brokering_selectors.roles_for_user(request.user)[:REQUEST_ROLES_SHOWN],
    }
    return render(request, "accounts/resource_detail.html", context)


@login_required
@require_GET
def policy_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    policy = selectors.policy_for_user(user=request.user, pk=pk)
    context = {
        "policy": policy,
        "document": _pretty(policy.document),
        "tags": sorted(policy.tags.items()),
    }
    return render(request, "accounts/policy_detail.html", context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def iam_user_list(request: HtmxHttpRequest) -> HttpResponse:
    form = IdentitySearchForm(request.GET)
    page = None
    if form.is_valid():
        search = selectors.groups_search if form.wants_groups else selectors.iam_users_search
        found = search(query=form.cleaned_data["q"], account_id=form.account_id)
        page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page}
    return render(request, template_for(request, "accounts/iam_user_list.html", "results"), context)


@login_required
@require_GET
def iam_user_detail(request: HtmxHttpRequest, account_id: str, user_name: str) -> HttpResponse:
    iam_user = selectors.iam_user_for_user(
        user=request.user, account_id=account_id, user_name=user_name
    )
    context = {
        "iam_user": iam_user,
        "inline_policies": [
            (name, _pretty(document)) for name, document in sorted(iam_user.inline_policies.items())
        ],
        "attached_policies": selectors.attached_policies(items=iam_user.managed_policies),
        "groups": selectors.user_groups(iam_user=iam_user),
        "access_keys": selectors.user_access_keys(iam_user=iam_user, now=timezone.now()),
        "tags": sorted(iam_user.tags.items()),
    }
    return render(request, "accounts/iam_user_detail.html", context)


@login_required
@require_GET
def group_detail(request: HtmxHttpRequest, account_id: str, group_name: str) -> HttpResponse:
    group = selectors.group_for_user(
        user=request.user, account_id=account_id, group_name=group_name
    )
    context = {
        "group": group,
        "inline_policies": [
            (name, _pretty(document)) for name, document in sorted(group.inline_policies.items())
        ],
        "attached_policies": selectors.attached_policies(items=group.managed_policies),
        "members": selectors.group_members(group=group),
    }
    return render(request, "accounts/group_detail.html", context)


@login_required
@require_GET
def database_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    database = selectors.database_for_user(user=request.user, pk=pk)
    context = {"database": database, "tags": sorted(database.tags.items())}
    return render(request, "accounts/database_detail.html", context)


# --- the Policies page, its exports, and the global search ---------------------------


def _entry_rows(page_entries: list[InventoryEntry]) -> list[dict[str, Any]]:
    return [
        {
            "entry": entry,
            "url": entries.entry_url(entry, entry.account.account_id),
            "console_url": entries.console_url(entry),
            "tags": sorted(entry.tags.items()) if isinstance(entry.tags, dict) else [],
        }
        for entry in page_entries
    ]


@login_required
@require_GET
@vary_on_headers("HX-Request")
def policy_list(request: HtmxHttpRequest) -> HttpResponse:
    if not can_view_inventory(request.user):
        raise Http404("No such page.")
    form = PolicySearchForm(request.GET)
    page = None
    if form.is_valid():
        page = selectors.policies_page(
            form.criteria,
            size=PAGE_SIZE,
            after=form.cleaned_data["after"],
            before=form.cleaned_data["before"],
        )
    context = {
        "form": form,
        "page": page,
        "rows": _entry_rows(page.entries) if page else [],
        "export_query": _export_query(request),
    }
    return render(request, template_for(request, "accounts/policy_list.html", "results"), context)


def _export_query(request: HtmxHttpRequest) -> str:
    """The page's filters, without its place in the list, for the export links."""
    params = request.GET.copy()
    for name in ("after", "before"):
        params.pop(name, None)
    return params.urlencode()


class _Echo:
    """A file-like object whose write returns what it is given: csv.writer then
    formats one row at a time for the streamed response."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(found: Iterator[InventoryEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(entries.EXPORT_COLUMNS)
    for entry in found:
        row = entries.export_row(entry)
        yield writer.writerow([entries.csv_cell(row[column]) for column in entries.EXPORT_COLUMNS])


def _json_chunks(found: Iterator[InventoryEntry]) -> Iterator[str]:
    yield "["
    separator = "\n"
    for entry in found:
        yield separator + json.dumps(entries.export_row(entry), separators=(",", ":"))
        separator = ",\n"
    yield "\n]\n"


@login_required
@require_GET
def policy_export(request: HtmxHttpRequest, fmt: str) -> HttpResponseBase:
    """The filtered Policies list as CSV or JSON, streamed as it is read."""
    if not can_view_inventory(request.user) or fmt not in ("csv", "json"):
        raise Http404("No such export.")
    form = PolicySearchForm(request.GET)
    if not form.is_valid():
        errors = "; ".join(str(error) for field in form.errors.values() for error in field)
        return HttpResponse(errors, status=400, content_type="text/plain; charset=utf-8")
    found = selectors.policies_export(form.criteria)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    if fmt == "csv":
        response = StreamingHttpResponse(_csv_lines(found), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(_json_chunks(found), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="iamportal-policies-{stamp}.{fmt}"'
    return response


@login_required
@require_GET
def inventory_search(request: HtmxHttpRequest) -> HttpResponse:
    """The header's search: every kind of item whose name or ARN matches, grouped."""
    if not can_view_inventory(request.user):
        raise Http404("No such page.")
    form = GlobalSearchForm(request.GET)
    groups = []
    if form.is_valid() and form.cleaned_data["q"]:
        groups = [
            {"group": group, "rows": _entry_rows(group.entries)}
            for group in selectors.inventory_search(query=form.cleaned_data["q"])
        ]
    context = {
        "form": form,
        "groups": groups,
        "found": any(item["rows"] for item in groups),
    }
    return render(request, "accounts/inventory_search.html", context)
