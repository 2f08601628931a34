"""Indexes that every sync kept up for thousands of rows and that no query uses.

- Resource search reads the Policies page entries' trigram index (the entries
  hold every resource's capitalised ARN), so the resources' and managed
  policies' own ARN trigram indexes go.
- Django adds a `varchar_pattern_ops` index beside every unique text column on
  PostgreSQL, for `LIKE 'prefix%'`; nothing looks up an ARN by its prefix (exact
  ARNs use the unique index, search the trigram ones), so those of the synced
  tables' ARNs go.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TRIGRAM_TABLES = ["accounts_cloudresource", "accounts_managedpolicy"]
SYNCED_TABLES = [
    "accounts_iamrole",
    "accounts_managedpolicy",
    "accounts_cloudresource",
    "accounts_iamuser",
    "accounts_iamgroup",
    "accounts_database",
]


def _prefix_indexes(schema_editor: BaseDatabaseSchemaEditor) -> list[tuple[str, str]]:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes "
            "WHERE tablename = ANY(%s) AND indexdef LIKE %s",
            [SYNCED_TABLES, "%(arn varchar_pattern_ops)%"],
        )
        return list(cursor.fetchall())


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TRIGRAM_TABLES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {table}_arn_trgm")
    for _, index in _prefix_indexes(schema_editor):
        schema_editor.execute(f'DROP INDEX IF EXISTS "{index}"')


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TRIGRAM_TABLES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_arn_trgm "
            f"ON {table} USING gin ((UPPER(arn::text)) gin_trgm_ops)"
        )
    for table in SYNCED_TABLES:
        name = schema_editor._create_index_name(table, ["arn"], suffix="_like")  # type: ignore[attr-defined]
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} (arn varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0015_role_versions_outlive_their_role")]
    operations = [migrations.RunPython(drop, create)]
