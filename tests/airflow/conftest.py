"""Fixtures of the Airflow example tests: the testkit fakes started as processes
(`syncctl-fakes serve …`), a throwaway AIRFLOW_HOME with a migrated metadata database, and the
worker environment the example DAGs expect (what the `syncctl-credentials` Secret gives a real
worker), pointing at the fakes. scripts/test-airflow.sh builds the binaries and the venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "airflow"
BIN = Path(os.environ.get("SYNCCTL_BIN_DIR", REPO / "target" / "debug"))


def _serve(service: str, logs: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [str(BIN / "syncctl-fakes"), "serve", service],
        stdout=subprocess.PIPE,
        stderr=open(logs / f"{service}.log", "w"),
        text=True,
    )
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), f"syncctl-fakes serve {service} printed {url!r}"
    return proc, url


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """The environment for `airflow` processes: Airflow's home, the DAG folder, and the
    workers' service settings (the fakes' URLs and demo credentials)."""
    home = tmp_path_factory.mktemp("airflow-home")
    logs = tmp_path_factory.mktemp("fake-logs")
    fakes = {name: _serve(name, logs) for name in ("airbyte", "databricks", "snowflake")}
    airbyte, databricks, snowflake = (fakes[n][1] for n in ("airbyte", "databricks", "snowflake"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "AIRBYTE", "DATABRICKS", "SNOWFLAKE", "SYNCCTL_"))
    }
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONPATH": str(EXAMPLES),
            # What the syncctl-credentials Secret gives a real worker, here for the fakes.
            "AIRBYTE_API_URL": airbyte,
            "AIRBYTE_API_USERNAME": "airbyte",
            "AIRBYTE_API_PASSWORD": "password",
            "AIRBYTE_STRIPE_CONNECTION_ID": "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01",
            "AIRBYTE_HUBSPOT_CONNECTION_ID": "0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02",
            "AIRBYTE_SALESFORCE_CONNECTION_ID": "a3f9c2d4-7e1b-4f6a-b5c8-1d2e3f4a5b03",
            "DATABRICKS_HOST": databricks,
            "DATABRICKS_TOKEN": "dapi-demo-token",
            "SNOWFLAKE_HOST": snowflake,
            "SNOWFLAKE_ACCOUNT": "DEMO-ACCT",
            "SNOWFLAKE_USER": "SYNCCTL",
            "SNOWFLAKE_AUTHENTICATOR": "programmatic_access_token",
            "SNOWFLAKE_TOKEN": "demo-pat-token",
            "SYNCCTL_STATE_DIR": str(home / "syncctl-state"),
            "SYNCCTL_NO_PROGRESS": "1",
        }
    )
    migrate = subprocess.run(
        ["airflow", "db", "migrate"], env=env, capture_output=True, text=True, check=False
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    yield env
    for proc, _ in fakes.values():
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def quickstart(tmp_path) -> Path:
    """A copy of examples/quickstart (config + seed data) for the sync DAG."""
    qs = REPO / "examples" / "quickstart"
    shutil.copy(qs / "sync.yaml", tmp_path / "sync.yaml")
    (tmp_path / "work").mkdir()
    for name in ("contacts.csv", "crm.db"):
        shutil.copy(qs / "seed" / name, tmp_path / "work" / name)
    return tmp_path
