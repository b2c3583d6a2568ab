"""Load a day's partition of the data lake into Snowflake with `syncctl snowflake copy`.

The seed's layout: JSON files under s3://biz-datalake-dev/events/date=YYYY-MM-DD/, loaded into
RAW.EVENTS.EVENTS. `{{ ds }}` is the DAG run's logical date, so each run loads its own folder
(Airflow's own CopyFromExternalStageToSnowflakeOperator cannot template the prefix).

Two ways to call it:

* BashOperator on a worker that has the `syncctl` binary. Airflow exports AIRFLOW_CTX_DAG_ID,
  AIRFLOW_CTX_DAG_RUN_ID and AIRFLOW_CTX_TASK_ID, so syncctl derives a stable `requestId`: if
  a try's answer is lost or the worker dies, the next try resubmits with `retry=true` and gets
  the COPY the first try ran instead of running it again. The last stdout line is the JSON
  result; `output_processor=json.loads` makes the XCom a dict (data.files, data.totals, …).
  A run that finds nothing new ("Copy executed with 0 files processed.") is status `skipped`;
  `--noop-exit-code 99` turns that into a skipped task.
* KubernetesPodOperator with the syncctl image. KPO does not export the Airflow context, so it
  is templated into the environment; the result goes to /airflow/xcom/return.json (pushed
  even when the pod fails) and a one-line reason to /dev/termination-log. When Airflow kills
  the task the pod gets SIGTERM: syncctl cancels the running statement, reports `cancelled`
  and exits 143.

Exit codes: 0 loaded, 1 Snowflake refused the statement or files did not load, 2 bad
usage/config (do not retry), 3 auth, 4 transient, 5 --deadline passed (statement cancelled),
99 nothing new (with --noop-exit-code 99), 143 SIGTERM. See docs/snowflake.md.
"""

from __future__ import annotations

import json

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.standard.operators.bash import BashOperator

with DAG(
    dag_id="events_daily",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@daily",
    catchup=True,  # backfills of days older than 64 days get LOAD_UNCERTAIN_FILES automatically
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=5)},
) as dag:
    # Worker-local binary. Credentials come from the worker's environment: the Airflow
    # connection AIRFLOW_CONN_SNOWFLAKE (account, user, private_key_content, warehouse, …) or
    # SNOWFLAKE_ACCOUNT / SNOWFLAKE_USER / SNOWFLAKE_PRIVATE_KEY_PATH; append_env keeps them
    # and AIRFLOW_CTX_*.
    copy_events = BashOperator(
        task_id="copy_events",
        bash_command=(
            "syncctl snowflake copy"
            " --table RAW.EVENTS.EVENTS"
            " --from s3://biz-datalake-dev/events/"
            " --date {{ ds }}"
            " --file-format 'TYPE=JSON STRIP_OUTER_ARRAY=TRUE'"
            " --storage-integration DATALAKE_INT"
            " --match-by-column-name CASE_INSENSITIVE"
            " --include-metadata SOURCE_FILE=METADATA\\$FILENAME"
            " --deadline 45m"  # cancel the COPY if it is still running after 45 minutes
            " --noop-exit-code 99"  # nothing new to load: mark the task skipped
        ),
        env={"SNOWFLAKE_WAREHOUSE": "LOAD_WH", "SNOWFLAKE_ROLE": "LOADER"},
        append_env=True,
        output_processor=json.loads,  # XCom = the result dict
        skip_on_exit_code=99,
        execution_timeout=pendulum.duration(hours=1),
    )

    # Downstream tasks read the per-file report from the XCom.
    report_rows = BashOperator(
        task_id="report_rows",
        bash_command=(
            "echo 'loaded {{ ti.xcom_pull(task_ids=\"copy_events\")[\"data\"][\"totals\"][\"rows_loaded\"] }}"
            " rows from {{ ti.xcom_pull(task_ids=\"copy_events\")[\"data\"][\"totals\"][\"files_loaded\"] }} files'"
        ),
    )

    # A cheap check before a backfill: report the rows that would fail, load nothing.
    validate_events = BashOperator(
        task_id="validate_events",
        bash_command=(
            "syncctl snowflake copy --validate"
            " --table RAW.EVENTS.EVENTS --from s3://biz-datalake-dev/events/ --date {{ ds }}"
            " --file-format 'TYPE=JSON' --storage-integration DATALAKE_INT"
        ),
        append_env=True,
        output_processor=json.loads,
    )

    # Kubernetes: the same load in a pod; key-pair credentials from a Kubernetes secret.
    copy_events_pod = KubernetesPodOperator(
        task_id="copy_events_pod",
        name="syncctl-snowflake-copy",
        image="ghcr.io/example/syncctl:latest",
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
            "--on-error",
            "CONTINUE",  # partially loaded files become warnings instead of a failure
            "--result-file",
            "/airflow/xcom/return.json",
            "--termination-log",
            "/dev/termination-log",
        ],
        env_vars={
            "SNOWFLAKE_ACCOUNT": "myorg-myaccount",
            "SNOWFLAKE_USER": "SYNCCTL_LOADER",
            "SNOWFLAKE_PRIVATE_KEY_PATH": "/secrets/snowflake/rsa_key.p8",
            "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
            # KPO does not pass the Airflow context: template it for the request id.
            "AIRFLOW_CTX_DAG_ID": "{{ dag.dag_id }}",
            "AIRFLOW_CTX_DAG_RUN_ID": "{{ run_id }}",
            "AIRFLOW_CTX_TASK_ID": "{{ task.task_id }}",
            "AIRFLOW_CTX_TRY_NUMBER": "{{ ti.try_number }}",
        },
        secrets=[
            Secret("volume", "/secrets/snowflake", "snowflake-loader-key"),
            Secret("env", "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "snowflake-loader-key", "passphrase"),
        ],
        do_xcom_push=True,
        termination_grace_period=30,  # syncctl cancels the statement and reports well within it
    )

    validate_events >> copy_events >> report_rows
