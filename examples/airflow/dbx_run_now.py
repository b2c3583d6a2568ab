"""Run a Databricks job from Airflow with `syncctl dbx run-now`.

Two ways to call it:

* BashOperator on a worker that has the `syncctl` binary. Airflow exports AIRFLOW_CTX_DAG_ID,
  AIRFLOW_CTX_DAG_RUN_ID and AIRFLOW_CTX_TASK_ID, so syncctl derives a stable idempotency key:
  a retry of the task (new try number, same key) attaches to the run the first try started
  instead of starting a second one. The last stdout line is the JSON result, which becomes the
  task's XCom; `output_processor=json.loads` turns it into a dict.
* KubernetesPodOperator with the syncctl image. KPO does not export the Airflow context, so it
  is templated into the environment; the result goes to /airflow/xcom/return.json (pushed even
  when the pod fails) and a one-line reason to /dev/termination-log. When Airflow kills the
  task the pod gets SIGTERM: syncctl cancels the Databricks run, waits up to 20 s to see it
  stop, reports `cancelled` and exits 143.

Exit codes: 0 succeeded, 1 the run failed, 2 bad usage/config (do not retry), 3 auth, 4
transient, 5 wait timeout/deadline, 6 conflict, 143 SIGTERM. See docs/dbx.md.
"""

from __future__ import annotations

import json

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.standard.operators.bash import BashOperator

with DAG(
    dag_id="daily_etl",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@daily",
    catchup=False,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
) as dag:
    # Worker-local binary. The token comes from the worker's environment (or an --env-file
    # mounted by your secrets manager); append_env keeps AIRFLOW_CTX_* and DATABRICKS_*.
    run_nightly = BashOperator(
        task_id="run_nightly_etl",
        bash_command=(
            "syncctl dbx run-now"
            " --job-name nightly-etl"
            " --job-param date={{ ds }}"
            " --notebook-param mode=incremental"
            " --poll-interval 30s"
            " --deadline 3h"  # cancel the Databricks run if it is still going after 3 h
            " --rerun-failed"  # a retry repairs the failed run instead of reporting it again
        ),
        env={"DATABRICKS_HOST": "https://dbc-1234.cloud.databricks.com"},
        append_env=True,
        output_processor=json.loads,  # XCom = the result dict: data.run_id, data.tasks, …
        execution_timeout=pendulum.duration(hours=4),
    )

    # Downstream tasks read the run from the XCom.
    report_run = BashOperator(
        task_id="report_run",
        bash_command=(
            "echo 'run {{ ti.xcom_pull(task_ids=\"run_nightly_etl\")[\"data\"][\"run_id\"] }}"
            " at {{ ti.xcom_pull(task_ids=\"run_nightly_etl\")[\"data\"][\"run_page_url\"] }}'"
        ),
    )

    # Kubernetes: the same command in a pod, OAuth M2M credentials from a Kubernetes secret.
    run_in_pod = KubernetesPodOperator(
        task_id="run_nightly_etl_pod",
        name="syncctl-dbx-run-now",
        image="ghcr.io/example/syncctl:latest",
        cmds=["syncctl"],
        arguments=[
            "dbx",
            "run-now",
            "--job-id",
            "12345",
            "--job-param",
            "date={{ ds }}",
            "--wait-timeout",
            "2h",  # stop waiting (exit 5) but leave the run going
            "--result-file",
            "/airflow/xcom/return.json",
            "--termination-log",
            "/dev/termination-log",
        ],
        env_vars={
            "DATABRICKS_HOST": "https://dbc-1234.cloud.databricks.com",
            # KPO does not pass the Airflow context: template it for the idempotency key.
            "AIRFLOW_CTX_DAG_ID": "{{ dag.dag_id }}",
            "AIRFLOW_CTX_DAG_RUN_ID": "{{ run_id }}",
            "AIRFLOW_CTX_TASK_ID": "{{ task.task_id }}",
            "AIRFLOW_CTX_TRY_NUMBER": "{{ ti.try_number }}",
        },
        secrets=[
            Secret("env", "DATABRICKS_CLIENT_ID", "databricks-sp", "client_id"),
            Secret("env", "DATABRICKS_CLIENT_SECRET", "databricks-sp", "client_secret"),
        ],
        do_xcom_push=True,
        termination_grace_period=30,  # syncctl needs < 30 s to cancel and report
    )

    # Mapped tasks share AIRFLOW_CTX_* (Airflow exports no map index): give each its own key.
    run_per_region = BashOperator.partial(
        task_id="run_per_region",
        append_env=True,
        output_processor=json.loads,
    ).expand(
        bash_command=[
            "syncctl dbx run-now --job-name regional-etl --job-param region=eu"
            " --idempotency-key 'daily_etl:{{ run_id }}:run_per_region:{{ ti.map_index }}'",
            "syncctl dbx run-now --job-name regional-etl --job-param region=us"
            " --idempotency-key 'daily_etl:{{ run_id }}:run_per_region:{{ ti.map_index }}'",
        ],
    )

    run_nightly >> report_run
