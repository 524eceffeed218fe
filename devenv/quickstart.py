"""The quickstart demo: one container gets AWS credentials from a local IdP.

``python -m devenv.quickstart`` starts the local OpenID provider and the STS
stand-in, creates a role that trusts the provider, then runs

    webid-agent docker --role-arn ... run --rm --network host webid-app:test

whose app prints the role it assumed using nothing but the AWS SDK and the
two variables the wrapper injected. Run ``scripts/quickstart.sh`` to set
everything up first.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from devenv.idp import start_idp, write_private_file
from devenv.images import ensure_agent_image, ensure_app_image
from devenv.sts import create_role, idp_token_validator, start_sts


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client-id", default="webid-secret")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="webid-quickstart-") as tmp:
        work = Path(tmp)

        step("starting the local OpenID provider (oidc-provider over TLS)")
        with start_idp(work / "idp") as idp:
            print(f"    issuer: {idp.issuer}")
            client = idp.client(args.client_id)
            secret_file = work / "client-secret"
            write_private_file(secret_file, (client.secret or "").encode())

            step("starting the STS stand-in (moto; tokens checked against the JWKS)")
            with start_sts(token_validator=idp_token_validator(idp)) as sts:
                role_arn = create_role(
                    sts, "quickstart-app", issuer=idp.issuer, audience=idp.audience
                )
                print(f"    STS: {sts.endpoint_url}\n    role: {role_arn}")

                step("building the images locally (cached after the first run)")
                agent_image = ensure_agent_image()
                app_image = ensure_app_image()

                webid = [sys.executable, "-m", "agent"]
                idp_options = [
                    "--authority", idp.issuer,
                    "--client-id", args.client_id,
                    "--client-secret-file", str(secret_file),
                    "--ca-bundle", str(idp.ca_file),
                    "--audience", idp.audience,
                ]  # fmt: skip

                step("the token's claims, as `webid-agent token` shows them")
                subprocess.run([*webid, "token", *idp_options], check=True)  # noqa: S603

                step("webid-agent docker ... run webid-app:test (boto3 whoami)")
                result = subprocess.run(  # noqa: S603
                    [
                        *webid, "docker", "--role-arn", role_arn,
                        "--image", agent_image, *idp_options,
                        "run", "--rm", "--network", "host",
                        "-e", f"AWS_ENDPOINT_URL_STS={sts.endpoint_url}",
                        "-e", "AWS_DEFAULT_REGION=us-east-1",
                        app_image,
                    ],
                    check=False,
                )  # fmt: skip
                if result.returncode != 0:
                    print(
                        f"\nquickstart failed (exit {result.returncode})",
                        file=sys.stderr,
                    )
                    return result.returncode
    print("\nDone: the app assumed the role with a token from the external IdP.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
