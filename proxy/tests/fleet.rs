//! A fleet of proxies on a real 3-member etcd cluster (issue 12): clients
//! write through every proxy while `ferryctl --etcd` switches the bucket,
//! and the stores themselves show that no write landed on the side being
//! left once the new mode was in force; a dead etcd member or proxy does
//! not stop a switch; a proxy cut off from etcd refuses writes; two
//! switches at once do not interleave.

// A test runs no request path: proxy/clippy.toml's rule against
// blocking file calls is not for it.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use ferry_harness::Store;
use ferry_harness::etcd::EtcdCluster;
use ferry_harness::proxy::migrate::{BUCKET, JOURNAL, contents, copy_pass, run, status};
use ferry_harness::proxy::{Proxy, free_port, launch, scrape};

/// Short, so that the tests of a dead proxy wait seconds, not tens.
const LEASE_TTL_SECS: u64 = 3;

struct Fleet {
    etcd: EtcdCluster,
    source: Store,
    target: Store,
    proxies: Vec<Proxy>,
    /// Each proxy's `metrics_addr` port.
    metrics: Vec<u16>,
    /// ferryctl's config file (`[state]`), and a work folder.
    ctl_config: std::path::PathBuf,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

/// The `[state]` section of a proxy reaching `endpoints`.
fn state_section(endpoints: &[String], id: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "etcd_endpoints = [{}]\nmember_id = \"{id}\"\nlease_ttl_secs = {LEASE_TTL_SECS}\n",
        list.join(", ")
    )
}

impl Fleet {
    /// etcd with 3 members, a Garage source, a moto target, and `n`
    /// proxies, each reaching the etcd members `reach(i)`; the bucket
    /// attached through the fleet.
    fn start(n: usize, fence_timeout_secs: u64, reach: impl Fn(usize) -> Vec<usize>) -> Fleet {
        let etcd = EtcdCluster::start(3);
        let source = Store::garage().unwrap();
        source.create_bucket(BUCKET).unwrap();
        let target = Store::moto().unwrap();
        target.create_bucket(BUCKET).unwrap();
        target.create_bucket(JOURNAL).unwrap();
        let metrics: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let proxies = (0..n)
            .map(|i| {
                let endpoints: Vec<String> =
                    reach(i).into_iter().map(|m| etcd.endpoint(m)).collect();
                Proxy::start_in_fleet(
                    &target,
                    BUCKET,
                    &format!(
                        "journal_bucket = \"{JOURNAL}\"\nmetrics_addr = \"127.0.0.1:{}\"\n",
                        metrics[i]
                    ),
                    &state_section(&endpoints, &format!("p{i}")),
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let ctl_config = dir.path().join("ferryctl.toml");
        // ferryctl reaches members 0 and 1: a test may cut member 2 off.
        let list: Vec<String> = [0, 1].map(|m| format!("\"{}\"", etcd.endpoint(m))).to_vec();
        std::fs::write(
            &ctl_config,
            format!(
                "[state]\netcd_endpoints = [{}]\nfence_timeout_secs = {fence_timeout_secs}\n",
                list.join(", ")
            ),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let f = Fleet {
            etcd,
            source,
            target,
            proxies,
            metrics,
            ctl_config,
            dir,
            rt,
        };
        let args = launch::attach_args(f.dir.path(), BUCKET, &f.source).unwrap();
        f.ferryctl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        f
    }

    /// `ferryctl --config <fleet> ARGS`, not yet run.
    fn ferryctl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(ferry_harness::ferryctl_bin());
        c.arg("--config").arg(&self.ctl_config).args(args);
        // Never the proxy's socket: a fleet's verbs go to etcd.
        c.arg("--socket").arg("/nonexistent/ferry.sock");
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn ferryctl(&self, args: &[&str]) -> Output {
        eprintln!("ferryctl {args:?}");
        run(&mut self.ferryctl_cmd(args))
    }

    fn ferryctl_ok(&self, args: &[&str]) -> String {
        let out = self.ferryctl(args);
        assert!(out.status.success(), "ferryctl {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Sets the mode through the fleet; returns when every proxy had
    /// acknowledged the fence (the answer's `fenced_at`).
    fn set_mode(&self, mode: &str) -> SystemTime {
        let out = self.ferryctl_ok(&[
            "s3", "bucket", "migrate", "update", "--bucket", BUCKET, "--mode", mode, "--json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let at = v["fenced_at"]
            .as_str()
            .expect("a fenced change has fenced_at");
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .into()
    }

    fn show(&self) -> serde_json::Value {
        let out = self.ferryctl_ok(&["s3", "bucket", "migrate", "show", BUCKET, "--json"]);
        serde_json::from_str(&out).unwrap()
    }

    /// Waits until `show` lists exactly `members`, each applying the
    /// bucket's epoch in force.
    fn wait_members_applied(&self, members: &[&str]) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.show();
            let epoch = v["epoch"].as_u64().unwrap();
            let mut applied: Vec<(String, Option<u64>, Option<String>)> = v["members"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap().to_owned(),
                        m["epoch"].as_u64(),
                        m["phase"].as_str().map(str::to_owned),
                    )
                })
                .collect();
            applied.sort();
            let want: Vec<(String, Option<u64>, Option<String>)> = members
                .iter()
                .map(|m| (m.to_string(), Some(epoch), Some("active".to_owned())))
                .collect();
            if applied == want {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "members never all applied epoch {epoch}: {applied:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Makes etcd member `i` the leader, so that pausing it forces an election.
fn make_leader(f: &Fleet, i: usize) {
    f.rt.block_on(async {
        let connect =
            |ep: String| async move { etcd_client::Client::connect([ep], None).await.unwrap() };
        let endpoints = f.etcd.endpoints();
        let status = connect(endpoints[i].clone()).await.status().await.unwrap();
        let target = status.header().unwrap().member_id();
        if status.leader() == target {
            return;
        }
        for ep in &endpoints {
            let mut c = connect(ep.clone()).await;
            let s = c.status().await.unwrap();
            if s.leader() == s.header().unwrap().member_id() {
                c.move_leader(target).await.unwrap();
                return;
            }
        }
        panic!("no etcd member says it leads");
    });
}

/// One acknowledged write of the ledger.
#[derive(Debug, Clone)]
struct Write {
    key: String,
    body: String,
    /// When the attempt that succeeded was sent.
    started: SystemTime,
}

/// PUTs `body` at `key`, again after each 503 SlowDown (the fence, as an
/// SDK's retry would); any other error fails the test. Returns when the
/// successful attempt was sent.
async fn put_through_fences(
    c: &aws_sdk_s3::Client,
    key: &str,
    body: &str,
    slowdowns: &AtomicUsize,
) -> SystemTime {
    loop {
        let started = SystemTime::now();
        let r = c
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await;
        match r {
            Ok(_) => return started,
            Err(e) if status(&e) == Some(503) => {
                slowdowns.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("PUT {key}: {e:?}"),
        }
    }
}

const WRITERS: usize = 12;
/// Phases of the writers: unique keys, then overwrites, then stop.
const UNIQUE: u8 = 0;
const OVERWRITE: u8 = 1;
const STOP: u8 = 2;

#[test]
fn the_fleet_switches_as_one_under_load_and_loses_no_write() {
    // p2 reaches etcd member 2 only, which the test pauses for a second as
    // the fleet switches to migrate mode: p2 then learns of the switch a
    // second after the others, as a proxy behind a slow network would.
    // Member 2 leads by then, so the switch also rides out an election.
    let f = Fleet::start(3, 30, |i| if i == 2 { vec![2] } else { vec![0, 1] });
    let clients: Vec<aws_sdk_s3::Client> = f
        .proxies
        .iter()
        .map(|p| p.client(&f.target.region))
        .collect();
    let phase = Arc::new(AtomicU8::new(UNIQUE));
    // The phase each writer's last acknowledged write was made in.
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..WRITERS).map(|_| AtomicU8::new(UNIQUE)).collect());
    let ledger: Arc<Mutex<Vec<Write>>> = Default::default();
    let slowdowns = Arc::new(AtomicUsize::new(0));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (clients, phase, seen, ledger, slowdowns) = (
                clients.clone(),
                phase.clone(),
                seen.clone(),
                ledger.clone(),
                slowdowns.clone(),
            );
            f.rt.spawn(async move {
                let mut n = 0usize;
                loop {
                    let p = phase.load(Ordering::SeqCst);
                    // Each key has one writer, writing it in order, so its
                    // last acknowledged write is well defined. Unique keys
                    // while ready mode hands over to forward (a key written
                    // on both sides of that switch would be the target's
                    // in migrate mode: clients must not write through the
                    // proxy in ready mode, see docs/proxy.md); overwrites
                    // across forward -> migrate, the switch where a write
                    // on the old side would be lost.
                    let key = match p {
                        UNIQUE => format!("u/{w:02}/{n:05}"),
                        OVERWRITE => format!("o/{w:02}/{}", n % 6),
                        _ => return,
                    };
                    let body = format!("writer {w} write {n} phase {p}");
                    let c = &clients[(w + n) % clients.len()];
                    let started = put_through_fences(c, &key, &body, &slowdowns).await;
                    ledger.lock().unwrap().push(Write { key, body, started });
                    seen[w].store(p, Ordering::SeqCst);
                    n += 1;
                }
            })
        })
        .collect();

    // ready -> forward under load.
    std::thread::sleep(Duration::from_millis(1500));
    let fenced_forward = f.set_mode("forward");
    f.wait_members_applied(&["p0", "p1", "p2"]);
    std::thread::sleep(Duration::from_millis(500));
    phase.store(OVERWRITE, Ordering::SeqCst);
    while seen.iter().any(|s| s.load(Ordering::SeqCst) != OVERWRITE) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every unique key on the target (the side left) was sent before the
    // fence was complete.
    let ledger_at = |body: &[u8]| -> Write {
        let body = String::from_utf8_lossy(body).into_owned();
        ledger
            .lock()
            .unwrap()
            .iter()
            .find(|w| w.body == body)
            .cloned()
            .unwrap_or_else(|| panic!("a store holds {body:?}, which no client wrote"))
    };
    let on_target = f.rt.block_on(contents(&f.target));
    let unique_on_target = on_target.keys().filter(|k| k.starts_with("u/")).count();
    for (key, body) in &on_target {
        let w = ledger_at(body);
        assert!(
            w.started < fenced_forward,
            "{key}: written to the target (ready mode) by a write sent after the fleet was \
             fenced into forward mode"
        );
    }

    // forward -> migrate under load, and a copy pass while clients write.
    std::thread::sleep(Duration::from_millis(1500));
    // The first time an overwritten key shows on the target: some proxy
    // routes by migrate mode by then.
    let first_on_target: Mutex<Option<SystemTime>> = Mutex::new(None);
    make_leader(&f, 2);
    f.etcd.pause(2);
    let fenced_migrate = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            f.etcd.resume(2);
        });
        s.spawn(|| {
            let c = f.target.client();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let listed = f.rt.block_on(
                    c.list_objects_v2()
                        .bucket(BUCKET)
                        .prefix("o/")
                        .max_keys(1)
                        .send(),
                );
                if listed.is_ok_and(|l| l.key_count().unwrap_or(0) > 0) {
                    *first_on_target.lock().unwrap() = Some(SystemTime::now());
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        f.set_mode("migrate")
    });
    let first_on_target = first_on_target
        .lock()
        .unwrap()
        .expect("overwrites reach the target in migrate mode");
    f.wait_members_applied(&["p0", "p1", "p2"]);
    let folder = tempfile::tempdir().unwrap();
    let mut copier = copy_pass(&f.source, &f.target, folder.path())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    phase.store(STOP, Ordering::SeqCst);
    for w in writers {
        f.rt.block_on(w).unwrap();
    }
    assert!(copier.wait().unwrap().success(), "the copy pass failed");
    assert!(
        run(&mut copy_pass(&f.source, &f.target, folder.path()))
            .status
            .success()
    );

    // Nothing written to the source (the side left) was sent after the
    // fence into migrate mode was complete, nor after any proxy wrote to
    // the target in migrate mode.
    let on_source = f.rt.block_on(contents(&f.source));
    for (key, body) in &on_source {
        let w = ledger_at(body);
        assert!(
            w.started < fenced_migrate,
            "{key}: written to the source by a write sent after the fleet was fenced into \
             migrate mode"
        );
        assert!(
            w.started < first_on_target,
            "{key}: written to the source by a write sent after a proxy wrote to the target \
             in migrate mode"
        );
    }
    // The target holds exactly each key's last acknowledged write.
    let ledger = ledger.lock().unwrap();
    let mut last: BTreeMap<&str, &Write> = BTreeMap::new();
    for w in ledger.iter() {
        last.insert(&w.key, w);
    }
    let on_target = f.rt.block_on(contents(&f.target));
    let wrong: Vec<String> = last
        .iter()
        .filter(|(k, w)| on_target.get(**k).map(Vec::as_slice) != Some(w.body.as_bytes()))
        .map(|(k, w)| {
            format!(
                "{k}: want {:?}, target has {:?}",
                w.body,
                on_target
                    .get(*k)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} keys lost their last write: {wrong:#?}",
        wrong.len()
    );
    assert_eq!(
        on_target.len(),
        last.len(),
        "no key the clients did not write"
    );
    let overwritten_on_source = on_source.keys().filter(|k| k.starts_with("o/")).count();
    eprintln!(
        "ledger: {} writes to {} keys through 3 proxies; {} unique keys on the target before \
         the forward switch, {} overwritten keys on the source before the migrate switch; \
         {} SlowDown answers retried",
        ledger.len(),
        last.len(),
        unique_on_target,
        overwritten_on_source,
        slowdowns.load(Ordering::Relaxed)
    );
    assert!(
        unique_on_target > 0 && overwritten_on_source > 0,
        "both sides took writes"
    );
}

/// A member that registers and never acknowledges, like a proxy that hangs:
/// its lease lives `ttl` seconds unless revoked.
fn silent_member(f: &Fleet, ttl: i64) -> i64 {
    f.rt.block_on(async {
        let mut c = etcd_client::Client::connect(f.etcd.endpoints(), None)
            .await
            .unwrap();
        let lease = c.lease_grant(ttl, None).await.unwrap().id();
        c.put(
            "/ferry/v1/proxies/silent",
            r#"{"id":"silent","pid":1,"registered_at":"-"}"#,
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
        lease
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn switches_do_not_interleave_and_survive_a_dead_etcd_member_and_a_dead_proxy() {
    let mut f = Fleet::start(3, 8, |_| vec![0, 1, 2]);
    let update = |mode: &'static str| {
        [
            "s3", "bucket", "migrate", "update", "--bucket", BUCKET, "--mode", mode,
        ]
    };

    // Two updates at once: the first holds its fence until a member that
    // never acknowledges leaves (its 3 s lease runs out), and wins; the
    // second, meanwhile, is refused as a conflict (exit 4).
    silent_member(&f, 3);
    let first = f.ferryctl_cmd(&update("forward")).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let second = f.ferryctl(&update("forward"));
    assert_eq!(
        second.status.code(),
        Some(4),
        "the second update: a conflict"
    );
    assert!(stderr(&second).contains("Conflict"), "{}", stderr(&second));
    let first = first.wait_with_output().unwrap();
    eprintln!("first update:\n{}", stderr(&first));
    assert!(first.status.success(), "the first update wins");
    assert!(
        stderr(&first).contains("p0, p1, p2, silent"),
        "it named who it waited for"
    );
    let v = f.wait_members_applied(&["p0", "p1", "p2"]);
    assert_eq!(v["mode"], "forward");

    // A fence that a live member never acknowledges: rolled back at the
    // timeout, naming the member.
    let lease = silent_member(&f, 60);
    let out = f.ferryctl(&update("ready"));
    assert_eq!(out.status.code(), Some(1));
    for want in ["FenceTimeout", "silent", "rolled back"] {
        assert!(stderr(&out).contains(want), "{want:?} in {}", stderr(&out));
    }
    let v = f.show();
    assert_eq!(
        (v["mode"].as_str(), v["phase"].as_str()),
        (Some("forward"), Some("active"))
    );
    f.rt.block_on(async {
        let mut c = etcd_client::Client::connect(f.etcd.endpoints(), None)
            .await
            .unwrap();
        c.lease_revoke(lease).await.unwrap();
    });

    // An etcd member killed mid-fence (the fence waits for a member whose
    // lease runs out by itself): the switch completes.
    silent_member(&f, 3);
    let switch = f.ferryctl_cmd(&update("ready")).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    f.etcd.kill(0);
    let switch = switch.wait_with_output().unwrap();
    eprintln!("{}", stderr(&switch));
    assert!(
        switch.status.success(),
        "the switch completes without etcd member 0"
    );
    f.wait_members_applied(&["p0", "p1", "p2"]);
    // Ready mode is in force everywhere: a write lands on the target.
    let c = f.proxies[2].client(&f.target.region);
    let none = AtomicUsize::new(0);
    f.rt.block_on(put_through_fences(&c, "after-ready", "x", &none));
    assert!(
        f.rt.block_on(contents(&f.target))
            .contains_key("after-ready")
    );

    // A proxy killed mid-switch: the switch waits for its lease to expire,
    // then completes; restarted, it comes up in the new mode.
    f.proxies[2].kill9();
    let out = f.ferryctl(&update("forward"));
    assert!(out.status.success(), "the switch completes without p2");
    assert!(
        stderr(&out).contains("still waiting for: p2"),
        "{}",
        stderr(&out)
    );
    f.wait_members_applied(&["p0", "p1"]);
    f.proxies[2].spawn();
    let v = f.wait_members_applied(&["p0", "p1", "p2"]);
    assert_eq!(v["mode"], "forward");
    let c = f.proxies[2].client(&f.target.region);
    f.rt.block_on(put_through_fences(&c, "after-forward", "y", &none));
    assert!(
        f.rt.block_on(contents(&f.source))
            .contains_key("after-forward")
    );
    assert!(
        !f.rt
            .block_on(contents(&f.target))
            .contains_key("after-forward")
    );

    // A proxy stopped with TERM leaves the fleet at once: the next switch
    // does not wait for its lease.
    f.proxies[1].term();
    assert!(
        f.proxies[1].wait(Duration::from_secs(20)).is_some(),
        "p1 exits on TERM"
    );
    let out = f.ferryctl(&update("migrate"));
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("waiting for 2 proxies"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("p1"), "p1 left: {}", stderr(&out));

    // The seed's rollback step, `update --url <target-cluster-url>`: a
    // proxy's own URL (registered with it) selects every bucket.
    let url = f.proxies[0].http.clone();
    let out = f.ferryctl(&[
        "s3", "bucket", "migrate", "update", "--url", &url, "--mode", "ready", "--force",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.show()["mode"], "ready");
}

#[test]
fn a_proxy_cut_off_from_etcd_refuses_writes_until_it_is_back() {
    // p0 reaches etcd member 2 only; the fleet's other members keep quorum.
    let f = Fleet::start(1, 30, |_| vec![2]);
    // Through the proxy's own socket: a fleet member's admin API makes the
    // same fenced change, and `show` there lists the members.
    let out = f.proxies[0].ferryctl_ok(&launch::set_mode_args(BUCKET, "forward"));
    assert!(out.contains("ready -> forward"), "{out}");
    let shown = f.proxies[0].ferryctl_ok(&["s3", "bucket", "migrate", "show", BUCKET, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["mode"], "forward");
    assert_eq!(shown["members"][0]["id"], "p0", "{shown}");
    let c = f.proxies[0].client(&f.target.region);
    // The refusal's status and S3 code, or the failure.
    let put = |key: &str| -> Result<(), (Option<u16>, String)> {
        f.rt.block_on(
            c.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from_static(b"data"))
                .send(),
        )
        .map(drop)
        .map_err(|e| (status(&e), format!("{e:?}")))
    };
    put("before").unwrap();

    f.etcd.pause(2);
    let cut = Instant::now();
    let refused_after = loop {
        match put("during") {
            Err((Some(503), _)) => break cut.elapsed(),
            Ok(()) => {}
            Err(e) => panic!("{e:?}"),
        }
        assert!(
            cut.elapsed() < Duration::from_secs(LEASE_TTL_SECS),
            "still taking writes when its lease may have expired"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (_, e) = put("during").unwrap_err();
    assert!(e.contains("SlowDown"), "{e}");
    let in_contact = || {
        let text = scrape(f.metrics[0]);
        text.lines()
            .find_map(|l| l.strip_prefix("ferry_fleet_in_contact "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no ferry_fleet_in_contact in:\n{text}"))
    };
    assert_eq!(in_contact(), "0", "the metric says it fails closed");
    // Reads go on, from the side that is complete.
    f.rt.block_on(c.get_object().bucket(BUCKET).key("before").send())
        .unwrap();

    f.etcd.resume(2);
    let back = Instant::now();
    while put("after").is_err() {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "writes never resumed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(f.rt.block_on(contents(&f.source)).contains_key("after"));
    assert_eq!(in_contact(), "1");

    // A fence whose ferryctl died an hour ago holds the bucket's writes
    // until the next update takes it over.
    f.rt.block_on(async {
        let mut c = etcd_client::Client::connect(f.etcd.endpoints(), None)
            .await
            .unwrap();
        let key = format!("/ferry/v1/buckets/{BUCKET}");
        // etcd may still be electing a leader after member 2's pause
        // ("leader changed"): a read and a plain put are safe to resend.
        let deadline = Instant::now() + Duration::from_secs(15);
        let got = loop {
            match c.get(key.as_str(), None).await {
                Ok(got) => break got,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("etcd get: {e}; again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("etcd get: {e}"),
            }
        };
        let mut b: serde_json::Value = serde_json::from_slice(got.kvs()[0].value()).unwrap();
        b["phase"] = "fencing".into();
        b["leaving"] = "forward".into();
        b["mode"] = "migrate".into();
        b["epoch"] = (b["epoch"].as_u64().unwrap() + 1).into();
        b["updated_at"] = "2026-01-01T00:00:00Z".into();
        let value = serde_json::to_vec(&b).unwrap();
        loop {
            match c.put(key.as_str(), value.clone(), None).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("etcd put: {e}; again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("etcd put: {e}"),
            }
        }
    });
    let fenced = Instant::now();
    loop {
        match put("held") {
            Err((Some(503), _)) => break,
            r => assert!(
                fenced.elapsed() < Duration::from_secs(10),
                "not fenced: {r:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = f.ferryctl(&launch::set_mode_args(BUCKET, "forward"));
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("taking over the change of epoch"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.show()["phase"], "active");
    put("released").unwrap();
    assert!(f.rt.block_on(contents(&f.source)).contains_key("released"));
    eprintln!(
        "cut off: writes refused after {} ms (lease TTL {LEASE_TTL_SECS} s); taken again {} ms \
         after etcd was back",
        refused_after.as_millis(),
        back.elapsed().as_millis()
    );
}
