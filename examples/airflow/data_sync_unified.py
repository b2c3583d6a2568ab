"""Two-way record sync from Airflow with `syncctl sync run`: the seed's `data_sync_unified`
DAG, whose params pick the pair of systems and how to sync them.

The params map one to one to flags: `source_type` -> `--source`, `target_type` -> `--target`,
`direction` -> `--direction`, `batch_size` -> `--batch-size`, `dry_run` -> `--dry-run`;
`config` names the sync's YAML (mapping, keys, rules; see docs/sync.md). Trigger it with other
values from the UI or `airflow dags trigger data_sync_unified -c '{"dry_run": true}'`.
A dry run reports `"dry_run": true` and writes nothing anywhere. The XCom is the result: counts
per side, conflicts, failures, and `run_id`, the id `syncctl sync show` takes.

A second run while one is still going exits 6 (conflict, lock held); mass deletes are refused
(exit 2) before anything is written. The state store (SYNCCTL_STATE_URL, PostgreSQL in
production) comes from the `syncctl-credentials` Secret.
"""

from __future__ import annotations

import json

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Param
from syncctl_common import ALERT_SECRETS, IMAGE, POD_CONTEXT_ENV, POD_RESULT_ARGS, credentials, notify_failure

PARAMS = {
    "config": Param("/opt/syncctl/syncs/contacts.yaml", type="string", description="the sync's YAML"),
    "source_type": Param("csv", type="string", description="source connector kind"),
    "target_type": Param("sqlite", type="string", description="target connector kind"),
    "direction": Param(
        "bidirectional", enum=["source_to_target", "target_to_source", "bidirectional"]
    ),
    "batch_size": Param(500, type="integer", minimum=1),
    "dry_run": Param(False, type="boolean"),
}

SYNC_ARGS = (
    " --config {{ params.config }}"
    " --source {{ params.source_type }} --target {{ params.target_type }}"
    " --direction {{ params.direction }} --batch-size {{ params.batch_size }}"
    "{{ ' --dry-run' if params.dry_run else '' }}"
)

DEFAULT_ARGS = {
    "retries": 2,
    "retry_delay": pendulum.duration(minutes=2),
    "on_failure_callback": notify_failure,
}

with DAG(
    dag_id="data_sync_unified",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@hourly",
    catchup=False,
    params=PARAMS,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "sync"],
) as data_sync_unified:
    # Validates the config and both systems first: every problem at once, exit 2 (no retry).
    check = BashOperator(
        task_id="check",
        bash_command="syncctl sync check" + SYNC_ARGS.replace("{{ ' --dry-run' if params.dry_run else '' }}", ""),
        append_env=True,
        output_processor=json.loads,
    )

    sync = BashOperator(
        task_id="sync",
        bash_command="syncctl sync run" + SYNC_ARGS,
        append_env=True,
        output_processor=json.loads,
        execution_timeout=pendulum.duration(minutes=50),
    )

    check >> sync

with DAG(
    dag_id="data_sync_unified_k8s",
    start_date=pendulum.datetime(2025, 10, 1, tz="UTC"),
    schedule="@hourly",
    catchup=False,
    params=PARAMS,
    default_args=DEFAULT_ARGS,
    tags=["syncctl", "sync", "kubernetes"],
) as data_sync_unified_k8s:
    KubernetesPodOperator(
        task_id="sync",
        name="syncctl-sync-run",
        image=IMAGE,
        cmds=["sh", "-c"],
        # One string so the dry-run flag can be left out; syncctl stays the process that gets
        # SIGTERM (exec).
        arguments=["exec syncctl sync run" + SYNC_ARGS + " " + " ".join(POD_RESULT_ARGS)],
        env_vars=POD_CONTEXT_ENV,
        secrets=credentials("SYNCCTL_STATE_URL") + ALERT_SECRETS,
        do_xcom_push=True,
        termination_grace_period=30,
    )
