from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class IamportalConfig(AppConfig):
    name = "iamportal"
    verbose_name = "iamportal"

    def ready(self) -> None:
        # Importing these registers the OpenAPI extension and the system checks.
        from django_q.signals import post_spawn

        from iamportal import checks, jobs, schema  # noqa: F401

        # Schedules are declared in code; every migrate brings the database in line.
        post_migrate.connect(jobs.schedules_ensure_after_migrate, sender=self)
        # Each worker process beats once as it starts, so /healthz knows at once.
        post_spawn.connect(jobs.heartbeat_on_worker_start, dispatch_uid="iamportal.heartbeat")
        if settings.IAMPORTAL_DEMO_CONFIG:
            # The embedded AWS cannot answer AWS Config's aggregate queries.
            from iamportal import demo

            demo.config_standin_install()
