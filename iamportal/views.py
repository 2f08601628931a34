"""Operations endpoints: the status page, /healthz for load balancers and
/metrics for Prometheus."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST, require_safe
from django_q.brokers import get_broker
from django_q.models import OrmQ

from accounts.selectors import account_sync_metrics
from brokering.selectors import session_revocations_given_up
from iamportal import jobs, permissions, selectors, services
from iamportal.forms import ApiTokenCreateForm, LocalLoginForm
from iamportal.landing import landing_url
from iamportal.permissions import can_read_metrics

log = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        log.warning("database check failed: %s", exc)
        return False
    return True


def _workers_ok() -> bool:
    try:
        return jobs.workers_alive()
    except DatabaseError:
        return False


def _queued_tasks() -> int | None:
    """Tasks waiting for a worker, or None when the broker cannot be asked."""
    if not settings.Q_BROKER:
        return OrmQ.objects.count()
    try:
        return int(get_broker().queue_size() or 0)
    except Exception as exc:  # a Redis outage must not take the status page down
        log.warning("could not read the queue size from the broker: %s", exc)
        return None


@login_required
@require_GET
def status(request: HttpRequest) -> HttpResponse:
    context = {
        "database_ok": _database_ok(),
        "workers_alive": _workers_ok(),
        "heartbeat_grace": settings.IAMPORTAL_WORKER_HEARTBEAT_GRACE_SECONDS,
        "jobs": jobs.job_statuses(),
        "queued_tasks": _queued_tasks(),
        "broker": "Redis" if settings.Q_BROKER else "Database",
        "revocations_given_up": session_revocations_given_up(),
        "can_review": permissions.is_reviewer(request.user),
    }
    return render(request, "iamportal/status.html", context)


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    database = _database_ok()
    workers = database and _workers_ok()
    healthy = database and workers
    body = {
        "status": "ok" if healthy else "fail",
        "database": "ok" if database else "fail",
        "workers": "ok" if workers else "down",
    }
    return JsonResponse(body, status=200 if healthy else 503)


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    authorization = request.headers.get("Authorization", "")
    if not can_read_metrics(user=request.user, authorization=authorization):
        response = HttpResponse(
            "Sign in, or send the metrics token as a bearer token.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="iamportal metrics"'
        return response
    return HttpResponse(_exposition(), content_type=PROMETHEUS_CONTENT_TYPE)


# --- Prometheus text exposition format -------------------------------------------

Sample = tuple[dict[str, str], float]


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _timestamp(moment: datetime | None) -> float:
    return round(moment.timestamp(), 3) if moment else 0.0


def _family(name: str, help_text: str, samples: list[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        pairs = ",".join(f'{key}="{_label_value(text)}"' for key, text in labels.items())
        lines.append(f"{name}{{{pairs}}} {value!r}" if pairs else f"{name} {value!r}")
    return lines


def _exposition() -> str:
    statuses = jobs.job_statuses()
    accounts = account_sync_metrics()
    lines = [
        *_family(
            "iamportal_job_last_success_timestamp_seconds",
            "Unix time a background job last succeeded (0: never).",
            [({"job": job.name}, _timestamp(job.last_success_at)) for job in statuses],
        ),
        *_family(
            "iamportal_job_last_failure_timestamp_seconds",
            "Unix time a background job last failed (0: never).",
            [({"job": job.name}, _timestamp(job.last_failure_at)) for job in statuses],
        ),
        *_family(
            "iamportal_account_last_sync_success_timestamp_seconds",
            "Unix time a sync of the account last succeeded (0: never).",
            [
                (
                    {"account_id": a.account_id, "account_name": a.name},
                    _timestamp(a.last_success_at),
                )
                for a in accounts
            ],
        ),
        *_family(
            "iamportal_account_last_sync_failure_timestamp_seconds",
            "Unix time a sync of the account last failed (0: never).",
            [
                (
                    {"account_id": a.account_id, "account_name": a.name},
                    _timestamp(a.last_failure_at),
                )
                for a in accounts
            ],
        ),
        *_family(
            "iamportal_account_sync_failing",
            "1 when the latest sync of the account failed.",
            [({"account_id": a.account_id}, 1.0 if a.failing else 0.0) for a in accounts],
        ),
        *_family(
            "iamportal_account_sync_unreadable_resources",
            "Resources the latest sync of the account listed but could not read (kept as "
            "they were; its status is 'warnings').",
            [({"account_id": a.account_id}, float(a.unreadable)) for a in accounts],
        ),
        *_family(
            "iamportal_inventory_items",
            "Inventory rows held for the account, by kind.",
            [
                sample
                for a in accounts
                for sample in (
                    ({"account_id": a.account_id, "kind": "role"}, float(a.roles)),
                    ({"account_id": a.account_id, "kind": "policy"}, float(a.policies)),
                    ({"account_id": a.account_id, "kind": "resource"}, float(a.resources)),
                )
            ],
        ),
        *_family(
            "iamportal_session_revocations_failed",
            "Session revocations that gave up while the sessions they were to end may "
            "still work: end them in AWS.",
            [({}, float(session_revocations_given_up()))],
        ),
        *_family(
            "iamportal_workers_alive",
            "1 when a worker heartbeat arrived within the grace period.",
            [({}, 1.0 if _workers_ok() else 0.0)],
        ),
    ]
    return "\n".join(lines) + "\n"


# --- sign-in and profile ------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's login page, offering single sign-on when it is configured and the
    password form while IAMPORTAL_LOCAL_LOGIN allows it."""

    form_class = LocalLoginForm
    redirect_authenticated_user = True

    def get_success_url(self) -> str:
        return landing_url(user=self.request.user, requested=self.get_redirect_url())

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = settings.OIDC_ENABLED
        context["local_login"] = settings.IAMPORTAL_LOCAL_LOGIN
        return context


def _profile_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        "groups": sorted(permissions.group_names(request.user)),
        "permission_role": permissions.permission_role(request.user),
        "tokens": selectors.api_tokens_of(user=request.user),
        **extra,
    }


@login_required
@require_GET
def profile(request: HttpRequest) -> HttpResponse:
    context = _profile_context(request, form=ApiTokenCreateForm())
    return render(request, "iamportal/profile.html", context)


@login_required
@require_POST
def api_token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST)
    new_token = None
    if form.is_valid():
        try:
            _token, new_token = services.api_token_create(
                user=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"] or None,
            )
        except services.TokenLimitError as exc:
            form.add_error(None, str(exc))
        else:
            form = ApiTokenCreateForm()
    status = 200 if new_token else 400
    context = _profile_context(request, form=form, new_token=new_token)
    response = render(request, "iamportal/profile.html", context, status=status)
    # The raw token is on this page once; no cache may keep it.
    add_never_cache_headers(response)
    return response


@login_required
@require_POST
def api_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = selectors.api_token_for_user(user=request.user, pk=pk)
    services.api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("profile")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Scripts and Weep get JSON for an unknown API address; people get the page."""
    if request.path.startswith(("/api/", "/noauth/")):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
