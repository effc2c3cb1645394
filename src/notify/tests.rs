use std::collections::HashMap;

use super::*;

fn route(name: &str, events: &[EventSelector], url_var: &str) -> NotificationRoute {
    NotificationRoute {
        name: name.into(),
        events: events.to_vec(),
        format: NotificationFormat::Generic,
        url_from_env: Some(url_var.into()),
        ..Default::default()
    }
}

fn config(routes: Vec<NotificationRoute>) -> NotificationsConfig {
    NotificationsConfig {
        dedup_window_seconds: None,
        routes,
    }
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[test]
fn disabled_notifier_sends_nothing() {
    let n = Notifier::disabled();
    assert!(!n.is_enabled());
    assert!(n.route_names().is_empty());
    assert!(n.routes_for(EventKind::ApplyFailed).is_empty());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(
            n.notify(Event::new(EventKind::ApplyFailed, 0))
                .await
                .is_empty()
        );
        assert!(
            n.spawn(Event::new(EventKind::ApplyFailed, 0))
                .await
                .unwrap()
                .is_empty()
        );
        n.flush().await;
    });
}

#[test]
fn routes_select_their_events() {
    let cfg = config(vec![
        route(
            "ops",
            &[EventSelector::ApplyFailed, EventSelector::JobFailed],
            "OPS_URL",
        ),
        route("audit", &[EventSelector::All], "AUDIT_URL"),
    ]);
    let n = Notifier::from_config(
        &cfg,
        None,
        env(&[
            ("OPS_URL", "https://h/ops"),
            ("AUDIT_URL", "http://h/audit"),
        ]),
    )
    .unwrap();
    assert!(n.is_enabled());
    assert_eq!(n.route_names(), ["ops", "audit"]);
    assert_eq!(n.routes_for(EventKind::ApplyFailed), ["ops", "audit"]);
    assert_eq!(n.routes_for(EventKind::PlanReady), ["audit"]);
    // An empty route list is a notifier that sends nothing.
    let n = Notifier::from_config(&config(vec![]), None, env(&[])).unwrap();
    assert!(!n.is_enabled());
}

#[test]
fn unusable_routes_are_reported_without_their_values() {
    let secret_url = "https://user:pw@hooks.example.com/x?token=very-secret-token";
    let mut signed = route("signed", &[EventSelector::All], "URL");
    signed.secret_from_env = Some("SECRET".into());

    type Case = (
        NotificationRoute,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            route("a", &[EventSelector::All], "URL"),
            vec![],
            "notification route `a`: environment variable URL (the webhook URL) is not set",
        ),
        (
            route("a", &[EventSelector::All], "URL"),
            vec![("URL", "  ")],
            "notification route `a`: environment variable URL (the webhook URL) is not set",
        ),
        (
            route("a", &[EventSelector::All], "URL"),
            vec![("URL", "not a url very-secret-token")],
            "notification route `a`: environment variable URL does not hold a usable webhook \
             URL: relative URL without a base",
        ),
        (
            route("a", &[EventSelector::All], "URL"),
            vec![("URL", "ftp://very-secret-token@h/x")],
            "notification route `a`: environment variable URL does not hold a usable webhook \
             URL: the scheme must be http or https, not `ftp`",
        ),
        (
            signed.clone(),
            vec![("URL", secret_url)],
            "notification route `signed`: environment variable SECRET (the signing secret) is \
             not set",
        ),
        (
            signed.clone(),
            vec![("URL", secret_url), ("SECRET", "very-secret-token")],
            "notification route `signed`: the signing secret in environment variable SECRET is \
             invalid",
        ),
    ];
    for (r, vars, expected) in cases {
        let err = Notifier::from_config(&config(vec![r]), None, env(&vars)).unwrap_err();
        assert_eq!(err.to_string(), expected);
        let chain = error_chain(&err);
        assert!(!chain.contains("very-secret-token"), "{chain}");
        assert!(!format!("{err:?}").contains("very-secret-token"), "{err:?}");
    }

    let err = Notifier::from_config(
        &config(vec![signed.clone()]),
        None,
        env(&[("URL", secret_url), ("SECRET", "whsec_c2hvcnQx")]),
    )
    .unwrap_err();
    assert_eq!(
        error_chain(&err),
        "notification route `signed`: the signing secret in environment variable SECRET is \
         invalid: the key is 6 bytes long; at least 24 are required"
    );

    let dup = config(vec![
        route("a", &[EventSelector::All], "URL"),
        route("a", &[EventSelector::All], "URL"),
    ]);
    let err = Notifier::from_config(&dup, None, env(&[("URL", "http://h/")])).unwrap_err();
    assert_eq!(err.to_string(), "notification route `a` is defined twice");
}

#[test]
fn lenient_construction_keeps_the_usable_routes() {
    let cfg = config(vec![
        route("missing", &[EventSelector::All], "NOPE"),
        route("ok", &[EventSelector::All], "URL"),
    ]);
    let (n, errors) = Notifier::from_config_lenient(
        &cfg,
        None,
        env(&[("URL", "http://h/")]),
        NotifierOptions::default(),
    );
    assert_eq!(n.route_names(), ["ok"]);
    assert_eq!(errors.len(), 1);
    assert!(matches!(errors[0], NotifyError::MissingUrl { .. }));
}

#[test]
fn debug_output_hides_urls_and_secrets() {
    let mut r = route("signed", &[EventSelector::All], "URL");
    r.secret_from_env = Some("SECRET".into());
    let n = Notifier::from_config(
        &config(vec![r]),
        None,
        env(&[
            (
                "URL",
                concat!(
                    "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/",
                    "a1B2c3D4e5F6g7H8i9J0k1L2?x=topsecretq"
                ),
            ),
            ("SECRET", SECRET),
        ]),
    )
    .unwrap();
    let debug = format!("{n:?}");
    for leaked in [
        "a1B2c3D4e5F6g7H8i9J0k1L2",
        "topsecretq",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ] {
        assert!(!debug.contains(leaked), "{leaked} in {debug}");
    }
    assert!(
        debug.contains("https://hooks.slack.com/services/T0123ABCD/B0123ABCD/***"),
        "{debug}"
    );
}

#[test]
fn event_ids_sort_by_time_and_avoid_dots() {
    let a = new_event_id(1_700_000_000_000);
    let b = new_event_id(1_700_000_000_001);
    assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
    assert!(a < b);
    assert_ne!(new_event_id(5), new_event_id(5));
    assert!(!a.contains('.'));
    assert!(new_event_id(-5).starts_with("msg_000000000000"));
}

#[test]
fn delivery_serializes_for_the_api() {
    let d = Delivery {
        event_id: "msg_1".into(),
        route: "ops".into(),
        event: EventKind::JobRecovered,
        job: Some("orders".into()),
        cluster: None,
        revision: None,
        url: "https://h/x".into(),
        status: DeliveryStatus::Suppressed,
        attempts: 0,
        status_code: None,
        error: None,
        event_at_ms: 1,
        started_at_ms: 2,
        finished_at_ms: 3,
    };
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(v["event"], "job.recovered");
    assert_eq!(v["status"], "suppressed");
    assert_eq!(v["eventId"], "msg_1");
    let back: Delivery = serde_json::from_value(v).unwrap();
    assert_eq!(back, d);
}
