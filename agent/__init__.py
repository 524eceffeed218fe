"""webid-agent: short-lived AWS credentials from an external OIDC identity provider.

The engine (this package) fetches a web identity token with client credentials,
keeps it fresh in a file and reports its health. It knows nothing about
orchestrators: the injector plugins in ``injectors`` wire it into Kubernetes,
Nomad and Docker using only the names re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"
