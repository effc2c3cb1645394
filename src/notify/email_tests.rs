use super::*;
use crate::notify::{EventKind, PlanInfo};
use crate::plan::Summary;

#[test]
fn smtp_urls() {
    let s = SmtpSettings::parse("smtps://weir%40example.com:p%40ss@mail.example.com").unwrap();
    assert_eq!(s.security, SmtpSecurity::ImplicitTls);
    assert_eq!((s.host.as_str(), s.port), ("mail.example.com", 465));
    assert_eq!(s.user.as_deref(), Some("weir@example.com"));
    assert_eq!(s.password.as_deref(), Some("p@ss"));

    let s = SmtpSettings::parse("smtp://u:p@mail.example.com").unwrap();
    assert_eq!((s.security, s.port), (SmtpSecurity::StartTls, 587));
    let s = SmtpSettings::parse("smtp://mail.example.com:2525?tls=starttls&cafile=/etc/ca.pem")
        .unwrap();
    assert_eq!((s.security, s.port), (SmtpSecurity::StartTls, 2525));
    assert_eq!(
        s.ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );

    let s = SmtpSettings::parse("smtp://relay.internal?tls=none").unwrap();
    assert_eq!((s.security, s.port, s.user), (SmtpSecurity::None, 25, None));
    let s = SmtpSettings::parse("smtp://u:p@127.0.0.1:1025?tls=none").unwrap();
    assert_eq!(s.security, SmtpSecurity::None);
    assert!(SmtpSettings::parse("smtp://u:p@[::1]:1025?tls=none").is_ok());

    let refused = |url: &str| SmtpSettings::parse(url).unwrap_err().to_string();
    assert_eq!(
        refused("smtp://u:secret-pw@mail.example.com?tls=none"),
        "credentials over an unencrypted connection are only sent to a loopback host; use \
         smtps:// or STARTTLS"
    );
    assert_eq!(
        refused("https://mail.example.com"),
        "the scheme must be smtp or smtps, not `https`"
    );
    assert_eq!(
        refused("smtps://mail.example.com?tls=none"),
        "`tls=none` is only allowed with smtp://"
    );
    assert_eq!(
        refused("smtp://mail.example.com?tls=maybe"),
        "`tls=maybe` is not one of starttls, none"
    );
    assert!(refused("smtp://mail.example.com?auth=x").starts_with("unknown option `auth`"));
    assert!(refused("smtp://u:%FF@mail.example.com").contains("percent-encoded"));
    let debug = format!(
        "{:?}",
        SmtpSettings::parse("smtps://u:secret-pw@h").unwrap()
    );
    assert!(!debug.contains("secret-pw"), "{debug}");
}

#[test]
fn addresses() {
    assert_eq!(
        mailbox("ops@example.com").unwrap().to_string(),
        "ops@example.com"
    );
    assert_eq!(
        mailbox("Ops Team <ops@example.com>")
            .unwrap()
            .email
            .to_string(),
        "ops@example.com"
    );
    assert!(mailbox("not an address").is_err());
    let settings = SmtpSettings::parse("smtp://127.0.0.1:1025?tls=none").unwrap();
    let e = Mailer::new(&settings, "weir@example.com", &[], Duration::from_secs(1)).unwrap_err();
    assert_eq!(e.to_string(), "no recipients (`to`)");
}

fn event() -> Event {
    Event::new(EventKind::ApplySucceeded, 1_700_000_000_123)
        .job("orders")
        .cluster("prod")
        .revision("4f2a9c1e0b7d4f2a9c1e")
        .plan(PlanInfo {
            id: "plan-1".into(),
            summary: Summary {
                redeploy: 1,
                ..Summary::default()
            },
        })
        .link("flink", "http://flink:8081/#/job/abc")
        .link(
            "commit",
            "https://user:pw@git.example.com/c/4f2a?token=zzzz-secret",
        )
        .message("redeployed <orders> & restored; smtp password is hunter2-smtp-password")
}

#[test]
fn message_has_both_parts_and_no_secrets() {
    let scrubber = Scrubber::new(vec!["hunter2-smtp-password".into()]);
    let from = mailbox("weir <weir@example.com>").unwrap();
    let to = vec![
        mailbox("ops@example.com").unwrap(),
        mailbox("b@example.com").unwrap(),
    ];
    let m = message("msg_1", &event(), &scrubber, &from, &to).unwrap();
    // Quoted-printable soft line breaks and `=3D` undone, enough to read the HTML part.
    let raw = String::from_utf8(m.formatted())
        .unwrap()
        .replace("=\r\n", "")
        .replace("=3D", "=");
    assert!(
        raw.contains("Subject: [weir] Apply succeeded: orders on prod"),
        "{raw}"
    );
    assert!(raw.contains("From: weir <weir@example.com>"), "{raw}");
    assert!(raw.contains("To: ops@example.com, b@example.com"), "{raw}");
    assert!(raw.contains("Message-ID: <msg_1@weir>"), "{raw}");
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(
        raw.contains("Content-Type: text/plain; charset=utf-8"),
        "{raw}"
    );
    assert!(
        raw.contains("Content-Type: text/html; charset=utf-8"),
        "{raw}"
    );
    for leaked in ["hunter2-smtp-password", "zzzz-secret", "user:pw"] {
        assert!(!raw.contains(leaked), "{leaked} in {raw}");
    }
    // The HTML escapes the message; the plain text keeps it.
    assert!(raw.contains("&lt;orders&gt; &amp; restored"), "{raw}");
    assert!(raw.contains("redeployed <orders> & restored"), "{raw}");
    assert!(
        raw.contains("Plan: Plan: 0 to create, 1 to redeploy, 0 to delete."),
        "{raw}"
    );
    assert!(
        raw.contains("<a href=\"http://flink:8081/#/job/abc\">flink</a>"),
        "{raw}"
    );
}

#[test]
fn unusable_email_routes_are_reported_without_secrets() {
    use crate::notify::{EventSelector, NotificationsConfig, Notifier};
    use crate::spec::{NotificationFormat, NotificationRoute};
    let route = |from: Option<&str>, to: &[&str]| NotificationRoute {
        name: "mail".into(),
        events: vec![EventSelector::All],
        format: NotificationFormat::Email,
        smtp_url_from_env: Some("SMTP".into()),
        from: from.map(str::to_string),
        to: to.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let error = |r: NotificationRoute, url: Option<&str>| {
        let config = NotificationsConfig {
            dedup_window_seconds: None,
            routes: vec![r],
        };
        let url = url.map(str::to_string);
        let e = Notifier::from_config(&config, None, move |_| url.clone()).unwrap_err();
        let chain = crate::text::error_chain(&e);
        assert!(!chain.contains("pa55-secret"), "{chain}");
        chain
    };
    let ok = route(Some("weir@example.com"), &["ops@example.com"]);
    assert_eq!(
        error(ok.clone(), None),
        "notification route `mail`: environment variable SMTP (the SMTP server URL) is not set"
    );
    assert_eq!(
        error(
            ok.clone(),
            Some("smtp://u:pa55-secret@mail.example.com?tls=none")
        ),
        "notification route `mail`: environment variable SMTP does not hold a usable SMTP URL: \
         credentials over an unencrypted connection are only sent to a loopback host; use \
         smtps:// or STARTTLS"
    );
    assert_eq!(
        error(
            route(None, &["ops@example.com"]),
            Some("smtps://u:pa55-secret@h")
        ),
        "notification route `mail`: `from` is required by format `email`"
    );
    assert!(
        error(
            route(Some("weir@example.com"), &["nope"]),
            Some("smtps://u:pa55-secret@h")
        )
        .starts_with(
            "notification route `mail`: the sender, the recipients or TLS cannot be used: `nope` \
             is not an email address"
        )
    );
    let config = NotificationsConfig {
        dedup_window_seconds: None,
        routes: vec![ok],
    };
    let n = Notifier::from_config(&config, None, |_| {
        Some("smtps://u:pa55-secret@mail.example.com".into())
    })
    .unwrap();
    assert_eq!(n.route_names(), ["mail"]);
    assert!(!format!("{n:?}").contains("pa55-secret"));
}
