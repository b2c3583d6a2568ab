//! The run lock: one run per sync of a state store at a time. PostgreSQL holds an advisory lock
//! on a dedicated connection (freed by the server if the process dies); SQLite holds a lease row
//! renewed in the background (taken over when expired or when its holder process is gone).

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use super::{Db, StateStore};
use crate::error::SyncError;

impl StateStore {
    /// Takes the run lock of `sync`, or fails with [`SyncError::Locked`] naming the holder.
    ///
    /// PostgreSQL: `pg_try_advisory_lock` on a connection held until release (the server frees
    /// it if the process dies) plus a `sync_lock` row saying who. Advisory locks are shared by
    /// the whole database, so the key names the schema holding this store's tables too: stores
    /// in other schemas of the same database do not block each other. SQLite: a lease row renewed
    /// every `lease / 3`; an expired lease, or one held by a process of this host that no
    /// longer exists, is taken over.
    ///
    /// # Errors
    /// Held by someone else, or a database failure.
    pub async fn lock(
        &self,
        sync: &str,
        run_id: &str,
        lease: Duration,
    ) -> Result<RunLock, SyncError> {
        let me = Holder::current(run_id);
        match &self.db {
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?.detach();
                // The schema the store's tables resolve to on this connection, however the
                // URL chose it (`?schema=`, a search_path in `options`, the role's default).
                let schema: String = sqlx::query_scalar(
                    "SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'sync_lock'::regclass",
                )
                .fetch_one(&mut conn)
                .await?;
                let key = advisory_key(&schema, sync);
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await?;
                if !got {
                    let holder = self
                        .lock_holder(sync)
                        .await?
                        .unwrap_or_else(|| "another process".to_owned());
                    let _ = conn.close().await;
                    return Err(SyncError::Locked {
                        sync: sync.to_owned(),
                        holder,
                    });
                }
                self.write_lock_row(sync, &me, lease, true).await?;
                Ok(RunLock {
                    sync: sync.to_owned(),
                    owner: me.owner,
                    inner: LockInner::Postgres { conn, key },
                })
            }
            Db::Sqlite(pool) => {
                // A holder on this host whose process is gone can never renew: take over now
                // instead of waiting for its lease to expire.
                let row: Option<(String, String, i64)> =
                    sqlx::query_as("SELECT owner, host, pid FROM sync_lock WHERE sync_name = $1")
                        .bind(sync)
                        .fetch_optional(pool)
                        .await?;
                if let Some((owner, host, pid)) = row
                    && host == me.host
                    && !process_alive(pid)
                {
                    sqlx::query("DELETE FROM sync_lock WHERE sync_name = $1 AND owner = $2")
                        .bind(sync)
                        .bind(&owner)
                        .execute(pool)
                        .await?;
                }
                self.write_lock_row(sync, &me, lease, false).await?;
                let owner: Option<String> =
                    sqlx::query_scalar("SELECT owner FROM sync_lock WHERE sync_name = $1")
                        .bind(sync)
                        .fetch_optional(pool)
                        .await?;
                if owner.as_deref() != Some(me.owner.as_str()) {
                    let holder = self
                        .lock_holder(sync)
                        .await?
                        .unwrap_or_else(|| "another process".to_owned());
                    return Err(SyncError::Locked {
                        sync: sync.to_owned(),
                        holder,
                    });
                }
                let pool = pool.clone();
                let (sync_s, owner_s) = (sync.to_owned(), me.owner.clone());
                let heartbeat = tokio::spawn(async move {
                    let every = lease / 3;
                    loop {
                        tokio::time::sleep(every).await;
                        let until = Utc::now()
                            + chrono::Duration::from_std(lease)
                                .unwrap_or(chrono::Duration::minutes(1));
                        let renewed = sqlx::query(
                            "UPDATE sync_lock SET expires_at = $3 WHERE sync_name = $1 AND owner = $2",
                        )
                        .bind(&sync_s)
                        .bind(&owner_s)
                        .bind(until)
                        .execute(&pool)
                        .await;
                        if let Err(e) = renewed {
                            tracing::warn!(error = %e, "Could not renew the sync lock lease.");
                        }
                    }
                });
                Ok(RunLock {
                    sync: sync.to_owned(),
                    owner: me.owner,
                    inner: LockInner::Sqlite { heartbeat },
                })
            }
        }
    }

    async fn write_lock_row(
        &self,
        sync: &str,
        me: &Holder,
        lease: Duration,
        force: bool,
    ) -> Result<(), SyncError> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
        let sql = if force {
            "INSERT INTO sync_lock (sync_name, owner, host, pid, acquired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (sync_name) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid, \
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at"
        } else {
            "INSERT INTO sync_lock (sync_name, owner, host, pid, acquired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (sync_name) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid, \
             acquired_at = excluded.acquired_at, expires_at = excluded.expires_at WHERE sync_lock.expires_at < excluded.acquired_at"
        };
        with_pool!(self, p => {
            sqlx::query(sql)
                .bind(sync)
                .bind(&me.owner)
                .bind(&me.host)
                .bind(i32::try_from(me.pid).unwrap_or(0))
                .bind(now)
                .bind(until)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    async fn lock_holder(&self, sync: &str) -> Result<Option<String>, SyncError> {
        let row: Option<(String, String, i32, DateTime<Utc>)> = with_pool!(self, p => {
            sqlx::query_as("SELECT owner, host, pid, acquired_at FROM sync_lock WHERE sync_name = $1")
                .bind(sync)
                .fetch_optional(p)
                .await?
        });
        Ok(row.map(|(owner, host, pid, at)| {
            format!(
                "run {owner}, pid {pid} on {host}, since {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )
        }))
    }

    /// Releases a lock taken with [`StateStore::lock`].
    ///
    /// # Errors
    /// Database failure (the lock still ends with the process or its lease).
    pub async fn unlock(&self, lock: RunLock) -> Result<(), SyncError> {
        with_pool!(self, p => {
            sqlx::query("DELETE FROM sync_lock WHERE sync_name = $1 AND owner = $2")
                .bind(&lock.sync)
                .bind(&lock.owner)
                .execute(p)
                .await?;
        });
        match lock.inner {
            LockInner::Sqlite { heartbeat } => heartbeat.abort(),
            LockInner::Postgres { mut conn, key } => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(key)
                    .execute(&mut conn)
                    .await?;
                let _ = conn.close().await;
            }
        }
        Ok(())
    }
}

/// A held run lock; pass it back to [`StateStore::unlock`].
pub struct RunLock {
    sync: String,
    owner: String,
    inner: LockInner,
}

enum LockInner {
    Sqlite {
        heartbeat: tokio::task::JoinHandle<()>,
    },
    Postgres {
        conn: PgConnection,
        key: i64,
    },
}

struct Holder {
    owner: String,
    host: String,
    pid: u32,
}

impl Holder {
    fn current(run_id: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown-host".to_owned());
        Self {
            owner: run_id.to_owned(),
            host,
            pid: std::process::id(),
        }
    }
}

/// Whether a process of this host is alive (Linux `/proc`; elsewhere assume it is, so only
/// the lease expiry frees the lock).
fn process_alive(pid: i64) -> bool {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    let Ok(pid) = u32::try_from(pid) else {
        return false;
    };
    if pid == std::process::id() {
        return true;
    }
    // A zombie (killed, not yet reaped by its parent) still has a /proc entry.
    match std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The advisory-lock key of a sync in the store whose tables live in `schema`: the first 8 bytes
/// of SHA-256 of `"syncctl:sync:" + schema + NUL + name` (NUL cannot occur in either, so no two
/// pairs hash the same input).
fn advisory_key(schema: &str, sync: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("syncctl:sync:{schema}\0{sync}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisory_keys_are_stable_and_distinct() {
        assert_eq!(advisory_key("public", "a"), advisory_key("public", "a"));
        assert_ne!(advisory_key("public", "a"), advisory_key("public", "b"));
        assert_ne!(advisory_key("s1", "a"), advisory_key("s2", "a"));
        assert_ne!(advisory_key("s1", "ab"), advisory_key("s1a", "b"));
    }

    #[test]
    fn this_process_is_alive_and_a_huge_pid_is_not() {
        assert!(process_alive(i64::from(std::process::id())));
        assert!(!process_alive(4_000_000_000));
    }
}
