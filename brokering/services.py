"""Credential brokering: STS credentials for a role, console sign-in URLs and
the issuance audit. Secrets pass through here and are never stored or logged."""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from accounts.fetch import describe_error
from accounts.models import IamRole
from brokering import eligibility
from brokering.models import AccessRule, CliChallenge, CredentialIssuance, CredentialRateWindow
from iamportal import aws

log = logging.getLogger(__name__)

FEDERATION_TIMEOUT_SECONDS = 10
_SESSION_NAME_BAD = re.compile(r"[^\w+=,.@-]")
# The characters RFC 3986 allows in a URL (percent-escapes included), and no others.
_URL_SAFE = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")


class CredentialError(Exception):
    """AWS refused or failed to issue credentials (Weep code 902)."""


class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many credential requests; try again in {retry_after} seconds.")
        self.retry_after = retry_after


class BadDestination(ValueError):
    """A console redirect that is not an AWS console URL."""


@dataclass(frozen=True)
class IssuedCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime
    role_arn: str

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"IssuedCredentials(role_arn={self.role_arn!r}, expiration={self.expiration!r})"

    @property
    def expiration_epoch(self) -> int:
        return int(self.expiration.timestamp())


def session_name_for(user: User) -> str:
    """An STS role session name from the user's email (or username): 2-64 of
    the characters STS accepts, so CloudTrail shows who used the credentials."""
    name = _SESSION_NAME_BAD.sub("-", (user.email or user.get_username()).strip())
    name = name[:64]
    return name if len(name) >= 2 else f"user-{user.pk}"


def source_ip_policy(networks: list[str]) -> dict[str, Any]:
    """A session policy that allows what the role allows, except calls from
    outside `networks`; calls AWS services make on the user's behalf (CloudFormation,
    Athena...) come from AWS addresses and stay allowed."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RoleAllows", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Sid": "DenyOutsideAllowedNetworks",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "NotIpAddress": {"aws:SourceIp": networks},
                    "Bool": {"aws:ViaAWSService": "false"},
                },
            },
        ],
    }


def credential_duration(role: IamRole) -> int:
    return max(900, min(settings.IAMPORTAL_CREDENTIAL_DURATION_SECONDS, role.max_session_duration))


def _audit(
    *,
    user: User,
    role_arn: str,
    kind: str,
    outcome: str,
    source_ip: str | None,
    user_agent: str,
    error: str = "",
    expiration: datetime | None = None,
    ip_restricted: bool = False,
    request_id: str = "",
) -> CredentialIssuance:
    # What a client asked for goes into the audit as it was, minus NUL characters,
    # which no database text column accepts.
    role_arn = role_arn.replace("\x00", "")
    parts = role_arn.split(":")
    return CredentialIssuance.objects.create(
        user=user,
        user_email=user.email or user.get_username(),
        role_arn=role_arn[:2048],
        account_id=parts[4] if len(parts) > 4 and parts[4].isdigit() else "",
        kind=kind,
        outcome=outcome,
        error=error[:2000],
        source_ip=source_ip or None,
        user_agent=user_agent.replace("\x00", "")[:512],
        expiration=expiration,
        ip_restricted=ip_restricted,
        request_id=request_id[:64],
    )


def issuance_denied(
    *,
    user: User,
    requested: str,
    kind: str,
    source_ip: str | None,
    user_agent: str,
    reason: str,
    request_id: str = "",
) -> None:
    """Record a refused request (no eligible role, ambiguous, console for a CLI-only role)."""
    if not _audit_room(user):
        log.warning("not recording more refusals for %s this minute", user.get_username())
        return
    _audit(
        user=user,
        role_arn=requested,
        kind=kind,
        outcome=CredentialIssuance.Outcome.DENIED,
        source_ip=source_ip,
        user_agent=user_agent,
        error=reason,
        request_id=request_id,
    )


def _audit_room(user: User) -> bool:
    """Whether the audit may take another row for `user` this minute. A client
    hammering refused requests would otherwise grow the table without bound;
    beyond this many rows a minute, refusals are only logged."""
    window_start = timezone.now() - timedelta(minutes=1)
    written = CredentialIssuance.objects.filter(user=user, requested_at__gte=window_start)
    return written.count() < 4 * settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT


RATE_WINDOW = timedelta(minutes=1)


def _rate_slot_update(user: User, now: datetime) -> int:
    """Take a slot of the user's current window, or start a new window with this
    request when the current one has lapsed: one conditional UPDATE. Its right-hand
    sides all read the row as it was, and PostgreSQL checks the condition again on
    the newest row when a concurrent request updated it first, so of many
    concurrent requests exactly the limit succeed. Returns the rows updated: 0 when
    limited, or when the user has no window yet."""
    lapsed = Q(window_start__lte=now - RATE_WINDOW)
    return (
        CredentialRateWindow.objects.filter(user=user)
        .filter(lapsed | Q(count__lt=settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT))
        .update(
            window_start=Case(When(lapsed, then=Value(now)), default=F("window_start")),
            count=Case(When(lapsed, then=Value(1)), default=F("count") + 1),
        )
    )


def _rate_slot_take(user: User) -> int:
    """Take one of the user's credential slots for this minute; 0 when taken,
    otherwise the seconds until the next window opens. One statement in the usual
    case; a user's first request creates the window with its slot taken."""
    now = timezone.now()
    if _rate_slot_update(user, now):
        return 0
    _, created = CredentialRateWindow.objects.get_or_create(
        user=user, defaults={"window_start": now, "count": 1}
    )
    # Not created: limited, or another request created the window first.
    if created or _rate_slot_update(user, now):
        return 0
    start = CredentialRateWindow.objects.values_list("window_start", flat=True).get(user=user)
    wait = math.ceil((start + RATE_WINDOW - now).total_seconds())
    return min(max(wait, 1), int(RATE_WINDOW.total_seconds()))


def _check_rate(*, user: User, role_arn: str, kind: str, source_ip: str | None, agent: str) -> None:
    retry_after = _rate_slot_take(user)
    if not retry_after:
        return
    if _audit_room(user):
        _audit(
            user=user,
            role_arn=role_arn,
            kind=kind,
            outcome=CredentialIssuance.Outcome.RATE_LIMITED,
            source_ip=source_ip,
            user_agent=agent,
            error="rate limit",
        )
    raise RateLimited(retry_after=retry_after)


def credentials_issue(
    *,
    user: User,
    role: IamRole,
    kind: str,
    source_ip: str | None,
    user_agent: str = "",
    no_ip_restrictions: bool = False,
) -> IssuedCredentials:
    """AssumeRole on `role` with the hub identity, as `user`. The caller has
    already checked that `user` may use `role` (brokering.selectors)."""
    _check_rate(user=user, role_arn=role.arn, kind=kind, source_ip=source_ip, agent=user_agent)
    networks = [str(n) for n in settings.IAMPORTAL_CREDENTIAL_ALLOWED_CIDRS]
    if no_ip_restrictions and settings.IAMPORTAL_ALLOW_NO_IP_RESTRICTIONS:
        networks = []
    params: dict[str, Any] = {
        "RoleArn": role.arn,
        "RoleSessionName": session_name_for(user),
        "DurationSeconds": credential_duration(role),
    }
    if networks:
        params["Policy"] = json.dumps(source_ip_policy(networks), separators=(",", ":"))
    try:
        response = aws.client("sts").assume_role(**params)
    except (ClientError, BotoCoreError) as exc:
        error = describe_error(exc)
        log.warning("credentials for %s refused to %s: %s", role.arn, user.get_username(), error)
        _audit(
            user=user,
            role_arn=role.arn,
            kind=kind,
            outcome=CredentialIssuance.Outcome.FAILED,
            source_ip=source_ip,
            user_agent=user_agent,
            error=error,
            ip_restricted=bool(networks),
        )
        raise CredentialError(error) from None
    raw = response["Credentials"]
    expiration = raw["Expiration"]
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    _audit(
        user=user,
        role_arn=role.arn,
        kind=kind,
        outcome=CredentialIssuance.Outcome.ISSUED,
        source_ip=source_ip,
        user_agent=user_agent,
        expiration=expiration,
        ip_restricted=bool(networks),
        request_id=response.get("ResponseMetadata", {}).get("RequestId", "") or uuid.uuid4().hex,
    )
    return IssuedCredentials(
        access_key_id=raw["AccessKeyId"],
        secret_access_key=raw["SecretAccessKey"],
        session_token=raw["SessionToken"],
        expiration=expiration,
        role_arn=role.arn,
    )


# --- console sign-in ------------------------------------------------------------------


def console_destination(redirect: str | None) -> str:
    """The console page to land on: the configured region's home, or `redirect`
    when it is an https URL on an AWS console host (never anywhere else)."""
    region = settings.IAMPORTAL_CONSOLE_REGION
    if not redirect:
        return f"https://{region}.console.aws.amazon.com/console/home?region={region}"
    refused = BadDestination(
        "The redirect must be an https:// URL on console.aws.amazon.com; "
        f"{redirect[:200]!r} is not."
    )
    candidate = redirect.strip()
    # Browsers read a backslash as a slash and drop control characters and spaces,
    # so a URL containing them may go somewhere other than where it seems to.
    if not _URL_SAFE.fullmatch(candidate):
        raise refused
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError:
        raise refused from None
    host = (parts.hostname or "").lower()
    console_host = host == "console.aws.amazon.com" or host.endswith(".console.aws.amazon.com")
    if parts.scheme != "https" or not console_host or parts.username or parts.password:
        raise refused
    if port not in (None, 443):
        raise BadDestination("The redirect must not name a port.")
    # Rebuilt from the parts just checked, so the destination is what was checked.
    return urlunsplit(("https", host, parts.path or "/", parts.query, parts.fragment))


def console_url(*, credentials: IssuedCredentials, destination: str, issuer: str) -> str:
    """Exchange credentials for a sign-in token at the federation endpoint and
    build the console login URL."""
    federation = settings.IAMPORTAL_FEDERATION_URL
    session = json.dumps(
        {
            "sessionId": credentials.access_key_id,
            "sessionKey": credentials.secret_access_key,
            "sessionToken": credentials.session_token,
        }
    )
    try:
        # A form POST, never a query string: URLs end up in proxy and access logs.
        response = requests.post(
            federation,
            data={"Action": "getSigninToken", "Session": session},
            timeout=FEDERATION_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        token = response.json()["SigninToken"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        # The exception text may contain the request URL, and with it the session.
        log.warning("federation sign-in token request failed: %s", type(exc).__name__)
        raise CredentialError(
            "The AWS federation endpoint did not return a sign-in token."
        ) from None
    query = urlencode(
        {"Action": "login", "Issuer": issuer, "Destination": destination, "SigninToken": token}
    )
    return f"{federation}?{query}"


# --- access rules -------------------------------------------------------------------------


def access_rule_save(*, rule: AccessRule) -> AccessRule:
    """Create or update a rule (validated) and refresh who may use what."""
    rule.full_clean()
    rule.save()
    eligibility.access_changed()
    return rule


def access_rule_delete(*, rule: AccessRule) -> None:
    rule.delete()
    eligibility.access_changed()


def cli_challenges_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget CLI login challenges that expired long ago; anyone may create one."""
    deleted, _ = CliChallenge.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted
