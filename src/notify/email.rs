//! Email routes: a multipart (plain text + HTML) message per event, sent over SMTP with lettre.
//!
//! The server and its credentials come from one environment variable holding a URL:
//!
//! * `smtps://user:pass@host[:465]`: implicit TLS (the connection starts with TLS);
//! * `smtp://user:pass@host[:587]`: STARTTLS, required (a server that does not offer it fails
//!   the delivery rather than receiving the password in clear);
//! * `smtp://host[:25]?tls=none`: no TLS, only when asked for explicitly; credentials are then
//!   refused unless the host is a loopback address (a local relay).
//!
//! `?cafile=/path/ca.pem` adds a private CA to the public roots. User and password are
//! percent-decoded. Certificates are always verified.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::im::{facts, headline, web_links};
use super::payload::generic;
use super::scrub::{self, Scrubber};
use super::{AttemptError, Event, NotifyError};
use crate::spec::NotificationRoute;
use crate::text::truncate;

/// Longest message kept in an email (characters).
const MAX_EMAIL_MESSAGE_CHARS: usize = 20_000;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
    /// `smtp://`: STARTTLS, required.
    StartTls,
    /// `smtp://...?tls=none`: plain text.
    None,
}

/// An SMTP server as configured by its URL.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub user: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticated", &self.user.is_some())
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Why an SMTP URL or an address cannot be used. Never contains the URL or the password.
#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    #[error("not a URL: {0}")]
    NotUrl(#[source] url::ParseError),
    #[error("the scheme must be smtp or smtps, not `{0}`")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("unknown option `{0}` (known: tls=starttls|none, cafile=PATH)")]
    Option(String),
    #[error("`tls={0}` is not one of starttls, none")]
    TlsMode(String),
    #[error("`tls=none` is only allowed with smtp://")]
    NoneWithSmtps,
    #[error(
        "credentials over an unencrypted connection are only sent to a loopback host; use \
         smtps:// or STARTTLS"
    )]
    CleartextCredentials,
    #[error("the user name or password is not valid percent-encoded UTF-8")]
    Encoding,
    #[error("cannot read the CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {path} holds no usable PEM certificate")]
    CaPem {
        path: PathBuf,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot set up TLS")]
    Tls(#[source] lettre::transport::smtp::Error),
    #[error("`{address}` is not an email address")]
    Address {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("no recipients (`to`)")]
    NoRecipients,
}

impl SmtpSettings {
    /// Parses an SMTP URL (see the module documentation).
    pub fn parse(raw: &str) -> Result<SmtpSettings, EmailConfigError> {
        let url = url::Url::parse(raw).map_err(EmailConfigError::NotUrl)?;
        let implicit = match url.scheme() {
            "smtps" => true,
            "smtp" => false,
            other => return Err(EmailConfigError::Scheme(other.to_string())),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(EmailConfigError::NoHost)?;
        // An IPv6 host comes bracketed; TLS names and sockets want it bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let mut security = if implicit {
            SmtpSecurity::ImplicitTls
        } else {
            SmtpSecurity::StartTls
        };
        let mut ca_file = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "tls" => match value.as_ref() {
                    "none" if implicit => return Err(EmailConfigError::NoneWithSmtps),
                    "none" => security = SmtpSecurity::None,
                    "starttls" | "required" if !implicit => security = SmtpSecurity::StartTls,
                    other => return Err(EmailConfigError::TlsMode(other.to_string())),
                },
                "cafile" => ca_file = Some(PathBuf::from(value.as_ref())),
                other => return Err(EmailConfigError::Option(other.to_string())),
            }
        }
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or(EmailConfigError::Encoding)
                .map(Some)
        };
        let user = match url.username() {
            "" => None,
            u => decode(u)?,
        };
        let password = match url.password() {
            None => None,
            Some(p) => decode(p)?,
        };
        if security == SmtpSecurity::None && user.is_some() && !is_loopback(&host) {
            return Err(EmailConfigError::CleartextCredentials);
        }
        let port = url.port().unwrap_or(match security {
            SmtpSecurity::ImplicitTls => 465,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::None => 25,
        });
        Ok(SmtpSettings {
            host,
            port,
            security,
            user,
            password,
            ca_file,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Parses `weir@example.com` or `weir <weir@example.com>`.
pub fn mailbox(address: &str) -> Result<Mailbox, EmailConfigError> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|source| EmailConfigError::Address {
            address: address.to_string(),
            source,
        })
}

/// A ready SMTP transport with its sender and recipients.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(
        settings: &SmtpSettings,
        from: &str,
        to: &[String],
        timeout: Duration,
    ) -> Result<Mailer, EmailConfigError> {
        let from = mailbox(from)?;
        let to = to
            .iter()
            .map(|a| mailbox(a))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(EmailConfigError::NoRecipients);
        }
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
                .port(settings.port)
                .timeout(Some(timeout));
        let tls = || -> Result<TlsParameters, EmailConfigError> {
            let mut params = TlsParameters::builder(settings.host.clone());
            if let Some(path) = &settings.ca_file {
                let pem = std::fs::read(path).map_err(|source| EmailConfigError::CaFile {
                    path: path.clone(),
                    source,
                })?;
                let cert =
                    Certificate::from_pem(&pem).map_err(|source| EmailConfigError::CaPem {
                        path: path.clone(),
                        source,
                    })?;
                params = params.add_root_certificate(cert);
            }
            params.build_rustls().map_err(EmailConfigError::Tls)
        };
        builder = match settings.security {
            SmtpSecurity::ImplicitTls => builder.tls(Tls::Wrapper(tls()?)),
            SmtpSecurity::StartTls => builder.tls(Tls::Required(tls()?)),
            SmtpSecurity::None => builder.tls(Tls::None),
        };
        if let Some(user) = &settings.user {
            let password = settings.password.clone().unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            to,
        })
    }

    /// Sends `message`; the server's reply code (`250`) when it was accepted.
    pub async fn send(&self, message: &Message) -> Result<u16, lettre::transport::smtp::Error> {
        let response = self.transport.send(message.clone()).await?;
        Ok(response.code().to_string().parse().unwrap_or(250))
    }
}

/// Whether a failed send is worth retrying: the server's temporary refusals (`4xx`), timeouts
/// and connection or TLS failures; not permanent refusals (`5xx`) or a message lettre refused.
pub fn is_retryable(e: &lettre::transport::smtp::Error) -> bool {
    !(e.is_permanent() || e.is_client())
}

/// The reply code of a failed send, if the server answered.
pub fn reply_code(e: &lettre::transport::smtp::Error) -> Option<u16> {
    e.status().and_then(|c| c.to_string().parse().ok())
}

/// The email of `event` (id `id`): subject `[weir] Apply failed: orders on prod`, a plain-text
/// and an HTML part with the same content. Everything taken from the event is scrubbed.
pub fn message(
    id: &str,
    event: &Event,
    scrubber: &Scrubber,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<Message, lettre::error::Error> {
    let p = generic(id, event, scrubber);
    let subject = format!("[weir] {}", headline(&p));
    let message = p
        .message
        .as_deref()
        .map(|m| truncate(m, MAX_EMAIL_MESSAGE_CHARS));
    let facts = facts(&p);
    let links = web_links(&p);

    let mut plain = format!("{}\n\n", headline(&p));
    if let Some(m) = &message {
        plain.push_str(m);
        plain.push_str("\n\n");
    }
    for (label, value) in &facts {
        plain.push_str(&format!("{label}: {value}\n"));
    }
    if !links.is_empty() {
        plain.push('\n');
        for (name, url) in &links {
            plain.push_str(&format!("{name}: {url}\n"));
        }
    }
    plain.push_str(&format!("\nEvent id: {id}\n-- \nSent by weir\n"));

    let mut html = format!(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif\">\n<h2>{}</h2>\n",
        esc(&headline(&p))
    );
    if let Some(m) = &message {
        html.push_str(&format!(
            "<pre style=\"white-space: pre-wrap\">{}</pre>\n",
            esc(m)
        ));
    }
    html.push_str("<table>\n");
    for (label, value) in &facts {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            esc(label),
            esc(value)
        ));
    }
    html.push_str("</table>\n");
    if !links.is_empty() {
        let links: Vec<String> = links
            .iter()
            .map(|(name, url)| format!("<a href=\"{}\">{}</a>", esc(url), esc(name)))
            .collect();
        html.push_str(&format!("<p>{}</p>\n", links.join(" &middot; ")));
    }
    html.push_str(&format!(
        "<p style=\"color: #888\">Event id: {}. Sent by weir.</p>\n</body></html>\n",
        esc(id)
    ));

    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject)
        .message_id(Some(format!("<{id}@weir>")));
    for recipient in to {
        builder = builder.to(recipient.clone());
    }
    builder.multipart(MultiPart::alternative_plain_html(plain, html))
}

/// The mailer of an `email` route and its URL as shown (`smtps://host:465`). Adds the SMTP URL,
/// its user and password to `secrets`.
pub(super) fn target(
    r: &NotificationRoute,
    read: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Vec<String>,
    timeout: Duration,
) -> Result<(Mailer, String), NotifyError> {
    let missing = |field| NotifyError::MissingField {
        route: r.name.clone(),
        field,
        format: r.format.as_str(),
    };
    let var = r
        .smtp_url_from_env
        .as_deref()
        .ok_or_else(|| missing("smtpUrlFromEnv"))?;
    let from = r.from.as_deref().ok_or_else(|| missing("from"))?;
    let raw = read(var).ok_or_else(|| NotifyError::MissingSmtpUrl {
        route: r.name.clone(),
        var: var.to_string(),
    })?;
    secrets.push(raw.clone());
    let invalid_url = |source| NotifyError::InvalidSmtpUrl {
        route: r.name.clone(),
        var: var.to_string(),
        source,
    };
    let url = url::Url::parse(&raw).map_err(|e| invalid_url(EmailConfigError::NotUrl(e)))?;
    secrets.extend(scrub::url_secrets(&url));
    let settings = SmtpSettings::parse(&raw).map_err(invalid_url)?;
    secrets.extend(settings.user.iter().cloned());
    secrets.extend(settings.password.iter().cloned());
    let mailer =
        Mailer::new(&settings, from, &r.to, timeout).map_err(|source| NotifyError::Email {
            route: r.name.clone(),
            source,
        })?;
    let port = settings.port;
    let shown = format!("{}://{}:{port}", url.scheme(), settings.host);
    Ok((mailer, shown))
}

/// One SMTP transaction, as a notifier attempt.
pub(super) async fn attempt(
    mailer: &Mailer,
    message: &Message,
    scrubber: &Scrubber,
) -> Result<u16, AttemptError> {
    mailer.send(message).await.map_err(|e| AttemptError {
        status: reply_code(&e),
        retryable: is_retryable(&e),
        retry_after: None,
        message: scrubber.text(&crate::text::error_chain(&e)),
    })
}

/// HTML escaping of text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[path = "email_tests.rs"]
mod tests;
