//! The scheduler (MA-3): each active scheduled flow's due tick starts a bulk entry of its
//! segment, keyed by the tick. A tick is a row with a primary key, so however many workers
//! run the scheduler, each tick fires once.
//!
//! Catch-up rule: ticks count from the later of the last tick fired and the version's
//! publication. After downtime (or a pause) only the latest missed tick fires, late; older
//! missed ticks are skipped, so a week offline does not send seven newsletters at once.

use tabiji_model::zone::Zone;
use tabiji_storage::db::begin_write;
use tabiji_storage::journeys;

use super::{Result, Runtime, from_millis, millis};

impl Runtime {
    /// Fires the due tick of every active scheduled flow. Returns how many fired here.
    pub async fn schedule_step(&self) -> Result<usize> {
        let conn = &self.store.db().conn;
        let now = self.now();
        let mut fired = 0;
        for f in journeys::live_flows(conn)
            .await?
            .into_iter()
            .filter(|f| f.active)
        {
            let flow = self.flow(f.id, f.version).await?;
            let Some(Ok(schedule)) = flow.entry.schedule() else {
                continue;
            };
            let Some(zone) = Zone::parse(&flow.settings.zone) else {
                continue;
            };
            let published = journeys::published_at(conn, f.id, f.version).await?;
            let last = journeys::last_tick(conn, f.id).await?;
            let Some(since) = last.max(published) else {
                continue;
            };
            let Some(tick) = schedule.latest_between(from_millis(since), now, &zone) else {
                continue;
            };
            let tick = millis(tick);
            let txn = begin_write(conn).await?;
            if journeys::claim_tick(&txn, f.id, tick, millis(now)).await? {
                let key = format!("tick:{tick}");
                journeys::start_entry(&txn, f.id, f.version, &key, millis(now)).await?;
                fired += 1;
                tracing::info!(flow_id = f.id, tick = %from_millis(tick), "schedule tick fired");
            }
            txn.commit().await?;
        }
        Ok(fired)
    }
}
