//! Scheduled exports: each job's due run (for example the point programme's file every
//! morning at 04:00 in Asia/Tokyo), fired once across workers, acting as the user who saved the
//! job with their rights as they are now. The run is due at the schedule's tick, so relative
//! periods in its filter (`{"last": "day"}`) and the date in its file name count from the tick,
//! not from when a busy worker got to it.

use chrono::{DateTime, Utc};
use tabiji_storage::export_jobs::{self, SavedJob};

use super::{Result, Runtime, from_millis, millis};
use crate::export::run_job;

impl Runtime {
    /// Runs every export job whose time has come; returns how many files were delivered.
    pub(super) async fn due_exports(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut delivered = 0;
        for saved in export_jobs::all(&self.store).await? {
            let job = &saved.definition;
            let (Some(Ok(schedule)), Some(zone)) = (job.schedule(), job.zone()) else {
                continue;
            };
            let since = export_jobs::last_tick(&self.store, &saved.key)
                .await?
                .map(from_millis)
                .map_or(saved.updated_at, |last| last.max(saved.updated_at));
            let Some(tick) = schedule.latest_between(since, now, &zone) else {
                continue;
            };
            if !export_jobs::claim_tick(&self.store, &saved.key, millis(tick), millis(now)).await? {
                continue;
            }
            delivered += self.export_now(&saved, tick).await?;
        }
        Ok(delivered)
    }

    async fn export_now(&self, saved: &SavedJob, due: DateTime<Utc>) -> Result<usize> {
        let Some(who) = export_jobs::owner(&self.store, saved).await? else {
            tracing::error!(
                job = %saved.key,
                owner = %saved.created_by,
                "scheduled export skipped: the user who saved the job is gone or disabled; save it again as an active user"
            );
            return Ok(0);
        };
        match run_job(
            &self.store,
            &who,
            &saved.key,
            &saved.definition,
            due,
            self.transfers(),
            self.clock.as_ref(),
        )
        .await
        {
            Ok(run) => {
                tracing::info!(job = %saved.key, run = run.id, status = ?run.status, "scheduled export ran");
                Ok(usize::from(run.error.is_none()))
            }
            Err(e) => {
                // The owner lost the right, or the schema changed under the job: nothing was
                // made, and the history says why.
                tracing::error!(job = %saved.key, error = %e, "scheduled export refused");
                let job = &saved.definition;
                let id = export_jobs::start(
                    &self.store,
                    &who,
                    &saved.key,
                    job,
                    &job.file_name(due),
                    due,
                    self.now(),
                )
                .await?;
                export_jobs::finish(&self.store, &who, id, Err(e.to_string()), self.now()).await?;
                Ok(0)
            }
        }
    }
}
