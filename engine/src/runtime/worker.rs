//! The worker: two loops sharing one [`Runtime`]. One moves runs (schedule ticks, entries,
//! events, timers);
//! the other sends the outbox, so a slow provider never holds up the runs. Several workers,
//! in one process or on several machines, share the work through the tables' leases.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Runtime;

/// Stops the worker's loops after their current batch.
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl WorkerHandle {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// How long a loop rests after an error (the database restarting, say) before trying again.
const AFTER_ERROR: Duration = Duration::from_secs(1);

pub fn spawn_worker(runtime: Arc<Runtime>) -> WorkerHandle {
    let (stop, stopped) = watch::channel(false);
    let steps = {
        let runtime = runtime.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            run_loop(runtime, stopped, "steps", |rt| {
                Box::pin(async move {
                    let ticks = rt.schedule_step().await?;
                    let entered = rt.enter_step().await?;
                    let joined = rt.segment_enter_step().await?;
                    let events = rt.event_step().await?;
                    let timers = rt.timer_step().await?;
                    let calculated = rt.calculated_step().await?;
                    let purged = rt.housekeeping_step().await?;
                    Ok(ticks + entered + joined + events + timers + calculated + purged)
                })
            })
            .await
        })
    };
    // Imports get a loop of their own: a large file must not hold up timers and sends.
    let imports = {
        let runtime = runtime.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            run_loop(runtime, stopped, "transfers", |rt| {
                Box::pin(async move { rt.transfer_step().await })
            })
            .await
        })
    };
    let sends = tokio::spawn(async move {
        run_loop(runtime, stopped, "deliveries", |rt| {
            Box::pin(async move {
                let expired = rt.expire_step().await?;
                if expired > 0 {
                    tracing::warn!(
                        expired,
                        "deliveries interrupted mid-send were marked unknown, not resent"
                    );
                }
                rt.deliver_step().await
            })
        })
        .await
    });
    WorkerHandle {
        stop,
        tasks: vec![steps, imports, sends],
    }
}

type Round<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = super::Result<usize>> + Send + 'a>>;

async fn run_loop(
    runtime: Arc<Runtime>,
    mut stopped: watch::Receiver<bool>,
    name: &'static str,
    round: impl for<'a> Fn(&'a Runtime) -> Round<'a>,
) {
    let idle = runtime.config.idle_poll;
    loop {
        if *stopped.borrow() {
            return;
        }
        let rest = match round(&runtime).await {
            Ok(0) => idle,
            Ok(done) => {
                tracing::debug!(name, done, "worker round");
                continue;
            }
            Err(e) => {
                tracing::error!(name, error = %e, "worker round failed; retrying");
                AFTER_ERROR
            }
        };
        tokio::select! {
            _ = stopped.changed() => {}
            _ = runtime.wake.notified() => {}
            _ = tokio::time::sleep(rest) => {}
        }
    }
}
