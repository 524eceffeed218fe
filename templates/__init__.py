"""Jinja templates for every injected container, task and env entry.

Installed as the package ``webid_agent_templates``; one folder per platform.
"""
