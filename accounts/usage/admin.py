from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.usage.models import (
    AdvisorRun,
    RemovalNotice,
    RightsizingPolicy,
    RightsizingPolicyChange,
    ServiceUsage,
)
from accounts.usage.rightsizing import rightsizing_policy_delete, rightsizing_policy_save
from iamportal.admin import AdminsManageAdmin, ReadOnlyAdmin, pretty_json


@admin.register(RightsizingPolicy)
class RightsizingPolicyAdmin(AdminsManageAdmin):
    """Edited here; every change is recorded (right-sizing policy changes)."""

    list_display = (
        "__str__",
        "mode",
        "window_days",
        "notice_days",
        "grant_grace_days",
        "exempt_tag",
    )
    list_select_related = ("account",)
    raw_id_fields = ("account",)

    def save_model(
        self, request: HttpRequest, obj: RightsizingPolicy, form: Any, change: bool
    ) -> None:
        rightsizing_policy_save(policy=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: RightsizingPolicy) -> None:
        rightsizing_policy_delete(policy=obj, actor=request.user)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RightsizingPolicy]) -> None:
        for policy in queryset:
            rightsizing_policy_delete(policy=policy, actor=request.user)  # type: ignore[arg-type]


@admin.register(RightsizingPolicyChange)
class RightsizingPolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "label", "action", "actor")
    list_select_related = ("actor",)
    readonly_fields = ("created_at", "label", "action", "actor", "before_json", "after_json")
    exclude = ("before", "after", "policy")

    @admin.display(description="before")
    def before_json(self, obj: RightsizingPolicyChange) -> Any:
        return pretty_json(obj.before)

    @admin.display(description="after")
    def after_json(self, obj: RightsizingPolicyChange) -> Any:
        return pretty_json(obj.after)


@admin.register(AdvisorRun)
class AdvisorRunAdmin(ReadOnlyAdmin):
    list_display = ("account", "status", "queued_at", "finished_at", "attempts")
    list_filter = ("status",)
    list_select_related = ("account",)


@admin.register(ServiceUsage)
class ServiceUsageAdmin(ReadOnlyAdmin):
    list_display = ("role", "namespace", "last_accessed_at", "last_region")
    list_select_related = ("role",)
    search_fields = ("role__name", "namespace")


@admin.register(RemovalNotice)
class RemovalNoticeAdmin(ReadOnlyAdmin):
    list_display = ("role", "status", "created_at", "remove_after", "request_number")
    list_filter = ("status",)
    list_select_related = ("role",)
