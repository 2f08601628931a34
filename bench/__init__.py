"""What both benchmarks share: a Django set-up that can never reach real AWS, and a
throwaway test database, created and dropped like the test runner does, so a
benchmark never reads or writes the data of the database DATABASE_URL names.

The scripts run as `python bench/<name>.py`; they put the project root on
sys.path themselves before importing this package.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


def django_setup() -> None:
    """Configure Django with fake AWS credentials and no AWS endpoint override.

    Called before anything imports Django models. moto's in-process mock answers
    every boto3 call as long as nothing points boto3 elsewhere.
    """
    os.environ["DJANGO_SETTINGS_MODULE"] = "iamportal.settings"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_SESSION_TOKEN": "bench",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_DEFAULT_REGION": REGION,
            # Fixed so that every run measures the same work: one region to list.
            "AWS_REGION": REGION,
            "IAMPORTAL_REGIONS": REGION,
        }
    )
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)

    import django

    django.setup()


def percentile(values: list[float], percent: float) -> float:
    """Nearest rank: the smallest value with at least `percent` of the values at or below it."""
    ordered = sorted(values)
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def load_average() -> str:
    """Other work on the machine shows up in the times; this says how much there was."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def engine() -> str:
    from django.db import connection

    return f"{connection.vendor} ({connection.settings_dict['ENGINE']})"


def is_postgresql() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A freshly migrated test database for the duration of the block; yields its name.

    Dropped at the end, also when the block raises. The name carries the process
    id: a test suite running at the same time against the same server uses
    `test_<name>` and must not have its database destroyed under it.
    """
    from django.db import connection
    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    if connection.vendor != "sqlite":
        test_settings = connection.settings_dict.setdefault("TEST", {})
        test_settings["NAME"] = f"test_iamportal_bench_{os.getpid()}"
    # As the test runner: DEBUG off, so Django does not keep a log of every query.
    setup_test_environment(debug=False)
    started = time.perf_counter()
    old_config = setup_databases(
        verbosity=0,
        interactive=False,
        aliases={"default": False},
        # Nothing will be rolled back to the migrated state: no need to serialise it.
        serialized_aliases=set(),
    )
    try:
        print(
            f"Throwaway database {connection.settings_dict['NAME']} created and migrated "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        yield str(connection.settings_dict["NAME"])
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()
        print("Throwaway database dropped", flush=True)
