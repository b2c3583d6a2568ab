//! The SQL API v2: submit (async, with a request id), poll, follow result partitions, cancel.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use syncctl_http::{HttpClient, Request, Response, is_retryable_answer};
use uuid::Uuid;

use crate::SnowflakeError;
use crate::settings::SessionContext;

/// Submits, polls and cancels statements.
#[derive(Debug, Clone)]
pub struct SqlApi {
    http: HttpClient,
    resubmit_delay: Duration,
}

/// A statement (or `;`-separated batch) to submit.
pub struct StatementRequest<'a> {
    /// The SQL (may hold credentials).
    pub text: &'a SecretString,
    /// How many statements `text` holds (`MULTI_STATEMENT_COUNT` when more than one).
    pub count: usize,
    /// Warehouse, role, database and schema.
    pub context: &'a SessionContext,
    /// Snowflake's statement timeout (the body's `timeout`, seconds).
    pub timeout: Option<Duration>,
    /// `QUERY_TAG` for the session, so runs can be found in `QUERY_HISTORY`.
    pub query_tag: Option<&'a str>,
}

/// What a submit returned.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The statement handle (the parent handle of a multi-statement request).
    pub handle: String,
    /// The result when Snowflake finished before answering.
    pub done: Option<ResultSet>,
    /// Whether the request had to be resubmitted with `retry=true` after a lost response.
    pub resubmitted: bool,
}

/// A finished statement's result, all partitions joined.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    /// The statement handle.
    pub handle: String,
    /// Column names in order, as Snowflake returned them.
    pub columns: Vec<String>,
    /// Rows of (nullable) text values.
    pub rows: Vec<Vec<Option<String>>>,
    /// The child handles of a multi-statement request.
    pub statement_handles: Vec<String>,
    /// Snowflake's message (`Statement executed successfully.`).
    pub message: Option<String>,
}

impl ResultSet {
    /// The index of a column, ignoring case.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }
}

/// Where a statement stands.
#[derive(Debug, Clone)]
pub enum StatementStatus {
    /// Still running (HTTP 202).
    Running,
    /// Finished (HTTP 200), with its result.
    Done(ResultSet),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    sql_state: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    statement_handle: Option<String>,
    #[serde(default)]
    statement_handles: Option<Vec<String>>,
    #[serde(default)]
    result_set_meta_data: Option<Meta>,
    #[serde(default)]
    data: Option<Vec<Vec<Option<String>>>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    row_type: Vec<Column>,
    #[serde(default)]
    partition_info: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Column {
    name: String,
}

const STATEMENTS: &str = "/api/v2/statements";

/// A 408 from the statements endpoints is Snowflake's statement timeout (code 000630): the
/// statement was cancelled, so the answer is final, not a reason to ask again.
const STATEMENT_FINAL: &[u16] = &[408];

impl SqlApi {
    /// A client over `http` (built with the Snowflake auth provider); `resubmit_delay` is the
    /// pause before resubmitting after a lost response.
    #[must_use]
    pub fn new(http: HttpClient, resubmit_delay: Duration) -> Self {
        Self {
            http,
            resubmit_delay,
        }
    }

    /// The base URL.
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    /// Submits asynchronously with `requestId = request_id`.
    ///
    /// The first POST is not retried blindly: if its answer is lost (connection broken,
    /// timeout, 5xx, 429) it is resubmitted with the same `requestId` and `retry=true`, which
    /// makes Snowflake return the statement it already started instead of running it again.
    /// `retry_first` sends `retry=true` from the start (a rerun of a task that may already
    /// have submitted this request).
    ///
    /// # Errors
    /// [`SnowflakeError::Sql`] for a 422, [`SnowflakeError::Http`] for refused or failed
    /// exchanges, [`SnowflakeError::Protocol`] for an answer without a handle.
    pub async fn submit(
        &self,
        req: &StatementRequest<'_>,
        request_id: Uuid,
        retry_first: bool,
    ) -> Result<Submitted, SnowflakeError> {
        let mut body = serde_json::json!({
            "statement": req.text.expose_secret(),
            "resultSetMetaData": { "format": "jsonv2" },
        });
        let ctx = req.context;
        for (k, v) in [
            ("warehouse", &ctx.warehouse),
            ("role", &ctx.role),
            ("database", &ctx.database),
            ("schema", &ctx.schema),
        ] {
            if let Some(v) = v {
                body[k] = serde_json::Value::String(v.clone());
            }
        }
        if let Some(t) = req.timeout {
            body["timeout"] = serde_json::json!(t.as_secs());
        }
        let mut params = serde_json::Map::new();
        if req.count > 1 {
            params.insert("MULTI_STATEMENT_COUNT".into(), serde_json::json!(req.count));
        }
        if let Some(tag) = req.query_tag {
            params.insert("query_tag".into(), serde_json::json!(tag));
        }
        if !params.is_empty() {
            body["parameters"] = serde_json::Value::Object(params);
        }
        let mut retry = retry_first;
        let mut resubmitted = false;
        loop {
            let mut r = Request::post(STATEMENTS)
                .query("requestId", request_id.to_string())
                .query("async", "true")
                .header("accept", "application/json")
                .json(body.clone());
            r = if retry {
                // Snowflake deduplicates on requestId when retry=true, so the HTTP core may
                // repeat this one freely.
                r.query("retry", "true").keyed()
            } else {
                r.caller_resends()
            }
            .final_statuses(STATEMENT_FINAL);
            let outcome = self.http.send_raw(r).await;
            let lost = match &outcome {
                Ok(resp) => is_retryable_answer(resp.status.as_u16(), STATEMENT_FINAL),
                Err(e) => e.is_retryable_kind() && !e.not_sent(),
            };
            if lost && !retry {
                let delay = outcome
                    .as_ref()
                    .ok()
                    .and_then(|r| r.header("retry-after"))
                    .and_then(|v| syncctl_http::parse_retry_after(v, std::time::SystemTime::now()))
                    .unwrap_or(self.resubmit_delay);
                match &outcome {
                    Ok(resp) => {
                        tracing::warn!(status = resp.status.as_u16(), request_id = %request_id, "Statement submit got a retryable answer; resubmitting with retry=true.")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, request_id = %request_id, "Statement submit lost its answer; resubmitting with the same requestId and retry=true.")
                    }
                }
                tokio::time::sleep(delay).await;
                retry = true;
                resubmitted = true;
                continue;
            }
            let resp = outcome?;
            return match interpret(resp)? {
                Answer::Running(handle) => Ok(Submitted {
                    handle,
                    done: None,
                    resubmitted,
                }),
                Answer::Done(rs, partitions) => {
                    let rs = self.follow_partitions(rs, partitions).await?;
                    Ok(Submitted {
                        handle: rs.handle.clone(),
                        done: Some(rs),
                        resubmitted,
                    })
                }
            };
        }
    }

    /// One status check; a finished statement's later result partitions are fetched too.
    ///
    /// # Errors
    /// [`SnowflakeError::Sql`] when the statement failed (422), else as [`Self::submit`].
    pub async fn status(&self, handle: &str) -> Result<StatementStatus, SnowflakeError> {
        let resp = self
            .http
            .send_raw(
                Request::get(format!("{STATEMENTS}/{handle}"))
                    .header("accept", "application/json")
                    .final_statuses(STATEMENT_FINAL),
            )
            .await?;
        match interpret(resp)? {
            Answer::Running(_) => Ok(StatementStatus::Running),
            Answer::Done(mut rs, partitions) => {
                if rs.handle.is_empty() {
                    handle.clone_into(&mut rs.handle);
                }
                Ok(StatementStatus::Done(
                    self.follow_partitions(rs, partitions).await?,
                ))
            }
        }
    }

    /// Cancels a statement (`POST …/cancel`).
    ///
    /// # Errors
    /// As [`Self::submit`].
    pub async fn cancel(&self, handle: &str) -> Result<(), SnowflakeError> {
        let resp = self
            .http
            .send_raw(
                Request::post(format!("{STATEMENTS}/{handle}/cancel"))
                    .header("accept", "application/json")
                    .retry_safe(),
            )
            .await?;
        if resp.status.is_success() {
            Ok(())
        } else if resp.status.as_u16() == 422 {
            // Already finished or unknown: nothing is running any more.
            let body: Body = resp.json().unwrap_or_default();
            tracing::debug!(
                handle,
                message = body.message.as_deref().unwrap_or(""),
                "Cancel answered 422."
            );
            Ok(())
        } else {
            Err(resp.into_error().into())
        }
    }

    /// Runs `SELECT CURRENT_VERSION()` synchronously: one cheap authenticated call for
    /// `doctor`. Returns the version when Snowflake answered within the request.
    ///
    /// # Errors
    /// As [`Self::submit`].
    pub async fn probe(&self, context: &SessionContext) -> Result<Option<String>, SnowflakeError> {
        let mut body = serde_json::json!({
            "statement": "SELECT CURRENT_VERSION()",
            "resultSetMetaData": { "format": "jsonv2" },
        });
        for (k, v) in [("warehouse", &context.warehouse), ("role", &context.role)] {
            if let Some(v) = v {
                body[k] = serde_json::Value::String(v.clone());
            }
        }
        let resp = self
            .http
            .send_raw(
                Request::post(STATEMENTS)
                    .query("requestId", Uuid::new_v4().to_string())
                    .header("accept", "application/json")
                    .json(body)
                    .retry_safe(),
            )
            .await?;
        match interpret(resp)? {
            Answer::Running(_) => Ok(None),
            Answer::Done(rs, _) => Ok(rs.rows.first().and_then(|r| r.first().cloned().flatten())),
        }
    }

    async fn follow_partitions(
        &self,
        mut rs: ResultSet,
        partitions: usize,
    ) -> Result<ResultSet, SnowflakeError> {
        for n in 1..partitions {
            let resp = self
                .http
                .send(
                    Request::get(format!("{STATEMENTS}/{}", rs.handle))
                        .query("partition", n.to_string())
                        .header("accept", "application/json"),
                )
                .await?;
            let body: Body = resp.json()?;
            rs.rows.extend(body.data.unwrap_or_default());
        }
        Ok(rs)
    }
}

enum Answer {
    Running(String),
    Done(ResultSet, usize),
}

fn interpret(resp: Response) -> Result<Answer, SnowflakeError> {
    let status = resp.status.as_u16();
    match status {
        200 | 202 | 408 | 422 => {}
        _ => return Err(resp.into_error().into()),
    }
    let body: Body = resp.json()?;
    match status {
        202 => body
            .statement_handle
            .map(Answer::Running)
            .ok_or_else(|| SnowflakeError::Protocol("202 without a statementHandle".into())),
        200 => {
            let meta = body.result_set_meta_data.unwrap_or_default();
            let partitions = meta.partition_info.len();
            Ok(Answer::Done(
                ResultSet {
                    handle: body.statement_handle.unwrap_or_default(),
                    columns: meta.row_type.into_iter().map(|c| c.name).collect(),
                    rows: body.data.unwrap_or_default(),
                    statement_handles: body.statement_handles.unwrap_or_default(),
                    message: body.message,
                },
                partitions,
            ))
        }
        408 => Err(SnowflakeError::StatementTimeout {
            handle: body.statement_handle.unwrap_or_default(),
            message: body.message.unwrap_or_else(|| "statement timed out".into()),
        }),
        _ => Err(SnowflakeError::Sql {
            message: body
                .message
                .unwrap_or_else(|| "the statement failed (no message)".into()),
            code: body.code.unwrap_or_default(),
            sql_state: body.sql_state.unwrap_or_default(),
            handle: body.statement_handle,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Snowflake writes `null` for the rowType fields that do not apply to a column (precision and
    /// scale of TEXT, length and byteLength of FIXED); the result must read all the same.
    #[test]
    fn a_row_type_with_null_length_precision_and_scale_reads() {
        let body: Body = serde_json::from_value(serde_json::json!({
            "resultSetMetaData": {
                "numRows": 1,
                "format": "jsonv2",
                "partitionInfo": [{"rowCount": 1, "uncompressedSize": 20}],
                "rowType": [
                    {"name": "file", "type": "text", "length": 16_777_216, "byteLength": 16_777_216,
                     "precision": null, "scale": null, "nullable": true, "collation": null},
                    {"name": "rows_loaded", "type": "fixed", "length": null, "byteLength": null,
                     "precision": 38, "scale": 0, "nullable": true},
                ],
            },
            "data": [["s3://b/a.csv", "3"]],
            "code": "090001",
            "statementHandle": "01b-handle",
        }))
        .unwrap();
        let meta = body.result_set_meta_data.unwrap();
        let names: Vec<String> = meta.row_type.into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["file", "rows_loaded"]);
        assert_eq!(meta.partition_info.len(), 1);
        assert_eq!(
            body.data.unwrap(),
            [[Some("s3://b/a.csv".to_string()), Some("3".to_string())]]
        );
    }
}
