"""Every `streamguard` command and subcommand's --help ends with examples."""

from __future__ import annotations

import argparse

import pytest

from streamguard.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, prefix + (name,))
    return found


COMMANDS = _commands(build_parser())


def test_every_subcommand_is_found():
    assert {("prepare",), ("sample",), ("monitor",), ("registry", "promote"), ("feedback", "push")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "streamguard")
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    examples = text.split("examples:", 1)
    assert len(examples) == 2, text
    assert "streamguard " + (command[0] if command else "") in examples[1]
