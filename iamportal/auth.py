"""Authentication: local passwords, a trusted proxy's headers, and API tokens.

OpenID Connect lives in iamportal.oidc. Every way in ends in
`user_groups_sync`, so a user's groups (and the staff flag they imply) are
always what the identity source said last.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import timedelta
from ipaddress import ip_address
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.backends import BaseBackend, ModelBackend
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from iamportal import permissions
from iamportal.models import ApiToken, LoginFailure
from iamportal.net import client_ip

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
        permissions.forget_cached_groups(user)
        staff = permissions.is_admin(user) or permissions.is_reviewer(user)
        if user.is_staff != staff:
            user.is_staff = staff
            user.save(update_fields=["is_staff"])


def user_for_email(*, email: str, first_name: str = "", last_name: str = "") -> User:
    """The user with this email (any case), created on first sight."""
    email = email.strip()
    user = User.objects.filter(email__iexact=email).order_by("pk").first()
    if user is None:
        username = email.lower()[:150]
        if User.objects.filter(username__iexact=username).exists():
            # A local account already uses this name for someone else's email:
            # never merge the two, give the new person a distinct name.
            username = f"{username[:140]}-{secrets.token_hex(4)}"
        user = User.objects.create_user(
            username=username,
            email=email,
            first_name=first_name[:150],
            last_name=last_name[:150],
        )
    return user


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
        if password_guessing_suspected(username=username, source_ip=source_ip):
            if request is not None:
                request.login_throttled = True  # type: ignore[attr-defined]
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or (mode == "superusers" and not user.is_superuser):
            LoginFailure.objects.create(username=username[:150], source_ip=source_ip or None)
            return None
        LoginFailure.objects.filter(username=username[:150]).delete()
        return user

    def get_user(self, user_id: int) -> User | None:
        # A session opened with a password ends when the mode no longer allows it.
        mode = settings.IAMPORTAL_LOCAL_LOGIN
        user = super().get_user(user_id)
        if user is None or mode == "false" or (mode == "superusers" and not user.is_superuser):
            return None
        return user


LOGIN_FAILURE_WINDOW = timedelta(minutes=15)
LOGIN_FAILURES_PER_USERNAME = 10
LOGIN_FAILURES_PER_ADDRESS = 50


def password_guessing_suspected(*, username: str, source_ip: str | None) -> bool:
    """Too many recent failed password sign-ins for this user name or from this address."""
    since = timezone.now() - LOGIN_FAILURE_WINDOW
    recent = LoginFailure.objects.filter(at__gte=since)
    if recent.filter(username=username[:150]).count() >= LOGIN_FAILURES_PER_USERNAME:
        return True
    if source_ip is None:
        return False
    return recent.filter(source_ip=source_ip).count() >= LOGIN_FAILURES_PER_ADDRESS


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
    def authenticate(
        self,
        request: HttpRequest | None,
        *,
        proxy_email: str | None = None,
        proxy_groups: list[str] | None = None,
        **kwargs: Any,
    ) -> User | None:
        if request is None or not proxy_email or not from_trusted_proxy(request):
            return None
        if "@" not in proxy_email or len(proxy_email) > 254:
            return None
        user = user_for_email(email=proxy_email)
        if not user.is_active:
            return None
        if proxy_groups is not None:
            user_groups_sync(user=user, group_names=proxy_groups)
        return user

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id, is_active=True).first()


class TrustedHeaderMiddleware:
    """Authenticates each request from the headers of a trusted proxy. The same
    headers from any other address are ignored (and logged)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        email = request.META.get(_meta_key(settings.IAMPORTAL_HEADER_AUTH_USER), "").strip()
        if email:
            if from_trusted_proxy(request):
                groups = None
                if settings.IAMPORTAL_HEADER_AUTH_GROUPS:
                    raw = request.META.get(_meta_key(settings.IAMPORTAL_HEADER_AUTH_GROUPS), "")
                    groups = raw.split(",")
                user = authenticate(request, proxy_email=email, proxy_groups=groups)
                if user is not None:
                    request.user = user
            else:
                log.warning(
                    "ignored identity header from untrusted address %s",
                    request.META.get("REMOTE_ADDR"),
                )
        return self.get_response(request)


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
