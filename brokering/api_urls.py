from django.urls import path

from brokering import apis

urlpatterns = [
    path("api/v1/roles", apis.RoleListApi.as_view(), name="api_roles"),
    path("api/v1/credentials", apis.CredentialIssueApi.as_view(), name="api_credentials"),
    path("api/v1/databases", apis.DatabaseListApi.as_view(), name="api_databases"),
    path(
        "api/v1/databases/<int:pk>/token",
        apis.DatabaseTokenApi.as_view(),
        name="api_database_token",
    ),
    path("api/v1/console-url", apis.ConsoleUrlApi.as_view(), name="api_console_url"),
]
