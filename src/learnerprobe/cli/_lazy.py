"""A click group that imports a command's module only when that command is used.

Start-up time: `learnerprobe predict` must not pay for importing every area's command module
(`cli.extract` alone pulls in `config.execution` and pydantic). Each command module still
registers its commands on its Typer app with decorators; this group only knows which
module registers which command name, imports it on the first `get_command`, and converts what
was registered with typer's own `get_group`, so options, help texts and order stay the same.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import ClassVar

import click
import typer
import typer.main
from typer.core import TyperGroup


class LazyGroup(TyperGroup):
    """TyperGroup whose commands come from modules imported on first use.

    Subclasses set ``lazy`` (command name -> module that registers it, in the order the
    commands are listed in ``--help``) and ``typer_app`` (returns the Typer those modules
    register on). Commands registered by other means (tests, plugins) are listed after them."""

    lazy: ClassVar[dict[str, str]] = {}
    typer_app: ClassVar[Callable[[], typer.Typer]]

    def list_commands(self, ctx: click.Context) -> list[str]:
        known = list(self.lazy)
        return known + [n for n in super().list_commands(ctx) if n not in self.lazy]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in self.lazy:
            importlib.import_module(self.lazy[cmd_name])
            # typer's own conversion of everything now registered (decorators ran on import)
            built = typer.main.get_group(type(self).typer_app())
            for name, command in built.commands.items():
                self.commands.setdefault(name, command)
            cmd = self.commands.get(cmd_name)
        return cmd


def lazy_group(commands: dict[str, str], app: Callable[[], typer.Typer]) -> type[LazyGroup]:
    """A :class:`LazyGroup` for ``app`` (a callable: the Typer may not exist yet) whose
    ``commands`` map a command name to the ``learnerprobe.cli`` module registering it."""
    return type("LazyCommands", (LazyGroup,), {
        "lazy": {name: f"learnerprobe.cli.{module}" for name, module in commands.items()},
        "typer_app": staticmethod(app),
    })
