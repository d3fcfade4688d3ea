"""``tcplab explain WORD``: what a state, flag, option, concept or scenario means."""

from __future__ import annotations

import json

import click

from tcplab.errors import InputError


@click.command("explain")
@click.argument("word", required=False)
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the explanation (default en; zh when WORD is Chinese).")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.option("--list", "list_topics", is_flag=True, help="List every topic and scenario id.")
def command(word: str | None, lang: str | None, as_json: bool, list_topics: bool) -> None:
    """Explain WORD: a state (TIME_WAIT, close-wait ...), a flag (SYN, RST ...),
    an option (MSS, wscale, SACK ...), a concept (MSL, half-close, SO_LINGER ...)
    or a built-in scenario id.

    \b
    Examples:
      tcplab explain TIME_WAIT
      tcplab explain time-wait --lang zh
      tcplab explain SO_REUSEADDR --json
    """
    from tcplab import explain
    from tcplab.scenario import builtin_ids

    if list_topics:
        groups = {kind: explain.topics(kind) for kind in explain.KINDS if kind != "scenario"}
        groups["scenario"] = builtin_ids()
        if as_json:
            click.echo(json.dumps(groups, ensure_ascii=False, indent=1))
            return
        for kind, names in groups.items():
            click.echo(f"{kind + 's':10} {', '.join(names) or '-'}")
        return
    if not word:
        raise InputError("explain: give a WORD (a state, flag, option, concept or scenario id),"
                         " or --list")
    if lang is None:
        lang = "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in word) else "en"
    found = explain.lookup(word, lang)
    if as_json:
        click.echo(json.dumps(found.to_dict(), ensure_ascii=False, indent=1))
    else:
        import shutil

        width = min(shutil.get_terminal_size((80, 24)).columns, 100)
        click.echo(found.render(width), nl=False)
