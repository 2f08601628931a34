"""Pages for using roles: My roles (where users land after signing in), the CLI
snippets and one-off environment credentials for a role, and console sign-in,
including the page `weep console` opens. Every role goes through
brokering.selectors: a role the user may not use is answered like one that does
not exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts import selectors as accounts_selectors
from accounts.denied import denied_calls_of_session
from accounts.models import DeniedCall, IamRole
from brokering import cli_auth, selectors, services
from brokering.forms import (
    REDIRECT_MAX_LENGTH,
    ConsoleSignInForm,
    DatabasePasswordForm,
    MyRolesSearchForm,
    RevokeSessionsForm,
)
from brokering.models import CliChallenge, CredentialIssuance
from brokering.selectors import EligibleRole
from iamportal.aws import default_region
from iamportal.htmx import HtmxHttpRequest, region_only, template_for
from iamportal.net import client_ip
from iamportal.permissions import is_reviewer
from requests_app import selectors as requests_selectors

# How many recently used roles head the list.
RECENT_LIMIT = 5
# Rows a page of My activity shows.
ACTIVITY_PAGE_SIZE = 50
# No role ARN is longer.
REQUESTED_MAX_LENGTH = 2048
CONSOLE = CredentialIssuance.Kind.CONSOLE


def _client(request: HttpRequest) -> tuple[str | None, str]:
    return client_ip(request), request.META.get("HTTP_USER_AGENT", "")


# --- My roles ------------------------------------------------------------------


@dataclass(frozen=True)
class RoleRow:
    role: EligibleRole
    last_used: datetime | None = None


@dataclass
class RoleGroup:
    title: str
    account_id: str = ""
    rows: list[RoleRow] = field(default_factory=list)


def _matches(role: EligibleRole, query: str) -> bool:
    wanted = query.lower()
    return wanted in role.arn.lower() or wanted in role.account_name.lower()


def _grouped(roles: list[EligibleRole], recent: dict[str, object]) -> list[RoleGroup]:
    """The "Recently used" group first (latest first), then one group per
    account; each role appears once."""
    by_arn = {role.arn: role for role in roles}
    recent_rows = [
        RoleRow(by_arn[arn], when if isinstance(when, datetime) else None)
        for arn, when in recent.items()
        if arn in by_arn
    ][:RECENT_LIMIT]
    groups = [RoleGroup("Recently used", rows=recent_rows)] if recent_rows else []
    listed = {row.role.arn for row in recent_rows}
    accounts: dict[str, RoleGroup] = {}
    for role in sorted(roles, key=lambda r: (r.account_name.lower(), r.account_id, r.arn)):
        if role.arn not in listed:
            group = accounts.setdefault(
                role.account_id, RoleGroup(role.account_name, role.account_id)
            )
            group.rows.append(RoleRow(role))
    return groups + list(accounts.values())


@dataclass(frozen=True)
class PendingSignIn:
    challenge: CliChallenge
    other_address: bool


def _pending_sign_ins(request: HtmxHttpRequest) -> list[PendingSignIn]:
    source_ip, _ = _client(request)
    return [
        PendingSignIn(
            challenge, not cli_auth.same_address(source_ip or "", challenge.requesting_ip)
        )
        for challenge in selectors.pending_cli_challenges_for_user(request.user)
    ]


@login_required
@require_GET
@vary_on_headers("HX-Request")
def my_roles(request: HtmxHttpRequest) -> HttpResponse:
    form = MyRolesSearchForm(request.GET)
    roles = selectors.roles_for_user(request.user)
    valid = form.is_valid()
    query = form.cleaned_data["q"].strip() if valid else ""
    shown = [role for role in roles if _matches(role, query)] if valid else []
    recent = selectors.recently_used_role_arns(request.user) if shown else {}
    context = {
        "form": form,
        "query": query,
        "role_count": len(roles),
        "shown_count": len(shown),
        "groups": _grouped(shown, recent),
        "auth_tag": settings.IAMPORTAL_AUTH_TAG,
        "auth_cli_tag": settings.IAMPORTAL_AUTH_CLI_TAG,
        # The search swaps only the role list: the sign-ins are read for the whole page.
        "pending_sign_ins": [] if region_only(request) else _pending_sign_ins(request),
        "denied_calls": [] if region_only(request) else _denied_calls(request, roles),
        "token_hours": settings.IAMPORTAL_CLI_TOKEN_HOURS,
        "code_length": cli_auth.CHALLENGE_CODE_LENGTH,
    }
    return render(request, template_for(request, "brokering/my_roles.html", "roles"), context)


MY_DENIED_CALLS = 10


def _denied_calls(request: HtmxHttpRequest, roles: list[EligibleRole]) -> list[DeniedCall]:
    """The calls AWS refused to this user's sessions, on roles they may use."""
    if not roles:
        return []
    calls = denied_calls_of_session(
        session_name=services.session_name_for(request.user), role_ids=[role.id for role in roles]
    )
    return list(calls[:MY_DENIED_CALLS])


@login_required
@require_POST
def my_cli_sign_in(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Approve or refuse a pending CLI sign-in from My roles, as its own page does."""
    challenge = selectors.cli_challenge_for_user(user=request.user, pk=pk)
    action = request.POST.get("action")
    if action not in ("approve", "refuse"):
        return HttpResponseBadRequest("Choose Approve or This was not me.")
    if action == "refuse":
        cli_auth.cli_challenge_refuse(challenge=challenge)
        messages.success(
            request,
            f"Refused the sign-in from {challenge.requesting_ip}: that terminal gets nothing.",
        )
    elif not cli_auth.challenge_code_matches(
        challenge=challenge, code=request.POST.get("code", "")
    ):
        messages.error(
            request,
            f"Nothing was approved: type the last {cli_auth.CHALLENGE_CODE_LENGTH} characters "
            "of the sign-in link your terminal shows. If you did not start this sign-in, "
            "choose This was not me.",
        )
    elif cli_auth.cli_challenge_approve(challenge=challenge, user=request.user):
        messages.success(
            request,
            f"Approved the sign-in from {challenge.requesting_ip}. Return to your terminal: "
            "weep continues on its own.",
        )
    else:
        messages.error(
            request, "That sign-in request has expired or was already answered: run weep again."
        )
    return redirect("my_roles")


@login_required
@require_GET
@vary_on_headers("HX-Request")
def my_activity(request: HtmxHttpRequest) -> HttpResponse:
    """The user's own credentials and console sign-ins, newest first."""
    issuances = selectors.issuances_for_user(request.user)
    page = Paginator(issuances, ACTIVITY_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page}
    return render(request, template_for(request, "brokering/my_activity.html", "results"), context)


def _usable_role(request: HtmxHttpRequest, role_id: int) -> tuple[IamRole, bool]:
    """The role and whether it is for the command line only; 404 unless the user may use it."""
    role = selectors.usable_role_for_user(user=request.user, role_id=role_id)
    return role, selectors.eligible_role_ids(request.user).get(role.pk, True)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def my_role_cli(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    role, cli_only = _usable_role(request, role_id)
    context = {"role": role, "cli_only": cli_only, "region": default_region()}
    return render(request, template_for(request, "brokering/role_cli.html", "snippets"), context)


@login_required
@require_GET
def weep_setup(request: HtmxHttpRequest) -> HttpResponse:
    """How to install Weep and point it at this iamportal, with the user's own name."""
    context = {
        "site_url": request.build_absolute_uri("/").rstrip("/"),
        "weep_user": request.user.email or request.user.get_username(),
        "token_hours": settings.IAMPORTAL_CLI_TOKEN_HOURS,
    }
    return render(request, "brokering/weep_setup.html", context)


@login_required
@require_POST
@never_cache
def my_role_credentials(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    """Credentials for the shell, shown once: never cached, never stored."""
    role, cli_only = _usable_role(request, role_id)
    source_ip, agent = _client(request)
    context: dict[str, object] = {"role": role, "cli_only": cli_only, "region": default_region()}
    status, retry_after = 200, 0
    try:
        context["credentials"] = services.credentials_issue(
            user=request.user,
            role=role,
            kind=CredentialIssuance.Kind.WEB,
            source_ip=source_ip,
            user_agent=agent,
        )
    except services.RateLimited as exc:
        context["error"], status, retry_after = str(exc), 429, exc.retry_after
    except services.CredentialError as exc:
        context["error"], status = f"AWS did not issue credentials: {exc}", 502
    if region_only(request):
        # htmx swaps only 2xx responses; here the message is the fragment to show.
        response = render(request, "brokering/role_cli.html#credentials", context)
    else:
        response = render(request, "brokering/role_cli.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


# --- console sign-in -------------------------------------------------------------


def _refusal(
    request: HttpRequest,
    *,
    status: int,
    title: str,
    message: str,
    retry_after: int = 0,
    request_url: str = "",
) -> HttpResponse:
    context = {"title": title, "message": message, "request_url": request_url}
    response = render(request, "brokering/console_refused.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


def _deny(request: HtmxHttpRequest, *, requested: str, reason: str) -> None:
    source_ip, agent = _client(request)
    services.issuance_denied(
        user=request.user,
        requested=requested,
        kind=CONSOLE,
        source_ip=source_ip,
        user_agent=agent,
        reason=reason,
    )


def _cli_only(request: HtmxHttpRequest, arn: str) -> HttpResponse:
    _deny(request, requested=arn, reason="CLI-only role")
    return _refusal(
        request,
        status=403,
        title="This role is for the command line only",
        message=f"You may use {arn} from the command line (Weep, or the CLI button on "
        "My roles), but not to sign in to the AWS console.",
        request_url=selectors.access_request_path(arn),
    )


def _console_sign_in(request: HtmxHttpRequest, *, role: IamRole, data: QueryDict) -> HttpResponse:
    """Check the destination, issue console credentials and send the browser to AWS."""
    form = ConsoleSignInForm(data)
    try:
        if not form.is_valid():
            raise services.BadDestination(" ".join(map(str, form.errors.get("redirect", []))))
        destination = services.console_destination(form.cleaned_data["redirect"])
    except services.BadDestination as exc:
        _deny(request, requested=role.arn, reason=f"bad redirect: {exc}")
        return _refusal(
            request, status=400, title="That console link is not allowed", message=str(exc)
        )
    source_ip, agent = _client(request)
    try:
        credentials = services.credentials_issue(
            user=request.user, role=role, kind=CONSOLE, source_ip=source_ip, user_agent=agent
        )
        url = services.console_url(
            credentials=credentials,
            destination=destination,
            issuer=request.build_absolute_uri("/"),
        )
    except services.RateLimited as exc:
        return _refusal(
            request,
            status=429,
            title="Too many sign-ins",
            message=str(exc),
            retry_after=exc.retry_after,
        )
    except services.CredentialError as exc:
        return _refusal(
            request,
            status=502,
            title="AWS did not sign you in",
            message=f"AWS refused to issue a console session for {role.arn}: {exc}",
        )
    return HttpResponseRedirect(url)


@login_required
@require_POST
@never_cache
def role_console(request: HtmxHttpRequest, role_id: int) -> HttpResponse:
    """The Console button: a POST, so a link or an image cannot start a session."""
    try:
        role = selectors.usable_role_for_user(user=request.user, role_id=role_id)
    except Http404:
        _deny(request, requested=f"role #{role_id}", reason="no eligible role matches")
        raise
    if selectors.eligible_role_ids(request.user).get(role.pk, True):
        return _cli_only(request, role.arn)
    return _console_sign_in(request, role=role, data=request.POST)


@login_required
@require_GET
@never_cache
def role_console_login(request: HtmxHttpRequest, requested: str) -> HttpResponse:
    """The page `weep console <role>` opens: resolve the role as Weep does and
    sign in on GET, because that is what the CLI opens in a browser."""
    if len(requested) > REQUESTED_MAX_LENGTH:
        return _refusal(
            request,
            status=400,
            title="That role name is too long",
            message=f"Name a role by its ARN or part of it: at most {REQUESTED_MAX_LENGTH} "
            "characters.",
        )
    try:
        match = selectors.role_resolve(request.user, requested)
    except selectors.RoleAmbiguous as exc:
        _deny(request, requested=requested, reason="ambiguous")
        context: dict[str, object] = {
            "requested": requested,
            "request_url": selectors.access_request_path(requested),
            "matches": exc.matches,
            "redirect": request.GET.get("redirect", "")[:REDIRECT_MAX_LENGTH],
        }
        return render(request, "brokering/console_chooser.html", context)
    except selectors.RoleNotFound:
        _deny(request, requested=requested, reason="no eligible role matches")
        return _refusal(
            request,
            status=404,
            title="No role of yours matches",
            message=f"None of the roles you may use matches “{requested}”. If you need a role "
            "that is not on My roles, request access to it.",
            request_url=selectors.access_request_path(requested),
        )
    if match.cli_only:
        return _cli_only(request, match.arn)
    # 404 when access changed between the two reads
    role = selectors.usable_role_for_user(user=request.user, role_id=match.id)
    redirect = request.GET.get("redirect", "")
    if redirect:
        try:
            services.console_destination(redirect[:REDIRECT_MAX_LENGTH])
        except services.BadDestination as exc:
            _deny(request, requested=role.arn, reason=f"bad redirect: {exc}")
            return _refusal(
                request, status=400, title="That console link is not allowed", message=str(exc)
            )
    if request.headers.get("Sec-Fetch-Site") not in ("none", "same-origin"):
        # A console session starts on GET only when the browser says the user
        # opened the address directly (Weep, a bookmark) or came from iamportal
        # itself; a link on another site, or a browser that does not say, gets a
        # confirmation button first.
        context = {
            "requested": requested,
            "matches": [match],
            "redirect": request.GET.get("redirect", "")[:REDIRECT_MAX_LENGTH],
            "cross_site": True,
        }
        return render(request, "brokering/console_chooser.html", context)
    return _console_sign_in(request, role=role, data=request.GET)


# --- ending sessions already issued ------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def role_sessions_revoke(request: HttpRequest, account_id: str, role_name: str) -> HttpResponse:
    """Reviewers and admins end a user's sessions on a role; for anyone else
    the page does not exist."""
    role = accounts_selectors.role_for_user(
        user=request.user, account_id=account_id, role_name=role_name
    )
    if not is_reviewer(request.user):
        raise Http404("No such page.")
    protected = accounts_selectors.role_protected(role.arn)
    form = RevokeSessionsForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if protected:
            form.add_error(
                None, "This is one of iamportal's own roles: its sessions cannot be revoked."
            )
        elif form.is_valid():
            user = selectors.user_named(form.cleaned_data["user"])
            if user is None:
                form.add_error("user", "No single iamportal user has this user name or email.")
            else:
                services.role_sessions_revoke(
                    role=role,
                    user=user,
                    issued_before=timezone.now(),
                    actor=request.user,  # type: ignore[arg-type]
                    reason=form.cleaned_data["reason"],
                )
                messages.success(
                    request,
                    f"The sessions of {user.email or user.get_username()} on {role.name} "
                    "are being ended.",
                )
                return redirect(
                    "role_sessions_revoke", account_id=role.account.account_id, role_name=role.name
                )
    context = {
        "role": role,
        "form": form,
        "protected": protected,
        "revocations": selectors.role_revocations(role),
        "window": services.revocation_window(role),
    }
    return render(request, "brokering/role_sessions_revoke.html", context, status=status)


# --- databases ---------------------------------------------------------------------


@login_required
@require_GET
def database_list(request: HtmxHttpRequest) -> HttpResponse:
    """The databases in the accounts where the user may use a role: Get a password
    where a role of theirs may connect, the template to ask for it where none may."""
    context = {
        "databases": selectors.databases_for_user(request.user),
        "template": requests_selectors.database_template(),
    }
    return render(request, "brokering/database_list.html", context)


@login_required
@require_POST
@never_cache
def database_password(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Get a password: an IAM authentication token for the database, shown once,
    never cached, never stored."""
    database = selectors.database_for_connect(user=request.user, pk=pk)
    form = DatabasePasswordForm(request.POST)
    context: dict[str, object] = {"database": database, "form": form}
    status, retry_after = 400, 0
    if form.is_valid():
        db_user = form.cleaned_data["db_user"]
        source_ip, agent = _client(request)
        target = services.database_target(database=database, db_user=db_user)
        try:
            role = selectors.usable_role_for_user(
                user=request.user, role_id=form.cleaned_data["role"]
            )
        except Http404:
            services.issuance_denied(
                user=request.user,
                requested=f"role #{form.cleaned_data['role']}",
                kind=CredentialIssuance.Kind.DATABASE,
                source_ip=source_ip,
                user_agent=agent,
                reason="no eligible role matches",
                target=target,
            )
            raise
        try:
            selectors.database_role_check(role=role, database=database, db_user=db_user)
            password = services.database_password_issue(
                user=request.user,
                role=role,
                database=database,
                db_user=db_user,
                source_ip=source_ip,
                user_agent=agent,
            )
        except selectors.DatabaseUserRefused as exc:
            services.issuance_denied(
                user=request.user,
                requested=role.arn,
                kind=CredentialIssuance.Kind.DATABASE,
                source_ip=source_ip,
                user_agent=agent,
                reason=exc.message,
                target=target,
            )
            form.add_error("db_user", exc.message)
        except services.RateLimited as exc:
            context["error"], status, retry_after = str(exc), 429, exc.retry_after
        except services.CredentialError as exc:
            context["error"], status = f"AWS did not issue credentials: {exc}", 502
        else:
            status = 200
            context["password"] = password
            context["commands"] = [
                (label, command, f"{database.pk}-{number}")
                for number, (label, command) in enumerate(
                    services.database_connect_commands(password), start=1
                )
            ]
    if region_only(request):
        # htmx swaps only 2xx responses; here the message is the fragment to show.
        response = render(request, "brokering/database_password.html#result", context)
    else:
        response = render(request, "brokering/database_password.html", context, status=status)
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response
