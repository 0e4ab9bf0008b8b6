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

use ferry_proxy::admin::{self, Admin};
use ferry_proxy::config::Config;
use ferry_proxy::directory::LiveDirectory;
use ferry_proxy::fetch::{Fetcher, Side};
use ferry_proxy::journal::Journal;
use ferry_proxy::migrate;
use ferry_proxy::resign::UpstreamCreds;
use ferry_proxy::server::{FerryProxy, Settings};
use ferry_proxy::state::FileStore;
use ferry_proxy::tls::SniResolver;
use ferry_proxy::upstream::Upstream;

/// S3 migration proxy. It sits in front of the target cluster's S3 endpoint
/// and routes each attached bucket by its mode (ready, forward, migrate).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
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
    eprintln!("ferry-proxy: {msg}");
    std::process::exit(2);
}

/// Reloads users and certificates on HUP, and certificates as soon as a
/// file in the certificate directory changes.
struct Reloader {
    directory: Arc<LiveDirectory>,
    certs: Option<Arc<SniResolver>>,
}

impl Reloader {
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

/// Serves Prometheus metrics, and keeps the per-bucket mode gauges current.
struct MetricsService {
    addr: std::net::SocketAddr,
    admin: Arc<Admin>,
}

#[async_trait]
impl BackgroundService for MetricsService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let exporter = match ferry_proxy::metrics::install(self.addr) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "metrics are off");
                return;
            }
        };
        let modes = async {
            loop {
                for b in self.admin.table().buckets.values() {
                    ferry_proxy::metrics::bucket_mode(&b.bucket, b.mode);
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        };
        tokio::select! {
            r = exporter => if let Err(e) = r {
                tracing::error!(error = ?e, "metrics endpoint stopped");
            },
            _ = modes => {}
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

/// What migrate mode shares: the upstream connector, the delete journal on
/// the target, and the key of listing tokens.
fn migrate_services(config: &Config, settings: &Settings) -> migrate::Services {
    let journal = config.journal_bucket.as_ref().map(|b| Journal {
        side: Side {
            upstream: settings.target.clone(),
            creds: settings.target_creds.clone(),
            bucket: b.clone(),
            label: "target",
        },
    });
    migrate::Services {
        fetcher: Fetcher::new(settings.connect_timeout, settings.read_timeout),
        journal,
        token_key: config.listing_token_key().unwrap_or_else(|e| fail(e)),
        upload_sides: Default::default(),
    }
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(path) = &args.check_config {
        match Config::load(path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                return;
            }
            Err(e) => fail(e),
        }
    }
    let config = Config::load(&args.config).unwrap_or_else(|e| fail(e));
    let mut target = Upstream::from_url(&config.target.url).unwrap_or_else(|e| fail(e));
    if let Some(ca) = &config.target.ca_file {
        let pem = std::fs::read(ca).unwrap_or_else(|e| fail(format!("{}: {e}", ca.display())));
        target.ca = Some(
            ferry_proxy::upstream::ca_from_pem(&pem)
                .unwrap_or_else(|e| fail(format!("{}: {e}", ca.display()))),
        );
    }
    let settings = Settings {
        target,
        target_creds: UpstreamCreds {
            access_key: config.target.access_key.clone(),
            secret: config.target_secret().to_owned(),
            region: config.target.region.clone(),
        },
        s3_domains: config.s3_domains.clone(),
        max_clock_skew_secs: config.max_clock_skew_secs as i64,
        connect_timeout: Duration::from_secs(config.target.connect_timeout_secs),
        read_timeout: Duration::from_secs(config.target.read_timeout_secs),
    };
    let migrate = Arc::new(migrate_services(&config, &settings));
    let store = FileStore::new(config.state_file.clone());
    let admin = Arc::new(
        Admin::new(
            Box::new(store),
            Box::new(admin::S3SourceCheck),
            &config.socket_group,
        )
        .unwrap_or_else(|e| fail(e))
        .with_migrate(migrate.clone()),
    );
    let directory = Arc::new(
        LiveDirectory::new(admin.clone(), config.users_file.clone()).unwrap_or_else(|e| fail(e)),
    );
    let certs = config
        .cert_dir
        .as_ref()
        .map(|d| Arc::new(SniResolver::load(d).unwrap_or_else(|e| fail(e))));
    if config.https_addr.is_some() && certs.is_none() {
        fail("https_addr needs cert_dir");
    }

    let conf = ServerConf {
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(30),
        threads: 2,
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let proxy = FerryProxy {
        settings: ArcSwap::from_pointee(settings),
        directory: directory.clone(),
        migrate,
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
        server.add_service(background_service(
            "metrics",
            MetricsService {
                addr,
                admin: admin.clone(),
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
    server.add_service(background_service("reload", Reloader { directory, certs }));
    server.run_forever();
}
