//! The Markdown tables of a bench run (stdout).

use std::fmt::Write as _;

use super::*;

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn cycle_stats(m: &Measured, trigger: Trigger, f: impl Fn(&Cycle) -> Option<f64>) -> Stats {
    let v: Vec<f64> = m
        .cycles
        .iter()
        .filter(|c| c.trigger == trigger)
        .filter_map(f)
        .collect();
    stats(&v)
}

/// The same value in every sample, or each distinct one with how often it occurred.
fn same_or_varied(all: &[BTreeMap<String, u64>]) -> String {
    let first = all.first().cloned().unwrap_or_default();
    if all.iter().all(|c| *c == first) {
        return format!("{} (every one)", describe(&first));
    }
    let mut seen: Vec<(BTreeMap<String, u64>, usize)> = Vec::new();
    for c in all {
        match seen.iter_mut().find(|(s, _)| s == c) {
            Some((_, k)) => *k += 1,
            None => seen.push((c.clone(), 1)),
        }
    }
    seen.iter()
        .map(|(c, k)| format!("{k}×: {}", describe(c)))
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn tables(results: &[Measured], opts: &Options, bin: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "weir binary: `{}`; {} trigger runs per kind (alternating which goes first), {} \
         steady-state reconciles; times in ms from just before the trigger request was sent to \
         the request's arrival at the fake Flink: median (min–max).\n",
        bin.display(),
        opts.runs,
        opts.reconciles
    );

    trigger_latency(&mut out, results);
    calls_per_cycle(&mut out, results);
    steady_state(&mut out, results);
    memory(&mut out, results);
    startup(&mut out, results);
    out
}

/// Trigger → the first mutating Flink REST call of the apply, per trigger kind.
fn trigger_latency(out: &mut String, results: &[Measured]) {
    let base = &results[0];
    let _ = writeln!(
        out,
        "**Trigger → first mutating Flink REST call of the apply**\n"
    );
    let _ = writeln!(
        out,
        "| jobs | trigger | first mutating call | → (ms) median | min–max | daemon CPU until then (ms) | HTTP answer (ms) | first REST call, `GET /jobs/overview` (ms) | `POST /jars/{{jarid}}/run` (ms) | webhook / sync (median) | vs {} jobs (median) |",
        base.n
    );
    let _ = writeln!(
        out,
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in results {
        let wh = cycle_stats(m, Trigger::Webhook, |c| Some(ms(c.first_mutating)));
        let sy = cycle_stats(m, Trigger::Sync, |c| Some(ms(c.first_mutating)));
        for trigger in [Trigger::Webhook, Trigger::Sync] {
            let first = cycle_stats(m, trigger, |c| Some(ms(c.first_mutating)));
            let base_first = cycle_stats(base, trigger, |c| Some(ms(c.first_mutating)));
            let endpoints: Vec<&str> = {
                let mut e: Vec<&str> = m
                    .cycles
                    .iter()
                    .filter(|c| c.trigger == trigger)
                    .map(|c| c.first_mutating_endpoint.as_str())
                    .collect();
                e.sort();
                e.dedup();
                e
            };
            let cpu = cycle_stats(m, trigger, |c| Some(c.cpu_to_mutating));
            let answer = cycle_stats(m, trigger, |c| Some(ms(c.answer)));
            let call = cycle_stats(m, trigger, |c| Some(ms(c.first_call)));
            let submit = cycle_stats(m, trigger, |c| c.submit.map(ms));
            let ratio = if trigger == Trigger::Webhook {
                format!("{:.2}", wh.median / sy.median)
            } else {
                "1".into()
            };
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | **{:.1}** | {:.1}–{:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {ratio} | {:.2} |",
                m.n,
                trigger.label(),
                endpoints.join("`, `"),
                first.median,
                first.min,
                first.max,
                cpu.median,
                answer.median,
                call.median,
                submit.median,
                first.median / base_first.median,
            );
        }
    }
}

/// The Flink REST calls of one trigger → redeploy cycle.
fn calls_per_cycle(out: &mut String, results: &[Measured]) {
    let _ = writeln!(
        out,
        "\n**Flink REST calls of one trigger → redeploy cycle** (the reconcile of the trigger, its apply, and the reconcile after the apply)\n"
    );
    let _ = writeln!(out, "| jobs | trigger | REST calls (endpoint × count) |");
    let _ = writeln!(out, "|---:|---|---|");
    for m in results {
        for trigger in [Trigger::Webhook, Trigger::Sync] {
            let all: Vec<BTreeMap<String, u64>> = m
                .cycles
                .iter()
                .filter(|c| c.trigger == trigger)
                .map(|c| c.requests.clone())
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                m.n,
                trigger.label(),
                same_or_varied(&all)
            );
        }
    }
}

/// Flink REST calls, duration and CPU of a steady-state reconcile; the in-process load.
fn steady_state(out: &mut String, results: &[Measured]) {
    let _ = writeln!(
        out,
        "\n**Steady state: Flink REST calls per reconcile** (one cluster, every job RUNNING and in sync, reconciles triggered one at a time)\n"
    );
    let _ = writeln!(
        out,
        "| jobs | reconciles | REST calls per reconcile (endpoint × count) | calls per reconcile | reconcile duration median (ms) | min–max (ms) | daemon CPU per reconcile median (ms) | in-process `load_repo` of the commit, wall / CPU (ms) | `/jobs/overview` body (KiB) |"
    );
    let _ = writeln!(out, "|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let all: Vec<BTreeMap<String, u64>> = m.steady.iter().map(|s| s.requests.clone()).collect();
        let total: Vec<f64> = all.iter().map(|c| c.values().sum::<u64>() as f64).collect();
        let d = stats(
            &m.steady
                .iter()
                .map(|s| s.duration_ms as f64)
                .collect::<Vec<_>>(),
        );
        let cpu = stats(&m.steady.iter().map(|s| s.cpu_ms).collect::<Vec<_>>());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.0}–{:.0} | {:.0} | {:.0} / {:.0} | {:.0} |",
            m.n,
            m.steady.len(),
            same_or_varied(&all),
            stats(&total).median,
            d.median,
            d.min,
            d.max,
            cpu.median,
            m.load_ms,
            m.load_cpu_ms,
            m.overview_bytes as f64 / 1024.0
        );
    }
}

/// The daemon's memory at idle and after the trigger runs.
fn memory(out: &mut String, results: &[Measured]) {
    let base = &results[0];
    let _ = writeln!(
        out,
        "\n**Daemon memory** (`/proc/PID/status`; idle = 2 s after startup and the steady-state reconciles; 32 s idle = 30 s later)\n"
    );
    let _ = writeln!(
        out,
        "| jobs | idle VmRSS (MiB) | idle RssAnon (MiB) | 32 s idle VmRSS (MiB) | 32 s idle RssAnon (MiB) | VmHWM at idle (MiB) | threads (idle, 32 s) | VmRSS after the trigger runs (MiB) | VmHWM at the end (MiB) | idle VmRSS vs {} jobs |",
        base.n
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in results {
        let _ = writeln!(
            out,
            "| {} | **{:.1}** | {:.1} | **{:.1}** | {:.1} | {:.1} | {}, {} | {:.1} | {:.1} | {:.2} |",
            m.n,
            mib(m.idle.rss_kib),
            mib(m.idle.anon_kib),
            mib(m.idle_later.rss_kib),
            mib(m.idle_later.anon_kib),
            mib(m.idle.hwm_kib),
            m.idle.threads,
            m.idle_later.threads,
            mib(m.after.rss_kib),
            mib(m.after.hwm_kib),
            m.idle.rss_kib as f64 / base.idle.rss_kib as f64
        );
    }
}

/// Spawn → steady state, and the REST calls it took.
fn startup(out: &mut String, results: &[Measured]) {
    let _ = writeln!(
        out,
        "\n**Startup** (spawn → every job created, `Synced`/`RUNNING`, last reconcile `in_sync`)\n"
    );
    let _ = writeln!(out, "| jobs | startup (s) | REST calls during startup |");
    let _ = writeln!(out, "|---:|---:|---|");
    for m in results {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} |",
            m.n,
            m.startup.as_secs_f64(),
            describe(&m.startup_requests)
        );
    }
}
