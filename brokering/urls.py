from django.urls import path

from brokering import federation_demo, views

urlpatterns = [
    path("", views.my_roles, name="my_roles"),
    path("my-roles/<int:role_id>/cli/", views.my_role_cli, name="my_role_cli"),
    path(
        "my-roles/<int:role_id>/credentials/",
        views.my_role_credentials,
        name="my_role_credentials",
    ),
    path("my-roles/<int:role_id>/console/", views.role_console, name="role_console"),
    path("my-roles/cli-sign-ins/<int:pk>/", views.my_cli_sign_in, name="my_cli_sign_in"),
    path("me/activity/", views.my_activity, name="my_activity"),
    path("weep/", views.weep_setup, name="weep_setup"),
    # What `weep console <role>` opens: a role name, an ARN or a part of one.
    path("role/<path:requested>", views.role_console_login, name="role_console_login"),
    path(
        "accounts/<str:account_id>/roles/<str:role_name>/revoke-sessions/",
        views.role_sessions_revoke,
        name="role_sessions_revoke",
    ),
    path("databases/", views.database_list, name="database_list"),
    path("databases/<int:pk>/password/", views.database_password, name="database_password"),
    path("demo-federation/", federation_demo.federation, name="demo_federation"),
]
