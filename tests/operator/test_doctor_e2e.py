"""``webid-agent doctor`` against the real local IdP and the checking STS stand-in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.operator.helpers import RunCli


def options(idp: Any, client_id: str, tmp_path: Path) -> list[str]:
    secret = tmp_path / f"{client_id}.secret"
    secret.write_text(idp.client(client_id).secret + "\n")
    return [
        "--provider", "oidc",
        "--authority", idp.issuer,
        "--client-id", client_id,
        "--client-secret-file", str(secret),
        "--audience", idp.audience,
        "--ca-bundle", str(idp.ca_file),
    ]  # fmt: skip


def test_doctor_passes_against_the_real_idp_iam_and_sts(
    run_cli: RunCli, idp: Any, sts: Any, checked_sts: Any, role_arn: str, tmp_path: Path
) -> None:
    # what IAM holds, exported the way an operator would (aws iam get-...)
    iam = sts.client("iam")
    role = iam.get_role(RoleName=role_arn.rsplit("/", 1)[1])
    (tmp_path / "role.json").write_text(json.dumps(role, default=str))
    provider_arn = role["Role"]["AssumeRolePolicyDocument"]["Statement"][0][
        "Principal"
    ]["Federated"]
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=provider_arn)
    (tmp_path / "provider.json").write_text(json.dumps(provider, default=str))

    result = run_cli(
        "doctor", *options(idp, "webid-secret", tmp_path),
        "--role-arn", role_arn,
        "--trust-policy", str(tmp_path / "role.json"),
        "--oidc-provider", str(tmp_path / "provider.json"),
        "--sts", "--sts-endpoint-url", checked_sts.endpoint_url,
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    checks = {c["id"]: c for c in json.loads(result.stdout)}
    assert checks["token"]["data"]["iss"] == idp.issuer
    assert checks["sts"]["status"] == "ok"
    assert checks["sts"]["data"]["assumed_role_arn"].endswith("/webid-agent-doctor")
    assert checks["oidc-provider"]["status"] == "ok"
    # devenv's role conditions only aud: doctor warns that sub is open
    assert (checks["trust-policy"]["status"], checks["trust-policy"]["problem"]) == (
        "warn",
        "trust-no-subject",
    )


def test_doctor_flags_a_short_lived_token(
    run_cli: RunCli, idp: Any, tmp_path: Path
) -> None:
    result = run_cli("doctor", *options(idp, "webid-short", tmp_path), "--json")
    assert result.exit_code == 1
    checks = {c["id"]: c for c in json.loads(result.stdout)}
    assert checks["lifetime"]["problem"] == "token-lifetime"
    assert checks["token"]["status"] == "ok"
