"""Injector plugins: each wires the engine into one platform.

Each subpackage is a plugin registered under the ``webid_agent.injectors``
entry-point group and uses only the engine's public API (``agent.api``).
Injectors never import each other.
"""
