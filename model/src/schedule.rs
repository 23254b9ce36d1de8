//! Recurring schedules (MA-3): a five-field cron expression, or a friendly recurrence (every
//! day; every week on chosen days; every month on day N or on the nth weekday), evaluated on
//! the wall clock of a zone.
//!
//! Cron fields are the usual ones: minute (0-59), hour (0-23), day of month (1-31), month (1-12
//! or `jan`-`dec`), weekday (0-7 or `sun`-`sat`, 0 and 7 both Sunday); each a list of `*`, `N`,
//! `N-M`, with an optional `/step`. When both day fields are restricted a day matches either
//! (as in Vixie cron).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::flow::{WEEKDAYS, parse_time_of_day};
use crate::zone::Zone;

/// A friendly recurrence, as the editor offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "every", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recurrence {
    /// Every day at `at` (`HH:MM`).
    Day { at: String },
    /// Every week on the given days (`mon` … `sun`) at `at`.
    Week { on: Vec<String>, at: String },
    /// Every month on day `day` (1-31; months without it are skipped) at `at`.
    Month { day: u32, at: String },
    /// Every month on the `nth` (1-5, or -1 for the last) `weekday` at `at`.
    MonthWeekday {
        nth: i8,
        weekday: String,
        at: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Cron(Cron),
    NthWeekday {
        nth: i8,
        weekday: Weekday,
        hour: u32,
        minute: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    any_day: bool,
    any_weekday: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const CRON_DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses one cron field into a bit set over `min..=max`; `names` are the values from `min` on.
fn field(text: &str, what: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u32, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(min + i as u32);
        }
        s.parse::<u32>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("{what} {s:?} is not a value from {min} to {max}"))
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what} step {s:?} is not a positive number"))?,
            ),
            None => (item, 1),
        };
        let (from, to) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step > 1 { max } else { v })
        };
        if from > to {
            return Err(format!("{what} range {range:?} runs backwards"));
        }
        let mut v = from;
        while v <= to {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = parts[..] else {
            return Err(format!(
                "{expr:?} is not a cron expression of five fields (minute hour day month weekday)"
            ));
        };
        let mut weekdays = field(weekday, "weekday", 0, 7, &CRON_DAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Cron {
            minutes: field(minute, "minute", 0, 59, &[])?,
            hours: field(hour, "hour", 0, 23, &[])? as u32,
            days: field(day, "day", 1, 31, &[])? as u32,
            months: field(month, "month", 1, 12, &MONTHS)? as u16,
            weekdays: weekdays as u8,
            any_day: day == "*",
            any_weekday: weekday == "*",
        })
    }

    fn on(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let by_day = self.days & (1 << date.day()) != 0;
        let by_weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        match (self.any_day, self.any_weekday) {
            (false, false) => by_day || by_weekday,
            _ => by_day && by_weekday,
        }
    }
}

fn weekday(name: &str) -> Option<Weekday> {
    WEEKDAYS
        .iter()
        .position(|d| *d == name)
        .and_then(|i| Weekday::try_from(i as u8).ok())
}

impl Recurrence {
    pub fn schedule(&self) -> Result<Schedule, String> {
        let at = |text: &str| {
            parse_time_of_day(text).ok_or_else(|| format!("{text:?} is not a time of day (HH:MM)"))
        };
        let cron = |text: String| Cron::parse(&text).map(Schedule::Cron);
        match self {
            Recurrence::Day { at: time } => {
                let (h, m) = at(time)?;
                cron(format!("{m} {h} * * *"))
            }
            Recurrence::Week { on, at: time } => {
                let (h, m) = at(time)?;
                if on.is_empty() {
                    return Err("choose at least one weekday".into());
                }
                let mut days = Vec::new();
                for d in on {
                    let w = weekday(d).ok_or_else(|| format!("{d:?} is not mon … sun"))?;
                    days.push(w.num_days_from_sunday().to_string());
                }
                cron(format!("{m} {h} * * {}", days.join(",")))
            }
            Recurrence::Month { day, at: time } => {
                let (h, m) = at(time)?;
                if !(1..=31).contains(day) {
                    return Err(format!("day {day} is not from 1 to 31"));
                }
                cron(format!("{m} {h} {day} * *"))
            }
            Recurrence::MonthWeekday {
                nth,
                weekday: name,
                at: time,
            } => {
                let (hour, minute) = at(time)?;
                if !(matches!(nth, 1..=5) || *nth == -1) {
                    return Err(format!("nth {nth} must be 1 to 5, or -1 for the last"));
                }
                Ok(Schedule::NthWeekday {
                    nth: *nth,
                    weekday: weekday(name).ok_or_else(|| format!("{name:?} is not mon … sun"))?,
                    hour,
                    minute,
                })
            }
        }
    }
}

impl Schedule {
    /// The first time after `after` that the schedule fires, looking up to five years ahead.
    pub fn next_after(&self, after: DateTime<Utc>, zone: &Zone) -> Option<DateTime<Utc>> {
        let start = zone.local(after).date();
        for offset in 0..366 * 5 {
            let date = start + Duration::days(offset);
            let times: Vec<(u32, u32)> = match self {
                Schedule::Cron(cron) => {
                    if !cron.on(date) {
                        continue;
                    }
                    (0..24)
                        .filter(|h| cron.hours & (1 << h) != 0)
                        .flat_map(|h| {
                            (0..60)
                                .filter(move |m| cron.minutes & (1 << m) != 0)
                                .map(move |m| (h, m))
                        })
                        .collect()
                }
                Schedule::NthWeekday {
                    nth,
                    weekday,
                    hour,
                    minute,
                } => {
                    let wanted = if *nth > 0 {
                        NaiveDate::from_weekday_of_month_opt(
                            date.year(),
                            date.month(),
                            *weekday,
                            *nth as u8,
                        )
                    } else {
                        (1..=5).rev().find_map(|n| {
                            NaiveDate::from_weekday_of_month_opt(
                                date.year(),
                                date.month(),
                                *weekday,
                                n,
                            )
                        })
                    };
                    if wanted != Some(date) {
                        continue;
                    }
                    vec![(*hour, *minute)]
                }
            };
            for (h, m) in times {
                let at = zone.instant(date.and_hms_opt(h, m, 0)?);
                if at > after {
                    return Some(at);
                }
            }
        }
        None
    }

    /// The latest time in `(after, until]` that the schedule fires, if any: the tick a
    /// scheduler owes after it was down (older missed ticks are not fired).
    pub fn latest_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        zone: &Zone,
    ) -> Option<DateTime<Utc>> {
        let mut latest = None;
        let mut cursor = after;
        // A minutely schedule over a month is 43,200 ticks; the bound stops a runaway loop.
        for _ in 0..1_000_000 {
            match self.next_after(cursor, zone) {
                Some(at) if at <= until => {
                    latest = Some(at);
                    cursor = at;
                }
                _ => break,
            }
        }
        latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(expr: &str, after: &str, zone: &str) -> String {
        Schedule::Cron(Cron::parse(expr).unwrap())
            .next_after(utc(after), &Zone::parse(zone).unwrap())
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn cron_fields_names_steps_and_errors() {
        // 2026-11-28 is a Saturday.
        assert_eq!(
            next("0 9 * * *", "2026-11-28T00:00:00Z", "Asia/Tokyo"),
            "2026-11-29T00:00:00+00:00",
            "09:00 Tokyo has passed today (it is 09:00): tomorrow"
        );
        assert_eq!(
            next("30 8 * * mon-fri", "2026-11-28T00:00:00Z", "Asia/Tokyo"),
            "2026-11-29T23:30:00+00:00",
            "Monday 08:30 in Tokyo"
        );
        assert_eq!(
            next("0 10 1 * *", "2026-11-28T00:00:00Z", "UTC"),
            "2026-12-01T10:00:00+00:00"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-11-28T00:07:00Z", "UTC"),
            "2026-11-28T00:15:00+00:00"
        );
        assert_eq!(
            next("0 12 13 * 5", "2026-11-28T00:00:00Z", "UTC"),
            "2026-12-04T12:00:00+00:00",
            "day 13 or a Friday, whichever comes first"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-11-28T00:00:00Z", "UTC"),
            "2026-11-29T00:00:00+00:00",
            "7 is Sunday too"
        );
        for bad in [
            "0 9 * *",
            "60 9 * * *",
            "0 9 * * funday",
            "0 9-7 * * *",
            "*/0 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn friendly_recurrences() {
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        let after = utc("2026-11-28T00:00:00Z");
        let at = |r: Recurrence| {
            r.schedule()
                .unwrap()
                .next_after(after, &tokyo)
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(
            at(Recurrence::Day { at: "10:00".into() }),
            "2026-11-28T01:00:00+00:00"
        );
        assert_eq!(
            at(Recurrence::Week {
                on: vec!["tue".into(), "thu".into()],
                at: "09:00".into()
            }),
            "2026-12-01T00:00:00+00:00"
        );
        assert_eq!(
            at(Recurrence::Month {
                day: 31,
                at: "09:00".into()
            }),
            "2026-12-31T00:00:00+00:00",
            "November has no 31st"
        );
        assert_eq!(
            at(Recurrence::MonthWeekday {
                nth: 2,
                weekday: "mon".into(),
                at: "09:00".into()
            }),
            "2026-12-14T00:00:00+00:00"
        );
        assert_eq!(
            at(Recurrence::MonthWeekday {
                nth: -1,
                weekday: "fri".into(),
                at: "18:00".into()
            }),
            "2026-12-25T09:00:00+00:00"
        );
        assert!(
            Recurrence::Week {
                on: vec![],
                at: "09:00".into()
            }
            .schedule()
            .is_err()
        );
        assert!(Recurrence::Day { at: "9am".into() }.schedule().is_err());
    }

    #[test]
    fn daylight_saving_and_catch_up() {
        let york = Zone::parse("America/New_York").unwrap();
        let nine = Schedule::Cron(Cron::parse("0 9 * * *").unwrap());
        assert_eq!(
            nine.next_after(utc("2026-03-07T15:00:00Z"), &york)
                .unwrap()
                .to_rfc3339(),
            "2026-03-08T13:00:00+00:00",
            "09:00 EDT after the change"
        );
        let early = Schedule::Cron(Cron::parse("30 2 * * *").unwrap());
        assert_eq!(
            early
                .next_after(utc("2026-03-07T08:00:00Z"), &york)
                .unwrap()
                .to_rfc3339(),
            "2026-03-08T07:00:00+00:00",
            "02:30 does not exist that day: the end of the gap, once"
        );
        let repeated = Schedule::Cron(Cron::parse("30 1 * * *").unwrap());
        let first = repeated
            .next_after(utc("2026-11-01T00:00:00Z"), &york)
            .unwrap();
        assert_eq!(first.to_rfc3339(), "2026-11-01T05:30:00+00:00");
        assert_eq!(
            repeated.next_after(first, &york).unwrap().to_rfc3339(),
            "2026-11-02T06:30:00+00:00",
            "01:30 happens twice that night but fires once"
        );
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        let daily = Schedule::Cron(Cron::parse("0 9 * * *").unwrap());
        assert_eq!(
            daily
                .latest_between(
                    utc("2026-11-20T00:00:00Z"),
                    utc("2026-11-28T03:00:00Z"),
                    &tokyo
                )
                .unwrap()
                .to_rfc3339(),
            "2026-11-28T00:00:00+00:00",
            "after a week down, only the latest missed tick is owed"
        );
        assert_eq!(
            daily.latest_between(
                utc("2026-11-28T00:00:00Z"),
                utc("2026-11-28T23:00:00Z"),
                &tokyo
            ),
            None
        );
    }
}
