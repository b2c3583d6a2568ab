//! The config API (`/api/v1`, the seed's Airbyte OSS with basic auth): every call is a POST
//! with a JSON body, reads included, so reads are marked safe to repeat and the sync trigger is
//! not.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use syncctl_http::{HttpClient, Request, Response};

use crate::error::AirbyteError;
use crate::job::{Job, StreamStats};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobInfoRead {
    job: JobRead,
    #[serde(default)]
    attempts: Vec<AttemptInfoRead>,
}

#[derive(Debug, Deserialize)]
struct AttemptInfoRead {
    attempt: AttemptRead,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobReadList {
    #[serde(default)]
    jobs: Vec<JobWithAttemptsRead>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobWithAttemptsRead {
    job: JobRead,
    #[serde(default)]
    attempts: Vec<AttemptRead>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobRead {
    id: i64,
    #[serde(default)]
    config_id: Option<String>,
    #[serde(default)]
    created_at: Option<i64>,
    #[serde(default)]
    updated_at: Option<i64>,
    #[serde(default)]
    started_at: Option<i64>,
    status: String,
    #[serde(default)]
    aggregated_stats: Option<Stats>,
    #[serde(default)]
    stream_aggregated_stats: Option<Vec<StreamStatsRead>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttemptRead {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    records_synced: Option<u64>,
    #[serde(default)]
    bytes_synced: Option<u64>,
    #[serde(default)]
    total_stats: Option<Stats>,
    #[serde(default)]
    stream_stats: Option<Vec<AttemptStreamStats>>,
    #[serde(default)]
    failure_summary: Option<FailureSummary>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    records_emitted: Option<u64>,
    bytes_emitted: Option<u64>,
    records_committed: Option<u64>,
    bytes_committed: Option<u64>,
    records_rejected: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamStatsRead {
    stream_name: String,
    #[serde(default)]
    stream_namespace: Option<String>,
    #[serde(flatten)]
    stats: Stats,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AttemptStreamStats {
    stream_name: String,
    #[serde(default)]
    stream_namespace: Option<String>,
    #[serde(default)]
    stats: Stats,
}

#[derive(Debug, Deserialize)]
struct FailureSummary {
    #[serde(default)]
    failures: Vec<FailureReason>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailureReason {
    #[serde(default)]
    failure_origin: Option<String>,
    #[serde(default)]
    failure_type: Option<String>,
    #[serde(default)]
    external_message: Option<String>,
    #[serde(default)]
    internal_message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConnectionReadList {
    #[serde(default)]
    connections: Vec<ConnectionRead>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionRead {
    connection_id: String,
    name: String,
}

/// Airbyte's config API sends epoch seconds; tolerate milliseconds in case a server does.
fn epoch(t: Option<i64>) -> Option<DateTime<Utc>> {
    let t = t?;
    if t > 100_000_000_000 {
        DateTime::from_timestamp_millis(t)
    } else {
        DateTime::from_timestamp(t, 0)
    }
}

fn sum(values: impl Iterator<Item = Option<u64>>) -> Option<u64> {
    values.fold(None, |acc, v| match (acc, v) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    })
}

fn describe_failure(f: &FailureReason) -> Option<String> {
    let message = f
        .external_message
        .as_deref()
        .or(f.internal_message.as_deref())?
        .trim()
        .to_owned();
    let tags: Vec<&str> = [f.failure_origin.as_deref(), f.failure_type.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    Some(if tags.is_empty() {
        message
    } else {
        format!("{message} ({})", tags.join(", "))
    })
}

fn to_job(job: JobRead, attempts: Vec<AttemptRead>) -> Job {
    let mut out = Job::new(job.id, job.config_id.unwrap_or_default(), job.status);
    out.created_at = epoch(job.created_at);
    out.updated_at = epoch(job.updated_at);
    out.started_at = epoch(job.started_at);
    out.attempts = u32::try_from(attempts.len()).ok();
    let agg = job.aggregated_stats.unwrap_or_default();
    out.records_synced = agg.records_committed.or_else(|| {
        sum(attempts.iter().map(|a| {
            a.records_synced
                .or_else(|| a.total_stats.as_ref().and_then(|s| s.records_committed))
        }))
    });
    out.bytes_synced = agg.bytes_committed.or_else(|| {
        sum(attempts.iter().map(|a| {
            a.bytes_synced
                .or_else(|| a.total_stats.as_ref().and_then(|s| s.bytes_committed))
        }))
    });
    out.streams = match job.stream_aggregated_stats {
        Some(streams) if !streams.is_empty() => streams
            .into_iter()
            .map(|s| stream(s.stream_name, s.stream_namespace, &s.stats))
            .collect(),
        _ => attempts
            .last()
            .and_then(|a| a.stream_stats.as_ref())
            .map(|ss| {
                ss.iter()
                    .map(|s| stream(s.stream_name.clone(), s.stream_namespace.clone(), &s.stats))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if out.phase() != crate::job::Phase::Succeeded {
        out.failure_reason = attempts
            .iter()
            .rev()
            .find(|a| a.status.as_deref() == Some("failed") || a.failure_summary.is_some())
            .and_then(|a| a.failure_summary.as_ref())
            .and_then(|s| s.failures.iter().find_map(describe_failure));
    }
    out
}

fn stream(name: String, namespace: Option<String>, s: &Stats) -> StreamStats {
    StreamStats {
        stream: name,
        namespace,
        records_emitted: s.records_emitted,
        records_committed: s.records_committed,
        bytes_emitted: s.bytes_emitted,
        bytes_committed: s.bytes_committed,
        records_rejected: s.records_rejected,
    }
}

/// The JSON of a `JobInfoRead` answer as a job.
pub(crate) fn job_from_response(resp: &Response) -> Result<Job, AirbyteError> {
    let info: JobInfoRead = resp.json()?;
    Ok(to_job(
        info.job,
        info.attempts.into_iter().map(|a| a.attempt).collect(),
    ))
}

/// `POST /connections/sync` (never retried after it may have arrived).
pub(crate) fn trigger_request(connection_id: &str) -> Request {
    Request::post("connections/sync").json(json!({ "connectionId": connection_id }))
}

/// `POST /jobs/get`.
pub(crate) async fn get_job(http: &HttpClient, job_id: i64) -> Result<Job, AirbyteError> {
    let resp = http
        .send_raw(
            Request::post("jobs/get")
                .json(json!({ "id": job_id }))
                .retry_safe(),
        )
        .await?;
    if resp.status.as_u16() == 404 {
        return Err(AirbyteError::JobNotFound { job_id });
    }
    if !resp.status.is_success() {
        return Err(resp.into_error().into());
    }
    job_from_response(&resp)
}

/// `POST /jobs/cancel`: cancelling twice is harmless, so it may be retried.
pub(crate) async fn cancel_job(http: &HttpClient, job_id: i64) -> Result<Job, AirbyteError> {
    let resp = http
        .send_raw(
            Request::post("jobs/cancel")
                .json(json!({ "id": job_id }))
                .retry_safe(),
        )
        .await?;
    if resp.status.as_u16() == 404 {
        return Err(AirbyteError::JobNotFound { job_id });
    }
    if !resp.status.is_success() {
        return Err(resp.into_error().into());
    }
    job_from_response(&resp)
}

/// `POST /jobs/list`: the connection's most recent sync jobs, newest first.
pub(crate) async fn recent_jobs(
    http: &HttpClient,
    connection_id: &str,
    limit: u32,
) -> Result<Vec<Job>, AirbyteError> {
    let list: JobReadList = http
        .send_json(
            Request::post("jobs/list")
                .json(json!({
                    "configTypes": ["sync"],
                    "configId": connection_id,
                    "pagination": { "pageSize": limit, "rowOffset": 0 },
                }))
                .retry_safe(),
        )
        .await?;
    Ok(list
        .jobs
        .into_iter()
        .map(|j| {
            let mut job = to_job(j.job, j.attempts);
            if job.connection_id.is_empty() {
                connection_id.clone_into(&mut job.connection_id);
            }
            job
        })
        .collect())
}

/// `POST /connections/list` per workspace: `(id, name)` pairs. The config API returns a
/// workspace's connections in one answer.
pub(crate) async fn connections(
    http: &HttpClient,
    workspace_id: &str,
) -> Result<Vec<(String, String)>, AirbyteError> {
    let list: ConnectionReadList = http
        .send_json(
            Request::post("connections/list")
                .json(json!({ "workspaceId": workspace_id }))
                .retry_safe(),
        )
        .await?;
    Ok(list
        .connections
        .into_iter()
        .map(|c| (c.connection_id, c.name))
        .collect())
}

/// `POST /connections/get`: the connection's name.
pub(crate) async fn connection_name(
    http: &HttpClient,
    connection_id: &str,
) -> Result<String, AirbyteError> {
    let c: ConnectionRead = http
        .send_json(
            Request::post("connections/get")
                .json(json!({ "connectionId": connection_id }))
                .retry_safe(),
        )
        .await?;
    Ok(c.name)
}

/// `GET /health`.
pub(crate) async fn health(http: &HttpClient) -> Result<(), AirbyteError> {
    http.send(Request::get("health")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_info_is_normalised() {
        let info: JobInfoRead = serde_json::from_value(json!({
            "job": {"id": 7, "configType": "sync", "configId": "c1", "createdAt": 1_700_000_000,
                    "updatedAt": 1_700_000_090, "status": "failed",
                    "streamAggregatedStats": [{"streamName": "charges", "recordsEmitted": 10,
                      "bytesEmitted": 100, "recordsCommitted": 9, "bytesCommitted": 90,
                      "recordsRejected": 1}]},
            "attempts": [
                {"attempt": {"id": 0, "status": "failed", "createdAt": 1, "updatedAt": 2,
                  "recordsSynced": 4, "bytesSynced": 40,
                  "failureSummary": {"failures": [{"failureOrigin": "source", "failureType": "config_error",
                     "externalMessage": "Invalid API key", "timestamp": 1}]}}},
                {"attempt": {"id": 1, "status": "failed", "createdAt": 3, "updatedAt": 4,
                  "recordsSynced": 5, "bytesSynced": 50,
                  "failureSummary": {"failures": [{"externalMessage": "Rate limited by Stripe", "timestamp": 2}]}}}
            ]
        }))
        .unwrap();
        let job = to_job(
            info.job,
            info.attempts.into_iter().map(|a| a.attempt).collect(),
        );
        assert_eq!(job.attempts, Some(2));
        assert_eq!(job.records_synced, Some(9));
        assert_eq!(job.bytes_synced, Some(90));
        assert_eq!(
            job.failure_reason.as_deref(),
            Some("Rate limited by Stripe")
        );
        assert_eq!(job.streams.len(), 1);
        assert_eq!(job.streams[0].records_rejected, Some(1));
        assert_eq!(
            job.duration_at(Utc::now()),
            Some(std::time::Duration::from_secs(90))
        );
    }

    #[test]
    fn attempt_totals_are_summed_without_aggregates() {
        let info: JobInfoRead = serde_json::from_value(json!({
            "job": {"id": 8, "configType": "sync", "configId": "c1", "createdAt": 1,
                    "updatedAt": 2, "status": "succeeded"},
            "attempts": [
                {"attempt": {"id": 0, "status": "failed", "createdAt": 1, "updatedAt": 2, "recordsSynced": 4,
                  "failureSummary": {"failures": [{"externalMessage": "boom", "timestamp": 1}]}}},
                {"attempt": {"id": 1, "status": "succeeded", "createdAt": 1, "updatedAt": 2, "recordsSynced": 6,
                  "streamStats": [{"streamName": "a", "stats": {"recordsCommitted": 6}}]}}
            ]
        }))
        .unwrap();
        let job = to_job(
            info.job,
            info.attempts.into_iter().map(|a| a.attempt).collect(),
        );
        assert_eq!(job.records_synced, Some(10));
        assert_eq!(job.bytes_synced, None);
        assert_eq!(
            job.failure_reason, None,
            "a succeeded job has no failure reason"
        );
        assert_eq!(job.streams[0].records_committed, Some(6));
    }
}
