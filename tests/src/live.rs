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

use crate::agent::{Agent, live_copy_args, secret_file};
use crate::prometheus::{Prometheus, draw_dashboards, shipped_config};
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
    /// Where to draw the Grafana dashboards from a Prometheus (Debian's)
    /// that scrapes this run with the shipped config (docs/dashboards/).
    pub pictures: Option<PathBuf>,
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
            pictures: None,
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
    /// The copy jobs' objects copied, and the `job retry`s and `job
    /// resume`s the failed ones needed.
    pub copied: u64,
    pub retries: u64,
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

    /// Runs `inject`, a fault, and records when it was on.
    fn fault(
        &mut self,
        kind: &'static str,
        inject: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let start = now();
        inject()?;
        self.faults.push(Fault {
            kind,
            start,
            end: now(),
        });
        Ok(())
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
            "live: copy: {} objects copied by 2 agents, {} job retries or resumes",
            self.copied, self.retries
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

/// Polls a job until a run of it after its `after`th has stopped:
/// completed, or failed (some keys failed, or the run itself); its view.
/// Says its progress line every few seconds meanwhile.
fn wait_stopped(agent: &Agent, share: usize, id: u64, after: u64) -> serde_json::Value {
    let said = std::cell::Cell::new(Instant::now());
    agent.wait_for(id, "a stop", Duration::from_secs(24 * 3600), |v| {
        let stopped = v["attempts"].as_u64().unwrap_or(0) > after
            && (v["state"] == "completed" || v["state"] == "failed");
        if stopped {
            for p in v["passes"].as_array().into_iter().flatten() {
                let o = &p["objects"];
                say(&format!(
                    "agent {share}, copy job {id}, pass {}: obj={} ign={} exist={} copied={} fail={} \
                     skip(dn={} up={}) in {:.1} s",
                    p["pass"], o["obj"], o["ign"], o["exist"], o["copied"], o["fail"],
                    o["skip_dn"], o["skip_up"], p["elapsed_secs"].as_f64().unwrap_or(0.0)
                ));
            }
            say(&format!("agent {share}, copy job {id}: {}", v["state"].as_str().unwrap_or("?")));
        } else if said.get().elapsed() >= Duration::from_secs(5) {
            said.set(Instant::now());
            say(&format!(
                "agent {share}, copy job {id}: {}",
                v["progress"].as_str().unwrap_or("starting")
            ));
        }
        stopped
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

/// What runs during the migration.
struct Rig {
    source: Store,
    target: Store,
    proxy: Proxy,
    agents: [Agent; 2],
    ca: TestIssuer,
    certs: PathBuf,
    https: u16,
    /// The proxy's and the agents' metrics ports.
    metrics: u16,
    agent_metrics: [u16; 2],
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
    let source = Store::start(opts.source)?;
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
    let mut rig = Rig::start(d, source, target)?;
    let prometheus = match &opts.pictures {
        Some(_) => Some(Prometheus::start(&shipped_config(
            rig.metrics,
            &rig.agent_metrics,
        ))?),
        None => None,
    };
    let watched = Instant::now();

    // Phase 1, ready: attached, clients still on the source.
    let attach = crate::proxy::launch::attach_args(rig.proxy.dir.path(), BUCKET, &rig.source)?;
    rig.ctl(&attach.iter().map(String::as_str).collect::<Vec<_>>())?;
    say("phase 1: attached, mode ready");
    // Phase 2, forward: DNS now points clients at the proxy.
    rig.ctl(&crate::proxy::launch::set_mode_args(BUCKET, "forward"))?;
    say("phase 2: mode forward; clients start: their requests go to the source");
    let clients = Clients::start(
        d,
        &format!("https://{HOST}:{}", rig.https),
        &rig.source.region,
        &rig.ca.ca,
        &seed_sums,
        opts.clients,
    )?;
    std::thread::sleep(Duration::from_secs(opts.forward_secs));

    // Phase 3, migrate: writes to the target, reads target first, deletes
    // to both (journalled); two agents copy a hash share each.
    rig.migrate_mode(&mut report)?;
    let jobs = rig.start_copies(d, opts.threads)?;
    if opts.faults {
        rig.inject_faults(jobs[0], &mut report)?;
    }
    rig.copy_to_the_end(&jobs, &mut report)?;
    // Clients keep going a little after the copy, then stop.
    std::thread::sleep(Duration::from_secs(3));
    let ledger = clients.finish(d)?;
    say("clients stopped");

    // Phase 4.
    rig.verify_and_detach(&mut report)?;
    if let (Some(p), Some(out)) = (&prometheus, &opts.pictures) {
        // Two more scrapes after the end.
        std::thread::sleep(Duration::from_secs(2));
        draw_dashboards(p, watched.elapsed().as_secs(), out)?;
        say(&format!(
            "dashboards drawn from Prometheus into {}",
            out.display()
        ));
    }
    if let Some(keep) = &opts.keep {
        rig.keep(keep, d, &ledger)?;
    }
    let target = rig.stop();

    judge(&ledger, &mut report)?;
    report.on_target = compare_target(&rt, &target, &ledger, &seed_sums, &mut report)?;
    report.seconds = began.elapsed().as_secs_f64();
    Ok(report)
}

impl Rig {
    /// The proxy over https in front of `target`, and two agents.
    fn start(d: &Path, source: Store, target: Store) -> anyhow::Result<Rig> {
        let ca = TestIssuer::new(d, "live")?;
        // The proxy's virtual-hosted names too (`s3_domains`).
        let names = [HOST, "s3.ferry.test", "photos.s3.ferry.test"];
        let certs = ca.cert_dir(d, &names, -1..90)?;
        let https = free_port()?;
        let metrics = free_port()?;
        let proxy = Proxy::start_with(
            &target,
            BUCKET,
            &format!(
                "https_addr = \"127.0.0.1:{https}\"\ncert_dir = \"{}\"\njournal_bucket = \"{JOURNAL}\"\n\
                 metrics_addr = \"127.0.0.1:{metrics}\"\n",
                certs.display()
            ),
        );
        let agent_metrics = [free_port()?, free_port()?];
        let agents =
            agent_metrics.map(|p| Agent::start(&format!("metrics_addr = \"127.0.0.1:{p}\"\n")));
        say(&format!(
            "ferry-proxy on https://{HOST}:{https} (metrics http://127.0.0.1:{metrics}/metrics, log {}), two ferry-agents",
            proxy.dir.path().join("proxy.log").display()
        ));
        Ok(Rig {
            source,
            target,
            proxy,
            agents,
            ca,
            certs,
            https,
            metrics,
            agent_metrics,
        })
    }

    /// A ferryctl step against the proxy (and the first agent).
    fn ctl(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        ctl(&self.proxy, &self.agents[0], args)
    }

    /// `update --mode migrate`, which first checks that the source refuses
    /// the clients' credentials.
    fn migrate_mode(&self, report: &mut Report) -> anyhow::Result<()> {
        let users = self.proxy.dir.path().join("users.toml");
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
        if !self.source.kind.checks_signatures() {
            // moto takes any credential, so the source cannot be restricted.
            update.push("--force");
            report.notes.push(format!(
                "{}: the source takes any credential; migrate mode forced",
                self.source.kind
            ));
        }
        self.ctl(&update)?;
        say("phase 3: mode migrate; two agents copy a hash share each (--hash-count 2)");
        Ok(())
    }

    /// A copy job on each agent, a hash share each; their ids.
    fn start_copies(&self, d: &Path, threads: u32) -> anyhow::Result<Vec<u64>> {
        // The copier reads the source as a user that may only read; moto
        // has no such user (it checks no credential).
        let (copier_key, copier_secret) = if self.source.kind.checks_signatures() {
            self.source.read_only_key(BUCKET)?
        } else {
            (
                self.source.access_key.clone(),
                self.source.secret_key.clone(),
            )
        };
        let source_secret = secret_file(d, "source.secret", &copier_secret);
        let target_secret = secret_file(d, "target.secret", &self.target.secret_key);
        let threads = threads.to_string();
        let mut jobs = Vec::new();
        for (share, agent) in self.agents.iter().enumerate() {
            let share = share.to_string();
            let mut copy = live_copy_args(
                &self.source,
                (&copier_key, &source_secret),
                &self.target,
                &target_secret,
                BUCKET,
                JOURNAL,
            );
            copy.extend(
                [
                    "--passes",
                    "2",
                    "--threads",
                    &threads,
                    "--hash-count",
                    "2",
                    "--hash-value",
                    &share,
                ]
                .map(str::to_owned),
            );
            let job = ctl(
                &self.proxy,
                agent,
                &copy.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            jobs.push(job["id"].as_u64().context("job start gave no id")?);
        }
        Ok(jobs)
    }

    /// The faults, one after another, while clients write and the copy
    /// runs (`first_job`: the first agent's).
    fn inject_faults(&mut self, first_job: u64, report: &mut Report) -> anyhow::Result<()> {
        // An agent killed mid-copy: its job resumes at the restart.
        let first = &self.agents[0];
        let view = first.wait_for(first_job, "progress", Duration::from_secs(600), |v| {
            first.migrate_log(first_job).len() >= 20
                || v["state"] == "completed"
                || v["state"] == "failed"
        });
        if view["state"] != "running" {
            report
                .notes
                .push("the first agent's copy had finished before its kill".into());
        }
        let agent = &mut self.agents[0];
        report.fault("agent kill -9", || {
            agent.kill9();
            std::thread::sleep(Duration::from_secs(1));
            agent.restart();
            Ok(())
        })?;
        say("fault: kill -9 of an agent mid-copy, restarted");
        std::thread::sleep(BETWEEN_FAULTS);

        let proxy = &mut self.proxy;
        report.fault("proxy kill -9", || {
            proxy.kill9();
            std::thread::sleep(Duration::from_secs(1));
            proxy.spawn();
            Ok(())
        })?;
        say("fault: kill -9 of the proxy, restarted");
        std::thread::sleep(BETWEEN_FAULTS);

        let served = |rig: &Rig| {
            served_days(
                &rig.proxy,
                &rig.agents[0],
                &format!("127.0.0.1:{}", rig.https),
                &rig.ca.ca,
            )
        };
        let before = served(self)?;
        report.fault("certificate replaced", || {
            std::fs::write(
                self.certs.join("s3.pem"),
                self.ca.leaf_pem(&[HOST], -1..60)?,
            )?;
            self.proxy.hup();
            std::thread::sleep(Duration::from_secs(1));
            Ok(())
        })?;
        let after = served(self)?;
        ensure!(
            before != after,
            "the proxy serves the old certificate after a reload ({before})"
        );
        say(&format!(
            "fault: certificate replaced and reloaded: served validity {before} -> {after}"
        ));
        std::thread::sleep(BETWEEN_FAULTS);

        if self.source.kind.keeps_data_across_restart() {
            let source = &mut self.source;
            report.fault("source down 10 s", || {
                source.stop();
                std::thread::sleep(Duration::from_secs(10));
                source.restart()
            })?;
            say("fault: the source stopped for 10 s in migrate mode, restarted");
        } else {
            report.notes.push(format!(
                "{}: loses its data on a restart; the source-down fault needs a Garage source",
                self.source.kind
            ));
        }
        Ok(())
    }

    /// Waits for the copies. A job that failed is taken up again as the
    /// runbook says: `job retry` copies again the keys that failed (the
    /// source was down for them); a run that failed as a whole (the source
    /// went down under its listing) is resumed from its watermark with
    /// `job resume`.
    fn copy_to_the_end(&self, jobs: &[u64], report: &mut Report) -> anyhow::Result<()> {
        for (share, (agent, id)) in self.agents.iter().zip(jobs).enumerate() {
            let mut view = wait_stopped(agent, share, *id, 0);
            report.copied += copied(&view);
            let mut tries = 0;
            while view["state"] == "failed" {
                tries += 1;
                ensure!(
                    tries <= 3,
                    "job {id} still fails after {tries} retries: {view:#}"
                );
                report.retries += 1;
                let job = view["id"].as_u64().context("a job view without an id")?;
                let failed_keys = view["passes"]
                    .as_array()
                    .and_then(|p| p.last())
                    .and_then(|p| p["objects"]["fail"].as_u64())
                    .unwrap_or(0);
                view = if failed_keys > 0 {
                    let retry = ctl(&self.proxy, agent, &["job", "retry", &job.to_string()])?;
                    let rid = retry["id"].as_u64().context("job retry gave no id")?;
                    wait_stopped(agent, share, rid, 0)
                } else {
                    say(&format!(
                        "agent {share}, copy job {job} failed as a whole ({}): resumed",
                        view["last_error"].as_str().unwrap_or("no error given")
                    ));
                    let attempts = view["attempts"].as_u64().unwrap_or(0);
                    ctl(&self.proxy, agent, &["job", "resume", &job.to_string()])?;
                    wait_stopped(agent, share, job, attempts)
                };
                report.copied += copied(&view);
            }
        }
        Ok(())
    }

    /// Phase 4. Each agent verifies its own hash share (its copy job's
    /// records tell the copier's writes from the clients'); each pass is
    /// recorded on the bucket, and once both shares have passed, detach
    /// goes without --force.
    fn verify_and_detach(&self, report: &mut Report) -> anyhow::Result<()> {
        let mut verified = true;
        for agent in &self.agents {
            let (ok, v) = ctl_answer(&self.proxy, agent, &["verify", BUCKET])?;
            say(&format!(
                "phase 4: ferryctl verify, share {}: ok={ok}: {} keys checked, problems {}, client writes {} + {} new; bucket verified: {}",
                v["share"],
                v["verify"]["checked"],
                v["verify"]["problems_by_class"],
                v["verify"]["client_newer"],
                v["verify"]["client_new"],
                v["bucket_verified"]
            ));
            if !ok {
                verified = false;
                report
                    .mismatches
                    .push(format!("ferryctl verify failed: {v}"));
            }
        }
        if verified {
            self.ctl(&["s3", "bucket", "migrate", "detach", BUCKET])?;
            say("detached: the bucket is the target's alone");
        } else {
            say("verify failed: the bucket stays attached");
        }
        Ok(())
    }

    /// Keeps the logs, the proxy's metrics and the ledger in `keep`.
    fn keep(&self, keep: &Path, d: &Path, ledger: &serde_json::Value) -> anyhow::Result<()> {
        std::fs::create_dir_all(keep)?;
        std::fs::write(
            keep.join("proxy-metrics.txt"),
            crate::proxy::scrape(self.metrics),
        )?;
        std::fs::copy(
            self.proxy.dir.path().join("proxy.log"),
            keep.join("proxy.log"),
        )?;
        for (i, a) in self.agents.iter().enumerate() {
            std::fs::copy(&a.log, keep.join(format!("agent-{i}.log")))?;
        }
        std::fs::copy(d.join("load.log"), keep.join("clients.log"))?;
        std::fs::write(keep.join("ledger.json"), ledger.to_string())?;
        Ok(())
    }

    /// Stops all but the target, which alone is read from now on.
    fn stop(self) -> Store {
        self.target
    }
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
