//! Which programs of a pull request are pre-flighted: only where the daemon's own config allows
//! it (`previews.preflight`, never the repo), and never for pull requests from forks. The
//! preview says why a program was not checked.

use std::collections::BTreeMap;

use crate::artifact::ArtifactSettings;
use crate::engine::{PreflightOptions, Route};
use crate::serve::config::PreviewPreflight;

/// The pre-flight options of a preview.
pub fn options(
    cfg: Option<&PreviewPreflight>,
    from_fork: bool,
    artifacts: ArtifactSettings,
) -> PreflightOptions {
    if from_fork {
        return PreflightOptions::off(
            "pull requests from forks are never pre-flighted (their code would run on a cluster)",
        );
    }
    let Some(cfg) = cfg else {
        return PreflightOptions::off(
            "the daemon does not pre-flight pull requests (no `previews.preflight` in its config)",
        );
    };
    let mut routes: BTreeMap<String, Route> = cfg
        .clusters
        .iter()
        .map(|c| (c.clone(), Route::Target))
        .collect();
    for (target, sandbox) in &cfg.sandboxes {
        routes.insert(target.clone(), Route::On(sandbox.clone()));
    }
    PreflightOptions {
        routes: Some(routes),
        ..PreflightOptions::everywhere(artifacts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifacts() -> ArtifactSettings {
        ArtifactSettings::for_cli(Vec::new())
    }

    #[test]
    fn forks_and_unconfigured_daemons_preflight_nothing() {
        let cfg = PreviewPreflight {
            clusters: vec!["local".into()],
            sandboxes: [("prod".to_string(), "sandbox".to_string())].into(),
        };
        let fork = options(Some(&cfg), true, artifacts());
        assert!(fork.off.as_deref().unwrap().contains("forks"));
        assert!(options(None, false, artifacts()).off.is_some());
        let own = options(Some(&cfg), false, artifacts());
        assert_eq!(own.off, None);
        let routes = own.routes.unwrap();
        assert_eq!(routes["local"], Route::Target);
        assert_eq!(routes["prod"], Route::On("sandbox".into()));
        assert!(!routes.contains_key("other"));
    }
}
