//! Server certificates chosen by SNI, reloadable without a restart.
//!
//! The certificate directory holds one `*.pem` file per certificate: the
//! chain (leaf first) and its private key. For each handshake the first
//! certificate valid for the requested name wins (wildcards included, as
//! webpki checks them); a client without SNI, or with a name no
//! certificate covers, gets the first certificate in name order.

// Certificates are read at start and on a reload; never on the request
// path.
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("certificate directory {0} holds no *.pem certificate")]
    Empty(PathBuf),
}

struct Entry {
    path: PathBuf,
    leaf: CertificateDer<'static>,
    key: Arc<CertifiedKey>,
}

/// The loaded certificates, swapped whole on reload.
pub struct CertSet {
    entries: Vec<Entry>,
}

impl CertSet {
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let rd = std::fs::read_dir(dir).map_err(|source| TlsError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pem"))
            .collect();
        paths.sort();
        let provider = CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls_ring_provider()));
        let mut entries = Vec::new();
        for path in paths {
            let bad = |why: String| TlsError::File {
                path: path.clone(),
                why,
            };
            let pem = std::fs::read(&path).map_err(|e| bad(e.to_string()))?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("bad certificate PEM: {e:?}")))?;
            let Some(leaf) = chain.first().cloned() else {
                return Err(bad("no certificate in the file".into()));
            };
            let key = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| bad(format!("no usable private key: {e:?}")))?;
            let signing = provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| bad(format!("unsupported private key: {e}")))?;
            entries.push(Entry {
                path: path.clone(),
                leaf,
                key: Arc::new(CertifiedKey::new(chain, signing)),
            });
        }
        if entries.is_empty() {
            return Err(TlsError::Empty(dir.to_owned()));
        }
        Ok(Self { entries })
    }

    /// Each certificate's file name and the end of its validity (Unix
    /// seconds); a leaf that does not parse as X.509 is left out.
    pub fn expiries(&self) -> Vec<(String, i64)> {
        self.entries
            .iter()
            .filter_map(|e| {
                let (_, cert) = x509_parser::parse_x509_certificate(&e.leaf).ok()?;
                let name = e.path.file_name()?.to_string_lossy().into_owned();
                Some((name, cert.validity().not_after.timestamp()))
            })
            .collect()
    }

    /// The certificate for `name`: the first that covers it, else the first.
    pub fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = name.and_then(|n| {
            let sn = ServerName::try_from(n.to_owned()).ok()?;
            self.entries.iter().find(|e| {
                webpki::EndEntityCert::try_from(&e.leaf)
                    .is_ok_and(|c| c.verify_is_valid_for_subject_name(&sn).is_ok())
            })
        });
        by_name.or(self.entries.first()).map(|e| e.key.clone())
    }

    /// Whether some certificate covers `name` (attach warns if none does).
    pub fn covers(&self, name: &str) -> bool {
        let Ok(sn) = ServerName::try_from(name.to_owned()) else {
            return false;
        };
        self.entries.iter().any(|e| {
            webpki::EndEntityCert::try_from(&e.leaf)
                .is_ok_and(|c| c.verify_is_valid_for_subject_name(&sn).is_ok())
        })
    }

    pub fn files(&self) -> Vec<PathBuf> {
        self.entries.iter().map(|e| e.path.clone()).collect()
    }
}

fn rustls_ring_provider() -> CryptoProvider {
    pingora::tls::install_default_crypto_provider();
    CryptoProvider::get_default()
        .map(|p| (**p).clone())
        .expect("a default crypto provider after installing one")
}

/// The rustls resolver Pingora's listener asks for each handshake.
pub struct SniResolver {
    dir: PathBuf,
    set: ArcSwap<CertSet>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SniResolver {
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            dir: dir.to_owned(),
            set: ArcSwap::from_pointee(CertSet::load(dir)?),
        })
    }

    /// Loads the directory again; on error the old certificates stay.
    pub fn reload(&self) -> Result<usize, TlsError> {
        let set = CertSet::load(&self.dir)?;
        let n = set.entries.len();
        self.set.store(Arc::new(set));
        Ok(n)
    }

    pub fn current(&self) -> Arc<CertSet> {
        self.set.load_full()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let picked = self.set.load().pick(hello.server_name());
        crate::metrics::tls_handshake(picked.is_some());
        picked
    }
}

/// Watches `dir` and sends a unit whenever something in it changes. The
/// events are only a nudge: the receiver reloads the whole directory.
pub fn watch(
    dir: &Path,
    tx: tokio::sync::mpsc::Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            // A full channel already holds a pending reload.
            let _ = tx.try_send(());
        }
    })?;
    w.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok(w)
}
