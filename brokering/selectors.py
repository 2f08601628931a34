"""Which roles a user may use, who may use a role, and the access gate for
brokering: a role a user may not use is indistinguishable from one that does
not exist."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from django.contrib.auth.models import Group, User
from django.db.models import Field, Max, Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from accounts import selectors as accounts_selectors
from accounts.models import AwsAccount, Database, IamRole
from brokering import eligibility
from brokering.models import CliChallenge, CredentialIssuance, SessionRevocation
from iamportal import rows
from iamportal.permissions import AnyUser, is_signed_in, user_groups
from requests_app.policy import evaluate


@dataclass(frozen=True)
class EligibleRole:
    id: int
    arn: str
    name: str
    account_id: str
    account_name: str
    cli_only: bool


_MEMO = "_iamportal_eligible"
_ROLE_MEMO = "_iamportal_resolved_role"
# What issuing credentials and a console session read of a role resolved by its
# ARN: not the policies, which can be tens of kilobytes of JSON to decode.
RESOLVED_ROLE_FIELDS = ("arn", "name", "max_session_duration", "account")
RESOLVED_ACCOUNT_FIELDS = ("account_id", "name", "enabled")


def _principals(user: AnyUser) -> list[str]:
    """Role tags name groups and emails; access rules name group and user ids."""
    principals = []
    for group_id, name in user_groups(user):
        principals.append(eligibility.group_principal(name))
        principals.append(eligibility.group_id_principal(group_id))
    email = getattr(user, "email", "")
    if email:
        principals.append(eligibility.user_principal(email))
    if user.pk is not None:
        principals.append(eligibility.user_id_principal(user.pk))
    return principals


def eligible_role_ids(user: AnyUser) -> dict[int, bool]:
    """Role id -> CLI only, for every role `user` may use."""
    if not is_signed_in(user):
        return {}
    index = eligibility.access_index()
    # One request often asks twice (resolve a role, then load it): answer the
    # second time from the user object, as long as the index is the same one.
    memo = getattr(user, _MEMO, None)
    if memo is not None and memo[0] is index:
        return dict(memo[1])
    result: dict[int, bool] = {}
    for principal in _principals(user):
        for role_id, cli_only in index.grants.get(principal, {}).items():
            result[role_id] = result.get(role_id, True) and cli_only
    setattr(user, _MEMO, (index, result))
    return dict(result)


def role_grant_for_user(user: AnyUser, role_id: int) -> bool | None:
    """Whether `user` may use one role: None when not, else whether only from the
    command line. The same answer as eligible_role_ids(user).get(role_id), from
    that role's entry under each of the user's principals, without gathering
    every role the user may use (a credential request names one)."""
    if not is_signed_in(user):
        return None
    index = eligibility.access_index()
    memo = getattr(user, _MEMO, None)
    if memo is not None and memo[0] is index:
        return memo[1].get(role_id)
    granted: bool | None = None
    for principal in _principals(user):
        cli_only = index.grants.get(principal, {}).get(role_id)
        if cli_only is not None:
            granted = cli_only if granted is None else granted and cli_only
    return granted


def roles_for_user(user: AnyUser, *, include_cli_only: bool = True) -> list[EligibleRole]:
    """The roles `user` may use, sorted by ARN (the order Weep lists them in)."""
    eligible = eligible_role_ids(user)
    if not include_cli_only:
        eligible = {pk: cli for pk, cli in eligible.items() if not cli}
    if not eligible:
        return []
    rows = (
        IamRole.objects.filter(pk__in=list(eligible), account__enabled=True)
        .values_list("pk", "arn", "name", "account__account_id", "account__name")
        .order_by("arn")
    )
    return [
        EligibleRole(
            id=pk,
            arn=arn,
            name=name,
            account_id=account_id,
            account_name=account_name,
            cli_only=eligible[pk],
        )
        for pk, arn, name, account_id, account_name in rows
    ]


class RoleNotFound(Exception):
    """No eligible role matches (Weep code 900)."""


class HasArn(Protocol):
    @property
    def arn(self) -> str: ...


R = TypeVar("R", bound=HasArn)


class RoleAmbiguous(Exception):
    """Several roles match (Weep code 901); `detail` says so to a person."""

    def __init__(
        self,
        matches: Sequence[HasArn],
        *,
        detail: str = "Several of your roles match; name one exactly.",
    ) -> None:
        super().__init__(f"{len(matches)} roles match")
        self.matches = matches
        self.detail = detail


def role_pick(requested: str, roles: Sequence[R]) -> R:
    """Weep's rule for what a user typed, among `roles`: a case-insensitive exact
    ARN wins; otherwise the one role whose ARN contains it, ignoring case (a
    name, a path and name, an account id and name...). RoleAmbiguous when
    several do, RoleNotFound when none does."""
    wanted = requested.strip().lower()
    if not wanted:
        raise RoleNotFound(requested)
    for role in roles:
        if role.arn.lower() == wanted:
            return role
    matches = [role for role in roles if wanted in role.arn.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise RoleAmbiguous(matches)
    raise RoleNotFound(requested)


def role_resolve(user: AnyUser, requested: str, *, include_cli_only: bool = True) -> EligibleRole:
    """Resolve what a user typed the way Weep does (`role_pick`) among the user's
    eligible roles. Roles the user may not use are never considered, so nothing
    about them leaks."""
    if not requested.strip():
        raise RoleNotFound(requested)
    exact = _exact_arn_match(user, requested.strip(), include_cli_only=include_cli_only)
    if exact is not None:
        return exact
    return role_pick(requested, roles_for_user(user, include_cli_only=include_cli_only))


def _exact_arn_match(user: AnyUser, arn: str, *, include_cli_only: bool) -> EligibleRole | None:
    """Weep nearly always sends a full ARN: one read on the unique ARN index answers
    it without loading the user's whole role list. Anything else (another case, a
    fragment, a role the user may not use) falls through to the full resolution."""
    if not arn.startswith("arn:"):
        return None
    role = _role_by_arn(arn)
    if role is None:
        return None
    cli_only = role_grant_for_user(user, role.pk)
    if cli_only is None or (cli_only and not include_cli_only):
        return None
    # The caller loads this role next (usable_role_for_user): keep it for this request.
    setattr(user, _ROLE_MEMO, role)
    return EligibleRole(
        id=role.pk,
        arn=role.arn,
        name=role.name,
        account_id=role.account.account_id,
        account_name=role.account.name,
        cli_only=cli_only,
    )


def _role_by_arn(arn: str) -> IamRole | None:
    """The role with this exact ARN in an enabled account, with its account: one
    read on the unique ARN index, written once (iamportal.rows) since every
    credential request runs it."""
    role_fields, account_fields = _resolved_fields()
    with rows.cursor() as cursor:
        cursor.execute(_role_by_arn_sql(), [arn, True])
        found = cursor.fetchone()
    if found is None:
        return None
    role = rows.instance(IamRole, role_fields, found[: len(role_fields)])
    account = rows.instance(AwsAccount, account_fields, found[len(role_fields) :])
    IamRole._meta.get_field("account").set_cached_value(role, account)
    return role


@functools.cache
def _resolved_fields() -> tuple[list[Field], list[Field]]:
    return (
        rows.concrete_fields(IamRole, RESOLVED_ROLE_FIELDS),
        rows.concrete_fields(AwsAccount, RESOLVED_ACCOUNT_FIELDS),
    )


@functools.cache
def _role_by_arn_sql() -> str:
    role_fields, account_fields = _resolved_fields()
    table, column = rows.table, rows.column
    return (
        f"SELECT {rows.columns('r', role_fields)}, {rows.columns('a', account_fields)} "  # noqa: S608
        f"FROM {table(IamRole)} r JOIN {table(AwsAccount)} a "
        f"ON a.{column(AwsAccount, 'pk')} = r.{column(IamRole, 'account')} "
        f"WHERE r.{column(IamRole, 'arn')} = %s AND a.{column(AwsAccount, 'enabled')} = %s"
    )


def usable_role_for_user(*, user: AnyUser, role_id: int) -> IamRole:
    """The role with its account, when `user` may use it (credentials, the
    console); 404 otherwise."""
    if role_grant_for_user(user, role_id) is None:
        raise Http404("No such role.")
    resolved: IamRole | None = user.__dict__.pop(_ROLE_MEMO, None)  # one use only
    if resolved is not None and resolved.pk == role_id:
        return resolved
    role = (
        IamRole.objects.select_related("account").filter(pk=role_id, account__enabled=True).first()
    )
    if role is None:
        raise Http404("No such role.")
    return role


@dataclass(frozen=True)
class RoleAudience:
    groups: list[tuple[str, bool]]  # (group name, cli_only)
    users: list[tuple[str, bool]]  # (email, cli_only)


def users_for_role(role: IamRole) -> RoleAudience:
    """Who may use `role`: the groups and the individual users granted it."""
    groups: dict[str, bool] = {}
    users: dict[str, bool] = {}
    group_ids: dict[int, bool] = {}
    user_ids: dict[int, bool] = {}
    for principal, roles in eligibility.access_index().grants.items():
        if role.pk not in roles:
            continue
        kind, _, name = principal.partition(":")
        cli_only = roles[role.pk]
        if kind == "g":
            groups[name] = groups.get(name, True) and cli_only
        elif kind == "u":
            users[name] = users.get(name, True) and cli_only
        elif kind == "gid":
            group_ids[int(name)] = cli_only
        elif kind == "uid":
            user_ids[int(name)] = cli_only
    for group_id, name in Group.objects.filter(pk__in=group_ids).values_list("pk", "name"):
        key = name.lower()
        groups[key] = groups.get(key, True) and group_ids[group_id]
    for user_id, email, username in User.objects.filter(pk__in=user_ids).values_list(
        "pk", "email", "username"
    ):
        key = (email or username).lower()
        users[key] = users.get(key, True) and user_ids[user_id]
    return RoleAudience(groups=sorted(groups.items()), users=sorted(users.items()))


@dataclass(frozen=True)
class RulePreview:
    """The synced roles an access rule's pattern matches: how many, and the first ones."""

    total: int
    arns: list[str]

    @property
    def more(self) -> int:
        return self.total - len(self.arns)


def access_rule_preview(*, pattern: str, limit: int) -> RulePreview:
    """What a rule with this pattern would grant, before it is saved: the same
    matching as the access index."""
    arns = eligibility.roles_matching(pattern) if pattern.strip() else []
    return RulePreview(total=len(arns), arns=arns[:limit])


def recent_issuances(role: IamRole, *, limit: int = 20) -> list[CredentialIssuance]:
    return list(
        CredentialIssuance.objects.filter(role_arn=role.arn).order_by("-requested_at")[:limit]
    )


def recently_used_role_arns(user: User, *, limit: int = 50) -> dict[str, object]:
    """Role ARN -> when the user last got credentials for it, most recent first."""
    rows = (
        CredentialIssuance.objects.filter(user=user, outcome=CredentialIssuance.Outcome.ISSUED)
        .values("role_arn")
        .annotate(last=Max("requested_at"))
        .order_by("-last")[:limit]
    )
    return {row["role_arn"]: row["last"] for row in rows}


def issuances_for_user(user: User) -> QuerySet[CredentialIssuance]:
    """The user's own credential issuances and console sign-ins, newest first:
    granted, refused and failed alike."""
    return CredentialIssuance.objects.filter(user=user).order_by("-requested_at", "-id")


def _challenges_of(user: User) -> Q:
    """Challenges asked for this user: by user name or email, any case, as
    cli_auth.challenge_is_for decides."""
    names = Q(requested_user__iexact=user.get_username())
    if user.email.strip():
        names |= Q(requested_user__iexact=user.email.strip())
    return names


def pending_cli_challenges_for_user(user: User) -> list[CliChallenge]:
    """CLI sign-ins waiting for this user's approval, oldest first (the first to expire)."""
    return list(
        CliChallenge.objects.filter(
            _challenges_of(user),
            status=CliChallenge.Status.PENDING,
            expires_at__gt=timezone.now(),
        ).order_by("created_at", "id")
    )


def cli_challenge_for_user(*, user: User, pk: int) -> CliChallenge:
    """The access gate for answering a CLI sign-in from My roles: one asked for
    this user, in any state; anyone else's is 404."""
    try:
        return CliChallenge.objects.filter(_challenges_of(user)).get(pk=pk)
    except CliChallenge.DoesNotExist:
        raise Http404("No such sign-in request.") from None


def user_named(name: str) -> User | None:
    """The iamportal user whose user name or email address is `name` (either
    case); None when there is none, or several share that address."""
    name = name.strip()
    users = list(User.objects.filter(Q(username__iexact=name) | Q(email__iexact=name))[:2])
    exact = [u for u in users if u.get_username().lower() == name.lower()]
    if exact:
        return exact[0]
    return users[0] if len(users) == 1 else None


def role_revocations(role: IamRole, *, limit: int = 20) -> list[SessionRevocation]:
    """The latest revocations of sessions on `role`, newest first."""
    rows = SessionRevocation.objects.filter(role_arn=role.arn).select_related("user", "actor")
    return list(rows.order_by("-created_at", "-id")[:limit])


# --- databases reachable through the roles a user may use ----------------------------

CONNECT = "rds-db:connect"


@dataclass(frozen=True)
class DatabaseRoleAccess:
    """One of the user's roles that may connect to a database: as the named
    database users, or (`any_user`) as users a pattern allows, typed in."""

    role: EligibleRole
    db_users: tuple[str, ...]
    patterns: tuple[str, ...]

    @property
    def any_user(self) -> bool:
        return bool(self.patterns)


@dataclass(frozen=True)
class ReachableDatabase:
    database: Database
    access: tuple[DatabaseRoleAccess, ...]
    # The user's roles in the database's account: where to ask for access.
    account_roles: tuple[EligibleRole, ...]

    @property
    def token_supported(self) -> bool:
        return database_token_supported(self.database)


def database_token_supported(database: Database) -> bool:
    """RDS instances and Aurora clusters with IAM authentication and an endpoint.
    Redshift signs in with GetClusterCredentials instead; an instance of an Aurora
    cluster is reached through its cluster."""
    return (
        database.type in (Database.Type.RDS_INSTANCE, Database.Type.RDS_CLUSTER)
        and bool(database.iam_auth)
        and bool(database.endpoint and database.port and database.resource_id)
        and not database.cluster
    )


def db_user_arn(*, database: Database, partition: str, db_user: str) -> str:
    """The resource `rds-db:connect` names for connecting as `db_user`."""
    return (
        f"arn:{partition}:rds-db:{database.region}:{database.account.account_id}:dbuser:"
        f"{database.resource_id}/{db_user}"
    )


def _partition(arn: str) -> str:
    parts = arn.split(":")
    return parts[1] if len(parts) > 1 and parts[1] else "aws"


def _context(role_arn: str) -> dict[str, str]:
    return {"aws:PrincipalArn": role_arn, "aws:PrincipalAccount": role_arn.split(":")[4]}


def _role_access(
    role: EligibleRole, documents: list[Any], database: Database
) -> DatabaseRoleAccess | None:
    """Which database users `role`'s policies let it connect to `database` as."""
    if not database_token_supported(database):
        return None
    partition = _partition(role.arn)
    users: dict[str, None] = {}
    patterns: dict[str, None] = {}
    for pattern in evaluate.allowed_resources(documents, action=CONNECT):
        user_part = pattern.rsplit("/", 1)[1] if "/" in pattern else "*"
        if not user_part:
            continue
        resource = db_user_arn(database=database, partition=partition, db_user=user_part)
        result = evaluate.policy_evaluate(
            documents, action=CONNECT, resource=resource, context=_context(role.arn)
        )
        if not result.allowed or result.partly:
            continue
        if any(ch in user_part for ch in "*?$"):
            patterns[user_part] = None
        else:
            users[user_part] = None
    if not users and not patterns:
        return None
    return DatabaseRoleAccess(role=role, db_users=tuple(users), patterns=tuple(patterns))


def databases_for_user(user: AnyUser) -> list[ReachableDatabase]:
    """The databases in the accounts where `user` may use a role, with the roles
    that may connect to each; sorted by account, then name."""
    roles = roles_for_user(user)
    by_account: dict[str, list[EligibleRole]] = {}
    for role in roles:
        by_account.setdefault(role.account_id, []).append(role)
    if not by_account:
        return []
    databases = list(
        Database.objects.select_related("account")
        .filter(account__account_id__in=list(by_account), account__enabled=True)
        .exclude(type=Database.Type.RDS_INSTANCE, cluster__gt="")
        .order_by("account__name", "account__account_id", "name", "type")
    )
    role_rows = IamRole.objects.filter(pk__in=[role.id for role in roles]).only(
        "pk", "inline_policies", "managed_policies"
    )
    documents = accounts_selectors.role_identity_documents(roles=role_rows, aws_managed=True)
    found = []
    for database in databases:
        account_roles = tuple(by_account[database.account.account_id])
        access = [
            granted
            for role in account_roles
            if (granted := _role_access(role, documents.get(role.id, []), database)) is not None
        ]
        found.append(
            ReachableDatabase(database=database, access=tuple(access), account_roles=account_roles)
        )
    return found


class DatabaseUserRefused(Exception):
    """The role's policies do not let it connect as that database user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def database_for_connect(*, user: AnyUser, pk: int) -> Database:
    """The access gate for database passwords: a database in an account where
    `user` may use a role, that takes IAM authentication tokens; 404 otherwise."""
    database = Database.objects.select_related("account").filter(pk=pk).first()
    if database is None:
        raise Http404("No such database.")
    if not database.account.enabled:
        raise Http404("No such database.")
    if not any(r.account_id == database.account.account_id for r in roles_for_user(user)):
        raise Http404("No such database.")
    return database


def database_role_check(*, role: IamRole, database: Database, db_user: str) -> None:
    """Refuse (DatabaseUserRefused) unless `role` is in the database's account and
    its policies allow `rds-db:connect` as `db_user` on it."""
    if role.account.account_id != database.account.account_id:
        raise DatabaseUserRefused(
            f"{role.arn} is in another account than {database.name}: IAM database "
            "authentication needs a role of the database's own account."
        )
    if not database_token_supported(database):
        raise DatabaseUserRefused(
            f"{database.name} does not take IAM authentication tokens from iamportal."
        )
    documents = accounts_selectors.role_identity_documents(roles=[role], aws_managed=True)[role.pk]
    resource = db_user_arn(database=database, partition=_partition(role.arn), db_user=db_user)
    result = evaluate.policy_evaluate(
        documents, action=CONNECT, resource=resource, context=_context(role.arn)
    )
    if not result.allowed or result.partly:
        raise DatabaseUserRefused(
            f"The policies of {role.name} do not allow {CONNECT} as {db_user!r} on {database.name}."
        )


def access_request_path(requested: str) -> str:
    """Where a user refused a role asks for access to it: the access request page
    for the role they named (an ARN, a name or a part of one, as Weep sends it)."""
    return reverse("access_request_new") + "?" + urlencode({"role": requested.strip()[:2048]})


def users_holding_sessions(user_pks: Iterable[int], *, now: datetime | None = None) -> list[str]:
    """Why these users should be disabled before they are deleted: an active
    user who got AWS credentials or a console session within the longest session
    AWS allows may still hold it, and deleting them would end none of it
    (disabling does, and leaves the user to delete afterwards)."""
    since = (now or timezone.now()) - timedelta(hours=12)
    holding = (
        User.objects.filter(pk__in=list(user_pks), is_active=True)
        .filter(
            pk__in=CredentialIssuance.objects.filter(
                outcome=CredentialIssuance.Outcome.ISSUED, requested_at__gte=since
            ).values("user_id")
        )
        .order_by("username")
    )
    return [
        f"{user.get_username()} got AWS credentials in the last 12 hours: disable them first "
        '("Disable and end their AWS sessions"), which ends those sessions, then delete.'
        for user in holding
    ]


def session_revocations_given_up(*, now: datetime | None = None) -> int:
    """Revocations that failed for good while the sessions they were to end may
    still be live (before their `remove_after`): someone has to end those
    sessions in AWS. The status page and the metrics show it."""
    return SessionRevocation.objects.filter(
        status=SessionRevocation.Status.FAILED, remove_after__gt=now or timezone.now()
    ).count()
