"""``python -m aligngym`` runs the command-line interface."""

from aligngym.runs.cli import main

raise SystemExit(main())
