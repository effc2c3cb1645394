//! Typed views of Flink REST answers, and the wire shapes they are read from.
//!
//! Wire structs accept what both Flink 1.20.x and 2.x send: every field has a default, unknown
//! fields are ignored, `null` is read like an absent field.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::identity::JobId;

/// Flink's `JobStatus`, plus whatever a future version may add.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobState {
    Initializing,
    Created,
    Running,
    Failing,
    Failed,
    Cancelling,
    Canceled,
    Finished,
    Restarting,
    Suspended,
    Reconciling,
    /// A state this client does not know, as Flink spelled it.
    Unknown(String),
}

impl JobState {
    pub const ALL_KNOWN: [JobState; 11] = [
        JobState::Initializing,
        JobState::Created,
        JobState::Running,
        JobState::Failing,
        JobState::Failed,
        JobState::Cancelling,
        JobState::Canceled,
        JobState::Finished,
        JobState::Restarting,
        JobState::Suspended,
        JobState::Reconciling,
    ];

    /// Flink's spelling (`RUNNING`, `CANCELED`...).
    pub fn as_str(&self) -> &str {
        match self {
            JobState::Initializing => "INITIALIZING",
            JobState::Created => "CREATED",
            JobState::Running => "RUNNING",
            JobState::Failing => "FAILING",
            JobState::Failed => "FAILED",
            JobState::Cancelling => "CANCELLING",
            JobState::Canceled => "CANCELED",
            JobState::Finished => "FINISHED",
            JobState::Restarting => "RESTARTING",
            JobState::Suspended => "SUSPENDED",
            JobState::Reconciling => "RECONCILING",
            JobState::Unknown(s) => s,
        }
    }

    /// FAILED, CANCELED, FINISHED: the job will never run again under this id.
    pub fn is_globally_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Failed | JobState::Canceled | JobState::Finished
        )
    }

    /// Globally terminal or SUSPENDED (the JobManager lost leadership; the job may be recovered
    /// by another one).
    pub fn is_terminal(&self) -> bool {
        self.is_globally_terminal() || *self == JobState::Suspended
    }
}

impl FromStr for JobState {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(JobState::ALL_KNOWN
            .iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .cloned()
            .unwrap_or_else(|| JobState::Unknown(s.to_string())))
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or_else(|never| match never {}))
    }
}

/// `GET /overview`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ClusterOverview {
    pub taskmanagers: u32,
    pub slots_total: u32,
    pub slots_available: u32,
    pub jobs_running: u32,
    pub flink_version: Option<String>,
}

/// One entry of `GET /jobs/overview`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobOverview {
    pub id: JobId,
    pub name: String,
    pub state: JobState,
    /// Epoch milliseconds; `None` when Flink reports -1 or nothing.
    pub start_time_ms: Option<i64>,
    /// Epoch milliseconds; `None` while the job has not ended.
    pub end_time_ms: Option<i64>,
    pub last_modification_ms: Option<i64>,
}

/// Checkpoint statistics of a job (`GET /jobs/{id}/checkpoints`). All `None` when the job has
/// none (or checkpointing is disabled).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct CheckpointSummary {
    pub counts: CheckpointCounts,
    /// The latest completed checkpoint or savepoint.
    pub completed: Option<CompletedCheckpoint>,
    /// The latest completed savepoint.
    pub savepoint: Option<CompletedCheckpoint>,
    /// What the job was restored from when it started (or last restarted).
    pub restored: Option<RestoredCheckpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckpointCounts {
    #[serde(deserialize_with = "null_default")]
    pub restored: u64,
    #[serde(deserialize_with = "null_default")]
    pub total: u64,
    #[serde(deserialize_with = "null_default")]
    pub in_progress: u64,
    #[serde(deserialize_with = "null_default")]
    pub completed: u64,
    #[serde(deserialize_with = "null_default")]
    pub failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompletedCheckpoint {
    pub id: u64,
    /// Where the checkpoint lives (`file:/...`, `s3://...`); `None` when it is not externally
    /// addressable.
    pub external_path: Option<String>,
    pub is_savepoint: bool,
    pub trigger_time_ms: Option<i64>,
    /// Flink already deleted its files.
    pub discarded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredCheckpoint {
    pub id: u64,
    pub external_path: Option<String>,
    pub is_savepoint: bool,
    pub restore_time_ms: Option<i64>,
}

/// A jar uploaded to the cluster (`GET /jars`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadedJar {
    /// The id to run it by (`<uuid>_<file name>`).
    pub id: String,
    /// The file name it was uploaded as.
    pub name: String,
    pub uploaded_ms: Option<i64>,
    /// Main classes Flink found in the jar.
    pub entry_classes: Vec<String>,
}

/// Body of `POST /jars/{id}/run`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunJar {
    /// Main class; the jar manifest's `Main-Class` when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_class: Option<String>,
    pub program_args_list: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// The job id to use. Flink rejects an id it has seen before, which makes a submission
    /// with a caller-chosen id idempotent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub savepoint_path: Option<String>,
    pub allow_non_restored_state: bool,
    /// Flink configuration for this job only.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub flink_configuration: BTreeMap<String, String>,
}

/// State of an asynchronous savepoint operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum SavepointStatus {
    InProgress,
    Completed {
        location: String,
    },
    /// `cause` is Flink's failure reduced to its root cause.
    Failed {
        cause: String,
    },
}

// ------------------------------------------------------------------------------------------
// Wire shapes (private).

/// `null` reads as the type's default.
fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Flink's "no time" is -1 (sometimes 0).
pub(crate) fn time_ms(t: Option<i64>) -> Option<i64> {
    t.filter(|t| *t > 0)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorBody {
    #[serde(deserialize_with = "null_default")]
    pub errors: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub(crate) struct ConfigBody {
    pub flink_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JobsOverviewBody {
    #[serde(deserialize_with = "null_default")]
    pub jobs: Vec<JobOverviewWire>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct JobOverviewWire {
    pub jid: JobId,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    pub state: JobState,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub last_modification: Option<i64>,
}

impl From<JobOverviewWire> for JobOverview {
    fn from(w: JobOverviewWire) -> Self {
        JobOverview {
            id: w.jid,
            name: w.name,
            state: w.state,
            start_time_ms: time_ms(w.start_time),
            end_time_ms: time_ms(w.end_time),
            last_modification_ms: time_ms(w.last_modification),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct JobDetailsBody {
    pub state: JobState,
    #[serde(default)]
    pub vertices: Vec<VertexWire>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct VertexWire {
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub(crate) struct JobConfigBody {
    pub execution_config: Option<ExecutionConfigWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub(crate) struct ExecutionConfigWire {
    pub job_parallelism: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CheckpointsBody {
    #[serde(deserialize_with = "null_default")]
    pub counts: CheckpointCounts,
    pub latest: Option<LatestWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LatestWire {
    pub completed: Option<CheckpointWire>,
    pub savepoint: Option<CheckpointWire>,
    pub restored: Option<CheckpointWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CheckpointWire {
    pub id: Option<u64>,
    pub external_path: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub is_savepoint: bool,
    pub trigger_timestamp: Option<i64>,
    pub restore_timestamp: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    pub discarded: bool,
}

/// Flink's placeholder for checkpoints that are not persisted externally.
const NOT_ADDRESSABLE: &str = "<checkpoint-not-externally-addressable>";

fn external_path(p: Option<String>) -> Option<String> {
    p.filter(|p| !p.is_empty() && p != NOT_ADDRESSABLE)
}

impl From<CheckpointsBody> for CheckpointSummary {
    fn from(b: CheckpointsBody) -> Self {
        let latest = b.latest.unwrap_or_default();
        let completed = |w: CheckpointWire| CompletedCheckpoint {
            id: w.id.unwrap_or_default(),
            external_path: external_path(w.external_path),
            is_savepoint: w.is_savepoint,
            trigger_time_ms: time_ms(w.trigger_timestamp),
            discarded: w.discarded,
        };
        CheckpointSummary {
            counts: b.counts,
            completed: latest.completed.map(completed),
            savepoint: latest.savepoint.map(completed),
            restored: latest.restored.map(|w| RestoredCheckpoint {
                id: w.id.unwrap_or_default(),
                external_path: external_path(w.external_path),
                is_savepoint: w.is_savepoint,
                restore_time_ms: time_ms(w.restore_timestamp),
            }),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JarsBody {
    #[serde(deserialize_with = "null_default")]
    pub files: Vec<JarWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JarWire {
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    pub uploaded: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    pub entry: Vec<JarEntryWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct JarEntryWire {
    pub name: Option<String>,
}

impl From<JarWire> for UploadedJar {
    fn from(w: JarWire) -> Self {
        UploadedJar {
            id: w.id,
            name: w.name,
            uploaded_ms: time_ms(w.uploaded),
            entry_classes: w.entry.into_iter().filter_map(|e| e.name).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UploadBody {
    pub filename: String,
}

/// 1.20: `{"jobid"}`; 2.x: `{"jobid", "applicationId"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunBody {
    pub jobid: JobId,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TriggerBody {
    #[serde(rename = "request-id")]
    pub request_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AsyncOperationBody {
    pub status: Option<AsyncStatusWire>,
    pub operation: Option<SavepointOperationWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AsyncStatusWire {
    pub id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub(crate) struct SavepointOperationWire {
    pub location: Option<String>,
    pub failure_cause: Option<FailureCauseWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub(crate) struct FailureCauseWire {
    pub class: Option<String>,
    pub stack_trace: Option<String>,
}

/// `GET /jobs/{id}/exceptions`: 1.20 has `root-exception` and `exceptionHistory`; 2.x only
/// `exceptionHistory`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ExceptionsBody {
    #[serde(rename = "root-exception")]
    pub root_exception: Option<String>,
    #[serde(rename = "exceptionHistory")]
    pub exception_history: Option<ExceptionHistoryWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ExceptionHistoryWire {
    #[serde(deserialize_with = "null_default")]
    pub entries: Vec<ExceptionEntryWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ExceptionEntryWire {
    #[serde(rename = "exceptionName")]
    pub exception_name: Option<String>,
    pub stacktrace: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_round_trip() {
        for s in JobState::ALL_KNOWN {
            let json = serde_json::to_string(&s).unwrap();
            let back: JobState = serde_json::from_str(&json).unwrap();
            assert_eq!(back, s);
            assert!(!matches!(back, JobState::Unknown(_)));
        }
        let odd: JobState = serde_json::from_str("\"DORMANT\"").unwrap();
        assert_eq!(odd, JobState::Unknown("DORMANT".into()));
        assert_eq!(odd.to_string(), "DORMANT");
        assert!(JobState::Failed.is_globally_terminal());
        assert!(!JobState::Suspended.is_globally_terminal());
        assert!(JobState::Suspended.is_terminal());
        assert!(!JobState::Restarting.is_terminal());
    }

    /// Both versions' `/jobs/overview` entries (2.3 adds jobType, schedulerType, pending-operators).
    #[test]
    fn jobs_overview_of_both_versions() {
        let v2 = r#"{"jobs":[{"jid":"3e0000000000000000000000000000a1","name":"probe","jobType":"STREAMING","schedulerType":"Default","start-time":1795467086580,"end-time":-1,"duration":15470,"state":"RUNNING","last-modification":1795467088364,"tasks":{"running":4,"total":4},"pending-operators":0}]}"#;
        let v1 = r#"{"jobs":[{"jid":"3e0000000000000000000000000000c1","name":"failing","start-time":1795467088807,"end-time":1795467114724,"duration":14840,"state":"FAILED","last-modification":1795467090040,"tasks":{}}]}"#;
        let a: JobsOverviewBody = serde_json::from_str(v2).unwrap();
        let a: JobOverview = a.jobs.into_iter().next().unwrap().into();
        assert_eq!(a.state, JobState::Running);
        assert_eq!(a.end_time_ms, None);
        assert_eq!(a.start_time_ms, Some(1795467086580));
        let b: JobsOverviewBody = serde_json::from_str(v1).unwrap();
        let b: JobOverview = b.jobs.into_iter().next().unwrap().into();
        assert_eq!(b.state, JobState::Failed);
        assert_eq!(b.end_time_ms, Some(1795467114724));
    }

    #[test]
    fn checkpoints_without_any_checkpoint() {
        // Real 2.3.0 answer for a job with checkpointing disabled (note the "NaN" strings).
        let body = r#"{"counts":{"restored":0,"total":0,"in_progress":0,"completed":0,"failed":0},"summary":{"checkpointed_size":{"min":0,"max":0,"avg":0,"p50":"NaN"}},"latest":{"completed":null,"savepoint":null,"failed":null,"restored":null},"history":[]}"#;
        let s: CheckpointSummary = serde_json::from_str::<CheckpointsBody>(body)
            .unwrap()
            .into();
        assert_eq!(s, CheckpointSummary::default());
        let s: CheckpointSummary = serde_json::from_str::<CheckpointsBody>("{}")
            .unwrap()
            .into();
        assert_eq!(s, CheckpointSummary::default());
        let s: CheckpointSummary =
            serde_json::from_str::<CheckpointsBody>(r#"{"counts":null,"latest":null}"#)
                .unwrap()
                .into();
        assert_eq!(s, CheckpointSummary::default());
    }

    #[test]
    fn checkpoints_after_restore() {
        let body = r#"{"counts":{"restored":1,"total":4,"in_progress":0,"completed":3,"failed":1},
          "latest":{"completed":{"className":"completed","id":22,"status":"COMPLETED","is_savepoint":false,"savepointFormat":null,"trigger_timestamp":1795467106366,"latest_ack_timestamp":1795467106408,"checkpoint_type":"CHECKPOINT","tasks":{},"external_path":"file:/tmp/c/chk-22","discarded":false},
          "savepoint":{"className":"completed","id":21,"is_savepoint":true,"savepointFormat":"CANONICAL","trigger_timestamp":1795467100000,"external_path":"file:/tmp/s/savepoint-1","discarded":false},
          "failed":null,
          "restored":{"id":20,"restore_timestamp":1795467146368,"is_savepoint":true,"external_path":"file:/tmp/s/savepoint-0"}}}"#;
        let s: CheckpointSummary = serde_json::from_str::<CheckpointsBody>(body)
            .unwrap()
            .into();
        assert_eq!(s.counts.completed, 3);
        let c = s.completed.unwrap();
        assert_eq!((c.id, c.is_savepoint), (22, false));
        assert_eq!(c.external_path.as_deref(), Some("file:/tmp/c/chk-22"));
        assert_eq!(
            s.savepoint.unwrap().external_path.as_deref(),
            Some("file:/tmp/s/savepoint-1")
        );
        let r = s.restored.unwrap();
        assert!(r.is_savepoint);
        assert_eq!(r.external_path.as_deref(), Some("file:/tmp/s/savepoint-0"));
        assert_eq!(r.restore_time_ms, Some(1795467146368));

        let hidden = r#"{"latest":{"completed":{"id":3,"external_path":"<checkpoint-not-externally-addressable>"}}}"#;
        let s: CheckpointSummary = serde_json::from_str::<CheckpointsBody>(hidden)
            .unwrap()
            .into();
        assert_eq!(s.completed.unwrap().external_path, None);
    }

    #[test]
    fn run_jar_body() {
        let req = RunJar {
            entry_class: Some("dev.weir.testjob.CounterJob".into()),
            program_args_list: vec!["--rate".into(), "5".into()],
            parallelism: Some(2),
            job_id: Some("3e0000000000000000000000000000a1".parse().unwrap()),
            savepoint_path: None,
            allow_non_restored_state: false,
            flink_configuration: [("pipeline.name".to_string(), "x".to_string())].into(),
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({
                "entryClass": "dev.weir.testjob.CounterJob",
                "programArgsList": ["--rate", "5"],
                "parallelism": 2,
                "jobId": "3e0000000000000000000000000000a1",
                "allowNonRestoredState": false,
                "flinkConfiguration": {"pipeline.name": "x"}
            })
        );
        let run: RunBody = serde_json::from_str(
            r#"{"jobid":"3e0000000000000000000000000000a1","applicationId":"3e0000000000000000000000000000a1"}"#,
        )
        .unwrap();
        assert_eq!(run.jobid.to_string(), "3e0000000000000000000000000000a1");
    }
}
