//! The admin API in-process: `Admin::serve` on a temp socket, driven by the
//! real control-API client (`ferry_control::Client`). The end-to-end tests with
//! the `ferryctl` binary are in `ctl/ferryctl/tests/`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ferry_control::{AttachRequest, Client, ClientError, Mode, Selector, UpdateRequest, codes};
use ferry_proxy::admin::{self, Admin, NoCheck, SourceCheck};
use ferry_proxy::state::{Bucket, BucketTable, FileStore, StateError, StateStore};

const SECRET: &str = "admin-api-secret-Kp3";

/// A FileStore whose saves can be made to fail.
struct FlakyStore {
    inner: FileStore,
    fail: Arc<AtomicBool>,
}

impl StateStore for FlakyStore {
    fn load(&self) -> Result<BucketTable, StateError> {
        self.inner.load()
    }
    fn save(&self, t: &BucketTable) -> Result<(), StateError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StateError::Io {
                path: self.inner.path().to_owned(),
                op: "write",
                source: std::io::Error::other("disk on fire"),
            });
        }
        self.inner.save(t)
    }
}

/// Refuses every source, to see that a refused check attaches nothing.
struct RefuseAll;

#[async_trait]
impl SourceCheck for RefuseAll {
    async fn check(&self, b: &Bucket) -> Result<(), String> {
        Err(format!("no source bucket {} here", b.source_bucket))
    }

    async fn uploads(&self, b: &Bucket) -> Result<Vec<ferry_proxy::state::SourceUpload>, String> {
        Err(format!("no source bucket {} here", b.source_bucket))
    }
}

struct Server {
    admin: Arc<Admin>,
    client: Client,
    state_file: PathBuf,
    fail_saves: Arc<AtomicBool>,
    _rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Server::start_with(Box::new(NoCheck))
    }

    fn start_with(check: Box<dyn SourceCheck>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("state.json");
        let socket = dir.path().join("admin.sock");
        let fail_saves = Arc::new(AtomicBool::new(false));
        let store = FlakyStore {
            inner: FileStore::new(&state_file),
            fail: fail_saves.clone(),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let admin = Arc::new(Admin::new(Box::new(store), check, "ferry").unwrap());
        let listener = {
            let _in_runtime = rt.enter();
            admin::bind(&socket, "ferry").unwrap()
        };
        rt.spawn(admin.clone().serve(listener));
        Server {
            admin,
            client: Client::new(&socket),
            state_file,
            fail_saves,
            _rt: rt,
            dir,
        }
    }

    fn reloaded(&self) -> BucketTable {
        FileStore::new(&self.state_file).load().unwrap()
    }

    #[track_caller]
    fn assert_persisted(&self) {
        assert_eq!(self.reloaded(), *self.admin.table());
    }
}

fn attach_req(bucket: &str, url: &str) -> AttachRequest {
    AttachRequest {
        bucket: bucket.into(),
        source_url: url.into(),
        source_bucket: None,
        source_region: None,
        access_key: "AKSRC".into(),
        secret: SECRET.into(),
        tls_cert_pem: None,
    }
}

fn set_mode(s: &Server, bucket: &str, mode: Mode, force: bool) -> Result<(), ClientError> {
    s.client
        .update(&UpdateRequest {
            mode,
            selector: Selector::Bucket(bucket.into()),
            force,
        })
        .map(drop)
}

#[track_caller]
fn api_code(r: Result<impl std::fmt::Debug, ClientError>) -> (String, String) {
    match r {
        Err(ClientError::Api { error, .. }) => (error.code, error.message),
        other => panic!("expected an API refusal, got {other:?}"),
    }
}

#[test]
fn client_drives_the_whole_lifecycle_and_every_step_is_saved() {
    let s = Server::start();
    assert!(s.client.list().unwrap().is_empty());

    let v = s
        .client
        .attach(&attach_req("photos", "http://127.0.0.1:9000/"))
        .unwrap();
    assert_eq!(v.mode, Mode::Ready);
    assert_eq!(v.source_url, "http://127.0.0.1:9000");
    assert_eq!(s.client.show("photos").unwrap(), v);
    s.assert_persisted();

    for mode in [Mode::Forward, Mode::Migrate] {
        set_mode(&s, "photos", mode, false).unwrap();
        assert_eq!(s.client.show("photos").unwrap().mode, mode);
        s.assert_persisted();
    }
    // The migrate-mode upload snapshot is a hook for now: empty.
    assert_eq!(s.client.show("photos").unwrap().source_uploads_open, 0);
    assert!(s.admin.table().buckets["photos"].source_uploads.is_empty());

    let (code, msg) = api_code(s.client.detach("photos", false));
    assert_eq!(code, codes::DETACH_REFUSED);
    assert!(msg.contains("verify"), "{msg}");
    let gone = s.client.detach("photos", true).unwrap();
    assert_eq!(gone.mode, Mode::Migrate);
    assert!(s.client.list().unwrap().is_empty());
    s.assert_persisted();
    let (code, _) = api_code(s.client.show("photos"));
    assert_eq!(code, codes::NO_SUCH_BUCKET);
}

#[test]
fn the_secret_is_never_in_an_answer() {
    let s = Server::start();
    s.client
        .attach(&attach_req("photos", "http://127.0.0.1:9000"))
        .unwrap();
    for path in ["/v1/buckets", "/v1/buckets/photos"] {
        let raw = s.client.call_raw("GET", path, None).unwrap();
        assert_eq!(raw.status, 200);
        let body = String::from_utf8(raw.body).unwrap();
        assert!(!body.contains(SECRET) && !body.contains("secret"), "{body}");
    }
    // Attach and detach answers too.
    let raw = s
        .client
        .call_raw(
            "POST",
            "/v1/buckets",
            Some(&serde_json::to_vec(&attach_req("other", "http://127.0.0.1:9000")).unwrap()),
        )
        .unwrap();
    assert_eq!(raw.status, 201);
    assert!(!String::from_utf8_lossy(&raw.body).contains(SECRET));
    let raw = s
        .client
        .call_raw("DELETE", "/v1/buckets/other", None)
        .unwrap();
    assert_eq!(raw.status, 200);
    assert!(!String::from_utf8_lossy(&raw.body).contains(SECRET));
}

#[test]
fn a_failed_save_answers_500_and_leaves_the_table_unchanged() {
    let s = Server::start();
    s.client
        .attach(&attach_req("photos", "http://127.0.0.1:9000"))
        .unwrap();
    let before = s.admin.table();
    s.fail_saves.store(true, Ordering::SeqCst);

    let r = set_mode(&s, "photos", Mode::Forward, false);
    let Err(ClientError::Api { status, error }) = r else {
        panic!("expected a refusal, got {r:?}");
    };
    assert_eq!(status, 500);
    assert_eq!(error.code, codes::STATE_SAVE_FAILED);
    assert!(error.message.contains("disk on fire"), "{error:?}");
    assert!(error.message.contains("nothing changed"), "{error:?}");

    let (code, _) = api_code(
        s.client
            .attach(&attach_req("more", "http://127.0.0.1:9000")),
    );
    assert_eq!(code, codes::STATE_SAVE_FAILED);
    let (code, _) = api_code(s.client.detach("photos", false));
    assert_eq!(code, codes::STATE_SAVE_FAILED);

    assert!(Arc::ptr_eq(&before, &s.admin.table()), "table not swapped");
    assert_eq!(s.client.show("photos").unwrap().mode, Mode::Ready);
    s.assert_persisted();

    s.fail_saves.store(false, Ordering::SeqCst);
    set_mode(&s, "photos", Mode::Forward, false).unwrap();
    s.assert_persisted();
}

#[test]
fn readers_keep_their_snapshot_across_a_change() {
    let s = Server::start();
    s.client
        .attach(&attach_req("photos", "http://127.0.0.1:9000"))
        .unwrap();
    let old = s.admin.table();
    set_mode(&s, "photos", Mode::Forward, false).unwrap();
    assert_eq!(
        old.mode("photos"),
        Some(Mode::Ready),
        "a held snapshot never changes"
    );
    assert_eq!(s.admin.table().mode("photos"), Some(Mode::Forward));
    assert_eq!(s.admin.table().mode("unattached"), None);
}

#[test]
fn a_refused_source_check_attaches_nothing() {
    let s = Server::start_with(Box::new(RefuseAll));
    let r = s
        .client
        .attach(&attach_req("photos", "http://127.0.0.1:9000"));
    let Err(ClientError::Api { status, error }) = r else {
        panic!("expected a refusal, got {r:?}");
    };
    assert_eq!(
        (status, error.code.as_str()),
        (422, codes::SOURCE_CHECK_FAILED)
    );
    assert!(
        error.message.contains("no source bucket photos here"),
        "{error:?}"
    );
    assert!(s.client.list().unwrap().is_empty());
    assert!(!s.state_file.exists(), "nothing was saved");
}

#[test]
fn concurrent_changes_are_all_saved() {
    let s = Server::start();
    let names: Vec<String> = (0..16).map(|i| format!("bucket-{i:02}")).collect();
    std::thread::scope(|scope| {
        for name in &names {
            let client = s.client.clone();
            scope.spawn(move || {
                client
                    .attach(&attach_req(name, "http://127.0.0.1:9000"))
                    .unwrap();
                client
                    .update(&UpdateRequest {
                        mode: Mode::Forward,
                        selector: Selector::Bucket(name.clone()),
                        force: false,
                    })
                    .unwrap();
            });
        }
    });
    let table = s.reloaded();
    assert_eq!(table.buckets.keys().cloned().collect::<Vec<_>>(), names);
    assert!(table.buckets.values().all(|b| b.mode == Mode::Forward));
    s.assert_persisted();
}

#[test]
fn update_selectors_are_all_or_nothing() {
    let s = Server::start();
    s.client
        .attach(&attach_req("a-one", "http://src:1"))
        .unwrap();
    s.client
        .attach(&attach_req("a-two", "http://src:1"))
        .unwrap();
    s.client
        .attach(&attach_req("b-one", "http://src:2"))
        .unwrap();
    set_mode(&s, "a-one", Mode::Forward, false).unwrap();

    // a-two is still ready: ready -> migrate is refused, so a-one stays too.
    let r = s.client.update(&UpdateRequest {
        mode: Mode::Migrate,
        selector: Selector::Url("http://src:1/".into()),
        force: false,
    });
    let (code, msg) = api_code(r);
    assert_eq!(code, codes::INVALID_TRANSITION);
    assert!(msg.contains("a-two"), "{msg}");
    assert_eq!(s.client.show("a-one").unwrap().mode, Mode::Forward);

    let resp = s
        .client
        .update(&UpdateRequest {
            mode: Mode::Forward,
            selector: Selector::All,
            force: false,
        })
        .unwrap();
    let moved: Vec<(&str, Mode, Mode)> = resp
        .changes
        .iter()
        .map(|c| (c.bucket.as_str(), c.from, c.to))
        .collect();
    assert_eq!(
        moved,
        [
            ("a-one", Mode::Forward, Mode::Forward),
            ("a-two", Mode::Ready, Mode::Forward),
            ("b-one", Mode::Ready, Mode::Forward),
        ]
    );
    s.assert_persisted();

    let (code, _) = api_code(s.client.update(&UpdateRequest {
        mode: Mode::Ready,
        selector: Selector::Bucket("nope".into()),
        force: false,
    }));
    assert_eq!(code, codes::NO_SUCH_BUCKET);
}

#[test]
fn malformed_requests_get_json_refusals() {
    let s = Server::start();
    // (method, path, body, status, code)
    type Case<'a> = (&'a str, &'a str, Option<&'a [u8]>, u16, &'a str);
    let cases: [Case; 9] = [
        ("GET", "/v2/buckets", None, 404, codes::NOT_FOUND),
        ("GET", "/v1/buckets/a/b", None, 404, codes::NOT_FOUND),
        ("PUT", "/v1/buckets", None, 405, codes::METHOD_NOT_ALLOWED),
        (
            "PATCH",
            "/v1/buckets/photos",
            None,
            405,
            codes::METHOD_NOT_ALLOWED,
        ),
        (
            "POST",
            "/v1/buckets",
            Some(b"{"),
            400,
            codes::INVALID_REQUEST,
        ),
        (
            "POST",
            "/v1/buckets/update",
            Some(br#"{"mode":"migrate","selector":"all","forse":true}"#),
            400,
            codes::INVALID_REQUEST,
        ),
        (
            "GET",
            "/v1/buckets/Bad_Name",
            None,
            400,
            codes::INVALID_REQUEST,
        ),
        (
            "DELETE",
            "/v1/buckets/photos?force=maybe",
            None,
            400,
            codes::INVALID_REQUEST,
        ),
        (
            "GET",
            "/v1/buckets/not-attached",
            None,
            404,
            codes::NO_SUCH_BUCKET,
        ),
    ];
    for (method, path, body, status, code) in cases {
        let raw = s.client.call_raw(method, path, body).unwrap();
        let err: ferry_control::ApiError = serde_json::from_slice(&raw.body)
            .unwrap_or_else(|e| panic!("{method} {path}: not an ApiError ({e}): {raw:?}"));
        assert_eq!(
            (raw.status, err.code.as_str()),
            (status, code),
            "{method} {path}"
        );
        assert!(!err.message.is_empty());
    }

    // An attach body over the limit is refused, not buffered.
    let big = vec![b' '; 2 << 20];
    let raw = s
        .client
        .call_raw("POST", "/v1/buckets", Some(&big))
        .unwrap();
    assert_eq!(raw.status, 413);
    assert!(s.admin.table().buckets.is_empty());
}

#[test]
fn answers_are_plain_http_1_1() {
    // What any HTTP client (curl --unix-socket) sees.
    let s = Server::start();
    let mut stream = UnixStream::connect(s.client.socket_path()).unwrap();
    stream
        .write_all(b"GET /v1/buckets HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    assert!(answer.ends_with(r#"{"buckets":[]}"#), "{answer}");
}

#[test]
fn a_restarted_admin_serves_the_saved_table() {
    let s = Server::start();
    s.client
        .attach(&attach_req("photos", "http://127.0.0.1:9000"))
        .unwrap();
    set_mode(&s, "photos", Mode::Forward, false).unwrap();
    let state = s.state_file.clone();
    let served = BucketTable::clone(&s.admin.table());
    let dir = s.dir.path().to_owned();
    drop(s.admin);
    drop(s._rt);

    let again = Admin::new(Box::new(FileStore::new(&state)), Box::new(NoCheck), "ferry").unwrap();
    assert_eq!(*again.table(), served);
    assert_eq!(again.table().mode("photos"), Some(Mode::Forward));
    assert!(Path::new(&dir).exists());
    drop(s.dir);
}
