"""A role's versions outlive the role: each keeps its account, ARN and name, and
its link to the role is emptied, not deleted with it."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps
from django.db.models import OuterRef, Subquery


def whose_versions(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    IamRole = apps.get_model("accounts", "IamRole")
    RoleVersion = apps.get_model("accounts", "RoleVersion")
    role = IamRole.objects.filter(pk=OuterRef("role_id"))
    RoleVersion.objects.update(
        account_id=Subquery(role.values("account_id")[:1]),
        role_arn=Subquery(role.values("arn")[:1]),
        role_name=Subquery(role.values("name")[:1]),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0014_inventory_entries"),
    ]

    operations = [
        migrations.AddField(
            model_name="roleversion",
            name="account",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="role_versions",
                to="accounts.awsaccount",
            ),
        ),
        migrations.AddField(
            model_name="roleversion",
            name="role_arn",
            field=models.CharField(default="", max_length=2048),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="roleversion",
            name="role_name",
            field=models.CharField(default="", max_length=128),
            preserve_default=False,
        ),
        migrations.RunPython(whose_versions, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="roleversion",
            name="account",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="role_versions",
                to="accounts.awsaccount",
            ),
        ),
        migrations.AlterField(
            model_name="roleversion",
            name="role",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="versions",
                to="accounts.iamrole",
            ),
        ),
        migrations.AddIndex(
            model_name="roleversion",
            index=models.Index(
                fields=["account", "role_name", "-id"], name="accounts_ro_account_7f0a1c_idx"
            ),
        ),
    ]
