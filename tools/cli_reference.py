"""The CLI reference, generated from the typer app, so it never drifts from the code.

As a MkDocs hook (mkdocs.yml `hooks:`) it replaces the `<!-- cli-reference -->` marker of
docs/reference/cli.md with every command's `--help` at 80 columns; a command added to the
app (`normnas slim`, ...) appears on the next build. As a script it prints the same markdown:
`python tools/cli_reference.py`.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- cli-reference -->"
WIDTH = 80


def _sections(command: Any, path: list[str], parent: Any = None) -> list[str]:
    ctx = command.context_class(
        command, info_name=path[-1], parent=parent, terminal_width=WIDTH, max_content_width=WIDTH
    )
    title = " ".join(path)
    out = [f"## `{title}`", "", "```text", command.get_help(ctx).rstrip(), "```", ""]
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name in command.list_commands(ctx):
            out += _sections(subcommands[name], [*path, name], ctx)
    return out


def cli_markdown() -> str:
    """Every command's help, the root first, subcommands in the app's order."""
    import typer

    from normnas.cli import app

    return "\n".join(_sections(typer.main.get_command(app), ["normnas"]))


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook: fill the marker of the page that holds it."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_markdown())


if __name__ == "__main__":
    print(cli_markdown())
