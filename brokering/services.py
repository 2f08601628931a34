"""Credential brokering: STS credentials for a role, console sign-in URLs and
the issuance audit. Secrets pass through here and are never stored or logged."""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import shlex
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from accounts.fetch import describe_error, policy_document
from accounts.models import AwsAccount, Database, IamRole
from accounts.selectors import role_protected
from brokering import eligibility, enqueue, selectors
from brokering.models import (
    AccessRule,
    CliChallenge,
    CredentialIssuance,
    CredentialRateWindow,
    SessionRevocation,
)
from iamportal import aws, jobs, rows
from requests_app.policy.limits import INLINE_POLICIES_MAX_SIZE, compact_size, inline_policies_size

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
    return _session_name(user.email or user.get_username(), user.pk)


def _session_name(email_or_username: str, user_pk: int) -> str:
    name = _SESSION_NAME_BAD.sub("-", email_or_username.strip())[:64]
    return name if len(name) >= 2 else f"user-{user_pk}"


def _session_names_held(*, user: User, role_arn: str, now: datetime) -> list[str]:
    """The names of every session `user` may still hold on the role: today's, and
    the ones iamportal issued under an email they had before (from the issuance
    audit, within the longest session AWS allows). Today's first."""
    current = session_name_for(user)
    earlier = {
        _session_name(email or user.get_username(), user.pk)
        for email in CredentialIssuance.objects.filter(
            user=user,
            role_arn=role_arn,
            outcome=CredentialIssuance.Outcome.ISSUED,
            requested_at__gte=now - LONGEST_SESSION,
        )
        .values_list("user_email", flat=True)
        .distinct()
    }
    return [current, *sorted(earlier - {current})]


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
    target: str = "",
) -> CredentialIssuance:
    # What a client asked for goes into the audit as it was, minus NUL characters,
    # which no database text column accepts.
    role_arn = role_arn.replace("\x00", "")
    parts = role_arn.split(":")
    issuance = CredentialIssuance(
        user=user,
        user_email=user.email or user.get_username(),
        role_arn=role_arn[:2048],
        account_id=parts[4]
        if len(parts) > 4 and len(parts[4]) == 12 and parts[4].isdigit()
        else "",
        kind=kind,
        outcome=outcome,
        error=error[:2000],
        source_ip=source_ip or None,
        user_agent=user_agent.replace("\x00", "")[:512],
        expiration=expiration,
        ip_restricted=ip_restricted,
        request_id=request_id[:64],
        target=target.replace("\x00", "")[:512],
    )
    # Every credential request writes one: the statement is written once.
    rows.insert(issuance)
    return issuance


def issuance_denied(
    *,
    user: User,
    requested: str,
    kind: str,
    source_ip: str | None,
    user_agent: str,
    reason: str,
    request_id: str = "",
    target: str = "",
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
        target=target,
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
    limited, or when the user has no window yet.

    Written in SQL (the same on SQLite and PostgreSQL): every credential request
    runs it, and building it through the ORM's Case and When cost about as much CPU
    as all the other statements of the request together."""
    lapsed = connection.ops.adapt_datetimefield_value(now - RATE_WINDOW)
    with rows.cursor() as cursor:
        cursor.execute(
            _rate_slot_sql(),
            [
                lapsed,
                connection.ops.adapt_datetimefield_value(now),
                lapsed,
                user.pk,
                lapsed,
                settings.IAMPORTAL_CREDENTIAL_RATE_LIMIT,
            ],
        )
        return cursor.rowcount


@functools.cache
def _rate_slot_sql() -> str:
    meta = CredentialRateWindow._meta
    table = connection.ops.quote_name(meta.db_table)
    columns = {field.name: str(field.column) for field in meta.concrete_fields}
    start, count, user = (
        connection.ops.quote_name(columns[name]) for name in ("window_start", "count", "user")
    )
    # Only the model's own table and column names, quoted, go into the text; every
    # value is a parameter.
    return (
        f"UPDATE {table} SET "  # noqa: S608
        f"{start} = CASE WHEN {start} <= %s THEN %s ELSE {start} END, "
        f"{count} = CASE WHEN {start} <= %s THEN 1 ELSE {count} + 1 END "
        f"WHERE {user} = %s AND ({start} <= %s OR {count} < %s)"
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


def _check_rate(
    *, user: User, role_arn: str, kind: str, source_ip: str | None, agent: str, target: str = ""
) -> None:
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
            target=target,
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
    target: str = "",
) -> IssuedCredentials:
    """AssumeRole on `role` with the hub identity, as `user`. The caller has
    already checked that `user` may use `role` (brokering.selectors). `target`
    names what the credentials are for beyond the role (a database), for the audit."""
    _check_rate(
        user=user,
        role_arn=role.arn,
        kind=kind,
        source_ip=source_ip,
        agent=user_agent,
        target=target,
    )
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
            target=target,
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
        target=target,
    )
    return IssuedCredentials(
        access_key_id=raw["AccessKeyId"],
        secret_access_key=raw["SecretAccessKey"],
        session_token=raw["SessionToken"],
        expiration=expiration,
        role_arn=role.arn,
    )


# --- database passwords ---------------------------------------------------------------

# RDS accepts an IAM authentication token for 15 minutes after it is made.
DATABASE_TOKEN_LIFETIME = timedelta(minutes=15)


@dataclass(frozen=True)
class DatabasePassword:
    """An RDS IAM authentication token: shown once, never stored or logged."""

    token: str
    expiration: datetime
    role_arn: str
    host: str
    port: int
    db_user: str
    engine: str

    def __repr__(self) -> str:  # never let the token reach a log through repr()
        return (
            f"DatabasePassword(role_arn={self.role_arn!r}, host={self.host!r}, "
            f"db_user={self.db_user!r}, expiration={self.expiration!r})"
        )


def database_target(*, database: Database, db_user: str) -> str:
    """What the audit records a database password was for."""
    return f"{database.arn} as {db_user}"


def database_password_issue(
    *,
    user: User,
    role: IamRole,
    database: Database,
    db_user: str,
    source_ip: str | None,
    user_agent: str = "",
) -> DatabasePassword:
    """An IAM authentication token for `database` as `db_user`, signed with
    `role`'s credentials issued to `user` (rate-limited and audited like any
    issuance, with the database as its target). The token is a local signature:
    no call reaches the database or RDS. The caller has checked the role
    (brokering.selectors: the gates and `database_role_check`)."""
    target = database_target(database=database, db_user=db_user)
    credentials = credentials_issue(
        user=user,
        role=role,
        kind=CredentialIssuance.Kind.DATABASE,
        source_ip=source_ip,
        user_agent=user_agent,
        target=target,
    )
    session = aws.new_session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=database.region,
    )
    port = database.port or 0
    try:
        token = aws.client("rds", session=session, region=database.region).generate_db_auth_token(
            DBHostname=database.endpoint, Port=port, DBUsername=db_user, Region=database.region
        )
    except (ClientError, BotoCoreError) as exc:
        raise CredentialError(describe_error(exc)) from None
    expiration = min(timezone.now() + DATABASE_TOKEN_LIFETIME, credentials.expiration)
    return DatabasePassword(
        token=token,
        expiration=expiration,
        role_arn=role.arn,
        host=database.endpoint,
        port=port,
        db_user=db_user,
        engine=database.engine,
    )


RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"


def database_client(engine: str) -> str:
    """The command-line client for an engine: psql, mysql, or "" when neither fits."""
    engine = engine.lower()
    if "postgres" in engine:
        return "psql"
    if "mysql" in engine or "mariadb" in engine:
        return "mysql"
    return ""


def database_connect_commands(password: DatabasePassword) -> list[tuple[str, str]]:
    """Ready-to-paste commands, as (label, command): fetch the RDS certificate
    bundle once, then connect with TLS verified (IAM authentication requires TLS)."""
    token = shlex.quote(password.token)
    fetch = ("Download the RDS certificate bundle (once)", f"curl -sO {RDS_CA_BUNDLE_URL}")
    client = database_client(password.engine)
    if client == "psql":
        options = (
            f"host={password.host} port={password.port} user={password.db_user} "
            "dbname=postgres sslmode=verify-full sslrootcert=global-bundle.pem"
        )
        return [fetch, ("psql", f"PGPASSWORD={token} psql {shlex.quote(options)}")]
    if client == "mysql":
        command = (
            f"mysql --host={password.host} --port={password.port} "
            f"--user={shlex.quote(password.db_user)} --password={token} "
            "--enable-cleartext-plugin --ssl-mode=VERIFY_IDENTITY --ssl-ca=global-bundle.pem"
        )
        return [fetch, ("mysql", command)]
    return [fetch]


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


# --- access grants (approved access requests) -------------------------------------------


def access_grant_start(
    *,
    request_id: int,
    user: User,
    role: IamRole,
    cli_only: bool,
    starts_at: datetime | None,
    expires_at: datetime | None,
    replaces_request_id: int | None = None,
) -> AccessRule:
    """The grant an approved access request makes: a rule for `user` on exactly
    `role`, in force from `starts_at` (None: at once) until `expires_at` (None:
    no end). Made once per request: applying again returns the same grant. When
    it extends the grant of `replaces_request_id`, that grant ends at the moment
    this one starts, in the same transaction, so access never lapses between them."""
    now = timezone.now()
    # Access of this user to this role that just ended denies their sessions
    # issued a few seconds into the future (IN_FLIGHT): a grant starting now
    # would hand out credentials denied for their whole life. It starts when
    # that deny stops applying instead.
    denied_until = _revoked_sessions_until(user=user, role=role, now=now)
    if denied_until is not None and (starts_at is None or starts_at < denied_until):
        starts_at = denied_until
    with transaction.atomic():
        grant, created = AccessRule.objects.get_or_create(
            request_id=request_id,
            defaults={
                "user": user,
                "role_pattern": role.arn,
                "cli_only": cli_only,
                "starts_at": starts_at if starts_at is not None and starts_at > now else None,
                "expires_at": expires_at,
                "description": f"Access request #{request_id}",
            },
        )
        if replaces_request_id is not None:
            handover = max(now, grant.starts_at or now)
            AccessRule.objects.filter(request_id=replaces_request_id).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=handover)
            ).update(expires_at=handover)
        if created or replaces_request_id is not None:
            eligibility.access_changed()
    return grant


def _revoked_sessions_until(*, user: User, role: IamRole, now: datetime) -> datetime | None:
    """When sessions of `user` on `role` issued from now on stop being denied, if
    a revocation denies some issued after `now`; None otherwise. The deny's time
    is rounded up to the second, and AWS's clock may run a little behind."""
    latest = SessionRevocation.objects.filter(
        role_arn=role.arn,
        user=user,
        status__in=[SessionRevocation.Status.PENDING, SessionRevocation.Status.APPLIED],
        issued_before__gt=now,
    ).aggregate(latest=Max("issued_before"))["latest"]
    if latest is None:
        return None
    return latest.replace(microsecond=0) + timedelta(seconds=1) + _START_MARGIN


def access_grant_end(*, request_id: int, revoke_sessions: bool = True) -> AccessRule | None:
    """End the grant of an access request now (expired, revoked or given up): it
    grants nothing from this moment, and, unless its holder may still use the role
    another way, the sessions it gave are revoked. Ending it again changes nothing
    and revokes nothing new. None when the request made no grant."""
    now = timezone.now()
    with transaction.atomic():
        grant = (
            AccessRule.objects.select_for_update(of=("self",))
            .select_related("user")
            .filter(request_id=request_id)
            .first()
        )
        if grant is None:
            return None
        if grant.enabled:
            grant.enabled = False
            if grant.expires_at is None or grant.expires_at > now:
                grant.expires_at = now
            grant.save(update_fields=["enabled", "expires_at", "updated_at"])
            eligibility.access_changed()
        else:
            revoke_sessions = False
        user = grant.user
        role = IamRole.objects.select_related("account").filter(arn=grant.role_pattern).first()
        if revoke_sessions and user is not None and role is not None:
            fresh = User.objects.get(pk=user.pk)  # no memo of the old index
            if role.pk not in selectors.eligible_role_ids(fresh):
                grant_ended(user=user, role=role)
    return grant


def cli_challenges_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    """Forget CLI login challenges that expired long ago; anyone may create one."""
    deleted, _ = CliChallenge.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted


# --- ending sessions already issued ---------------------------------------------------------

REVOKED_SESSIONS_POLICY = "iamportal-revoked-sessions"
"""The inline policy iamportal owns on a role whose sessions it has revoked."""
# AWS's longest role session (12 h): how far back the audit is read when a user is disabled.
LONGEST_SESSION = timedelta(hours=12)
# Clocks differ a little between iamportal and AWS: a deny stays this much longer.
_CLOCK_MARGIN = timedelta(minutes=5)
# When access ends (a grant ends, a user is disabled), credentials may still be
# issued for a moment: by another web server whose access index is not yet
# fresh, or by a request already past its check and waiting for STS. Their
# sessions are revoked too: the deny covers sessions issued up to this long after.
IN_FLIGHT = timedelta(seconds=eligibility.FRESHNESS_SECONDS + 10)
# A grant starting just after such a deny starts this much after it ends (clocks).
_START_MARGIN = timedelta(seconds=2)
_USERID = "aws:userid"
_ISSUED = "aws:TokenIssueTime"


class RevocationRefused(ValueError):
    """A revocation iamportal will not make (on one of its own roles)."""


def revocation_window(role: IamRole) -> timedelta:
    """How long a session of `role` may live: the longest iamportal may have issued
    (the role's maximum session duration, iamportal's own credential duration, and
    an hour, the default, whichever is longest; console sessions are made from the
    same credentials), with a margin for clocks."""
    seconds = max(
        role.max_session_duration or 3600,
        credential_duration(role),
        settings.IAMPORTAL_CREDENTIAL_DURATION_SECONDS,
        3600,
    )
    return timedelta(seconds=seconds) + _CLOCK_MARGIN


def _token_time(moment: datetime) -> str:
    """`moment` as IAM's date condition reads it, rounded up to the second so that
    every session issued before `moment` falls before it."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def revoked_sessions_statement(*, session_name: str, issued_before: datetime) -> dict[str, Any]:
    """The Deny of every session named `session_name` issued before `issued_before`.
    A role session's aws:userid is "<role id>:<session name>"; session names hold
    no wildcard or colon, so the pattern matches that session name only."""
    return {
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringLike": {_USERID: f"*:{session_name}"},
            "DateLessThan": {_ISSUED: _token_time(issued_before)},
        },
    }


def _statement_session(statement: Any) -> str | None:
    """The session name a statement of the revoked-sessions policy denies."""
    try:
        pattern = statement["Condition"]["StringLike"][_USERID]
    except (KeyError, TypeError):
        return None
    return pattern[2:] if isinstance(pattern, str) and pattern.startswith("*:") else None


def _statement_time(statement: dict[str, Any]) -> str:
    return str(statement.get("Condition", {}).get("DateLessThan", {}).get(_ISSUED, ""))


def revoked_sessions_merge(
    statements: list[Any], *, session_name: str, issued_before: datetime
) -> list[Any]:
    """`statements` with one Deny for `session_name`, at the later of its time and
    `issued_before`: a revocation never moves an earlier, wider one back."""
    new = revoked_sessions_statement(session_name=session_name, issued_before=issued_before)
    merged: list[Any] = []
    for statement in statements:
        if _statement_session(statement) == session_name:
            if _statement_time(statement) > _statement_time(new):  # ISO times sort as text
                new = statement
            continue
        merged.append(statement)
    return [*merged, new]


def role_sessions_revoke(
    *,
    role: IamRole,
    user: User,
    issued_before: datetime,
    actor: User | None,
    reason: str,
) -> SessionRevocation:
    """End every session `user` holds on `role` that was issued before
    `issued_before` (credentials, Weep, console), at once: recorded here, put on
    the role by a task after the commit. Idempotent: when a revocation of this
    user on this role as late or later is pending or in force, that one is
    returned and nothing new is made. Raises RevocationRefused on iamportal's own
    roles: denying the spoke role's sessions would lock iamportal out."""
    if role_protected(role.arn):
        raise RevocationRefused(
            f"Role {role.name} is one of iamportal's own roles: its sessions cannot be "
            "revoked from iamportal (that would lock iamportal out of the account)."
        )
    # A user whose email changed may hold sessions named for the old one: each
    # name gets its revocation; the one for today's name is returned.
    names = _session_names_held(user=user, role_arn=role.arn, now=timezone.now())
    revocations = [
        _session_name_revoke(
            role=role,
            user=user,
            session_name=name,
            issued_before=issued_before,
            actor=actor,
            reason=reason,
        )
        for name in names
    ]
    return revocations[0]


def _session_name_revoke(
    *,
    role: IamRole,
    user: User,
    session_name: str,
    issued_before: datetime,
    actor: User | None,
    reason: str,
) -> SessionRevocation:
    in_force = SessionRevocation.objects.filter(
        role_arn=role.arn,
        session_name=session_name,
        issued_before__gte=issued_before,
        status__in=[SessionRevocation.Status.PENDING, SessionRevocation.Status.APPLIED],
    ).first()
    if in_force is not None:
        return in_force
    now = timezone.now()
    with transaction.atomic():
        revocation = SessionRevocation.objects.create(
            role=role,
            account=role.account,
            role_arn=role.arn,
            user=user,
            session_name=session_name,
            issued_before=issued_before,
            remove_after=max(issued_before, now) + revocation_window(role),
            actor=actor,
            reason=reason[:500],
            attempts=1,
            enqueued_at=now,
        )
        transaction.on_commit(lambda: enqueue.session_revocation_apply(revocation.pk))
    log.info(
        "revoking sessions of %s on %s issued before %s (revocation %s)",
        session_name,
        role.arn,
        _token_time(issued_before),
        revocation.pk,
    )
    return revocation


def grant_ended(*, user: User, role: IamRole) -> SessionRevocation | None:
    """A grant of `role` to `user` expired or was revoked: end the sessions it
    gave. None for iamportal's own roles, which no grant gives."""
    try:
        return role_sessions_revoke(
            role=role,
            user=user,
            issued_before=timezone.now() + IN_FLIGHT,
            actor=None,
            reason="Access grant ended",
        )
    except RevocationRefused as exc:
        log.warning("grant of %s to %s ended: %s", role.arn, user.get_username(), exc)
        return None


def user_deactivate(*, user: User, actor: User | None, reason: str = "") -> list[SessionRevocation]:
    """Disable `user` and end the sessions iamportal gave them: a revocation on
    every role they got credentials or a console session for within the longest
    session AWS allows (from the issuance audit)."""
    now = timezone.now()
    if user.is_active:
        user.is_active = False
        user.save(update_fields=["is_active"])
    arns = set(
        CredentialIssuance.objects.filter(
            user=user,
            outcome=CredentialIssuance.Outcome.ISSUED,
            requested_at__gte=now - LONGEST_SESSION,
        ).values_list("role_arn", flat=True)
    )
    revocations = []
    for role in IamRole.objects.select_related("account").filter(arn__in=arns).order_by("arn"):
        try:
            revocations.append(
                role_sessions_revoke(
                    role=role,
                    user=user,
                    issued_before=now + IN_FLIGHT,
                    actor=actor,
                    reason=reason or "User disabled",
                )
            )
        except RevocationRefused as exc:
            log.warning("disabling %s: %s", user.get_username(), exc)
    return revocations


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.IAMPORTAL_WORK_LEASE_SECONDS)


def _revoked_policy_read(iam: Any, role_name: str) -> list[Any]:
    try:
        answer = iam.get_role_policy(RoleName=role_name, PolicyName=REVOKED_SESSIONS_POLICY)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return []
        raise
    document = policy_document(answer["PolicyDocument"])
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    return [statements] if isinstance(statements, dict) else list(statements)


def _other_inline_size(iam: Any, role_name: str) -> int:
    """The size of the role's other inline policies, live, as IAM counts it."""
    names = iam.list_role_policies(RoleName=role_name).get("PolicyNames", [])
    documents = {
        name: policy_document(
            iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        )
        for name in names
        if name != REVOKED_SESSIONS_POLICY
    }
    return inline_policies_size(documents)


def _revoked_policy_write(iam: Any, role_name: str, statements: list[Any]) -> None:
    if not statements:
        try:
            iam.delete_role_policy(RoleName=role_name, PolicyName=REVOKED_SESSIONS_POLICY)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
                raise
        return
    document = {"Version": "2012-10-17", "Statement": statements}
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName=REVOKED_SESSIONS_POLICY,
        PolicyDocument=json.dumps(document, separators=(",", ":")),
    )


class _RevocationImpossible(Exception):
    """Retrying would not help: the denies no longer fit in the role's inline
    policy quota, or the account is gone."""


def _account_locked(account: AwsAccount) -> None:
    """Serialise the writes of the revoked-sessions policies of one account: each
    reads a policy, changes it and puts it back."""
    AwsAccount.objects.select_for_update().filter(pk=account.pk).first()


def session_revocation_apply(*, revocation_id: int) -> str:
    """Put a revocation's Deny on its role, through the account's spoke role.

    The row is claimed first (a lease): a second delivery of the task, or one for
    a revocation already in force, does nothing; putting the same Deny twice
    changes nothing either. When the denies would no longer fit in the role's
    inline policy quota (10,240 characters for all of them), the revocation fails
    with that said on it, and nothing is put: the operator ends the sessions in
    AWS (the role's "Revoke active sessions") or waits for older denies to be
    lifted. A temporary failure is recorded and left for the sweep to retry."""
    now = timezone.now()
    owner = jobs.worker_id()
    lapsed = Q(lease_expires_at=None) | Q(lease_expires_at__lt=now)
    claimed = SessionRevocation.objects.filter(
        lapsed, pk=revocation_id, status=SessionRevocation.Status.PENDING
    ).update(lease_owner=owner, heartbeat_at=now, lease_expires_at=_lease_until(now))
    if not claimed:
        return "skipped"
    revocation = SessionRevocation.objects.select_related("account").get(pk=revocation_id)
    held = SessionRevocation.objects.filter(
        pk=revocation_id, status=SessionRevocation.Status.PENDING, lease_owner=owner
    )
    done = {"lease_owner": "", "heartbeat_at": None, "lease_expires_at": None}
    role_name = revocation.role_arn.rsplit("/", 1)[-1]
    try:
        if revocation.account is None:
            raise _RevocationImpossible("The role's account is no longer onboarded.")
        iam = aws.client("iam", session=aws.spoke_session(revocation.account))
        with transaction.atomic():
            _account_locked(revocation.account)
            statements = revoked_sessions_merge(
                _revoked_policy_read(iam, role_name),
                session_name=revocation.session_name,
                issued_before=revocation.issued_before,
            )
            size = _other_inline_size(iam, role_name) + compact_size(
                {"Version": "2012-10-17", "Statement": statements}
            )
            if size > INLINE_POLICIES_MAX_SIZE:
                raise _RevocationImpossible(
                    f"The denies of {len(statements)} users would make the role's inline "
                    f"policies {size} characters, over IAM's {INLINE_POLICIES_MAX_SIZE}: "
                    "nothing was put. End the role's sessions in AWS instead (IAM, the role, "
                    "Revoke active sessions)."
                )
            _revoked_policy_write(iam, role_name, statements)
    except _RevocationImpossible as exc:
        held.update(status=SessionRevocation.Status.FAILED, last_error=str(exc), **done)
        log.warning("revocation %s failed: %s", revocation_id, exc)
        return "failed"
    except (ClientError, BotoCoreError) as exc:
        error = describe_error(exc)
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
            "NoSuchEntity",
            "LimitExceeded",
        ):
            held.update(status=SessionRevocation.Status.FAILED, last_error=error[:2000], **done)
            log.warning("revocation %s failed: %s", revocation_id, error)
            return "failed"
        # Left pending with its lease expired: the sweep hands it over again.
        held.update(last_error=error[:2000], lease_owner="", lease_expires_at=timezone.now())
        raise
    held.update(
        status=SessionRevocation.Status.APPLIED, applied_at=timezone.now(), last_error="", **done
    )
    return "applied"


def session_revocations_sweep() -> dict[str, int]:
    """The sweep (every minute): revocations whose task was lost or whose worker
    died go to the broker again (failed after IAMPORTAL_APPLY_MAX_ATTEMPTS), and
    denies whose sessions have all expired are lifted."""
    now = timezone.now()
    outcome = {"requeued": 0, "failed": 0, "lifted": 0}
    requeue = now - timedelta(seconds=settings.IAMPORTAL_WORK_REQUEUE_SECONDS)
    pending = SessionRevocation.objects.filter(status=SessionRevocation.Status.PENDING)
    # A worker died (its lease expired since the last hand-over), or a hand-over
    # was lost too (still not taken after the requeue delay).
    died = Q(lease_expires_at__lt=now) & (
        Q(enqueued_at__lt=F("lease_expires_at")) | Q(enqueued_at__lt=requeue)
    )
    lost = Q(lease_expires_at=None) & (Q(enqueued_at=None) | Q(enqueued_at__lt=requeue))
    for pk in pending.filter(died | lost).order_by("pk").values_list("pk", flat=True)[:1000]:
        with transaction.atomic():
            row = (
                SessionRevocation.objects.select_for_update(skip_locked=True)
                .filter(died | lost, pk=pk, status=SessionRevocation.Status.PENDING)
                .first()
            )
            if row is None:
                continue
            if row.attempts >= settings.IAMPORTAL_APPLY_MAX_ATTEMPTS:
                cause = row.last_error or "no worker finished it"
                SessionRevocation.objects.filter(pk=pk).update(
                    status=SessionRevocation.Status.FAILED,
                    last_error=f"Gave up after {row.attempts} attempts: {cause}"[:2000],
                    lease_owner="",
                    lease_expires_at=None,
                )
                outcome["failed"] += 1
                continue
            SessionRevocation.objects.filter(pk=pk).update(
                attempts=F("attempts") + 1, enqueued_at=now
            )
            transaction.on_commit(functools.partial(enqueue.session_revocation_apply, pk))
            outcome["requeued"] += 1
    outcome["lifted"] = session_revocations_lift(now=now)
    return outcome


def session_revocations_lift(*, now: datetime | None = None) -> int:
    """Remove the denies whose every session has expired (`remove_after` passed),
    role by role, and the revoked-sessions policy when none is left. A user's
    Deny stays while another revocation of them on the role is pending or in
    force. Returns the revocations lifted; running it again changes nothing."""
    now = now or timezone.now()
    due = SessionRevocation.objects.filter(
        status=SessionRevocation.Status.APPLIED, remove_after__lte=now
    )
    lifted = 0
    roles = due.order_by().values_list("account_id", "role_arn").distinct()
    for account_id, role_arn in roles:
        try:
            lifted += _role_denies_lift(account_id=account_id, role_arn=role_arn, now=now)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not lift denies on %s: %s", role_arn, describe_error(exc))
    return lifted


def _role_denies_lift(*, account_id: int | None, role_arn: str, now: datetime) -> int:
    rows = SessionRevocation.objects.filter(role_arn=role_arn)
    due = rows.filter(status=SessionRevocation.Status.APPLIED, remove_after__lte=now)
    account = AwsAccount.objects.filter(pk=account_id).first() if account_id else None
    if account is None:  # offboarded: nothing iamportal can reach, or needs to
        return due.update(status=SessionRevocation.Status.REMOVED, removed_at=now)
    iam = aws.client("iam", session=aws.spoke_session(account))
    role_name = role_arn.rsplit("/", 1)[-1]
    with transaction.atomic():
        _account_locked(account)
        # Read under the lock that applying a revocation takes: one of the same
        # user applied meanwhile keeps their statement.
        still = set(
            rows.filter(
                status__in=[SessionRevocation.Status.PENDING, SessionRevocation.Status.APPLIED],
                remove_after__gt=now,
            ).values_list("session_name", flat=True)
        )
        lifting = set(due.values_list("session_name", flat=True)) - still
        statements = _revoked_policy_read(iam, role_name)
        kept = [s for s in statements if _statement_session(s) not in lifting]
        if len(kept) != len(statements) or not kept:
            try:
                _revoked_policy_write(iam, role_name, kept)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
                    raise
        # A user's statement kept for a later revocation stays applied with it: if
        # that one fails instead, the next lift still finds this one due.
        lifted = due.filter(session_name__in=lifting)
        return lifted.update(status=SessionRevocation.Status.REMOVED, removed_at=now)
