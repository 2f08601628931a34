"""The shared cast and the embedded AWS every test runs against.

No test may reach a real network: fake AWS credentials, no AWS config files,
and moto intercepting every boto3 call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from moto import mock_aws

from iamportal import aws
from iamportal.auth import user_groups_sync

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True, scope="session")
def fast_password_hasher() -> Iterator[None]:
    """Test passwords need no protection against guessing: hashing each with the
    production work factor would dominate the suite's run time."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(autouse=True)
def embedded_aws(settings: Any) -> Iterator[None]:
    """Every test gets an empty moto AWS and no cached sessions."""
    settings.AWS_ENDPOINT_URL = None
    settings.AWS_REGION = "us-east-1"
    settings.IAMPORTAL_REGIONS = ["us-east-1"]
    aws.forget_sessions()
    with mock_aws():
        yield
    aws.forget_sessions()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def fresh_access_index() -> Iterator[None]:
    """The access index lives in process memory; each test has its own database."""
    from brokering.eligibility import forget_index

    forget_index()
    yield
    forget_index()


@pytest.fixture(autouse=True)
def run_tasks_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enqueued tasks run in-process at commit, as a worker would run them."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


def make_user(username: str, *groups: str, **extra: object) -> User:
    """A user whose groups went through the same sync as a real sign-in."""
    user = User.objects.create_user(
        username=username, email=f"{username}@example.com", password=PASSWORD, **extra
    )
    user_groups_sync(user=user, group_names=groups)
    return user


@pytest.fixture
def requester(db: None) -> User:
    return make_user("alice", "team-payments")


@pytest.fixture
def reviewer(db: None) -> User:
    return make_user("rita", "security-reviewers")


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("admin", "iamportal-admins")


@pytest.fixture
def superuser(db: None) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def outsider(db: None) -> User:
    return make_user("oscar", "contractors")


@pytest.fixture
def anonymous() -> Client:
    return Client()


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
