//! Times of day in a flow's zone, daylight saving included (see [`tabiji_model::zone`]).

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use tabiji_model::flow::{WEEKDAYS, parse_time_of_day};
use tabiji_model::zone::Zone;

/// The first moment after `now` that is `time` (`HH:MM`) in `zone`, on one of `weekdays`
/// (any day when empty).
pub fn next_time_of_day(
    now: DateTime<Utc>,
    time: &str,
    weekdays: &[String],
    zone: &str,
) -> Option<DateTime<Utc>> {
    let zone = Zone::parse(zone)?;
    let (h, m) = parse_time_of_day(time)?;
    let today = zone.local(now).date();
    let at = NaiveTime::from_hms_opt(h, m, 0)?;
    for days in 0..8 {
        let date = today + Duration::days(days);
        let candidate = zone.instant(date.and_time(at));
        let weekday = WEEKDAYS[date.weekday().num_days_from_monday() as usize];
        if candidate > now && (weekdays.is_empty() || weekdays.iter().any(|d| d == weekday)) {
            return Some(candidate);
        }
    }
    None
}

/// MA-16: the first moment from `now` that is `hour`:00 in `zone`, if it comes within
/// `within_secs`; otherwise `now` (the best hour does not fall in the window).
pub fn best_time(now: DateTime<Utc>, hour: u32, within_secs: u64, zone: &str) -> DateTime<Utc> {
    let Some(zone) = Zone::parse(zone) else {
        return now;
    };
    let Some(at) = NaiveTime::from_hms_opt(hour, 0, 0) else {
        return now;
    };
    let today = zone.local(now).date();
    let latest = now + Duration::seconds(within_secs as i64);
    (0..9)
        .map(|days| zone.instant((today + Duration::days(days)).and_time(at)))
        .find(|candidate| *candidate >= now)
        .filter(|candidate| *candidate <= latest)
        .unwrap_or(now)
}

/// When `now` falls in the quiet hours `(from, to)` (`HH:MM` in `zone`, wrapping past
/// midnight when `from` is later than `to`), the moment they end; `None` outside them.
pub fn quiet_until(
    now: DateTime<Utc>,
    quiet: &(String, String),
    zone: &str,
) -> Option<DateTime<Utc>> {
    let (fh, fm) = parse_time_of_day(&quiet.0)?;
    let (th, tm) = parse_time_of_day(&quiet.1)?;
    let local = Zone::parse(zone)?.local(now).time();
    let from = NaiveTime::from_hms_opt(fh, fm, 0)?;
    let to = NaiveTime::from_hms_opt(th, tm, 0)?;
    let inside = if from <= to {
        local >= from && local < to
    } else {
        local >= from || local < to
    };
    if inside {
        next_time_of_day(now, &quiet.1, &[], zone)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_best_hour_is_taken_when_it_falls_in_the_window() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 10:00 in Tokyo is 01:00 UTC.
        let now = t("2026-12-01T03:30:00Z"); // 12:30 in Tokyo
        assert_eq!(
            best_time(now, 20, 86_400, "Asia/Tokyo"),
            t("2026-12-01T11:00:00Z")
        );
        assert_eq!(
            best_time(now, 10, 86_400, "Asia/Tokyo"),
            t("2026-12-02T01:00:00Z")
        );
        // Not within 6 hours: at once.
        assert_eq!(best_time(now, 10, 6 * 3_600, "Asia/Tokyo"), now);
        assert_eq!(best_time(now, 12, 3_600, "nowhere"), now);
    }

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn nine_in_the_morning_in_tokyo() {
        // 2026-11-28 is a Saturday; 08:00 in Tokyo is 23:00 UTC the day before.
        let now = utc("2026-11-27T23:00:00Z");
        assert_eq!(
            next_time_of_day(now, "09:00", &[], "Asia/Tokyo"),
            Some(utc("2026-11-28T00:00:00Z"))
        );
        let now = utc("2026-11-28T00:00:00Z");
        assert_eq!(
            next_time_of_day(now, "09:00", &[], "Asia/Tokyo"),
            Some(utc("2026-11-29T00:00:00Z")),
            "strictly after now"
        );
        let monday = vec!["mon".to_string()];
        assert_eq!(
            next_time_of_day(now, "09:00", &monday, "Asia/Tokyo"),
            Some(utc("2026-11-30T00:00:00Z"))
        );
        assert_eq!(
            next_time_of_day(now, "09:00", &[], "-05:00"),
            Some(utc("2026-11-28T14:00:00Z"))
        );
        assert_eq!(next_time_of_day(now, "9am", &[], "Asia/Tokyo"), None);
    }

    #[test]
    fn quiet_hours_hold_sends_until_they_end() {
        let night = ("21:00".to_string(), "08:00".to_string());
        // 23:30 in Tokyo: held until 08:00 the next morning.
        assert_eq!(
            quiet_until(utc("2026-11-28T14:30:00Z"), &night, "Asia/Tokyo"),
            Some(utc("2026-11-28T23:00:00Z"))
        );
        // 07:59 in Tokyo: held one minute.
        assert_eq!(
            quiet_until(utc("2026-11-28T22:59:00Z"), &night, "Asia/Tokyo"),
            Some(utc("2026-11-28T23:00:00Z"))
        );
        // 08:00 and 20:59 are outside.
        assert_eq!(
            quiet_until(utc("2026-11-28T23:00:00Z"), &night, "Asia/Tokyo"),
            None
        );
        assert_eq!(
            quiet_until(utc("2026-11-28T11:59:00Z"), &night, "Asia/Tokyo"),
            None
        );
        let lunch = ("12:00".to_string(), "13:00".to_string());
        assert_eq!(
            quiet_until(utc("2026-11-28T03:30:00Z"), &lunch, "Asia/Tokyo"),
            Some(utc("2026-11-28T04:00:00Z"))
        );
    }
}
