"""The example DAGs in examples/airflow run for real: every file imports into a DagBag with no
errors, and `airflow dags test` runs each BashOperator DAG end to end against the testkit fakes,
with the real syncctl binary, asserting the task states and the XCom values Airflow stored."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLES

BASH_DAGS = ["crm_ingest", "daily_etl", "events_daily", "data_sync_unified"]
POD_DAGS = [f"{d}_k8s" for d in BASH_DAGS]


def test_every_example_dag_imports_without_errors(airflow_env, monkeypatch):
    for k, v in airflow_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES), bundle_path=EXAMPLES)
    assert bag.import_errors == {}, bag.import_errors
    assert set(bag.dag_ids) == set(BASH_DAGS + POD_DAGS)
    for dag_id in POD_DAGS:
        dag = bag.get_dag(dag_id)
        for task in dag.tasks:
            assert task.task_type.endswith("KubernetesPodOperator"), (dag_id, task.task_id)
            op = task.partial_kwargs if hasattr(task, "partial_kwargs") else vars(task)
            assert op.get("do_xcom_push", getattr(task, "do_xcom_push", None)), (dag_id, task.task_id)
            secrets = op.get("secrets") or getattr(task, "secrets", [])
            names = {s.secret for s in secrets}
            assert "airflow-secrets" in names, (dag_id, names)
    for dag_id in BASH_DAGS:
        for task in bag.get_dag(dag_id).tasks:
            assert task.on_failure_callback, (dag_id, task.task_id, "no failure alert")


def dags_test(env, dag_id: str, day: str, conf: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ["airflow", "dags", "test", dag_id, day]
    if conf is not None:
        cmd[3:3] = ["--conf", json.dumps(conf)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


def last_run(env, dag_id: str) -> tuple[dict[str, str], dict[str, object]]:
    """Task states and return_value XComs of the DAG's latest run, from Airflow's database."""
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    (run_id,) = db.execute(
        "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
    ).fetchone()
    states = dict(
        db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    )
    xcoms = {}
    for task_id, value in db.execute(
        "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? AND key = 'return_value'",
        (dag_id, run_id),
    ):
        # Airflow 3 stores XCom values as JSON (text or bytes, depending on the database).
        xcoms[task_id] = json.loads(value)
    return states, xcoms


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def assert_result(xcom, command: str, status: str = "succeeded"):
    assert xcom["schema"] == "syncctl.result/v1", xcom
    assert (xcom["command"], xcom["status"], xcom["exit_code"]) == (command, status, 0), xcom


def test_airbyte_dag_syncs_three_connections_in_parallel(airflow_env):
    r = dags_test(airflow_env, "crm_ingest", today())
    states, xcoms = last_run(airflow_env, "crm_ingest")
    assert states == {"sync_crm": "success", "sync_stripe_or_skip": "success", "report": "success"}, (
        states,
        r.stdout[-4000:],
        r.stderr[-4000:],
    )
    result = xcoms["sync_crm"]
    assert_result(result, "airbyte trigger")
    jobs = result["data"]["jobs"]
    assert {j["connection_id"] for j in jobs} == {
        airflow_env[f"AIRBYTE_{name}_CONNECTION_ID"] for name in ("STRIPE", "HUBSPOT", "SALESFORCE")
    }
    assert all(j["status"] == "succeeded" for j in jobs), jobs
    assert result["data"]["succeeded"] == 3
    assert result["idempotency_key"], "derived from Airflow's context"
    assert xcoms["report"] == "synced 3 connections"


def test_databricks_dag_runs_the_job_with_the_date(airflow_env):
    day = today()
    r = dags_test(airflow_env, "daily_etl", day)
    states, xcoms = last_run(airflow_env, "daily_etl")
    assert states == {"run_nightly_etl": "success", "report_run": "success"}, (states, r.stderr[-4000:])
    result = xcoms["run_nightly_etl"]
    assert_result(result, "dbx run-now")
    assert result["data"]["result_state"] == "SUCCESS", result["data"]
    assert {t["task_key"] for t in result["data"]["tasks"]} == {"ingest", "transform"}
    assert xcoms["report_run"] == f"run {result['data']['run_id']} succeeded"


def test_snowflake_dag_loads_the_partition_of_ds(airflow_env):
    day = today()
    r = dags_test(airflow_env, "events_daily", day)
    states, xcoms = last_run(airflow_env, "events_daily")
    assert states == {"copy_events": "success", "report_rows": "success"}, (states, r.stderr[-4000:])
    result = xcoms["copy_events"]
    assert_result(result, "snowflake copy")
    files = result["data"]["files"]
    assert files and all(f"date={day}/" in f["file"] for f in files), files
    assert result["data"]["totals"]["rows_loaded"] == 600  # parts of 100, 200 and 300 rows
    assert xcoms["report_rows"] == "loaded 600 rows"


@pytest.mark.parametrize("dry_run", [True, False])
def test_sync_dag_maps_its_params_to_flags(airflow_env, quickstart, dry_run):
    conf = {
        "config": str(quickstart / "sync.yaml"),
        "source_type": "csv",
        "target_type": "sqlite",
        "direction": "bidirectional",
        "batch_size": 2,
        "dry_run": dry_run,
    }
    before = (quickstart / "work" / "contacts.csv").read_bytes()
    r = dags_test(airflow_env, "data_sync_unified", today(), conf)
    states, xcoms = last_run(airflow_env, "data_sync_unified")
    assert states == {"check": "success", "sync": "success"}, (states, r.stderr[-4000:])
    assert_result(xcoms["check"], "sync check")
    result = xcoms["sync"]
    assert_result(result, "sync run", "planned" if dry_run else "succeeded")
    assert result["dry_run"] is dry_run
    data = result["data"]
    assert data["target"]["created"] == 3 and data["source"]["created"] == 2, data
    if dry_run:
        assert (quickstart / "work" / "contacts.csv").read_bytes() == before
        assert not (quickstart / "work" / "state.db").exists()
    else:
        assert result["run_id"] == data["run"], "one id per run: sync show takes run_id"
        show = subprocess.run(
            ["syncctl", "sync", "show", result["run_id"], "--config", conf["config"]],
            env=airflow_env, capture_output=True, text=True, check=False,
        )
        assert show.returncode == 0, show.stdout[-2000:]
