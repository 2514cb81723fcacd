"""How every benchmark script starts its ``main``: a user error (a run folder that is not there, a
config or table it cannot read) ends in one line and exit code 2, as in ``hynas``, not a traceback."""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from search_space.errors import EXIT_USAGE, HynasError, reader_gone


def run(main: Callable[[], None]) -> None:
    script = Path(sys.argv[0]).name
    try:
        main()
        sys.stdout.flush()  # a reader gone early (`... | head`) shows here, not at interpreter exit
    except BrokenPipeError:
        raise SystemExit(reader_gone()) from None
    except HynasError as err:
        print(f"{script}: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    except FileNotFoundError as err:
        print(f"{script}: error: {err.filename}: no such file", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
