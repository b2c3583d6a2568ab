"""Sync Airbyte connections from Airflow with `syncctl airbyte trigger`.

`crm_ingest` (BashOperator, a worker with the syncctl binary): three connections sync in
parallel in one task; the task fails if any fails and the XCom says which one and why.
Airflow exports AIRFLOW_CTX_DAG_ID/DAG_RUN_ID/TASK_ID, so syncctl derives a stable idempotency
key: a retry (new try number, same key) reattaches to the job the first try started; with
SYNCCTL_STATE_DIR on a shared volume that works even after the worker died. The last stdout
line is the JSON result; `output_processor=json.loads` makes the XCom a dict.

`crm_ingest_k8s` (KubernetesPodOperator, the syncctl image): the same in a pod, public API
credentials from the `syncctl-credentials` Secret; the result goes to
/airflow/xcom/return.json (pushed even when the pod fails). When Airflow kills the task the pod
gets SIGTERM: syncctl cancels the Airbyte jobs, waits for Airbyte to confirm, reports
`cancelled` and exits 143.

Worker environment (from the `syncctl-credentials` Secret, see syncctl_common.py):
AIRBYTE_API_URL, AIRBYTE_API_USERNAME, AIRBYTE_API_PASSWORD, AIRBYTE_<NAME>_CONNECTION_ID.
Exit codes: 0 succeeded (99 skipped with --noop-exit-code 99), 1 a sync failed, 2 bad
usage/config (do not retry), 3 auth, 4 transient, 5 wait timeout/deadline, 6 already running
with --if-running fail, 143 SIGTERM. See docs/airbyte.md and docs/orchestrators.md.
"""

from __future__ import annotations

import json

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.bash import BashOperator
from syncctl_common import ALERT_SECRETS, IMAGE, POD_CONTEXT_ENV, POD_RESULT_ARGS, credentials, notify_failure

CONNECTIONS = ("stripe", "hubspot", "salesforce")

DEFAULT_ARGS = {
    "retries": 3,
    "retry_delay": pendulum.duration(minutes=5),
    "on_failure_callback": notify_failure,
}

with DAG(
    dag_id="crm_ingest",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@hourly",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "airbyte"],
) as crm_ingest:
    sync_crm = BashOperator(
        task_id="sync_crm",
        bash_command=(
            "syncctl airbyte trigger "
            + " ".join(f"--connection {name}" for name in CONNECTIONS)
            + " --poll-interval 2s --max-poll-interval 30s"
            " --deadline 50m"  # cancel syncs still running after 50 min (before the next hour)
        ),
        append_env=True,  # AIRBYTE_* from the worker, AIRFLOW_CTX_* from Airflow
        output_processor=json.loads,  # XCom = the result dict: data.jobs, data.succeeded, ...
        execution_timeout=pendulum.duration(hours=1),
    )

    # When the previous hour's sync of a connection is still running, skip instead of failing:
    # --if-running skip reports status "skipped", and exit 99 makes BashOperator skip the task.
    sync_stripe_or_skip = BashOperator(
        task_id="sync_stripe_or_skip",
        bash_command="syncctl airbyte trigger --connection stripe --if-running skip --noop-exit-code 99 --poll-interval 2s",
        append_env=True,
        output_processor=json.loads,
        skip_on_exit_code=99,
    )

    # Downstream tasks read the result from the XCom.
    report = BashOperator(
        task_id="report",
        bash_command=(
            "echo 'synced {{ ti.xcom_pull(task_ids=\"sync_crm\")[\"data\"][\"succeeded\"] }} connections'"
        ),
    )

    sync_crm >> [sync_stripe_or_skip, report]

with DAG(
    dag_id="crm_ingest_k8s",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@hourly",
    catchup=False,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "airbyte", "kubernetes"],
) as crm_ingest_k8s:
    # One pod per connection, in parallel (dynamic task mapping); each has its own
    # idempotency key, because mapped tasks share AIRFLOW_CTX_*.
    KubernetesPodOperator.partial(
        task_id="sync_connection",
        name="syncctl-airbyte-trigger",
        image=IMAGE,
        cmds=["syncctl"],
        env_vars={
            **POD_CONTEXT_ENV,
            "AIRBYTE_API_URL": "http://airbyte-server.integration.svc.cluster.local:8000",
        },
        secrets=credentials(
            "AIRBYTE_CLIENT_ID",
            "AIRBYTE_CLIENT_SECRET",
            *(f"AIRBYTE_{name.upper()}_CONNECTION_ID" for name in CONNECTIONS),
        )
        + ALERT_SECRETS,
        do_xcom_push=True,
        termination_grace_period=30,  # syncctl needs < 30 s to cancel and report
    ).expand(
        arguments=[
            [
                "airbyte",
                "trigger",
                "--connection",
                name,
                "--api",
                "public",
                "--wait-timeout",
                "45m",  # stop waiting (exit 5) but leave the sync running
                "--idempotency-key",
                "crm_ingest_k8s:{{ run_id }}:" + name,
                *POD_RESULT_ARGS,
            ]
            for name in CONNECTIONS
        ]
    )
