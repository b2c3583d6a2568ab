"""Load a day of data-lake files into Snowflake with `syncctl snowflake copy`.

`events_daily` (BashOperator): `{{ ds }}` becomes `--date`, so each DAG run loads its own
partition (`s3://…/events/date=YYYY-MM-DD/`), and a backfill of old days gets
LOAD_UNCERTAIN_FILES automatically. The submit carries a request id derived from the task, so a
retry never runs a COPY twice. Nothing new to load exits 99 (`--noop-exit-code 99`), which
BashOperator turns into a skipped task. The XCom lists every file with its row counts.

`events_daily_k8s` (KubernetesPodOperator): the same load through an external stage, key-pair
credentials mounted from the `syncctl-credentials` Secret.

Worker environment: SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and a key (SNOWFLAKE_PRIVATE_KEY_PATH) or
SNOWFLAKE_TOKEN with SNOWFLAKE_AUTHENTICATOR, or AIRFLOW_CONN_SNOWFLAKE. Exit codes: 0 loaded,
1 Snowflake refused it or files did not load, 2 bad usage/config, 3 auth, 4 transient, 5
--deadline passed (statement cancelled), 99 nothing new, 143 SIGTERM. See docs/snowflake.md.
"""

from __future__ import annotations

import json

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.standard.operators.bash import BashOperator
from syncctl_common import ALERT_SECRETS, IMAGE, POD_CONTEXT_ENV, POD_RESULT_ARGS, notify_failure

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": pendulum.duration(minutes=5),
    "on_failure_callback": notify_failure,
}

with DAG(
    dag_id="events_daily",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@daily",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "snowflake"],
) as events_daily:
    copy_events = BashOperator(
        task_id="copy_events",
        bash_command=(
            "syncctl snowflake copy"
            " --table RAW.EVENTS.EVENTS"
            " --from s3://biz-datalake-dev/events/"
            " --date {{ ds }}"
            " --file-format 'TYPE=JSON STRIP_OUTER_ARRAY=TRUE'"
            " --storage-integration DATALAKE_INT"
            " --deadline 45m"  # cancel the COPY if it is still running after 45 minutes
            " --noop-exit-code 99"  # nothing new to load: mark the task skipped
        ),
        append_env=True,
        output_processor=json.loads,
        skip_on_exit_code=99,
        execution_timeout=pendulum.duration(hours=1),
    )

    report_rows = BashOperator(
        task_id="report_rows",
        bash_command=(
            "echo 'loaded {{ ti.xcom_pull(task_ids=\"copy_events\")[\"data\"][\"totals\"][\"rows_loaded\"] }} rows'"
        ),
    )

    copy_events >> report_rows

with DAG(
    dag_id="events_daily_k8s",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@daily",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "snowflake", "kubernetes"],
) as events_daily_k8s:
    KubernetesPodOperator(
        task_id="copy_events",
        name="syncctl-snowflake-copy",
        image=IMAGE,
        cmds=["syncctl"],
        arguments=[
            "snowflake",
            "copy",
            "--table",
            "RAW.EVENTS.EVENTS",
            "--from",
            "@RAW.EVENTS.LAKE/events/",  # an external stage carries its own credentials
            "--date",
            "{{ ds }}",
            "--file-format-name",
            "RAW.EVENTS.JSON_FMT",
            *POD_RESULT_ARGS,
        ],
        env_vars={
            **POD_CONTEXT_ENV,
            "SNOWFLAKE_ACCOUNT": "myorg-myaccount",
            "SNOWFLAKE_USER": "SYNCCTL_LOADER",
            "SNOWFLAKE_PRIVATE_KEY_PATH": "/secrets/snowflake/snowflake-private-key",
            "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
        },
        secrets=[Secret("volume", "/secrets/snowflake", "syncctl-credentials")] + ALERT_SECRETS,
        do_xcom_push=True,
        termination_grace_period=30,
    )
