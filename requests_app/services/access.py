"""Access requests: asking to use a role for a while (or for good, where the
account allows it). An access request is an ordinary request of kind "access"
holding one change, `role_access_grant`, so it is reviewed, bound to its
revision, approved (or approved automatically by an approval policy) and
applied as every request is; applying it makes the grant, and its expiry, a
revocation or its holder giving it up end the grant and the sessions it gave."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from brokering.services import access_grant_end
from iamportal.permissions import is_reviewer
from requests_app.changes import ChangeSpec
from requests_app.changes.access import access_payload
from requests_app.models import Change, PolicyRequest, RequestEvent
from requests_app.selectors import access_request_pending_for
from requests_app.services.common import (
    REASON_MAX_LENGTH,
    RequestActionForbidden,
    RequestActionRefused,
    RequestInvalid,
    _event,
    _notify,
    _request_get,
    _status_claim,
)
from requests_app.services.submit import (
    MAX_EXPIRY,
    _justification_errors,
    _overlap_error,
    _request_create,
    _role_errors,
)

# The durations the pages offer; the API takes any number of hours.
ACCESS_DURATIONS: dict[str, tuple[timedelta, str]] = {
    "1h": (timedelta(hours=1), "1 hour"),
    "8h": (timedelta(hours=8), "8 hours"),
    "1d": (timedelta(days=1), "1 day"),
    "7d": (timedelta(days=7), "7 days"),
}
# How far ahead a request may ask its access to start.
ACCESS_START_MAX_AHEAD = timedelta(days=30)
ACCESS_SHORTEST = timedelta(minutes=15)


def access_max_duration(account: AwsAccount) -> timedelta:
    """The longest access to a role of `account`: its setting, never over 90 days."""
    return min(account.access_max_duration or MAX_EXPIRY, MAX_EXPIRY)


def _duration_words(duration: timedelta) -> str:
    hours = int(duration.total_seconds() // 3600)
    if hours and hours % 24 == 0:
        days = hours // 24
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{hours} hour{'s' if hours != 1 else ''}"


def access_end_errors(
    account: AwsAccount, *, start: datetime, expires_at: datetime
) -> dict[str, str]:
    """What is wrong with access to a role of `account` from `start` until `expires_at`."""
    if expires_at <= start:
        return {"expires_at": "The end must be after the start."}
    if expires_at - start < ACCESS_SHORTEST:
        return {"expires_at": "Access lasts at least 15 minutes."}
    longest = access_max_duration(account)
    if expires_at - start > longest:
        return {
            "expires_at": f"Access to roles of {account.name} lasts at most "
            f"{_duration_words(longest)}."
        }
    return {}


def _start_errors(starts_at: datetime | None, now: datetime) -> dict[str, str]:
    if starts_at is None:
        return {}
    if starts_at < now - timedelta(minutes=5):
        return {"starts_at": "The start must not be in the past (leave it empty for now)."}
    if starts_at > now + ACCESS_START_MAX_AHEAD:
        return {"starts_at": "Access may start at most 30 days ahead."}
    return {}


def access_request_pending(*, user: User, role: IamRole) -> PolicyRequest | None:
    """The user's access request for `role` still waiting for a decision or its
    grant, if any: shown instead of a new form."""
    return access_request_pending_for(user=user, role=role)


def _grant_held(*, user: User, role: IamRole, now: datetime) -> PolicyRequest | None:
    """The user's applied access request for `role` whose grant is still in force."""
    return (
        PolicyRequest.objects.filter(
            requester_id=user.pk,
            kind=PolicyRequest.Kind.ACCESS,
            status=PolicyRequest.Status.APPLIED,
            role_arn=role.arn,
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by(F("expires_at").asc(nulls_first=True), "pk")
        .first()
    )


def access_request_submit(
    *,
    requester: User,
    role: IamRole,
    justification: str,
    duration: timedelta | None = None,
    expires_at: datetime | None = None,
    permanent: bool = False,
    starts_at: datetime | None = None,
    cli_only: bool = False,
) -> PolicyRequest:
    """Ask to use `role`: for `duration` from the start, until `expires_at`, or,
    where the role's account allows it, `permanent`ly (exactly one of the three),
    from `starts_at` (None: as soon as it is approved), optionally from the
    command line only. A pending request of the user for the role, or access
    they hold already through a grant, is refused. Raises RequestInvalid."""
    justification = (justification or "").strip()
    now = timezone.now()
    account = role.account
    errors = _role_errors(role) | _justification_errors(justification)
    errors |= _start_errors(starts_at, now)
    # A refused start (years ahead, say) is not reckoned with: the duration added
    # to it could leave the calendar.
    start = now if "starts_at" in errors else max(starts_at or now, now)
    chosen = sum(1 for given in (duration is not None, expires_at is not None, permanent) if given)
    if chosen != 1:
        errors["duration"] = "Choose how long: a duration, an end date, or permanent access."
    elif permanent:
        if not account.access_permanent_allowed:
            errors["duration"] = (
                f"Permanent access to roles of {account.name} may not be requested: "
                "choose a duration."
            )
    elif duration is not None:
        if duration <= timedelta(0):
            errors["duration"] = "The duration must be positive."
        else:
            expires_at = start + duration
    if expires_at is not None and "duration" not in errors and "starts_at" not in errors:
        for key, message in access_end_errors(account, start=start, expires_at=expires_at).items():
            errors["duration" if duration is not None else key] = message
    if errors:
        raise RequestInvalid(errors)
    with transaction.atomic():
        # One submission of this user at a time: two at once would both find
        # nothing pending and make two requests, and later two grants.
        # Not a key lock: credentials issued to the user meanwhile are not held up.
        User.objects.select_for_update(no_key=True).filter(pk=requester.pk).first()
        return _access_request_create(
            requester=requester,
            role=role,
            justification=justification,
            expires_at=None if permanent else expires_at,
            starts_at=starts_at,
            cli_only=cli_only,
            now=now,
        )


def _access_request_create(
    *,
    requester: User,
    role: IamRole,
    justification: str,
    expires_at: datetime | None,
    starts_at: datetime | None,
    cli_only: bool,
    now: datetime,
) -> PolicyRequest:
    account = role.account
    pending = access_request_pending(user=requester, role=role)
    if pending is not None:
        raise RequestInvalid(
            {"role": f"Your access request #{pending.pk} for this role is already in progress."}
        )
    held = _grant_held(user=requester, role=role, now=now)
    if held is not None:
        until = (
            f"until {held.expires_at:%Y-%m-%d %H:%M} UTC, so ask to extend it instead"
            if held.expires_at
            else "with no end"
        )
        raise RequestInvalid(
            {"role": f"You already hold access to this role through request #{held.pk}, {until}."}
        )
    spec = ChangeSpec(
        type=Change.Type.ROLE_ACCESS_GRANT,
        target_arn=role.arn,
        account_id=account.account_id,
        payload=access_payload(user=requester, cli_only=cli_only, starts_at=starts_at),
    )
    overlap = _overlap_error([spec], temporary=True)
    if overlap:
        raise RequestInvalid({"role": overlap})
    return _request_create(
        requester=requester,
        role=role,
        specs=[spec],
        justification=justification,
        expires_at=expires_at,
        findings=[],
        kind=PolicyRequest.Kind.ACCESS,
    )


def access_grant_revoke(*, request_id: int, actor: User, reason: str = "") -> PolicyRequest:
    """End an access request's grant before its time: a reviewer or an admin
    revokes it, or its holder gives it up. From this moment the grant gives
    nothing, and the sessions it gave are revoked (unless the holder may still
    use the role another way). Raises RequestActionForbidden for anyone else,
    RequestActionRefused when the request holds no grant in force."""
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX_LENGTH:
        raise RequestInvalid({"reason": f"Keep the reason under {REASON_MAX_LENGTH} characters."})
    with transaction.atomic():
        request = _request_get(request_id, lock=True)
        holder = request.requester_id == actor.pk
        if not holder and not is_reviewer(actor):
            raise RequestActionForbidden(
                "Only its holder, a reviewer or an admin ends a grant of access."
            )
        if request.kind != PolicyRequest.Kind.ACCESS:
            raise RequestActionRefused("This request is not for access to a role.")
        if request.status != PolicyRequest.Status.APPLIED:
            raise RequestActionRefused("This request holds no access in force.")
        PolicyRequest.objects.filter(pk=request_id).update(
            status=PolicyRequest.Status.EXPIRED, updated_at=timezone.now()
        )
        request.changes.filter(
            type=Change.Type.ROLE_ACCESS_GRANT, status=Change.Status.APPLIED
        ).update(status=Change.Status.REVERTED)
        access_grant_end(request_id=request_id)
        _extensions_end(request_id, actor=actor)
        verb = "Given up by its holder" if holder else f"Revoked by {actor.get_username()}"
        _event(
            request_id,
            RequestEvent.Kind.REVOKED,
            actor=actor,
            message=f"{verb}." + (f" {reason}" if reason else ""),
            data={"holder": holder},
        )
        _notify("expired", request_id, actor=actor)
    request.refresh_from_db()
    return request


# An extension in one of these has not given access yet: it is cancelled.
_EXTENSION_NOT_YET = (
    PolicyRequest.Status.PENDING,
    PolicyRequest.Status.APPROVED,
    PolicyRequest.Status.FAILED,
)


def _extensions_end(request_id: int, *, actor: User) -> None:
    """When a grant is revoked or given up, so is every extension of it: one not
    applied yet is cancelled (an approved one would otherwise bring the access
    back when a worker applies it); one being applied, or applied but not yet
    holding the access, has its grant ended. The apply of an extension also
    refuses once the access it extends was revoked (changes/access.py)."""
    extensions = PolicyRequest.objects.filter(extends_id=request_id).values_list("pk", "status")
    for extension_id, current in extensions:
        status = PolicyRequest.Status(current)
        message = f"The access it extends (request #{request_id}) was ended."
        if status in _EXTENSION_NOT_YET:
            if _status_claim(
                extension_id, from_status=status, to_status=PolicyRequest.Status.CANCELLED
            ):
                _event(extension_id, RequestEvent.Kind.CANCELLED, actor=actor, message=message)
        elif status in (PolicyRequest.Status.APPLYING, PolicyRequest.Status.APPLIED):
            access_grant_end(request_id=extension_id)
            if status == PolicyRequest.Status.APPLIED and _status_claim(
                extension_id, from_status=status, to_status=PolicyRequest.Status.EXPIRED
            ):
                Change.objects.filter(
                    request_id=extension_id,
                    type=Change.Type.ROLE_ACCESS_GRANT,
                    status=Change.Status.APPLIED,
                ).update(status=Change.Status.REVERTED)
            _event(extension_id, RequestEvent.Kind.REVOKED, actor=actor, message=message)
            _extensions_end(extension_id, actor=actor)
