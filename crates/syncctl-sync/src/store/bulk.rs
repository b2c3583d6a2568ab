//! The per-page statements of the hot path (audit rows, links, audit outcomes), one statement
//! per page in each backend's fastest form.
//!
//! PostgreSQL gets whole columns as arrays (`INSERT … SELECT … FROM UNNEST($1::text[], …)`,
//! `UPDATE … FROM UNNEST(…)`): one short statement whatever the page size, prepared once per
//! connection, instead of a multi-row `VALUES` list of thousands of parameters that the server
//! parses and plans anew for every page (measured: the audit and link statements were most of
//! a first load's wall time with the state store in PostgreSQL). SQLite, in process, keeps
//! multi-row `VALUES` lists (its parameter limit bounds them), and finishes audit rows with
//! one `UPDATE … FROM (VALUES …)` instead of a `CASE` with a branch per row.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::types::Json;

use syncctl_core::RecordKey;

use super::ChangeRow;

/// Rows per SQLite multi-row statement (13 parameters a row stays below its 32 766 limit).
const SQLITE_ROWS: usize = 500;
/// Rows per PostgreSQL array statement: a page or two.
const PG_ROWS: usize = 5_000;

/// A link to write, borrowed from a [`super::LinkWrite::Upsert`].
pub(super) struct LinkOut<'a> {
    pub id: Option<i64>,
    pub source_key: &'a str,
    pub target_key: &'a str,
    pub natural_key: Option<&'a str>,
    pub base: &'a std::collections::BTreeMap<String, serde_json::Value>,
    pub source_updated_at: Option<DateTime<Utc>>,
    pub target_updated_at: Option<DateTime<Utc>>,
    pub source_deleted: bool,
    pub target_deleted: bool,
}

/// The outcome of one audit row: `(change_id, status, error, record_key learnt, link_id learnt)`.
pub(super) type Outcome<'a> = (i64, &'a str, Option<&'a str>, Option<&'a str>, Option<i64>);

/// What the state store's transaction connection can do in bulk.
pub(super) trait BulkOps {
    /// Inserts audit rows; returns `(change_id, seq, side, action)` of each.
    async fn insert_change_rows(
        &mut self,
        run_id: &str,
        now: DateTime<Utc>,
        rows: &[ChangeRow],
    ) -> Result<Vec<(i64, i32, String, String)>, sqlx::Error>;

    /// Writes links that exist (by id).
    async fn update_links(
        &mut self,
        sync: &str,
        run_id: &str,
        now: DateTime<Utc>,
        links: &[LinkOut<'_>],
    ) -> Result<(), sqlx::Error>;

    /// Inserts new links; returns `(link_id, source_key)` of each.
    async fn insert_links(
        &mut self,
        sync: &str,
        run_id: &str,
        now: DateTime<Utc>,
        links: &[LinkOut<'_>],
    ) -> Result<Vec<(i64, String)>, sqlx::Error>;

    /// Sets the outcome of audit rows (each id at most once): status, error and finish time,
    /// the record key when one was learnt, the link id when the row had none.
    async fn set_outcomes(
        &mut self,
        now: DateTime<Utc>,
        outcomes: &[Outcome<'_>],
    ) -> Result<(), sqlx::Error>;

    /// Removes these keys of `side` from the pending list.
    async fn remove_pending(
        &mut self,
        sync: &str,
        side: &str,
        keys: &[RecordKey],
    ) -> Result<(), sqlx::Error>;
}

const LINK_UPSERT: &str = " ON CONFLICT (link_id) DO UPDATE SET source_key = excluded.source_key, target_key = excluded.target_key, \
     natural_key = COALESCE(excluded.natural_key, sync_link.natural_key), base = excluded.base, \
     source_updated_at = COALESCE(excluded.source_updated_at, sync_link.source_updated_at), \
     target_updated_at = COALESCE(excluded.target_updated_at, sync_link.target_updated_at), \
     source_deleted = excluded.source_deleted, target_deleted = excluded.target_deleted, \
     updated_run = excluded.updated_run, updated_at = excluded.updated_at";

fn json_text(v: Option<&serde_json::Value>) -> Option<String> {
    v.map(serde_json::Value::to_string)
}

/// The columns of links as the array parameters of an UNNEST.
struct LinkColumns<'a> {
    ids: Vec<i64>,
    source_keys: Vec<&'a str>,
    target_keys: Vec<&'a str>,
    natural_keys: Vec<Option<&'a str>>,
    bases: Vec<String>,
    source_times: Vec<Option<DateTime<Utc>>>,
    target_times: Vec<Option<DateTime<Utc>>>,
    source_deleted: Vec<bool>,
    target_deleted: Vec<bool>,
}

impl<'a> LinkColumns<'a> {
    fn of(links: &[LinkOut<'a>]) -> Self {
        let mut c = Self {
            ids: Vec::with_capacity(links.len()),
            source_keys: Vec::with_capacity(links.len()),
            target_keys: Vec::with_capacity(links.len()),
            natural_keys: Vec::with_capacity(links.len()),
            bases: Vec::with_capacity(links.len()),
            source_times: Vec::with_capacity(links.len()),
            target_times: Vec::with_capacity(links.len()),
            source_deleted: Vec::with_capacity(links.len()),
            target_deleted: Vec::with_capacity(links.len()),
        };
        for l in links {
            c.ids.push(l.id.unwrap_or_default());
            c.source_keys.push(l.source_key);
            c.target_keys.push(l.target_key);
            c.natural_keys.push(l.natural_key);
            c.bases
                .push(serde_json::to_string(l.base).unwrap_or_else(|_| "{}".to_owned()));
            c.source_times.push(l.source_updated_at);
            c.target_times.push(l.target_updated_at);
            c.source_deleted.push(l.source_deleted);
            c.target_deleted.push(l.target_deleted);
        }
        c
    }
}

impl BulkOps for PgConnection {
    async fn insert_change_rows(
        &mut self,
        run_id: &str,
        now: DateTime<Utc>,
        rows: &[ChangeRow],
    ) -> Result<Vec<(i64, i32, String, String)>, sqlx::Error> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(PG_ROWS) {
            let seqs: Vec<i32> = chunk
                .iter()
                .map(|r| i32::try_from(r.seq).unwrap_or(i32::MAX))
                .collect();
            let link_ids: Vec<Option<i64>> = chunk.iter().map(|r| r.link_id).collect();
            let sides: Vec<&str> = chunk.iter().map(|r| r.side.as_str()).collect();
            let keys: Vec<Option<&str>> = chunk.iter().map(|r| r.record_key.as_deref()).collect();
            let actions: Vec<&str> = chunk.iter().map(|r| r.action.as_str()).collect();
            let befores: Vec<Option<String>> =
                chunk.iter().map(|r| json_text(r.before.as_ref())).collect();
            let afters: Vec<Option<String>> =
                chunk.iter().map(|r| json_text(r.after.as_ref())).collect();
            let statuses: Vec<&str> = chunk.iter().map(|r| r.status.as_str()).collect();
            let errors: Vec<Option<&str>> = chunk.iter().map(|r| r.error.as_deref()).collect();
            let finished: Vec<Option<DateTime<Utc>>> = chunk
                .iter()
                .map(|r| (r.status != "planned").then_some(now))
                .collect();
            let origins: Vec<Option<&str>> =
                chunk.iter().map(|r| r.origin_key.as_deref()).collect();
            let got: Vec<(i64, i32, String, String)> = sqlx::query_as(
                "INSERT INTO sync_change (run_id, seq, link_id, side, record_key, action, before, after, status, error, created_at, finished_at, origin_key) \
                 SELECT $1, v.seq, v.link_id, v.side, v.record_key, v.action, v.before::jsonb, v.after::jsonb, v.status, v.error, $2, v.finished_at, v.origin_key \
                 FROM UNNEST($3::int4[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[]) \
                 AS v(seq, link_id, side, record_key, action, before, after, status, error, finished_at, origin_key) \
                 RETURNING change_id, seq, side, action",
            )
            .bind(run_id)
            .bind(now)
            .bind(seqs)
            .bind(link_ids)
            .bind(sides)
            .bind(keys)
            .bind(actions)
            .bind(befores)
            .bind(afters)
            .bind(statuses)
            .bind(errors)
            .bind(finished)
            .bind(origins)
            .fetch_all(&mut *self)
            .await?;
            out.extend(got);
        }
        Ok(out)
    }

    async fn update_links(
        &mut self,
        sync: &str,
        run_id: &str,
        now: DateTime<Utc>,
        links: &[LinkOut<'_>],
    ) -> Result<(), sqlx::Error> {
        for chunk in links.chunks(PG_ROWS) {
            let c = LinkColumns::of(chunk);
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO sync_link (link_id, sync_name, source_key, target_key, natural_key, base, \
                 source_updated_at, target_updated_at, source_deleted, target_deleted, created_run, updated_run, updated_at) \
                 SELECT v.id, $1, v.sk, v.tk, v.nk, v.base::jsonb, v.su, v.tu, v.sd, v.td, $2, $2, $3 \
                 FROM UNNEST($4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::bool[]) \
                 AS v(id, sk, tk, nk, base, su, tu, sd, td){LINK_UPSERT}"
            )))
            .bind(sync)
            .bind(run_id)
            .bind(now)
            .bind(c.ids)
            .bind(c.source_keys)
            .bind(c.target_keys)
            .bind(c.natural_keys)
            .bind(c.bases)
            .bind(c.source_times)
            .bind(c.target_times)
            .bind(c.source_deleted)
            .bind(c.target_deleted)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }

    async fn insert_links(
        &mut self,
        sync: &str,
        run_id: &str,
        now: DateTime<Utc>,
        links: &[LinkOut<'_>],
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let mut out = Vec::with_capacity(links.len());
        for chunk in links.chunks(PG_ROWS) {
            let c = LinkColumns::of(chunk);
            let got: Vec<(i64, String)> = sqlx::query_as(
                "INSERT INTO sync_link (sync_name, source_key, target_key, natural_key, base, \
                 source_updated_at, target_updated_at, source_deleted, target_deleted, created_run, updated_run, updated_at) \
                 SELECT $1, v.sk, v.tk, v.nk, v.base::jsonb, v.su, v.tu, v.sd, v.td, $2, $2, $3 \
                 FROM UNNEST($4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::bool[], $11::bool[]) \
                 AS v(sk, tk, nk, base, su, tu, sd, td) RETURNING link_id, source_key",
            )
            .bind(sync)
            .bind(run_id)
            .bind(now)
            .bind(c.source_keys)
            .bind(c.target_keys)
            .bind(c.natural_keys)
            .bind(c.bases)
            .bind(c.source_times)
            .bind(c.target_times)
            .bind(c.source_deleted)
            .bind(c.target_deleted)
            .fetch_all(&mut *self)
            .await?;
            out.extend(got);
        }
        Ok(out)
    }

    async fn set_outcomes(
        &mut self,
        now: DateTime<Utc>,
        outcomes: &[Outcome<'_>],
    ) -> Result<(), sqlx::Error> {
        for chunk in outcomes.chunks(PG_ROWS) {
            let ids: Vec<i64> = chunk.iter().map(|o| o.0).collect();
            let statuses: Vec<&str> = chunk.iter().map(|o| o.1).collect();
            let errors: Vec<Option<&str>> = chunk.iter().map(|o| o.2).collect();
            let keys: Vec<Option<&str>> = chunk.iter().map(|o| o.3).collect();
            let links: Vec<Option<i64>> = chunk.iter().map(|o| o.4).collect();
            sqlx::query(
                "UPDATE sync_change AS c SET status = v.status, error = v.error, finished_at = $1, \
                 record_key = COALESCE(v.record_key, c.record_key), link_id = COALESCE(c.link_id, v.link_id) \
                 FROM UNNEST($2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[]) \
                 AS v(change_id, status, error, record_key, link_id) WHERE c.change_id = v.change_id",
            )
            .bind(now)
            .bind(ids)
            .bind(statuses)
            .bind(errors)
            .bind(keys)
            .bind(links)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }

    async fn remove_pending(
        &mut self,
        sync: &str,
        side: &str,
        keys: &[RecordKey],
    ) -> Result<(), sqlx::Error> {
        for chunk in keys.chunks(PG_ROWS) {
            let keys: Vec<&str> = chunk.iter().map(RecordKey::as_str).collect();
            sqlx::query(
                "DELETE FROM sync_pending WHERE sync_name = $1 AND side = $2 AND record_key = ANY($3::text[])",
            )
            .bind(sync)
            .bind(side)
            .bind(keys)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }
}

impl BulkOps for SqliteConnection {
    async fn insert_change_rows(
        &mut self,
        run_id: &str,
        now: DateTime<Utc>,
        rows: &[ChangeRow],
    ) -> Result<Vec<(i64, i32, String, String)>, sqlx::Error> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(SQLITE_ROWS) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO sync_change (run_id, seq, link_id, side, record_key, action, before, after, status, error, created_at, finished_at, origin_key) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(run_id)
                    .push_bind(i32::try_from(r.seq).unwrap_or(i32::MAX))
                    .push_bind(r.link_id)
                    .push_bind(r.side.as_str())
                    .push_bind(r.record_key.as_deref())
                    .push_bind(r.action.as_str())
                    .push_bind(r.before.as_ref().map(Json))
                    .push_bind(r.after.as_ref().map(Json))
                    .push_bind(r.status.as_str())
                    .push_bind(r.error.as_deref())
                    .push_bind(now)
                    .push_bind((r.status != "planned").then_some(now))
                    .push_bind(r.origin_key.as_deref());
            });
            qb.push(" RETURNING change_id, seq, side, action");
            let got: Vec<(i64, i32, String, String)> =
                qb.build_query_as().fetch_all(&mut *self).await?;
            out.extend(got);
        }
        Ok(out)
    }

    async fn update_links(
        &mut self,
        sync: &str,
        run_id: &str,
        now: DateTime<Utc>,
        links: &[LinkOut<'_>],
    ) -> Result<(), sqlx::Error> {
        for chunk in links.chunks(SQLITE_ROWS / 2) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO sync_link (link_id, sync_name, source_key, target_key, natural_key, base, \
                 source_updated_at, target_updated_at, source_deleted, target_deleted, created_run, updated_run, updated_at) ",
            );
            qb.push_values(chunk, |mut b, l| {
                b.push_bind(l.id)
                    .push_bind(sync)
                    .push_bind(l.source_key)
                    .push_bind(l.target_key)
                    .push_bind(l.natural_key)
                    .push_bind(Json(l.base))
                    .push_bind(l.source_updated_at)
                    .push_bind(l.target_updated_at)
                    .push_bind(l.source_deleted)
                    .push_bind(l.target_deleted)
                    .push_bind(run_id)
                    .push_bind(run_id)
                    .push_bind(now);
            });
            qb.push(LINK_UPSERT);
            qb.build().execute(&mut *self).await?;
        }
        Ok(())
    }

    async fn insert_links(
        &mut self,
        sync: &str,
        run_id: &str,
        now: DateTime<Utc>,
        links: &[LinkOut<'_>],
    ) -> Result<Vec<(i64, String)>, sqlx::Error> {
        let mut out = Vec::with_capacity(links.len());
        for chunk in links.chunks(SQLITE_ROWS / 2) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO sync_link (sync_name, source_key, target_key, natural_key, base, \
                 source_updated_at, target_updated_at, source_deleted, target_deleted, created_run, updated_run, updated_at) ",
            );
            qb.push_values(chunk, |mut b, l| {
                b.push_bind(sync)
                    .push_bind(l.source_key)
                    .push_bind(l.target_key)
                    .push_bind(l.natural_key)
                    .push_bind(Json(l.base))
                    .push_bind(l.source_updated_at)
                    .push_bind(l.target_updated_at)
                    .push_bind(l.source_deleted)
                    .push_bind(l.target_deleted)
                    .push_bind(run_id)
                    .push_bind(run_id)
                    .push_bind(now);
            });
            qb.push(" RETURNING link_id, source_key");
            let got: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *self).await?;
            out.extend(got);
        }
        Ok(out)
    }

    async fn set_outcomes(
        &mut self,
        now: DateTime<Utc>,
        outcomes: &[Outcome<'_>],
    ) -> Result<(), sqlx::Error> {
        for chunk in outcomes.chunks(SQLITE_ROWS) {
            let mut qb = sqlx::QueryBuilder::new(
                "WITH v(change_id, status, error, record_key, link_id) AS (",
            );
            qb.push_values(chunk, |mut b, o| {
                b.push_bind(o.0)
                    .push_bind(o.1)
                    .push_bind(o.2)
                    .push_bind(o.3)
                    .push_bind(o.4);
            });
            qb.push(") UPDATE sync_change SET status = v.status, error = v.error, finished_at = ")
                .push_bind(now)
                .push(
                    ", record_key = COALESCE(v.record_key, sync_change.record_key), \
                 link_id = COALESCE(sync_change.link_id, v.link_id) \
                 FROM v WHERE sync_change.change_id = v.change_id",
                );
            qb.build().execute(&mut *self).await?;
        }
        Ok(())
    }

    async fn remove_pending(
        &mut self,
        sync: &str,
        side: &str,
        keys: &[RecordKey],
    ) -> Result<(), sqlx::Error> {
        for chunk in keys.chunks(SQLITE_ROWS) {
            let mut qb = sqlx::QueryBuilder::new("DELETE FROM sync_pending WHERE sync_name = ");
            qb.push_bind(sync)
                .push(" AND side = ")
                .push_bind(side)
                .push(" AND record_key IN (");
            let mut sep = qb.separated(", ");
            for k in chunk {
                sep.push_bind(k.as_str());
            }
            sep.push_unseparated(")");
            qb.build().execute(&mut *self).await?;
        }
        Ok(())
    }
}
