"""Role search (`selectors.roles_search` and `roles_page`): every way a text can
sit in a role ARN finds the same roles as a plain substring test, however the
role was written, and the tails and heads it looks text up in are kept and
pruned without losing a role."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts import selectors, services
from accounts.models import AwsAccount, IamRole, RoleArnHead, RoleArnTail
from tests.factories import make_role

pytestmark = pytest.mark.django_db


def found(query: str, account_id: str | None = None) -> set[str]:
    return {role.arn for role in selectors.roles_search(query=query, account_id=account_id)}


def expected(query: str, account_id: str | None = None) -> set[str]:
    roles = IamRole.objects.all()
    if account_id:
        roles = roles.filter(account__account_id=account_id)
    return {arn for arn in roles.values_list("arn", flat=True) if query.upper() in arn.upper()}


@pytest.fixture
def inventory(db: None) -> dict[str, AwsAccount]:
    prod = AwsAccount.objects.create(account_id="123456789012", name="prod")
    dev = AwsAccount.objects.create(account_id="210987654321", name="dev")
    for account in (prod, dev):
        make_role(account, "svc-payments-api", path="/service/")
        make_role(account, "ci-deploy")
        make_role(account, "lambda-etl", path="/service-role/")
    make_role(prod, "PaymentsAdminRole")
    make_role(dev, "svc-search-api", path="/team/search/")
    # Rows no sync writes, which search must still get right: an ARN that names
    # another account, and one with no ":role/" in it.
    for arn in ("arn:aws:iam::777777777777:role/service/svc-stray", "arn:aws:iam::123:odd/thing"):
        IamRole.objects.create(
            account=prod, arn=arn, name=arn[-9:], content_hash="x", synced_at=timezone.now()
        )
    return {"prod": prod, "dev": dev}


QUERIES = [
    "svc",  # a partial name in two accounts
    "PAYMENTS",  # any case
    "ci",  # two letters: no trigram to ask for
    "/service-role/lambda",  # the path and the name
    ":role/",  # every role
    "123456789012",  # an account id: every role of that account
    "4567",  # part of an account id
    "9012:role/service/svc",  # from the account into the path
    "012:r",  # from the account into the start every tail has
    "arn:aws:iam::210987654321:role/team/search/svc-search-api",  # a whole ARN
    "arn:aws:iam::",  # the start every head has
    "role/ci-deploy",
    "7777:role/service/",  # into the tail from the head of a stray ARN
    "123:odd/th",
    "%",  # wildcards of LIKE are plain characters
    "_",
    "zebra",  # nothing
]


@pytest.mark.parametrize("query", QUERIES)
def test_it_finds_exactly_the_roles_whose_arn_holds_the_text(
    inventory: dict[str, AwsAccount], query: str
) -> None:
    assert found(query) == expected(query)


@pytest.mark.parametrize("query", ["9012:role/service/svc", "7777:role/service/", "0987654321:ro"])
def test_it_finds_the_same_when_many_tails_start_alike(
    inventory: dict[str, AwsAccount], query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past this many tails with the same start, the account's roles are read instead.
    monkeypatch.setattr(selectors, "_FEW_TAILS", 1)
    assert found(query) == expected(query)


@pytest.mark.parametrize("query", ["svc", "4567", "9012:role/service/", "ci", "zebra", ""])
def test_it_finds_exactly_the_matching_roles_of_one_account(
    inventory: dict[str, AwsAccount], query: str
) -> None:
    assert found(query, "123456789012") == expected(query, "123456789012")


def test_an_empty_search_lists_every_role(inventory: dict[str, AwsAccount]) -> None:
    assert found("") == set(IamRole.objects.values_list("arn", flat=True))


def test_it_keeps_to_the_roles_another_filter_chose(inventory: dict[str, AwsAccount]) -> None:
    chosen = IamRole.objects.filter(name="ci-deploy", account=inventory["dev"])
    roles = selectors.roles_search(query="ci", account_id=None, among=chosen.values("pk"))
    assert [role.arn for role in roles] == ["arn:aws:iam::210987654321:role/ci-deploy"]


@pytest.mark.parametrize("query", ["", "svc", "123456789012", "9012:role/service/"])
def test_another_filter_that_chose_no_role_leaves_none(
    inventory: dict[str, AwsAccount], query: str
) -> None:
    nothing = IamRole.objects.filter(pk__in=[]).values("pk")
    assert list(selectors.roles_search(query=query, account_id=None, among=nothing)) == []
    page = selectors.roles_page(query=query, account_id=None, number=1, size=50, among=nothing)
    assert page.roles == []


def test_a_page_is_in_name_then_account_order(inventory: dict[str, AwsAccount]) -> None:
    page = selectors.roles_page(query="svc", account_id=None, number=1, size=2)
    assert [(r.name, r.account.account_id) for r in page] == [
        ("svc-payments-api", "123456789012"),
        ("svc-payments-api", "210987654321"),
    ]
    assert page.has_next
    rest = selectors.roles_page(query="svc", account_id=None, number=2, size=2)
    assert [r.name for r in rest] == ["svc-search-api", "svc-stray"]
    assert not rest.has_next


def test_a_role_is_found_however_it_was_written(inventory: dict[str, AwsAccount]) -> None:
    prod = inventory["prod"]
    IamRole.objects.bulk_create(
        [
            IamRole(
                account=prod,
                arn="arn:aws:iam::123456789012:role/bulk/bulk-loaded",
                name="bulk-loaded",
                path="/bulk/",
                content_hash="x",
                synced_at=timezone.now(),
            )
        ]
    )
    renamed = make_role(prod, "old-name")
    IamRole.objects.filter(pk=renamed.pk).update(
        arn="arn:aws:iam::123456789012:role/new-name", name="new-name"
    )
    moved = make_role(prod, "moving")
    other = AwsAccount.objects.create(account_id="555566667777", name="other")
    IamRole.objects.filter(pk=moved.pk).update(
        account=other, arn="arn:aws:iam::555566667777:role/moving"
    )

    assert found("bulk-load") == {"arn:aws:iam::123456789012:role/bulk/bulk-loaded"}
    assert found("new-na") == {"arn:aws:iam::123456789012:role/new-name"}
    assert found("old-name") == set()
    assert found("55556666") == {"arn:aws:iam::555566667777:role/moving"}
    assert found("moving", "555566667777") == {"arn:aws:iam::555566667777:role/moving"}


def test_a_tail_added_twice_at_once_does_not_crowd_out_other_roles(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "SEARCH_MATCH_LIMIT", 3)
    accounts = [
        AwsAccount.objects.create(account_id=f"10000000000{n}", name=f"a{n}") for n in range(3)
    ]
    for account in accounts:
        make_role(account, "svc-a")
    RoleArnTail.objects.create(search_key=":ROLE/SVC-A")  # as two syncs at once may
    make_role(accounts[0], "svc-b")

    # Four roles match: one more than the limit, so the page says there are more.
    assert len(found("svc-")) == 4
    page = selectors.roles_page(query="svc-", account_id=None, number=1, size=50)
    assert page.capped


def test_a_tail_added_twice_does_not_crowd_out_roles_found_from_an_account_on(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "SEARCH_MATCH_LIMIT", 2)
    account = AwsAccount.objects.create(account_id="100000000000", name="a0")
    make_role(account, "svc-a")
    RoleArnTail.objects.create(search_key=":ROLE/SVC-A")  # as two syncs at once may
    make_role(account, "svc-b")
    make_role(account, "svc-c")

    # Three roles match: one more than the limit.
    assert len(found("0000:role/svc-")) == 3
    assert selectors.roles_page(query="0000:role/svc-", account_id=None, number=1, size=50).capped


def test_an_update_that_keeps_the_arn_leaves_the_search_tables_alone(
    inventory: dict[str, AwsAccount],
) -> None:
    role = IamRole.objects.get(name="ci-deploy", account=inventory["prod"])
    RoleArnTail.objects.filter(search_key=":ROLE/CI-DEPLOY").delete()

    IamRole.objects.filter(pk=role.pk).update(description="changed")
    assert not RoleArnTail.objects.filter(search_key=":ROLE/CI-DEPLOY").exists()

    IamRole.objects.filter(pk=role.pk).update(arn=f"{role.arn}-renamed", name="ci-deploy-renamed")
    assert RoleArnTail.objects.filter(search_key=":ROLE/CI-DEPLOY-RENAMED").exists()
    assert found("deploy-ren") == {f"{role.arn}-renamed"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's isolation levels")
def test_names_are_added_at_a_stricter_isolation_level_too() -> None:
    account = AwsAccount.objects.create(account_id="123456789012", name="prod")
    make_role(account, "existing")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        make_role(account, "existing-too")  # its head is there: locked, not added
        make_role(account, "strict-one")
    assert found("strict-o") == {"arn:aws:iam::123456789012:role/strict-one"}
    assert RoleArnTail.objects.filter(search_key=":ROLE/STRICT-ONE").count() == 1


def test_a_prune_forgets_what_no_role_has_and_keeps_what_one_still_has(
    inventory: dict[str, AwsAccount],
) -> None:
    prod = inventory["prod"]
    IamRole.objects.filter(account=prod, name="ci-deploy").delete()  # dev still has one
    IamRole.objects.filter(name="PaymentsAdminRole").delete()  # the only one
    gone = AwsAccount.objects.create(account_id="999999999999", name="gone")
    make_role(gone, "only-here").delete()
    RoleArnTail.objects.create(search_key=":ROLE/CI-DEPLOY")  # as two syncs at once may

    tails, heads = services.role_search_names_prune()

    assert (tails, heads) == (3, 1)
    keys = list(RoleArnTail.objects.values_list("search_key", flat=True))
    assert keys.count(":ROLE/CI-DEPLOY") == 1
    assert ":ROLE/PAYMENTSADMINROLE" not in keys and ":ROLE/ONLY-HERE" not in keys
    assert not RoleArnHead.objects.filter(account=gone).exists()
    assert RoleArnHead.objects.filter(account=prod).exists()
    assert found("ci-deploy") == {"arn:aws:iam::210987654321:role/ci-deploy"}
    assert services.role_search_names_prune() == (0, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers")
def test_a_prune_waits_for_a_sync_still_writing_a_role_whose_tail_it_would_forget() -> None:
    prod = AwsAccount.objects.create(account_id="123456789012", name="prod")
    dev = AwsAccount.objects.create(account_id="210987654321", name="dev")
    make_role(prod, "shared-name").delete()  # its tail is left with no role
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def sync_writing() -> None:
        try:
            with transaction.atomic():
                make_role(dev, "shared-name")  # the tail is there: nothing added
                written.set()
                release.wait(30)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def prune() -> None:
        try:
            services.role_search_names_prune()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    writer = threading.Thread(target=sync_writing)
    writer.start()
    assert written.wait(30)
    pruner = threading.Thread(target=prune)
    pruner.start()
    with connection.cursor() as cursor:  # the prune is waiting for the lock
        for _ in range(300):
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted "
                "AND relation = 'accounts_rolearntail'::regclass "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the prune did not wait for the sync")
    release.set()
    writer.join(30)
    pruner.join(30)

    assert errors == []
    assert found("shared-name") == {"arn:aws:iam::210987654321:role/shared-name"}
