"""Trigram indexes for the role and resource search on PostgreSQL.

Search filters with `arn__icontains` (the ARN contains the name), which Django
renders as UPPER(arn::text) LIKE UPPER(...); these GIN indexes serve exactly that
expression. SQLite has no such index type and scans instead.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TABLES = ["accounts_iamrole", "accounts_cloudresource", "accounts_managedpolicy"]


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for table in TABLES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_arn_trgm "
            f"ON {table} USING gin ((UPPER(arn::text)) gin_trgm_ops)"
        )


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {table}_arn_trgm")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
