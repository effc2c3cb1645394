//! The pages of plans, applies, pull-request previews and settings, and the login page. Pure:
//! typed data in, markup out.

use maud::{Markup, html};
use serde::Serialize;
use serde_json::Value;

use super::layout::{
    Frame, Nav, Tone, badge, badge_as, csrf_field, duration, job_href, notice, page, short_id,
    urlencode, when,
};
use crate::audit::StepStory;
use crate::plan::{FieldDiff, Plan};
use crate::serve::config::DaemonConfig;
use crate::serve::reconcile::Status;
use crate::serve::server::{ApplyDetail, NotificationRoutes, PlanDetail, PlansList, PreviewsList};

/// A serde enum as the word it serializes to (`redeploy`, `last-state`, ...).
fn word(v: &impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => "?".into(),
    }
}

/// Above this many field diffs, a change's diffs start folded (as in the pull-request preview).
const FOLD_OVER: usize = 3;

/// A field diff as a unified diff with added and removed lines marked (by sign and colour).
fn diff_block(d: &FieldDiff, open: bool) -> Markup {
    let text = crate::render::unified(d);
    html! {
        details.diff open[open] {
            summary { code { (d.field) } " " span.muted { "(" (word(&d.severity)) ")" } }
            pre.diff { code {
                @for line in text.lines() {
                    @let class = if line.starts_with("+++") || line.starts_with("---") { "h" }
                        else if line.starts_with('+') { "add" } else if line.starts_with('-') { "del" } else { "ctx" };
                    span class=(class) { (line) } "\n"
                }
            } }
        }
    }
}

/// The field diffs of a change as stored in a plan's JSON.
pub fn change_diffs(change: &Value) -> Markup {
    let diffs: Vec<FieldDiff> = serde_json::from_value(change["diff"].clone()).unwrap_or_default();
    html! { @for d in &diffs { (diff_block(d, diffs.len() <= FOLD_OVER)) } }
}

/// Steps of an apply with status, times, duration and the Flink REST calls.
pub fn steps_table(steps: &[StepStory]) -> Markup {
    html! {
        ol.steps {
            @for s in steps {
                li class={ "step " (s.status) } {
                    div.stephead {
                        (badge(&s.status)) " "
                        strong { (s.kind) } " "
                        @if let Some(d) = &s.description { span { (d) } }
                        span.dur { (duration(s.duration_ms)) }
                    }
                    div.small {
                        @if let Some(c) = &s.call { "REST " code { (c) } " " }
                        @if let Some(p) = &s.polls { "polls " code { (p) } " " }
                        @if let Some(id) = &s.flink_job_id { "· Flink job " (short_id(id)) " " }
                        @if let Some(at) = s.started_at_ms { "· started " (when(at)) }
                    }
                    @if let Some(sp) = &s.savepoint_produced { div.small { "savepoint taken: " code.wrap { (sp) } } }
                    @if let Some(sp) = &s.savepoint_used { div.small { "restored from: " code.wrap { (sp) } } }
                    @if let Some(e) = &s.error { div.small.badtext role="alert" { "error: " (e) } }
                    @for n in &s.notes { div.small.muted { (n) } }
                }
            }
        }
    }
}

pub fn plan_page(frame: &Frame, status: &Status, d: &PlanDetail) -> Markup {
    let plan: Option<Plan> = serde_json::from_value(d.plan.clone()).ok();
    let pending = status.pending_plan.as_ref().is_some_and(|p| p.id == d.id);
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/plans" { "Plans" } " / " }
        div.titlebar {
            h1 { "Plan " code { (d.id) } }
            p.muted { "Triggered by " (word(&d.trigger))
                @if let Some(p) = &plan { " · " (when(p.created_at_ms)) " · revision " code { (p.revision.to_string()) } } }
        }
        @if pending { (approve_box(frame, &d.id)) }
        @match &plan {
            None => p { "This plan's record is in an older format; see " a href={ "/api/v1/plans/" (urlencode(&d.id)) } { "its JSON" } "." },
            Some(p) => (plan_body(p)),
        }
    };
    page(&format!("Plan {}", d.id), Nav::Plans, frame, None, content)
}

/// The Approve form: a POST with the CSRF token; the API token comes from the cookie.
fn approve_box(frame: &Frame, id: &str) -> Markup {
    html! {
        section.approve aria-labelledby="approve" {
            h2 #approve { "Waiting for approval" }
            p { "The sync policy is manual: nothing is applied until someone approves. weir refuses a plan that has gone stale (the repo or the cluster changed since)." }
            form method="post" action={ "/plans/" (urlencode(id)) "/approve" } {
                (csrf_field(frame))
                button.primary type="submit" { "Approve and apply" }
                @if !frame.signed_in { " " span.muted { "You will need an API token: " a href={ "/login?next=" (urlencode(&frame.here)) } { "sign in" } "." } }
            }
        }
    }
}

fn plan_body(p: &Plan) -> Markup {
    html! {
        p.summary { strong { (p.summary.line()) } }
        @if p.changes.is_empty() && p.errors.is_empty() { p { "No changes. The clusters match the repo." } }
        @for e in &p.errors {
            (notice(Tone::Bad, "Could not plan.", html! { @if let Some(j) = &e.job { code { (j) } " " } "on " (e.cluster) ": " (e.message) }))
        }
        @for w in &p.warnings { (notice(Tone::Warn, "Warning.", html! { (w) })) }
        @for c in &p.changes {
            section.change aria-label={ "Change of " (c.job) } {
                h2 { (badge_as(&word(&c.action), Tone::Neutral)) " " a href=(job_href(&c.job)) { (c.job) } " " span.muted.small { "on " (c.cluster) " · " (word(&c.upgrade_mode)) } }
                p { (c.reason) }
                @for w in &c.warnings { (notice(Tone::Warn, "Warning.", html! { (w) })) }
                @if c.diff.len() > FOLD_OVER { p.small.muted { (c.diff.len()) " fields change; each diff is folded." } }
                @for d in &c.diff { (diff_block(d, c.diff.len() <= FOLD_OVER)) }
                details { summary { "Steps (" (c.steps.len()) ")" }
                    ol { @for s in &c.steps { li { (s.describe()) } } }
                }
            }
        }
        @if !p.unmanaged.is_empty() {
            details { summary { "Jobs on the clusters that weir does not manage (" (p.unmanaged.len()) ")" }
                ul { @for u in &p.unmanaged { li { code { (word(u)) } } } }
            }
        }
    }
}

pub fn apply_page(frame: &Frame, d: &ApplyDetail) -> Markup {
    let a = &d.story;
    let running = a.finished_at_ms.is_none();
    let content = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/plans" { "Plans" } " / " }
        div.titlebar {
            h1 { "Apply " code { (a.id) } }
            p { (badge(&a.outcome)) " · started " (when(a.started_at_ms)) " · " (duration(a.duration_ms))
                " · plan " a href={ "/plans/" (urlencode(&a.plan_id)) } { (a.plan_id) } " · " (a.trigger)
                @if let Some(actor) = &a.actor { " by " (actor) } }
        }
        @if running { (notice(Tone::Busy, "Running.", html! { "This page follows the apply until it ends." })) }
        @if let Some(e) = &a.error { (notice(Tone::Bad, "Failed.", html! { (e) })) }
        @if let Some(c) = &a.commit {
            p.muted { "Commit " (short_id(&c.sha)) @if let Some(m) = &c.message { " — " (m.lines().next().unwrap_or("")) } @if let Some(n) = &c.author_name { " (" (n) ")" } }
        }
        @for e in &a.events { p.small { (when(e.at_ms)) " " strong { (e.kind) } " " (e.message) } }
        @for j in &a.jobs {
            section.change aria-label={ "Job " (j.job) } {
                h2 { (badge(&j.outcome)) " " a href=(job_href(&j.job)) { (j.job) }
                    @if let Some(action) = &j.action { " " span.muted.small { (action) @if let Some(m) = &j.upgrade_mode { " · " (m) } } } }
                @if let Some(r) = &j.reason { p { (r) } }
                @if let Some(m) = &j.message { p.small { (m) } }
                h3.visually-hidden { "Steps" }
                (steps_table(&j.steps))
            }
        }
    };
    page(
        &format!("Apply {}", a.id),
        Nav::Plans,
        frame,
        running.then_some(2),
        content,
    )
}

pub fn plans_page(frame: &Frame, list: &PlansList) -> Markup {
    let content = html! {
        h1 { "Plans" }
        @if let Some(p) = &list.pending {
            section.approve aria-labelledby="pending" {
                h2 #pending { "Pending approval" }
                p { a href={ "/plans/" (urlencode(&p.id)) } { (p.id) } " · " (p.summary) " · revision " code { (p.revision) } " · " (when(p.created_at_ms)) }
            }
        } @else { p.muted { "No plan waits for approval." } }
        h2 { "Recent plans" }
        div.tablewrap { table {
            thead { tr { th scope="col" { "Plan" } th scope="col" { "When" } th scope="col" { "Trigger" } th scope="col" { "Summary" } } }
            tbody { @for e in &list.plans { tr {
                th scope="row" { a href={ "/plans/" (urlencode(&e.id)) } { (e.id) } }
                td { (when(e.at_ms)) } td { (word(&e.trigger)) } td { (e.summary_or_outcome) }
            } } }
        } }
    };
    page("Plans", Nav::Plans, frame, Some(10), content)
}

pub fn pulls_page(frame: &Frame, list: &PreviewsList) -> Markup {
    let content = html! {
        h1 { "Pull requests" }
        @if !list.enabled { p.muted { "Previews are not configured (" code { "previews" } " in the daemon's config)." } }
        @else if list.previews.is_empty() { p.muted { "No pull request previewed since the daemon started." } }
        @else {
            div.tablewrap { table {
                thead { tr { th scope="col" { "Pull request" } th scope="col" { "State" } th scope="col" { "Preview" } th scope="col" { "Plan" } th scope="col" { "Updated" } } }
                tbody { @for p in &list.previews { tr {
                    th scope="row" { (p.forge) " #" (p.number) @if let Some(h) = &p.head { " " (short_id(h)) } }
                    td { (badge_as(&p.state, Tone::Neutral)) }
                    td { (badge(&p.outcome)) @if let Some(m) = &p.message { div.small { (m) } } }
                    td { @if let Some(id) = &p.plan_id { a href={ "/plans/" (urlencode(id)) } { (p.summary.as_deref().unwrap_or(id)) } } @else { "–" } }
                    td { (when(p.updated_at_ms)) }
                } } }
            } }
        }
    };
    page("Pull requests", Nav::Pulls, frame, Some(10), content)
}

pub fn settings_page(
    frame: &Frame,
    status: &Status,
    cfg: &DaemonConfig,
    notifications: &NotificationRoutes,
) -> Markup {
    let content = html! {
        h1 { "Settings" }
        p.muted { "Read-only: the daemon's configuration file and the repo's " code { "weir.yaml" } " are the places to change them." }
        section aria-labelledby="repo" {
            h2 #repo { "Repository" }
            dl.facts {
                dt { "URL" } dd { code { (status.repo.url) } }
                dt { "Branch" } dd { code { (status.repo.branch) } }
                dt { "Commit" } dd { @if let Some(c) = &status.repo.commit { (short_id(c)) } @else { "not fetched yet" } }
                dt { "Last fetch" } dd { @if let Some(at) = status.repo.fetched_at_ms { (when(at)) } @else { "–" } }
                @if let Some(e) = &status.repo.error { dt { "Fetch error" } dd.badtext { (e) } }
                dt { "Poll interval" } dd { (cfg.poll_interval_seconds) " s" }
                dt { "Default policy" } dd { (word(&cfg.sync.policy)) @if cfg.sync.self_heal { ", self-heal" } }
                dt { "API reads need a token" } dd { @if cfg.api.require_token_for_reads { "yes" } @else { "no" } }
            }
        }
        section aria-labelledby="clusters" {
            h2 #clusters { "Clusters" }
            div.tablewrap { table {
                thead { tr { th scope="col" { "Cluster" } th scope="col" { "URL" } th scope="col" { "Reachable" } th scope="col" { "Last observed" } } }
                tbody { @for (name, c) in &status.clusters { tr {
                    th scope="row" { (name) } td { code { (c.url) } }
                    td { @if c.reachable { (badge_as("reachable", Tone::Good)) } @else { (badge_as("unreachable", Tone::Bad)) div.small { (c.error.as_deref().unwrap_or("")) } } }
                    td { @if let Some(at) = c.last_sync_at_ms { (when(at)) } @else { "–" } }
                } } }
            } }
        }
        section aria-labelledby="policies" {
            h2 #policies { "Policy per job" }
            div.tablewrap { table {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Policy" } th scope="col" { "Self-heal" } } }
                tbody { @for j in &status.jobs { tr {
                    th scope="row" { a href=(job_href(&j.name)) { (j.name) } }
                    td { @if let Some(p) = &j.policy { (word(&p.policy)) } @else { "–" } }
                    td { @if j.policy.is_some_and(|p| p.self_heal) { "on" } @else { "off" } }
                } } }
            } }
        }
        section aria-labelledby="routes" {
            h2 #routes { "Notification routes" }
            p.muted { "From " code { "notifications" } " in " code { "weir.yaml" } " at the current revision. Destinations are masked: credentials, queries and token-like path parts are never shown." }
            @for problem in &notifications.problems { (notice(Tone::Bad, "Route not in use.", html! { (problem) })) }
            @if notifications.routes.is_empty() {
                p { "No route is in use: events are logged only." }
            } @else {
                div.tablewrap { table {
                    thead { tr { th scope="col" { "Route" } th scope="col" { "Format" } th scope="col" { "Events" } th scope="col" { "Destination" } th scope="col" { "Signed" } } }
                    tbody { @for r in &notifications.routes { tr {
                        th scope="row" { (r.name) }
                        td { (r.format) }
                        td { (r.events.join(", ")) }
                        td { code { (r.destination) } }
                        td { @if r.signed { "yes" } @else { "no" } }
                    } } }
                } }
            }
        }
    };
    page("Settings", Nav::Settings, frame, None, content)
}

/// The login form. `error` says why the last attempt failed.
pub fn login_page(frame: &Frame, next: &str, error: Option<&str>, required: bool) -> Markup {
    let content = html! {
        section.login aria-labelledby="signin" {
            h1 #signin { "Sign in" }
            @if required { p { "This daemon requires an API token to read its state." } }
            p.muted { "Enter one of the daemon's API tokens (" code { "api.tokens" } "). It is kept in an HttpOnly cookie for this site only and is needed to approve plans." }
            @if let Some(e) = error { (notice(Tone::Bad, "Not signed in.", html! { (e) })) }
            form method="post" action="/login" {
                (csrf_field(frame))
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    page("Sign in", Nav::None, frame, None, content)
}

/// A refusal or an error, with the way back.
pub fn message_page(
    frame: &Frame,
    title: &str,
    message: &str,
    back: Option<(&str, &str)>,
) -> Markup {
    let content = html! {
        h1 { (title) }
        (notice(Tone::Bad, "", html! { (message) }))
        @if let Some((href, label)) = back { p { a.button href=(href) { (label) } } }
    };
    page(title, Nav::None, frame, None, content)
}

/// An apply that is not (yet) recorded: one approved a moment ago is being started, so the page
/// looks again by itself.
pub fn apply_not_found_page(frame: &Frame, id: &str) -> Markup {
    let content = html! {
        h1 { "Apply " code { (id) } }
        (notice(Tone::Busy, "Not recorded (yet).", html! {
            "An apply that was just approved appears here within seconds; this page looks again by itself. "
            a href="/plans" { "Plans" }
        }))
    };
    page(&format!("Apply {id}"), Nav::Plans, frame, Some(2), content)
}
