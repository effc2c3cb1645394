//! Keeping secrets out of plans, logs, comments and webhooks.
//!
//! Anything weir renders for people goes through here first. A value is secret when its key (a
//! Flink configuration key, a program flag, a SQL `WITH` option) looks like it holds a credential.
//!
//! This is the one scrubbing layer for free text too ([`text`]): credential patterns (user info
//! in URLs, `password=…` pairs in query strings, connection strings and JVM options, values after
//! secret-looking flags, `Bearer …`) and the *known secret values* of this process (tokens and
//! header values read from the environment, notification URLs and signing secrets, the daemon's
//! credentials), which the code that reads a secret registers with [`register_secret`]. Text
//! goes through [`text`] where it enters the store (`crate::store`), where Flink's error text
//! enters weir (`crate::flink`), in every log line (the binary's log writer) and wherever the CLI
//! and the daemon print or serve free text.

pub const REDACTED: &str = "<redacted>";

/// The words that make a key secret (matched in any ASCII case, anywhere in the key).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "private-key",
    "private.key",
    "privatekey",
    "access-key",
    "access.key",
    "accesskey",
    "api-key",
    "apikey",
    "api.key",
    "jaas.config",
    "auth",
    "account.key",
    "accountkey",
    "sas.token",
    "signature",
];

/// `author` (and `authority`) are not credentials although they contain `auth`.
const AUTHOR: &str = "author";

/// [`SECRET_WORDS`] by their first letter (`a` = 0 … `z` = 25): a key is read once, each position
/// compared with the few words that start with its letter, instead of searching the key for each
/// word in turn (this runs on every configuration key and program flag of every job of every
/// load).
static SECRET_WORDS_BY_LETTER: std::sync::LazyLock<[Vec<&'static str>; 26]> =
    std::sync::LazyLock::new(|| {
        let mut by_letter: [Vec<&'static str>; 26] = Default::default();
        for w in SECRET_WORDS {
            by_letter[usize::from(w.as_bytes()[0] - b'a')].push(w);
        }
        by_letter
    });

/// The [`SECRET_WORDS`] that start with the ASCII letter `first` (in any case).
fn secret_words_starting_with(first: u8) -> &'static [&'static str] {
    let letter = first.to_ascii_lowercase().wrapping_sub(b'a');
    SECRET_WORDS_BY_LETTER
        .get(usize::from(letter))
        .map_or(&[], Vec::as_slice)
}

/// True for keys such as `s3.secret-key`, `password`, `sasl.jaas.config`, `--api-token`.
pub fn is_secret_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let at = |i: usize, word: &str| {
        bytes
            .get(i..i + word.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(word.as_bytes()))
    };
    let mut any = false;
    for (i, &b) in bytes.iter().enumerate() {
        if at(i, AUTHOR) {
            return is_secret_key_with_author(key);
        }
        any = any || secret_words_starting_with(b).iter().any(|w| at(i, w));
    }
    any
}

/// [`is_secret_key`] of a key that mentions `author`: `authoriz…` counts as `auth`, and
/// `author` itself is removed before the words are looked for.
fn is_secret_key_with_author(key: &str) -> bool {
    let k = key
        .trim_start_matches('-')
        .to_ascii_lowercase()
        .replace("authoriz", "auth")
        .replace(AUTHOR, "");
    SECRET_WORDS.iter().any(|w| k.contains(w))
}

/// A Flink configuration value as shown: all of it when the key is secret, else the value with
/// credential patterns inside it redacted (`-Dx.password=…` in `env.java.opts`, user info in
/// URLs).
pub fn config_value(key: &str, value: &str) -> String {
    if is_secret_key(key) {
        REDACTED.to_string()
    } else {
        patterns(value)
    }
}

/// Known secret values shorter than this are not registered: replacing every `true` or `8081`
/// in every message would hide more than it protects.
pub const MIN_KNOWN_SECRET_LEN: usize = 6;

/// The process-wide registry of known secret values, longest first.
#[cfg(not(test))]
static KNOWN: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

#[cfg(not(test))]
fn with_known<R>(f: impl FnOnce(&mut Vec<String>) -> R) -> R {
    f(&mut KNOWN.write().unwrap_or_else(|e| e.into_inner()))
}

// Unit tests run side by side in one process: each test thread has its own registry, so that
// one test's fake secrets (`http://h/`) do not change another test's output.
#[cfg(test)]
thread_local! {
    static KNOWN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
fn with_known<R>(f: impl FnOnce(&mut Vec<String>) -> R) -> R {
    KNOWN.with(|k| f(&mut k.borrow_mut()))
}

/// Registers a secret value this process holds (read from the environment or a file), so that
/// [`text`] replaces it wherever it appears. Values shorter than [`MIN_KNOWN_SECRET_LEN`]
/// (after trimming) are ignored.
pub fn register_secret(value: &str) {
    register_secrets([value]);
}

/// [`register_secret`] for each value, sorted once (a repo of 10,000 jobs with a secret each
/// registers them all at every load).
pub fn register_secrets(values: impl IntoIterator<Item = impl AsRef<str>>) {
    let fresh: Vec<String> = values
        .into_iter()
        .map(|v| v.as_ref().trim().to_string())
        .filter(|v| v.chars().count() >= MIN_KNOWN_SECRET_LEN)
        .collect();
    if fresh.is_empty() {
        return;
    }
    with_known(|known| {
        known.extend(fresh);
        // Longest first, so that a secret containing another is replaced whole.
        known.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        known.dedup();
    });
}

/// Free text (an error message, a Flink exception, a log line) made safe to store, print, log,
/// serve or send: every registered secret value and every credential pattern replaced by
/// [`REDACTED`]. Control characters are left alone (see [`crate::text::escape_controls`]).
pub fn text(text: &str) -> String {
    let s = with_known(|known| {
        if known.is_empty() {
            text.to_string()
        } else {
            scrub(text, known)
        }
    });
    patterns(&s)
}

/// The credential patterns of [`text`], without the known values: user info in URLs,
/// `key=value` / `key: value` / `"key": "value"` pairs with a secret-looking key, and values
/// after secret-looking flags or `Bearer`/`Basic`.
pub fn patterns(text: &str) -> String {
    let s = url_credentials(text);
    let s = key_value_pairs(&s);
    flag_values(&s)
}

/// Characters of a key in `key=value`: `fs.azure.account.key.acct`, `-Dx.trustStorePassword`.
fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Where a value in `key=value` ends: at whitespace, a separator of query strings and connection
/// strings, a quote or a closing bracket; a backslash too, so that an escaped quote of JSON text
/// stays whole.
fn is_value_end(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '&' | ';' | ',' | '"' | '\'' | '`' | ')' | ']' | '}' | '>' | '\\'
        )
}

fn is_secret_name(name: &str) -> bool {
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    !name.is_empty() && (is_secret_key(name) || is_secret_key(&name.replace('_', "-")))
}

/// Redacts the values of `key=value`, `key: value` and `"key": "value"` pairs whose key looks
/// secret, wherever they are (query strings, `password=x;host=y` connection strings,
/// `-Dx.password=y` JVM options, JSON).
fn key_value_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['=', ':']) {
        let (head, tail) = rest.split_at(i);
        let sep = &tail[..1];
        let after = &tail[1..];
        // The key: the run of key characters before the separator, or a quoted key.
        let quoted = head.ends_with('"') || head.ends_with('\'');
        let key_area = if quoted {
            &head[..head.len() - 1]
        } else {
            head
        };
        let key_start = key_area
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_key_char(*c))
            .last()
            .map_or(key_area.len(), |(i, _)| i);
        let key = &key_area[key_start..];
        // `https://…` and `jdbc:postgresql:` are schemes, not pairs.
        let is_scheme = sep == ":" && after.starts_with("//");
        // `auth-service: failed` names a job, not a credential: before `:` the key's last part
        // must be the secret word (`password:`, `x-api-token:`), or the key a dotted
        // configuration key (`fs.azure.account.key.acct.blob.core.windows.net:`).
        let names_a_thing = sep == ":"
            && !key.contains('.')
            && !is_secret_name(key.rsplit(['-', '_']).next().unwrap_or(key));
        if key.is_empty()
            || is_scheme
            || names_a_thing
            || !is_secret_name(key)
            || after.starts_with('=')
        {
            out.push_str(head);
            out.push_str(sep);
            rest = after;
            continue;
        }
        out.push_str(head);
        out.push_str(sep);
        // The value: after optional blanks (for `key: value` and JSON), optionally quoted.
        let blanks = after.len() - after.trim_start_matches([' ', '\t']).len();
        let value_area = &after[blanks..];
        out.push_str(&after[..blanks]);
        if value_area.starts_with(REDACTED) {
            rest = value_area;
            continue;
        }
        let (open, body) = match value_area.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &value_area[1..]),
            _ => (None, value_area),
        };
        let end = match open {
            Some(q) => closing_quote(body, q),
            None => body.find(is_value_end).unwrap_or(body.len()),
        };
        let value = &body[..end];
        // Nothing to hide (`key=` alone), or a placeholder (`<token>`, or already redacted).
        if end == 0 && open.is_none() || value.starts_with('<') {
            rest = value_area;
            continue;
        }
        // `Authorization: Bearer x`: the scheme stays; the credential is the word after it,
        // which `flag_values` redacts.
        if open.is_none() && matches!(value.to_ascii_lowercase().as_str(), "bearer" | "basic") {
            rest = value_area;
            continue;
        }
        if let Some(q) = open {
            out.push(q);
        }
        out.push_str(REDACTED);
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

/// Index of the quote `q` closing a quoted value (one escaped by `\` does not), or the end.
fn closing_quote(body: &str, q: char) -> usize {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == q => return i,
            _ => {}
        }
    }
    body.len()
}

/// Redacts the word after a secret-looking flag (`--password x`), after `-p` (a password flag
/// of many tools; a short number after it, a port or a parallelism, is kept) and after
/// `Bearer`/`Basic`, keeping the text's whitespace.
fn flag_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut hide_next = false;
    let mut rest = text;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if word.is_empty() {
            break;
        }
        // Placeholders (`<token>`, `<redacted>`) and the word `token` of "bearer token" stay.
        let placeholder = word.starts_with('<') || word.eq_ignore_ascii_case("token");
        if std::mem::take(&mut hide_next) && !placeholder {
            let trailing = word.len() - word.trim_end_matches(['"', '\'', ',', ';', ')']).len();
            out.push_str(REDACTED);
            out.push_str(&word[word.len() - trailing..]);
            continue;
        }
        out.push_str(word);
        let bare = word
            .trim_start_matches(['"', '\'', '(', '['])
            .trim_end_matches([',', ';', '"', '\'']);
        let lower = bare.to_ascii_lowercase();
        hide_next = lower == "bearer"
            || lower == "basic"
            || (bare.starts_with('-') && !bare.contains('=') && is_secret_key(bare))
            || (bare == "-p" && !next_is_short_number(rest));
    }
    out
}

/// The next word of `rest` is a number of at most 5 digits (a port, a parallelism).
fn next_is_short_number(rest: &str) -> bool {
    let word = rest.split_whitespace().next().unwrap_or("");
    !word.is_empty() && word.len() <= 5 && word.chars().all(|c| c.is_ascii_digit())
}

/// `text` with the user name and password of every URL in it (`scheme://user:pass@host`)
/// replaced by [`REDACTED`]; the rest of the text is kept.
pub fn url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Program arguments with the value after a secret-looking flag (`--password x`,
/// `--password=x`, `-p x`) redacted, and credential patterns inside any argument
/// (`jdbc:…//user:pass@host`, `password=x;…`) redacted.
pub fn args(args: &[impl AsRef<str>]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for (i, a) in args.iter().enumerate() {
        let a = a.as_ref();
        if std::mem::take(&mut hide_next) {
            out.push(REDACTED.to_string());
            continue;
        }
        if a.starts_with('-') {
            if let Some((flag, _)) = a.split_once('=') {
                if is_secret_key(flag) {
                    out.push(format!("{flag}={REDACTED}"));
                    continue;
                }
            } else if is_secret_key(a) {
                hide_next = true;
            } else if a == "-p" {
                hide_next = !args
                    .get(i + 1)
                    .is_some_and(|next| next_is_short_number(next.as_ref()));
            }
        }
        out.push(patterns(a));
    }
    out
}

/// The values [`args`] hides because of the flag before them (`--password x`, `--token=x`,
/// `-p x`): known secrets of the definition, so that a program that prints one bare (where no
/// pattern can recognise it) is scrubbed too.
pub fn arg_secret_values(args: &[impl AsRef<str>]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let a = a.as_ref();
        if !a.starts_with('-') {
            continue;
        }
        match a.split_once('=') {
            Some((flag, value)) if is_secret_key(flag) => out.push(value.to_string()),
            Some(_) => {}
            None if is_secret_key(a) || a == "-p" => {
                if let Some(next) = args.get(i + 1).map(AsRef::as_ref)
                    && !(a == "-p" && next_is_short_number(next))
                {
                    out.push(next.to_string());
                }
            }
            None => {}
        }
    }
    out
}

/// SQL with the values of secret-looking quoted options redacted, e.g.
/// `'password' = 'hunter2'` → `'password' = '<redacted>'` and `SET 'x.secret' = '...'`, and
/// credential patterns anywhere else (a `'url'` with user info or `?password=` in its query).
pub fn sql(script: &str) -> String {
    let options = sql_options(script);
    let s = url_credentials(&options);
    key_value_pairs(&s)
}

fn sql_options(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    let mut rest = script;
    // Scan for: 'key' <ws> = <ws> 'value'
    while let Some(start) = rest.find('\'') {
        out.push_str(&rest[..start]);
        let after_quote = &rest[start + 1..];
        let Some(key_end) = after_quote.find('\'') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &after_quote[..key_end];
        let tail = &after_quote[key_end + 1..];
        let trimmed = tail.trim_start();
        if is_secret_key(key) && trimmed.starts_with('=') {
            let value_part = trimmed[1..].trim_start();
            if let Some(v) = value_part.strip_prefix('\'')
                && let Some(v_end) = find_sql_string_end(v)
            {
                let consumed = tail.len() - value_part.len();
                out.push('\'');
                out.push_str(key);
                out.push('\'');
                out.push_str(&tail[..consumed]);
                out.push('\'');
                out.push_str(REDACTED);
                out.push('\'');
                rest = &v[v_end + 1..];
                continue;
            }
        }
        out.push('\'');
        out.push_str(key);
        out.push('\'');
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Every string value of a JSON document passed through [`text`] (keys and structure kept): for
/// documents that carry free text, e.g. the daemon's API responses.
pub fn json_strings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            let clean = text(s);
            if clean != *s {
                *s = clean;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(json_strings),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(json_strings),
        _ => {}
    }
}

/// [`json_strings`] on JSON text, without building the document: the text is copied as it is
/// (same key order, same layout) but for the string values [`text`] changes. `None` when `json`
/// is not JSON. (A plan of 10,000 jobs is a few MiB of text and many times that as a
/// `serde_json::Value`, at the moment the plan, the desired state and the observation are all
/// alive.)
pub fn json_text_strings(json: &str) -> Option<String> {
    // Valid JSON, so every `"` outside a string opens one and every string closes.
    serde_json::from_str::<serde::de::IgnoredAny>(json).ok()?;
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].iter().position(|&b| b == b'"') {
        let start = at + offset;
        let mut i = start + 1;
        while bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        let end = i + 1;
        at = end;
        if json[end..].trim_start().starts_with(':') {
            continue; // a key
        }
        let literal = &json[start..end];
        let value: std::borrow::Cow<str> = if literal.contains('\\') {
            serde_json::from_str::<String>(literal).ok()?.into()
        } else {
            literal[1..literal.len() - 1].into()
        };
        let clean = text(&value);
        if clean != value {
            out.push_str(&json[copied..start]);
            out.push_str(&serde_json::to_string(&clean).ok()?);
            copied = end;
        }
    }
    out.push_str(&json[copied..]);
    Some(out)
}

/// `json` with every string value scrubbed ([`json_text_strings`]); text that is not JSON is
/// scrubbed as text ([`text`]).
pub fn json_text(json: &str) -> String {
    json_text_strings(json).unwrap_or_else(|| text(json))
}

/// The writer of weir's log lines (stderr): every line is scrubbed with [`text`] and its control
/// characters escaped (but its final line break) before it is written, whatever logged it —
/// repo text, Flink's errors, a dependency's message.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl std::io::Write for LogWriter {
    /// The formatter writes each event with one `write_all` of the whole line.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(log_line(buf).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A log line as [`LogWriter`] writes it.
fn log_line(buf: &[u8]) -> String {
    let line = String::from_utf8_lossy(buf);
    let (body, end) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line.as_ref(), ""),
    };
    format!("{}{end}", crate::text::escape_controls(&text(body)))
}

/// Index of the closing quote of a SQL string body, honouring `''` escapes.
fn find_sql_string_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Removes known secret values (e.g. tokens read from the environment) from free text such as
/// error messages.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut s = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        s = s.replace(secret.as_str(), REDACTED);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys() {
        assert!(is_secret_key("s3.secret-key"));
        assert!(is_secret_key("properties.sasl.jaas.config"));
        assert!(is_secret_key("--db-password"));
        assert!(is_secret_key("Authorization"));
        assert!(!is_secret_key("author"));
        assert!(!is_secret_key("metadata.Authority"));
        assert!(is_secret_key("OAuth.Client-SECRET"));
        assert!(is_secret_key("x.Author.Password"));
        assert!(is_secret_key("--Api-Token"));
    }

    /// The one-pass reading decides as the plain one does (lower-cased, `author` rewritten,
    /// each word looked for), which for a key without `author` is the same reading.
    #[test]
    fn the_one_pass_reading_of_a_key_agrees_with_the_plain_one() {
        let mut keys: Vec<String> = vec![
            "execution.checkpointing.interval".into(),
            "parallelism.default".into(),
            "pipeline.name".into(),
            "-p".into(),
            "--topic".into(),
            "authors".into(),
            "co-author.token".into(),
            "AUTHORIZATION".into(),
            "pass-word".into(),
            "tok".into(),
            "".into(),
            "ümlaut.Secret".into(),
        ];
        for w in SECRET_WORDS {
            let upper = w.to_ascii_uppercase();
            keys.extend([
                w.to_string(),
                upper.clone(),
                format!("--x.{upper}.y"),
                format!("a{}", &w[1..]),
                w[..w.len() - 1].to_string(),
                format!("{AUTHOR}.{w}"),
            ]);
        }
        for k in &keys {
            assert_eq!(is_secret_key(k), is_secret_key_with_author(k), "{k}");
        }
    }

    /// Every secret word is found by its first letter, in either case, and no other word is.
    #[test]
    fn the_words_by_first_letter_are_the_secret_words() {
        let mut by_letter: Vec<&str> = (b'a'..=b'z')
            .flat_map(|b| secret_words_starting_with(b).iter().copied())
            .collect();
        let mut words = SECRET_WORDS.to_vec();
        by_letter.sort_unstable();
        words.sort_unstable();
        assert_eq!(by_letter, words);
        for w in SECRET_WORDS {
            let first = w.as_bytes()[0];
            assert!(secret_words_starting_with(first).contains(w), "{w}");
            assert!(
                secret_words_starting_with(first.to_ascii_uppercase()).contains(w),
                "{w}"
            );
        }
        assert!(secret_words_starting_with(b'-').is_empty());
        assert!(secret_words_starting_with(0xc3).is_empty());
        assert!(!is_secret_key("execution.checkpointing.interval"));
        assert!(!is_secret_key("parallelism.default"));
    }

    #[test]
    fn redacts_args() {
        let a: Vec<String> = [
            "--topic",
            "orders",
            "--password",
            "hunter2",
            "--api-token=abc",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            args(&a),
            [
                "--topic",
                "orders",
                "--password",
                REDACTED,
                "--api-token=<redacted>"
            ]
        );
    }

    #[test]
    fn redacts_sql_options() {
        let s = "CREATE TABLE t (x INT) WITH ('connector' = 'jdbc', 'password' = 'it''s secret', 'url'='u');\nSET 'fs.s3.secret-key'='abc';";
        let r = sql(s);
        assert!(!r.contains("it''s secret"), "{r}");
        assert!(!r.contains("abc"), "{r}");
        assert!(r.contains("'connector' = 'jdbc'"));
        assert!(r.contains("'password' = '<redacted>'"), "{r}");
        assert!(r.contains("'url'='u'"));
        assert!(r.contains("'fs.s3.secret-key'='<redacted>'"), "{r}");
    }

    #[test]
    fn scrubs_values() {
        assert_eq!(
            scrub("bearer sekrit-123 failed", &["sekrit-123".into()]),
            "bearer <redacted> failed"
        );
    }

    #[test]
    fn text_redacts_every_credential_pattern() {
        let cases = [
            ("jdbc:postgresql://app:S3cretPW@db:5432/x", "S3cretPW"),
            ("GET https://bob:S3cretPW@h/p failed", "S3cretPW"),
            ("--conn password=S3cretPW;host=db", "S3cretPW"),
            ("Server=db;User Id=u;Password=S3cretPW;", "S3cretPW"),
            (
                "jdbc:mysql://db/x?user=u&password=S3cretPW&ssl=true",
                "S3cretPW",
            ),
            (
                "-Djavax.net.ssl.trustStorePassword=S3cretPW -Xmx1g",
                "S3cretPW",
            ),
            (
                "fs.azure.account.key.acct.blob.core.windows.net=S3cretPW",
                "S3cretPW",
            ),
            (
                "fs.azure.account.key.acct.blob.core.windows.net: S3cretPW",
                "S3cretPW",
            ),
            ("mysql -u root -p S3cretPW db", "S3cretPW"),
            ("{\"password\": \"S3cretPW\", \"user\": \"u\"}", "S3cretPW"),
            ("Authorization: Bearer S3cretPW", "S3cretPW"),
            ("header Bearer S3cretPW sent", "S3cretPW"),
            ("--api-token S3cretPW", "S3cretPW"),
            ("token:S3cretPW", "S3cretPW"),
            (
                "sasl.jaas.config=x required username=\"u\" password=\"S3cretPW\";",
                "S3cretPW",
            ),
        ];
        for (input, secret) in cases {
            let out = text(input);
            assert!(!out.contains(secret), "{input:?} -> {out:?}");
            assert!(out.contains(REDACTED), "{input:?} -> {out:?}");
        }
    }

    #[test]
    fn text_keeps_ordinary_text() {
        for s in [
            "job orders failed:\n  caused by: timeout",
            "POST http://flink:8081/jars/x.jar/run failed (500): boom",
            "flink run -p 4 job.jar",
            "jdbc:postgresql://db:5432/x?sslmode=require",
            "a == b",
            "missing bearer token (Authorization: Bearer <token>)",
            "apply-1: auth-service: POST http://h/jars/x/run failed",
            "token-enricher: done",
            "savepoint s3://bucket/sp-1 restored",
        ] {
            assert_eq!(text(s), s);
        }
        assert_eq!(
            text("connect with password=abc123; host=db"),
            "connect with password=<redacted>; host=db"
        );
        assert_eq!(
            text("-Dx.trustStorePassword=pw -Xmx1g"),
            "-Dx.trustStorePassword=<redacted> -Xmx1g"
        );
    }

    #[test]
    fn log_lines_are_scrubbed() {
        assert_eq!(
            log_line(b"WARN cannot reach https://u:S3cretPW@h\x1b[2J\nforged\n"),
            "WARN cannot reach https://<redacted>@h\\u{1b}[2J\\nforged\n"
        );
    }

    #[test]
    fn secret_values_of_args() {
        let a: Vec<String> = [
            "--db-password",
            "pw-1",
            "--token=pw-2",
            "-p",
            "pw-3",
            "-p",
            "4",
            "--x",
            "y",
        ]
        .map(String::from)
        .into();
        assert_eq!(arg_secret_values(&a), ["pw-1", "pw-2", "pw-3"]);
    }

    #[test]
    fn json_string_values_are_scrubbed() {
        let mut v = serde_json::json!({
            "lastError": {"message": "POST https://u:S3cretPW@h failed"},
            "jobs": [{"name": "orders", "password": "kept: keys are not values"}],
        });
        json_strings(&mut v);
        assert_eq!(
            v["lastError"]["message"],
            "POST https://<redacted>@h failed"
        );
        assert_eq!(v["jobs"][0]["name"], "orders");
    }

    #[test]
    fn json_text_strings_scrubs_values_and_keeps_the_rest_as_written() {
        let compact = r#"{"zeta":{"message":"POST https://u:S3cretPW@h failed \"quoted\" \\ é"},"jobs":[{"name":"orders","password=S3cretPW":"keys are not values","n":1.5}],"alpha":["x","token=abc123",null,true]}"#;
        let value: serde_json::Value = serde_json::from_str(compact).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        for json in [compact, &pretty] {
            let out = json_text_strings(json).unwrap();
            let mut expected = value.clone();
            json_strings(&mut expected);
            let back: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(back, expected, "{out}");
            assert!(
                !out.contains("u:S3cretPW") && !out.contains("abc123"),
                "{out}"
            );
            assert_eq!(out.lines().count(), json.lines().count());
        }
        // Key order as written (a `Value` would sort it).
        let out = json_text_strings(compact).unwrap();
        assert!(
            out.find("zeta").unwrap() < out.find("alpha").unwrap(),
            "{out}"
        );
        let clean = r#"{"b": ["a\"b", "c\\d"], "a": 1}"#;
        assert_eq!(json_text_strings(clean).unwrap(), clean);
        assert_eq!(json_text_strings("not json \""), None);
        assert_eq!(json_text_strings(r#"{"a": "b""#), None);
    }

    #[test]
    fn json_text_stays_json() {
        let doc = serde_json::json!({
            "error": "main() said \"password=S3cretPW\" and {\"token\": \"a\\\"b\"}",
            "author": "Jane",
        })
        .to_string();
        let out = text(&doc);
        let back: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert!(!out.contains("S3cretPW"), "{out}");
        assert_eq!(back["author"], "Jane");
    }

    #[test]
    fn known_values_are_replaced_once_registered() {
        let value = "known-value-4b1d2f99";
        assert!(text(&format!("got {value}")).contains(value));
        register_secret(value);
        register_secret("short");
        assert_eq!(text(&format!("got {value}.")), "got <redacted>.");
        assert_eq!(text("short stays"), "short stays");
    }

    #[test]
    fn args_and_config_values_lose_embedded_credentials() {
        let a: Vec<String> = [
            "--jdbc",
            "jdbc:postgresql://app:S3cretPW@db/x",
            "-p",
            "S3cretPW",
            "-p",
            "8",
            "--conn",
            "password=S3cretPW;host=db",
        ]
        .map(String::from)
        .into();
        let r = args(&a).join(" ");
        assert!(!r.contains("S3cretPW"), "{r}");
        assert!(r.contains("-p 8"), "{r}");
        assert!(r.contains("host=db"), "{r}");
        assert_eq!(
            config_value(
                "env.java.opts.all",
                "-Djavax.net.ssl.trustStorePassword=S3cretPW -Xmx1g"
            ),
            "-Djavax.net.ssl.trustStorePassword=<redacted> -Xmx1g"
        );
        assert_eq!(
            config_value(
                "fs.azure.account.key.acct.blob.core.windows.net",
                "S3cretPW"
            ),
            REDACTED
        );
        assert_eq!(
            config_value("state.checkpoints.dir", "s3://ak:S3cretPW@bucket/cp"),
            "s3://<redacted>@bucket/cp"
        );
    }

    #[test]
    fn sql_url_options_lose_credentials() {
        let s = "CREATE TABLE t WITH ('connector'='jdbc', \
                 'url'='jdbc:postgresql://db/x?user=u&password=S3cretPW', \
                 'other'='jdbc:mysql://u:S3cretPW@db/y');";
        let r = sql(s);
        assert!(!r.contains("S3cretPW"), "{r}");
        assert!(r.contains("'connector'='jdbc'"), "{r}");
        assert!(r.contains("user=u&password=<redacted>'"), "{r}");
    }

    #[test]
    fn url_credentials_are_removed() {
        assert_eq!(
            url_credentials("url \"http://admin:hunter2@flink:8081/x\" and https://h/p?a=b"),
            "url \"http://<redacted>@flink:8081/x\" and https://h/p?a=b"
        );
        assert_eq!(
            url_credentials("jdbc:postgresql://u:p@db/x"),
            "jdbc:postgresql://<redacted>@db/x"
        );
        assert_eq!(url_credentials("no url"), "no url");
        assert_eq!(url_credentials("a://"), "a://");
    }
}
