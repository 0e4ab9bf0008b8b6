//! What Ferry's programs do alike at start (feature `program`): a TOML
//! config file read and refused on one line (`FILE: FIELD: PROBLEM`),
//! `--check-config`, the exit on a bad start, logging to stderr. The
//! daemons (ferry-agent, ferry-proxy) use all of it, s3migrate its logging.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file was refused: `FILE: FIELD: PROBLEM`, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The offending field as written in the file (`target.secret_file`),
    /// if the problem is in one field.
    pub field: Option<&'static str>,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(field) = self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and parses the TOML config at `path`, then has `finish` make its
/// relative paths absolute from the file's folder (given) and validate it,
/// naming the field at fault. Nothing is created or bound.
pub fn load_toml<T: DeserializeOwned>(
    path: &Path,
    finish: impl FnOnce(&mut T, &Path) -> Result<(), (&'static str, String)>,
) -> Result<T, ConfigError> {
    let err = |field, problem| ConfigError {
        file: path.to_owned(),
        field,
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read: {e}")))?;
    let mut config = parse_toml(&text).map_err(|p| err(None, p))?;
    let base = path.parent().unwrap_or(Path::new("."));
    finish(&mut config, base).map_err(|(field, problem)| err(Some(field), problem))?;
    Ok(config)
}

/// TOML text parsed (no validation); an error is `line N: message`, on one
/// line.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {message}")
            }
            None => message,
        }
    })
}

/// A start that cannot go on: `program: msg` on stderr, exit code 2.
pub fn fail(program: &str, msg: impl fmt::Display) -> ! {
    eprintln!("{program}: {msg}");
    std::process::exit(2);
}

/// `--check-config FILE`: prints `FILE: ok` and exits 0 if `load` accepts
/// it, else fails (exit code 2) with why.
pub fn check_config<T, E: fmt::Display>(
    program: &str,
    path: &Path,
    load: impl FnOnce(&Path) -> Result<T, E>,
) -> ! {
    match load(path) {
        Ok(_) => {
            println!("{}: ok", path.display());
            std::process::exit(0);
        }
        Err(e) => fail(program, e),
    }
}

/// Logs to stderr, filtered by the environment variable `env` (else
/// `default`), without the `harmless` lines. Colour codes only for a
/// person at a terminal, never into journald or a file.
pub fn init_logging(env: &str, default: &str, harmless: &'static [Harmless]) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    logging(env, default, std::io::stderr)
        .with(DropHarmless(harmless))
        .init();
}

fn logging<W>(env: &str, default: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env(env)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
}

/// A library's log line that is known to be harmless at the level it is
/// logged at: dropped, so that an operator never reads it as a fault.
pub struct Harmless {
    /// The `log` target (the library's module).
    pub target: &'static str,
    /// The whole message.
    pub message: &'static str,
}

/// Drops the [`Harmless`] lines. A line a library logs through `log`
/// arrives as an event whose metadata is `log`'s, with the library's target
/// and message as fields.
struct DropHarmless(&'static [Harmless]);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DropHarmless {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let mut line = Line::default();
        event.record(&mut line);
        let target = line.target.as_deref().unwrap_or(event.metadata().target());
        !self
            .0
            .iter()
            .any(|h| h.target == target && line.message.as_deref() == Some(h.message))
    }
}

#[derive(Default)]
struct Line {
    target: Option<String>,
    message: Option<String>,
}

impl tracing::field::Visit for Line {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "log.target" => self.target = Some(value.to_owned()),
            "message" => self.message = Some(value.to_owned()),
            _ => {}
        }
    }

    /// A message is formatting arguments; `log.target` a `&str`, which
    /// `Debug` would quote.
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What was logged, through `log` as a library logs it.
    fn logged(harmless: &'static [Harmless], emit: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::SubscriberExt as _;

        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        static LOG_TO_TRACING: std::sync::Once = std::sync::Once::new();
        LOG_TO_TRACING.call_once(|| tracing_log::LogTracer::init().unwrap());
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = logging("FERRY_TEST_LOG_UNSET", "info", move || out.clone())
            .with(DropHarmless(harmless));
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_harmless_line_is_dropped_and_nothing_else() {
        const POOL: &[Harmless] = &[Harmless {
            target: "pingora_core::connectors",
            message: "failed to acquire reusable stream",
        }];
        let out = logged(POOL, || {
            log::error!(target: "pingora_core::connectors", "failed to acquire reusable stream");
            log::error!(target: "pingora_core::connectors", "failed to acquire reusable stream!");
            log::error!(target: "pingora_core::connectors::l4", "failed to acquire reusable stream");
            log::warn!(target: "pingora_core::connectors", "Unexpected data read in idle connection");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].contains("stream!"), "{out}");
        assert!(lines[1].contains("connectors::l4"), "{out}");
        assert!(lines[2].contains("Unexpected data"), "{out}");
        // Without the list, the line is there.
        let out = logged(&[], || {
            log::error!(target: "pingora_core::connectors", "failed to acquire reusable stream");
        });
        assert!(out.contains("ERROR"), "{out}");
        assert!(out.contains("failed to acquire reusable stream"), "{out}");
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        #[serde(default)]
        n: u32,
        #[serde(default)]
        dir: PathBuf,
    }

    #[test]
    fn a_toml_error_names_its_line_on_one_line() {
        let e = parse_toml::<Conf>("n = 1\nm = 2\n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn load_names_the_file_and_the_field_and_resolves_from_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let finish = |c: &mut Conf, base: &Path| {
            c.dir = base.join(&c.dir);
            if c.n == 0 {
                return Err(("n", "must be at least 1".to_owned()));
            }
            Ok(())
        };
        let e = load_toml(&file, finish).unwrap_err();
        assert_eq!(e.field, None);
        assert!(e.problem.starts_with("cannot read: "), "{e}");
        std::fs::write(&file, "n = 0\n").unwrap();
        let e = load_toml(&file, finish).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: n: must be at least 1", file.display())
        );
        std::fs::write(&file, "n = 2\ndir = \"d\"\n").unwrap();
        let c = load_toml(&file, finish).unwrap();
        assert_eq!(c.dir, dir.path().join("d"));
    }
}
