"""What the example DAGs share: how syncctl is called from BashOperator and from
KubernetesPodOperator, where the secrets come from, and the failure alert.

Secrets: examples/kubernetes/externalsecret.yaml makes two Kubernetes Secrets with External
Secrets: `airflow-secrets` (the seed's: `slack-webhook-url`, `alert-emails`) and
`syncctl-credentials` (connector credentials). Workers get both as environment variables
(BashOperator's `append_env=True` passes them on); pods get them through `Secret(...)`.
Nothing secret is written in a DAG file, and syncctl never prints a secret.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile

from airflow.providers.cncf.kubernetes.secret import Secret

log = logging.getLogger(__name__)

#: The syncctl image (examples/kubernetes/Dockerfile); pin a version, never `latest`.
IMAGE = "ghcr.io/example/syncctl:0.1.0"

#: KPO does not export the Airflow context the way BashOperator does: template it, so syncctl
#: derives the same idempotency key on every try of the task (and a retry attaches to the job
#: the first try started instead of starting a second one).
POD_CONTEXT_ENV = {
    "AIRFLOW_CTX_DAG_ID": "{{ dag.dag_id }}",
    "AIRFLOW_CTX_DAG_RUN_ID": "{{ run_id }}",
    "AIRFLOW_CTX_TASK_ID": "{{ task.task_id }}",
    "AIRFLOW_CTX_TRY_NUMBER": "{{ ti.try_number }}",
}

#: KPO reads /airflow/xcom/return.json (written even when syncctl fails) and shows the
#: termination message as the failure reason.
POD_RESULT_ARGS = ["--result-file", "/airflow/xcom/return.json", "--termination-log", "/dev/termination-log"]

#: The seed's alert settings, from the `airflow-secrets` Secret.
ALERT_SECRETS = [
    Secret("env", "SLACK_WEBHOOK_URL", "airflow-secrets", "slack-webhook-url"),
    Secret("env", "ALERT_EMAILS", "airflow-secrets", "alert-emails"),
]


def credentials(*names: str) -> list[Secret]:
    """Environment variables from the `syncctl-credentials` Secret; the key of NAME is its
    lower-case, dashed form (`AIRBYTE_CLIENT_SECRET` -> `airbyte-client-secret`)."""
    return [Secret("env", name, "syncctl-credentials", name.lower().replace("_", "-")) for name in names]


def notify_failure(context) -> None:
    """on_failure_callback: one Slack/email alert per failed task through `syncctl notify`,
    carrying the task's syncctl result (status, error class, counts) when it left one."""
    ti = context["ti"]
    result = ti.xcom_pull(task_ids=ti.task_id)
    cmd = [
        "syncctl",
        "notify",
        "--status",
        "failed",
        "--title",
        f"{ti.dag_id}.{ti.task_id} failed (try {ti.try_number})",
        "--link",
        f"Log={ti.log_url}",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        if isinstance(result, dict):
            json.dump(result, f)
            f.flush()
            cmd += ["--from-result", f.name]
        else:
            cmd += ["--message", str(context.get("exception") or "task failed")]
        # Never let an alert failure hide the task's own failure.
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log.info("syncctl notify exited %s: %s", done.returncode, done.stdout.strip().splitlines()[-1:] or "")
