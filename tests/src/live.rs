//! The whole migration, live: one bucket moved from a source store to a
//! target store through the real ferry-proxy (https, certificate by SNI),
//! two real ferry-agents copying it as hash shares, and every step through
//! the real ferryctl, while clients (boto3, awscli, rclone:
//! tests/clients/live_load.py) keep writing, reading, overwriting, deleting
//! and listing through the proxy, and faults are injected: kill -9 of an
//! agent mid-copy and of the proxy, a certificate replaced, the source
//! stopped for 10 s in migrate mode.
//!
//! The verdict: the target alone holds exactly the clients' ledger (every
//! acknowledged write with its content, every acknowledged delete gone,
//! every seed object nobody touched), no read answered a false 404 or wrong
//! content, and every client error falls in a fault's window.
//!
//! One code path for the end-to-end test (tests/tests/live_migration.rs,
//! small) and `ferry-live` (`scripts/demo`, and large runs on demand).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::agent::{Agent, secret_file};
use crate::proxy::{ALICE, Proxy};
use crate::s3migrate::{data, rt};
use crate::tls::TestIssuer;
use crate::{Store, StoreKind, free_port, put_objects};

const BUCKET: &str = "photos";
const JOURNAL: &str = "ferry-journal";
const HOST: &str = "localhost";
/// After a fault ends, how long a client error is still its doing: the
/// clients' own retries and timeouts.
const GRACE: Duration = Duration::from_secs(10);
/// Clients run on this long between faults.
const BETWEEN_FAULTS: Duration = Duration::from_secs(3);

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Objects in the source bucket before the migration.
    pub objects: u64,
    /// The source store (the target is moto). Garage keeps its data
    /// across a restart, so only a Garage source is stopped for 10 s.
    pub source: StoreKind,
    pub faults: bool,
    /// Client workers: boto3, awscli, rclone.
    pub clients: [u32; 3],
    /// How long clients run in forward mode before migrate mode.
    pub forward_secs: u64,
    /// Copy threads per agent.
    pub threads: u32,
    /// Where the logs, the last metrics scrape, the ledger and the report
    /// are kept. Default: nowhere (the run's files go with it).
    pub keep: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            objects: 2000,
            source: StoreKind::Garage,
            faults: true,
            clients: [2, 1, 1],
            forward_secs: 5,
            threads: 4,
            keep: None,
        }
    }
}

/// One injected fault and when it was on (Unix seconds).
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: &'static str,
    pub start: f64,
    pub end: f64,
}

/// What the run found.
#[derive(Debug, Default)]
pub struct Report {
    pub faults: Vec<Fault>,
    /// Acknowledged client operations by kind.
    pub ops: BTreeMap<String, u64>,
    /// Client errors by the fault whose window holds them.
    pub errors_by_fault: BTreeMap<String, u64>,
    /// The first client error of each fault.
    pub examples: Vec<String>,
    /// Client errors outside every fault's window.
    pub unaccounted: Vec<String>,
    pub false_404: Vec<String>,
    pub wrong_content: Vec<String>,
    /// Objects on the target at the end, and how many the ledger expects.
    pub on_target: u64,
    pub expected: u64,
    /// Keys whose final state differs from the ledger's.
    pub mismatches: Vec<String>,
    /// Keys a lost answer left uncertain, settled either way.
    pub uncertain: u64,
    /// The copy jobs' objects copied, and keys retried after a failure.
    pub copied: u64,
    pub retried: u64,
    pub notes: Vec<String>,
    pub seconds: f64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.unaccounted.is_empty()
            && self.false_404.is_empty()
            && self.wrong_content.is_empty()
            && self.mismatches.is_empty()
            && self.on_target == self.expected
    }

    /// Whether a client's failure `e` (with its time `t`) falls in a
    /// fault's window, counted against the latest such fault (windows
    /// overlap by the grace when faults follow closely).
    fn in_fault(&mut self, e: &serde_json::Value) -> bool {
        let t = e["t"].as_f64().unwrap_or(0.0);
        let Some(f) = self
            .faults
            .iter()
            .rfind(|f| t >= f.start - 1.0 && t <= f.end + GRACE.as_secs_f64())
        else {
            return false;
        };
        let n = self.errors_by_fault.entry(f.kind.to_owned()).or_default();
        if *n == 0 {
            self.examples.push(format!("{}: {e}", f.kind));
        }
        *n += 1;
        true
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: u64 = self.ops.values().sum();
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "live: client ops acknowledged: {ops} ({})",
            list(&self.ops)
        )?;
        for fault in &self.faults {
            writeln!(
                f,
                "live: fault {}: {:.1} s",
                fault.kind,
                fault.end - fault.start
            )?;
        }
        writeln!(
            f,
            "live: client errors: {} in fault windows ({}), {} outside any",
            self.errors_by_fault.values().sum::<u64>(),
            list(&self.errors_by_fault),
            self.unaccounted.len()
        )?;
        writeln!(
            f,
            "live: reads: {} false 404, {} wrong content",
            self.false_404.len(),
            self.wrong_content.len()
        )?;
        writeln!(
            f,
            "live: copy: {} objects copied by 2 agents, {} keys retried",
            self.copied, self.retried
        )?;
        writeln!(
            f,
            "live: target: {} objects, ledger expects {}; {} differ; {} uncertain keys settled",
            self.on_target,
            self.expected,
            self.mismatches.len(),
            self.uncertain
        )?;
        for e in &self.examples {
            writeln!(f, "live:   first error of {e}")?;
        }
        for n in &self.notes {
            writeln!(f, "live: note: {n}")?;
        }
        for (what, keys) in [
            ("error outside a fault", &self.unaccounted),
            ("false 404", &self.false_404),
            ("wrong content", &self.wrong_content),
            ("differs", &self.mismatches),
        ] {
            for k in keys.iter().take(10) {
                writeln!(f, "live:   {what}: {k}")?;
            }
        }
        write!(
            f,
            "live: {} in {:.0} s",
            if self.passed() {
                "PASS: the target holds exactly what clients were told"
            } else {
                "FAIL"
            },
            self.seconds
        )
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn say(what: &str) {
    println!("live: {what}");
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The seed: many small objects and the odd keys every store must keep.
fn seed(objects: u64) -> Vec<(String, bytes::Bytes)> {
    let odd = [
        "seed/with space",
        "seed/50%",
        "seed/a+b",
        "seed/caf\u{e9}",
        "seed/dir/",
        "seed/empty",
    ];
    let mut out: Vec<(String, bytes::Bytes)> = odd
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let len = if k.ends_with('/') || k.ends_with("empty") {
                0
            } else {
                100 + i
            };
            (k.to_string(), data(i as u64, len))
        })
        .collect();
    let long = format!("seed/{}", "l".repeat(1019));
    out.push((long, data(7, 10)));
    out.extend((0..objects).map(|i| {
        (
            format!("seed/{i:07}"),
            data(i, 1 + (i as usize * 37) % 8192),
        )
    }));
    out
}

/// The client load: live_load.py, running until `stop` appears.
struct Clients {
    child: Child,
    stop: PathBuf,
    ledger: PathBuf,
}

impl Clients {
    fn start(
        dir: &Path,
        endpoint: &str,
        region: &str,
        ca: &Path,
        seed: &BTreeMap<String, String>,
        workers: [u32; 3],
    ) -> anyhow::Result<Clients> {
        let stop = dir.join("stop");
        let ledger = dir.join("ledger.json");
        let config = dir.join("load.json");
        std::fs::write(
            &config,
            serde_json::json!({
                "endpoint": endpoint,
                "bucket": BUCKET,
                "access_key": ALICE.access_key,
                "secret": ALICE.secret,
                "region": region,
                "ca_bundle": ca,
                "seed": seed,
                "workers": {"boto3": workers[0], "awscli": workers[1], "rclone": workers[2]},
                "stop_file": stop,
                "ledger_file": ledger,
                "seconds_between_ops": 0.02,
            })
            .to_string(),
        )?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/live_load.py");
        let mut cmd = Command::new(crate::python_bin());
        crate::apply_loopback_env(&mut cmd);
        let child = cmd
            .arg(script)
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("load.log"))?)
            .spawn()
            .context("starting the client load (python with boto3: run scripts/setup)")?;
        Ok(Clients {
            child,
            stop,
            ledger,
        })
    }

    /// Stops the workers after their current operation; their ledger.
    fn finish(mut self, dir: &Path) -> anyhow::Result<serde_json::Value> {
        std::fs::write(&self.stop, "")?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            ensure!(Instant::now() < deadline, "the client load did not stop");
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = std::fs::read_to_string(dir.join("load.log")).unwrap_or_default();
        ensure!(
            status.success(),
            "the client load failed ({status}):\n{log}"
        );
        Ok(serde_json::from_str(&std::fs::read_to_string(
            &self.ledger,
        )?)?)
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ferryctl --output json ARGS…` against the proxy and one agent: its
/// answer, which a check prints whether it passed (exit 0) or failed
/// (exit 1).
fn ctl_answer(
    proxy: &Proxy,
    agent: &Agent,
    args: &[&str],
) -> anyhow::Result<(bool, serde_json::Value)> {
    let out = Command::new(crate::ferryctl_bin())
        .arg("--socket")
        .arg(&proxy.socket)
        .arg("--agent-socket")
        .arg(&agent.socket)
        .args(["--output", "json"])
        .args(args)
        .output()?;
    let code = out.status.code();
    let answer = serde_json::from_slice(&out.stdout).ok();
    match (code, answer) {
        (Some(0), Some(a)) => Ok((true, a)),
        (Some(1), Some(a)) => Ok((false, a)),
        _ => bail!(
            "ferryctl {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// As [`ctl_answer`], for a step that must succeed.
fn ctl(proxy: &Proxy, agent: &Agent, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    match ctl_answer(proxy, agent, args)? {
        (true, a) => Ok(a),
        (false, a) => bail!("ferryctl {args:?} refused: {a}"),
    }
}

/// Polls a job until it has stopped: completed, or failed (some keys
/// failed); its view.
fn wait_stopped(agent: &Agent, id: u64) -> serde_json::Value {
    agent.wait_for(id, "a stop", Duration::from_secs(1800), |v| {
        v["state"] == "completed" || v["state"] == "failed"
    })
}

fn copied(view: &serde_json::Value) -> u64 {
    view["passes"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p["objects"]["copied"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// The served certificate's days left, by `ferryctl check tls`.
fn served_days(proxy: &Proxy, agent: &Agent, endpoint: &str, ca: &Path) -> anyhow::Result<String> {
    let report = ctl(
        proxy,
        agent,
        &[
            "check",
            "tls",
            endpoint,
            "--names",
            HOST,
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    )?;
    ensure!(report["ok"] == true, "check tls: {report:#}");
    let detail = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["detail"].as_str())
        .find(|d| d.contains(" days)"))
        .context("check tls names no validity")?;
    Ok(detail
        .rsplit('(')
        .next()
        .unwrap_or("")
        .trim_end_matches(')')
        .to_owned())
}

/// Runs the live migration; its report. An error is a step that could not
/// run at all (a store that would not start); a lost write is a failed
/// report, not an error.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let began = Instant::now();
    let mut report = Report::default();
    let rt = rt();
    let dir = tempfile::tempdir()?;
    let d = dir.path();

    say(&format!(
        "starting the source ({}) and the target (moto) on 127.0.0.1",
        opts.source
    ));
    let mut source = Store::start(opts.source)?;
    source.create_bucket(BUCKET)?;
    let target = Store::moto()?;
    target.create_bucket(BUCKET)?;
    target.create_bucket(JOURNAL)?;
    let objects = seed(opts.objects);
    let seed_sums: BTreeMap<String, String> =
        objects.iter().map(|(k, v)| (k.clone(), sha(v))).collect();
    say(&format!(
        "filling the source bucket '{BUCKET}' with {} objects",
        objects.len()
    ));
    rt.block_on(put_objects(&source.client(), BUCKET, objects, 16))?;

    let ca = TestIssuer::new(d, "live")?;
    let certs = ca.cert_dir(d, &[HOST], -1..90)?;
    let https = free_port()?;
    let metrics = free_port()?;
    let mut proxy = Proxy::start_with(
        &target,
        BUCKET,
        &format!(
            "https_addr = \"127.0.0.1:{https}\"\ncert_dir = \"{}\"\njournal_bucket = \"{JOURNAL}\"\n\
             metrics_addr = \"127.0.0.1:{metrics}\"\n",
            certs.display()
        ),
    );
    let endpoint = format!("https://{HOST}:{https}");
    let mut agents = [Agent::start(""), Agent::start("")];
    say(&format!(
        "ferry-proxy on {endpoint} (metrics http://127.0.0.1:{metrics}/metrics, log {}), two ferry-agents",
        proxy.dir.path().join("proxy.log").display()
    ));

    // Phase 1, ready: attached, clients still on the source.
    proxy.attach(BUCKET, &source);
    say("phase 1: attached, mode ready");
    // Phase 2, forward: DNS now points clients at the proxy.
    proxy.set_mode(BUCKET, "forward");
    say("phase 2: mode forward; clients start: their requests go to the source");
    let clients = Clients::start(
        d,
        &endpoint,
        &source.region,
        &ca.ca,
        &seed_sums,
        opts.clients,
    )?;
    std::thread::sleep(Duration::from_secs(opts.forward_secs));

    // Phase 3, migrate: writes to the target, reads target first, deletes
    // to both (journalled); two agents copy a hash share each.
    let users = proxy.dir.path().join("users.toml");
    let mut update = vec![
        "s3",
        "bucket",
        "migrate",
        "update",
        "--bucket",
        BUCKET,
        "--mode",
        "migrate",
        "--users-file",
        users.to_str().unwrap(),
    ];
    if !opts.source.checks_signatures() {
        // moto takes any credential, so the source cannot be restricted.
        update.push("--force");
        report.notes.push(format!(
            "{}: the source takes any credential; migrate mode forced",
            opts.source
        ));
    }
    ctl(&proxy, &agents[0], &update)?;
    say("phase 3: mode migrate; two agents copy a hash share each (--hash-count 2)");
    let (copier_key, copier_secret) = source.read_only_key(BUCKET)?;
    let source_secret = secret_file(d, "source.secret", &copier_secret);
    let target_secret = secret_file(d, "target.secret", &target.secret_key);
    let threads = opts.threads.to_string();
    let mut jobs = Vec::new();
    for (share, agent) in agents.iter().enumerate() {
        let share = share.to_string();
        let job = ctl(
            &proxy,
            agent,
            &[
                "job",
                "start",
                "migrate",
                "--src-url",
                &source.endpoint,
                "--src-bucket",
                BUCKET,
                "--src-key",
                &copier_key,
                "--src-region",
                &source.region,
                "--src-secret-file",
                source_secret.to_str().unwrap(),
                "--src-list",
                "--dest-url",
                &target.endpoint,
                "--dest-bucket",
                BUCKET,
                "--dest-key",
                &target.access_key,
                "--dest-region",
                &target.region,
                "--dest-secret-file",
                target_secret.to_str().unwrap(),
                "--delete-journal",
                JOURNAL,
                "--passes",
                "2",
                "--threads",
                &threads,
                "--hash-count",
                "2",
                "--hash-value",
                &share,
            ],
        )?;
        jobs.push(job["id"].as_u64().context("job start gave no id")?);
    }

    if opts.faults {
        // An agent killed mid-copy: its job resumes at the restart.
        let first = agents[0].wait_for(jobs[0], "progress", Duration::from_secs(600), |v| {
            agents[0].migrate_log(jobs[0]).len() >= 20
                || v["state"] == "completed"
                || v["state"] == "failed"
        });
        let mid_copy = first["state"] == "running";
        let start = now();
        agents[0].kill9();
        std::thread::sleep(Duration::from_secs(1));
        agents[0].restart();
        report.faults.push(Fault {
            kind: "agent kill -9",
            start,
            end: now(),
        });
        if !mid_copy {
            report
                .notes
                .push("the first agent's copy had finished before its kill".into());
        }
        say("fault: kill -9 of an agent mid-copy, restarted");
        std::thread::sleep(BETWEEN_FAULTS);

        let start = now();
        proxy.kill9();
        std::thread::sleep(Duration::from_secs(1));
        proxy.spawn();
        report.faults.push(Fault {
            kind: "proxy kill -9",
            start,
            end: now(),
        });
        say("fault: kill -9 of the proxy, restarted");
        std::thread::sleep(BETWEEN_FAULTS);

        let before = served_days(&proxy, &agents[0], &format!("127.0.0.1:{https}"), &ca.ca)?;
        let start = now();
        std::fs::write(certs.join("s3.pem"), ca.leaf_pem(&[HOST], -1..60)?)?;
        proxy.hup();
        std::thread::sleep(Duration::from_secs(1));
        let after = served_days(&proxy, &agents[0], &format!("127.0.0.1:{https}"), &ca.ca)?;
        report.faults.push(Fault {
            kind: "certificate replaced",
            start,
            end: now(),
        });
        ensure!(
            before != after,
            "the proxy serves the old certificate after a reload ({before})"
        );
        say(&format!(
            "fault: certificate replaced and reloaded: served validity {before} -> {after}"
        ));

        if opts.source.keeps_data_across_restart() {
            let start = now();
            source.stop();
            std::thread::sleep(Duration::from_secs(10));
            source.restart()?;
            report.faults.push(Fault {
                kind: "source down 10 s",
                start,
                end: now(),
            });
            say("fault: the source stopped for 10 s in migrate mode, restarted");
        } else {
            report.notes.push(format!(
                "{}: loses its data on a restart; the source-down fault needs a Garage source",
                opts.source
            ));
        }
    }

    // The copies end; keys that failed (the source was down) are retried,
    // as the runbook says.
    for (share, (agent, id)) in agents.iter().zip(&jobs).enumerate() {
        let mut view = wait_stopped(agent, *id);
        report.copied += copied(&view);
        let mut tries = 0;
        while view["state"] == "failed" {
            tries += 1;
            ensure!(
                tries <= 3,
                "job {id} still fails after {tries} retries: {view:#}"
            );
            report.retried += view["passes"]
                .as_array()
                .and_then(|p| p.last())
                .and_then(|p| p["objects"]["fail"].as_u64())
                .unwrap_or(0);
            let retry = ctl(&proxy, agent, &["job", "retry", &view["id"].to_string()])?;
            let rid = retry["id"].as_u64().context("job retry gave no id")?;
            view = wait_stopped(agent, rid);
            report.copied += copied(&view);
        }
        say(&format!(
            "agent {share}, copy job {id}: {}",
            view["progress"].as_str().unwrap_or("done")
        ));
    }
    // Clients keep going a little after the copy, then stop.
    std::thread::sleep(Duration::from_secs(3));
    let ledger = clients.finish(d)?;
    say("clients stopped");

    // Phase 4: verify, detach. Each agent verifies its own hash share (its
    // copy job's records tell the copier's writes from the clients'); a
    // share's pass is not recorded on the bucket, so detach is forced once
    // both have passed (docs/ferryctl.md, "verify").
    let mut verified = true;
    for agent in &agents {
        let (ok, v) = ctl_answer(&proxy, agent, &["verify", BUCKET])?;
        say(&format!(
            "phase 4: ferryctl verify, share {}: ok={ok}: {} keys checked, problems {}, client writes {} + {} new",
            v["share"],
            v["verify"]["checked"],
            v["verify"]["problems_by_class"],
            v["verify"]["client_newer"],
            v["verify"]["client_new"]
        ));
        if !ok {
            verified = false;
            report
                .mismatches
                .push(format!("ferryctl verify failed: {v}"));
        }
    }
    if verified {
        ctl(
            &proxy,
            &agents[0],
            &["s3", "bucket", "migrate", "detach", BUCKET, "--force"],
        )?;
        say("detached: the bucket is the target's alone");
    } else {
        say("verify failed: the bucket stays attached");
    }
    if let Some(keep) = &opts.keep {
        std::fs::create_dir_all(keep)?;
        std::fs::write(
            keep.join("proxy-metrics.txt"),
            crate::proxy::scrape(metrics),
        )?;
        std::fs::copy(proxy.dir.path().join("proxy.log"), keep.join("proxy.log"))?;
        for (i, a) in agents.iter().enumerate() {
            std::fs::copy(&a.log, keep.join(format!("agent-{i}.log")))?;
        }
        std::fs::copy(d.join("load.log"), keep.join("clients.log"))?;
        std::fs::write(keep.join("ledger.json"), ledger.to_string())?;
    }
    drop(agents);
    drop(proxy);

    judge(&ledger, &mut report)?;
    report.on_target = compare_target(&rt, &target, &ledger, &seed_sums, &mut report)?;
    report.seconds = began.elapsed().as_secs_f64();
    Ok(report)
}

/// The ledger's own findings: operations, reads, errors against faults.
fn judge(ledger: &serde_json::Value, report: &mut Report) -> anyhow::Result<()> {
    for (op, n) in ledger["ops"].as_object().context("ledger has no ops")? {
        report.ops.insert(op.clone(), n.as_u64().unwrap_or(0));
    }
    let list = |field: &str| ledger[field].as_array().cloned().unwrap_or_default();
    for e in list("errors") {
        if !report.in_fault(&e) {
            report.unaccounted.push(e.to_string());
        }
    }
    for e in list("false_404") {
        // rclone takes a HEAD that failed (the proxy down) for a missing
        // file (its S3 backend's NewFs): its "absent" during a fault is an
        // error of that fault; outside every fault it is a false 404.
        let rclone = e["worker"]
            .as_str()
            .is_some_and(|w| w.starts_with("rclone"));
        if !(rclone && report.in_fault(&e)) {
            report.false_404.push(e.to_string());
        }
    }
    report
        .wrong_content
        .extend(list("wrong_content").iter().map(|v| v.to_string()));
    Ok(())
}

/// Reads every object of the target directly and compares it with what
/// the ledger says each key holds (a seed key nobody touched: the seed);
/// the number of objects found.
fn compare_target(
    rt: &tokio::runtime::Runtime,
    target: &Store,
    ledger: &serde_json::Value,
    seed: &BTreeMap<String, String>,
    report: &mut Report,
) -> anyhow::Result<u64> {
    // Each key: the states it may be in (None: absent).
    let mut expect: BTreeMap<String, Vec<Option<String>>> = seed
        .iter()
        .map(|(k, v)| (k.clone(), vec![Some(v.clone())]))
        .collect();
    for (k, v) in ledger["keys"].as_object().context("ledger has no keys")? {
        let states = match v {
            serde_json::Value::Null => vec![None],
            serde_json::Value::String(s) => vec![Some(s.clone())],
            other => {
                report.uncertain += 1;
                other["either"]
                    .as_array()
                    .context("a ledger state")?
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect()
            }
        };
        expect.insert(k.clone(), states);
    }
    let client = target.client();
    let keys = rt.block_on(crate::list_keys(&client, BUCKET))?;
    let found: BTreeMap<String, String> = rt.block_on(async {
        futures::stream::iter(keys.iter().cloned())
            .map(|k| {
                let client = client.clone();
                async move {
                    let b = crate::get_bytes(&client, BUCKET, &k).await?;
                    anyhow::Ok((k, sha(&b)))
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()
    })?;
    for (k, states) in &expect {
        let got = found.get(k).cloned();
        if !states.contains(&got) {
            report.mismatches.push(format!(
                "{k}: on the target {}, the ledger says {states:?}",
                got.as_deref().unwrap_or("absent")
            ));
        } else if got.is_some() {
            report.expected += 1;
        }
    }
    for k in found.keys().filter(|k| !expect.contains_key(*k)) {
        report
            .mismatches
            .push(format!("{k}: on the target, in no ledger"));
    }
    Ok(found.len() as u64)
}
