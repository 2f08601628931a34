"""Role search by the parts of a role ARN that roles share.

A role ARN is its account's start (`ARN:AWS:IAM::<id>`, the head) and what
follows (`:ROLE/PATH/NAME`, the tail). Across a hundred accounts the same few
thousand tails repeat, so search asks for text among the distinct tails and
heads (two small tables) and then reads the roles through a B-tree index,
instead of a trigram index over every role, whose posting lists of common
trigrams were the slow part at a million roles.

Database triggers keep the two tables: every insert into or update of the roles
table adds the heads and tails it does not have yet, whoever writes the role.
They are created after every change to the roles table in this migration:
SQLite rebuilds a table to alter it, which drops its triggers, so a later
migration that alters `accounts_iamrole` must create them again (the search
tests fail if it does not), and one that rebuilds `accounts_rolearntail` or
`accounts_rolearnhead` must drop them first and create them again after (they
name those tables). The roles' own trigram index goes.
"""

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

# The head of a role row: its capitalised ARN less the tail ("" when the ARN has
# no ":ROLE/", whose tail is then the whole ARN).
HEAD = "substr({row}.search_key, 1, length({row}.search_key) - length({row}.search_tail))"

ADD_NAMES = """
INSERT INTO accounts_rolearntail (search_key)
SELECT DISTINCT n.search_tail FROM {source} n
WHERE NOT EXISTS (SELECT 1 FROM accounts_rolearntail t WHERE t.search_key = n.search_tail);
INSERT INTO accounts_rolearnhead (account_id, search_key)
SELECT DISTINCT n.account_id, {head} FROM {source} n
WHERE NOT EXISTS (
    SELECT 1 FROM accounts_rolearnhead h
    WHERE h.account_id = n.account_id AND h.search_key = {head}
);
"""

# Under READ COMMITTED, Django's default and what iamportal's claims rely on, the
# check above sees a tail removed by a prune that held the tables while this
# statement waited. At a stricter level the statement keeps an older snapshot, so
# the rows it counts on are locked instead: one a prune has removed since makes
# the write fail with a serialization error (and the sync try again) rather than
# leave a role out of search.
STRICTER_LEVEL_LOCKS = """
IF current_setting('transaction_isolation') <> 'read committed' THEN
    PERFORM 1 FROM accounts_rolearntail t
    WHERE t.search_key IN (SELECT n.search_tail FROM new_roles n) FOR KEY SHARE;
    PERFORM 1 FROM accounts_rolearnhead h
    WHERE (h.account_id, h.search_key) IN (SELECT n.account_id, {head} FROM new_roles n)
    FOR KEY SHARE;
END IF;
""".format(head=HEAD.format(row="n"))  # noqa: S608
ADD_NEW_NAMES = STRICTER_LEVEL_LOCKS + ADD_NAMES.format(
    source="new_roles", head=HEAD.format(row="n")
)

POSTGRESQL_CREATE = [
    f"""CREATE FUNCTION accounts_iamrole_search_names_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
    {ADD_NEW_NAMES}
    RETURN NULL;
    END $$""",
    # An update adds names only when it changed a role's ARN or account: most
    # (a sync's changed policies, a refresh request) do neither, and then do not
    # touch the two tables, so they never wait for a prune.
    f"""CREATE FUNCTION accounts_iamrole_search_names_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
    IF EXISTS (
        SELECT 1 FROM new_roles n JOIN old_roles o ON o.id = n.id
        WHERE n.arn IS DISTINCT FROM o.arn OR n.account_id IS DISTINCT FROM o.account_id
    ) THEN
    {ADD_NEW_NAMES}
    END IF;
    RETURN NULL;
    END $$""",  # noqa: S608
    # Once per statement, over the rows it wrote: a sync inserts thousands at once.
    "CREATE TRIGGER accounts_iamrole_search_names_insert AFTER INSERT ON accounts_iamrole "
    "REFERENCING NEW TABLE AS new_roles FOR EACH STATEMENT "
    "EXECUTE FUNCTION accounts_iamrole_search_names_insert()",
    "CREATE TRIGGER accounts_iamrole_search_names_update AFTER UPDATE ON accounts_iamrole "
    "REFERENCING OLD TABLE AS old_roles NEW TABLE AS new_roles FOR EACH STATEMENT "
    "EXECUTE FUNCTION accounts_iamrole_search_names_update()",
    "DROP INDEX IF EXISTS accounts_iamrole_search_key_trgm",
]
# After the roles already here have been added: building an index in one go is
# faster than keeping it up row by row.
POSTGRESQL_INDEX = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS accounts_rolearntail_search_key_trgm "
    "ON accounts_rolearntail USING gin (search_key gin_trgm_ops)",
]
POSTGRESQL_DROP = [
    "DROP INDEX IF EXISTS accounts_rolearntail_search_key_trgm",
    "DROP TRIGGER IF EXISTS accounts_iamrole_search_names_insert ON accounts_iamrole",
    "DROP TRIGGER IF EXISTS accounts_iamrole_search_names_update ON accounts_iamrole",
    "DROP FUNCTION IF EXISTS accounts_iamrole_search_names_insert()",
    "DROP FUNCTION IF EXISTS accounts_iamrole_search_names_update()",
    "CREATE INDEX IF NOT EXISTS accounts_iamrole_search_key_trgm "
    "ON accounts_iamrole USING gin (search_key gin_trgm_ops)",
]

# SQLite has no statement triggers: one per row, with the same check.
SQLITE_ROW = """
INSERT INTO accounts_rolearntail (search_key)
SELECT NEW.search_tail
WHERE NOT EXISTS (SELECT 1 FROM accounts_rolearntail t WHERE t.search_key = NEW.search_tail);
INSERT INTO accounts_rolearnhead (account_id, search_key)
SELECT NEW.account_id, {head}
WHERE NOT EXISTS (
    SELECT 1 FROM accounts_rolearnhead h
    WHERE h.account_id = NEW.account_id AND h.search_key = {head}
);
""".format(head=HEAD.format(row="NEW"))  # noqa: S608
SQLITE_CREATE = [
    "CREATE TRIGGER accounts_iamrole_search_names_insert AFTER INSERT "
    f"ON accounts_iamrole FOR EACH ROW BEGIN {SQLITE_ROW} END",
    "CREATE TRIGGER accounts_iamrole_search_names_update AFTER UPDATE OF arn, account_id "
    f"ON accounts_iamrole FOR EACH ROW BEGIN {SQLITE_ROW} END",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS accounts_iamrole_search_names_insert",
    "DROP TRIGGER IF EXISTS accounts_iamrole_search_names_update",
]


def names_keep(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL_CREATE if postgresql else SQLITE_CREATE:
        schema_editor.execute(statement)
    # The roles already here.
    for statement in ADD_NAMES.format(source="accounts_iamrole", head=HEAD.format(row="n")).split(
        ";"
    ):
        if statement.strip():
            schema_editor.execute(statement)
    for statement in POSTGRESQL_INDEX if postgresql else []:
        schema_editor.execute(statement)


def names_drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    for statement in POSTGRESQL_DROP if postgresql else SQLITE_DROP:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0017_account_indexes_covered"),
    ]

    operations = [
        migrations.CreateModel(
            name="RoleArnHead",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("search_key", models.CharField(max_length=2048)),
            ],
        ),
        migrations.CreateModel(
            name="RoleArnTail",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("search_key", models.CharField(max_length=2048)),
            ],
        ),
        migrations.RemoveIndex(
            model_name="iamrole",
            name="accounts_ia_account_05c9f8_idx",
        ),
        migrations.AddField(
            model_name="iamrole",
            name="search_tail",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Substr(
                    django.db.models.functions.text.Upper("arn"),
                    django.db.models.functions.text.StrIndex(
                        django.db.models.functions.text.Upper("arn"), models.Value(":ROLE/")
                    ),
                ),
                output_field=models.CharField(max_length=2048),
            ),
        ),
        migrations.AddIndex(
            model_name="iamrole",
            index=models.Index(
                fields=["account", "name"],
                include=("search_key", "id"),
                name="iamrole_account_name",
            ),
        ),
        migrations.AddIndex(
            model_name="iamrole",
            index=models.Index(
                fields=["search_tail", "account"], include=("name", "id"), name="iamrole_tail"
            ),
        ),
        migrations.AddField(
            model_name="rolearnhead",
            name="account",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                to="accounts.awsaccount",
            ),
        ),
        migrations.AddIndex(
            model_name="rolearntail",
            index=models.Index(
                fields=["search_key"], name="rolearntail_key", opclasses=["varchar_pattern_ops"]
            ),
        ),
        migrations.AddIndex(
            model_name="rolearnhead",
            index=models.Index(fields=["account", "search_key"], name="rolearnhead_key"),
        ),
        migrations.RunPython(names_keep, names_drop, elidable=False),
    ]
