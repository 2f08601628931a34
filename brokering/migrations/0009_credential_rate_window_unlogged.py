"""The credential rate windows as an unlogged table on PostgreSQL.

Every credential request updates its user's window. Writes to an unlogged table
go to no write-ahead log, so a transaction that only touches it commits without
waiting for the log to reach disk: one wait fewer per credential request (the
audit row, written after, still waits for its own). What is given up is harmless
here: after a crash, and on a promoted standby, the table starts empty, which
gives everyone a fresh minute's allowance. SQLite has no such table.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

TABLE = "brokering_credentialratewindow"


def unlogged(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} SET UNLOGGED")


def logged(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} SET LOGGED")


class Migration(migrations.Migration):
    dependencies = [("brokering", "0008_access_grants")]
    operations = [migrations.RunPython(unlogged, logged)]
