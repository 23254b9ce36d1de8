//! Keeping calculated attributes (DM-9) up to date: the worker's part of
//! `tabiji_storage::calculated`.

use tabiji_storage::calculated;
use tabiji_storage::search::parse_zone;

use super::{Result, Runtime};

impl Runtime {
    /// At most once per `calculated_every`: every calculated attribute for the tourists whose
    /// history changed, and in full once a day. Returns how many values changed.
    pub async fn calculated_step(&self) -> Result<usize> {
        let now = self.now();
        {
            let mut last = self.calculated_at.lock().expect("not poisoned");
            let due = last.is_none_or(|at| {
                now.signed_duration_since(at).to_std().unwrap_or_default()
                    >= self.config.calculated_every
            });
            if !due {
                return Ok(0);
            }
            *last = Some(now);
        }
        let zone = parse_zone(None)?;
        Ok(calculated::tick(&self.store, zone, now).await? as usize)
    }
}
