"""``webid-agent aws trust-policy``: policy shape, Entra issuers, input checks."""

from __future__ import annotations

import json

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from agent.aws.trust_policy import PolicyRequest, build, condition_prefix
from tests.operator.helpers import RunCli

TENANT = "0d7a4b5e-1f2a-4c3b-9d8e-112233445566"
ACCOUNT = "111122223333"


def test_oidc_issuer_policy_conditions_on_aud_and_sub(run_cli: RunCli) -> None:
    result = run_cli(
        "aws", "trust-policy",
        "--issuer", "https://idp.example/tenant1",
        "--audience", "sts.amazonaws.com",
        "--subject", "team-a-client",
        "--account-id", ACCOUNT,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    (statement,) = out["TrustPolicy"]["Statement"]
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example/tenant1"
    }
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            "idp.example/tenant1:aud": "sts.amazonaws.com",
            "idp.example/tenant1:sub": "team-a-client",
        }
    }
    assert out["OpenIDConnectProviders"] == [
        {
            "Arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example/tenant1",
            "Url": "idp.example/tenant1",
            "IssuerUrl": "https://idp.example/tenant1",
            "ClientIDList": ["sts.amazonaws.com"],
        }
    ]


def test_several_audiences_and_subjects_become_lists(run_cli: RunCli) -> None:
    result = run_cli(
        "aws", "trust-policy", "--issuer", "https://idp.example",
        "--audience", "a1", "--audience", "a2",
        "--subject", "s1", "--subject", "s2", "--account-id", ACCOUNT,
    )  # fmt: skip
    out = json.loads(result.stdout)
    equals = out["TrustPolicy"]["Statement"][0]["Condition"]["StringEquals"]
    assert equals == {"idp.example:aud": ["a1", "a2"], "idp.example:sub": ["s1", "s2"]}
    assert out["OpenIDConnectProviders"][0]["ClientIDList"] == ["a1", "a2"]


@pytest.mark.parametrize(
    ("version", "prefixes"),
    [
        ("v1", [f"sts.windows.net/{TENANT}/"]),
        ("v2", [f"login.microsoftonline.com/{TENANT}/v2.0"]),
        (
            "both",
            [f"sts.windows.net/{TENANT}/", f"login.microsoftonline.com/{TENANT}/v2.0"],
        ),
    ],
)
def test_entra_issuer_forms(run_cli: RunCli, version: str, prefixes: list[str]) -> None:
    result = run_cli(
        "aws", "trust-policy", "--entra-tenant", TENANT.upper(),
        "--entra-version", version, "--audience", "api://webid",
        "--subject", "sp-object-id", "--account-id", ACCOUNT,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    statements = out["TrustPolicy"]["Statement"]
    assert [
        s["Principal"]["Federated"].split("oidc-provider/")[1] for s in statements
    ] == prefixes
    for statement, prefix in zip(statements, prefixes, strict=True):
        assert set(statement["Condition"]["StringEquals"]) == {
            f"{prefix}:aud",
            f"{prefix}:sub",
        }
    assert len({s["Sid"] for s in statements}) == len(statements)
    assert [p["Url"] for p in out["OpenIDConnectProviders"]] == prefixes


def test_policy_only_prints_the_document(run_cli: RunCli) -> None:
    result = run_cli(
        "aws", "trust-policy", "--issuer", "https://idp.example",
        "--audience", "a", "--subject", "s", "--account-id", ACCOUNT, "--policy-only",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["Version"] == "2012-10-17"
    assert "OpenIDConnectProviders" not in doc


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--issuer", "http://idp.example", "--subject", "s"], "https:// URL"),
        (["--issuer", "https://idp.example/?a=b", "--subject", "s"], "query"),
        (["--issuer", "https://idp.example"], "--subject"),
        (["--issuer", "https://i", "--subject", "s", "--any-subject"], "exclude"),
        (["--entra-tenant", "contoso.com", "--subject", "s"], "GUID"),
        (
            ["--entra-tenant", TENANT, "--issuer", "https://x", "--subject", "s"],
            "not both",
        ),
        (["--subject", "s"], "--issuer or --entra-tenant"),
    ],
)
def test_bad_input_exits_2_with_a_clear_error(
    run_cli: RunCli, args: list[str], message: str
) -> None:
    result = run_cli(
        "aws", "trust-policy", "--audience", "a", "--account-id", ACCOUNT, *args
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("account", ["1111", "11112222333a", "1111222233334"])
def test_account_id_must_have_12_digits(run_cli: RunCli, account: str) -> None:
    result = run_cli(
        "aws", "trust-policy", "--issuer", "https://idp.example",
        "--audience", "a", "--subject", "s", "--account-id", account,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--account-id: expected a 12-digit" in result.stderr


def test_any_subject_leaves_sub_unconditioned(run_cli: RunCli) -> None:
    result = run_cli(
        "aws", "trust-policy", "--issuer", "https://idp.example",
        "--audience", "a", "--any-subject", "--account-id", ACCOUNT,
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["TrustPolicy"]["Statement"][0]["Condition"]["StringEquals"] == {
        "idp.example:aud": "a"
    }


_segment = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12
)


@given(
    host=_segment,
    path=st.lists(_segment, max_size=3),
    slash=st.booleans(),
)
def test_condition_keys_always_name_the_federated_provider(
    host: str, path: list[str], slash: bool
) -> None:
    issuer = "https://" + "/".join([f"{host}.example", *path]) + ("/" if slash else "")
    doc = build(
        PolicyRequest(
            issuers=(issuer,), audiences=("a",), subjects=("s",), account_id=ACCOUNT
        )
    )
    statement = doc["TrustPolicy"]["Statement"][0]
    prefix = statement["Principal"]["Federated"].split(":oidc-provider/", 1)[1]
    assert prefix == condition_prefix(issuer) == issuer.removeprefix("https://")
    assert set(statement["Condition"]["StringEquals"]) == {
        f"{prefix}:aud",
        f"{prefix}:sub",
    }


@mock_aws
def test_iam_accepts_the_provider_and_the_role() -> None:
    doc = build(
        PolicyRequest(
            issuers=("https://idp.example/tenant1",),
            audiences=("sts.amazonaws.com",),
            subjects=("client-a",),
            account_id="123456789012",
        )
    )
    iam = boto3.client("iam", region_name="us-east-1")
    provider = doc["OpenIDConnectProviders"][0]
    created = iam.create_open_id_connect_provider(
        Url=provider["IssuerUrl"],
        ClientIDList=provider["ClientIDList"],
        ThumbprintList=["0" * 40],
    )
    assert created["OpenIDConnectProviderArn"] == provider["Arn"]
    role = iam.create_role(
        RoleName="app", AssumeRolePolicyDocument=json.dumps(doc["TrustPolicy"])
    )
    assert role["Role"]["AssumeRolePolicyDocument"] == doc["TrustPolicy"]


def test_a_port_in_the_issuer_is_warned_about(run_cli: RunCli) -> None:
    result = run_cli(
        "aws", "trust-policy", "--issuer", "https://localhost:8443/t",
        "--audience", "a", "--subject", "s", "--account-id", ACCOUNT,
    )  # fmt: skip
    assert result.exit_code == 0
    assert "does not accept a port" in result.stderr
    assert json.loads(result.stdout)["OpenIDConnectProviders"][0]["Url"] == (
        "localhost:8443/t"
    )
