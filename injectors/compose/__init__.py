"""Docker Compose injector: wires the webid-agent sidecar into a Compose file.

Written as a third-party plugin would be: it uses only names exported by
``agent`` and registers itself through the ``webid_agent.injectors`` entry
point (see ``docs/plugins.md``).
"""
