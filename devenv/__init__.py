"""Local development and test environment for webid-agent.

``devenv.idp`` runs a real OIDC identity provider (node ``oidc-provider``) over
HTTPS on loopback, ``devenv.sts`` runs an AWS STS/IAM stand-in (moto), and
``python -m devenv up`` starts both in the foreground for a quickstart or CI.
"""
