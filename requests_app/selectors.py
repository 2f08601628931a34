"""Reads of permission requests, and the access gates every page and API uses:
which requests a user may see, and which roles a user may ask changes for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time

from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import IamRole
from brokering.selectors import RoleAmbiguous, RoleNotFound, role_pick
from iamportal.permissions import AnyUser, can_view_inventory, is_reviewer, is_signed_in
from requests_app.models import ApprovalPolicy, Change, PolicyRequest, PolicyTemplate

# An ambiguous role name lists at most this many of the roles it matches.
ROLE_MATCHES_MAX = 20


def request_for_user(*, user: AnyUser, pk: int, for_review: bool = False) -> PolicyRequest:
    """The request, when `user` may see it (its requester, or a reviewer); with
    for_review, only when `user` may review it. Anything else is 404."""
    if not is_signed_in(user):
        raise Http404("No such request.")
    request = (
        PolicyRequest.objects.select_related("requester", "role", "account").filter(pk=pk).first()
    )
    if request is None:
        raise Http404("No such request.")
    reviewer = is_reviewer(user)
    if for_review and not reviewer:
        raise Http404("No such request.")
    if not reviewer and request.requester_id != user.pk:
        raise Http404("No such request.")
    return request


def requestable_role_for_user(
    *, user: AnyUser, role_id: int | None = None, arn: str = ""
) -> IamRole:
    """The role, with its account, that `user` may ask changes for, named by its
    id or its ARN (the exact ARN, else the same ARN in another case). Anyone
    signed in may ask for changes to any role of an enabled account: reviewers
    decide. Anything else is 404. iamportal's own roles are found here; the
    services refuse changes to them, and the wizard says so at step 1."""
    if not can_view_inventory(user):
        raise Http404("No such role.")
    roles = IamRole.objects.select_related("account").filter(account__enabled=True)
    role = None
    if role_id is not None:
        role = roles.filter(pk=role_id).first()
    elif arn:
        role = roles.filter(arn=arn).first() or roles.filter(arn__iexact=arn).first()
    if role is None:
        raise Http404("No role in the inventory has this id or ARN.")
    return role


def requestable_role_resolve(*, user: AnyUser, requested: str) -> IamRole:
    """The role a request names, the way the credentials API resolves one
    (`role_pick`): its iamportal id, its ARN in any case, or a part of its ARN
    (such as its name) that only one role of an enabled account has. Several:
    RoleAmbiguous, with up to ROLE_MATCHES_MAX of them. The gate,
    `requestable_role_for_user`, decides on the role found; none is 404."""
    value = requested.strip()
    if value.isdigit():
        return requestable_role_for_user(user=user, role_id=int(value))
    if not value:
        raise Http404("No role in the inventory has this id or ARN.")
    try:
        return requestable_role_for_user(user=user, arn=value)
    except Http404 as exc:
        not_found = exc
    if not can_view_inventory(user):
        raise not_found
    candidates = list(
        IamRole.objects.filter(account__enabled=True, arn__icontains=value)
        .only("pk", "arn")
        .order_by("arn")[: ROLE_MATCHES_MAX + 1]
    )
    try:
        found = role_pick(value, candidates)
    except RoleNotFound:
        raise not_found from None
    except RoleAmbiguous as exc:
        raise RoleAmbiguous(
            exc.matches[:ROLE_MATCHES_MAX],
            detail="Several roles match; name one by its ARN.",
        ) from None
    return requestable_role_for_user(user=user, role_id=found.pk)


def requests_of(user: AnyUser) -> QuerySet[PolicyRequest]:
    """The requests `user` made, newest first."""
    if not is_signed_in(user):
        return PolicyRequest.objects.none()
    return PolicyRequest.objects.filter(requester_id=user.pk).select_related("account")


def requests_listed(user: AnyUser, *, everyone: bool = False) -> QuerySet[PolicyRequest]:
    """The requests `user` made; with `everyone`, all requests, which only
    reviewers may list (PermissionDenied otherwise)."""
    if not everyone:
        return requests_of(user)
    if not is_reviewer(user):
        raise PermissionDenied("Only reviewers list everyone's requests.")
    return PolicyRequest.objects.select_related("account")


def requests_awaiting_review(user: AnyUser) -> QuerySet[PolicyRequest]:
    """The pending requests waiting for `user`: someone else's, which they have
    not approved yet. Nothing for anyone but reviewers."""
    if not is_reviewer(user):
        return PolicyRequest.objects.none()
    return (
        PolicyRequest.objects.filter(status=PolicyRequest.Status.PENDING)
        .exclude(requester_id=user.pk)
        .exclude(approvals__reviewer_id=user.pk)
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def requests_filtered(
    requests: QuerySet[PolicyRequest],
    *,
    status: str | None = None,
    account_id: str | None = None,
    requester: str | None = None,
    role: str | None = None,
    created_after: date | None = None,
    created_before: date | None = None,
) -> QuerySet[PolicyRequest]:
    """`requests` narrowed by every filter given. A request is in an account when
    its role is there or any of its changes is applied there."""
    if status:
        requests = requests.filter(status=status)
    if account_id:
        changing = Change.objects.filter(account_id=account_id).values("request_id")
        requests = requests.filter(Q(account__account_id=account_id) | Q(pk__in=changing))
    if requester:
        requests = requests.filter(requester__username=requester)
    if role:
        requests = requests.filter(role_arn__icontains=role)
    if created_after is not None:
        requests = requests.filter(created_at__gte=_day_start(created_after))
    if created_before is not None:
        requests = requests.filter(created_at__lt=_day_start(created_before))
    return requests


def database_template() -> PolicyTemplate | None:
    """The wizard's template for IAM database authentication: the first enabled
    template that grants `rds-db:connect` (None when there is none)."""
    return (
        PolicyTemplate.objects.filter(enabled=True, document__contains="rds-db:connect")
        .order_by("name")
        .first()
    )


def role_grants(*, user: AnyUser, role: IamRole) -> list[PolicyRequest]:
    """The access grants in force or yet to start on `role`, soonest end first, with
    their approvals: every one for reviewers, a user's own for anyone else."""
    if not is_signed_in(user):
        return []
    now = timezone.now()
    rows = (
        PolicyRequest.objects.filter(
            kind=PolicyRequest.Kind.ACCESS,
            status=PolicyRequest.Status.APPLIED,
            role_arn=role.arn,
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("requester", "grant")
        .prefetch_related("approvals__reviewer")
        .order_by(F("expires_at").asc(nulls_last=True), "pk")
    )
    if not is_reviewer(user):
        rows = rows.filter(requester_id=user.pk)
    return list(rows[:200])


def access_request_pending_for(*, user: AnyUser, role: IamRole) -> PolicyRequest | None:
    """The user's access request for `role` still on its way, if any."""
    if not is_signed_in(user):
        return None
    return (
        PolicyRequest.objects.filter(
            requester_id=user.pk,
            kind=PolicyRequest.Kind.ACCESS,
            role_arn=role.arn,
            status__in=(
                PolicyRequest.Status.PENDING,
                PolicyRequest.Status.APPROVED,
                PolicyRequest.Status.APPLYING,
            ),
        )
        .order_by("-created_at")
        .first()
    )


def approval_policies_emptied_by(
    *, account_pks: Iterable[int] = (), group_pks: Iterable[int] = ()
) -> list[str]:
    """What deleting these accounts or groups would do to the approval policies
    naming them: one that names no other account would match every account, one
    that names no other reviewer group would let any reviewer approve. The admin
    refuses such a deletion until the policy is changed."""
    accounts, groups = set(account_pks), set(group_pks)
    problems: list[str] = []
    for policy in ApprovalPolicy.objects.prefetch_related("accounts", "reviewer_groups"):
        named = {account.pk for account in policy.accounts.all()}
        if named and named <= accounts:
            problems.append(
                f"Approval policy {policy.name!r} names no other account: without it, the "
                "policy would match every account. Change the policy first."
            )
        named = {group.pk for group in policy.reviewer_groups.all()}
        if named and named <= groups:
            problems.append(
                f"Approval policy {policy.name!r} names no other reviewer group: without it, "
                "any reviewer could approve. Change the policy first."
            )
    return problems
