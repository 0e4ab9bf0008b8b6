//! `bench-plan`: the CPU ferry-proxy spends on a request besides what
//! Pingora spends forwarding it, phase by phase, in this process with no
//! network: the plan (parse, route, SigV4 verify, grant), the upstream
//! rewrite (re-sign), and the request's metrics with the proxy's own
//! Prometheus recorder installed. On shared cores, per-request CPU
//! measured across processes moves by ±20% between runs; this does not.
//!
//!   bench-plan [--iterations N]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use ferry_control::Mode;
use ferry_proxy::attached::{Attached, Directory};
use ferry_proxy::plan::{self, Env, Plan, Settings};
use ferry_proxy::resign::{RequestLine, UpstreamCreds, canonical_target, sign_request};
use ferry_proxy::sigv4::{self, RequestView};
use ferry_proxy::upstream::Upstream;
use pingora::http::RequestHeader;

// ferry-proxy's allocator: what is timed here is its code as it runs there.
#[global_allocator]
static ALLOCATOR: ferry_proxy::Allocator = ferry_proxy::Allocator {};

#[derive(Parser)]
#[command(
    name = "bench-plan",
    about = "ferry-proxy's own CPU per request, phase by phase, without the network"
)]
struct Args {
    /// Requests timed per phase.
    #[arg(long, default_value_t = 200_000)]
    iterations: u32,
}

const KEY: &str = "GKbenchclient";
const SECRET: &str = "bench-client-secret";
const BUCKET: &str = "bench-ready";

/// One user with write on one bucket, attached in ready mode.
struct Table {
    bucket: Arc<Attached>,
}

impl Directory for Table {
    fn attached(&self, bucket: &str) -> Option<Arc<Attached>> {
        (bucket == BUCKET).then(|| self.bucket.clone())
    }

    fn secret(&self, access_key: &str) -> Option<String> {
        (access_key == KEY).then(|| SECRET.to_owned())
    }

    fn allowed(&self, access_key: &str, bucket: &str, _write: bool) -> bool {
        access_key == KEY && bucket == BUCKET
    }
}

fn creds(access_key: &str, secret: &str) -> UpstreamCreds {
    UpstreamCreds {
        access_key: access_key.into(),
        secret: secret.into(),
        region: "garage".into(),
    }
}

/// A request as aws-sdk-s3 sends it (its headers, path style), signed
/// by the bench's user now.
fn client_request(method: &str, path: &str, payload: &str) -> RequestHeader {
    let host = "127.0.0.1:8080";
    let base = [
        ("host", host),
        ("user-agent", "aws-sdk-rust/1.3 os/linux lang/rust/1.90"),
        ("x-amz-user-agent", "aws-sdk-rust/1.3 api/s3/1.100 os/linux"),
        (
            "amz-sdk-invocation-id",
            "0f6f4a5e-3c1e-4b8e-9a53-52c0e2f4d3a1",
        ),
        ("amz-sdk-request", "attempt=1; max=1"),
    ];
    let target = canonical_target(path, "").expect("a plain path");
    let line = RequestLine {
        method,
        target: &target,
    };
    let signed = sign_request(
        &line,
        &base,
        payload,
        &creds(KEY, SECRET),
        SystemTime::now(),
    )
    .expect("sign");
    let mut req = RequestHeader::build(method, path.as_bytes(), None).expect("request line");
    for (n, v) in base {
        req.append_header(n, v).expect("header");
    }
    for (n, v) in signed {
        req.append_header(n, v).expect("header");
    }
    req
}

/// Time per call of `f`: the best of 5 batches of `n / 5` calls, after a
/// warm-up. The best, because on shared cores the other batches measure
/// who else ran.
fn per_call(n: u32, mut f: impl FnMut()) -> Duration {
    let batch = (n / 5).max(1);
    for _ in 0..batch {
        f();
    }
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed() / batch
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let args = Args::parse();
    // The recorder the proxy installs (its exporter is never polled here).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _exporter = rt
        .block_on(async { ferry_proxy::metrics::install("127.0.0.1:0".parse().expect("addr")) })
        .expect("metrics recorder");
    let settings = Settings {
        target: Upstream::from_url("http://127.0.0.1:3900").expect("url"),
        target_creds: Arc::new(creds("GKtarget", "target-secret")),
        s3_domains: vec![],
        max_clock_skew_secs: 900,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(60),
    };
    let table = Table {
        bucket: Arc::new(Attached {
            mode: Mode::Ready,
            source: Upstream::from_url("http://127.0.0.1:3901").expect("url"),
            source_bucket: BUCKET.into(),
            source_creds: Arc::new(creds("GKsource", "source-secret")),
            source_uploads: Arc::from([]),
            generation: 1,
            blocked: false,
        }),
    };
    let empty_sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let body_sha = "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
    let n = args.iterations;
    println!(
        "| request | plan (parse, route, verify, grant) µs | of which SigV4 verify µs | rewrite (re-sign) µs | header clone µs (in rewrite) | metrics µs | total µs |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for (name, method, payload) in [
        ("HEAD", "HEAD", empty_sha),
        ("GET", "GET", empty_sha),
        ("PUT (4 KiB, signed SHA-256)", "PUT", body_sha),
    ] {
        let req = client_request(method, &format!("/{BUCKET}/seed/00001"), payload);
        let env = Env {
            settings: &settings,
            directory: &table,
            journal: None,
            now: time::OffsetDateTime::now_utc(),
        };
        let plan_t = per_call(n, || {
            std::hint::black_box(plan::plan(&env, std::hint::black_box(&req)));
        });
        let headers: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let view: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let request_view = RequestView {
            method,
            raw_path: req.uri.path(),
            raw_query: "",
            headers: &view,
        };
        let verify_t = per_call(n, || {
            let out = sigv4::verify(
                std::hint::black_box(&request_view),
                |k| table.secret(k),
                env.now,
                900,
            );
            assert!(out.is_ok(), "the bench's request must verify");
        });
        let planned = plan::plan(&env, &req);
        let Ok((Plan::Resign { out, .. }, _)) = planned.result else {
            panic!("a ready-mode request must plan to a re-signed one");
        };
        let clone_t = per_call(n, || {
            std::hint::black_box(req.clone());
        });
        let rewrite_t = per_call(n, || {
            let mut up = req.clone();
            out.rewrite(&mut up, false).expect("rewrite");
            std::hint::black_box(up);
        });
        let metrics_t = per_call(n, || {
            ferry_proxy::metrics::upstream_connection("target", true);
            ferry_proxy::metrics::request(&ferry_proxy::metrics::RequestRecord {
                bucket: BUCKET,
                operation: "HeadObject",
                mode: "ready",
                upstream: "target",
                status: 200,
                elapsed: Duration::from_micros(900),
                bytes_in: 0,
                bytes_out: 4096,
            });
        });
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            us(plan_t),
            us(verify_t),
            us(rewrite_t),
            us(clone_t),
            us(metrics_t),
            us(plan_t) + us(rewrite_t) - us(clone_t) + us(metrics_t)
        );
    }
}
