//! Scheduled imports: each directory or SFTP flow's due fetch (for example every night at
//! 03:00 in Asia/Tokyo), fired once across workers, acting as the user who saved the flow with
//! their rights as they are now. A fetch that fails before any file is read (a folder gone,
//! outside the import root, an SFTP server unreachable or offering another host key) is
//! recorded in the import history as a failed run, so it is seen.

use tabiji_model::import::Source;
use tabiji_storage::imports::{self, File, SavedFlow};

use super::{Result, Runtime, from_millis, millis};

/// How often a worker looks for fetches and exports that are due.
const IMPORT_CHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
use crate::import::fetch::{FetchError, fetch};

impl Runtime {
    /// Fetches the files of every directory and SFTP flow whose time has come and runs every
    /// export job that is due. Returns how many files were imported and exported.
    pub async fn transfer_step(&self) -> Result<usize> {
        let now = self.now();
        {
            // Schedules count in minutes: looking every few seconds is enough.
            let mut last = self.transfers_at.lock().expect("not poisoned");
            if last.is_some_and(|at| now.signed_duration_since(at) < IMPORT_CHECK_EVERY) {
                return Ok(0);
            }
            *last = Some(now);
        }
        let abandoned = imports::fail_abandoned(&self.store, now).await?
            + tabiji_storage::export_jobs::fail_abandoned(&self.store, now).await?;
        if abandoned > 0 {
            tracing::warn!(
                runs = abandoned,
                "runs a stopped process left running marked failed"
            );
        }
        // One failing does not hold the other up; the first error is reported.
        let imported = self.due_imports(now).await;
        let exported = self.due_exports(now).await;
        Ok(imported? + exported?)
    }

    async fn due_imports(&self, now: chrono::DateTime<chrono::Utc>) -> Result<usize> {
        let mut imported = 0;
        for saved in imports::all(&self.store).await? {
            let flow = &saved.definition;
            if matches!(flow.source, Source::Upload) {
                continue;
            }
            let (Some(Ok(schedule)), Some(zone)) = (flow.schedule(), flow.zone()) else {
                continue;
            };
            let since = imports::last_tick(&self.store, &saved.key)
                .await?
                .map(from_millis)
                .map_or(saved.updated_at, |last| last.max(saved.updated_at));
            let Some(tick) = schedule.latest_between(since, now, &zone) else {
                continue;
            };
            if !imports::claim_tick(&self.store, &saved.key, millis(tick), millis(now)).await? {
                continue;
            }
            imported += self.fetch_now(&saved).await?;
        }
        Ok(imported)
    }

    async fn fetch_now(&self, saved: &SavedFlow) -> Result<usize> {
        let Some(who) = imports::owner(&self.store, saved).await? else {
            tracing::error!(
                flow = %saved.key,
                owner = %saved.created_by,
                "scheduled import skipped: the user who saved the flow is gone or disabled; save it again as an active user"
            );
            return Ok(0);
        };
        match fetch(
            &self.store,
            &who,
            &saved.key,
            &saved.definition,
            self.transfers(),
            self.clock.as_ref(),
        )
        .await
        {
            Ok(runs) => {
                tracing::info!(flow = %saved.key, files = runs.len(), "scheduled import fetched");
                Ok(runs.len())
            }
            Err(e) => {
                tracing::error!(flow = %saved.key, error = %e, "scheduled import failed");
                let place = saved.definition.source.place();
                let file = File {
                    name: &place,
                    sha256: String::new(),
                    bytes: 0,
                };
                let id = imports::start(
                    &self.store,
                    &who,
                    &saved.key,
                    &saved.definition,
                    &file,
                    self.now(),
                )
                .await?;
                let reason = match e {
                    FetchError::Storage(e) => e.to_string(),
                    other => other.to_string(),
                };
                imports::finish(&self.store, &who, id, Some(&reason), self.now()).await?;
                Ok(0)
            }
        }
    }
}
