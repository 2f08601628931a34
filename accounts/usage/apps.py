from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "accounts.usage"
    label = "usage"
    verbose_name = "Unused permissions"
