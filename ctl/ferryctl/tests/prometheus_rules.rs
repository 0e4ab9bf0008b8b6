//! packaging/prometheus, tested for real: Prometheus from Debian's package
//! on 127.0.0.1 runs the shipped scrape config (its targets pointed at this
//! test's proxy and agent) and the shipped alert rules, while a migration
//! meets the faults the rules are about (a source that stops mid-copy, so
//! reads fall back and fail and the copy fails keys; a certificate served).
//! Every rule must load and evaluate, and every metric a rule names must be
//! scraped: a rule that names a missing metric fails the test. Every panel
//! of the Grafana dashboards (packaging/grafana) is asked as Grafana asks
//! it, a range query, and must return data.

use std::process::Command;
use std::time::{Duration, Instant};

use ferry_harness::agent::{Agent, live_copy_args, secret_file};
use ferry_harness::prometheus::{PROMTOOL, Prometheus, shipped_config};
use ferry_harness::proxy::Proxy;
use ferry_harness::s3migrate::{data, garage_source, rt};
use ferry_harness::tls::TestIssuer;
use ferry_harness::{Store, free_port};

const BUCKET: &str = "photos";
const JOURNAL: &str = "ferry-journal";
const KEYS: u64 = 400;

fn packaging(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging/prometheus")
        .join(file)
}

/// Every panel of a shipped dashboard: its title and its queries, with the
/// dashboard's variables set to All (`.*`), as Grafana sends them.
fn panels(dashboard: &str) -> Vec<(String, Vec<String>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging/grafana")
        .join(dashboard);
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for field in ["title", "uid", "panels", "templating", "schemaVersion"] {
        assert!(!d[field].is_null(), "{dashboard}: no {field}");
    }
    let vars: Vec<String> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("${}", v["name"].as_str().unwrap()))
        .collect();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let title = p["title"].as_str().unwrap().to_owned();
            assert!(!p["gridPos"].is_null(), "{dashboard}: {title}: no gridPos");
            let exprs: Vec<String> = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{dashboard}: {title}: no targets"))
                .iter()
                .map(|t| {
                    let mut e = t["expr"].as_str().unwrap().to_owned();
                    for v in &vars {
                        e = e.replace(v.as_str(), ".*");
                    }
                    e
                })
                .collect();
            assert!(!exprs.is_empty(), "{dashboard}: {title}: no query");
            (title, exprs)
        })
        .collect()
}

/// The metric names (`ferry_…`) in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names: Vec<String> = expr
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ferry_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_shipped_rules_load_evaluate_and_name_only_scraped_metrics() {
    let check = Command::new(PROMTOOL)
        .args(["check", "rules"])
        .arg(packaging("ferry-alerts.yml"))
        .output()
        .expect("promtool (Debian's prometheus package; scripts/setup installs it)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let rt = rt();
    let mut source = garage_source(
        BUCKET,
        (0..KEYS).map(|i| (format!("p/{i:04}"), data(i, 512))),
    );
    let target = Store::moto().unwrap();
    target.create_bucket(BUCKET).unwrap();
    target.create_bucket(JOURNAL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestIssuer::new(dir.path(), "rules").unwrap();
    let certs = ca.cert_dir(dir.path(), &["s3.ferry.test"], -1..10).unwrap();
    let (proxy_metrics, agent_metrics, https) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let proxy = Proxy::start_with(
        &target,
        BUCKET,
        &format!(
            "https_addr = \"127.0.0.1:{https}\"\ncert_dir = \"{}\"\njournal_bucket = \"{JOURNAL}\"\n\
             metrics_addr = \"127.0.0.1:{proxy_metrics}\"\n",
            certs.display()
        ),
    );
    let agent = Agent::start(&format!("metrics_addr = \"127.0.0.1:{agent_metrics}\"\n"));
    let mut prometheus =
        Prometheus::start(&shipped_config(proxy_metrics, &[agent_metrics])).unwrap();
    let started = Instant::now();

    proxy.attach(BUCKET, &source);
    proxy.set_mode(BUCKET, "forward");
    proxy.set_mode(BUCKET, "migrate");
    let client = proxy.client(&source.region);
    // A GET of `key` through the proxy: Ok, or the HTTP status it failed
    // with.
    let get = |key: &str| {
        rt.block_on(client.get_object().bucket(BUCKET).key(key).send())
            .map(drop)
            .map_err(|e| e.raw_response().map(|r| r.status().as_u16()))
    };
    assert_eq!(get("p/0001"), Ok(()), "a read falls back to the source");

    // A slow copy, whose source stops under it: failed keys.
    let src_secret = secret_file(dir.path(), "src.secret", &source.secret_key);
    let dst_secret = secret_file(dir.path(), "dst.secret", &target.secret_key);
    let mut copy = live_copy_args(
        &source,
        (&source.access_key, &src_secret),
        &target,
        &dst_secret,
        BUCKET,
        JOURNAL,
    );
    copy.extend(
        [
            "--json",
            "--max-requests-per-sec",
            "100",
            "--threads",
            "4",
            "--retries",
            "2",
        ]
        .map(str::to_owned),
    );
    let job = agent
        .ferryctl(&copy.iter().map(String::as_str).collect::<Vec<_>>())
        .ok()
        .json();
    let id = job["id"].as_u64().unwrap();
    // Long enough for a few scrapes of a running copy (its rate, its ETA).
    agent.wait_log_lines(id, 150);
    source.stop();
    agent.wait_state(id, "failed", Duration::from_secs(180));
    // A key the copy reached is read from the target now.
    assert_eq!(
        get("p/0001"),
        Ok(()),
        "a copied key is served by the target"
    );
    // A request the proxy refuses itself, and a TLS handshake.
    let stranger = aws_sdk_s3::Client::from_conf(
        client
            .config()
            .to_builder()
            .credentials_provider(aws_credential_types::Credentials::new(
                "GKnobody", "wrong", None, None, "test",
            ))
            .build(),
    );
    rt.block_on(stranger.head_bucket().bucket(BUCKET).send())
        .expect_err("an unknown key is refused");
    let tls = Command::new(env!("CARGO_BIN_EXE_ferryctl"))
        .args(["check", "tls", &format!("127.0.0.1:{https}"), "--names"])
        .arg("s3.ferry.test")
        .arg("--ca-file")
        .arg(&ca.ca)
        .output()
        .unwrap();
    assert!(
        tls.status.success(),
        "{}",
        String::from_utf8_lossy(&tls.stdout)
    );
    // The source is down: a read of a key not copied yet answers 503.
    assert_eq!(get("p/0399"), Err(Some(503)), "never a false 404");

    let rules_file = std::fs::read_to_string(packaging("ferry-alerts.yml")).unwrap();
    let shipped = rules_file.matches("- alert:").count();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<String>;
    let mut unhealthy: Vec<String>;
    loop {
        let rules = prometheus.api("rules").unwrap();
        let loaded: Vec<serde_json::Value> = rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .collect();
        assert_eq!(loaded.len(), shipped, "{rules:#}");
        unhealthy = loaded
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        missing = Vec::new();
        for r in &loaded {
            let expr = r["query"].as_str().unwrap();
            let answer = prometheus.query(expr).unwrap();
            assert_eq!(answer["status"], "success", "{expr}: {answer:#}");
            for name in metric_names(expr) {
                let series = prometheus.query(&name).unwrap();
                if series["data"]["result"]
                    .as_array()
                    .is_none_or(|a| a.is_empty())
                {
                    missing.push(format!("{}: {name}", r["name"]));
                }
            }
        }
        if (missing.is_empty() && unhealthy.is_empty()) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        unhealthy.is_empty(),
        "rules that do not evaluate: {unhealthy:?}"
    );
    assert!(
        missing.is_empty(),
        "rules name metrics never scraped: {missing:?}"
    );

    // Each dashboard panel, over the whole run; a rate needs two scrapes
    // after its counter's first event, hence the retries.
    let mut queries: Vec<(String, String)> = Vec::new();
    for dashboard in ["ferry-proxy.json", "ferry-migration.json"] {
        for (title, exprs) in panels(dashboard) {
            queries.extend(
                exprs
                    .into_iter()
                    .map(|e| (format!("{dashboard}: {title}"), e)),
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let empty = loop {
        let run = started.elapsed().as_secs() + 5;
        let mut empty = Vec::new();
        for (panel, expr) in &queries {
            let answer = prometheus.query_range(expr, run).unwrap();
            assert_eq!(answer["status"], "success", "{panel}: {expr}: {answer:#}");
            if answer["data"]["result"]
                .as_array()
                .is_none_or(|a| a.is_empty())
            {
                empty.push(format!("{panel}: {expr}"));
            }
        }
        if empty.is_empty() || Instant::now() > deadline {
            break empty;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert!(empty.is_empty(), "panels without data: {empty:#?}");

    // The copy failed keys: the failures alert's condition holds, for this
    // job by its id (the agent's `job_id`; Prometheus owns `job`).
    let rules = prometheus.api("rules").unwrap();
    let rule = |name: &str| -> String {
        rules["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no rule {name}"))["query"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let failures = prometheus.query(&rule("FerryCopyFailures")).unwrap();
    assert_eq!(
        failures["data"]["result"][0]["metric"]["job_id"],
        id.to_string(),
        "{failures:#}"
    );

    // The certificate alert's own arithmetic: the served certificate ends
    // within 10 days, so the rule's condition holds.
    let soon = prometheus
        .query(&rule("FerryCertificateExpiringSoon"))
        .unwrap();
    assert_eq!(
        soon["data"]["result"][0]["metric"]["file"], "s3.pem",
        "{soon:#}"
    );
}
