"""Run a Databricks job from Airflow with `syncctl dbx run-now`.

`daily_etl` (BashOperator): runs the job `nightly-etl` with the run's date as a job parameter,
waits, and reports every task; only SUCCESS exits 0 (unlike the Databricks CLI). Every trigger
carries an idempotency_token derived from AIRFLOW_CTX_*, so a retried task attaches to the run
its first try started (`"attached": true`) instead of starting a second one; `--rerun-failed`
makes a retry repair a failed run instead of reporting it again.

`daily_etl_k8s` (KubernetesPodOperator): the same in a pod, OAuth M2M credentials from the
`syncctl-credentials` Secret; SIGTERM (task killed) cancels the run and exits 143.

Worker environment: DATABRICKS_HOST with DATABRICKS_TOKEN, or DATABRICKS_CLIENT_ID and
DATABRICKS_CLIENT_SECRET. Exit codes: 0 succeeded, 1 the run failed, 2 bad usage/config, 3 auth,
4 transient, 5 wait timeout/deadline, 143 SIGTERM. See docs/dbx.md and docs/orchestrators.md.
"""

from __future__ import annotations

import json

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.bash import BashOperator
from syncctl_common import ALERT_SECRETS, IMAGE, POD_CONTEXT_ENV, POD_RESULT_ARGS, credentials, notify_failure

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": pendulum.duration(minutes=5),
    "on_failure_callback": notify_failure,
}

with DAG(
    dag_id="daily_etl",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@daily",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "databricks"],
) as daily_etl:
    run_nightly = BashOperator(
        task_id="run_nightly_etl",
        bash_command=(
            "syncctl dbx run-now"
            " --job-name nightly-etl"
            " --job-param date={{ ds }}"
            " --poll-interval 2s"
            " --deadline 3h"  # cancel the Databricks run if it is still going after 3 h
            " --rerun-failed"  # a retry repairs the failed run instead of reporting it again
        ),
        append_env=True,  # DATABRICKS_* from the worker, AIRFLOW_CTX_* from Airflow
        output_processor=json.loads,  # XCom = the result dict: data.run_id, data.tasks, ...
        execution_timeout=pendulum.duration(hours=4),
    )

    report_run = BashOperator(
        task_id="report_run",
        bash_command="echo 'run {{ ti.xcom_pull(task_ids=\"run_nightly_etl\")[\"data\"][\"run_id\"] }} succeeded'",
    )

    run_nightly >> report_run

with DAG(
    dag_id="daily_etl_k8s",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@daily",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "databricks", "kubernetes"],
) as daily_etl_k8s:
    KubernetesPodOperator(
        task_id="run_nightly_etl",
        name="syncctl-dbx-run-now",
        image=IMAGE,
        cmds=["syncctl"],
        arguments=[
            "dbx",
            "run-now",
            "--job-name",
            "nightly-etl",
            "--job-param",
            "date={{ ds }}",
            "--wait-timeout",
            "2h",  # stop waiting (exit 5) but leave the run going
            *POD_RESULT_ARGS,
        ],
        env_vars={**POD_CONTEXT_ENV, "DATABRICKS_HOST": "https://dbc-1234.cloud.databricks.com"},
        secrets=credentials("DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET") + ALERT_SECRETS,
        do_xcom_push=True,
        termination_grace_period=30,
    )
