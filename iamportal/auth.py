"""Authentication: local passwords, a trusted proxy's headers, and API tokens.

OpenID Connect lives in iamportal.oidc. Every way in ends in
`user_groups_sync`, so a user's groups (and the staff flag they imply) are
always what the identity source said last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from ipaddress import ip_address
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from iamportal import permissions
from iamportal.models import ApiToken, ExternalIdentity, LoginFailure
from iamportal.net import client_ip
from iamportal.services import IdentityRefused, external_identity_sign_in
from iamportal.throttle import Throttled, backoff_wait, wait_phrase, window_wait

log = logging.getLogger(__name__)

# Only a coarse last-used time is kept, so a busy script does not write on every call.
TOKEN_LAST_USED_PRECISION = timedelta(minutes=1)
MAX_GROUPS = 500
MAX_GROUP_NAME = 150


def clean_group_names(raw: Iterable[Any]) -> list[str]:
    """Group names as an identity source sent them, bounded and deduplicated."""
    names = {str(g).strip() for g in raw if isinstance(g, str | int) and str(g).strip()}
    return sorted(n for n in names if len(n) <= MAX_GROUP_NAME)[:MAX_GROUPS]


def user_groups_sync(*, user: User, group_names: Iterable[str]) -> None:
    """Make the user's groups exactly `group_names` (the identity source is the
    truth: a group it no longer sends is removed) and the staff flag match the
    permission role those groups give."""
    wanted = clean_group_names(group_names)
    with transaction.atomic():
        current = set(user.groups.values_list("name", flat=True))
        if current != set(wanted):
            groups = [Group.objects.get_or_create(name=name)[0] for name in wanted]
            user.groups.set(groups)
        _staff_sync(user)


def _staff_sync(user: User) -> None:
    permissions.forget_cached_groups(user)
    staff = permissions.is_admin(user) or permissions.is_reviewer(user)
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])


def sso_user_role_sync(*, user: User, group_names: Iterable[str] | None) -> None:
    """Someone signed in by single sign-on or an authenticating proxy has the
    permission role their groups give and nothing more: superuser status (which no
    group grants) is removed, and the staff flag follows the groups. `group_names`
    None: groups are managed in iamportal, and only the flags are brought in line."""
    if user.is_superuser:
        log.warning("user %s signed in by single sign-on: superuser status removed", user.pk)
        user.is_superuser = False
        user.save(update_fields=["is_superuser"])
    if group_names is None:
        _staff_sync(user)
    else:
        user_groups_sync(user=user, group_names=group_names)


class LocalPasswordBackend(ModelBackend):
    """Username and password, as IAMPORTAL_LOCAL_LOGIN allows: for everyone,
    for superusers only (break-glass), or not at all."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> User | None:
        mode = settings.IAMPORTAL_LOCAL_LOGIN
        if mode == "false" or username is None or password is None:
            return None
        source_ip = client_ip(request) if request is not None else None
        name = username[:150].lower()
        throttled = password_attempt_throttle(username=name, source_ip=source_ip)
        if throttled is not None:
            if request is not None:
                request.login_throttled = throttled  # type: ignore[attr-defined]
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or (mode == "superusers" and not user.is_superuser):
            LoginFailure.objects.create(username=name, source_ip=source_ip or None)
            return None
        # Only this address's failures: another address's guesses stay counted against it.
        LoginFailure.objects.filter(username=name, source_ip=source_ip or None).delete()
        return user

    def get_user(self, user_id: int) -> User | None:
        # A session opened with a password ends when the mode no longer allows it.
        mode = settings.IAMPORTAL_LOCAL_LOGIN
        user = super().get_user(user_id)
        if user is None or mode == "false" or (mode == "superusers" and not user.is_superuser):
            return None
        return user


LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
# Failed passwords from one address, whatever the user names, before it must wait.
LOGIN_FAILURES_PER_ADDRESS = 50
# Failed passwords for one user name from one address before each try waits longer.
LOGIN_FREE_FAILURES_PER_USERNAME = 3
LOGIN_BACKOFF_MAX = timedelta(minutes=15)


def password_attempt_throttle(*, username: str, source_ip: str | None) -> Throttled | None:
    """Whether this address must wait before trying a password for `username`. Only
    failures from this same address count, so someone guessing from elsewhere never
    stops the user signing in from their own computer."""
    now = timezone.now()
    from_address = LoginFailure.objects.filter(
        at__gte=now - LOGIN_FAILURE_WINDOW, source_ip=source_ip or None
    ).order_by("-at")
    recent = list(from_address.values_list("at", flat=True)[:LOGIN_FAILURES_PER_ADDRESS])
    wait = window_wait(
        recent=recent, limit=LOGIN_FAILURES_PER_ADDRESS, window=LOGIN_FAILURE_WINDOW, now=now
    )
    if wait:
        return Throttled(
            wait,
            f"Too many failed sign-ins from your address: wait {wait_phrase(wait)} and try again.",
        )
    for_name = list(from_address.filter(username=username).values_list("at", flat=True))
    wait = backoff_wait(
        attempts=len(for_name),
        free=LOGIN_FREE_FAILURES_PER_USERNAME,
        last_at=for_name[0] if for_name else None,
        now=now,
        cap=LOGIN_BACKOFF_MAX,
    )
    if wait:
        return Throttled(
            wait,
            f"Too many failed sign-ins for this user name from your address: wait "
            f"{wait_phrase(wait)} and try again.",
        )
    return None


# --- a trusted authenticating proxy -------------------------------------------------


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def from_trusted_proxy(request: HttpRequest) -> bool:
    try:
        peer = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.IAMPORTAL_HEADER_AUTH_TRUSTED_PROXIES)


class TrustedHeaderBackend(BaseBackend):
    """The proxy's user id (IAMPORTAL_HEADER_AUTH_USER) is the identity's stable key;
    the email comes from IAMPORTAL_HEADER_AUTH_EMAIL, or is that id itself when only
    the one header is configured. Raises IdentityRefused when the identity may not
    sign in to the account its email names."""

    def authenticate(
        self,
        request: HttpRequest | None,
        *,
        proxy_user: str | None = None,
        proxy_email: str | None = None,
        proxy_groups: list[str] | None = None,
        **kwargs: Any,
    ) -> User | None:
        if request is None or not proxy_user or not from_trusted_proxy(request):
            return None
        subject = proxy_user.strip()
        email = (proxy_email or "").strip()
        if not email:
            # The id is an email address: any case is the same person.
            email, subject = subject, subject.lower()
        if "@" not in email or len(email) > 254:
            return None
        user = external_identity_sign_in(
            kind=ExternalIdentity.Kind.PROXY, issuer="", subject=subject, email=email
        )
        if not user.is_active:
            return None
        sso_user_role_sync(user=user, group_names=proxy_groups)
        return user

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id, is_active=True).first()


class TrustedHeaderMiddleware:
    """Authenticates each request from the headers of a trusted proxy. The same
    headers from any other address are ignored (and logged)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        proxy_user = request.META.get(_meta_key(settings.IAMPORTAL_HEADER_AUTH_USER), "").strip()
        if proxy_user:
            if from_trusted_proxy(request):
                groups = None
                if settings.IAMPORTAL_HEADER_AUTH_GROUPS:
                    raw = request.META.get(_meta_key(settings.IAMPORTAL_HEADER_AUTH_GROUPS), "")
                    groups = raw.split(",")
                email = None
                if settings.IAMPORTAL_HEADER_AUTH_EMAIL:
                    email = request.META.get(_meta_key(settings.IAMPORTAL_HEADER_AUTH_EMAIL), "")
                try:
                    user = authenticate(
                        request, proxy_user=proxy_user, proxy_email=email, proxy_groups=groups
                    )
                except IdentityRefused as exc:
                    return _identity_refused(request, str(exc))
                if user is not None:
                    request.user = user
            else:
                log.warning(
                    "ignored identity header from untrusted address %s",
                    request.META.get("REMOTE_ADDR"),
                )
        return self.get_response(request)


def _identity_refused(request: HttpRequest, reason: str) -> HttpResponse:
    if request.path.startswith(("/api/", "/noauth/")):
        return JsonResponse({"detail": reason, "code": "identity_refused"}, status=403)
    return render(request, "registration/login_failed.html", {"reason": reason}, status=403)


# --- API tokens -------------------------------------------------------------------------


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <token>` or `Authorization: Bearer <token>`.

    A token acts exactly as its user. Revoked or expired tokens, and tokens of
    inactive users, are refused with 401."""

    keywords = ("token", "bearer")

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() not in self.keywords:
            return None
        raw = raw.strip()
        if not raw or " " in raw or len(raw) > 200:
            raise exceptions.AuthenticationFailed("Malformed token header.")
        token = ApiToken.objects.select_related("user").filter(digest=ApiToken.hash(raw)).first()
        if token is None or not token.is_usable or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > TOKEN_LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Token realm="iamportal"'
