"""How every benchmark script starts its ``main``: a user error (a run folder that is not there, a
config or table it cannot read) ends in one line and exit code 2, as in ``hynas``, not a traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from search_space.errors import EXIT_USAGE, HynasError


def run(main: Callable[[], None]) -> None:
    script = Path(sys.argv[0]).name
    try:
        main()
    except HynasError as err:
        print(f"{script}: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except FileNotFoundError as err:
        print(f"{script}: error: {err.filename}: no such file", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
