//! `ferry-proxy`: parse flags, load and check the config, build the proxy,
//! run it. Signals: TERM drains in-flight requests (graceful), INT stops
//! fast, HUP reloads the users file and the certificates.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use clap::Parser;
use pingora::listeners::tls::TlsSettings;
use pingora::server::ShutdownWatch;
use pingora::server::configuration::ServerConf;
use pingora::services::background::{BackgroundService, background_service};

use ferry_fleet::etcd::member::MemberHandle;
use ferry_proxy::admin::{self, Admin};
use ferry_proxy::config::Config;
use ferry_proxy::directory::LiveDirectory;
use ferry_proxy::fence::WriteGates;
use ferry_proxy::journal::Journal;
use ferry_proxy::member::FleetLocal;
use ferry_proxy::migrate;
use ferry_proxy::plan::Settings;
use ferry_proxy::resign::UpstreamCreds;
use ferry_proxy::server::FerryProxy;
use ferry_proxy::state::FileStore;
use ferry_proxy::tls::SniResolver;
use ferry_proxy::upstream::Upstream;
use ferry_proxy::upstream::fetch::Fetcher;
use ferry_s3::program;

#[global_allocator]
static ALLOCATOR: ferry_proxy::Allocator = ferry_proxy::Allocator {};

/// S3 migration proxy. It sits in front of the target cluster's S3 endpoint
/// and routes each attached bucket by its mode (ready, forward, migrate).
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about = None,
    after_help = "Signals: HUP reloads the config, the users file and the certificates; \
TERM drains requests in flight (up to drain_timeout_secs), then exits.\n\
Logs: stderr; FERRY_LOG sets the filter (default info; per-request lines: \
FERRY_LOG=info,ferry_proxy=debug).\n\
Operator guide: docs/proxy.md in the Ferry source."
)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, default_value = "/etc/ferry/proxy.toml", value_name = "FILE")]
    config: PathBuf,
    /// Check the configuration file and exit: 0 if valid, 2 (and why) if not.
    /// Binds nothing.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    program::fail("ferry-proxy", msg)
}

/// Reloads the config, users and certificates on HUP, and certificates as
/// soon as a file in the certificate directory changes.
struct Reloader {
    config_path: PathBuf,
    /// The config in force, to tell which changes need a restart.
    config: std::sync::Mutex<Config>,
    settings: Arc<ArcSwap<Settings>>,
    migrate: Arc<migrate::Services>,
    directory: Arc<LiveDirectory>,
    certs: Option<Arc<SniResolver>>,
}

impl Reloader {
    /// Applies what can change live (the target's address and credentials,
    /// `s3_domains`, `max_clock_skew_secs`); names what needs a restart. A
    /// config that fails to load or validate changes nothing.
    fn reload_config(&self) {
        let next = match Config::load(&self.config_path)
            .map_err(|e| e.to_string())
            .and_then(|c| settings_from(&c).map(|s| (c, s)))
        {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "config reload failed; keeping the old config");
                return;
            }
        };
        let (config, settings) = next;
        let mut current = self.config.lock().expect("config lock");
        let restart = restart_only_changes(&current, &config);
        if !restart.is_empty() {
            tracing::warn!(
                fields = restart.join(", "),
                "these config changes take effect at the next restart"
            );
        }
        if let Some(j) = &self.migrate.journal {
            j.retarget(settings.target.clone(), settings.target_creds.clone());
        }
        self.settings.store(Arc::new(settings));
        *current = config;
        tracing::info!("config reloaded");
    }

    fn reload_certs(&self) {
        if let Some(c) = &self.certs {
            match c.reload() {
                Ok(n) => tracing::info!(certificates = n, "certificates reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "certificate reload failed; keeping the old ones")
                }
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::error!("cannot listen for SIGHUP; reload by restart only");
            return;
        };
        let (tx, mut changed) = tokio::sync::mpsc::channel::<()>(1);
        // Kept alive for as long as the loop runs.
        let _watcher = self.certs.as_ref().and_then(|c| {
            ferry_proxy::tls::watch(c.dir(), tx)
                .map_err(|e| tracing::error!(error = %e, "cannot watch the certificate directory; reload with HUP"))
                .ok()
        });
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    self.reload_config();
                    match self.directory.reload_users() {
                        Ok(n) => tracing::info!(users = n, "users reloaded"),
                        Err(e) => tracing::error!(error = %e, "users reload failed; keeping the old users"),
                    }
                    self.reload_certs();
                }
                Some(()) = changed.recv() => {
                    // Editors and cert tools write in several steps: let
                    // them finish.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    while changed.try_recv().is_ok() {}
                    self.reload_certs();
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// On TERM (Pingora has stopped accepting), exits once no request is left
/// in flight; Pingora's grace period is the deadline. A fleet member then
/// leaves the fleet, so that no mode change waits for its lease to expire.
struct Drainer {
    in_flight: &'static std::sync::atomic::AtomicUsize,
    member: Option<MemberHandle>,
}

#[async_trait]
impl BackgroundService for Drainer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _ = shutdown.changed().await;
        let started = std::time::Instant::now();
        loop {
            let n = self.in_flight.load(std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                tracing::info!(after = ?started.elapsed(), "drained; exiting");
                if let Some(m) = &self.member {
                    let _ = tokio::time::timeout(Duration::from_secs(2), m.leave()).await;
                }
                std::process::exit(0);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Installs the metrics recorder and serves it on a thread of its own.
/// Called before any listener accepts: a request or handshake counted
/// before the recorder is installed is lost (when a background service
/// installed it, the first requests raced it and went uncounted).
fn start_metrics(addr: std::net::SocketAddr) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "metrics are off: no runtime for them");
            return;
        }
    };
    // Inside the runtime: the exporter binds its listener and spawns its
    // upkeep task there; both run once the thread drives the runtime.
    let exporter = match rt.block_on(async { ferry_proxy::metrics::install(addr) }) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "metrics are off");
            return;
        }
    };
    let serve = move || {
        if let Err(e) = rt.block_on(exporter) {
            tracing::error!(error = ?e, "metrics endpoint stopped");
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(serve)
    {
        tracing::error!(error = %e, "metrics are off: no thread for them");
    }
}

/// Keeps the per-bucket mode and the certificate expiry gauges current
/// (modes change, certificates reload).
struct GaugesService {
    admin: Arc<Admin>,
    certs: Option<Arc<SniResolver>>,
}

#[async_trait]
impl BackgroundService for GaugesService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let gauges = async {
            loop {
                for b in self.admin.table().buckets.values() {
                    ferry_proxy::metrics::bucket_mode(&b.bucket, b.mode);
                }
                for (file, not_after) in self.certs.iter().flat_map(|c| c.current().expiries()) {
                    ferry_proxy::metrics::certificate_expiry(&file, not_after);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        };
        tokio::select! {
            _ = gauges => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Serves the admin API on the Unix socket.
struct AdminService {
    admin: Arc<Admin>,
    config: Config,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match admin::bind(&self.config.socket_path, &self.config.socket_group) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot bind the admin socket");
                return;
            }
        };
        tokio::select! {
            _ = self.admin.clone().serve(listener) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// The fields a reload cannot apply to a running proxy.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, changed: bool| {
        if changed {
            out.push(name);
        }
    };
    check("https_addr", old.https_addr != new.https_addr);
    check("http_addr", old.http_addr != new.http_addr);
    check("cert_dir", old.cert_dir != new.cert_dir);
    check("users_file", old.users_file != new.users_file);
    check("state_file", old.state_file != new.state_file);
    check("state", old.state != new.state);
    check("socket_path", old.socket_path != new.socket_path);
    check("socket_group", old.socket_group != new.socket_group);
    check("metrics_addr", old.metrics_addr != new.metrics_addr);
    check(
        "drain_timeout_secs",
        old.drain_timeout_secs != new.drain_timeout_secs,
    );
    check("journal_bucket", old.journal_bucket != new.journal_bucket);
    check(
        "listing_token_key_file",
        old.listing_token_key_file != new.listing_token_key_file,
    );
    check(
        "target.connect_timeout_secs",
        old.target.connect_timeout_secs != new.target.connect_timeout_secs,
    );
    check(
        "target.read_timeout_secs",
        old.target.read_timeout_secs != new.target.read_timeout_secs,
    );
    out
}

/// The request path's settings from a loaded config.
// At start and on a reload, before the settings are swapped in.
#[allow(clippy::disallowed_methods)]
fn settings_from(config: &Config) -> Result<Settings, String> {
    let mut target = Upstream::from_url(&config.target.url).map_err(|e| e.to_string())?;
    if let Some(ca) = &config.target.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        target.ca = Some(
            ferry_proxy::upstream::ca_from_pem(&pem)
                .map_err(|e| format!("{}: {e}", ca.display()))?,
        );
    }
    Ok(Settings {
        target,
        target_creds: Arc::new(UpstreamCreds {
            access_key: config.target.access_key.clone(),
            secret: config.target_secret().to_owned(),
            region: config.target.region.clone(),
        }),
        s3_domains: config.s3_domains.clone(),
        max_clock_skew_secs: config.max_clock_skew_secs as i64,
        connect_timeout: Duration::from_secs(config.target.connect_timeout_secs),
        read_timeout: Duration::from_secs(config.target.read_timeout_secs),
    })
}

/// What migrate mode shares: the proxy's client of the stores, the delete
/// journal on the target, and the key of listing tokens.
fn migrate_services(
    config: &Config,
    settings: &Settings,
    fetcher: Arc<Fetcher>,
) -> migrate::Services {
    let journal = config
        .journal_bucket
        .as_ref()
        .map(|b| Journal::new(b, settings.target.clone(), settings.target_creds.clone()));
    migrate::Services {
        fetcher,
        journal,
        token_key: config.listing_token_key().unwrap_or_else(|e| fail(e)),
        upload_sides: Default::default(),
        max_put: migrate::transfer::max_put(),
    }
}

/// Joins the fleet of `etcd`: the member loads the fleet's table and puts
/// it in force before this returns, so the proxy never serves from an empty
/// table (which would pass attached buckets through). The member and the
/// etcd client run on a runtime of their own, alive for the process.
fn join_fleet(
    etcd: &ferry_fleet::etcd::EtcdConfig,
    config: &Config,
    migrate: Arc<migrate::Services>,
    target_check: admin::TargetCheck,
) -> (Arc<Admin>, Arc<WriteGates>, MemberHandle) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ferry-fleet")
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("fleet runtime: {e}")));
    let client = rt.block_on(etcd.connect()).unwrap_or_else(|e| fail(e));
    let fleet = ferry_fleet::etcd::Fleet::new(client, etcd, Box::new(admin::S3SourceCheck));
    let admin = Arc::new(
        Admin::fleet(fleet, Box::new(admin::S3SourceCheck), &config.socket_group)
            .with_migrate(migrate)
            .with_target_check(target_check)
            .with_target_urls(config.target_urls()),
    );
    let gates = Arc::new(WriteGates::default());
    let local = Arc::new(FleetLocal {
        admin: admin.clone(),
        gates: gates.clone(),
    });
    let member = rt
        .block_on(ferry_fleet::etcd::member::join(etcd, local))
        .unwrap_or_else(|e| fail(format!("cannot join the fleet: {e}")));
    tracing::info!(member = member.id(), endpoints = ?etcd.etcd_endpoints, "fleet member");
    std::thread::Builder::new()
        .name("ferry-fleet".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .unwrap_or_else(|e| fail(format!("fleet thread: {e}")));
    (admin, gates, member)
}

/// Idle upstream connections kept per worker thread (2,048 in all).
/// Pingora's default, 128, closed a quarter of the upstream connections
/// under 1,000 keep-alive clients (bench-proxy --many-clients 1000: 76%
/// reused), each then opened again for the next request. An idle one costs
/// a descriptor and a few KB of kernel memory.
const UPSTREAM_IDLE_PER_THREAD: usize = 1024;

/// Pingora's log lines that are not faults. Pingora 0.9 logs this one at
/// error level when a pooled upstream connection is still held by its idle
/// watcher at the moment a request takes it (docs/proxy.md, *Logs*): it
/// then opens a new connection, which
/// `ferry_proxy_upstream_connections_total{reused="false"}` counts, and no
/// request fails.
const HARMLESS: &[program::Harmless] = &[program::Harmless {
    target: "pingora_core::connectors",
    message: "failed to acquire reusable stream",
}];

fn main() {
    let args = Args::parse();
    program::init_logging("FERRY_LOG", "info", HARMLESS);
    if let Some(path) = &args.check_config {
        program::check_config("ferry-proxy", path, Config::load);
    }
    let config = Config::load(&args.config).unwrap_or_else(|e| fail(e));
    let settings = settings_from(&config).unwrap_or_else(|e| fail(e));
    let fetcher = Arc::new(Fetcher::new(
        settings.connect_timeout,
        settings.read_timeout,
    ));
    let migrate = Arc::new(migrate_services(&config, &settings, fetcher.clone()));
    let migrate_for_reload = migrate.clone();
    let settings = Arc::new(ArcSwap::from_pointee(settings));
    let certs = config
        .cert_dir
        .as_ref()
        .map(|d| Arc::new(SniResolver::load(d).unwrap_or_else(|e| fail(e))));
    let target_store = settings.clone();
    let target_check = admin::TargetCheck {
        fetcher: fetcher.clone(),
        store: Box::new(move || {
            let s = target_store.load();
            (s.target.clone(), s.target_creds.clone())
        }),
        journal_bucket: config.journal_bucket.clone(),
        certs: certs.clone(),
        s3_domains: config.s3_domains.clone(),
    };
    let (admin, gates, member) = match (&config.state_file, &config.state) {
        (Some(file), _) => {
            let admin = Admin::new(
                Box::new(FileStore::new(file.clone())),
                Box::new(admin::S3SourceCheck),
                &config.socket_group,
            )
            .unwrap_or_else(|e| fail(e))
            .with_migrate(migrate.clone())
            .with_target_check(target_check)
            .with_target_urls(config.target_urls());
            (Arc::new(admin), None, None)
        }
        (None, Some(etcd)) => {
            let (admin, gates, member) = join_fleet(etcd, &config, migrate.clone(), target_check);
            (admin, Some(gates), Some(member))
        }
        (None, None) => fail("no state_file and no [state]: Config::load refuses this"),
    };
    let directory = Arc::new(
        LiveDirectory::new(admin.clone(), config.users_file.clone()).unwrap_or_else(|e| fail(e)),
    );
    if config.https_addr.is_some() && certs.is_none() {
        fail("https_addr needs cert_dir");
    }

    // Pingora sleeps the whole grace period on TERM while requests in
    // flight run on; `Drainer` ends the process as soon as none is left.
    let conf = ServerConf {
        grace_period_seconds: Some(config.drain_timeout_secs),
        graceful_shutdown_timeout_seconds: Some(5),
        threads: 2,
        upstream_keepalive_pool_size: UPSTREAM_IDLE_PER_THREAD,
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let in_flight: &'static _ = Box::leak(Box::new(std::sync::atomic::AtomicUsize::new(0)));
    server.add_service(background_service("drain", Drainer { in_flight, member }));
    let proxy = FerryProxy {
        in_flight,
        settings: settings.clone(),
        directory: directory.clone(),
        fetcher,
        migrate,
        gates,
    };
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, proxy);
    if let Some(addr) = config.http_addr {
        svc.add_tcp(&addr.to_string());
    }
    if let (Some(addr), Some(resolver)) = (config.https_addr, certs.clone()) {
        pingora::tls::install_default_crypto_provider();
        let mut tls = TlsSettings::intermediate("", "").unwrap_or_else(|e| fail(e));
        tls.set_cert_resolver(resolver);
        tls.enable_h2();
        svc.add_tls_with_settings(&addr.to_string(), None, tls);
    }
    server.add_service(svc);
    if let Some(addr) = config.metrics_addr {
        start_metrics(addr);
        server.add_service(background_service(
            "gauges",
            GaugesService {
                admin: admin.clone(),
                certs: certs.clone(),
            },
        ));
    }
    server.add_service(background_service(
        "admin",
        AdminService {
            admin,
            config: config.clone(),
        },
    ));
    server.add_service(background_service(
        "reload",
        Reloader {
            config_path: args.config.clone(),
            config: std::sync::Mutex::new(config),
            settings,
            migrate: migrate_for_reload,
            directory,
            certs,
        },
    ));
    server.run_forever();
}
