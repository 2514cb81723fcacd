"""Storage URLs as messages may show them: without their password.

A light module (no Optuna) so that the CLI can clean its command line before anything heavy is imported.
"""
from __future__ import annotations

import re

# postgresql://user:password@host/db: the password is kept out of messages and the run's log, which are pasted
# into bug reports and travel with the run folder
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@]+@", re.IGNORECASE)


def hide_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(r"\1***@", text)
