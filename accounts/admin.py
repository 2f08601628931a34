from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from accounts import services
from accounts.models import (
    AwsAccount,
    CloudResource,
    Database,
    IamGroup,
    IamRole,
    IamUser,
    ManagedPolicy,
    RoleVersion,
    ServiceControlPolicy,
    SyncRun,
)
from iamportal.admin import AdminsManageAdmin, ReadOnlyAdmin, RefusesDeletion, pretty_json
from iamportal.permissions import can_sync_accounts
from requests_app.selectors import approval_policies_emptied_by


@admin.register(AwsAccount)
class AwsAccountAdmin(RefusesDeletion, AdminsManageAdmin):
    list_display = [
        "name",
        "account_id",
        "environment",
        "approvals_required",
        "new_roles_require_boundary",
        "access_max_duration",
        "access_permanent_allowed",
        "enabled",
        "latest_sync_status",
    ]
    list_filter = ["enabled", "environment"]
    search_fields = ["account_id", "name"]
    list_select_related = ["latest_sync"]
    readonly_fields = ["latest_sync_status", "latest_sync_error", "created_at"]
    fields = [
        "account_id",
        "name",
        "aliases",
        "environment",
        "spoke_role_name",
        "external_id",
        "regions",
        "approvals_required",
        "enabled",
        "latest_sync_status",
        "latest_sync_error",
        "created_at",
    ]
    actions = ["sync_now"]

    def deletion_refusals(self, objs: Any) -> list[str]:
        return approval_policies_emptied_by(account_pks=[account.pk for account in objs])

    @admin.display(description="latest sync")
    def latest_sync_status(self, account: AwsAccount) -> str:
        run = account.latest_sync
        if run is None:
            return "never"
        if run.finished_at is None:
            return f"{run.get_status_display()} ({run.progress}%)"
        return f"{run.get_status_display()} {run.finished_at:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="latest sync error")
    def latest_sync_error(self, account: AwsAccount) -> SafeString | str:
        run = account.latest_sync
        if run is None or not run.error:
            return "-"
        return format_html('<pre class="json">{}</pre>', run.error)

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return can_sync_accounts(request.user)

    @admin.action(description="Sync now", permissions=["sync"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[AwsAccount]) -> None:
        count = 0
        for account in queryset:
            services.account_sync_request(account=account, user=request.user)
            count += 1
        noun = "account" if count == 1 else "accounts"
        self.message_user(request, f"Sync requested for {count} {noun}.", messages.SUCCESS)


class InventoryAdmin(ReadOnlyAdmin):
    """Synced rows: searched by ARN and name, filtered by account, linked to their page."""

    list_filter = ["account"]
    search_fields = ["arn", "name"]
    list_select_related = ["account"]
    raw_id_fields = ["account"]

    def page_url(self, item: Any) -> str:
        raise NotImplementedError

    @admin.display(description="web page")
    def web_page(self, item: Any) -> SafeString:
        return format_html('<a href="{}">open page</a>', self.page_url(item))

    @admin.display(description="tags")
    def tags_pretty(self, item: Any) -> SafeString:
        return pretty_json(item.tags)


@admin.register(IamRole)
class IamRoleAdmin(InventoryAdmin):
    list_display = ["name", "account", "path", "last_used_on", "synced_at"]
    fields = readonly_fields = (
        "web_page",
        "arn",
        "name",
        "account",
        "role_id",
        "path",
        "description",
        "tags_pretty",
        "trust_policy_pretty",
        "inline_policies_pretty",
        "managed_policies_pretty",
        "permissions_boundary_arn",
        "max_session_duration",
        "created_in_aws_at",
        "last_used_on",
        "last_used_region",
        "synced_at",
        "refresh_requested_at",
        "content_hash",
    )

    def page_url(self, item: Any) -> str:
        return reverse(
            "role_detail",
            kwargs={"account_id": item.account.account_id, "role_name": item.name},
        )

    @admin.display(description="trust policy")
    def trust_policy_pretty(self, role: IamRole) -> SafeString:
        return pretty_json(role.trust_policy)

    @admin.display(description="inline policies")
    def inline_policies_pretty(self, role: IamRole) -> SafeString:
        return pretty_json(role.inline_policies)

    @admin.display(description="managed policies")
    def managed_policies_pretty(self, role: IamRole) -> SafeString:
        return pretty_json(role.managed_policies)


@admin.register(ManagedPolicy)
class ManagedPolicyAdmin(InventoryAdmin):
    list_display = ["name", "account", "path", "attachment_count", "synced_at"]
    fields = readonly_fields = (
        "web_page",
        "arn",
        "name",
        "account",
        "path",
        "description",
        "default_version_id",
        "attachment_count",
        "tags_pretty",
        "document_pretty",
        "synced_at",
        "content_hash",
    )

    def page_url(self, item: Any) -> str:
        return reverse("policy_detail", kwargs={"pk": item.pk})

    @admin.display(description="document")
    def document_pretty(self, policy: ManagedPolicy) -> SafeString:
        return pretty_json(policy.document)


@admin.register(CloudResource)
class CloudResourceAdmin(InventoryAdmin):
    list_display = ["name", "type", "account", "region", "synced_at"]
    list_filter = ["source", "type", "account"]
    fields = readonly_fields = (
        "web_page",
        "arn",
        "name",
        "type",
        "account",
        "region",
        "source",
        "resource_id",
        "changed_in_aws_at",
        "tags_pretty",
        "policy_pretty",
        "summary_pretty",
        "attributes_pretty",
        "synced_at",
        "read_error",
        "read_error_at",
        "content_hash",
    )

    def page_url(self, item: Any) -> str:
        return reverse("resource_detail", kwargs={"pk": item.pk})

    @admin.display(description="resource policy")
    def policy_pretty(self, resource: CloudResource) -> SafeString:
        return pretty_json(resource.policy)

    @admin.display(description="attributes")
    def attributes_pretty(self, resource: CloudResource) -> SafeString:
        return pretty_json(resource.attributes)

    @admin.display(description="AWS Config summary")
    def summary_pretty(self, resource: CloudResource) -> SafeString:
        return pretty_json(resource.summary)


@admin.register(IamUser)
class IamUserAdmin(InventoryAdmin):
    list_display = ["name", "account", "path", "password_last_used_on", "synced_at"]
    fields = readonly_fields = (
        "web_page",
        "arn",
        "name",
        "account",
        "path",
        "groups",
        "tags_pretty",
        "access_keys_pretty",
        "access_keys_error",
        "created_in_aws_at",
        "password_last_used_on",
        "synced_at",
    )

    def page_url(self, item: Any) -> str:
        return reverse(
            "iam_user_detail",
            kwargs={"account_id": item.account.account_id, "user_name": item.name},
        )

    @admin.display(description="access keys")
    def access_keys_pretty(self, item: IamUser) -> SafeString:
        return pretty_json(item.access_keys)


@admin.register(IamGroup)
class IamGroupAdmin(InventoryAdmin):
    list_display = ["name", "account", "path", "synced_at"]
    fields = readonly_fields = (
        "web_page",
        "arn",
        "name",
        "account",
        "path",
        "members",
        "synced_at",
    )

    def page_url(self, item: Any) -> str:
        return reverse(
            "group_detail",
            kwargs={"account_id": item.account.account_id, "group_name": item.name},
        )


@admin.register(Database)
class DatabaseAdmin(InventoryAdmin):
    list_display = ["name", "type", "account", "region", "engine", "iam_auth", "synced_at"]
    list_filter = ["type", "iam_auth", "account"]
    fields = readonly_fields = (
        "web_page",
        "arn",
        "name",
        "type",
        "account",
        "region",
        "engine",
        "engine_version",
        "endpoint",
        "port",
        "iam_auth",
        "resource_id",
        "status",
        "tags_pretty",
        "synced_at",
    )

    def page_url(self, item: Any) -> str:
        return reverse("database_detail", kwargs={"pk": item.pk})


@admin.register(RoleVersion)
class RoleVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "role_name",
        "account",
        "part",
        "key",
        "source",
        "request_number",
        "recorded_at",
    ]
    list_filter = ["part", "source"]
    list_select_related = ["account"]
    search_fields = ["role_arn", "key"]
    raw_id_fields = ["role"]
    fields = readonly_fields = (
        "role_arn",
        "role",
        "part",
        "key",
        "document_pretty",
        "source",
        "request_number",
        "recorded_at",
    )

    @admin.display(description="document")
    def document_pretty(self, item: RoleVersion) -> SafeString:
        return pretty_json(item.document)


@admin.register(ServiceControlPolicy)
class ServiceControlPolicyAdmin(ReadOnlyAdmin):
    list_display = ["name", "policy_id", "aws_managed", "synced_at"]
    search_fields = ["name", "policy_id"]
    fields = readonly_fields = (
        "name",
        "policy_id",
        "arn",
        "description",
        "aws_managed",
        "document_pretty",
        "targets",
        "synced_at",
    )

    @admin.display(description="document")
    def document_pretty(self, item: ServiceControlPolicy) -> SafeString:
        return pretty_json(item.document)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["account", "status", "trigger", "queued_at", "finished_at", "progress"]
    list_filter = ["status", "trigger", "account"]
    search_fields = ["account__account_id", "account__name"]
    list_select_related = ["account"]
    raw_id_fields = ["account", "requested_by"]
    date_hierarchy = "queued_at"
    fields = readonly_fields = (
        "account",
        "status",
        "trigger",
        "requested_by",
        "queued_at",
        "started_at",
        "finished_at",
        "progress",
        "stage",
        "counts_pretty",
        "error",
        "attempts",
        "enqueued_at",
        "lease_owner",
        "heartbeat_at",
        "lease_expires_at",
    )

    @admin.display(description="counts")
    def counts_pretty(self, run: SyncRun) -> SafeString:
        return pretty_json(run.counts)
