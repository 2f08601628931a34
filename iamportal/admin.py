from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from iamportal.models import JobStatus


def pretty_json(value: Any) -> SafeString:
    return format_html('<pre class="json">{}</pre>', json.dumps(value, indent=2, default=str))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by background jobs: viewable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(JobStatus)
class JobStatusAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_started_at", "last_success_at", "last_failure_at"]
    search_fields = ["name"]
    fields = ["name", "last_started_at", "last_success_at", "last_failure_at", "last_error"]
