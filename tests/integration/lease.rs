//! Two weir processes never apply the same job on one cluster at once (issue 9 item 4): a
//! lease per definition on the cluster, against a real Flink cluster.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::*;

/// Two stores (two CI jobs) apply the same change to one running job at the same moment:
/// exactly one goes ahead; the other exits 1, naming the lease; one copy runs at every
/// observation and exactly one new job exists afterwards.
#[test]
fn two_stores_applying_the_same_change_at_once_make_one_new_job() {
    let cluster = cluster(Version::V2);
    let base = cluster.url.clone();
    let first = Repo::new(&cluster.url, Some(&cluster.jars));
    let name = first.unique("leased");
    let file = format!("jobs/{name}.yaml");
    first.write(&file, &jar_job(&name, 1, "orders", ""));
    first.commit("job");
    first.weir(&["apply", "--auto-approve"]).ok();
    let original = running_named(&base, &name);
    assert_eq!(original.len(), 1);

    first.write(&file, &jar_job(&name, 1, "orders2", ""));
    first.commit("change");
    let second = Repo::new(&cluster.url, Some(&cluster.jars));
    second.write(&file, &jar_job(&name, 1, "orders2", ""));
    second.commit("the same change, another store");

    let done = AtomicBool::new(false);
    let most = AtomicUsize::new(0);
    let (a, b) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                most.fetch_max(running_named(&base, &name).len(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let a = s.spawn(move || {
            let run = first.weir(&["apply", "--auto-approve"]);
            (first, run)
        });
        let b = s.spawn(move || {
            let run = second.weir(&["apply", "--auto-approve"]);
            (second, run)
        });
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        done.store(true, Ordering::SeqCst);
        watcher.join().unwrap();
        (a, b)
    });
    let runs = [&a.1, &b.1];
    let ok = runs.iter().filter(|r| r.code == 0).count();
    assert_eq!(ok, 1, "{}\n=====\n{}", a.1.all(), b.1.all());
    let refused = runs.iter().find(|r| r.code != 0).unwrap();
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.all().contains("another weir apply"),
        "{}",
        refused.all()
    );
    assert!(most.load(Ordering::SeqCst) <= 1, "two copies ran at once");
    let now = running_named(&base, &name);
    assert_eq!(now.len(), 1, "exactly one new job");
    assert_ne!(now, original);
    let all = jobs_named(&base, &name);
    assert_eq!(all.len(), 2, "the original and one new job: {all:?}");
    // No lease is left behind.
    let jars = get(&format!("{base}/jars"));
    let hash = format!("{:016x}", weir::identity::name_hash(&name));
    assert!(
        !jars["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"].as_str().unwrap_or_default().contains(&hash)),
        "{jars:#}"
    );
}
