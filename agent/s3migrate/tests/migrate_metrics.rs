//! `--metrics-addr`: a Prometheus endpoint with throughput, object counts
//! and remaining objects, scraped while a copy runs.

use ferry_harness::s3migrate as common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use ferry_harness::{StoreKind, put_objects};

fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_endpoint_reports_progress_while_copying() {
    let (src, dest) = pair(StoreKind::Moto, StoreKind::Moto);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("df");
    let lists = tmp.path().join("lists");
    let rt = rt();
    let keys: Vec<String> = (0..600).map(|i| format!("m/{i:04}")).collect();
    rt.block_on(put_objects(
        &src.client(),
        "src-bucket",
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), data(i as u64, 512))),
        8,
    ))
    .unwrap();
    write_key_list(&lists, &keys);
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut c = s3migrate(&src, "src-bucket", &dest, "dest-bucket", &folder);
    c.arg("--src-folder").arg(&lists).args([
        "--metrics-addr",
        &addr,
        "--max-requests-per-sec",
        "200",
    ]);
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut mid_run = None;
    while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        if let Some(text) = scrape(&addr) {
            let copied = value(&text, "ferry_migrate_objects{result=\"copied\"}").unwrap_or(0.0);
            let remaining = value(&text, "ferry_migrate_remaining_objects").unwrap_or(0.0);
            if copied > 0.0 && remaining > 0.0 {
                mid_run = Some(text);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let text = mid_run.expect("no mid-run scrape showed copied > 0 and remaining > 0");
    let copied = value(&text, "ferry_migrate_objects{result=\"copied\"}").unwrap();
    let remaining = value(&text, "ferry_migrate_remaining_objects").unwrap();
    assert!(copied + remaining <= 600.0, "{copied} + {remaining}");
    assert!(value(&text, "ferry_migrate_objects_per_second").unwrap() > 0.0);
    assert!(value(&text, "ferry_migrate_bytes{direction=\"upload\"}").unwrap() > 0.0);
    assert_eq!(value(&text, "ferry_migrate_pass"), Some(1.0));
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
