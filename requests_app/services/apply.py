"""Applying an approved request in AWS through the spoke role of each
change's account."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.db import transaction
from django.utils import timezone

from accounts.fetch import describe_error
from accounts.models import AwsAccount, IamRole
from accounts.services import role_adopt, role_refresh
from iamportal import aws
from requests_app.changes import ChangeRefused, change_apply, change_guard, change_revert
from requests_app.models import Change, PolicyRequest, RequestEvent
from requests_app.revision import revision_short
from requests_app.services.approval import approvals_counted
from requests_app.services.common import (
    RequestActionRefused,
    _event,
    _notify,
    _request_get,
    _revision_refresh,
    _status_claim,
)
from requests_app.services.leases import WorkLeaseLost, _work_claim, _WorkLease
from requests_app.services.restore import change_role_part
from requests_app.services.review import _approvals_stale_withdraw, _withdrawn_text

log = logging.getLogger(__name__)


# Changes an apply still has to make; a retry sends failed ones back as well.
APPLICABLE = (Change.Status.PENDING, Change.Status.FAILED)


def _change_failed(change: Change, error: str) -> None:
    Change.objects.filter(pk=change.pk).update(status=Change.Status.FAILED, error=error[:5000])


class _Sessions:
    """Spoke sessions by account id, assumed once per apply."""

    def __init__(self) -> None:
        self._sessions: dict[str, Any] = {}

    def get(self, account_id: str) -> Any:
        if account_id not in self._sessions:
            account = AwsAccount.objects.filter(account_id=account_id).first()
            if account is None:
                raise RequestActionRefused(f"Account {account_id} is not known to iamportal.")
            if not account.enabled:
                raise RequestActionRefused(
                    f"Account {account} is disabled in iamportal: enable it to apply changes."
                )
            try:
                self._sessions[account_id] = aws.spoke_session(account)
            except (ClientError, BotoCoreError) as exc:
                raise RequestActionRefused(
                    f"Could not assume the spoke role {account.spoke_role_arn}: "
                    + describe_error(exc)
                ) from None
        return self._sessions[account_id]


def _change_run(change: Change, sessions: _Sessions, *, revert: bool) -> tuple[str, dict[str, Any]]:
    """Apply (or revert) one change; returns (error, outcome), error empty on success."""
    try:
        session = sessions.get(change.account_id)
        if revert:
            change_revert(change=change, session=session)
            return "", {}
        return "", change_apply(change=change, session=session) or {}
    except (RequestActionRefused, ChangeRefused) as exc:
        return exc.message, {}
    except (ClientError, BotoCoreError) as exc:
        return describe_error(exc), {}
    except Exception as exc:
        # Never leave the request claimed: fail it, keep the details in the log.
        log.exception("change %s of request #%s failed", change.pk, change.request_id)
        return f"Could not {'undo' if revert else 'apply'} this change: {type(exc).__name__}", {}


def _changes_refused(changes: list[Change], sessions: _Sessions, lease: _WorkLease) -> str:
    """Check every change against iamportal's own roles as AWS has them now,
    before any is written: a refused change fails (its error recorded) and the
    request applies nothing. Returns the error, empty when all may go ahead."""
    for change in changes:
        try:
            change_guard(change=change, session=sessions.get(change.account_id))
            continue
        except (RequestActionRefused, ChangeRefused) as exc:
            error = exc.message
        except (ClientError, BotoCoreError) as exc:
            error = "Could not check which roles use it: " + describe_error(exc)
        except Exception as exc:
            # Never leave the request claimed: fail it, keep the details in the log.
            log.exception("check of change %s of request #%s failed", change.pk, change.request_id)
            error = f"Could not check this change: {type(exc).__name__}"
        with transaction.atomic():
            lease.renew()
            _change_failed(change, error)
        return error
    return ""


def _roles_refresh(request: PolicyRequest, changes: list[Change]) -> None:
    """Bring the inventory of the touched roles up to date; the next sync catches
    up if this fails."""
    arns = {c.target_arn for c in changes if ":role/" in c.target_arn}
    for role in IamRole.objects.filter(arn__in=arns).select_related("account"):
        written = (change_role_part(c) for c in changes if c.target_arn == role.arn)
        attribution = {part: request.pk for part in written if part is not None}
        try:
            role_refresh(role=role, attribution=attribution)
        except (ClientError, BotoCoreError) as exc:
            log.warning("refresh of %s failed: %s", role.arn, describe_error(exc))


def _roles_created_read(changes: list[Change]) -> None:
    """Bring the roles a request created into the inventory now; the next sync
    catches up if this fails."""
    for change in changes:
        if change.type != Change.Type.ROLE_CREATE:
            continue
        account = AwsAccount.objects.filter(account_id=change.account_id).first()
        if account is None or IamRole.objects.filter(arn=change.target_arn).exists():
            continue
        try:
            role = role_adopt(account=account, arn=change.target_arn)
        except (ClientError, BotoCoreError) as exc:
            log.warning("reading new role %s failed: %s", change.target_arn, describe_error(exc))
            continue
        if role is not None:
            # The request is about the role it created: its page links to it.
            PolicyRequest.objects.filter(pk=change.request_id, role__isnull=True).update(role=role)


def _approvals_hold(request_id: int, lease: _WorkLease) -> bool:
    """Whether the claimed request's approvals are all for its current revision,
    recomputed from the rows, and from enough distinct reviewers. If not, nothing
    is applied: the stale approvals are withdrawn and the request is pending
    again, the reason in its timeline. Edits withdraw approvals themselves; this
    guards against any other way the content could have changed. Checked at
    every claim, a take-over's too. False also when the lease was lost."""
    with transaction.atomic():
        request = _request_get(request_id, lock=True)
        if request.status != lease.status or request.lease_owner != lease.owner:
            return False
        current = _revision_refresh(request_id)
        stale_found = request.approvals.exclude(revision=current).exists()
        counted, met = approvals_counted(request, current)
        if met and not stale_found:
            return True
        stale = _approvals_stale_withdraw(request_id, current)
        groups = (request.approval_requirement or {}).get("reviewer_groups") or []
        lease.release(to_status=PolicyRequest.Status.PENDING)
        reason = _withdrawn_text(stale, current) + " " if stale else ""
        _event(
            request_id,
            RequestEvent.Kind.WITHDRAWN,
            actor=None,
            message=(
                f"Not applied: {reason}It is pending again and needs "
                f"{request.approvals_required} approval(s) of revision {revision_short(current)}"
                + (f" from members of {', '.join(groups)}" if groups else "")
                + f"; it has {counted}."
            ),
            data={"reviewers": stale, "revision": current, "approvals": counted},
        )
    log.warning("request #%s was not applied: its approvals are not for its content", request_id)
    return False


def policy_request_apply(*, request_id: int) -> PolicyRequest:
    """Apply an approved request in AWS through the spoke role of each change's account.

    The request is claimed first (approved -> applying, with a lease), so a
    second delivery of the task, or a second approval, finds nothing to do while
    the lease is alive. Once it has expired (the worker died, or its task was
    lost), a redelivered or re-enqueued task takes the apply over. Then the
    approvals are checked against the content (see _approvals_hold). Changes are
    applied in order, each claimed by the lease holder and recording its own
    outcome; an applied change is skipped, so a take-over never applies twice.
    The lease is renewed between changes; a worker that lost it stops without
    writing further. The first failure stops the apply and fails the request.
    """
    claim = _work_claim(
        request_id,
        from_statuses=(PolicyRequest.Status.APPROVED,),
        to_status=PolicyRequest.Status.APPLYING,
    )
    if claim is None:
        return _request_get(request_id)
    lease, previous = claim
    if not _approvals_hold(request_id, lease):
        return _request_get(request_id)
    if previous:
        _event(
            request_id,
            RequestEvent.Kind.RECOVERED,
            actor=None,
            message=f"Taken over from the worker {previous}, which stopped: changes it had "
            "applied are skipped, the others applied now.",
            data={"worker": previous},
        )
    else:
        _event(request_id, RequestEvent.Kind.APPLYING, actor=None)
    request = _request_get(request_id)
    pending = list(request.changes.filter(status__in=APPLICABLE))
    sessions = _Sessions()
    applied: list[int] = []
    try:
        error = _changes_refused(pending, sessions, lease)
        for change in pending:
            if error:
                break
            if not lease.change_claim(change.pk, statuses=APPLICABLE):
                continue  # applied by the worker this one took over from
            error, outcome = _change_run(change, sessions, revert=False)
            if error:
                lease.change_record(change.pk, status=Change.Status.FAILED, error=error[:5000])
                break
            lease.change_record(
                change.pk,
                status=Change.Status.APPLIED,
                error="",
                applied_at=timezone.now(),
                outcome=outcome,
            )
            applied.append(change.pk)
        outcome_status = PolicyRequest.Status.FAILED if error else PolicyRequest.Status.APPLIED
        with transaction.atomic():
            if not error and request.extends_id is not None:
                # The request it extends first, as revoking that one locks it: a
                # revocation made while this applied has ended this one's grant.
                PolicyRequest.objects.select_for_update().filter(pk=request.extends_id).first()
                if request.events.filter(kind=RequestEvent.Kind.REVOKED).exists():
                    _extension_ended_while_applied(request, lease)
                    return _request_get(request_id)
            lease.release(to_status=outcome_status)
            _event(
                request_id,
                RequestEvent.Kind.FAILED if error else RequestEvent.Kind.APPLIED,
                actor=None,
                message=error,
                data={"applied_changes": applied},
            )
            if not error and request.extends_id is not None:
                _extension_hand_over(request)
            _notify("failed" if error else "applied", request_id)
    except WorkLeaseLost as exc:
        log.warning("%s; stopping", exc)
        return _request_get(request_id)
    if applied or previous:
        done = list(request.changes.filter(status=Change.Status.APPLIED))
        _roles_refresh(request, done)
        _roles_created_read(done)
    request.refresh_from_db()
    return request


def _extension_ended_while_applied(extension: PolicyRequest, lease: _WorkLease) -> None:
    """The grant this extension made was ended with the access it extends (a
    revocation while it was being applied): it holds nothing, so it ends expired,
    not applied."""
    lease.release(to_status=PolicyRequest.Status.EXPIRED)
    extension.changes.filter(status=Change.Status.APPLIED).update(status=Change.Status.REVERTED)
    _event(
        extension.pk,
        RequestEvent.Kind.EXPIRED,
        actor=None,
        message=f"Applied as the access it extends (request #{extension.extends_id}) was "
        "ended: it grants nothing.",
    )
    _notify("expired", extension.pk)


def _extension_hand_over(extension: PolicyRequest) -> None:
    """The extension now holds the access: the request it extends must not take it
    away when its own expiry comes."""
    if extension.extends_id is None:
        return
    if _status_claim(
        extension.extends_id,
        from_status=PolicyRequest.Status.APPLIED,
        to_status=PolicyRequest.Status.EXPIRED,
    ):
        _event(
            extension.extends_id,
            RequestEvent.Kind.EXTENDED,
            actor=None,
            message=f"Extended by request #{extension.pk}, which keeps the access until "
            f"{extension.expires_at:%Y-%m-%d %H:%M} UTC.",
            data={"extension": extension.pk},
        )
