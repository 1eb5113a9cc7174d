"""Entry point of a trial process: ``python -m breedclf.tuning._worker TRIAL_DIR/job.json``.

Kept apart from :mod:`breedclf.tuning._trial` so that running it with ``-m`` never imports it
twice (the package imports ``_trial``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from breedclf.tuning._trial import write_result


def main(argv: list[str] | None = None) -> int:
    """Run the trial of ``job.json``; its outcome goes to ``result.json`` next to it."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m breedclf.tuning._worker TRIAL_DIR/job.json", file=sys.stderr)
        return 2
    write_result(Path(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
