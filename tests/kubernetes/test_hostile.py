"""Hostile and broken input: one-line errors (exit 2 / HTTP 400), never a hang.

Undecodable or unreadable mapping files, self-referencing and deeply nested
YAML or JSON, alias bombs, endless or oversized inputs.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from agent import ConfigError
from agent.cli import main
from injectors.kubernetes.options import InjectorConfig, MappingStore, load_mapping
from injectors.kubernetes.review import Reviewer

FLAGS = ["--authority", "https://idp.example/t1", "--audience", "sts.amazonaws.com"]
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n"


def _bomb(levels: int = 9, fan: int = 9) -> str:
    lines = ["a: &x0 [1]"]
    for level in range(1, levels + 1):
        refs = ",".join([f"*x{level - 1}"] * fan)
        lines.append(f"x{level}: &x{level} [{refs}]")
    return "\n".join(lines) + "\n"


class Run(NamedTuple):
    code: int
    stdout: str
    stderr: str


Runner = Callable[..., Run]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    """``run(*ARGS, stdin=TEXT)``: ``webid-agent ARGS`` through the real entry
    point, which prints a WebIdError as one line; returns code and output."""

    def invoke(*args: str, stdin: str = "") -> Run:
        raw = io.BytesIO(stdin.encode("utf-8", "surrogateescape"))
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        return Run(int(exited.value.code or 0), out, err)

    return invoke


def _one_line_error(result: Run, *needles: str) -> None:
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("webid-agent: error: ")
    for needle in needles:
        assert needle in lines[0]


# -- the mapping file ---------------------------------------------------------

BAD_MAPPINGS = [
    ("non-utf8", b'defaults:\n  region: "\xff\xfe"\n', "not UTF-8"),
    ("bad-yaml", b"defaults: [\n", "not valid YAML"),
    ("self-reference", b"defaults: &a {x: *a}\n", "refers to its own anchor"),
    ("deep", b"[" * 100_000, "nested deeper than"),
]


@pytest.mark.parametrize(
    ("content", "needle"),
    [(c, n) for _, c, n in BAD_MAPPINGS],
    ids=[i for i, _, _ in BAD_MAPPINGS],
)
@pytest.mark.parametrize("command", ["inject", "manifests"])
def test_bad_mapping_at_start_up_is_one_line(
    content: bytes, needle: str, command: str, tmp_path: Path, run: Runner
) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_bytes(content)
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD)
    args = ["--mapping", str(mapping), *FLAGS]
    if command == "inject":
        result = run("inject", "k8s", str(manifest), *args)
    else:
        result = run("k8s", "manifests", "--failure-policy", "Fail", *args)
    _one_line_error(result, str(mapping), needle)


def test_invalid_yaml_in_mapping_names_file_and_line(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("defaults:\n  region: eu\n  x: [\n")
    with pytest.raises(ConfigError) as caught:
        load_mapping(mapping)
    text = caught.value.format()
    assert "\n" not in text
    assert f"{mapping}:4" in text
    assert "not valid YAML" in text


@pytest.mark.parametrize(
    ("name", "needle"),
    [(".", "Is a directory"), ("missing.yaml", "file not found"), ("/dev/zero", "")],
)
def test_unreadable_mapping_is_a_config_error(
    name: str, needle: str, tmp_path: Path
) -> None:
    needle = needle or "not a regular file"
    with pytest.raises(ConfigError, match=needle):
        load_mapping(tmp_path / name)


@pytest.mark.parametrize(
    "content", [c for _, c, _ in BAD_MAPPINGS], ids=[i for i, _, _ in BAD_MAPPINGS]
)
def test_bad_mapping_reload_keeps_the_last_good(
    content: bytes, tmp_path: Path, config: InjectorConfig, review_for: Any
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("defaults:\n  region: eu-west-1\n")
    errors: list[str] = []
    store = MappingStore(path, check_every=0, on_error=errors.append)
    path.write_bytes(content)
    assert store.get().defaults == {"region": "eu-west-1"}
    assert len(errors) == 1
    assert str(path) in errors[0]
    # and the webhook still answers pods (no 500 for every pod)
    reviewer = Reviewer(config, defaults=store.get)
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    status, answer, outcome = reviewer.handle(json.dumps(review_for(pod)).encode())
    assert status == 200
    assert json.loads(answer)["response"]["allowed"] is True
    assert outcome.decision == "not-opted-in"


# -- manifests: recursion, depth, alias bombs, endless input -------------------

HOSTILE_MANIFESTS = [
    ("self-alias", "a: &a [*a]\n", "refers to its own anchor"),
    ("self-alias-map", "a: &a {b: *a}\n", "refers to its own anchor"),
    ("deep-flow", "[" * 100_000, "nested deeper than"),
    ("deep-block", "".join(f"{' ' * i}k:\n" for i in range(400)), "nested deeper"),
    ("alias-bomb", _bomb(), "aliases expand to more than"),
    ("undefined-alias", "a: *nope\n", "undefined alias"),
    ("bad-utf8", "kind: Pod\n\udcff\n", "not UTF-8"),
]


@pytest.mark.parametrize(
    ("text", "needle"),
    [(t, n) for _, t, n in HOSTILE_MANIFESTS],
    ids=[i for i, _, _ in HOSTILE_MANIFESTS],
)
def test_hostile_manifest_is_exit_2_one_line(
    text: str, needle: str, tmp_path: Path, run: Runner
) -> None:
    path = tmp_path / "in.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    _one_line_error(run("inject", "k8s", str(path), *FLAGS), str(path), needle)


def test_hostile_manifest_on_stdin(run: Runner) -> None:
    _one_line_error(run("inject", "k8s", "-", *FLAGS, stdin=_bomb()), "<stdin>")


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_non_regular_files_are_refused(path: str, run: Runner) -> None:
    _one_line_error(run("inject", "k8s", path, *FLAGS), path, "not a regular file")


def test_oversized_input_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Runner
) -> None:
    monkeypatch.setattr("agent.output.MAX_INPUT_BYTES", 1024)
    path = tmp_path / "big.yaml"
    path.write_text(POD + "#" * 2048 + "\n")
    _one_line_error(run("inject", "k8s", str(path), *FLAGS), "input limit")


@pytest.mark.parametrize(
    "text",
    [
        # anchors shared within limits, and moderately deep nesting, still work
        "base: &b {x: 1}\nlist: [*b, *b, *b]\n---\n" + POD,
        "".join(f"{' ' * i}k{i}:\n" for i in range(100)) + " " * 100 + "v\n",
    ],
    ids=["shared-anchors", "depth-100"],
)
def test_reasonable_anchors_and_depth_pass(
    text: str, tmp_path: Path, run: Runner
) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    result = run("inject", "k8s", str(path), *FLAGS)
    assert result.code == 0, result.stderr
    assert list(yaml.safe_load_all(result.stdout)) == list(yaml.safe_load_all(text))


# -- the webhook ----------------------------------------------------------------


def _deep_review(review_for: Callable[..., dict[str, Any]], depth: int) -> bytes:
    review = review_for({"metadata": {"name": "p"}, "spec": {"containers": []}})
    text = json.dumps(review)
    inner = '"x": ' + "[" * depth + "]" * depth
    return text.replace('"containers": []', f'"containers": [{{{inner}}}]').encode()


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, "deep-review"],
    ids=["100000-brackets", "990-deep-container"],
)
def test_webhook_answers_400_to_deep_json(
    body: bytes | str,
    start_webhook: Any,
    https_post: Any,
    tls_files: Any,
    review_for: Callable[..., dict[str, Any]],
) -> None:
    payload = _deep_review(review_for, 990) if body == "deep-review" else body
    assert isinstance(payload, bytes)
    server = start_webhook(max_body=1 << 20)
    status, answer = https_post(server, payload, tls_files.client_context())
    assert status == 400
    assert "nested deeper than" in json.loads(answer)["error"]
