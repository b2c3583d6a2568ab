//! The public API (`/api/public/v1` on Airbyte 1.x, `https://api.airbyte.com/v1` on Cloud):
//! REST with bearer tokens.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use syncctl_http::{HttpClient, Request, Response};

use crate::error::AirbyteError;
use crate::job::{Job, parse_iso8601_duration};

/// The most a list call may ask for (the spec's maximum `limit`).
pub(crate) const MAX_PAGE: u32 = 100;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobResponse {
    job_id: i64,
    status: String,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    connection_id: Option<String>,
    #[serde(default)]
    last_updated_at: Option<String>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    bytes_synced: Option<u64>,
    #[serde(default)]
    rows_synced: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct JobsResponse {
    #[serde(default)]
    data: Vec<JobResponse>,
}

#[derive(Debug, Deserialize)]
struct ConnectionsResponse {
    #[serde(default)]
    data: Vec<ConnectionResponse>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionResponse {
    connection_id: String,
    name: String,
}

fn timestamp(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // Some servers send epoch seconds or milliseconds as a string.
    let n: i64 = s.parse().ok()?;
    if n > 100_000_000_000 {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
}

fn to_job(r: JobResponse) -> Job {
    let mut job = Job::new(r.job_id, r.connection_id.unwrap_or_default(), r.status);
    job.started_at = timestamp(r.start_time.as_deref());
    job.created_at = job.started_at;
    job.updated_at = timestamp(r.last_updated_at.as_deref());
    job.duration = r.duration.as_deref().and_then(parse_iso8601_duration);
    job.records_synced = r.rows_synced;
    job.bytes_synced = r.bytes_synced;
    job
}

/// A `JobResponse` answer as a job.
pub(crate) fn job_from_response(resp: &Response) -> Result<Job, AirbyteError> {
    Ok(to_job(resp.json()?))
}

/// `POST /jobs` (never retried after it may have arrived).
pub(crate) fn trigger_request(connection_id: &str) -> Request {
    Request::post("jobs").json(json!({ "connectionId": connection_id, "jobType": "sync" }))
}

/// `GET /jobs/{id}`.
pub(crate) async fn get_job(http: &HttpClient, job_id: i64) -> Result<Job, AirbyteError> {
    let resp = http
        .send_raw(Request::get(format!("jobs/{job_id}")))
        .await?;
    if resp.status.as_u16() == 404 {
        return Err(AirbyteError::JobNotFound { job_id });
    }
    if !resp.status.is_success() {
        return Err(resp.into_error().into());
    }
    job_from_response(&resp)
}

/// `DELETE /jobs/{id}`.
pub(crate) async fn cancel_job(http: &HttpClient, job_id: i64) -> Result<Job, AirbyteError> {
    let resp = http
        .send_raw(Request::delete(format!("jobs/{job_id}")))
        .await?;
    if resp.status.as_u16() == 404 {
        return Err(AirbyteError::JobNotFound { job_id });
    }
    if !resp.status.is_success() {
        return Err(resp.into_error().into());
    }
    job_from_response(&resp)
}

/// `GET /jobs?connectionId=…`: the connection's most recent sync jobs, newest first. Not
/// filtered by `status=running`, because `pending`, `queued` and `incomplete` jobs block a new
/// sync just the same.
pub(crate) async fn recent_jobs(
    http: &HttpClient,
    connection_id: &str,
    limit: u32,
) -> Result<Vec<Job>, AirbyteError> {
    let list: JobsResponse = http
        .send_json(
            Request::get("jobs")
                .query("connectionId", connection_id)
                .query("jobType", "sync")
                .query("limit", limit.clamp(1, MAX_PAGE).to_string())
                .query("orderBy", "createdAt|DESC"),
        )
        .await?;
    let mut jobs: Vec<Job> = list
        .data
        .into_iter()
        .map(|r| {
            let mut job = to_job(r);
            if job.connection_id.is_empty() {
                connection_id.clone_into(&mut job.connection_id);
            }
            job
        })
        .collect();
    // Job ids grow with creation; do not depend on the server honouring orderBy.
    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
    Ok(jobs)
}

/// `GET /connections`, every page: `(id, name)` pairs.
pub(crate) async fn connections(
    http: &HttpClient,
    workspace_ids: &[String],
) -> Result<Vec<(String, String)>, AirbyteError> {
    let mut out = Vec::new();
    let mut offset = 0u32;
    loop {
        let mut req = Request::get("connections")
            .query("limit", MAX_PAGE.to_string())
            .query("offset", offset.to_string());
        for w in workspace_ids {
            req = req.query("workspaceIds", w);
        }
        let page: ConnectionsResponse = http.send_json(req).await?;
        let n = u32::try_from(page.data.len()).unwrap_or(u32::MAX);
        out.extend(page.data.into_iter().map(|c| (c.connection_id, c.name)));
        if n < MAX_PAGE || page.next.as_deref().is_none_or(str::is_empty) {
            return Ok(out);
        }
        offset += n;
    }
}

/// `GET /connections/{id}`: the connection's name.
pub(crate) async fn connection_name(
    http: &HttpClient,
    connection_id: &str,
) -> Result<String, AirbyteError> {
    let c: ConnectionResponse = http
        .send_json(Request::get(format!("connections/{connection_id}")))
        .await?;
    Ok(c.name)
}

/// `GET /jobs?limit=1`: the cheapest authenticated call.
pub(crate) async fn probe(http: &HttpClient) -> Result<(), AirbyteError> {
    let _: JobsResponse = http
        .send_json(Request::get("jobs").query("limit", "1"))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_response_is_normalised() {
        let r: JobResponse = serde_json::from_value(json!({
            "jobId": 12, "status": "succeeded", "jobType": "sync",
            "startTime": "2026-01-01T00:00:00Z", "connectionId": "c",
            "lastUpdatedAt": "2026-01-01T00:01:00Z", "duration": "PT1M",
            "bytesSynced": 2048, "rowsSynced": 20
        }))
        .unwrap();
        let j = to_job(r);
        assert_eq!(j.id, 12);
        assert_eq!(j.records_synced, Some(20));
        assert_eq!(j.duration, Some(std::time::Duration::from_secs(60)));
        assert_eq!(j.attempts, None);
        assert!(j.started_at.is_some());
        assert_eq!(
            timestamp(Some("1700000000")).map(|t| t.timestamp()),
            Some(1_700_000_000)
        );
    }
}
