"""OpenID Connect single sign-on: authorization code flow with PKCE.

Built on mozilla-django-oidc, which reads the provider's endpoints from settings
once, in its constructors. Here they come from the provider metadata instead:
the discovery document (fetched on first use and kept for an hour) or the
explicit OIDC_OP_* settings, resolved when a sign-in needs them.

The library checks the ID token's signature and nonce; the issuer, audience,
authorized party and times are checked here. Every sign-in and every session
refresh ends in `user_groups_sync`, so a group removed at the provider is
removed here, and a user the provider no longer signs in loses the session.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django_htmx.http import HttpResponseClientRedirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh
from mozilla_django_oidc.utils import absolutify
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from iamportal.auth import sso_user_role_sync
from iamportal.landing import landing_url
from iamportal.models import ExternalIdentity
from iamportal.services import IdentityRefused, external_identity_sign_in

log = logging.getLogger(__name__)

METADATA_LIFETIME_SECONDS = 3600
# After a failed refresh the previous document is kept this long before trying again.
METADATA_RETRY_SECONDS = 60
# Clocks of the provider and of this host may disagree a little.
CLOCK_LEEWAY_SECONDS = 60
WELL_KNOWN_SUFFIX = "/.well-known/openid-configuration"

# Why the last sign-in failed, for the failure page.
FAILURE_SESSION_KEY = "oidc_failure"
REASON_NO_EMAIL = (
    "Your identity provider did not send an email address, and iamportal identifies "
    "people by email. Ask an administrator to let iamportal read your email address "
    "at the identity provider, then sign in again."
)
REASON_UNVERIFIED_EMAIL = (
    "Your identity provider did not confirm your email address, and iamportal only "
    "accepts verified addresses. Verify your email address with your identity provider "
    "(or ask its administrator to), then sign in again."
)
REASON_INACTIVE = (
    "Your iamportal account is disabled. Ask an iamportal administrator to enable it again."
)
REASON_REJECTED = (
    "The sign-in was rejected: the answer from your identity provider did not pass "
    "iamportal's security checks. Sign in again; if this keeps happening, tell an "
    "administrator."
)
REASON_UNREACHABLE = (
    "iamportal could not complete the sign-in with your identity provider: it did not "
    "answer, or answered with an error. Try again in a few minutes; if this keeps "
    "happening, tell an administrator."
)
REASON_DENIED = (
    "Your identity provider did not let you into iamportal. You may not be assigned to "
    "iamportal there; ask your identity provider's administrator."
)
REASON_SESSION_ENDED = (
    "Your session with your identity provider has ended, or your access there was "
    "removed, so you were signed out of iamportal. Sign in again."
)
REASON_UNKNOWN = "Single sign-on did not complete. Sign in again."
_PROVIDER_ERROR_REASONS = {
    "access_denied": REASON_DENIED,
    "unauthorized_client": REASON_DENIED,
    "login_required": REASON_SESSION_ENDED,
    "interaction_required": REASON_SESSION_ENDED,
    "consent_required": REASON_SESSION_ENDED,
    "account_selection_required": REASON_SESSION_ENDED,
    "temporarily_unavailable": REASON_UNREACHABLE,
    "server_error": REASON_UNREACHABLE,
}


# --- provider metadata ------------------------------------------------------------------


class ProviderUnavailable(Exception):
    """The discovery document could not be read or is unusable."""


@dataclass(frozen=True, kw_only=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str  # empty when the provider has none: the ID token is all there is
    jwks_uri: str
    end_session_endpoint: str = ""  # empty when the provider offers no logout


_lock = threading.Lock()
_discovered: dict[str, tuple[float, ProviderMetadata]] = {}


def provider_metadata() -> ProviderMetadata:
    """The provider's issuer and endpoints, from discovery or from the settings."""
    url = settings.OIDC_OP_DISCOVERY_URL
    if not url:
        return ProviderMetadata(
            issuer=settings.OIDC_OP_ISSUER,
            authorization_endpoint=settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
            token_endpoint=settings.OIDC_OP_TOKEN_ENDPOINT,
            userinfo_endpoint=settings.OIDC_OP_USER_ENDPOINT,
            jwks_uri=settings.OIDC_OP_JWKS_ENDPOINT,
            end_session_endpoint=settings.OIDC_OP_END_SESSION_ENDPOINT,
        )
    with _lock:
        cached = _discovered.get(url)
        now = time.monotonic()
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            metadata = _discover(url)
            expires = now + METADATA_LIFETIME_SECONDS
        except ProviderUnavailable as exc:
            if cached is None:
                raise
            log.warning("keeping the OpenID provider metadata read earlier: %s", exc)
            metadata = cached[1]
            expires = now + METADATA_RETRY_SECONDS
        _discovered[url] = (expires, metadata)
        return metadata


def forget_provider_metadata() -> None:
    with _lock:
        _discovered.clear()


def _discover(url: str) -> ProviderMetadata:
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(f"could not read {url}: {exc}") from exc
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{url} is not a JSON object")
    values = {}
    for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise ProviderUnavailable(f"{url} has no {name}")
        values[name] = value
    # OpenID Connect Discovery 4.3: the issuer is the URL the document was found under,
    # so a document served for one provider cannot speak for another.
    if url.endswith(WELL_KNOWN_SUFFIX):
        expected = url.removesuffix(WELL_KNOWN_SUFFIX).rstrip("/")
        if values["issuer"].rstrip("/") != expected:
            raise ProviderUnavailable(
                f"{url} names the issuer {values['issuer']!r}, not {expected!r}"
            )
    userinfo = document.get("userinfo_endpoint")
    end_session = document.get("end_session_endpoint")
    return ProviderMetadata(
        issuer=values["issuer"],
        authorization_endpoint=values["authorization_endpoint"],
        token_endpoint=values["token_endpoint"],
        userinfo_endpoint=userinfo if isinstance(userinfo, str) else "",
        jwks_uri=values["jwks_uri"],
        end_session_endpoint=end_session if isinstance(end_session, str) else "",
    )


# --- tokens and claims ------------------------------------------------------------------


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def id_token_check(claims: dict[str, Any], *, issuer: str, client_id: str, now: float) -> None:
    """Raise SuspiciousOperation unless the ID token was issued by our provider, for
    this client, and is current (OpenID Connect Core 3.1.3.7)."""
    if claims.get("iss") != issuer:
        raise SuspiciousOperation(f"ID token issuer {claims.get('iss')!r} is not {issuer!r}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise SuspiciousOperation(f"ID token audience {audience!r} does not include this client")
    authorized_party = claims.get("azp")
    if len(audiences) > 1 and authorized_party is None:
        raise SuspiciousOperation("ID token has several audiences and no authorized party")
    if authorized_party is not None and authorized_party != client_id:
        raise SuspiciousOperation(f"ID token was issued to {authorized_party!r}")
    expires = _seconds(claims.get("exp"))
    if expires is None or expires <= now - CLOCK_LEEWAY_SECONDS:
        raise SuspiciousOperation("ID token has expired or has no expiry")
    issued = _seconds(claims.get("iat"))
    if issued is None or issued > now + CLOCK_LEEWAY_SECONDS:
        raise SuspiciousOperation("ID token is issued in the future or has no issue time")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SuspiciousOperation("ID token has no subject")


def claims_merge(*, id_token: dict[str, Any], userinfo: Any) -> dict[str, Any]:
    """The ID token's claims updated with the userinfo response (fresher, and often
    the only place a provider puts profile claims)."""
    if not isinstance(userinfo, dict):
        raise SuspiciousOperation("the userinfo response is not a JSON object")
    # OpenID Connect Core 5.3.2: a userinfo response about someone else must not be used.
    if userinfo.get("sub") != id_token.get("sub"):
        raise SuspiciousOperation("the userinfo response is about another subject")
    return {**id_token, **userinfo}


def groups_from_claims(claims: dict[str, Any]) -> list[str] | None:
    """The provider's group names, or None when groups are managed in iamportal
    (OIDC_GROUPS_CLAIM empty)."""
    claim = settings.OIDC_GROUPS_CLAIM
    if not claim:
        return None
    raw = claims.get(claim) or []
    if isinstance(raw, str):
        return [raw]
    return list(raw) if isinstance(raw, list) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# --- the backend --------------------------------------------------------------------------


class OidcBackend(OIDCAuthenticationBackend):
    """Signs in the person the provider vouches for, by verified email."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds a backend for every request that loads a user, so nothing here
        # may read the provider metadata: the endpoints are resolved in authenticate().
        self.UserModel = User
        self.refusal = ""

    def authenticate(
        self,
        request: HttpRequest | None,
        nonce: str | None = None,
        code_verifier: str | None = None,
        **credentials: Any,
    ) -> User | None:
        # Only the callback view comes here with exactly these; a password form or a
        # proxy's headers bring other credentials and belong to other backends.
        if request is None or credentials:
            return None
        if not request.GET.get("code") or not request.GET.get("state"):
            return None
        self.request = request
        self.refusal = ""
        try:
            user = self._sign_in(request, nonce=nonce, code_verifier=code_verifier)
        except (SuspiciousOperation, jwt.PyJWTError) as exc:
            log.warning("single sign-on refused: %s", exc)
            user = None
        except (ProviderUnavailable, requests.RequestException) as exc:
            log.warning("single sign-on failed at the identity provider: %s", exc)
            user, self.refusal = None, REASON_UNREACHABLE
        if user is None:
            request.session[FAILURE_SESSION_KEY] = self.refusal or REASON_REJECTED
        return user

    def _sign_in(
        self, request: HttpRequest, *, nonce: str | None, code_verifier: str | None
    ) -> User | None:
        metadata = provider_metadata()
        self.OIDC_OP_TOKEN_ENDPOINT = metadata.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = metadata.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = metadata.jwks_uri
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = getattr(settings, "OIDC_RP_IDP_SIGN_KEY", None)

        token_request = {
            "client_id": self.OIDC_RP_CLIENT_ID,
            "client_secret": self.OIDC_RP_CLIENT_SECRET,
            "grant_type": "authorization_code",
            "code": request.GET["code"],
            "redirect_uri": absolutify(request, reverse("oidc_authentication_callback")),
        }
        if code_verifier is not None:
            token_request["code_verifier"] = code_verifier
        tokens = self.get_token(token_request)
        if not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            raise SuspiciousOperation("the token response has no ID token")
        # Tokens are used here and dropped: none is kept in the session.
        id_token = tokens["id_token"]
        claims = self.verify_token(id_token, nonce=nonce)
        id_token_check(
            claims, issuer=metadata.issuer, client_id=self.OIDC_RP_CLIENT_ID, now=time.time()
        )
        user: User | None = self.get_or_create_user(tokens.get("access_token"), id_token, claims)
        return user

    def retrieve_matching_jwk(self, token: str) -> jwt.PyJWK:
        """The provider's key that signed the token. Unlike the library, a token may
        omit the key id when the provider publishes a single key (OpenID Connect Core
        10.1), and keys without an id are skipped, not an error."""
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise SuspiciousOperation("the provider's key set has no keys")
        header = jwt.get_unverified_header(token)
        candidates = [
            key
            for key in keys
            if isinstance(key, dict)
            and key.get("use", "sig") == "sig"
            and key.get("alg", header.get("alg")) == header.get("alg")
        ]
        if "kid" in header:
            candidates = [key for key in candidates if key.get("kid") == header["kid"]]
        if len(candidates) != 1:
            raise SuspiciousOperation(
                f"{len(candidates)} of the provider's keys match key id {header.get('kid')!r}"
            )
        return jwt.PyJWK(candidates[0])

    def get_payload_data(self, token: str, key: Any) -> dict[str, Any]:
        """The verified payload of a signed token. Unlike the library, with leeway for
        clock skew, and never an unsigned token."""
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                leeway=CLOCK_LEEWAY_SECONDS,
                options={"verify_aud": False},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"token verification failed: {exc}") from exc
        return payload

    def get_userinfo(
        self, access_token: str | None, id_token: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        if not self.OIDC_OP_USER_ENDPOINT or not access_token:
            return dict(payload)
        userinfo = super().get_userinfo(access_token, id_token, payload)
        return claims_merge(id_token=payload, userinfo=userinfo)

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email or len(email) > 254:
            self.refusal = REASON_NO_EMAIL
            return False
        # Some providers send the flag as a string.
        verified = claims.get("email_verified") in (True, "true")
        if settings.OIDC_REQUIRE_VERIFIED_EMAIL and not verified:
            self.refusal = REASON_UNVERIFIED_EMAIL
            return False
        return True

    def get_or_create_user(
        self, access_token: str | None, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        claims = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(claims):
            raise SuspiciousOperation(f"claims of subject {claims.get('sub')!r} not accepted")
        try:
            # The ID token's issuer and subject, which were verified, not the userinfo's.
            user = external_identity_sign_in(
                kind=ExternalIdentity.Kind.OIDC,
                issuer=str(payload["iss"]),
                subject=str(payload["sub"]),
                email=claims["email"],
                first_name=_text(claims.get("given_name")),
                last_name=_text(claims.get("family_name")),
            )
        except IdentityRefused as exc:
            self.refusal = str(exc)
            return None
        if not user.is_active:
            log.info("single sign-on refused for inactive user %s", user.pk)
            self.refusal = REASON_INACTIVE
            return None
        sso_user_role_sync(user=user, group_names=groups_from_claims(claims))
        return user

    def get_user(self, user_id: int) -> User | None:
        return User.objects.filter(pk=user_id, is_active=True).first()


# --- views and middleware --------------------------------------------------------------


def _failure_redirect(request: HttpRequest, reason: str) -> HttpResponseRedirect:
    request.session[FAILURE_SESSION_KEY] = reason
    return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL_FAILURE)


class OidcLoginView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider's authorization endpoint."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_RP_CLIENT_ID:
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_metadata().authorization_endpoint
        except ProviderUnavailable as exc:
            log.warning("single sign-on could not start: %s", exc)
            return _failure_redirect(request, REASON_UNREACHABLE)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        response: HttpResponse = super().get(request)
        return response


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back, after a sign-in or a refresh."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_RP_CLIENT_ID:
            raise Http404("Single sign-on is not configured.")
        request.session.pop(FAILURE_SESSION_KEY, None)
        response: HttpResponse = super().get(request)
        return response

    @property
    def success_url(self) -> str:
        # The library checked the address it kept in the session when sign-in began.
        requested = self.request.session.get("oidc_login_next") or ""
        return landing_url(user=self.request.user, requested=str(requested))

    def login_failure(self) -> HttpResponse:
        request = self.request
        error = request.GET.get("error")
        if error:
            log.info("the identity provider answered %r", error[:100])
            reason = _PROVIDER_ERROR_REASONS.get(error, REASON_UNKNOWN)
        else:
            reason = request.session.get(FAILURE_SESSION_KEY) or REASON_UNKNOWN
        # The library signs the user out only when the provider answers with an error;
        # a refresh this side refuses must end the session too.
        if request.user.is_authenticated:
            auth.logout(request)
        return _failure_redirect(request, reason)


class OidcSessionRefresh(SessionRefresh):
    """Sends users signed in by single sign-on back to the provider (prompt=none) every
    OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS, so someone disabled there loses access here."""

    # The library's constructor stores these settings once; they are read when used.
    @property
    def OIDC_OP_AUTHORIZATION_ENDPOINT(self) -> str:
        return provider_metadata().authorization_endpoint

    @OIDC_OP_AUTHORIZATION_ENDPOINT.setter
    def OIDC_OP_AUTHORIZATION_ENDPOINT(self, value: str) -> None:
        pass

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:
        client_id: str = settings.OIDC_RP_CLIENT_ID
        return client_id

    @OIDC_RP_CLIENT_ID.setter
    def OIDC_RP_CLIENT_ID(self, value: str) -> None:
        pass

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        stale = self._stale_session_refusal(request)
        if stale is not None:
            return stale
        htmx = getattr(request, "htmx", None)
        try:
            response: HttpResponse | None = super().process_request(request)
        except ProviderUnavailable as exc:
            # The session cannot be renewed, so it ends (deny by default).
            log.warning("single sign-on session could not be renewed: %s", exc)
            auth.logout(request)
            response = _failure_redirect(request, REASON_UNREACHABLE)
        else:
            if response is None:
                return None
            if htmx and isinstance(response, HttpResponseRedirect):
                # Back to the page after the refresh, not to the fragment.
                request.session["oidc_login_next"] = htmx.current_url_abs_path
        if htmx and isinstance(response, HttpResponseRedirect):
            # htmx would follow a redirect inside the page; the browser must go instead.
            return HttpResponseClientRedirect(response["Location"])
        return response

    def _stale_session_refusal(self, request: HttpRequest) -> HttpResponse | None:
        """The library renews a single sign-on session only on GET pages. A POST or an
        API call on a session past its renewal time would otherwise go on working for
        someone the provider has since turned away: refuse it until a page load renews
        the session."""
        if request.method == "GET" and not request.path.startswith(("/api/", "/noauth/")):
            return None
        if not request.user.is_authenticated:
            return None
        backend = request.session.get(auth.BACKEND_SESSION_KEY, "")
        if backend != f"{OidcBackend.__module__}.{OidcBackend.__qualname__}":
            return None
        if request.session.get("oidc_id_token_expiration", 0) > time.time():
            return None
        message = "Your single sign-on session needs renewing: reload iamportal in your browser."
        if request.path.startswith(("/api/", "/noauth/")):
            return JsonResponse({"detail": message, "code": "session_expired"}, status=401)
        return HttpResponse(message, status=403, content_type="text/plain")


def provider_logout_url(request: HttpRequest) -> str:
    """Where to send the browser so the provider ends its session too (OpenID Connect
    RP-Initiated Logout), or "" when that does not apply: the session was not opened by
    single sign-on, IAMPORTAL_OIDC_PROVIDER_LOGOUT is off, or the provider offers no
    end_session_endpoint. The ID token is not kept (sessions live in the database), so
    the provider is told the client id instead of an id_token_hint."""
    if not settings.OIDC_RP_CLIENT_ID or not settings.IAMPORTAL_OIDC_PROVIDER_LOGOUT:
        return ""
    backend = request.session.get(auth.BACKEND_SESSION_KEY, "")
    if backend != f"{OidcBackend.__module__}.{OidcBackend.__qualname__}":
        return ""
    try:
        endpoint = provider_metadata().end_session_endpoint
    except ProviderUnavailable as exc:
        # Signing out of iamportal must work whatever the provider's state.
        log.warning("signed out of iamportal only, the provider is unreachable: %s", exc)
        return ""
    if not endpoint:
        return ""
    query = urlencode(
        {
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "post_logout_redirect_uri": request.build_absolute_uri(
                resolve_url(settings.LOGOUT_REDIRECT_URL)
            ),
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


class LogoutView(auth_views.LogoutView):
    """Django's logout, then the provider's when the session came from single sign-on:
    otherwise the next "Sign in with single sign-on" would let the same person (or the
    next one at a shared computer) straight back in without a password."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        at_provider = provider_logout_url(request)
        response: HttpResponse = super().post(request, *args, **kwargs)
        if at_provider:
            return HttpResponseRedirect(at_provider)
        return response


@require_safe
@never_cache
def login_failed(request: HttpRequest) -> HttpResponse:
    reason = request.session.pop(FAILURE_SESSION_KEY, "") or REASON_UNKNOWN
    return render(request, "registration/login_failed.html", {"reason": reason}, status=403)
