"""Print the AWS identity this process gets from its environment alone.

Runs inside the test app image. It builds a default boto3 session, so the
credentials come from botocore's normal provider chain: with ``AWS_ROLE_ARN``
and ``AWS_WEB_IDENTITY_TOKEN_FILE`` set, botocore reads the token file and
calls STS AssumeRoleWithWebIdentity itself. ``AWS_ENDPOINT_URL_STS`` (or
``AWS_ENDPOINT_URL``) points both that call and GetCallerIdentity at a local
STS stand-in.

On success prints ``ASSUMED <arn>`` and exits 0; on failure prints the error
on stderr and exits 1.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        import boto3

        identity = boto3.client("sts").get_caller_identity()
    except Exception as exc:  # report any failure, whatever raised it
        print(f"whoami: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"ASSUMED {identity['Arn']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
