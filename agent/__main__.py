"""``python -m agent`` runs the webid-agent command line."""

from agent.cli import main

main()
