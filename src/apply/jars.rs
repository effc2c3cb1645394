//! Jars and submissions: each jar uploaded once per cluster (named by its content hash), the
//! run request, and where a submission restores from.

use super::{Applier, ApplyError, Carry, JarIds, StepError};
use crate::artifact::{self, ArtifactSettings, FetchError};
use crate::bundle::{self, BundleError};
use crate::desired::{Dependency, DependencySource, DesiredJob, JarLocation, JarRef};
use crate::flink::{FlinkClient, RunJar};
use crate::git::{GitError, RepoFiles, RepoSource};
use crate::identity::JobId;
use crate::plan::Restore;
use crate::text::error_chain;

/// Jars larger than this are refused (Flink's default upload limit is far below it).
const MAX_JAR_BYTES: u64 = 1 << 30;

/// Why a jar's bytes could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JarError {
    #[error("{0}")]
    Repo(#[source] GitError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{path}: cannot read the verified artifact")]
    Cached {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sha256 is {found}, expected {expected}")]
    Digest { found: String, expected: String },
    /// A dependency could not be had; `origin` is its entry's `file:line:col`.
    #[error("{origin}: {message}")]
    Dependency { origin: String, message: String },
    #[error("the built-in SQL runner is chosen per cluster, not read")]
    Embedded,
    #[error("cannot build the bundle")]
    Bundle(#[source] BundleError),
}

impl Applier {
    pub(super) fn restore_path(
        &self,
        job: &str,
        restore: &Restore,
        carry: &Carry,
    ) -> Result<Option<String>, ApplyError> {
        match restore {
            Restore::None => Ok(None),
            Restore::Path { path } => Ok(Some(path.clone())),
            Restore::StopSavepoint => carry
                .stop_savepoint
                .clone()
                .map(Some)
                .ok_or_else(|| ApplyError::step(job, StepError::NoStopSavepoint)),
            Restore::LatestCheckpoint => carry
                .latest_checkpoint
                .clone()
                .map(Some)
                .ok_or_else(|| ApplyError::step(job, StepError::NoRetainedCheckpoint)),
        }
    }

    /// Refuses a last-state upgrade up front when cancelling would lose the state.
    pub(super) async fn check_retained_checkpoint(
        &self,
        job: &str,
        client: &FlinkClient,
        job_id: &JobId,
    ) -> Result<(), ApplyError> {
        let flink = Applier::flink(job);
        let summary = client.checkpoints(job_id).await.map_err(&flink)?;
        if summary.completed.is_none() {
            return Err(ApplyError::step(
                job,
                StepError::NoCompletedCheckpoint(*job_id),
            ));
        }
        if let Ok(Some(false)) = client.checkpoints_retained_on_cancel(job_id).await {
            return Err(ApplyError::step(
                job,
                StepError::CheckpointsDeletedOnCancel(*job_id),
            ));
        }
        Ok(())
    }

    /// Uploads the jar unless the cluster already has this exact content (named by its hash).
    pub(super) async fn ensure_jar(
        &self,
        job: &str,
        client: &FlinkClient,
        desired: &DesiredJob,
    ) -> Result<String, ApplyError> {
        let progress = |msg: &str| self.say(msg);
        JarStage {
            source: &self.source,
            artifacts: &self.artifacts,
            jar_ids: &self.jar_ids,
            progress: &progress,
        }
        .ensure(job, client, desired)
        .await
    }
}

/// Staging jars on clusters: what `weir apply` does before a submission and what a pre-flight
/// does before asking the cluster to plan the program (one implementation for both, so that a
/// pre-flight checks exactly the jar the submission will run).
pub struct JarStage<'a> {
    /// Where repo jars are read from (the same tree as the definitions).
    pub source: &'a RepoSource,
    pub artifacts: &'a ArtifactSettings,
    /// The jars found or uploaded so far (shared by the concurrent users of one run).
    pub jar_ids: &'a JarIds,
    pub progress: &'a (dyn Fn(&str) + Send + Sync),
}

impl JarStage<'_> {
    /// The cluster's id of the jar `desired` runs: its program jar, or a bundle of it with its
    /// dependencies (see [`crate::bundle`]), uploaded under a name carrying its content hash
    /// unless the cluster already has this exact content. The embedded SQL runner is the build
    /// for the cluster's Flink major version.
    pub async fn ensure(
        &self,
        job: &str,
        client: &FlinkClient,
        desired: &DesiredJob,
    ) -> Result<String, ApplyError> {
        let jar = desired.jar();
        if desired.dependencies.is_empty() && jar.location != JarLocation::Embedded {
            // Named by the declared digest: nothing is read when the cluster has it.
            let name = format!("weir-{}-{}", &jar.sha256[..16], jar.file_name());
            return self
                .upload_unless_present(job, client, name, self.jar_bytes(job, jar))
                .await;
        }
        let program = match &jar.location {
            JarLocation::Embedded => {
                let version = client.flink_version().await.map_err(Applier::flink(job))?;
                bundle::embedded_sql_runner(&version).to_vec()
            }
            _ => self.jar_bytes(job, jar).await?,
        };
        let mut libs = Vec::with_capacity(desired.dependencies.len());
        for dependency in &desired.dependencies {
            let bytes = self.dependency_bytes(job, dependency).await?;
            libs.push((dependency.file_name(), bytes));
        }
        let bytes = if libs.is_empty() {
            program
        } else {
            bundle::bundle(jar.file_name(), &program, &libs).map_err(|e| ApplyError::Jar {
                job: job.into(),
                jar: jar.file_name().into(),
                source: Box::new(match e {
                    BundleError::NotAJar { name } => JarError::Dependency {
                        origin: origin_of(desired, &name),
                        message: format!("{name} is not a jar (no zip header)"),
                    },
                    other => JarError::Bundle(other),
                }),
            })?
        };
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        let kind = if libs.is_empty() { "" } else { "bundle-" };
        let name = format!("weir-{}-{kind}{}", &sha[..16], jar.file_name());
        self.upload_unless_present(job, client, name, async { Ok(bytes) })
            .await
    }

    /// The cluster's id of the jar named `name`: uploaded from `bytes` (awaited only then) unless
    /// the cluster has it already.
    async fn upload_unless_present(
        &self,
        job: &str,
        client: &FlinkClient,
        name: String,
        bytes: impl std::future::Future<Output = Result<Vec<u8>, ApplyError>>,
    ) -> Result<String, ApplyError> {
        let flink = Applier::flink(job);
        let slot = self
            .jar_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((client.name().to_string(), name.clone()))
            .or_default()
            .clone();
        let mut known = slot.lock().await;
        if let Some(id) = known.as_ref() {
            return Ok(id.clone());
        }
        let id = match client
            .list_jars()
            .await
            .map_err(&flink)?
            .into_iter()
            .find(|j| j.name == name)
        {
            Some(existing) => existing.id,
            None => {
                let bytes = bytes.await?;
                (self.progress)(&format!(
                    "{job}: uploading {name} ({} KiB)",
                    bytes.len() / 1024
                ));
                client.upload_jar(&name, bytes).await.map_err(&flink)?
            }
        };
        *known = Some(id.clone());
        Ok(id)
    }

    /// A dependency's verified bytes (from the artifact cache when it is there).
    async fn dependency_bytes(
        &self,
        job: &str,
        dependency: &Dependency,
    ) -> Result<Vec<u8>, ApplyError> {
        let err = |message: String| ApplyError::Jar {
            job: job.into(),
            jar: dependency.label(),
            source: Box::new(JarError::Dependency {
                origin: dependency.origin.clone(),
                message,
            }),
        };
        let bytes = match &dependency.source {
            DependencySource::Repo { path } => {
                let jar = JarRef {
                    location: JarLocation::Repo { path: path.clone() },
                    sha256: dependency.sha256.clone().unwrap_or_default(),
                };
                return self
                    .jar_bytes(job, &jar)
                    .await
                    .map_err(|e| err(error_chain(&e)))
                    .and_then(|b| check_jar(b, dependency, &err));
            }
            DependencySource::Url { url } => fetch_url(
                url,
                dependency.sha256.as_deref().unwrap_or_default(),
                self.artifacts,
            )
            .await
            .map_err(|e| err(error_chain(&e)))?,
            DependencySource::Maven {
                coordinate,
                repositories,
            } => {
                let artifact = crate::artifact::maven::resolve(
                    coordinate,
                    dependency.sha256.as_deref(),
                    repositories,
                    self.artifacts,
                )
                .await
                .map_err(|e| err(error_chain(&e)))?;
                tokio::fs::read(&artifact.path).await.map_err(|source| {
                    err(error_chain(&JarError::Cached {
                        path: artifact.path.display().to_string(),
                        source,
                    }))
                })?
            }
        };
        check_jar(bytes, dependency, &err)
    }

    async fn jar_bytes(&self, job: &str, jar: &JarRef) -> Result<Vec<u8>, ApplyError> {
        let err = |source: JarError| ApplyError::Jar {
            job: job.into(),
            jar: jar.file_name().into(),
            source: Box::new(source),
        };
        let bytes = match &jar.location {
            JarLocation::Repo { path } => {
                self.source
                    .read(path, MAX_JAR_BYTES)
                    .map_err(|e| err(JarError::Repo(e)))?
                    .bytes
            }
            JarLocation::Url { url } => fetch_url(url, &jar.sha256, self.artifacts)
                .await
                .map_err(err)?,
            JarLocation::Embedded => return Err(err(JarError::Embedded)),
        };
        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if !digest.eq_ignore_ascii_case(&jar.sha256) {
            return Err(err(JarError::Digest {
                found: digest,
                expected: jar.sha256.clone(),
            }));
        }
        Ok(bytes)
    }
}

/// `bytes` when they look like a jar.
fn check_jar(
    bytes: Vec<u8>,
    dependency: &Dependency,
    err: &dyn Fn(String) -> ApplyError,
) -> Result<Vec<u8>, ApplyError> {
    if bundle::looks_like_jar(&bytes) {
        Ok(bytes)
    } else {
        Err(err(format!(
            "{} is not a jar (no zip header)",
            dependency.file_name()
        )))
    }
}

/// The `file:line:col` of the dependency shipped as `name`.
fn origin_of(desired: &DesiredJob, name: &str) -> String {
    desired
        .dependencies
        .iter()
        .find(|d| d.file_name() == name)
        .map_or_else(|| desired.file.to_string(), |d| d.origin.clone())
}

/// The body of a submission of `desired` (`POST /jars/{id}/run`): its [`plan_request`] with the
/// chosen job id and the savepoint to restore.
pub fn run_request(
    desired: &DesiredJob,
    job_id: JobId,
    savepoint: Option<String>,
) -> Result<RunJar, crate::secrets::UnsetSecret> {
    Ok(RunJar {
        job_id: Some(job_id),
        savepoint_path: savepoint,
        ..plan_request(desired)?
    })
}

/// The body of a pre-flight of `desired` (`POST /jars/{id}/plan`), and everything of its
/// submission but the job id and the savepoint: one function, so that a pre-flight plans
/// exactly the program (entry class, arguments, parallelism, configuration) a submission runs.
/// The only place where `${env:NAME}` secrets are put in ([`crate::secrets::for_flink`]): the
/// request is sent, never stored or shown.
pub fn plan_request(desired: &DesiredJob) -> Result<RunJar, crate::secrets::UnsetSecret> {
    let desired = &crate::secrets::for_flink(desired)?;
    let mut config: std::collections::BTreeMap<String, String> =
        desired.flink_configuration.clone().into();
    config
        .entry("pipeline.name".into())
        .or_insert_with(|| desired.name.to_string());
    if desired.is_batch() {
        // A bounded program in Flink's batch runtime (the loader refuses a contradicting value).
        config.insert("execution.runtime-mode".into(), "BATCH".into());
    }
    Ok(RunJar {
        entry_class: desired.entry_class().map(str::to_string),
        program_args_list: desired.program_args(),
        parallelism: Some(desired.parallelism),
        job_id: None,
        savepoint_path: None,
        allow_non_restored_state: desired.allow_non_restored_state,
        flink_configuration: config,
    })
}

/// A URL jar: fetched (bounded, verified) into the artifact cache unless it is there already.
async fn fetch_url(
    url: &str,
    sha256: &str,
    settings: &ArtifactSettings,
) -> Result<Vec<u8>, JarError> {
    let artifact = artifact::fetch(url, sha256, &settings.policy, &settings.cache).await?;
    tokio::fs::read(&artifact.path)
        .await
        .map_err(|source| JarError::Cached {
            path: artifact.path.display().to_string(),
            source,
        })
}

#[cfg(test)]
mod tests;
