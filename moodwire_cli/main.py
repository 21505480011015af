"""The ``moodwire`` command line: one group, its commands in the modules of this package by
group. Each command reads the settings once (``context.settings_of``) and passes them down;
domain packages are imported inside the command functions, so ``moodwire --help`` stays fast."""

from __future__ import annotations

import click

from moodwire.errors import MoodwireError
from moodwire_cli import alerting, backtest, kafka, model, recipe, stages, store, ui, watchlists


class _Group(click.Group):
    """Turns every deliberate Moodwire error into one clear line and exit status 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MoodwireError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="YAML settings file (also MOODWIRE_CONFIG).")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """Moodwire: streaming sentiment monitor for financial news."""
    ctx.obj = {"config": config}


for command in (kafka.broker, kafka.topics, stages.ingest, stages.replay, stages.classify, stages.aggregate,
                alerting.notify, alerting.silence, ui.demo, ui.dashboard, ui.hash_password_cmd, model.train,
                model.evaluate, model.export, model.average, model.calibrate, model.bundle, recipe.recipe,
                backtest.backtest, watchlists.watchlists,
                store.store):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="moodwire")


if __name__ == "__main__":
    main()
