"""How an injector describes the agent it adds next to a workload.

An injector knows where it mounts the client credential and the token inside
its containers; :class:`SidecarSpec` turns that into the ``WEBID_*``
environment the agent reads, so every platform configures the agent the same
way and no secret value ever lands in a rendered spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from agent.contract import TOKEN_PATH

__all__ = ["SidecarSpec"]


@dataclass(frozen=True)
class SidecarSpec:
    """Non-secret agent settings as seen from inside the agent's container.

    Paths (secret, certificate, key, CA bundle, token) are the paths where the
    injector mounts those files, not paths on the machine running the injector.
    """

    provider: str = "oidc"
    authority: str = ""
    client_id: str | None = None
    client_id_file: str | None = None
    tenant_id: str | None = None
    client_secret_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    auth_method: str | None = None
    scope: str | None = None
    audience: str | None = None
    issuer: str | None = None
    extra_params: tuple[str, ...] = ()
    ca_bundle: str | None = None
    token_file: str = TOKEN_PATH
    file_mode: str | None = None
    refresh_at: float | None = None
    min_remaining: float | None = None
    listen: str | None = None  # "off" turns the health server off
    extra_env: dict[str, str] = field(default_factory=dict)

    def with_paths(self, **paths: str | None) -> SidecarSpec:
        """A copy with some in-container paths replaced."""
        return replace(self, **paths)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """``WEBID_*`` variables for the agent container, only those set."""
        values: dict[str, object] = {
            "provider": self.provider,
            "authority": self.authority,
            "client_id": self.client_id,
            "client_id_file": self.client_id_file,
            "tenant_id": self.tenant_id,
            "client_secret_file": self.client_secret_file,
            "client_cert_file": self.client_cert_file,
            "client_key_file": self.client_key_file,
            "auth_method": self.auth_method,
            "scope": self.scope,
            "audience": self.audience,
            "issuer": self.issuer,
            "ca_bundle": self.ca_bundle,
            "token_file": self.token_file,
            "file_mode": self.file_mode,
            "refresh_at": self.refresh_at,
            "min_remaining": self.min_remaining,
            "listen": self.listen,
        }
        env = {
            f"WEBID_{key.upper()}": str(value)
            for key, value in values.items()
            if value not in (None, "")
        }
        if self.extra_params:
            # click splits a multiple option's env var on whitespace
            env["WEBID_EXTRA_PARAM"] = " ".join(self.extra_params)
        env.update(self.extra_env)
        return env
