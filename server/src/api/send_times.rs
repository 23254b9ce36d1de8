//! `/api/send-times` (MA-16): when messages are opened and how often contacts are sent to,
//! for choosing send times and frequencies. Needs the view right on reports and on flows.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Duration;
use serde::Deserialize;
use serde_json::{Value, json};
use tabiji_model::Op;
use tabiji_model::zone::Zone;
use tabiji_storage::flows::FLOWS;
use tabiji_storage::reports::REPORTS;
use tabiji_storage::{StorageError, journeys};

use super::{Caller, Query};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/send-times", get(send_times))
}

#[derive(Deserialize)]
struct SendTimesQuery {
    /// How many days back (default 90, at most 730).
    days: Option<i64>,
    /// The zone hours are counted in (default Asia/Tokyo).
    zone: Option<String>,
}

/// Sends per contact in the period, grouped as marketers think of frequency.
const FREQUENCIES: [(&str, u64, u64); 5] = [
    ("1", 1, 1),
    ("2-3", 2, 3),
    ("4-7", 4, 7),
    ("8-15", 8, 15),
    ("16+", 16, u64::MAX),
];

fn rate(opened: u64, sent: u64) -> Value {
    if sent == 0 {
        Value::Null
    } else {
        json!((opened as f64 / sent as f64 * 10_000.0).round() / 10_000.0)
    }
}

/// Contacts, sends and opens per frequency band, from each contact's `(sent, opened)`.
fn by_frequency(per_contact: &[(u64, u64)]) -> Vec<Value> {
    FREQUENCIES
        .iter()
        .map(|&(label, low, high)| {
            let (mut contacts, mut sent, mut opened) = (0u64, 0u64, 0u64);
            for &(s, o) in per_contact.iter().filter(|(s, _)| (low..=high).contains(s)) {
                contacts += 1;
                sent += s;
                opened += o;
            }
            json!({"sends": label, "contacts": contacts, "sent": sent, "opened": opened, "open_rate": rate(opened, sent)})
        })
        .collect()
}

async fn send_times(
    State(state): State<AppState>,
    Caller(who): Caller,
    Query(q): Query<SendTimesQuery>,
) -> ApiResult<impl IntoResponse> {
    state.store.require(&who, REPORTS, Op::View).await?;
    state.store.require(&who, FLOWS, Op::View).await?;
    let days = q.days.unwrap_or(90);
    if !(1..=730).contains(&days) {
        return Err(ApiError::BadRequest("days: from 1 to 730".into()));
    }
    let zone_name = q.zone.unwrap_or_else(|| "Asia/Tokyo".into());
    let zone = Zone::parse(&zone_name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "zone: {zone_name:?} is not a time zone such as Asia/Tokyo or +09:00"
        ))
    })?;
    let now = state.clock.now();
    // Hours are counted at the zone's offset today (exact where there is no daylight saving).
    let offset = (zone.local(now) - now.naive_utc()).num_seconds();
    let since = (now - Duration::days(days)).timestamp_millis();
    let conn = &state.store.db().conn;
    // Someone whose record rights narrow tourists counts only the tourists they reach.
    let reached = state.store.reached_contacts(&who, now).await?;
    let sends = journeys::sends_by_hour(conn, since, offset, &reached)
        .await
        .map_err(StorageError::from)?;
    let opens = journeys::opens_by_hour(conn, None, since, offset, &reached)
        .await
        .map_err(StorageError::from)?;
    let per_contact = journeys::sends_per_contact(conn, since, &reached)
        .await
        .map_err(StorageError::from)?;
    let by_hour: Vec<Value> = (0..24u32)
        .map(|hour| {
            let (sent, opened) = sends.get(&hour).copied().unwrap_or_default();
            json!({
                "hour": hour,
                "sent": sent,
                "opened_of_sent": opened,
                "open_rate": rate(opened, sent),
                "opens": opens.get(&(0, hour)).copied().unwrap_or_default(),
            })
        })
        .collect();
    let busiest = (0..24u32)
        .map(|h| (h, opens.get(&(0, h)).copied().unwrap_or_default()))
        .filter(|&(_, n)| n > 0)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(h, _)| h);
    Ok(Json(json!({
        "days": days,
        "zone": zone_name,
        "best_hour": busiest,
        "by_hour": by_hour,
        "by_frequency": by_frequency(&per_contact),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_fall_in_frequency_bands() {
        let bands = by_frequency(&[(1, 1), (1, 0), (3, 1), (20, 2)]);
        assert_eq!(bands[0]["contacts"], 2);
        assert_eq!(bands[0]["open_rate"], 0.5);
        assert_eq!(bands[1]["sent"], 3);
        assert_eq!(bands[2]["contacts"], 0);
        assert_eq!(bands[2]["open_rate"], Value::Null);
        assert_eq!(bands[4]["opened"], 2);
    }
}
