"""Write docs/cli.md from the help text of every `mer` command (run: python docs/gen_cli.py).

tests/test_scaffold.py checks that the committed file equals what this script writes, so the
reference cannot drift from the CLI.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

OUT = Path(__file__).with_name("cli.md")
WIDTH = 100


def _sections(command: click.Command, parent: click.Context | None, name: str) -> list[str]:
    settings = {"terminal_width": WIDTH, "max_content_width": WIDTH, **command.context_settings}
    ctx = click.Context(command, info_name=name, parent=parent, **settings)
    path = ctx.command_path
    out = [f"## `{path}`\n\n```text\n{command.get_help(ctx)}\n```\n"]
    if isinstance(command, click.Group):
        for sub in sorted(command.list_commands(ctx)):
            out += _sections(command.get_command(ctx, sub), ctx, sub)
    return out


def render() -> str:
    """The Markdown reference of the core's commands (plugin-added commands are not included)."""
    from mercore.cli import cli

    head = ("# `mer` command reference\n\nGenerated from the CLI's own help by `python docs/gen_cli.py`; "
            "do not edit by hand. Plugins may add commands of their own (hook `mer_register_commands`); "
            "they are not listed here.\n")
    return "\n".join([head, *_sections(cli, None, "mer")])


if __name__ == "__main__":
    OUT.write_text(render())
    sys.stdout.write(f"wrote {OUT}\n")
