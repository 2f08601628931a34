"""On PostgreSQL, search roles through a trigram index on the stored capitalised
ARN (see IamRole.search_key) instead of on the UPPER(arn) expression."""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS accounts_iamrole_search_key_trgm "
        "ON accounts_iamrole USING gin (search_key gin_trgm_ops)"
    )
    schema_editor.execute("DROP INDEX IF EXISTS accounts_iamrole_arn_trgm")


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS accounts_iamrole_arn_trgm "
        "ON accounts_iamrole USING gin ((UPPER(arn::text)) gin_trgm_ops)"
    )
    schema_editor.execute("DROP INDEX IF EXISTS accounts_iamrole_search_key_trgm")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_role_search_key")]
    operations = [migrations.RunPython(create, drop)]
