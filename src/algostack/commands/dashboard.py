"""``algostack dashboard``: the desk's Streamlit view (loopback by default)."""

from __future__ import annotations

import typer

from algostack.commands.error_line import print_error


def register(app: typer.Typer) -> None:
    """Add the ``dashboard`` command to the CLI."""

    @app.command("dashboard")
    def dashboard(
        host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
        port: int = typer.Option(8501, help="Port to serve on."),
        nats_url: str | None = typer.Option(
            None, help="NATS URL (default: ALGOSTACK_NATS_URL). Credentials come from the env."
        ),
        bucket: str | None = typer.Option(
            None, help="Journals: a directory laid out like the bucket, or s3://<bucket>."
        ),
        journals: str | None = typer.Option(
            None,
            help="A live journal root: one directory per model key, as `algostack trade "
            "--journal-dir` writes (default: ALGOSTACK_DASHBOARD_JOURNALS).",
        ),
        env: str | None = typer.Option(None, help="Environment (default: ALGOSTACK_ENV)."),
        allow_remote: bool = typer.Option(
            False, "--allow-remote", help="Allow a non-loopback --host (set a password!)."
        ),
    ) -> None:
        """Serve the Streamlit dashboard: prices, models, fleet health, kill switch.

        An optional login password is read from ALGOSTACK_DASHBOARD_PASSWORD.
        """
        import signal
        import subprocess

        from rich.console import Console

        from algostack.config import load_settings
        from algostack.errors import AlgostackError
        from algostack.services.dashboard import launch as dl
        from algostack.services.dashboard.settings import DashboardSettings

        console = Console(stderr=True)
        try:
            settings = load_settings()
            dash = DashboardSettings()
            launch = dl.DashboardLaunch(
                host=host,
                port=port,
                env=env or settings.env,
                nats_url=nats_url or settings.nats.url,
                bucket=bucket or dash.bucket,
                journals=journals or dash.journals,
                allow_remote=allow_remote,
            )
            dl.check_bind(host, port, allow_remote=allow_remote)
            if not dl.is_loopback(host) and not dash.password:
                console.print(
                    "[yellow]warning: serving on a non-loopback address without a password "
                    "(ALGOSTACK_DASHBOARD_PASSWORD)[/yellow]"
                )
            proc = dl.start(launch)
        except AlgostackError as exc:
            print_error(exc)
            raise typer.Exit(2) from None
        console.print(f"dashboard: http://{host}:{port} (Ctrl-C to stop)")

        def forward(signum: int, _frame: object) -> None:
            proc.send_signal(signum)  # a supervisor's SIGTERM must stop Streamlit too

        signal.signal(signal.SIGTERM, forward)
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            try:
                code = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        raise typer.Exit(code)
