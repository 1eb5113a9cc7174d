"""Run the example study from Python (what ``breedclf tune examples/tuning/study.yaml`` does).

uv run python examples/tuning/run_study.py --trials 4
"""

from __future__ import annotations

import sys
from pathlib import Path

from breedclf.tuning import Study


def main(trials: int) -> None:
    study = Study.from_yaml(Path(__file__).with_name("study.yaml"), {"trials": trials})
    best = study.optimize()
    print(f"best trial {best.number}: valid_acc {best.value:.4f} with {best.params}")
    print(f"retrain it with: breedclf train {best.config_path}")
    print(f"serve its model: breedclf serve {best.model_dir}")
    print(f"report: {study.study_dir / 'report.html'}")


if __name__ == "__main__":
    main(int(sys.argv[sys.argv.index("--trials") + 1]) if "--trials" in sys.argv else 12)
