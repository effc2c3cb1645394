//! Job graphs: `POST /jars/{id}/plan` (a program's graph, computed by running its `main()` on the
//! JobManager up to `execute()` without starting a job) and `GET /jobs/{id}/plan` (the graph of a
//! job that runs). Both answer `{"plan": {"jid", "name", "type", "nodes": [...]}}` on 1.20 and
//! 2.x; a node is a JobVertex: its id is the operator id of the chain's head, its description
//! names the chained operators.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::error::summarize_flink_errors;
use super::model::{ErrorBody, RunJar};
use super::{FlinkClient, FlinkError, decode};
use crate::identity::JobId;

/// A job graph as Flink plans it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGraph {
    #[serde(default)]
    pub nodes: Vec<GraphNode>,
}

/// One JobVertex (an operator chain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    /// The JobVertex id: the operator id of the chain's head (derived from its `uid`, or from
    /// the topology when the operator has none).
    pub id: String,
    /// 0 when Flink decides it at run time (`-1` in Flink's answer: a batch job's vertices
    /// under the adaptive batch scheduler).
    #[serde(default, deserialize_with = "parallelism_or_zero")]
    pub parallelism: u32,
    /// The chained operators, as Flink describes them (`A<br/>+- B<br/>`).
    #[serde(default)]
    pub description: String,
}

impl GraphNode {
    /// The chain's operators, one line: `Source: numbers → to-keyed`.
    pub fn operators(&self) -> String {
        let parts: Vec<&str> = self
            .description
            .split("<br/>")
            .map(|p| p.trim().trim_start_matches("+-").trim())
            .filter(|p| !p.is_empty())
            .collect();
        let joined = if parts.is_empty() {
            self.description.trim().to_string()
        } else {
            parts.join(" → ")
        };
        crate::text::truncate(&joined, 200)
    }
}

fn parallelism_or_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = i64::deserialize(d)?;
    Ok(u32::try_from(n).unwrap_or(0))
}

#[derive(Deserialize)]
struct PlanBody {
    plan: JobGraph,
}

/// What a program's pre-flight (`POST /jars/{id}/plan`) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramPlan {
    /// The program planned: its job graph.
    Planned(JobGraph),
    /// The cluster refused the program (its `main()` threw, or Flink could not build a graph).
    Refused(ProgramRefusal),
}

/// Why the cluster refused a program, from Flink's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRefusal {
    /// Flink's root cause, one line, without the stack trace.
    pub message: String,
    /// Every error text of Flink's answer, for positions the caller can read out of it (the SQL
    /// runner names the failing statement's line, the SQL planner the line within it).
    pub detail: String,
}

impl FlinkClient {
    /// `POST /jars/{id}/plan` with the body of a submission (see [`RunJar`]); Flink runs the
    /// program's `main()` up to `execute()`. Sent once, never retried (it runs user code).
    pub async fn plan_jar(&self, jar_id: &str, req: &RunJar) -> Result<ProgramPlan, FlinkError> {
        let url = self.endpoint(&["jars", jar_id, "plan"], &[]);
        let request = self.http.post(url.clone()).json(req);
        let (status, body) = self.send_raw(&Method::POST, &url, request).await?;
        if status.is_success() {
            return Ok(ProgramPlan::Planned(decode::<PlanBody>(&url, &body)?.plan));
        }
        // A refused program is answered 500 (2.x) or 400 (1.20) with its exception in `errors`
        // (`ProgramInvocationException: The main method caused an error: ...`). Anything else
        // (404 for a jar that vanished, a proxy's page) is a failure to pre-flight, not a verdict.
        match refusal_of(&body) {
            Some(refusal)
                if (status.is_server_error() || status.as_u16() == 400)
                    && refusal.detail.contains("ProgramInvocationException")
                    || refusal.detail.contains("main method caused an error") =>
            {
                Ok(ProgramPlan::Refused(refusal))
            }
            _ => {
                let (message, exception) = super::api_message(status, &body);
                Err(FlinkError::Api {
                    method: Method::POST,
                    url: super::shown_url(&url),
                    status,
                    message,
                    exception,
                })
            }
        }
    }

    /// `GET /jobs/{id}/plan`: the graph of a submitted job; `None` when Flink does not know it.
    pub async fn job_graph(&self, id: &JobId) -> Result<Option<JobGraph>, FlinkError> {
        let url = self.endpoint(&["jobs", &id.to_string(), "plan"], &[]);
        Ok(self.get_json_opt::<PlanBody>(&url).await?.map(|b| b.plan))
    }
}

/// Flink's `{"errors": [...]}` body as one refusal: the summary and the whole text.
pub(super) fn refusal_of(body: &[u8]) -> Option<ProgramRefusal> {
    let err: ErrorBody = serde_json::from_slice(body).ok()?;
    let summary = summarize_flink_errors(&err.errors);
    Some(ProgramRefusal {
        message: summary.message,
        detail: err.errors.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch job's graph under the adaptive batch scheduler has vertices whose parallelism
    /// Flink decides at run time (`-1`), as `POST /jars/{id}/plan` answers on 1.20 and 2.3.
    #[test]
    fn a_parallelism_decided_at_run_time_reads_as_zero() {
        let body = r#"{"plan":{"jid":"x","name":"b","type":"BATCH","nodes":[
            {"id":"a","parallelism":-1,"description":"Source"},
            {"id":"b","parallelism":2,"description":"Sink"}]}}"#;
        let graph = serde_json::from_str::<PlanBody>(body).unwrap().plan;
        let parallelism: Vec<u32> = graph.nodes.iter().map(|n| n.parallelism).collect();
        assert_eq!(parallelism, [0, 2]);
    }
}
