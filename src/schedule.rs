//! Schedules of batch jobs (`spec.schedule`), pure: parsing a cron expression in a time zone,
//! the next fire time, and whether a scheduled job runs now. No clock: every time is passed in
//! (epoch milliseconds), so the daemon's decisions are unit-tested with any clock.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::desired::Schedule;

/// Why a schedule is refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression `{cron}`: {source}")]
    Cron {
        cron: String,
        #[source]
        source: croner::errors::CronError,
    },
    #[error("unknown time zone `{0}` (an IANA name such as `UTC` or `Europe/Berlin`)")]
    TimeZone(String),
}

/// A parsed schedule: a cron expression (5 fields, or 6 with leading seconds) in a time zone.
#[derive(Debug, Clone)]
pub struct Parsed {
    cron: Cron,
    tz: Tz,
}

impl Parsed {
    pub fn new(cron: &str, time_zone: Option<&str>) -> Result<Parsed, ScheduleError> {
        let tz = match time_zone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| ScheduleError::TimeZone(name.to_string()))?,
        };
        let parsed = Cron::new(cron.trim())
            .with_seconds_optional()
            .parse()
            .map_err(|source| ScheduleError::Cron {
                cron: cron.to_string(),
                source,
            })?;
        Ok(Parsed { cron: parsed, tz })
    }

    pub fn of(schedule: &Schedule) -> Result<Parsed, ScheduleError> {
        Parsed::new(&schedule.cron, schedule.time_zone.as_deref())
    }

    /// The first fire time strictly after `after_ms`, if the expression ever fires again.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after: DateTime<Tz> = self.tz.from_utc_datetime(&utc(after_ms)?.naive_utc());
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.with_timezone(&Utc).timestamp_millis())
    }
}

fn utc(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

/// Why a scheduled run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// The schedule fired just now.
    Schedule,
    /// A fire time passed while the daemon was not running (or could not act): the run missed
    /// then, started once however many were missed.
    CatchUp,
}

impl Fire {
    pub fn as_str(self) -> &'static str {
        match self {
            Fire::Schedule => "schedule",
            Fire::CatchUp => "catch-up",
        }
    }
}

/// What the scheduler does about one job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing is due; the next fire time, if any.
    Wait { next_ms: Option<i64> },
    /// Fire time `due_ms` has come: run the job (or record it skipped while a run is active).
    Due { due_ms: i64, fire: Fire },
}

/// A fire time older than this when it is acted on was missed (the daemon was down or busy),
/// and its run is a catch-up.
pub const LATE_AFTER_MS: i64 = 60_000;

/// Whether a job on `schedule` is due at `now_ms`. `last_fire_ms` is the fire time of the
/// scheduler's last decision for the job (a run or a skip, from the store); without one, fire
/// times before `known_since_ms` (when the daemon first saw the schedule) are not missed runs.
/// Several fire times passed since the last one give one run, at the latest of them.
pub fn decide(
    schedule: &Parsed,
    last_fire_ms: Option<i64>,
    known_since_ms: i64,
    now_ms: i64,
) -> Decision {
    let from = last_fire_ms.unwrap_or(known_since_ms);
    let Some(first_due) = schedule.next_after(from) else {
        return Decision::Wait { next_ms: None };
    };
    if first_due > now_ms {
        return Decision::Wait {
            next_ms: Some(first_due),
        };
    }
    // The latest fire time at or before now.
    let mut due = first_due;
    while let Some(next) = schedule.next_after(due) {
        if next > now_ms {
            break;
        }
        due = next;
    }
    let fire = if due != first_due || now_ms - due > LATE_AFTER_MS {
        Fire::CatchUp
    } else {
        Fire::Schedule
    };
    Decision::Due { due_ms: due, fire }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const T0: i64 = 1_767_225_600_000;
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    #[test]
    fn five_and_six_field_expressions() {
        let nightly = Parsed::new("0 2 * * *", None).unwrap();
        assert_eq!(nightly.next_after(T0), Some(T0 + 2 * HOUR));
        assert_eq!(nightly.next_after(T0 + 2 * HOUR), Some(T0 + 26 * HOUR));
        let every5s = Parsed::new("*/5 * * * * *", None).unwrap();
        assert_eq!(every5s.next_after(T0), Some(T0 + 5_000));
        assert_eq!(every5s.next_after(T0 + 4_999), Some(T0 + 5_000));
    }

    #[test]
    fn time_zones_shift_fire_times() {
        // 02:00 in Berlin is 01:00 UTC in winter.
        let berlin = Parsed::new("0 2 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(berlin.next_after(T0), Some(T0 + HOUR));
    }

    #[test]
    fn bad_expressions_and_zones_are_named() {
        let e = Parsed::new("0 25 * * *", None).unwrap_err().to_string();
        assert!(e.contains("`0 25 * * *`"), "{e}");
        let e = Parsed::new("0 2 * * *", Some("Mars/Olympus"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Mars/Olympus"), "{e}");
        assert!(Parsed::new("not cron", None).is_err());
    }

    #[test]
    fn waits_until_the_next_fire_time() {
        let hourly = Parsed::new("0 * * * *", None).unwrap();
        assert_eq!(
            decide(&hourly, None, T0 + MIN, T0 + 30 * MIN),
            Decision::Wait {
                next_ms: Some(T0 + HOUR)
            }
        );
    }

    #[test]
    fn fires_on_time() {
        let hourly = Parsed::new("0 * * * *", None).unwrap();
        assert_eq!(
            decide(&hourly, Some(T0), T0, T0 + HOUR + 2_000),
            Decision::Due {
                due_ms: T0 + HOUR,
                fire: Fire::Schedule
            }
        );
        // Once decided (recorded), the same fire time is not due again.
        assert_eq!(
            decide(&hourly, Some(T0 + HOUR), T0, T0 + HOUR + 3_000),
            Decision::Wait {
                next_ms: Some(T0 + 2 * HOUR)
            }
        );
    }

    #[test]
    fn runs_missed_while_down_are_caught_up_once() {
        let hourly = Parsed::new("0 * * * *", None).unwrap();
        // Last fired at T0, the daemon was down for five hours and a half: one catch-up, at the
        // latest missed fire time.
        let d = decide(&hourly, Some(T0), T0, T0 + 5 * HOUR + 30 * MIN);
        assert_eq!(
            d,
            Decision::Due {
                due_ms: T0 + 5 * HOUR,
                fire: Fire::CatchUp
            }
        );
        // Recorded at that fire time, nothing more is due until the next one.
        assert_eq!(
            decide(&hourly, Some(T0 + 5 * HOUR), T0, T0 + 5 * HOUR + 31 * MIN),
            Decision::Wait {
                next_ms: Some(T0 + 6 * HOUR)
            }
        );
        // A single fire time acted on late is a catch-up too.
        assert_eq!(
            decide(&hourly, Some(T0), T0, T0 + HOUR + 10 * MIN),
            Decision::Due {
                due_ms: T0 + HOUR,
                fire: Fire::CatchUp
            }
        );
    }

    #[test]
    fn a_schedule_first_seen_has_no_missed_runs() {
        let hourly = Parsed::new("0 * * * *", None).unwrap();
        // Never fired before; first seen at 05:30: the earlier fire times are not missed runs.
        assert_eq!(
            decide(
                &hourly,
                None,
                T0 + 5 * HOUR + 30 * MIN,
                T0 + 5 * HOUR + 31 * MIN
            ),
            Decision::Wait {
                next_ms: Some(T0 + 6 * HOUR)
            }
        );
    }
}
