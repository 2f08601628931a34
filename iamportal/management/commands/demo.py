"""Run the whole demo: embedded AWS, seeded organisation, workers and web server.

Started by `make demo`, which points the settings at a fresh SQLite file and at
the embedded AWS on loopback before this command loads them.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django_q.conf import Conf

from accounts.denied import denied_events_poll
from accounts.services import account_sync_request, organization_sync
from accounts.usage.services import advisor_run_request
from iamportal import demo, processes


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def children_commands(web_port: int) -> list[list[str]]:
    """The demo's workers and web server."""
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    return [
        [*manage, "qcluster"],
        # DEBUG is off in the demo: --insecure still serves the static files.
        [*manage, "runserver", f"127.0.0.1:{web_port}", "--noreload", "--insecure"],
    ]


def _children_start(web_port: int) -> Iterator[subprocess.Popen[bytes]]:
    for command in children_commands(web_port):
        yield subprocess.Popen(command)  # noqa: S603


class Command(BaseCommand):
    help = "Run the demo (use `make demo`, which prepares its settings)."

    def handle(self, *args: Any, **options: Any) -> None:
        web_port = int(os.environ.get("PORT", "8000"))
        aws_port = int(os.environ.get("DEMO_AWS_PORT", "5000"))
        if f"http://127.0.0.1:{aws_port}" != settings.AWS_ENDPOINT_URL:
            raise CommandError(
                "The demo runs only against its embedded AWS: start it with `make demo`."
            )
        # The Console button signs in through the stand-in federation endpoint.
        federation = f"http://127.0.0.1:{web_port}/demo-federation/"
        wired = federation == settings.IAMPORTAL_FEDERATION_URL
        if not (settings.IAMPORTAL_DEMO_FEDERATION and wired):
            raise CommandError(
                "The demo signs in to its stand-in AWS console: start it with `make demo`."
            )
        for name, port in (("PORT", web_port), ("DEMO_AWS_PORT", aws_port)):
            if not _port_free(port):
                raise CommandError(f"Port {port} is in use: free it or set {name}=<another port>.")

        # Ctrl-C reaches the demo and its children, not make: stopping is no failure.
        with processes.terminal_foreground():
            self._run(web_port, aws_port)

    def _run(self, web_port: int, aws_port: int) -> None:
        # moto is the optional "demo" extra: only this command needs it installed.
        from moto.server import ThreadedMotoServer

        # iamportal reads no EC2 images; moto's catalogue of them costs seconds per account.
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
        server.start()
        children: list[subprocess.Popen[bytes]] = []
        # Until the workers and the web server run, SIGTERM stops the set-up as Ctrl-C does.
        previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            self.stdout.write("Migrating the demo database...")
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write("Seeding the demo organisation in the embedded AWS...")
            seeded = demo.organisation_seed()
            demo.demo_roles_age(seeded)
            for note in sorted({note for d in seeded for note in d.notes}):
                self.stdout.write(f"  note: {note}")
            if settings.IAMPORTAL_DEMO_CONFIG:
                self.stdout.write(f"  note: {demo.DEMO_CONFIG_NOTE}")
            accounts = demo.accounts_onboard(seeded)
            password = demo.users_create(os.environ.get("DEMO_PASSWORD") or None)
            demo.policy_templates_seed()
            demo.rightsizing_policy_seed()
            demo.approval_policies_seed(accounts)
            self.stdout.write("Running the first sync...")
            Conf.SYNC = True  # the first sync runs here, before the workers start
            logging.getLogger("django-q").setLevel(logging.WARNING)
            for account in accounts:
                run = account_sync_request(account=account)
                run.refresh_from_db()
                self.stdout.write(f"  {account}: {run.status} {run.counts or run.error}")
            organisation = organization_sync()
            self.stdout.write(f"  organisation: {organisation or 'not read'}")
            # The workers read the denied calls the demo puts on its queue, as in production.
            queue_url = demo.denied_events_seed(seeded)
            os.environ["IAMPORTAL_DENIED_EVENTS_QUEUE_URL"] = queue_url
            settings.IAMPORTAL_DENIED_EVENTS_QUEUE_URL = queue_url
            self.stdout.write(f"  denied calls: {denied_events_poll() or 'none'}")
            self.stdout.write("Reading Access Advisor (unused permissions)...")
            for account in accounts:
                advisor = advisor_run_request(account=account)
                advisor.refresh_from_db()
                self.stdout.write(
                    f"  {account}: {advisor.status} {advisor.counts or advisor.error}"
                )
            Conf.SYNC = False
            logging.getLogger("django-q").setLevel(logging.INFO)
            connections.close_all()

            with processes.stop_requests() as stop:
                children.extend(_children_start(web_port))
                if not stop.wait(2):
                    self._banner(web_port, aws_port, password)
                exited = processes.processes_supervise(children, stop=stop)
            if exited is not None:
                raise CommandError(
                    f"A demo process stopped unexpectedly (exit status {exited.returncode}); "
                    "see its output above."
                )
            self.stdout.write("\nStopping the demo...")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping the demo...")
        finally:
            processes.processes_stop(children)
            server.stop()
            signal.signal(signal.SIGTERM, previous_sigterm)

    def _banner(self, web_port: int, aws_port: int, password: str) -> None:
        line = "=" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"\n{line}\n"
                f"  iamportal demo     http://127.0.0.1:{web_port}/\n"
                f"  embedded AWS       http://127.0.0.1:{aws_port}/\n"
                f"  console sign-in    a stand-in at http://127.0.0.1:{web_port}/demo-federation/\n"
                f"  logins (password: {password})\n"
                f"    alice  engineer, team-payments\n"
                f"    rita   security reviewer\n"
                f"    sam    security reviewer (acme-prod needs two approvals)\n"
                f"    admin  administrator (also /admin/)\n"
                f"  Ctrl-C stops everything.\n"
                f"{line}\n"
            )
        )
