use super::*;

#[test]
fn parses_a_full_config_with_defaults() {
    let cfg = DaemonConfig::parse(
        "repo:\n  url: https://git.example.com/flink/jobs.git\n  token: {env: GIT_TOKEN}\n\
         listen: 0.0.0.0:9000\nstateDir: /data\napi:\n  tokens: [{file: /run/secrets/api}]\n\
         webhooks:\n  github: {env: GH_SECRET}\nsync:\n  policy: manual\n  selfHeal: true\n",
    )
    .unwrap();
    assert_eq!(cfg.repo.branch, "main");
    assert_eq!(cfg.poll_interval_seconds, 60);
    assert_eq!(cfg.sync.policy, SyncPolicy::Manual);
    assert!(cfg.sync.self_heal);
    assert_eq!(cfg.sync.self_heal_max_attempts, 5);
    assert_eq!(cfg.api.tokens.len(), 1);
    assert_eq!(cfg.listen_addr().unwrap().port(), 9000);
}

#[test]
fn sync_settings_per_job_then_cluster_then_default() {
    let cfg = DaemonConfig::parse(
        "repo: {url: /srv/jobs.git}\nsync:\n  policy: auto\n  selfHeal: true\n  \
         clusters:\n    prod: {policy: manual}\n  jobs:\n    \
         billing: {selfHeal: false}\n    hotfix: {policy: auto}\n",
    )
    .unwrap();
    let s = &cfg.sync;
    let eff = |policy, self_heal| EffectiveSync { policy, self_heal };
    assert_eq!(s.for_job("any", "staging"), eff(SyncPolicy::Auto, true));
    assert_eq!(s.for_job("any", "prod"), eff(SyncPolicy::Manual, true));
    assert_eq!(s.for_job("billing", "prod"), eff(SyncPolicy::Manual, false));
    assert_eq!(s.for_job("hotfix", "prod"), eff(SyncPolicy::Auto, true));
    assert!(DaemonConfig::parse("repo: {url: x}\nsync: {jobs: {a: {polcy: auto}}}\n").is_err());
}

#[test]
fn watch_defaults_to_a_local_repo_url() {
    let load = |url: &str, watch: &str| {
        let c = DaemonConfig::parse(&format!("repo: {{url: {url}}}\n{watch}"))?;
        c.check()?;
        c.watch_path()
    };
    assert_eq!(load("/srv/jobs", "").unwrap(), None);
    assert_eq!(
        load("/srv/jobs", "watch: {}\n").unwrap(),
        Some(PathBuf::from("/srv/jobs"))
    );
    assert_eq!(
        load("file:///srv/jobs.git", "watch: {}\n").unwrap(),
        Some(PathBuf::from("/srv/jobs.git"))
    );
    let err = load("https://git.example.com/jobs.git", "watch: {}\n").unwrap_err();
    assert!(err.to_string().contains("watch.path"), "{err}");
    assert!(load("git@host:jobs.git", "watch: {}\n").is_err());
    assert_eq!(
        load("https://h/j.git", "watch: {path: /w}\n").unwrap(),
        Some(PathBuf::from("/w"))
    );
}

#[test]
fn retention_is_off_unless_configured() {
    let cfg = DaemonConfig::parse("repo: {url: x}\n").unwrap();
    assert_eq!(cfg.audit.retention(), None);
    let cfg = DaemonConfig::parse("repo: {url: x}\naudit: {retentionDays: 90}\n").unwrap();
    assert_eq!(
        cfg.audit.retention(),
        Some(Duration::from_secs(90 * 86_400))
    );
    assert!(DaemonConfig::parse("repo: {url: x}\naudit: {retentionDay: 9}\n").is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir-serve.yaml");
    std::fs::write(&path, "repo: {url: x}\naudit: {retentionDays: 0}\n").unwrap();
    let err = DaemonConfig::load(&Overrides {
        config: Some(path),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("retentionDays"), "{err}");
}

#[test]
fn rejects_unknown_fields_and_inline_secrets() {
    let err = DaemonConfig::parse("repo: {url: x, tokne: abc}\n").unwrap_err();
    assert!(err.to_string().contains("tokne"), "{err}");
    // A secret given inline (a string instead of {env|file}) is refused.
    assert!(DaemonConfig::parse("repo: {url: x, token: hunter2}\n").is_err());
}

#[test]
fn ssh_urls_need_known_hosts_and_a_key() {
    let load = |repo: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, format!("repo: {repo}\n")).unwrap();
        DaemonConfig::load(&Overrides {
            config: Some(path),
            ..Default::default()
        })
    };
    let e = load("{url: 'git@github.com:acme/jobs.git', sshKey: {file: /k}}").unwrap_err();
    assert!(e.to_string().contains("repo.knownHosts"), "{e}");
    assert!(e.to_string().contains("is required"), "{e}");
    let e = load("{url: 'ssh://git@h:2222/jobs.git', knownHosts: /kh}").unwrap_err();
    assert!(e.to_string().contains("repo.sshKey"), "{e}");
    let cfg = load(
        "{url: 'ssh://git@h:2222/jobs.git', knownHosts: /kh, \
         sshKey: {file: /k, passphrase: {env: P}}}",
    )
    .unwrap();
    assert!(cfg.repo.is_ssh());
    assert!(cfg.repo.ssh_key.unwrap().passphrase.is_some());
    let e = load("{url: 'https://h/jobs.git', knownHosts: /kh}").unwrap_err();
    assert!(e.to_string().contains("for SSH URLs"), "{e}");
    let e = load("{url: 'http://h/jobs.git', token: {env: T}}").unwrap_err();
    assert!(e.to_string().contains("clear text"), "{e}");
    let cfg = load("{url: 'https://h/jobs.git', token: {env: T}, caFile: /ca.pem}").unwrap();
    assert!(!cfg.repo.is_ssh());
    // A passphrase given inline is refused like any secret.
    assert!(
        load("{url: 'ssh://h/j.git', knownHosts: /kh, sshKey: {file: /k, passphrase: x}}").is_err()
    );
}

#[test]
fn previews_are_off_by_default_and_checked_when_configured() {
    let cfg = DaemonConfig::parse("repo: {url: x}\n").unwrap();
    assert!(!cfg.previews.enabled());
    let cfg = DaemonConfig::parse(
        "repo: {url: x}\nwebhooks: {github: {env: S}, gitlab: {env: T}}\npreviews:\n  \
         github: {token: {env: GH}, repo: acme/jobs}\n  \
         gitlab: {apiUrl: 'https://git.example.com/api/v4', token: {file: /t}, projectId: 42}\n",
    )
    .unwrap();
    cfg.check().unwrap();
    let gh = cfg.previews.github.as_ref().unwrap();
    assert_eq!(gh.api_url, "https://api.github.com");
    let gl = cfg.previews.gitlab.as_ref().unwrap();
    assert_eq!(gl.project_id, ProjectId::Id(42));
    assert_eq!(cfg.previews.concurrency, 2);
    let path = DaemonConfig::parse(
        "repo: {url: x}\nwebhooks: {gitlab: {env: T}}\npreviews:\n  \
         gitlab: {token: {env: T}, projectId: group/jobs}\n",
    )
    .unwrap();
    path.check().unwrap();
    assert_eq!(
        path.previews.gitlab.unwrap().project_id,
        ProjectId::Path("group/jobs".into())
    );
    for (bad, why) in [
        // Deliveries must be verified.
        (
            "previews: {github: {token: {env: A}, repo: a/b}}",
            "webhooks.github",
        ),
        (
            "webhooks: {github: {env: S}}\npreviews: {github: {token: {env: A}, repo: ab}}",
            "owner/name",
        ),
        (
            "webhooks: {github: {env: S}}\npreviews: {github: {token: {env: A}, repo: a/b, \
             apiUrl: 'https://user:pw@ghe.example.com/api/v3'}}",
            "credentials",
        ),
        (
            "webhooks: {gitlab: {env: S}}\npreviews: {gitlab: {token: {env: A}, projectId: 1, \
             apiUrl: 'ftp://x'}}",
            "http",
        ),
        (
            "webhooks: {github: {env: S}}\npreviews: {concurrency: 0, github: {token: {env: A}, repo: a/b}}",
            "concurrency",
        ),
    ] {
        let cfg = DaemonConfig::parse(&format!("repo: {{url: x}}\n{bad}\n")).unwrap();
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
    // A token given inline is refused.
    assert!(
        DaemonConfig::parse("repo: {url: x}\npreviews: {github: {token: abc, repo: a/b}}\n")
            .is_err()
    );
}

#[test]
fn overrides_win_and_secrets_resolve_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weir-serve.yaml");
    std::fs::write(
        &path,
        "repo: {url: /srv/jobs.git}\npollIntervalSeconds: 5\n",
    )
    .unwrap();
    let cfg = DaemonConfig::load(&Overrides {
        config: Some(path),
        branch: Some("prod".into()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(cfg.repo.branch, "prod");
    assert_eq!(cfg.poll_interval_seconds, 5);
    let secret = dir.path().join("s");
    std::fs::write(&secret, "abc\n").unwrap();
    let r = SecretRef {
        env: None,
        file: Some(secret),
    };
    assert_eq!(r.resolve("t").unwrap(), "abc");
    assert!(SecretRef::default().resolve("t").is_err());
}
