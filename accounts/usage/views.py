"""The usage page of a role: what each service is granted by, when it was last
used, and what right-sizing plans for it. It is the role page's Usage tab."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRefresh

from accounts.usage import selectors
from accounts.views import role_for_tab, role_page_context, role_tab_template
from iamportal.htmx import HtmxHttpRequest


@login_required
@require_GET
@vary_on_headers("HX-Request")
def role_usage(request: HtmxHttpRequest, account_id: str, role_name: str) -> HttpResponse:
    role = role_for_tab(request, account_id, role_name)
    if role is None:
        return HttpResponseClientRefresh()
    usage = selectors.role_usage(role)
    context = {
        **role_page_context(request, role, tab="usage"),
        "usage": usage,
        "interval_hours": selectors.interval().total_seconds() // 3600,
    }
    return render(request, role_tab_template(request, "usage/role_usage.html"), context)
