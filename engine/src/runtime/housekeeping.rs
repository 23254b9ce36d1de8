//! Keeping what the law and the operator allow, no longer: the access log holds one month
//! (CF-3), ended sessions and lifted sign-in locks thirty days.

use std::time::Duration;

use tabiji_storage::{audit, sessions};

use super::{Result, Runtime};

/// How often a worker purges: an entry outlives its month by at most this much.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

impl Runtime {
    /// At most once per [`HOUSEKEEPING_EVERY`] per process: deletes access-log entries older
    /// than a month, and sessions and locks past keeping. Returns how many rows went.
    pub async fn housekeeping_step(&self) -> Result<usize> {
        let now = self.now();
        {
            let mut last = self.housekept_at.lock().expect("not poisoned");
            let due = last.is_none_or(|at| {
                now.signed_duration_since(at).to_std().unwrap_or_default() >= HOUSEKEEPING_EVERY
            });
            if !due {
                return Ok(0);
            }
            *last = Some(now);
        }
        let db = self.store.db();
        let log = audit::purge(db, now).await?;
        let ended = sessions::purge(db, now).await?;
        if log > 0 {
            tracing::info!(
                entries = log,
                "access-log entries older than one month purged"
            );
        }
        Ok((log + ended) as usize)
    }
}
