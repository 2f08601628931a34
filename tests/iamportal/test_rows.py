"""The statements written once for the credential path and the sync's inserts read
and write exactly what the ORM would: the same values, of the same types, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AwsAccount, CloudResource, IamRole
from brokering import selectors
from brokering.models import CredentialIssuance
from iamportal import rows
from iamportal.permissions import active_user_with_groups, user_groups
from tests.factories import make_user, role_in

pytestmark = pytest.mark.django_db


def _fields(obj: object, model: type[Model]) -> dict[str, object]:
    return {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields}


def test_a_user_reads_as_the_orm_reads_it_with_its_groups() -> None:
    user = make_user("dana", "payments", "oncall", first_name="Dana", is_staff=True)
    User.objects.filter(pk=user.pk).update(last_login=datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    expected = User.objects.get(pk=user.pk)

    loaded = active_user_with_groups(user.pk)

    assert loaded is not None
    assert _fields(loaded, User) == _fields(expected, User)
    assert loaded.last_login == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert loaded.last_login is not None and loaded.last_login.tzinfo is not None
    assert type(loaded.is_staff) is bool
    assert {name for _, name in user_groups(loaded)} == {"payments", "oncall"}


def test_a_user_without_groups_has_none_and_a_disabled_or_missing_user_is_none() -> None:
    alone = make_user("alone")
    gone = make_user("gone", "payments")
    User.objects.filter(pk=gone.pk).update(is_active=False)

    loaded = active_user_with_groups(alone.pk)
    assert loaded is not None and user_groups(loaded) == frozenset()
    assert active_user_with_groups(gone.pk) is None
    assert active_user_with_groups(gone.pk + 1000) is None


def _role(account: AwsAccount, name: str) -> IamRole:
    role = role_in(account, name, in_aws=False)
    role.max_session_duration = 7200
    role.trust_policy = {"Version": "2012-10-17", "Statement": []}
    role.save(update_fields=["max_session_duration", "trust_policy"])
    return role


def test_a_role_by_its_arn_comes_with_its_account_and_loads_the_rest_on_use() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    role = _role(account, "deploy")

    found = selectors._role_by_arn(role.arn)

    assert found is not None
    assert (found.pk, found.arn, found.name, found.max_session_duration) == (
        role.pk,
        role.arn,
        "deploy",
        7200,
    )
    assert (found.account.pk, found.account.account_id, found.account.name) == (
        account.pk,
        "111122223333",
        "payments-prod",
    )
    # What was not read is loaded when used, as with .only().
    assert found.trust_policy == {"Version": "2012-10-17", "Statement": []}
    assert selectors._role_by_arn(role.arn.upper()) is None
    assert selectors._role_by_arn(role.arn + "x") is None


def test_a_role_in_a_disabled_account_is_not_found() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="old", enabled=False)
    role = _role(account, "deploy")

    assert selectors._role_by_arn(role.arn) is None


def test_an_inserted_row_reads_back_as_saved_through_the_orm() -> None:
    user = make_user("dana")
    expires = timezone.now() + timedelta(hours=1)
    values = {
        "user": user,
        "user_email": "dana@example.com",
        "role_arn": "arn:aws:iam::111122223333:role/deploy",
        "account_id": "111122223333",
        "kind": CredentialIssuance.Kind.CLI,
        "outcome": CredentialIssuance.Outcome.ISSUED,
        "source_ip": "2001:db8::7",
        "expiration": expires,
        "ip_restricted": True,
        "request_id": "abc",
    }
    written = CredentialIssuance(**values)
    rows.insert(written)
    through_orm = CredentialIssuance.objects.create(**values)

    assert written.pk is not None and written.pk != through_orm.pk
    first = CredentialIssuance.objects.get(pk=written.pk)
    second = CredentialIssuance.objects.get(pk=through_orm.pk)
    ignored = {"id", "requested_at"}
    assert {k: v for k, v in _fields(first, CredentialIssuance).items() if k not in ignored} == {
        k: v for k, v in _fields(second, CredentialIssuance).items() if k not in ignored
    }
    assert first.expiration == expires
    assert abs(first.requested_at - timezone.now()) < timedelta(minutes=1)
    assert not written._state.adding


def _resources(account: AwsAccount, prefix: str, now: datetime) -> list[CloudResource]:
    return [
        CloudResource(
            account_id=account.pk,
            arn=f"arn:aws:sqs:us-east-1:111122223333:{prefix}-{index}",
            name=f"{prefix}-{index}",
            tags={"team": "payments", "n": index},
            content_hash="h",
            synced_at=now,
            type="sqs",
            region="us-east-1",
            policy={"Statement": [{"Effect": "Allow"}]} if index else None,
            source="config",
            summary={"sizeGiB": index, "encrypted": True},
            changed_in_aws_at=now - timedelta(days=index) if index else None,
        )
        for index in range(3)
    ]


def test_rows_inserted_together_read_back_as_bulk_created_ones() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    now = timezone.now()
    written = _resources(account, "inserted", now)
    rows.insert_all(CloudResource, written)
    CloudResource.objects.bulk_create(_resources(account, "bulk", now))
    rows.insert_all(CloudResource, [])

    inserted = CloudResource.objects.filter(name__startswith="inserted").order_by("name")
    bulk = CloudResource.objects.filter(name__startswith="bulk").order_by("name")
    ignored = {"id", "arn", "name"}
    assert [
        {k: v for k, v in _fields(row, CloudResource).items() if k not in ignored}
        for row in inserted
    ] == [
        {k: v for k, v in _fields(row, CloudResource).items() if k not in ignored} for row in bulk
    ]
    assert len(inserted) == 3
    assert inserted[0].policy is None and inserted[1].policy == {"Statement": [{"Effect": "Allow"}]}
    assert inserted[2].synced_at == now and inserted[2].read_error_at is None
    # Unlike bulk_create, the keys are not set on the objects.
    assert all(obj.pk is None for obj in written)


def test_rows_inserted_together_keep_text_that_a_bulk_load_must_escape() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    awkward = "tab\there, line\nbreak, back\\slash, \\N, quote' \" and caf\u00e9 \U0001f680"
    written = _resources(account, "awkward", timezone.now())
    written[1].tags = {"note": awkward, "empty": ""}
    written[1].summary = {"description": awkward}
    written[2].region = ""
    rows.insert_all(CloudResource, written)

    found = CloudResource.objects.get(name="awkward-1")
    assert found.tags == {"note": awkward, "empty": ""}
    assert found.summary == {"description": awkward}
    assert CloudResource.objects.get(name="awkward-2").region == ""


def test_rows_inserted_together_are_all_refused_when_one_is_a_duplicate() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    now = timezone.now()
    rows.insert_all(CloudResource, _resources(account, "first", now)[:1])
    again = [*_resources(account, "second", now), *_resources(account, "first", now)[:1]]

    with pytest.raises(IntegrityError), transaction.atomic():
        rows.insert_all(CloudResource, again)

    assert list(CloudResource.objects.values_list("name", flat=True)) == ["first-0"]


def test_rows_inserted_together_get_their_generated_columns() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    role = IamRole(
        account_id=account.pk,
        arn="arn:aws:iam::111122223333:role/Deploy",
        name="Deploy",
        content_hash="x",
        synced_at=timezone.now(),
    )
    rows.insert_all(IamRole, [role])

    assert IamRole.objects.get(name="Deploy").search_key == role.arn.upper()


def _as_values(resource: CloudResource) -> dict[str, object]:
    """The resource as a mapping of field names, leaving out `attributes` (which
    has a default)."""
    values = {
        field.name: getattr(resource, field.attname)
        for field in CloudResource._meta.concrete_fields
        if not field.primary_key and field.name != "attributes"
    }
    values["account"] = resource.account_id  # a foreign key by its name, given its key
    return values


def test_rows_given_as_values_read_back_as_bulk_created_instances() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    now = timezone.now()
    objects = _resources(account, "values", now)
    mappings = [_as_values(obj) for obj in objects]
    mappings[0] = {**mappings[0], "account": account, "tags": {"team": "payments"}}
    mappings[2]["name"] = 7  # not text: prepared by the field, as the ORM would
    rows.insert_all(CloudResource, mappings)
    CloudResource.objects.bulk_create(_resources(account, "bulk", now))

    inserted = list(CloudResource.objects.filter(arn__contains="values").order_by("arn"))
    bulk = list(CloudResource.objects.filter(name__startswith="bulk").order_by("name"))
    ignored = {"id", "arn", "name", "tags"}
    assert [
        {k: v for k, v in _fields(row, CloudResource).items() if k not in ignored}
        for row in inserted
    ] == [
        {k: v for k, v in _fields(row, CloudResource).items() if k not in ignored} for row in bulk
    ]
    assert [row.tags for row in inserted] == [
        {"team": "payments"},
        {"team": "payments", "n": 1},
        {"team": "payments", "n": 2},
    ]
    assert [row.name for row in inserted] == ["values-0", "values-1", "7"]
    # Left out: the field's default.
    assert [row.attributes for row in inserted] == [{}, {}, {}]


def test_values_naming_no_field_are_refused_before_anything_is_written() -> None:
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    mappings = [_as_values(obj) for obj in _resources(account, "typo", timezone.now())]
    mappings[2]["regoin"] = "eu-west-1"

    with pytest.raises(TypeError, match="CloudResource has no field regoin"):
        rows.insert_all(CloudResource, mappings)

    assert not CloudResource.objects.exists()


def _prepared_on_server(text: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", [f"%{text}%"]
        )
        return int(cursor.fetchone()[0])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL")
def test_the_credential_paths_statements_are_prepared_once_per_connection() -> None:
    user = make_user("dana", "payments")
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    role = _role(account, "deploy")
    with CaptureQueriesContext(connection) as seen:
        for _ in range(3):
            assert selectors._role_by_arn(role.arn) is not None
            assert active_user_with_groups(user.pk) is not None

    # Still seen by Django's query log, once per run.
    assert len(seen) == 6
    assert _prepared_on_server('WHERE r."arn" = $1') == 1
    assert _prepared_on_server('WHERE u."id" = $1') == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_prepared_statements_can_be_turned_off_for_a_pooler(settings: Any) -> None:
    settings.DATABASE_PREPARED_STATEMENTS = False
    connection.close()  # a new connection: nothing prepared on it yet
    account = AwsAccount.objects.create(account_id="111122223333", name="payments-prod")
    role = _role(account, "deploy")

    assert selectors._role_by_arn(role.arn) is not None

    assert _prepared_on_server('WHERE r."arn" =') == 0
