//! Connections: SQLite (embedded default) or PostgreSQL, chosen by the URL.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{
    DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, SqliteTransactionMode,
    SqlxPostgresConnector, SqlxSqliteConnector, TransactionOptions, TransactionTrait,
};
use tokio::sync::OnceCell;

/// The database tabiji uses when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tabiji.db";

#[derive(Clone, Debug)]
pub struct Db {
    pub conn: DatabaseConnection,
    url: Url,
    /// The SQL workspace's read-only connections, opened when first used.
    sandbox: Arc<OnceCell<Sandbox>>,
    /// Access-log lines on their way in, written in groups.
    pub(crate) journal: Arc<crate::audit::Journal>,
}

/// The database URL, which may hold a password: never printed.
#[derive(Clone)]
struct Url(Arc<str>);

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Url(…)")
    }
}

/// Connections that cannot write: the database refuses, whatever the SQL says.
#[derive(Clone, Debug)]
pub enum Sandbox {
    /// Opened read-only (`SQLITE_OPEN_READONLY`, `query_only`).
    Sqlite(SqlitePool),
    /// Every transaction read-only by default; the workspace also begins each one `READ ONLY`.
    Postgres(PgPool),
}

/// At most this many workspace queries run at once; more wait for a connection.
const SANDBOX_CONNECTIONS: u32 = 2;

/// The longest text or blob a workspace query may build on SQLite (16 MiB): a query that
/// doubles a string until memory runs out stops here with "string or blob too big", long
/// before the time limit would notice (SQLite's progress handler counts steps, not bytes).
const SANDBOX_MAX_LENGTH: i32 = 16 * 1024 * 1024;

impl Db {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://…`.
    pub async fn connect(url: &str) -> Result<Db, DbErr> {
        let conn = if url.starts_with("sqlite:") {
            // WAL lets readers go on while one writer writes; NORMAL is durable across
            // application crashes, which is what WAL mode is designed for.
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| DbErr::Custom(format!("DATABASE_URL {url:?}: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .pragma("cache_size", "-65536")
                // Reads straight from the page cache of the operating system instead of a copy
                // per read: searches over millions of records read many pages. 2 GiB is
                // SQLite's own ceiling.
                .pragma("mmap_size", "2147418112")
                .pragma("temp_store", "memory");
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
            SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // JIT compilation pays off for long analytic queries; for searches, counts and
            // the engine's short statements it costs more than the query (300 ms to compile a
            // 40 ms segment count).
            let options = PgConnectOptions::from_str(url)
                .map_err(|e| DbErr::Custom(format!("DATABASE_URL: {e}")))?
                .options([("jit", "off")]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into())))?;
            SqlxPostgresConnector::from_sqlx_postgres_pool(pool)
        } else {
            return Err(DbErr::Custom(format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {:?})",
                url.split(':').next().unwrap_or("")
            )));
        };
        Ok(Db {
            conn,
            url: Url(url.into()),
            sandbox: Arc::new(OnceCell::new()),
            journal: Arc::default(),
        })
    }

    /// The read-only connections of the SQL workspace.
    pub async fn sandbox(&self) -> Result<&Sandbox, DbErr> {
        self.sandbox
            .get_or_try_init(|| async {
                let url = &*self.url.0;
                let connect_error =
                    |e: sea_orm::sqlx::Error| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e.into()));
                let sandbox = if url.starts_with("sqlite:") {
                    let options = SqliteConnectOptions::from_str(url)
                        .map_err(|e| DbErr::Custom(format!("DATABASE_URL: {e}")))?
                        .read_only(true)
                        .busy_timeout(Duration::from_secs(10))
                        .pragma("query_only", "1")
                        .pragma("mmap_size", "2147418112");
                    let pool = SqlitePoolOptions::new()
                        .max_connections(SANDBOX_CONNECTIONS)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                let mut handle = conn.lock_handle().await?;
                                // SAFETY: the handle is this open connection's, held locked
                                // for the call; sqlite3_limit only sets a number on it.
                                unsafe {
                                    libsqlite3_sys::sqlite3_limit(
                                        handle.as_raw_handle().as_ptr(),
                                        libsqlite3_sys::SQLITE_LIMIT_LENGTH,
                                        SANDBOX_MAX_LENGTH,
                                    );
                                }
                                Ok(())
                            })
                        })
                        .connect_with(options)
                        .await
                        .map_err(connect_error)?;
                    Sandbox::Sqlite(pool)
                } else {
                    let options = PgConnectOptions::from_str(url)
                        .map_err(|e| DbErr::Custom(format!("DATABASE_URL: {e}")))?
                        // Sorts and hashes past 16 MB spill to disk instead of memory.
                        .options([
                            ("jit", "off"),
                            ("default_transaction_read_only", "on"),
                            ("work_mem", "16MB"),
                        ]);
                    let pool = PgPoolOptions::new()
                        .max_connections(SANDBOX_CONNECTIONS)
                        .acquire_timeout(Duration::from_secs(30))
                        .connect_with(options)
                        .await
                        .map_err(connect_error)?;
                    Sandbox::Postgres(pool)
                };
                Ok(sandbox)
            })
            .await
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so that it waits its turn behind other writers (up to the busy timeout)
/// instead of failing with "database is locked" when it reads first and another writer
/// commits before its own first write. PostgreSQL begins as usual.
pub async fn begin_write(conn: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match conn.get_database_backend() {
        DatabaseBackend::Sqlite => {
            conn.begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
        }
        _ => conn.begin().await,
    }
}

/// Whether `e` says the database could not be reached (stopped, restarting, the network
/// down) rather than that the statement was wrong: the same request can succeed once the
/// database is back, so callers answer "try again" and workers retry.
pub fn is_unreachable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error;
    match e {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => match e.as_ref() {
            // A pool that hands out no connection in time is as good as unreachable to the
            // caller: the database is down, or too busy to answer now.
            Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut | Error::PoolClosed => true,
            // SQLSTATE connection exceptions (class 08, but not 08P01, a protocol violation:
            // a bug), too many connections, and 57P01…57P03: the server is shutting down,
            // crashed or still starting.
            Error::Database(db) => db.code().is_some_and(|code| {
                matches!(
                    code.as_ref(),
                    "08000"
                        | "08001"
                        | "08003"
                        | "08004"
                        | "08006"
                        | "53300"
                        | "57P01"
                        | "57P02"
                        | "57P03"
                )
            }),
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::ConnectionTrait;

    #[tokio::test]
    async fn a_stopped_server_is_unreachable_and_a_bad_statement_is_not() {
        // Nothing listens on port 1 of the loopback address: the connection is refused.
        let refused = PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .expect("a lazy pool opens without connecting");
        let conn = SqlxPostgresConnector::from_sqlx_postgres_pool(refused);
        let err = conn
            .execute_unprepared("SELECT 1")
            .await
            .expect_err("nothing listens there");
        assert!(is_unreachable(&err), "{err:?}");

        let db = Db::connect("sqlite::memory:").await.unwrap();
        let err = db
            .conn
            .execute_unprepared("SELECT * FROM no_such_table")
            .await
            .expect_err("the table does not exist");
        assert!(!is_unreachable(&err), "{err:?}");
    }
}
