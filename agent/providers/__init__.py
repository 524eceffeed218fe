"""Token providers: how a client-credentials token is fetched from an IdP.

``entra`` uses msal (one long-lived ConfidentialClientApplication per
identity); ``oidc`` speaks to any provider found through its discovery
document. Both return the raw access token and never log it.
"""

from __future__ import annotations

from agent.config import Settings
from agent.providers.base import Provider

__all__ = ["Provider", "make_provider"]


def make_provider(settings: Settings) -> Provider:
    """The provider that ``settings.provider`` names."""
    if settings.provider == "entra":
        from agent.providers.entra import EntraProvider

        return EntraProvider(settings)
    from agent.providers.oidc import OidcProvider

    return OidcProvider(settings)
