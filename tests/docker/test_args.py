"""Reading `docker run` arguments: where the image is, what the user already set."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import InputError
from injectors.docker.args import parse_run_args

CASES = [
    (["img"], "img", [], None, False, set()),
    (
        ["--rm", "-it", "img", "sh", "-c", "echo hi"],
        "img",
        ["sh", "-c", "echo hi"],
        None,
        False,
        set(),
    ),
    (["-d", "--name", "x", "img"], "img", [], None, True, set()),
    (["-dit", "img", "--flag-of-app"], "img", ["--flag-of-app"], None, True, set()),
    (["--network", "host", "img"], "img", [], "host", False, set()),
    (["--net=container:db", "img"], "img", [], "container:db", False, set()),
    (
        ["-e", "AWS_ROLE_ARN=mine", "--env=A=1", "-eB=2", "img"],
        "img",
        [],
        None,
        False,
        {"AWS_ROLE_ARN", "A", "B"},
    ),
    (["-e", "AWS_REGION", "img"], "img", [], None, False, {"AWS_REGION"}),
    (
        ["-v", "/a:/b", "-p", "80:80", "--user", "1000", "img", "cmd"],
        "img",
        ["cmd"],
        None,
        False,
        set(),
    ),
    (["--detach=false", "img"], "img", [], None, False, set()),
    (["--", "img", "-v"], "img", ["-v"], None, False, set()),
]


@pytest.mark.parametrize(
    ("argv", "image", "command", "network", "detach", "env"), CASES
)
def test_parse(
    argv: list[str],
    image: str,
    command: list[str],
    network: str | None,
    detach: bool,
    env: set[str],
) -> None:
    args = parse_run_args(argv)

    assert args.image == image
    assert args.command == command
    assert args.network == network
    assert args.detach is detach
    assert args.env_names == env
    assert args.options + [args.image] + args.command == [a for a in argv if a != "--"]


def test_env_file_names_count(tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("# comment\nAWS_ROLE_ARN=arn:x\n\nOTHER=1\n")

    args = parse_run_args(["--env-file", str(env_file), "img"])

    assert args.env_names == {"AWS_ROLE_ARN", "OTHER"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no image given"),
        (["--rm"], "no image given"),
        (["--name"], "--name needs a value"),
        (["-Z", "img"], "unknown option '-Z'"),
        (["--env-file", "/nonexistent/env", "img"], "cannot read env file"),
    ],
)
def test_bad_arguments(argv: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_run_args(argv)


@pytest.mark.parametrize(
    ("argv", "given"),
    [
        (["--rm", "-it", "img", "-p", "1:1"], ["--rm", "-i", "-t"]),
        (["-p8080:80", "--net=host", "-P", "img"], ["-p", "--net", "-P"]),
        (["--hostname", "h", "-e", "A=1", "img"], ["--hostname", "-e"]),
        (["--", "img", "--dns", "x"], []),
    ],
)
def test_given_names_options_as_written_not_the_app_s(
    argv: list[str], given: list[str]
) -> None:
    assert parse_run_args(argv).given == given


def test_countdown_shows_each_second_once_and_ends_the_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from injectors.docker.cli import _Countdown

    countdown = _Countdown(30)
    for left in (29.9, 29.2, 28.9, 28.5, 27.0):
        countdown(left)
    countdown.finish()

    assert capsys.readouterr().err == "\r  ... 1s of 30s\r  ... 3s of 30s\n"
