//! `GET /metrics`: the engine in Prometheus text format. Gauges are read from the tables (they
//! cover every worker); counters are this process's own since it started.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tabiji_model::Op;
use tabiji_storage::{StorageError, journeys};

use super::Caller;
use crate::AppState;
use crate::error::ApiResult;

/// The rights entity for reading metrics: `{"entities": {"metrics": {"ops": ["view"]}}}`.
pub const METRICS: &str = "metrics";

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, METRICS, Op::View).await?;
    let now = state.clock.now().timestamp_millis();
    let gauges = journeys::engine_gauges(&state.store.db().conn, now)
        .await
        .map_err(StorageError::from)?;
    let mut out = String::new();
    family(
        &mut out,
        "tabiji_runs",
        "gauge",
        "Runs by state, all flows.",
    );
    for (state, n) in &gauges.runs {
        let _ = writeln!(out, "tabiji_runs{{state=\"{}\"}} {n}", escape(state));
    }
    family(
        &mut out,
        "tabiji_deliveries",
        "gauge",
        "Outbox deliveries by status; dead ones are the dead letters.",
    );
    for (status, n) in &gauges.deliveries {
        let _ = writeln!(
            out,
            "tabiji_deliveries{{status=\"{}\"}} {n}",
            escape(status)
        );
    }
    family(
        &mut out,
        "tabiji_timers_due",
        "gauge",
        "Waiting runs whose timer is due (queue depth).",
    );
    let _ = writeln!(out, "tabiji_timers_due {}", gauges.timers_due);
    family(
        &mut out,
        "tabiji_timer_lag_seconds",
        "gauge",
        "How late the most overdue timer is.",
    );
    let _ = writeln!(
        out,
        "tabiji_timer_lag_seconds {:.3}",
        gauges.timer_lag_ms as f64 / 1000.0
    );
    family(
        &mut out,
        "tabiji_events_unprocessed",
        "gauge",
        "Events stored and not yet applied.",
    );
    let _ = writeln!(
        out,
        "tabiji_events_unprocessed {}",
        gauges.events_unprocessed
    );
    let counters = &state.runtime.counters;
    family(
        &mut out,
        "tabiji_engine_moves_total",
        "counter",
        "Runs this process stored after a move.",
    );
    let _ = writeln!(
        out,
        "tabiji_engine_moves_total {}",
        counters.moves.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "tabiji_engine_steps_total",
        "counter",
        "Step-log rows this process wrote.",
    );
    let _ = writeln!(
        out,
        "tabiji_engine_steps_total {}",
        counters.steps.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "tabiji_engine_deliveries_total",
        "counter",
        "Deliveries this process settled, by outcome.",
    );
    let mut outcomes: Vec<(&str, u64)> = counters
        .deliveries
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    outcomes.sort();
    for (outcome, n) in outcomes {
        let _ = writeln!(
            out,
            "tabiji_engine_deliveries_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
