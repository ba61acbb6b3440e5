"""The error a command raises for something the user can fix: `daemon.cli` prints it as one line, exit status 2."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; printed as one line, exit status 2."""
