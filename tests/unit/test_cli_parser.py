"""cli.build_parser: the parser `main` builds for one command is that command's full parser."""

from __future__ import annotations

import argparse

import pytest

from chalicelib import cli


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


@pytest.mark.parametrize("command", cli.CORE_COMMANDS)
def test_a_command_built_alone_has_the_help_and_options_of_the_full_parser(command: str) -> None:
    alone, full = cli.build_parser(only=command), cli.build_parser()
    assert _subparser(alone, command).format_help() == _subparser(full, command).format_help()
    others = next(a for a in alone._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert list(others) == [command]


def test_the_full_parser_has_every_command_and_main_uses_it_for_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(cli.CORE_COMMANDS) < set(commands) and {"plan", "report", "ui"} <= set(commands)
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "simulate" in capsys.readouterr().out


def test_options_parse_the_same_either_way() -> None:
    argv = ["run", "wf.json", "--json", "--concurrency", "3", "--rerun", "a*", "--rerun", "b"]
    assert vars(cli.build_parser(only="run").parse_args(argv)) == vars(cli.build_parser().parse_args(argv))


def test_an_unknown_command_is_refused_with_the_list_of_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["rnu", "wf.json"])
    assert exit_.value.code == 2
    assert "invalid choice: 'rnu'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["runs", "--limit", "-1"], "argument --limit: must be 0 or more, not -1"),
    (["run", "wf.json", "--concurrency", "0"], "argument --concurrency: must be 1 or more, not 0"),
    (["logs", "r", "t", "--attempt", "0"], "argument --attempt: must be 1 or more, not 0"),
    (["run", "wf.json", "--concurrency", "two"], "argument --concurrency: 'two' is not a whole number"),
])
def test_counts_below_their_minimum_are_usage_errors(argv: list[str], message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_counts_at_their_minimum_parse() -> None:
    assert cli.build_parser().parse_args(["runs", "--limit", "0"]).limit == 0
    assert cli.build_parser().parse_args(["run", "wf.json", "--concurrency", "1"]).concurrency == 1
