"""Reviewing a request: approve (with its revision and findings checks),
reject, cancel, comment, the requester's edits and a retry after a failure."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from iamportal.permissions import is_admin, is_reviewer
from requests_app.changes import ChangeInvalid, ChangeSpec, change_validate, cross_account_changes
from requests_app.findings import findings_errors, findings_risk, request_findings
from requests_app.models import Approval, Change, Comment, PolicyRequest, RequestEvent
from requests_app.revision import revision_short
from requests_app.services.approval import (
    _approval_requirement_decide,
    _refuse_unless_allowed_group,
    approvals_counted,
)
from requests_app.services.common import (
    REASON_MAX_LENGTH,
    RequestActionForbidden,
    RequestActionRefused,
    RequestInvalid,
    _apply_enqueue,
    _event,
    _notify,
    _refuse_unless_claimed,
    _request_get,
    _revision_refresh,
)
from requests_app.services.submit import (
    _acknowledgement,
    _change_row,
    _overlap_error,
)

COMMENT_MAX_LENGTH = 5000


class FindingsNotAcknowledged(RequestActionRefused):
    """Approving a request with error findings without acknowledging them."""


REVISION_MAX_LENGTH = 64


REVISION_STALE_MESSAGE = "The request changed since you opened it: review the new version."


REVISION_MISSING_MESSAGE = (
    "An approval names the revision it approves: open the request and review its current version."
)


class RequestRevisionStale(RequestActionRefused):
    """An approval for another revision than the request's current one (or for
    none): the reviewer did not see what would be applied. `current` is the
    revision to review."""

    def __init__(self, message: str, *, current: str) -> None:
        super().__init__(message)
        self.current = current


def _refuse_unless_reviewer(user: User, verb: str) -> None:
    if not is_reviewer(user):
        raise RequestActionForbidden(f"Only reviewers {verb} requests.")


def _self_approval(request: PolicyRequest, reviewer: User) -> bool:
    """Whether `reviewer` is approving their own request; refused unless the
    setting lets admins do so."""
    if request.requester_id != reviewer.pk:
        return False
    if is_admin(reviewer) and settings.IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL:
        return True
    raise RequestActionForbidden("Nobody approves their own request: another reviewer must.")


def policy_request_approve(
    *, request_id: int, reviewer: User, revision: str, findings_acknowledged: bool = False
) -> PolicyRequest:
    """Record one reviewer's approval of `revision` of a pending request: the
    revision the reviewer was shown. Another revision, or none, is refused with
    RequestRevisionStale: the request changed since they opened it. A request
    with error findings is approved only with `findings_acknowledged`, recorded
    with the approval. When the request has as many distinct approvals as its
    accounts require, it becomes approved and its apply is queued (after the
    commit).

    The request row is locked while the revision is compared and approvals are
    counted, so an edit cannot slip in between, and two reviewers approving at
    once are counted one after the other and the request is approved, and
    applied, once.
    """
    _refuse_unless_reviewer(reviewer, "approve")
    with transaction.atomic():
        request = _request_get(request_id, lock=True)
        if request.status != PolicyRequest.Status.PENDING:
            raise RequestActionRefused(
                f"Request #{request_id} is {request.status}: only pending requests can be approved."
            )
        self_approval = _self_approval(request, reviewer)
        _refuse_unless_allowed_group(request, reviewer)
        # From the rows, not the stored field: what will be applied is what counts.
        current = _revision_refresh(request_id)
        if not revision:
            raise RequestRevisionStale(REVISION_MISSING_MESSAGE, current=current)
        if revision != current:
            raise RequestRevisionStale(REVISION_STALE_MESSAGE, current=current)
        stale = _approvals_stale_withdraw(request_id, current)
        if stale:
            _event(
                request_id,
                RequestEvent.Kind.WITHDRAWN,
                actor=None,
                message=_withdrawn_text(stale, current),
                data={"reviewers": stale, "revision": current},
            )
        if request.approvals.filter(reviewer=reviewer).exists():
            raise RequestActionRefused(
                f"You have already approved request #{request_id}; another reviewer must "
                "approve it too."
            )
        acknowledged = _approval_acknowledgement(request, findings_acknowledged)
        Approval.objects.create(
            request=request, reviewer=reviewer, self_approval=self_approval, revision=current
        )
        given, complete = approvals_counted(request, current)
        needed = request.approvals_required
        _event(
            request_id,
            RequestEvent.Kind.APPROVED,
            actor=reviewer,
            message=(
                ("Approved by the requester, an admin. " if self_approval else "")
                + (f"Approval {given} of {needed}. " if needed > 1 else "")
                + (
                    f"Acknowledged {len(acknowledged)} error-level finding(s)."
                    if acknowledged
                    else ""
                )
            ).strip(),
            data={
                "self_approval": self_approval,
                "approvals": given,
                "required": needed,
                **({"findings_acknowledged": acknowledged} if acknowledged else {}),
                "revision": current,
            },
        )
        if complete:
            _refuse_unless_claimed(
                request_id,
                from_status=PolicyRequest.Status.PENDING,
                to_status=PolicyRequest.Status.APPROVED,
                verb="approved",
            )
            _apply_enqueue(request_id)
        _notify("approved", request_id, actor=reviewer)
    request.refresh_from_db()
    return request


def _approval_acknowledgement(
    request: PolicyRequest, acknowledged: bool
) -> list[dict[str, Any]] | None:
    """The error findings the reviewer acknowledges by approving; None when the
    request has none. Refused when it has some and they are not acknowledged."""
    errors = findings_errors(request.findings or [])
    if not errors:
        return None
    if not acknowledged:
        raise FindingsNotAcknowledged(
            f"Request #{request.pk} has {len(errors)} error-level finding(s): approving it "
            "needs an acknowledgement that you have read them (the checkbox on the review "
            'page, or "findings_acknowledged": true).'
        )
    return [{key: f.get(key) for key in ("change", "code", "title", "location")} for f in errors]


def _approvals_stale_withdraw(request_id: int, current: str) -> list[str]:
    """Drop the approvals given for another revision than `current` (the content
    changed by some path that did not withdraw them); returns their reviewers."""
    stale = Approval.objects.filter(request_id=request_id).exclude(revision=current)
    reviewers = [
        name or "the automatic approval"
        for name in stale.values_list("reviewer__username", flat=True)
    ]
    if reviewers:
        stale.delete()
    return reviewers


def _withdrawn_text(reviewers: list[str], current: str) -> str:
    return (
        f"Approval(s) by {', '.join(reviewers)} withdrawn: they were given for another "
        f"version of the request than the current one ({revision_short(current)})."
    )


def _text_bounded(value: str, *, what: str, limit: int) -> str:
    value = (value or "").strip()
    if not value:
        raise RequestActionRefused(f"{what} is required.")
    if len(value) > limit:
        raise RequestActionRefused(f"{what} is at most {limit} characters.")
    return value


def _pending_close(request_id: int, *, to_status: PolicyRequest.Status, verb: str) -> None:
    """End a pending request without applying it: none of its changes will be."""
    _refuse_unless_claimed(
        request_id, from_status=PolicyRequest.Status.PENDING, to_status=to_status, verb=verb
    )
    Change.objects.filter(request_id=request_id, status=Change.Status.PENDING).update(
        status=Change.Status.CANCELLED
    )


def policy_request_reject(*, request_id: int, reviewer: User, reason: str) -> PolicyRequest:
    _refuse_unless_reviewer(reviewer, "reject")
    reason = _text_bounded(reason, what="A reason for the rejection", limit=REASON_MAX_LENGTH)
    with transaction.atomic():
        request = _request_get(request_id)
        _pending_close(request_id, to_status=PolicyRequest.Status.REJECTED, verb="rejected")
        _event(request_id, RequestEvent.Kind.REJECTED, actor=reviewer, message=reason)
        _notify("rejected", request_id, actor=reviewer)
    request.refresh_from_db()
    return request


def policy_request_cancel(*, request_id: int, requester: User) -> PolicyRequest:
    with transaction.atomic():
        request = _request_get(request_id)
        if request.requester_id != requester.pk:
            raise RequestActionForbidden("Only the requester can cancel a request.")
        _pending_close(request_id, to_status=PolicyRequest.Status.CANCELLED, verb="cancelled")
        _event(request_id, RequestEvent.Kind.CANCELLED, actor=requester)
    request.refresh_from_db()
    return request


def policy_request_comment(*, request_id: int, author: User, body: str) -> Comment:
    body = _text_bounded(body, what="A comment", limit=COMMENT_MAX_LENGTH)
    with transaction.atomic():
        request = _request_get(request_id)
        if request.requester_id != author.pk and not is_reviewer(author):
            raise RequestActionForbidden("Only the requester and reviewers comment on a request.")
        comment = Comment.objects.create(request=request, author=author, body=body)
        _event(
            request_id,
            RequestEvent.Kind.COMMENTED,
            actor=author,
            message=body,
            data={"comment_id": comment.pk},
        )
        _notify("commented", request_id, actor=author, comment_id=comment.pk)
    return comment


def change_edit(
    *, change_id: int, editor: User, payload: Any, findings_acknowledgement: str = ""
) -> Change:
    """The requester replaces what a change of their pending request does. Its type
    and target stay; the request gets a new revision and approvals given so far
    are withdrawn, since reviewers approved something else; the reviewers who
    approved or commented are told, with the new diff. The request's findings
    are judged again; error findings need `findings_acknowledgement` as at
    submit. Raises RequestInvalid or
    RequestActionRefused."""
    with transaction.atomic():
        change = Change.objects.select_related("request").filter(pk=change_id).first()
        if change is None:
            raise RequestActionRefused(f"Change {change_id} does not exist.")
        request = _request_get(change.request_id, lock=True)
        if request.requester_id != editor.pk:
            raise RequestActionForbidden("Only the requester edits the changes of a request.")
        if request.status != PolicyRequest.Status.PENDING:
            raise RequestActionRefused(
                f"Request #{request.pk} is {request.status}: only pending requests can be edited."
            )
        if change.automatic:
            raise RequestActionRefused(
                "iamportal added this change for a cross-account grant: edit the change it "
                "follows from instead."
            )
        if request.extends_id is not None:
            raise RequestActionRefused(
                "An extension keeps the access it extends as it is: cancel it and make a new "
                "request to change what is granted."
            )
        try:
            spec = change_validate(type=change.type, target_arn=change.target_arn, payload=payload)
        except ChangeInvalid as exc:
            raise RequestInvalid(exc.errors) from None
        overlap = _overlap_error(
            [spec], temporary=request.expires_at is not None, exclude=request.pk
        )
        if overlap:
            raise RequestInvalid({"payload": overlap})
        before = change.payload
        change.payload = spec.payload
        change.previous = spec.previous
        change.save(update_fields=["payload", "previous"])
        _automatic_changes_renew(request)
        findings = _findings_store(request)
        acknowledgement = _acknowledgement(findings, findings_acknowledgement)
        revision = _revision_refresh(request.pk)
        withdrawn = request.approvals.count()
        request.approvals.all().delete()
        _event(
            request.pk,
            RequestEvent.Kind.EDITED,
            actor=editor,
            message=(
                f"Changed {change.get_type_display().lower()}"
                + (f"; {withdrawn} approval(s) withdrawn." if withdrawn else ".")
                + f" New revision {revision_short(revision)}."
            ),
            data={
                "change_id": change.pk,
                "before": before,
                "approvals_withdrawn": withdrawn,
                "findings": findings,
                "acknowledgement": acknowledgement,
                "revision": revision,
            },
        )
        _notify("edited", request.pk, actor=editor)
        # The content changed: the policy that decides may be another one now.
        _approval_requirement_decide(request)
    return change


def _findings_store(request: PolicyRequest) -> list[dict[str, Any]]:
    """Judge the request's changes as they are now and store the findings and
    their highest severity on the request."""
    changes = list(request.changes.all())
    findings = [
        f.as_dict()
        for f in request_findings(role=request.role, changes=changes, exclude_request_id=request.pk)
    ]
    request.findings = findings
    request.risk = findings_risk(findings)
    request.save(update_fields=["findings", "risk", "updated_at"])
    return findings


def _automatic_changes_renew(request: PolicyRequest) -> None:
    """After an edit, the other halves of cross-account grants follow the edited
    identity policies: what they no longer name is dropped, what is new is added."""
    if request.role is None:
        return
    request.changes.filter(automatic=True).delete()
    specs: list[ChangeSpec] = []
    for change in request.changes.filter(type=Change.Type.INLINE_POLICY_PUT):
        document = change.payload.get("document") if isinstance(change.payload, dict) else None
        if isinstance(document, dict):
            specs += cross_account_changes(role=request.role, document=document)
    last = request.changes.count()
    Change.objects.bulk_create(
        _change_row(request, position, spec, renumber=True)
        for position, spec in enumerate(specs, start=last)
    )
    _revision_refresh(request.pk)


def policy_request_retry(*, request_id: int, reviewer: User) -> PolicyRequest:
    """Send a failed request back to apply; what was already applied stays applied
    and is skipped."""
    _refuse_unless_reviewer(reviewer, "retry")
    with transaction.atomic():
        request = _request_get(request_id)
        _self_approval(request, reviewer)
        _refuse_unless_claimed(
            request_id,
            from_status=PolicyRequest.Status.FAILED,
            to_status=PolicyRequest.Status.APPROVED,
            verb="retried",
        )
        Change.objects.filter(request_id=request_id, status=Change.Status.FAILED).update(
            status=Change.Status.PENDING, error=""
        )
        _event(request_id, RequestEvent.Kind.RETRIED, actor=reviewer)
        _apply_enqueue(request_id)
    request.refresh_from_db()
    return request
