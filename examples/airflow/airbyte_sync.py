"""Sync Airbyte connections from Airflow with `syncctl airbyte trigger`.

Two ways to call it:

* BashOperator on a worker that has the `syncctl` binary. Airflow exports AIRFLOW_CTX_DAG_ID,
  AIRFLOW_CTX_DAG_RUN_ID and AIRFLOW_CTX_TASK_ID, so syncctl derives a stable idempotency key.
  With SYNCCTL_STATE_DIR on a shared volume, a retry of the task (new try number, same key)
  reattaches to the job the first try started instead of starting a second sync; without it,
  Airbyte's own "a sync is already running" answer makes the retry attach to the running job.
  The last stdout line is the JSON result, which becomes the task's XCom;
  `output_processor=json.loads` turns it into a dict.
* KubernetesPodOperator with the syncctl image. KPO does not export the Airflow context, so it
  is templated into the environment; the result goes to /airflow/xcom/return.json (pushed even
  when the pod fails) and a one-line reason to /dev/termination-log. When Airflow kills the
  task the pod gets SIGTERM: syncctl cancels the Airbyte jobs, waits up to 20 s for Airbyte to
  confirm, reports `cancelled` and exits 143.

Exit codes: 0 succeeded (or skipped), 1 a sync failed, 2 bad usage/config (do not retry),
3 auth, 4 transient, 5 wait timeout/deadline, 6 already running with --if-running fail,
143 SIGTERM. See docs/airbyte.md.
"""

from __future__ import annotations

import json

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.providers.standard.operators.bash import BashOperator

AIRBYTE_ENV = {
    # The seed's setup: Airbyte OSS config API with basic auth. AIRBYTE_API_USERNAME and
    # AIRBYTE_API_PASSWORD come from the worker's environment (append_env=True keeps them).
    "AIRBYTE_API_URL": "http://airbyte-server.integration.svc.cluster.local:8000",
    "AIRBYTE_STRIPE_CONNECTION_ID": "6c1d8a6e-0f5b-4c57-9a4c-2b0d4d1c9a01",
    "AIRBYTE_HUBSPOT_CONNECTION_ID": "0b7e2f1a-5d3c-4a8e-8f2b-9c6d1e4a7b02",
    "AIRBYTE_SALESFORCE_CONNECTION_ID": "a3f9c2d4-7e1b-4f6a-b5c8-1d2e3f4a5b03",
    # Remember which job each task started, on a volume every worker mounts.
    "SYNCCTL_STATE_DIR": "/shared/syncctl-state",
}

with DAG(
    dag_id="crm_ingest",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@hourly",
    catchup=False,
    default_args={"retries": 3, "retry_delay": pendulum.duration(minutes=5)},
) as dag:
    # Three syncs in parallel in one task; the task fails if any of them fails, and the XCom
    # says which one and why (data.jobs[].failure_reason).
    sync_crm = BashOperator(
        task_id="sync_crm",
        bash_command=(
            "syncctl airbyte trigger"
            " --connection stripe --connection hubspot --connection salesforce"
            " --poll-interval 10s"
            " --deadline 50m"  # cancel syncs still running after 50 min (before the next hour)
        ),
        env=AIRBYTE_ENV,
        append_env=True,
        output_processor=json.loads,  # XCom = the result dict: data.jobs, data.succeeded, …
        execution_timeout=pendulum.duration(hours=1),
    )

    # When the previous hour's sync is still running, skip this hour instead of failing:
    # --if-running skip reports status "skipped", and exit 99 makes BashOperator skip the task.
    sync_stripe_or_skip = BashOperator(
        task_id="sync_stripe_or_skip",
        bash_command=(
            "syncctl airbyte trigger --connection stripe"
            " --if-running skip --noop-exit-code 99"
        ),
        env=AIRBYTE_ENV,
        append_env=True,
        output_processor=json.loads,
    )

    # Downstream tasks read the result from the XCom.
    report = BashOperator(
        task_id="report",
        bash_command=(
            "echo 'synced {{ ti.xcom_pull(task_ids=\"sync_crm\")[\"data\"][\"succeeded\"] }}"
            " connections; jobs"
            " {{ ti.xcom_pull(task_ids=\"sync_crm\")[\"data\"][\"jobs\"] | map(attribute=\"job_id\") | list }}'"
        ),
    )

    # Kubernetes: Airbyte 1.x public API with client credentials from a Kubernetes secret,
    # the connection looked up by its exact name.
    sync_in_pod = KubernetesPodOperator(
        task_id="sync_hubspot_pod",
        name="syncctl-airbyte-trigger",
        image="ghcr.io/example/syncctl:latest",
        cmds=["syncctl"],
        arguments=[
            "airbyte",
            "trigger",
            "--connection-name",
            "HubSpot → Postgres",
            "--wait-timeout",
            "45m",  # stop waiting (exit 5) but leave the sync running
            "--result-file",
            "/airflow/xcom/return.json",
            "--termination-log",
            "/dev/termination-log",
        ],
        env_vars={
            "AIRBYTE_API_URL": "http://airbyte-server.integration.svc.cluster.local:8000",
            # KPO does not pass the Airflow context: template it for the idempotency key.
            "AIRFLOW_CTX_DAG_ID": "{{ dag.dag_id }}",
            "AIRFLOW_CTX_DAG_RUN_ID": "{{ run_id }}",
            "AIRFLOW_CTX_TASK_ID": "{{ task.task_id }}",
            "AIRFLOW_CTX_TRY_NUMBER": "{{ ti.try_number }}",
        },
        secrets=[
            Secret("env", "AIRBYTE_CLIENT_ID", "airbyte-application", "client_id"),
            Secret("env", "AIRBYTE_CLIENT_SECRET", "airbyte-application", "client_secret"),
        ],
        do_xcom_push=True,
        termination_grace_period=30,  # syncctl needs < 30 s to cancel and report
    )

    # Mapped tasks share AIRFLOW_CTX_* (Airflow exports no map index): give each its own key.
    sync_per_source = BashOperator.partial(
        task_id="sync_per_source",
        env=AIRBYTE_ENV,
        append_env=True,
        output_processor=json.loads,
    ).expand(
        bash_command=[
            f"syncctl airbyte trigger --connection {name}"
            " --idempotency-key 'crm_ingest:{{ run_id }}:sync_per_source:{{ ti.map_index }}'"
            for name in ("stripe", "hubspot", "salesforce")
        ],
    )

    sync_crm >> report
