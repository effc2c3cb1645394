//! The jobs page (`/`) and a job's page (`/jobs/{name}`). Pure: typed data in, markup out.

use std::collections::{BTreeMap, BTreeSet};

use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{
    Frame, Nav, Tone, badge, badge_as, duration, highlight_sql, job_href, notice, page, short_id,
    urlencode, when,
};
use super::records::{change_diffs, steps_table};
use crate::serve::reconcile::{BlockKind, JobStatus, Status};
use crate::serve::server::{JobDetail, JobRow, JobsOverview};

/// The jobs page's filters, all in the query string so a refresh or a shared link keeps them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobsFilter {
    /// Part of the job name.
    pub q: Option<String>,
    pub cluster: Option<String>,
    pub sync: Option<String>,
    /// The Flink job state (`RUNNING`, `FAILED`, `-`, ...).
    pub state: Option<String>,
    /// `key=value` of `metadata.labels`.
    pub label: Option<String>,
    /// The job's health (`healthy`, `degraded`, `failing`; `-` when not read).
    pub health: Option<String>,
}

impl JobsFilter {
    fn get(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    pub fn matches(&self, row: &JobRow, blocked: &Held<'_>) -> bool {
        let j = &row.status;
        Self::get(&self.q).is_none_or(|q| j.name.to_lowercase().contains(&q.to_lowercase()))
            && Self::get(&self.cluster).is_none_or(|c| j.cluster == c)
            && Self::get(&self.sync).is_none_or(|s| sync_labels(j, blocked).contains(&s))
            && Self::get(&self.state).is_none_or(|s| j.health == s)
            && Self::get(&self.health).is_none_or(|h| health_label(j) == h)
            && Self::get(&self.label).is_none_or(|l| {
                l.split_once('=')
                    .is_some_and(|(k, v)| row.labels.get(k).is_some_and(|x| x == v))
            })
    }

    fn is_empty(&self) -> bool {
        [
            &self.q,
            &self.cluster,
            &self.sync,
            &self.state,
            &self.label,
            &self.health,
        ]
        .iter()
        .all(|v| Self::get(v).is_none())
    }
}

/// The jobs the daemon holds, and why.
type Held<'a> = BTreeMap<&'a str, BlockKind>;

/// The sync labels of a job: the daemon's sync state, plus `Blocked` when its apply (or its
/// pre-flight) failed at this revision, `RolledBack` when an apply rolled its definition back,
/// and `Applying` while an apply runs. New states of the daemon show as they are.
fn sync_labels<'a>(j: &'a JobStatus, blocked: &Held<'_>) -> Vec<&'a str> {
    let mut out = vec![j.sync.as_str()];
    match blocked.get(j.name.as_str()) {
        Some(BlockKind::RolledBack) => out.push("RolledBack"),
        Some(_) => out.push("Blocked"),
        None => {}
    }
    if j.applying.is_some() {
        out.push("Applying");
    }
    out
}

/// The job's health as the filter names it: `-` when the daemon has not read it.
fn health_label(j: &JobStatus) -> &'static str {
    j.job_health.map_or("-", |h| h.as_str())
}

fn counts<'a>(values: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

pub fn jobs_page(
    frame: &Frame,
    status: &Status,
    overview: &JobsOverview,
    f: &JobsFilter,
) -> Markup {
    let blocked: Held<'_> = status
        .blocked
        .iter()
        .map(|b| (b.job.as_str(), b.kind))
        .collect();
    let rows: Vec<&JobRow> = overview
        .jobs
        .iter()
        .filter(|r| f.matches(r, &blocked))
        .collect();
    let all = &overview.jobs;
    let by_sync = counts(all.iter().flat_map(|r| sync_labels(&r.status, &blocked)));
    let by_state = counts(all.iter().map(|r| r.status.health.as_str()));
    let by_health = counts(all.iter().map(|r| health_label(&r.status)));
    let clusters: BTreeSet<&str> = all.iter().map(|r| r.status.cluster.as_str()).collect();
    let labels: BTreeSet<String> = all
        .iter()
        .flat_map(|r| r.labels.iter().map(|(k, v)| format!("{k}={v}")))
        .collect();
    let content = html! {
        div.titlebar {
            h1 { "Jobs" }
            p.muted {
                "Revision " @if let Some(r) = &status.revision { code { (r) } } @else { "not loaded yet" }
                @if let Some(r) = &status.last_reconcile { " · last reconcile " (when(r.finished_at_ms)) " " (badge(r.outcome.as_str())) }
            }
        }
        (overview_banners(status))
        section aria-label="Counts" {
            div.countrow {
                div.countgroup {
                    span.grouplabel { "All" }
                    ul.counts { li { a href="/" { span.count { (all.len()) } " jobs" } } }
                }
                div.countgroup {
                    span.grouplabel { "Sync" }
                    ul.counts { @for (sync, n) in &by_sync {
                        li { a href={ "/?sync=" (urlencode(sync)) } { span.count { (n) } " " (badge(sync)) } }
                    } }
                }
                div.countgroup {
                    span.grouplabel { "Flink state" }
                    ul.counts { @for (state, n) in &by_state {
                        li { a href={ "/?state=" (urlencode(state)) } { span.count { (n) } " " (badge(state)) } }
                    } }
                }
            }
        }
        form.filters method="get" action="/" role="search" aria-label="Filter jobs" {
            label { "Name" input type="search" name="q" value=[f.q.as_deref()] placeholder="part of a name"; }
            (select("Cluster", "cluster", clusters.iter().copied(), f.cluster.as_deref()))
            (select("Sync", "sync", by_sync.keys().copied(), f.sync.as_deref()))
            (select("Flink state", "state", by_state.keys().copied(), f.state.as_deref()))
            (select("Health", "health", by_health.keys().copied(), f.health.as_deref()))
            @if !labels.is_empty() {
                (select("Label", "label", labels.iter().map(String::as_str), f.label.as_deref()))
            }
            button type="submit" { "Filter" }
            @if !f.is_empty() { a.button.secondary href="/" { "Clear" } }
        }
        p.muted #shown { "Showing " (rows.len()) " of " (all.len()) " jobs" }
        @if rows.is_empty() {
            p.empty { @if all.is_empty() { "No jobs yet: the repo has not been loaded, or it defines none." } @else { "No job matches these filters." } }
        } @else {
            div.tablewrap {
                table.jobs {
                    thead { tr {
                        th scope="col" { "Job" } th scope="col" { "Cluster" } th scope="col" { "Flink" }
                        th scope="col" { "Sync" }
                        th scope="col" { "Flink state" } th scope="col" { "Last apply" } th scope="col" { "Last savepoint" }
                    } }
                    tbody {
                        @for r in &rows { (job_row(r, &blocked)) }
                    }
                }
            }
        }
    };
    page("Jobs", Nav::Jobs, frame, Some(5), content)
}

fn overview_banners(status: &Status) -> Markup {
    html! {
        @if let Some(p) = &status.pending_plan {
            (notice(Tone::Warn, "A plan waits for approval.", html! {
                (p.summary) " " a href={ "/plans/" (urlencode(&p.id)) } { "Review plan " (p.id) }
            }))
        }
        @if let Some(e) = &status.repo.error {
            (notice(Tone::Bad, "The last fetch failed.", html! { (e) " The last good revision is kept." }))
        }
        @if !status.diagnostics.is_empty() {
            (notice(Tone::Bad, "Invalid files.", html! {
                (status.invalid_files.len()) " file(s) do not load; their jobs keep running their last applied definition."
                ul.diag { @for d in &status.diagnostics { li { code { (d) } } } }
            }))
        }
        @for (name, c) in &status.clusters {
            @if !c.reachable {
                (notice(Tone::Bad, "Cluster unreachable.", html! { code { (name) } " " (c.error.as_deref().unwrap_or("")) }))
            }
        }
    }
}

fn select<'a>(
    label: &str,
    name: &str,
    options: impl Iterator<Item = &'a str>,
    current: Option<&str>,
) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                option value="" { "any" }
                @for o in options {
                    option value=(o) selected[current == Some(o)] { (super::layout::display(o)) }
                }
            }
        }
    }
}

fn job_row(r: &JobRow, blocked: &Held<'_>) -> Markup {
    let j = &r.status;
    html! {
        tr {
            th scope="row" {
                a href=(job_href(&j.name)) { (j.name) }
                @for (k, v) in r.labels.iter() { " " span.label { (k) "=" (v) } }
                @if let Some(d) = &j.drift { div.small.warntext { "drift: " (d) } }
            }
            td { (j.cluster) }
            td { @if let Some(v) = &j.flink_version { (v) } @else { span.muted { "unknown" } } }
            td { @for s in sync_labels(j, blocked) { (badge(s)) " " } }
            td {
                (badge(&j.health))
                @if let Some(h) = j.job_health { " " span title=(j.job_health_reasons.join("; ")) { (badge(h.as_str())) } }
            }
            td {
                @if let Some(a) = &r.last_apply {
                    a href={ "/applies/" (urlencode(&a.id)) } { (badge(&a.outcome)) } " " span.small { (when(a.at_ms)) }
                } @else { span.muted { "none" } }
            }
            td {
                @if let Some(at) = r.last_savepoint_at_ms { (when(at)) } @else { span.muted { "none" } }
            }
        }
    }
}

/// Flink's own UI for a job: `<cluster>/#/job/running/<id>/overview` (Flink 1.20 and 2.x routes;
/// a job that ended is under `completed`).
pub fn flink_ui_link(cluster_url: &str, job_id: &str, state: &str) -> Option<String> {
    if job_id.is_empty() || job_id == "-" {
        return None;
    }
    let mut url = url::Url::parse(cluster_url).ok()?;
    // Credentials in a configured URL never reach a page.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let base = url.as_str().trim_end_matches('/').to_string();
    let which = match state {
        "FINISHED" | "CANCELED" | "FAILED" => "completed",
        _ => "running",
    };
    Some(format!("{base}/#/job/{which}/{job_id}/overview"))
}

pub fn job_page(frame: &Frame, status: &Status, d: &JobDetail) -> Markup {
    let j = &d.job;
    let blocked: Held<'_> = status
        .blocked
        .iter()
        .map(|b| (b.job.as_str(), b.kind))
        .collect();
    let cluster_url = status
        .clusters
        .get(j.cluster.as_str())
        .map(|c| c.url.as_str());
    let running = j.applying.is_some();
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/" { "Jobs" } " / " }
        div.titlebar {
            h1 { (j.name) }
            p { @for s in sync_labels(j, &blocked) { (badge(s)) " " } (badge(&j.health)) }
        }
        @if let Some(a) = &j.applying {
            (notice(Tone::Busy, "An apply is running.", html! { a href={ "/applies/" (urlencode(a)) } { "Follow apply " (a) } }))
        }
        @for b in status.blocked.iter().filter(|b| b.job == j.name) {
            (notice(Tone::Bad, "Blocked.", html! {
                "The apply " a href={ "/applies/" (urlencode(&b.apply_id)) } { (b.apply_id) } " failed at " code { (b.revision) } ": " (b.error)
                " It is not retried until the revision or the cluster changes."
            }))
        }
        @if let Some(drift) = &j.drift { (notice(Tone::Warn, "Drift.", html! { (drift) })) }
        section aria-labelledby="flink" {
            h2 #flink { "Flink job" }
            dl.facts {
                dt { "Cluster" } dd { (j.cluster) @if let Some(u) = cluster_url { " " span.muted { (u) } } }
                dt { "Flink job id" } dd { code { (j.job_id) } }
                dt { "State" } dd { (badge(&j.health)) }
                dt { "Last savepoint" } dd { code.wrap { (j.last_savepoint) } }
                @if let Some(p) = &j.policy {
                    dt { "Policy" } dd { (format!("{:?}", p.policy).to_lowercase()) @if p.self_heal { ", self-heal" } }
                }
                @if let Some(file) = &j.file { dt { "File" } dd { code { (file) } } }
            }
            @if let Some(link) = cluster_url.and_then(|u| flink_ui_link(u, &j.job_id, &j.health)) {
                p { a.button href=(link) rel="noopener noreferrer" target="_blank" { "Open in Flink's UI" } }
            }
        }
        @if j.sync == "InvalidDefinition" {
            section aria-labelledby="invalid" {
                h2 #invalid { "Why the definition is invalid" }
                ul.diag {
                    @for line in status.diagnostics.iter().filter(|l| j.file.as_deref().is_some_and(|f| l.starts_with(f))) {
                        li { code { (line) } }
                    }
                }
            }
        }
        @if let Some(p) = &d.pending_change {
            section aria-labelledby="pending" {
                h2 #pending { "Why it is out of sync" }
                p { "Plan " a href={ "/plans/" (urlencode(&p.plan_id)) } { (p.plan_id) } ": "
                    strong { (p.change["action"].as_str().unwrap_or("?")) } " — " (p.change["reason"].as_str().unwrap_or("")) }
                (change_diffs(&p.change))
            }
        }
        section aria-labelledby="definition" {
            h2 #definition { "Definition at the deployed revision" }
            @match &d.definition {
                Some(def) => (definition(def)),
                None => p.muted { "weir has not applied this job yet." },
            }
        }
        (lineage_section(&d.lineage))
        (applies_section(d))
    };
    page(
        &j.name,
        Nav::Jobs,
        frame,
        Some(if running { 2 } else { 10 }),
        content,
    )
}

/// The stored (redacted) definition: facts, then the SQL or the jar's args.
fn definition(def: &Value) -> Markup {
    let program = &def["program"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "–".into(),
        v => v.to_string(),
    };
    html! {
        dl.facts {
            dt { "File" } dd { code { (text(&def["file"])) } }
            dt { "Parallelism" } dd { (text(&def["parallelism"])) }
            dt { "Upgrade mode" } dd { (text(&def["upgradeMode"])) }
            dt { "State" } dd { (text(&def["state"])) }
            dt { "Program" } dd { (text(&program["kind"])) }
            @if let Some(class) = program["entryClass"].as_str() { dt { "Entry class" } dd { code { (class) } } }
        }
        @if let Some(sql) = program["script"].as_str() {
            figure {
                figcaption { "SQL" @if let Some(f) = program["sourceFile"].as_str() { " from " code { (f) } } }
                pre.sql { code { (highlight_sql(sql)) } }
            }
        }
        @if let Some(args) = program["args"].as_array().filter(|a| !a.is_empty()) {
            figure { figcaption { "Arguments" } pre { code { @for a in args { (text(a)) "\n" } } } }
        }
        @if let Some(conf) = def["flinkConfiguration"].as_object().filter(|c| !c.is_empty()) {
            details { summary { "Flink configuration (" (conf.len()) ")" }
                table.kv { tbody { @for (k, v) in conf { tr { th scope="row" { code { (k) } } td { code { (text(v)) } } } } } }
            }
        }
    }
}

/// Every savepoint of the job, newest first: which apply took it and which started from it.
fn lineage_section(lineage: &crate::audit::Lineage) -> Markup {
    html! {
    section aria-labelledby="lineage" {
        h2 #lineage { "Savepoint lineage" }
        @if lineage.savepoints.is_empty() { p.muted { "No savepoint recorded yet." } }
        ol.timeline {
            @for s in &lineage.savepoints {
                li {
                    div.when { (when(s.at_ms)) " " (badge_as(&s.kind, Tone::Neutral)) }
                    div { code.wrap { (s.path) } }
                    div.small {
                        @if let Some(by) = &s.produced_by {
                            "taken by " a href={ "/applies/" (urlencode(&by.apply_id)) } { (by.apply_id) }
                            @if let Some(a) = &by.action { " (" (a) ")" }
                            @if let Some(id) = &s.flink_job_id { " from Flink job " (short_id(id)) }
                        } @else { "not taken by weir (initial savepoint or a checkpoint found on the cluster)" }
                    }
                    @for r in &s.restores {
                        div.small.restore {
                            "↳ restored " (when(r.at_ms)) " by " a href={ "/applies/" (urlencode(&r.by.apply_id)) } { (r.by.apply_id) }
                            " into Flink job " (short_id(&r.flink_job_id))
                        }
                    }
                }
            }
        }
    }
    }
}

/// The job's newest applies, the newest unfolded, with every step.
fn applies_section(d: &JobDetail) -> Markup {
    let j = &d.job;
    html! {
    section aria-labelledby="applies" {
        h2 #applies { "Applies" }
        @if d.applies.is_empty() { p.muted { "No apply of this job yet." } }
        @for a in &d.applies {
            details.apply open[a.id == d.applies[0].id] {
                summary {
                    (badge(&a.outcome)) " " a href={ "/applies/" (urlencode(&a.id)) } { (a.id) }
                    " · " (when(a.started_at_ms)) " · " (duration(a.duration_ms)) " · " (a.trigger)
                }
                @for js in a.jobs.iter().filter(|js| js.job == j.name) { (steps_table(&js.steps)) }
            }
        }
    }
    }
}
