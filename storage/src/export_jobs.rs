//! Saved scheduled exports (DI-4) and the history of their runs: which file went where, when,
//! by whom, with how many rows, its size and checksum, or why it failed.
//!
//! Rights: the export right (and the view right) on a job's entity saves, runs and reads the
//! job and its history; which fields go out is checked again each time it runs.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, QueryResult};
use serde::Serialize;
use tabiji_model::Op;
use tabiji_model::export::ExportJob;
use tabiji_model::schema::check_identifier;

use crate::auth::Principal;
use crate::error::{ItemError, Result, StorageError};
use crate::imports::Status;
use crate::records::Store;
use crate::saved::{History, Saved, Table};

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// An export job saved under a key.
pub type SavedJob = Saved<ExportJob>;

const JOBS: Table = Table {
    name: "sys_export_jobs",
    kind: "export job",
};

/// One run of a job: one file made and delivered.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRun {
    pub id: i64,
    pub job: String,
    pub entity: String,
    pub definition: ExportJob,
    pub file_name: String,
    /// The folder, or `sftp://user@host:port/folder`.
    pub destination: String,
    /// The time the run was due (its schedule's tick, or when it was asked for).
    pub due_at: DateTime<Utc>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub rows: i64,
    pub file_bytes: i64,
    pub file_sha256: String,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// What a finished run made.
pub struct Made {
    pub rows: i64,
    pub bytes: i64,
    pub sha256: String,
}

fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> StorageError {
    StorageError::invalid(ItemError::field(field, code, message))
}

impl Store {
    /// The caller may export from the job's entity (which needs viewing it too).
    pub async fn require_export_job(&self, who: &Principal, job: &ExportJob) -> Result<()> {
        self.require(who, &job.entity, Op::View).await?;
        self.require(who, &job.entity, Op::Export).await
    }
}

/// Every problem with `job` against the current schema, as field errors.
pub async fn check(store: &Store, job: &ExportJob) -> Result<()> {
    let schema = store.entity_schema(&job.entity).await.ok();
    crate::saved::problems(job.check(schema.as_deref()))
}

/// Saves (or replaces) the job called `key`.
pub async fn save(
    store: &Store,
    who: &Principal,
    key: &str,
    job: &ExportJob,
    now: DateTime<Utc>,
) -> Result<SavedJob> {
    check_identifier(key).map_err(|m| invalid("key", "invalid_key", m))?;
    store.require_export_job(who, job).await?;
    check(store, job).await?;
    // What it would write is checked against the saver now, and against its owner at each run.
    let fields = job
        .fields
        .iter()
        .map(String::as_str)
        .chain(job.summary.iter().flat_map(|s| {
            s.group_by
                .iter()
                .map(|g| g.field.as_str())
                .chain(s.measures.iter().filter_map(|m| m.field()))
        }));
    for field in fields {
        if !who.rights.can_view_field(&job.entity, field) {
            return Err(StorageError::Forbidden {
                entity: job.entity.clone(),
                op: Op::Export.name(),
                field: Some(field.to_string()),
            });
        }
    }
    if let Some(existing) = JOBS.find::<ExportJob>(store, key).await? {
        store.require_export_job(who, &existing.definition).await?;
    }
    JOBS.upsert(store, who, key, &job.entity, job, now).await?;
    store
        .log(
            who,
            "save_export_job",
            &job.entity,
            None,
            "ok",
            Some(key.to_string()),
        )
        .await?;
    JOBS.find(store, key)
        .await?
        .ok_or_else(|| JOBS.not_found(key))
}

pub async fn get(store: &Store, who: &Principal, key: &str) -> Result<SavedJob> {
    let job = JOBS
        .find::<ExportJob>(store, key)
        .await?
        .ok_or_else(|| JOBS.not_found(key))?;
    store.require_export_job(who, &job.definition).await?;
    Ok(job)
}

/// The jobs whose entity the caller may export from.
pub async fn list(store: &Store, who: &Principal) -> Result<Vec<SavedJob>> {
    Ok(JOBS
        .select::<ExportJob>(store, None)
        .await?
        .into_iter()
        .filter(|job| {
            who.rights.allows(&job.definition.entity, Op::View)
                && who.rights.allows(&job.definition.entity, Op::Export)
        })
        .collect())
}

/// Every saved job, for the scheduler.
pub async fn all(store: &Store) -> Result<Vec<SavedJob>> {
    JOBS.select(store, None).await
}

pub async fn delete(store: &Store, who: &Principal, key: &str) -> Result<()> {
    let job = get(store, who, key).await?;
    JOBS.remove(store, key).await?;
    store
        .log(
            who,
            "delete_export_job",
            &job.definition.entity,
            None,
            "ok",
            Some(key.into()),
        )
        .await
}

/// Records that a run of `job` due at `due` began; returns its id.
pub async fn start(
    store: &Store,
    who: &Principal,
    key: &str,
    job: &ExportJob,
    file_name: &str,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<i64> {
    let definition = serde_json::to_string(job).expect("a job serialises");
    let insert = Query::insert()
        .into_table(col("sys_exports"))
        .columns(
            [
                "job_key",
                "entity",
                "definition",
                "file_name",
                "destination",
                "due_at",
                "status",
                "rows_written",
                "file_bytes",
                "file_sha256",
                "started_by",
                "started_at",
            ]
            .map(col),
        )
        .values_panic([
            key.into(),
            job.entity.as_str().into(),
            definition.into(),
            file_name.into(),
            job.destination.place().into(),
            due.timestamp_millis().into(),
            "running".into(),
            0i64.into(),
            0i64.into(),
            "".into(),
            who.login.as_str().into(),
            now.into(),
        ])
        .returning_col(col("id"))
        .to_owned();
    let row = store
        .db()
        .conn
        .query_one(&insert)
        .await?
        .ok_or_else(|| StorageError::Database(sea_orm::DbErr::RecordNotInserted))?;
    Ok(row.try_get("", "id")?)
}

/// Records how run `id` ended: what it made, or why it failed.
pub async fn finish(
    store: &Store,
    who: &Principal,
    id: i64,
    outcome: std::result::Result<Made, String>,
    now: DateTime<Utc>,
) -> Result<ExportRun> {
    let mut update = Query::update();
    update
        .table(col("sys_exports"))
        .value(col("finished_at"), now)
        .and_where(Expr::col(col("id")).eq(id));
    match &outcome {
        Ok(made) => {
            update
                .value(col("status"), "done")
                .value(col("rows_written"), made.rows)
                .value(col("file_bytes"), made.bytes)
                .value(col("file_sha256"), made.sha256.as_str());
        }
        Err(error) => {
            update
                .value(col("status"), "failed")
                .value(col("error"), error.as_str());
        }
    }
    store.db().conn.execute(&update).await?;
    let run = RUNS
        .select(store, &[], Some(id), None, 1, run)
        .await?
        .pop()
        .ok_or_else(|| StorageError::NotFound {
            entity: "exports".into(),
            id,
        })?;
    let mut detail = format!(
        "export {id} by job {}: {} rows to {}/{}",
        run.job, run.rows, run.destination, run.file_name
    );
    if let Err(error) = &outcome {
        detail.push_str(&format!("; failed: {error}"));
    }
    let result = if outcome.is_ok() { "ok" } else { "failed" };
    store
        .log(
            who,
            "export_job_run",
            &run.entity,
            None,
            result,
            Some(detail),
        )
        .await?;
    Ok(run)
}

const RUN_COLUMNS: [&str; 15] = [
    "id",
    "job_key",
    "entity",
    "definition",
    "file_name",
    "destination",
    "due_at",
    "status",
    "error",
    "rows_written",
    "file_bytes",
    "file_sha256",
    "started_by",
    "started_at",
    "finished_at",
];

const RUNS: History = History {
    table: "sys_exports",
    key_column: "job_key",
    columns: &RUN_COLUMNS,
};

fn run(row: &QueryResult) -> Result<ExportRun> {
    let status: String = row.try_get("", "status")?;
    let due: i64 = row.try_get("", "due_at")?;
    Ok(ExportRun {
        id: row.try_get("", "id")?,
        job: row.try_get("", "job_key")?,
        entity: row.try_get("", "entity")?,
        definition: JOBS.definition(row)?,
        file_name: row.try_get("", "file_name")?,
        destination: row.try_get("", "destination")?,
        due_at: DateTime::from_timestamp_millis(due).unwrap_or_default(),
        status: Status::parse(&status),
        error: row.try_get("", "error")?,
        rows: row.try_get("", "rows_written")?,
        file_bytes: row.try_get("", "file_bytes")?,
        file_sha256: row.try_get("", "file_sha256")?,
        started_by: row.try_get("", "started_by")?,
        started_at: row.try_get("", "started_at")?,
        finished_at: row.try_get("", "finished_at")?,
    })
}

/// Runs newest first, of one job or of all, that the caller may see; at most `limit`.
pub async fn history(
    store: &Store,
    who: &Principal,
    job: Option<&str>,
    limit: u64,
) -> Result<Vec<ExportRun>> {
    RUNS.visible(
        store,
        who,
        job,
        limit,
        |e| who.rights.allows(e, Op::View) && who.rights.allows(e, Op::Export),
        run,
    )
    .await
}

/// Marks failed the export runs a stopped process left `running` (see
/// [`crate::saved::ABANDONED_AFTER`]); answers how many.
pub async fn fail_abandoned(store: &Store, now: DateTime<Utc>) -> Result<u64> {
    RUNS.fail_abandoned(store, now).await
}

/// The latest scheduled run of job `key` that fired (epoch milliseconds).
pub async fn last_tick(store: &Store, key: &str) -> Result<Option<i64>> {
    crate::ticks::last(store, "sys_export_ticks", "job_key", key).await
}

/// Records that job `key`'s run due at `tick_at` fires; `false` when another worker recorded
/// it first.
pub async fn claim_tick(store: &Store, key: &str, tick_at: i64, now: i64) -> Result<bool> {
    crate::ticks::claim(store, "sys_export_ticks", "job_key", key, tick_at, now).await
}

/// Whom a scheduled run of `job` acts as: see [`crate::ticks::acting_owner`].
pub async fn owner(store: &Store, job: &SavedJob) -> Result<Option<Principal>> {
    crate::ticks::acting_owner(store, &job.created_by).await
}
