//! Times as `weir history --since` and `weir prune --older-than` take them, and durations as the
//! audit trail shows them.

use crate::clock::parse_duration;

/// A `--since` that is neither a duration nor a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is neither a duration (e.g. 30m, 24h, 7d, 1h30m) nor a time (RFC 3339, e.g. \
     2025-01-31T12:00:00Z, or a date such as 2025-01-31)"
)]
pub struct SinceError(String);

/// `--since`: a duration back from `now_ms` (`90s`, `30m`, `24h`, `7d`, `2w`, `1h30m`), an RFC 3339
/// time (`2025-01-31T12:00:00Z`) or a date (`2025-01-31`, midnight UTC). Returns epoch ms.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, SinceError> {
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * 1000);
    }
    let back = parse_duration(s)
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| SinceError(s.to_string()))?;
    Ok(now_ms.saturating_sub(back))
}

/// `850ms`, `3.2s`, `2m05s`, `1h02m`.
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}
