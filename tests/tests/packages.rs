//! The packages, as an operator gets them: `packaging/build` makes the
//! .deb and .rpm of ferry-proxy, ferry-agent and ferryctl from the binaries
//! this test run built; their contents are read back with `dpkg-deb` and
//! `rpm`; the debs are installed with `dpkg --root` into a throw-away root
//! (their maintainer script run there too, not on this host), where the
//! shipped configs must pass the programs' own `--check-config` (run in a
//! chroot of that root) and the installed units `systemd-analyze verify`.
//! An upgrade to a later version (the same binaries packaged as one) must
//! keep a config an operator edited, with the rpm's %post run by rpm itself
//! in a root that has the few tools the script calls.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const PACKAGES: [&str; 3] = ["ferry-proxy", "ferry-agent", "ferryctl"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// Runs packaging/build on the binaries of this very test run (the test's
/// profile folder), with `extra` arguments, into `out`.
fn build_packages(out: &Path, extra: &[&str]) {
    let profile = ferry_harness::program("ferryctl")
        .parent()
        .unwrap()
        .to_owned();
    let target = profile.parent().unwrap();
    run(Command::new(repo().join("packaging/build"))
        .arg("--no-build")
        .arg("--profile-dir")
        .arg(profile.file_name().unwrap())
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("CARGO_TARGET_DIR", target));
}

/// The packages, built once for every test of this file.
fn built() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, out) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("packages");
        build_packages(&out, &[]);
        (dir, out)
    });
    out
}

/// The version after this workspace's: its patch number plus one.
fn later_version() -> String {
    let v = env!("CARGO_PKG_VERSION");
    let (head, patch) = v.rsplit_once('.').unwrap();
    format!("{head}.{}", patch.parse::<u32>().unwrap() + 1)
}

/// The one package file of `name` with this extension in `dir`:
/// `NAME_VERSION…` (deb) or `NAME-VERSION…` (rpm).
fn package_in(dir: &Path, name: &str, ext: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            let version = f.strip_prefix(name).and_then(|r| r.get(1..)).unwrap_or("");
            f.ends_with(ext) && version.starts_with(|c: char| c.is_ascii_digit())
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {ext}: {found:?}");
    found.into_iter().next().unwrap()
}

fn package(name: &str, ext: &str) -> PathBuf {
    package_in(built(), name, ext)
}

/// What every package must hold, by package: (path, is a config file).
fn expected(name: &str) -> Vec<(&'static str, bool)> {
    match name {
        "ferry-proxy" => vec![
            ("/usr/bin/ferry-proxy", false),
            ("/lib/systemd/system/ferry-proxy.service", false),
            ("/usr/lib/tmpfiles.d/ferry-proxy.conf", false),
            ("/etc/ferry/proxy.toml", true),
            ("/etc/ferry/users.toml", true),
            ("/usr/share/man/man1/ferry-proxy.1.gz", false),
            ("/usr/share/doc/ferry-proxy/proxy.md", false),
        ],
        "ferry-agent" => vec![
            ("/usr/bin/ferry-agent", false),
            ("/usr/bin/s3migrate", false),
            ("/usr/bin/s3find", false),
            ("/lib/systemd/system/ferry-agent.service", false),
            ("/usr/lib/tmpfiles.d/ferry-agent.conf", false),
            ("/etc/ferry/agent.toml", true),
            ("/usr/share/man/man1/ferry-agent.1.gz", false),
            ("/usr/share/man/man1/s3migrate.1.gz", false),
            ("/usr/share/man/man1/s3find.1.gz", false),
            ("/usr/share/doc/ferry-agent/agent.md", false),
        ],
        "ferryctl" => vec![
            ("/usr/bin/ferryctl", false),
            ("/usr/share/man/man1/ferryctl.1.gz", false),
            ("/usr/share/man/man1/ferryctl-check-dns.1.gz", false),
            (
                "/usr/share/man/man1/ferryctl-s3-bucket-migrate-attach.1.gz",
                false,
            ),
            ("/usr/share/bash-completion/completions/ferryctl", false),
            ("/usr/share/fish/vendor_completions.d/ferryctl.fish", false),
            ("/usr/share/ferry/prometheus/prometheus.yml", false),
            ("/usr/share/ferry/prometheus/ferry-alerts.yml", false),
            ("/usr/share/ferry/grafana/ferry-proxy.json", false),
            ("/usr/share/ferry/grafana/ferry-migration.json", false),
            ("/usr/share/doc/ferryctl/runbook.md", false),
        ],
        other => panic!("no such package {other}"),
    }
}

#[test]
fn debs_hold_the_binaries_units_configs_and_completions() {
    for name in PACKAGES {
        let deb = package(name, ".deb");
        let listing = stdout(Command::new("dpkg-deb").arg("-c").arg(&deb));
        let files: BTreeSet<String> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .map(|p| p.trim_start_matches('.').to_owned())
            .collect();
        // A package with no config file has no `conffiles` at all.
        let conffiles = Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles")
            .output()
            .unwrap();
        let conffiles: BTreeSet<String> = String::from_utf8_lossy(&conffiles.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        for (path, config) in expected(name) {
            let in_usr_lib = path.replace("/lib/systemd", "/usr/lib/systemd");
            assert!(
                files.contains(path) || files.contains(&in_usr_lib),
                "{name}.deb has no {path}:\n{listing}"
            );
            assert_eq!(
                conffiles.contains(path),
                config,
                "{name}.deb: {path} as a conffile: {conffiles:?}"
            );
        }
        let users = listing
            .lines()
            .find(|l| l.ends_with("/etc/ferry/users.toml"));
        if let Some(l) = users {
            assert!(l.starts_with("-rw-------"), "users.toml holds secrets: {l}");
        }
        let control = stdout(Command::new("dpkg-deb").arg("-I").arg(&deb));
        if name != "ferryctl" {
            assert!(
                control.contains("postinst"),
                "{name}.deb has no postinst (the ferry user): {control}"
            );
        }
    }
}

#[test]
fn rpms_hold_the_same_files_with_configs_noreplace() {
    for name in PACKAGES {
        let rpm = package(name, ".rpm");
        // FILEFLAGS: c = %config, n = noreplace, d = %doc.
        let listing = stdout(
            Command::new("rpm")
                .args([
                    "-qp",
                    "--qf",
                    "[%{FILEFLAGS:fflags} %{FILEMODES:perms} %{FILENAMES}\n]",
                ])
                .arg(&rpm),
        );
        let files: Vec<(&str, &str, &str)> = listing
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let last = f.next_back()?;
                let perms = f.next_back()?;
                Some((f.next().unwrap_or(""), perms, last))
            })
            .collect();
        for (path, config) in expected(name) {
            let path_usr = path.replace("/lib/systemd", "/usr/lib/systemd");
            let path = if path.starts_with("/lib/") {
                path_usr.as_str()
            } else {
                path
            };
            let (flags, _, _) = files
                .iter()
                .find(|(_, _, p)| *p == path)
                .unwrap_or_else(|| panic!("{name}.rpm has no {path}:\n{listing}"));
            assert_eq!(
                flags.contains('c') && flags.contains('n'),
                config,
                "{name}.rpm: {path} as %config(noreplace) (flags '{flags}')"
            );
        }
        let scripts = stdout(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
        if name != "ferryctl" {
            assert!(
                scripts.contains("useradd --system"),
                "{name}.rpm creates no ferry user: {scripts}"
            );
        }
    }
}

/// A root that dpkg can install into: an empty package database and the
/// user database every Debian system has (root only).
fn new_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "etc",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "usr/sbin",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (f, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/shadow", "root:*:20000:0:99999:7:::\n"),
        ("etc/gshadow", "root:*::\n"),
        ("var/lib/dpkg/status", ""),
        ("var/lib/dpkg/available", ""),
    ] {
        std::fs::write(root.join(f), text).unwrap();
    }
    std::fs::copy("/usr/sbin/nologin", root.join("usr/sbin/nologin")).unwrap();
    root
}

fn dpkg_install(root: &Path, debs: &[PathBuf]) {
    run(Command::new("dpkg")
        .arg("--root")
        .arg(root)
        .args([
            // The maintainer script runs here, on this host, acting on
            // DPKG_ROOT: dpkg would otherwise chroot into an empty root.
            "--force-script-chrootless",
            // An empty package database has no libc6 to depend on.
            "--force-depends",
            "--force-not-root",
            "--log=/dev/null",
            "--install",
        ])
        .args(debs));
}

/// Copies into `root` the shared libraries `bin` loads, so it runs in a
/// chroot of `root`.
fn libraries_into(root: &Path, bin: &Path) {
    let ldd = stdout(Command::new("ldd").arg(bin));
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(lib, &dest).unwrap_or_else(|e| panic!("{lib}: {e}"));
    }
}

fn chrooted(root: &Path, args: &[&str]) -> Output {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn id_of(file: &Path, name: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| f[2].parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in {}", file.display()))
}

#[test]
fn debs_install_into_a_root_where_configs_check_and_units_verify() {
    if !nix_is_root() {
        ferry_harness::skip(
            "debs_install_into_a_root_where_configs_check_and_units_verify",
            "chroot needs root",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = new_root(dir.path());
    let debs: Vec<PathBuf> = PACKAGES.iter().map(|p| package(p, ".deb")).collect();
    dpkg_install(&root, &debs);

    // The ferry user and group, in that root only.
    let uid = id_of(&root.join("etc/passwd"), "ferry");
    let gid = id_of(&root.join("etc/group"), "ferry");
    assert!(uid > 0 && gid > 0);
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains(":/var/lib/ferry:/usr/sbin/nologin"),
        "{passwd}"
    );
    for (path, mode) in [
        ("var/lib/ferry/proxy", 0o700),
        ("var/lib/ferry/agent", 0o700),
        ("etc/ferry/certs", 0o700),
        ("etc/ferry/users.toml", 0o600),
    ] {
        let m = std::fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{path} is not ferry's");
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{path}");
    }

    // The shipped configs, checked by the installed programs, in the root
    // they were installed into.
    for bin in [
        "usr/bin/ferry-proxy",
        "usr/bin/ferry-agent",
        "usr/bin/ferryctl",
    ] {
        libraries_into(&root, &root.join(bin));
    }
    let agent = chrooted(
        &root,
        &[
            "/usr/bin/ferry-agent",
            "--check-config",
            "/etc/ferry/agent.toml",
        ],
    );
    assert!(
        agent.status.success(),
        "agent.toml: {}",
        String::from_utf8_lossy(&agent.stderr)
    );
    // Not before the operator gives the target's secret: the error says
    // which setting wants it.
    let proxy_check = [
        "/usr/bin/ferry-proxy",
        "--check-config",
        "/etc/ferry/proxy.toml",
    ];
    let unset = chrooted(&root, &proxy_check);
    assert!(!unset.status.success());
    let why = String::from_utf8_lossy(&unset.stderr);
    assert!(why.contains("target.secret_file"), "{why}");
    let secret = root.join("etc/ferry/target.secret");
    std::fs::write(&secret, "the-target-secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let set = chrooted(&root, &proxy_check);
    assert!(
        set.status.success(),
        "proxy.toml: {}",
        String::from_utf8_lossy(&set.stderr)
    );
    let help = chrooted(&root, &["/usr/bin/ferryctl", "--help"]);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("s3"));

    // Each program's man page says what its --help says: a flag of each.
    for (page, flag) in [
        ("ferry-proxy.1.gz", "check-config"),
        ("ferry-agent.1.gz", "check-config"),
        ("s3migrate.1.gz", "src-url"),
        ("s3find.1.gz", "allow-unreadable"),
        ("ferryctl-s3-bucket-migrate-attach.1.gz", "s3-secret-file"),
    ] {
        let text = stdout(
            Command::new("gzip")
                .arg("-dc")
                .arg(root.join("usr/share/man/man1").join(page)),
        );
        // roff writes a flag's dashes as `\-`.
        let flag = format!("\\-\\-{}", flag.replace('-', "\\-"));
        assert!(
            text.starts_with(".") && text.contains(".TH") && text.contains(&flag),
            "{page} has no {flag}:\n{text}"
        );
    }

    // The units as installed, their executables and settings, in a root
    // that has what every Debian system has: systemd's own units (the
    // targets ours name) and kill (ExecReload).
    std::fs::create_dir_all(root.join("lib/systemd/system")).unwrap();
    run(Command::new("cp")
        .args(["-a", "--no-clobber", "/lib/systemd/system/."])
        .arg(root.join("lib/systemd/system")));
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/kill", root.join("bin/kill")).unwrap();
    for unit in ["ferry-proxy.service", "ferry-agent.service"] {
        let path = ["lib/systemd/system", "usr/lib/systemd/system"]
            .iter()
            .map(|d| Path::new("/").join(d).join(unit))
            .find(|p| root.join(p.strip_prefix("/").unwrap()).is_file())
            .unwrap_or_else(|| panic!("{unit} not installed"));
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "systemd-analyze verify {unit}: {said}"
        );
        assert!(
            !said.contains(unit),
            "systemd-analyze verify {unit} warns: {said}"
        );
    }
}

/// A root that rpm can install into with its scriptlets on: rpm runs them
/// chrooted there, so it holds `/bin/sh` and every tool the postinst calls,
/// with their libraries, and the user database.
fn new_rpm_root(dir: &Path) -> PathBuf {
    let root = new_root(dir);
    for tool in [
        "/bin/sh",
        "/usr/bin/grep",
        "/usr/bin/awk",
        "/usr/bin/install",
        "/usr/bin/stat",
        "/usr/bin/chown",
        "/usr/sbin/groupadd",
        "/usr/sbin/useradd",
    ] {
        let dest = root.join(tool.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        // awk is a link to an alternative: the program itself goes in.
        std::fs::copy(std::fs::canonicalize(tool).unwrap(), &dest)
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        libraries_into(&root, &dest);
    }
    root
}

/// Installs or upgrades `package` in `root` with rpm, scriptlets on.
fn rpm_upgrade(root: &Path, package: &Path) {
    run(Command::new("rpm")
        .arg("--root")
        .arg(root)
        // An empty package database has no glibc to depend on.
        .args(["--nodeps", "-U"])
        .arg(package));
}

fn rpm_version(root: &Path, name: &str) -> String {
    stdout(
        Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["-q", "--qf", "%{VERSION}", name]),
    )
}

fn deb_version(root: &Path, name: &str) -> String {
    stdout(
        Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                root.join("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${Version}", name]),
    )
}

#[test]
fn upgrades_keep_the_configs_an_operator_edited() {
    if !nix_is_root() {
        ferry_harness::skip(
            "upgrades_keep_the_configs_an_operator_edited",
            "rpm runs the %post in a chroot, which needs root",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let later = later_version();
    let later_dir = dir.path().join("later");
    build_packages(
        &later_dir,
        &["--version", &later, "--package", "ferry-proxy"],
    );

    // deb: install, edit, upgrade.
    let root = new_root(&dir.path().join("deb"));
    dpkg_install(&root, &[package("ferry-proxy", ".deb")]);
    assert_eq!(
        deb_version(&root, "ferry-proxy"),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    let uid = id_of(&root.join("etc/passwd"), "ferry");
    let config = root.join("etc/ferry/proxy.toml");
    let edited = std::fs::read_to_string(&config).unwrap().replace(
        "url = \"http://127.0.0.1:9000\"",
        "url = \"http://127.0.0.1:9020\"",
    );
    std::fs::write(&config, &edited).unwrap();
    dpkg_install(&root, &[package_in(&later_dir, "ferry-proxy", ".deb")]);
    assert_eq!(deb_version(&root, "ferry-proxy"), format!("{later}-1"));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        edited,
        "deb upgrade"
    );
    assert_eq!(id_of(&root.join("etc/passwd"), "ferry"), uid, "deb upgrade");

    // rpm: the same, with rpm running the %post (the ferry user, the state
    // folder, users.toml's owner) in its root.
    let root = new_rpm_root(&dir.path().join("rpm"));
    rpm_upgrade(&root, &package("ferry-proxy", ".rpm"));
    assert_eq!(rpm_version(&root, "ferry-proxy"), env!("CARGO_PKG_VERSION"));
    let uid = id_of(&root.join("etc/passwd"), "ferry");
    let gid = id_of(&root.join("etc/group"), "ferry");
    for (path, mode) in [
        ("var/lib/ferry/proxy", 0o700),
        ("etc/ferry/certs", 0o700),
        ("etc/ferry/users.toml", 0o600),
    ] {
        let m = std::fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((m.uid(), m.gid()), (uid, gid), "rpm %post: {path}");
        assert_eq!(m.permissions().mode() & 0o7777, mode, "rpm %post: {path}");
    }
    let config = root.join("etc/ferry/proxy.toml");
    let edited = std::fs::read_to_string(&config).unwrap() + "http_addr = \"0.0.0.0:80\"\n";
    std::fs::write(&config, &edited).unwrap();
    rpm_upgrade(&root, &package_in(&later_dir, "ferry-proxy", ".rpm"));
    assert_eq!(rpm_version(&root, "ferry-proxy"), later);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        edited,
        "rpm upgrade"
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert_eq!(passwd.matches("\nferry:").count(), 1, "{passwd}");
    assert_eq!(id_of(&root.join("etc/passwd"), "ferry"), uid, "rpm upgrade");
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// packaging/build with `args`, where `cargo` only says it was called and
/// fails, so that no build is ever started (but answers `cargo deb
/// --version` and `cargo generate-rpm --version` if `tools`), and no
/// Garage can be found: (exit code, stderr).
fn build_without_garage(args: &[&str], tools: bool) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let cargo = bin.join("cargo");
    let version = if tools {
        "[ \"$2\" = --version ] && exit 0\n"
    } else {
        ""
    };
    std::fs::write(
        &cargo,
        format!("#!/bin/sh\n{version}echo \"cargo called: $*\" >&2\nexit 97\n"),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(bin.clone())
        .chain(std::env::split_paths(&path).filter(|d| !d.join("garage").exists()));
    let out = Command::new(repo().join("packaging/build"))
        .args(args)
        .arg("--out")
        .arg(dir.path().join("packages"))
        .env("PATH", std::env::join_paths(dirs).unwrap())
        .env("GARAGE_BIN", dir.path().join("no-garage"))
        .env("FERRY_CACHE", dir.path().join("cache"))
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_profiled_proxy_is_the_default_and_its_needs_are_checked_before_any_build() {
    // Building ferry-proxy's package: the profiled build, whose training
    // needs Garage (and llvm-tools): refused before cargo is called, with
    // the way out named.
    let (code, err) = build_without_garage(&["--package", "ferry-proxy"], true);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("packaging/build --no-pgo"), "{err}");
    assert!(!err.contains("cargo called"), "{err}");
    // `--no-pgo`, or packages without ferry-proxy: straight to the build.
    for args in [&["--no-pgo"][..], &["--package", "ferryctl"]] {
        let (code, err) = build_without_garage(args, true);
        assert_eq!(code, Some(97), "{args:?}: {err}");
        assert!(
            err.contains("cargo called: build --locked --release"),
            "{args:?}: {err}"
        );
    }
    // The profiled build with binaries built elsewhere cannot be.
    let (code, err) = build_without_garage(&["--pgo", "--no-build"], true);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--pgo builds its own binaries"), "{err}");
    // Without cargo-deb (scripts/setup's), refused before the build too.
    let (code, err) = build_without_garage(&["--no-pgo"], false);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("needs cargo-deb: scripts/setup installs it"),
        "{err}"
    );
}
