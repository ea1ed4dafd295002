//! One shared, self-healing Redis connection with a deadline on every call.
//!
//! Invariants:
//! - Every call ends within `op_timeout`: connecting, sending and reading included. A server
//!   that is down answers [`ClusterError::Unreachable`] or [`ClusterError::Timeout`], never a
//!   hang.
//! - A connection that failed (I/O error, dropped, timed out) is discarded; the next call
//!   makes a new one. A call that finds its *cached* connection dead (the server restarted
//!   since the last call) retries once on a fresh connection within the same deadline, so the
//!   first call after a restart succeeds. The retry is safe for what [`RedisLink::query`]
//!   sends: it is idempotent in effect (the registry scripts, `SET`, `DEL`, `SADD`). A
//!   `PUBLISH` goes through [`RedisLink::query_once`], which never retries, so a message is
//!   never sent twice (at-most-once); the bus discards the cached connection itself when it
//!   sees Redis go down, so the first publish after a recovery does not hit a dead one.
//! - Calls share one multiplexed connection: concurrent pipelines are interleaved, never
//!   serialized behind each other.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, Pipeline};
use tokio::sync::Mutex;

use crate::error::{is_redis_connection_error, ClusterError, Redactor};

/// A lazily (re)connected multiplexed Redis connection.
pub(crate) struct RedisLink {
    client: redis::Client,
    config: AsyncConnectionConfig,
    slot: Mutex<Slot>,
    op_timeout: Duration,
    redactor: Redactor,
}

/// The cached connection and its generation (bumped on every new connection).
#[derive(Default)]
struct Slot {
    conn: Option<MultiplexedConnection>,
    generation: u64,
}

impl RedisLink {
    /// Parses `url`; connects on first use.
    pub(crate) fn open(url: &str, op_timeout: Duration) -> Result<RedisLink, ClusterError> {
        let redactor = Redactor::for_url(url);
        let client = redis::Client::open(url).map_err(|e| {
            ClusterError::Protocol(format!(
                "invalid Redis URL: {}",
                redactor.clean(&e.to_string())
            ))
        })?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout));
        Ok(RedisLink {
            client,
            config,
            slot: Mutex::new(Slot::default()),
            op_timeout,
            redactor,
        })
    }

    /// The client, for connections of another kind (pub/sub).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The error mapper of this URL.
    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The per-call deadline.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// Runs `pipe` (one round trip) and converts its replies to `T`, within the deadline;
    /// retries once on a fresh connection if the cached one turns out dead.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, ClusterError> {
        self.bounded(self.query_inner(pipe, true)).await
    }

    /// Like [`query`](Self::query), without the retry: for commands that must not run twice
    /// (`PUBLISH`, at-most-once).
    pub(crate) async fn query_once<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, ClusterError> {
        self.bounded(self.query_inner(pipe, false)).await
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        match crate::rt::within(self.op_timeout, call).await {
            Some(result) => result,
            None => {
                // Whatever connection was in use may be wedged: start afresh next time.
                self.discard(None).await;
                Err(ClusterError::Timeout)
            }
        }
    }

    async fn query_inner<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        retry: bool,
    ) -> Result<T, ClusterError> {
        let (conn, generation, fresh) = self.connection().await?;
        match self.attempt(conn, generation, pipe).await {
            Ok(v) => Ok(v),
            Err((true, e)) if retry && !fresh => {
                tracing::debug!(error = %e, "redis connection lost; retrying once");
                let (conn, generation, _) = self.connection().await?;
                self.attempt(conn, generation, pipe)
                    .await
                    .map_err(|(_, e)| e)
            }
            Err((_, e)) => Err(e),
        }
    }

    /// One try on `conn`; the error says whether the connection is broken (and was dropped).
    async fn attempt<T: FromRedisValue>(
        &self,
        mut conn: MultiplexedConnection,
        generation: u64,
        pipe: &Pipeline,
    ) -> Result<T, (bool, ClusterError)> {
        match pipe.query_async::<T>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) if is_redis_connection_error(&e) => {
                self.discard(Some(generation)).await;
                Err((true, self.redactor.redis(&e)))
            }
            Err(e) => Err((false, self.redactor.redis(&e))),
        }
    }

    /// The cached connection, or a new one: `(connection, generation, newly made)`.
    async fn connection(&self) -> Result<(MultiplexedConnection, u64, bool), ClusterError> {
        let mut slot = self.slot.lock().await;
        if let Some(conn) = &slot.conn {
            return Ok((conn.clone(), slot.generation, false));
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .map_err(|e| self.redactor.redis(&e))?;
        slot.generation += 1;
        slot.conn = Some(conn.clone());
        Ok((conn, slot.generation, true))
    }

    /// Drops the cached connection (only if it is still `generation`, when given).
    pub(crate) async fn discard(&self, generation: Option<u64>) {
        let mut slot = self.slot.lock().await;
        if generation.is_none_or(|g| g == slot.generation) {
            slot.conn = None;
        }
    }
}
