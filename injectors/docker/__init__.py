"""The Docker injector: ``webid-agent docker run`` with a token sidecar."""
