"""``webid-agent doctor`` against an IdP double, IAM documents and STS doubles."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.aws.trust_policy import PolicyRequest, build
from agent.doctor import PROBLEMS, explain_sts_error
from tests.operator.helpers import CLIENT_SECRET, IdpDouble, RunCli

ROLE = "arn:aws:iam::123456789012:role/app"
PROVIDER_ARN_PREFIX = "arn:aws:iam::123456789012:oidc-provider/"


def checks_of(output: str) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in json.loads(output)}


def policy_file(tmp_path: Path, fake_idp: IdpDouble, **overrides: Any) -> Path:
    request: dict[str, Any] = {
        "issuers": (fake_idp.issuer,),
        "audiences": ("sts.amazonaws.com",),
        "subjects": ("team-a-client",),
        "account_id": "123456789012",
    }
    request.update(overrides)
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(build(PolicyRequest(**request))))
    return path


def test_all_checks_pass_and_claims_are_shown(
    run_cli: RunCli, fake_idp: IdpDouble
) -> None:
    result = run_cli("doctor", *fake_idp.options())
    assert result.exit_code == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("✓ config")
    assert any(
        line.startswith("✓ discovery") and fake_idp.issuer in line for line in lines
    )
    token_line = next(line for line in lines if line.startswith("✓ token"))
    for part in (
        f"iss={fake_idp.issuer}",
        "aud=sts.amazonaws.com",
        "sub=team-a-client",
    ):
        assert part in token_line
    assert "lifetime=3600s" in token_line
    assert lines[-1] == "all checks passed"


def test_json_lists_every_check(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    result = run_cli("doctor", *fake_idp.options(), "--json")
    checks = checks_of(result.stdout)
    assert list(checks)[:3] == ["config", "discovery", "token"]
    assert checks["token"]["data"]["aud"] == ["sts.amazonaws.com"]
    assert checks["token"]["data"]["lifetime_seconds"] == 3600
    assert checks["sts"]["status"] == "skip"
    assert {c["status"] for c in checks.values()} <= {"ok", "skip"}


@pytest.mark.parametrize("as_json", [False, True])
def test_never_prints_the_token_or_the_secret(
    run_cli: RunCli, fake_idp: IdpDouble, tmp_path: Path, as_json: bool
) -> None:
    fake_idp.claims["aud"] = "something-else"  # a failing check prints more
    args = [
        "doctor",
        *fake_idp.options(),
        "--trust-policy",
        str(policy_file(tmp_path, fake_idp)),
    ]
    result = run_cli(*args, *(["--json"] if as_json else []))
    assert fake_idp.issued, "a token was fetched"
    everything = result.stdout + result.stderr
    for token in fake_idp.issued:
        assert token not in everything
        for part in token.split("."):
            assert part not in everything
    assert CLIENT_SECRET not in everything


def test_incomplete_config_exits_2_and_skips_the_rest(run_cli: RunCli) -> None:
    result = run_cli("doctor", "--authority", "https://idp.example", "--json")
    assert result.exit_code == 2
    checks = checks_of(result.stdout)
    assert checks["config"]["status"] == "fail"
    assert "--client-id" in checks["config"]["summary"]
    assert checks["config"]["hint"] == PROBLEMS["config"]
    assert checks["token"]["status"] == "skip"


def test_unreadable_secret_is_a_config_failure(
    run_cli: RunCli, fake_idp: IdpDouble
) -> None:
    fake_idp.secret_file.unlink()
    result = run_cli("doctor", *fake_idp.options(), "--json")
    assert result.exit_code == 2
    assert (
        "cannot read client secret file"
        in checks_of(result.stdout)["config"]["summary"]
    )


def test_untrusted_tls_is_explained(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    options = fake_idp.options()
    options[options.index("--ca-bundle") : options.index("--ca-bundle") + 2] = []
    result = run_cli("doctor", *options, "--json")
    assert result.exit_code == 1
    discovery = checks_of(result.stdout)["discovery"]
    assert discovery["problem"] == "tls-untrusted"
    assert "--ca-bundle" in discovery["hint"]


def test_unreachable_idp(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    options = fake_idp.options("--timeout", "2")
    options[options.index("--authority") + 1] = "https://127.0.0.1:9/tenant1"
    result = run_cli("doctor", *options, "--json")
    assert result.exit_code == 1
    assert checks_of(result.stdout)["discovery"]["problem"] == "idp-unreachable"


def test_discovery_issuer_mismatch(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    fake_idp.discovery_issuer = fake_idp.issuer + "/v2.0"
    result = run_cli("doctor", *fake_idp.options(), "--json")
    checks = checks_of(result.stdout)
    assert checks["discovery"]["problem"] == "discovery-issuer"
    assert checks["discovery"]["status"] == "fail"
    assert checks["token"]["status"] == "skip"


def test_discovery_issuer_slash_difference_is_a_warning(
    run_cli: RunCli, fake_idp: IdpDouble
) -> None:
    fake_idp.discovery_issuer = fake_idp.issuer + "/"
    result = run_cli("doctor", *fake_idp.options(), "--json")
    discovery = checks_of(result.stdout)["discovery"]
    assert (discovery["status"], discovery["problem"]) == ("warn", "discovery-issuer")
    assert "slash" in discovery["summary"]


@pytest.mark.parametrize(
    ("status", "error", "problem"),
    [
        (401, "invalid_client", "idp-client"),
        (400, "invalid_scope", "idp-scope"),
        (400, "unsupported_grant_type", "idp-refused"),
        (503, "temporarily_unavailable", "idp-unreachable"),
    ],
)
def test_idp_refusals_are_classified(
    run_cli: RunCli, fake_idp: IdpDouble, status: int, error: str, problem: str
) -> None:
    fake_idp.token_status, fake_idp.token_error = status, error
    result = run_cli("doctor", *fake_idp.options(), "--json")
    assert result.exit_code == 1
    token = checks_of(result.stdout)["token"]
    assert token["status"] == "fail"
    assert token["problem"] == problem


@pytest.mark.parametrize(
    ("claims", "check", "problem"),
    [
        ({"aud": "api://other"}, "audience", "token-audience"),
        ({"iss": "https://sts.windows.net/t/"}, "issuer", "token-issuer"),
        ({"exp_in": 30}, "lifetime", "token-lifetime"),
        ({"iat_shift": 900}, "clock", "clock-skew"),
        ({"iat_shift": -900}, "clock", "clock-skew"),
    ],
)
def test_claim_problems(
    run_cli: RunCli,
    fake_idp: IdpDouble,
    claims: dict[str, Any],
    check: str,
    problem: str,
) -> None:
    import time

    now = int(time.time())
    if "exp_in" in claims:
        claims = {"exp": now + claims["exp_in"]}
    if "iat_shift" in claims:
        claims = {"iat": now + claims["iat_shift"], "exp": now + 7200}
    fake_idp.claims.update(claims)
    result = run_cli("doctor", *fake_idp.options(), "--json")
    assert result.exit_code == 1
    found = checks_of(result.stdout)[check]
    assert (found["status"], found["problem"]) == ("fail", problem)
    assert found["hint"] == PROBLEMS[problem]


def test_entra_v1_issuer_hint(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    fake_idp.claims["iss"] = "https://sts.windows.net/t/"
    result = run_cli("doctor", *fake_idp.options())
    assert "✗ issuer" in result.stdout
    assert "accessTokenAcceptedVersion" in result.stdout


def test_missing_audience_setting_is_a_warning(
    run_cli: RunCli, fake_idp: IdpDouble
) -> None:
    options = fake_idp.options()
    options[options.index("--audience") : options.index("--audience") + 2] = []
    result = run_cli("doctor", *options, "--json")
    assert result.exit_code == 0
    assert checks_of(result.stdout)["audience"]["status"] == "warn"


@pytest.mark.parametrize(
    ("overrides", "status", "problem"),
    [
        ({}, "ok", None),
        ({"audiences": ("api://x",)}, "fail", "trust-audience"),
        ({"subjects": ("team-b-client",)}, "fail", "trust-subject"),
        ({"subjects": ()}, "warn", "trust-no-subject"),
        ({"issuers": ("https://other.example/tenant1",)}, "fail", "trust-provider"),
        ({"account_id": "999999999999"}, "fail", "trust-account"),
    ],
)
def test_trust_policy_comparison(
    run_cli: RunCli,
    fake_idp: IdpDouble,
    tmp_path: Path,
    overrides: dict[str, Any],
    status: str,
    problem: str | None,
) -> None:
    path = policy_file(tmp_path, fake_idp, **overrides)
    result = run_cli(
        "doctor",
        *fake_idp.options(),
        "--role-arn",
        ROLE,
        "--trust-policy",
        str(path),
        "--json",
    )
    check = checks_of(result.stdout)["trust-policy"]
    assert (check["status"], check["problem"]) == (status, problem)
    assert result.exit_code == (1 if status == "fail" else 0)


def test_trust_policy_port_in_issuer_matches_iam_naming(
    run_cli: RunCli, fake_idp: IdpDouble, tmp_path: Path
) -> None:
    # IAM names providers host[:port]/path; the double's issuer has a port, so
    # write the policy by hand the way IAM would see it
    prefix = fake_idp.issuer.removeprefix("https://")
    policy = {
        "Role": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": f"{PROVIDER_ARN_PREFIX}{prefix}"},
                        "Action": ["sts:AssumeRoleWithWebIdentity"],
                        "Condition": {
                            "StringLike": {f"{prefix}:sub": "team-a-*"},
                            "ForAnyValue:StringEquals": {
                                f"{prefix}:aud": ["x", "sts.amazonaws.com"]
                            },
                        },
                    }
                ],
            }
        }
    }
    path = tmp_path / "get-role.json"
    path.write_text(json.dumps(policy))
    result = run_cli(
        "doctor", *fake_idp.options(), "--trust-policy", str(path), "--json"
    )
    assert checks_of(result.stdout)["trust-policy"]["status"] == "ok"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "not JSON"), ('{"Version": "2012-10-17"}', "no Statement")],
)
def test_bad_trust_policy_file(
    run_cli: RunCli, fake_idp: IdpDouble, tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "trust.json"
    path.write_text(content)
    result = run_cli(
        "doctor", *fake_idp.options(), "--trust-policy", str(path), "--json"
    )
    check = checks_of(result.stdout)["trust-policy"]
    assert check["problem"] == "trust-policy-file"
    assert fragment in check["summary"]
    assert str(path) in check["summary"]


@pytest.mark.parametrize(
    ("provider", "status", "problem"),
    [
        ({"ClientIDList": ["sts.amazonaws.com"]}, "ok", None),
        ({"ClientIDList": ["other"]}, "fail", "provider-client-id"),
        ({"Url": "other.example/tenant1", "ClientIDList": []}, "fail", "provider-url"),
    ],
)
def test_oidc_provider_comparison(
    run_cli: RunCli,
    fake_idp: IdpDouble,
    tmp_path: Path,
    provider: dict[str, Any],
    status: str,
    problem: str | None,
) -> None:
    # the shape of aws iam get-open-id-connect-provider output
    data = {
        "Url": fake_idp.issuer.removeprefix("https://"),
        "ThumbprintList": [],
        **provider,
    }
    path = tmp_path / "provider.json"
    path.write_text(json.dumps(data))
    result = run_cli(
        "doctor", *fake_idp.options(), "--oidc-provider", str(path), "--json"
    )
    check = checks_of(result.stdout)["oidc-provider"]
    assert (check["status"], check["problem"]) == (status, problem)


def test_trust_policy_command_output_also_checks_the_provider(
    run_cli: RunCli, fake_idp: IdpDouble, tmp_path: Path
) -> None:
    path = policy_file(tmp_path, fake_idp, audiences=("api://elsewhere",))
    result = run_cli(
        "doctor", *fake_idp.options(), "--trust-policy", str(path), "--json"
    )
    checks = checks_of(result.stdout)
    assert checks["trust-policy"]["problem"] == "trust-audience"
    assert checks["oidc-provider"]["problem"] == "provider-client-id"


def test_sts_success_shows_the_assumed_role(
    run_cli: RunCli, fake_idp: IdpDouble, moto_sts: str
) -> None:
    result = run_cli(
        "doctor", *fake_idp.options(), "--role-arn", ROLE, "--sts",
        "--sts-endpoint-url", moto_sts, "--session-name", "doc-test", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout
    sts = checks_of(result.stdout)["sts"]
    assert sts["status"] == "ok"
    assert sts["data"]["assumed_role_arn"].endswith(":assumed-role/app/doc-test")
    assert "SecretAccessKey" not in result.stdout
    assert "AccessKeyId" not in result.stdout


def test_sts_without_role_fails(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    result = run_cli("doctor", *fake_idp.options(), "--sts", "--json")
    assert checks_of(result.stdout)["sts"]["problem"] == "role-arn"
    assert result.exit_code == 1


def test_bad_role_arn_is_a_config_failure(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    result = run_cli("doctor", *fake_idp.options(), "--role-arn", "app-role", "--json")
    assert result.exit_code == 2
    assert checks_of(result.stdout)["config"]["problem"] == "role-arn"


STS_ERRORS = [
    ("InvalidIdentityToken", "Incorrect token audience", "sts-audience", "audience"),
    (
        "InvalidIdentityToken",
        "No OpenIDConnect provider found in your account for https://x",
        "sts-no-provider",
        "no IAM OIDC provider",
    ),
    ("InvalidIdentityToken", "Token used before issued", "clock-skew", "clock skew"),
    (
        "InvalidIdentityToken",
        "Couldn't retrieve verification key from your identity provider",
        "sts-invalid-token",
        "invalid identity token",
    ),
    (
        "ExpiredTokenException",
        "Token expired: current date/time",
        "sts-expired",
        "expired",
    ),
    (
        "AccessDenied",
        "Not authorized to perform sts:AssumeRoleWithWebIdentity",
        "sts-access-denied",
        "trust policy",
    ),
    ("Throttling", "Rate exceeded", "sts-refused", "STS refused"),
]


@pytest.mark.parametrize(("code", "message", "problem", "words"), STS_ERRORS)
def test_sts_errors_in_plain_words(
    run_cli: RunCli,
    fake_idp: IdpDouble,
    sts_refusing: Callable[[str, str], str],
    code: str,
    message: str,
    problem: str,
    words: str,
) -> None:
    url = sts_refusing(code, message)
    result = run_cli(
        "doctor", *fake_idp.options(), "--role-arn", ROLE, "--sts",
        "--sts-endpoint-url", url, "--json",
    )  # fmt: skip
    assert result.exit_code == 1
    sts = checks_of(result.stdout)["sts"]
    assert sts["problem"] == problem
    assert words in sts["summary"]
    assert code in sts["summary"]
    assert sts["hint"] == PROBLEMS[problem]


def test_sts_unreachable(run_cli: RunCli, fake_idp: IdpDouble) -> None:
    result = run_cli(
        "doctor", *fake_idp.options(), "--role-arn", ROLE, "--sts",
        "--sts-endpoint-url", "http://127.0.0.1:9", "--json",
    )  # fmt: skip
    assert checks_of(result.stdout)["sts"]["problem"] == "sts-unreachable"


@pytest.mark.parametrize(("code", "message", "problem", "words"), STS_ERRORS)
def test_every_sts_explanation_names_a_known_problem(
    code: str, message: str, problem: str, words: str
) -> None:
    found, text = explain_sts_error(code, message)
    assert found == problem
    assert found in PROBLEMS
    assert text.startswith(words) or words in text


def test_text_output_has_a_fix_under_each_failure(
    run_cli: RunCli, fake_idp: IdpDouble
) -> None:
    fake_idp.claims["aud"] = "api://other"
    result = run_cli("doctor", *fake_idp.options())
    lines = result.stdout.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("✗ audience"))
    assert lines[index + 1].strip().startswith("fix: " + PROBLEMS["token-audience"])
    assert lines[index + 1].endswith("[token-audience]")
    assert lines[-1] == "1 check(s) failed"
