"""Two workers (two "machines": separate study folders) finish one study on a real PostgreSQL."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.tuning.conftest import tiny_experiment, write_study

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
pytestmark = pytest.mark.skipif(
    not PG_BIN or not Path(PG_BIN[-1], "initdb").exists(),
    reason="PostgreSQL server binaries are not installed (apt-get install postgresql)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(args: list[str]) -> list[str]:
    # initdb refuses to run as root: run the server as the unprivileged postgres user then.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL server in a temp folder, on 127.0.0.1 only."""
    bin_dir = Path(PG_BIN[-1])
    root = tmp_path_factory.mktemp("pg")
    data = root / "data"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root needs runuser to start PostgreSQL as postgres")
        shutil.chown(root, "postgres")
        for parent in root.parents:  # the postgres user must reach its folder
            if parent.stat().st_mode & 0o001 == 0:
                parent.chmod(parent.stat().st_mode | 0o001)
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )


@pytest.mark.slow
def test_two_workers_share_one_study_through_postgres(
    postgres_url: str, textures_root: Path, tmp_path: Path
) -> None:
    workers = []
    for machine in ("a", "b"):
        path = write_study(
            tmp_path / machine / "study.yaml",
            experiment=tiny_experiment(textures_root),
            study_dir=str(tmp_path / machine / "out"),
            name="shared",
            trials=4,
            sampler="tpe",
            pruner={"name": "none"},
            parameters={
                "optimizer.lr": {"type": "continuous", "low": 1e-3, "high": 1e-1, "scaling": "log"}
            },
        )
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "breedclf.cli",
                    "tune",
                    str(path),
                    "--storage",
                    postgres_url,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        time.sleep(1.0)  # the first creates the study; the second joins it
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    finally:
        storage.engine.dispose()  # close its connections (pytest turns leaks into errors)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 4
    ran_on = {
        machine: sorted(p.name for p in (tmp_path / machine / "out" / "trials").iterdir())
        for machine in ("a", "b")
    }
    assert ran_on["a"] and ran_on["b"], ran_on  # both machines trained trials
    assert set(ran_on["a"]).isdisjoint(ran_on["b"])
