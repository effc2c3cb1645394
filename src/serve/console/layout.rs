//! The frame every console page shares (head, navigation, footer) and the small pieces the pages
//! are built from: status badges (colour *and* text), times, and SQL highlighting.
//!
//! maud escapes every interpolated value, so text from the repo or a cluster (job names, args,
//! error messages) never becomes markup; the only pre-escaped strings are built here from
//! escaped pieces ([`highlight_sql`]).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::audit::duration_text;
use crate::clock::{now_ms, table_time};

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Jobs,
    Plans,
    Pulls,
    Settings,
    None,
}

/// What every page needs to know about the request.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The CSRF token every form carries (the `weir_csrf` cookie's value).
    pub csrf: String,
    /// A valid API token is in the `weir_token` cookie.
    pub signed_in: bool,
    /// Path and query of this page (where the login form sends the reader back to).
    pub here: String,
}

/// A whole page. `refresh`: seconds between refreshes while the page may change (the script
/// swaps `<main>` in place; without JavaScript a `<noscript>` meta refresh does it).
pub fn page(title: &str, nav: Nav, frame: &Frame, refresh: Option<u32>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · weir" }
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/console.js" defer {}
                @if let Some(s) = refresh {
                    noscript { meta http-equiv="refresh" content=(s * 3); }
                }
            }
            body data-refresh=[refresh] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" aria-label="weir console, jobs" { span.logo aria-hidden="true" { "≋" } " weir" }
                    nav aria-label="Main" {
                        ul {
                            (nav_item("/", "Jobs", nav == Nav::Jobs))
                            (nav_item("/plans", "Plans", nav == Nav::Plans))
                            (nav_item("/pulls", "Pull requests", nav == Nav::Pulls))
                            (nav_item("/settings", "Settings", nav == Nav::Settings))
                        }
                    }
                    div.session {
                        @if frame.signed_in {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(frame.csrf);
                                span.muted { "Signed in" } " "
                                button.link type="submit" { "Sign out" }
                            }
                        } @else {
                            a href={ "/login?next=" (urlencode(&frame.here)) } { "Sign in" }
                        }
                    }
                }
                main #main tabindex="-1" { (content) }
                footer.bottom {
                    span.muted { "Rendered " (table_time(now_ms())) }
                    @if refresh.is_some() {
                        " · "
                        span #live.muted role="status" aria-live="polite" { "Refreshes by itself" }
                    }
                    " · "
                    a href="/api/v1/status" { "JSON API" }
                }
            }
        }
    }
}

fn nav_item(href: &str, label: &str, current: bool) -> Markup {
    html! {
        li { a href=(href) aria-current=[current.then_some("page")] { (label) } }
    }
}

/// How a status value looks: its colour class. Unknown values (states added later) are neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Busy,
    Warn,
    Bad,
    Neutral,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Busy => "busy",
            Tone::Warn => "warn",
            Tone::Bad => "bad",
            Tone::Neutral => "neutral",
        }
    }

    /// A shape per tone, so the state reads without colour too.
    fn glyph(self) -> &'static str {
        match self {
            Tone::Good => "●",
            Tone::Busy => "◐",
            Tone::Warn => "▲",
            Tone::Bad => "✕",
            Tone::Neutral => "○",
        }
    }
}

/// The tone of a sync state, Flink job state or outcome, as the daemon spells them.
pub fn tone(value: &str) -> Tone {
    match value {
        "Synced" | "RUNNING" | "succeeded" | "success" | "FINISHED" | "in_sync" | "healthy" => {
            Tone::Good
        }
        "running" | "unfinished" | "pending" | "queued" | "applying" | "CREATED"
        | "INITIALIZING" | "RESTARTING" | "RECONCILING" | "Applying" => Tone::Busy,
        "OutOfSync"
        | "Unknown"
        | "waiting_for_approval"
        | "drift"
        | "SUSPENDED"
        | "interrupted"
        | "not_run"
        | "failure"
        | "RolledBack"
        | "degraded" => Tone::Warn,
        "InvalidDefinition" | "Invalid" | "Blocked" | "FAILED" | "FAILING" | "CANCELED"
        | "CANCELLING" | "failed" | "error" | "repo_invalid" | "failing" => Tone::Bad,
        _ => Tone::Neutral,
    }
}

/// A state as a badge: a shape, the text and a colour (never colour alone).
pub fn badge(value: &str) -> Markup {
    badge_as(value, tone(value))
}

pub fn badge_as(value: &str, tone: Tone) -> Markup {
    html! {
        span class={ "badge " (tone.class()) } {
            span.glyph aria-hidden="true" { (tone.glyph()) } " " (display(value))
        }
    }
}

/// A state as people read it: `waiting_for_approval` → `waiting for approval`; the daemon's
/// `-` (no Flink job) → `no job`.
pub fn display(value: &str) -> String {
    match value {
        "-" => "no job".into(),
        v => v.replace('_', " "),
    }
}

/// A time as `2026-12-03 08:01:02` with its age, in a `<time>` element.
pub fn when(at_ms: i64) -> Markup {
    html! {
        time datetime=(crate::clock::rfc3339(at_ms)) title=(crate::clock::rfc3339(at_ms)) {
            (age(at_ms)) " ago"
        }
    }
}

/// How long ago `at_ms` was, e.g. `3m 20s`.
pub fn age(at_ms: i64) -> String {
    duration_text(now_ms() - at_ms)
}

pub fn duration(ms: Option<i64>) -> String {
    ms.map(duration_text).unwrap_or_else(|| "–".into())
}

/// A commit or id shortened for a table, whole in its title.
pub fn short_id(id: &str) -> Markup {
    let short = &id[..id.len().min(12)];
    html! { code title=(id) { (short) } }
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The path of a job's page.
pub fn job_href(name: &str) -> String {
    format!("/jobs/{}", path_segment(name))
}

/// Percent-encodes one path segment (job names are validated, but a path from a cluster or an
/// old record is not).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A form's hidden CSRF field.
pub fn csrf_field(frame: &Frame) -> Markup {
    html! { input type="hidden" name="csrf" value=(frame.csrf); }
}

/// A notice box (`role=alert` for errors so screen readers announce it).
pub fn notice(tone: Tone, title: &str, body: Markup) -> Markup {
    html! {
        div class={ "notice " (tone.class()) } role=[matches!(tone, Tone::Bad).then_some("alert")] {
            @if !title.is_empty() { strong { (title) } " " }
            (body)
        }
    }
}

const SQL_KEYWORDS: &[&str] = &[
    "ADD",
    "ALL",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "BETWEEN",
    "BIGINT",
    "BOOLEAN",
    "BY",
    "CASE",
    "CAST",
    "CATALOG",
    "CREATE",
    "CROSS",
    "CURRENT_TIMESTAMP",
    "DATABASE",
    "DECIMAL",
    "DESC",
    "DISTINCT",
    "DOUBLE",
    "DROP",
    "ELSE",
    "END",
    "EXISTS",
    "FALSE",
    "FOR",
    "FROM",
    "FULL",
    "FUNCTION",
    "GROUP",
    "HAVING",
    "HOP",
    "IF",
    "IN",
    "INNER",
    "INSERT",
    "INT",
    "INTEGER",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MATCH_RECOGNIZE",
    "NOT",
    "NULL",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OVER",
    "PARTITION",
    "PRIMARY",
    "RIGHT",
    "ROW",
    "ROWS",
    "SELECT",
    "SESSION",
    "SET",
    "STATEMENT",
    "STRING",
    "SYSTEM_TIME",
    "TABLE",
    "TEMPORARY",
    "THEN",
    "TIMESTAMP",
    "TIMESTAMP_LTZ",
    "TRUE",
    "TUMBLE",
    "UNION",
    "USE",
    "VALUES",
    "VARCHAR",
    "VIEW",
    "WATERMARK",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

/// SQL as HTML with keywords, strings, numbers and comments in spans. Every character of the
/// script is escaped; only the span tags are markup.
pub fn highlight_sql(sql: &str) -> Markup {
    let mut out = String::with_capacity(sql.len() * 2);
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            span(&mut out, "c", &chars[start..i]);
        } else if c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += 1;
            }
            i = (i + 1).min(chars.len());
            span(
                &mut out,
                if c == '\'' { "s" } else { "i" },
                &chars[start..i],
            );
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            span(&mut out, "n", &chars[start..i]);
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if SQL_KEYWORDS.contains(&word.to_ascii_uppercase().as_str()) {
                span(&mut out, "k", &chars[start..i]);
            } else {
                escape_into(&mut out, &chars[start..i]);
            }
        } else {
            escape_into(&mut out, &chars[i..=i]);
            i += 1;
        }
    }
    PreEscaped(out)
}

fn span(out: &mut String, class: &str, text: &[char]) {
    out.push_str("<span class=\"");
    out.push_str(class);
    out.push_str("\">");
    escape_into(out, text);
    out.push_str("</span>");
}

fn escape_into(out: &mut String, text: &[char]) {
    for &c in text {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}
