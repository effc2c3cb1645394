//! Time and ids: the one place that reads the wall clock, formats instants and parses durations.
//!
//! Everything else takes epoch milliseconds from here (or, in pure code such as the planner,
//! as an argument), so a notification's timestamp and the API's are the same text.

use std::time::Duration;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds, always three digits: `2025-01-31T12:00:00.123Z`.
pub fn rfc3339(at_ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000) {
        Ok(t) => t
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .unwrap_or_else(|_| at_ms.to_string()),
        Err(_) => at_ms.to_string(),
    }
}

/// `2025-01-31 12:00:00Z`: an instant as tables show it (seconds are enough for a person).
pub fn table_time(at_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| at_ms.to_string())
}

/// A duration as people write it: `90s`, `30m`, `24h`, `7d`, `2w`, `1h30m` (units may repeat and
/// be mixed; no spaces needed). `None` when it is not one.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total_ms: u64 = 0;
    let mut digits = String::new();
    let mut units = 0;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit_ms: u64 = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        total_ms = n.checked_mul(unit_ms)?.checked_add(total_ms)?;
        units += 1;
    }
    (units > 0 && digits.is_empty()).then(|| Duration::from_millis(total_ms))
}

/// A new record id: `<prefix>-<UTC yyyymmddThhmmss>-<6 random hex>` (sorts by time; unique enough
/// for records made by one process within a second).
pub fn new_id(prefix: &str) -> String {
    let stamp = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms()) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]"
        ))
        .unwrap_or_default();
    format!("{prefix}-{stamp}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_one_precision() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_738_324_800_123), "2025-01-31T12:00:00.123Z");
        assert_eq!(table_time(1_738_324_800_123), "2025-01-31 12:00:00Z");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2w"), Some(Duration::from_secs(14 * 86_400)));
        for bad in ["", "5", "h", "5x", "1h5", "99999999999999999999w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_carry_prefix_and_time() {
        let id = new_id("apply");
        assert!(id.starts_with("apply-2"), "{id}");
        assert_eq!(id.len(), "apply-20250131T120000-abcdef".len());
    }
}
