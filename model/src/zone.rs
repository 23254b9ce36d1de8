//! Time zones as flows name them: an IANA name (`Asia/Tokyo`, `America/New_York`), `UTC`, or a
//! fixed offset such as `+09:00`. Wall-clock times that a daylight-saving change skips or
//! repeats resolve one way everywhere: a skipped time becomes the first minute after the gap,
//! a repeated time its first occurrence.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, TimeZone, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    pub fn parse(name: &str) -> Option<Zone> {
        if name == "UTC" {
            return FixedOffset::east_opt(0).map(Zone::Fixed);
        }
        if let Some(sign) = match name.chars().next()? {
            '+' => Some(1),
            '-' => Some(-1),
            _ => None,
        } {
            let (h, m) = crate::flow::parse_time_of_day(name.get(1..)?)?;
            return FixedOffset::east_opt(sign * (h as i32 * 3600 + m as i32 * 60))
                .map(Zone::Fixed);
        }
        name.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
    }

    /// The wall-clock time in this zone at `at`.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Fixed(offset) => at.with_timezone(offset).naive_local(),
            Zone::Named(tz) => at.with_timezone(tz).naive_local(),
        }
    }

    /// The instant a wall-clock time in this zone names.
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let resolve = |local: NaiveDateTime| -> Option<DateTime<Utc>> {
            match self {
                Zone::Fixed(offset) => first(offset.from_local_datetime(&local)),
                Zone::Named(tz) => first(tz.from_local_datetime(&local)),
            }
        };
        // DST gaps are at most a few hours; walk forward a minute at a time to their end.
        let mut candidate = local;
        for _ in 0..=24 * 60 {
            if let Some(at) = resolve(candidate) {
                return at;
            }
            candidate += chrono::Duration::minutes(1);
        }
        local.and_utc()
    }
}

fn first<T: TimeZone>(result: LocalResult<DateTime<T>>) -> Option<DateTime<Utc>> {
    match result {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn names_utc_and_offsets() {
        assert!(matches!(Zone::parse("Asia/Tokyo"), Some(Zone::Named(_))));
        assert!(matches!(Zone::parse("UTC"), Some(Zone::Fixed(_))));
        assert!(matches!(Zone::parse("+05:30"), Some(Zone::Fixed(_))));
        assert_eq!(Zone::parse("Mars/Olympus"), None);
        assert_eq!(Zone::parse("+25:00"), None);
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        assert_eq!(
            tokyo.instant(naive("2026-11-28 09:00")).to_rfc3339(),
            "2026-11-28T00:00:00+00:00"
        );
    }

    #[test]
    fn daylight_saving_gaps_and_repeats() {
        let york = Zone::parse("America/New_York").unwrap();
        // 2026-03-08 02:30 does not exist in New York: the first minute after the gap.
        assert_eq!(
            york.instant(naive("2026-03-08 02:30")).to_rfc3339(),
            "2026-03-08T07:00:00+00:00"
        );
        // 2026-11-01 01:30 happens twice: the first (still daylight time).
        assert_eq!(
            york.instant(naive("2026-11-01 01:30")).to_rfc3339(),
            "2026-11-01T05:30:00+00:00"
        );
        let day = NaiveDate::from_ymd_opt(2026, 7, 1)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        assert_eq!(york.instant(day).to_rfc3339(), "2026-07-01T13:00:00+00:00");
        assert_eq!(york.local(york.instant(day)), day);
    }
}
