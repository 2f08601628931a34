"""How the Weep CLI authenticates, and the challenge login that gives it a token.

The Weep endpoints accept, in this order: the CLI token cookie minted by the
challenge login, a client-certificate identity passed on by a trusted
TLS-terminating proxy, a personal API token, and the browser session.

The challenge login: the CLI asks for a challenge bound to a user name and its
own address, the user approves it in a browser where they are signed in, and
the CLI collects a signed token once, from the same address, within
`CliChallenge.LIFETIME`. Every status change is a conditional UPDATE, so two
polls or two approvals racing each other can never both win.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_address
from typing import Any

import jwt
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.crypto import salted_hmac
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from brokering.models import CliChallenge
from iamportal.auth import ApiTokenAuthentication
from iamportal.models import ExternalIdentity
from iamportal.permissions import active_user_with_groups
from iamportal.services import IdentityRefused, external_identity_sign_in
from iamportal.throttle import Throttled, backoff_wait, seconds_until, wait_phrase, window_wait

log = logging.getLogger(__name__)

# --- the CLI token ---------------------------------------------------------------------

JWT_ALGORITHM = "HS256"
JWT_ISSUER = "iamportal"
# The audience names the token's one purpose, so no other iamportal token can pass for it.
JWT_AUDIENCE = "iamportal-cli"
JWT_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
JWT_MAX_LENGTH = 4096
# Several web hosts share the work; their clocks may disagree by a few seconds.
JWT_LEEWAY_SECONDS = 30
_KEY_SALT = "iamportal.brokering.cli_auth.token"


def signing_key(secret: str | bytes) -> bytes:
    """A key of its own for CLI tokens, derived from SECRET_KEY, so a value signed
    for any other purpose (sessions, password resets) never verifies here."""
    return salted_hmac(_KEY_SALT, "hs256-signing-key", secret=secret, algorithm="sha256").digest()


@dataclass(frozen=True)
class CliToken:
    encoded: str
    expires_at: datetime

    def __repr__(self) -> str:  # the token is a bearer secret: never in a log
        return f"CliToken(expires_at={self.expires_at!r})"

    @property
    def expiration_epoch(self) -> int:
        return int(self.expires_at.timestamp())


def cli_token_issue(*, user: User, issued_at: datetime | None = None) -> CliToken:
    """A signed token that authenticates `user` on the Weep endpoints for
    IAMPORTAL_CLI_TOKEN_HOURS."""
    issued = (issued_at or timezone.now()).replace(microsecond=0)
    expires = issued + timedelta(hours=settings.IAMPORTAL_CLI_TOKEN_HOURS)
    claims = {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": str(user.pk),
        "email": user.email,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
    }
    encoded = jwt.encode(claims, signing_key(settings.SECRET_KEY), algorithm=JWT_ALGORITHM)
    return CliToken(encoded=encoded, expires_at=expires)


def _token_claims(encoded: str) -> dict[str, Any] | None:
    # Tokens signed before a SECRET_KEY rotation stay valid while the old key is a fallback.
    for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]:
        try:
            return jwt.decode(
                encoded,
                signing_key(secret),
                algorithms=[JWT_ALGORITHM],
                audience=JWT_AUDIENCE,
                issuer=JWT_ISSUER,
                leeway=JWT_LEEWAY_SECONDS,
                options={"require": JWT_REQUIRED_CLAIMS},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidTokenError:
            return None
    return None


def cli_token_user(encoded: str) -> User | None:
    """The user a CLI token names: None when the token is malformed, forged,
    expired, or its user has since been disabled or deleted."""
    if not encoded or len(encoded) > JWT_MAX_LENGTH:
        return None
    claims = _token_claims(encoded)
    if claims is None:
        return None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.isdigit() or len(subject) > 18:
        return None
    # With its groups: the Weep endpoints all ask which roles the user may use.
    return active_user_with_groups(int(subject))


# --- authentication classes --------------------------------------------------------------


class InvalidCliToken(exceptions.AuthenticationFailed):
    """The CLI cookie is there but unusable: Weep answers by discarding its stored
    token and starting a new challenge login on its next run."""

    status_code = 403
    default_detail = "JWT is invalid or has expired."
    default_code = "invalid_jwt"


class InvalidCertificateIdentity(exceptions.AuthenticationFailed):
    status_code = 403
    default_detail = "The client certificate does not name a usable account."
    default_code = "invalid_certificate"


class CliTokenAuthentication(authentication.BaseAuthentication):
    """The token from the challenge login, in the cookie named
    IAMPORTAL_CLI_COOKIE_NAME (Weep keeps it in its own cookie jar)."""

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        encoded = request.COOKIES.get(settings.IAMPORTAL_CLI_COOKIE_NAME)
        if not encoded:
            return None
        user = cli_token_user(encoded)
        if user is None:
            raise InvalidCliToken()
        return user, None


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def from_mtls_proxy(request: Request) -> bool:
    try:
        peer = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.IAMPORTAL_MTLS_TRUSTED_PROXIES)


class ClientCertificateAuthentication(authentication.BaseAuthentication):
    """The email of a verified client certificate, put in IAMPORTAL_MTLS_HEADER
    by a TLS-terminating proxy. Believed only from IAMPORTAL_MTLS_TRUSTED_PROXIES;
    the same header from anywhere else is ignored (and logged). Linked to an account
    by the same rules as single sign-on (iamportal.services.external_identity_sign_in)."""

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        header = settings.IAMPORTAL_MTLS_HEADER
        if not header:
            return None
        email = request.META.get(_meta_key(header), "").strip()
        if not email:
            return None
        if not from_mtls_proxy(request):
            log.warning(
                "ignored client certificate header from untrusted address %s",
                request.META.get("REMOTE_ADDR"),
            )
            return None
        if request.META.get("HTTP_SEC_FETCH_SITE") in ("cross-site", "same-site"):
            # A browser holding the certificate, sent here by another site's form:
            # the certificate proves who, not that they meant to ask (no CSRF token).
            return None
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidCertificateIdentity(
                "The client certificate identity is not an email address."
            ) from None
        try:
            # The certificate's identity is its verified email: any case, one person.
            user = external_identity_sign_in(
                kind=ExternalIdentity.Kind.CERTIFICATE,
                issuer="",
                subject=email.lower(),
                email=email,
            )
        except IdentityRefused as exc:
            raise InvalidCertificateIdentity(str(exc)) from None
        if not user.is_active:
            raise InvalidCertificateIdentity("The account of this client certificate is disabled.")
        return user, None


# The order matters: a CLI cookie that fails is an answer on its own (Weep must
# sign in again), it never falls through to a weaker way in.
CLI_AUTHENTICATION: list[type[authentication.BaseAuthentication]] = [
    CliTokenAuthentication,
    ClientCertificateAuthentication,
    ApiTokenAuthentication,
    authentication.SessionAuthentication,
]


class CliTokenScheme(OpenApiAuthenticationExtension):
    target_class = "brokering.cli_auth.CliTokenAuthentication"
    name = "cliTokenCookie"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.IAMPORTAL_CLI_COOKIE_NAME,
            "description": "The token Weep receives from the challenge login "
            "(/noauth/v1/challenge_generator/{user}).",
        }


class ClientCertificateScheme(OpenApiAuthenticationExtension):
    target_class = "brokering.cli_auth.ClientCertificateAuthentication"
    name = "clientCertificate"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": settings.IAMPORTAL_MTLS_HEADER or "X-Client-Certificate-Email",
            "description": "Set by the TLS-terminating proxy from a verified client "
            "certificate; ignored from any other address.",
        }


# --- the challenge login -------------------------------------------------------------------

REQUESTED_USER_MAX_LENGTH = 254
CHALLENGE_JWT_MAX_LENGTH = 64
# Challenges are created without authentication, so every limit is per address:
# a limit per user name would let anyone block that person's own sign-in.
MAX_PENDING_CHALLENGES_PER_ADDRESS = 10
CHALLENGE_WINDOW = timedelta(minutes=15)
MAX_CHALLENGES_PER_ADDRESS = 60
# Challenges for one user name from one address before each one waits longer.
FREE_CHALLENGES_PER_USER = 5
CHALLENGE_BACKOFF_MAX = timedelta(minutes=15)


class ChallengeRefused(Exception):
    def __init__(self, message: str, *, status: int, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def same_address(first: str, second: str) -> bool:
    try:
        a, b = ip_address(first), ip_address(second)
    except ValueError:
        return first == second
    # A dual-stack client may show up as ::ffff:a.b.c.d once and a.b.c.d the next time.
    a = getattr(a, "ipv4_mapped", None) or a
    b = getattr(b, "ipv4_mapped", None) or b
    return a == b


def cli_challenge_create(*, requested_user: str, requesting_ip: str | None) -> CliChallenge:
    name = requested_user.strip()
    if not name or len(name) > REQUESTED_USER_MAX_LENGTH:
        raise ChallengeRefused(
            f"The user name must be 1 to {REQUESTED_USER_MAX_LENGTH} characters.", status=400
        )
    if any(ch.isspace() or not ch.isprintable() for ch in name):
        raise ChallengeRefused(
            "The user name must not contain spaces or control characters.", status=400
        )
    try:
        address = str(ip_address(requesting_ip or ""))
    except ValueError:
        raise ChallengeRefused("The request has no usable client address.", status=400) from None
    throttled = cli_challenge_throttle(requested_user=name, address=address)
    if throttled is not None:
        raise ChallengeRefused(throttled.message, status=429, retry_after=throttled.retry_after)
    return CliChallenge.objects.create(
        requested_user=name,
        requesting_ip=address,
        expires_at=timezone.now() + CliChallenge.LIFETIME,
    )


def cli_challenge_throttle(*, requested_user: str, address: str) -> Throttled | None:
    """Whether this address must wait before asking for another challenge: it has
    too many open, asked for too many lately, or asked for this user name too often
    (each further one waits twice as long). Nothing another address does counts."""
    now = timezone.now()
    from_address = CliChallenge.objects.filter(
        requesting_ip=address, created_at__gte=now - CHALLENGE_WINDOW
    ).order_by("-created_at")
    pending = list(
        from_address.filter(status=CliChallenge.Status.PENDING, expires_at__gt=now)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)[:MAX_PENDING_CHALLENGES_PER_ADDRESS]
    )
    if len(pending) >= MAX_PENDING_CHALLENGES_PER_ADDRESS:
        wait = max(1, seconds_until(pending[0], now=now))
        return Throttled(
            wait,
            "Too many open sign-in requests from this address; finish the open ones or "
            f"wait {wait_phrase(wait)}.",
        )
    recent = list(from_address.values_list("created_at", flat=True)[:MAX_CHALLENGES_PER_ADDRESS])
    wait = window_wait(
        recent=recent, limit=MAX_CHALLENGES_PER_ADDRESS, window=CHALLENGE_WINDOW, now=now
    )
    if wait:
        return Throttled(
            wait, f"Too many sign-in requests from this address: wait {wait_phrase(wait)}."
        )
    for_name = list(
        from_address.filter(requested_user__iexact=requested_user).values_list(
            "created_at", flat=True
        )
    )
    wait = backoff_wait(
        attempts=len(for_name),
        free=FREE_CHALLENGES_PER_USER,
        last_at=for_name[0] if for_name else None,
        now=now,
        cap=CHALLENGE_BACKOFF_MAX,
    )
    if wait:
        return Throttled(
            wait,
            f"Too many sign-in requests for this user from this address: wait {wait_phrase(wait)}.",
        )
    return None


def cli_challenge_for_token(token: str) -> CliChallenge | None:
    if not token or len(token) > CHALLENGE_JWT_MAX_LENGTH:
        return None
    return CliChallenge.objects.select_related("user").filter(token=token).first()


def challenge_is_for(challenge: CliChallenge, user: AbstractBaseUser) -> bool:
    """Whether `user` is the one the CLI asked to sign in as (user name or email, any case)."""
    wanted = challenge.requested_user.strip().lower()
    names = {user.get_username().lower()}
    email = (getattr(user, "email", "") or "").strip().lower()
    if email:
        names.add(email)
    return wanted in names


def cli_challenge_refuse(*, challenge: CliChallenge) -> None:
    """Mark an open challenge unauthorized: the CLI's polls say so and it never gets a token."""
    CliChallenge.objects.filter(
        pk=challenge.pk,
        status__in=[CliChallenge.Status.PENDING, CliChallenge.Status.APPROVED],
    ).update(status=CliChallenge.Status.UNAUTHORIZED)
    challenge.refresh_from_db(fields=["status"])


def cli_challenge_approve(*, challenge: CliChallenge, user: User) -> bool:
    """Approve a pending, unexpired challenge as `user`. Someone else's challenge
    is refused instead. True when this call approved it."""
    if not user.is_active or not challenge_is_for(challenge, user):
        log.warning(
            "%s tried to approve a CLI sign-in requested for another user", user.get_username()
        )
        cli_challenge_refuse(challenge=challenge)
        return False
    now = timezone.now()
    approved = CliChallenge.objects.filter(
        pk=challenge.pk, status=CliChallenge.Status.PENDING, expires_at__gt=now
    ).update(status=CliChallenge.Status.APPROVED, user=user, approved_at=now)
    challenge.refresh_from_db(fields=["status", "user", "approved_at"])
    if approved:
        log.info(
            "CLI sign-in approved for %s from %s", user.get_username(), challenge.requesting_ip
        )
    return bool(approved)


# Approving from a list (My roles) asks for the end of the link the terminal shows:
# proof that the approver is looking at the terminal that asked, so that nobody
# approves a sign-in someone else started in their name.
CHALLENGE_CODE_LENGTH = 6


def challenge_code_matches(*, challenge: CliChallenge, code: str) -> bool:
    """Whether `code` is the last characters of the challenge's sign-in link."""
    expected = challenge.token[-CHALLENGE_CODE_LENGTH:]
    return hmac.compare_digest(code.strip().encode(), expected.encode())


@dataclass(frozen=True)
class ChallengePoll:
    status: str  # pending | expired | unauthorized | unknown | success
    token: CliToken | None = None
    user: User | None = None


def cli_challenge_claim(*, token: str, polling_ip: str | None) -> ChallengePoll:
    """What the CLI's poll sees. An approved challenge hands out its token once,
    and only to the address that asked for it."""
    challenge = cli_challenge_for_token(token)
    if challenge is None or challenge.status == CliChallenge.Status.USED:
        return ChallengePoll("unknown")
    if challenge.status == CliChallenge.Status.UNAUTHORIZED:
        return ChallengePoll("unauthorized")
    if challenge.is_expired:
        return ChallengePoll("expired")
    if not same_address(polling_ip or "", challenge.requesting_ip):
        return ChallengePoll("unauthorized")
    if challenge.status == CliChallenge.Status.PENDING:
        return ChallengePoll("pending")
    claimed = CliChallenge.objects.filter(
        pk=challenge.pk, status=CliChallenge.Status.APPROVED, expires_at__gt=timezone.now()
    ).update(status=CliChallenge.Status.USED)
    if not claimed:  # another poll won the race, or the challenge expired meanwhile
        return ChallengePoll("unknown")
    user = challenge.user
    if user is None or not user.is_active:
        return ChallengePoll("unauthorized")
    return ChallengePoll("success", token=cli_token_issue(user=user), user=user)
