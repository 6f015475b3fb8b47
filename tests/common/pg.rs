//! A throwaway PostgreSQL server for tests and benchmarks.
//!
//! Debian's `postgresql` package provides the server binaries under
//! `/usr/lib/postgresql/<major>/bin/`. The first use on a machine runs `initdb` once into a
//! template directory (about 1 s; reused by later processes and runs, made atomic by a
//! rename). Every server then copies that template into a directory of its own and starts
//! with `pg_ctl` on a free loopback port, listening on 127.0.0.1 only, with its Unix socket
//! in that directory. Test servers ([`Durability::Fast`]) live in `/dev/shm` without fsync:
//! copy, start and a fresh database take about 0.3 s, so a server per process is cheap
//! enough for nextest, which runs every test in a process of its own. Under `cargo test` all
//! tests of a binary share one server ([`PgServer::shared`]), each with its own database.
//!
//! PostgreSQL refuses to run as root, so as root the binaries run as the package's
//! `postgres` user (`runuser -u postgres --`) on directories that user owns.
//!
//! Clean-up never depends on the test passing:
//! - [`PgServer`]'s `Drop` stops the server (`-m immediate`) and removes its directory;
//! - a watchdog (`setsid sh`, in its own session) waits for end-of-file on a pipe whose write
//!   end only this process holds, then does the same. It fires when the process exits for
//!   any reason (a panic, `process::exit`, SIGKILL), which covers the per-process
//!   [`PgServer::shared`] server that no destructor would stop.
//!
//! Missing binaries are a test failure that says `apt-get install postgresql`, never a skip.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found under \
     /usr/lib/postgresql/*/bin (or $TWOFACTOR_PG_BIN). The PostgreSQL store tests need them: \
     apt-get install postgresql";

/// How a server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// For tests: in memory (`/dev/shm` where it exists), no fsync; the data dies anyway.
    Fast,
    /// As in production, for benchmarks: on disk (the system temp dir), every commit
    /// flushed (`fsync=on`, `synchronous_commit=on`).
    Durable,
}

impl Durability {
    fn settings(self) -> &'static [&'static str] {
        match self {
            Durability::Fast => &[
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
                "max_connections=200",
            ],
            Durability::Durable => &["max_connections=200"],
        }
    }

    /// Where the template and the servers live: `$TWOFACTOR_PG_TMPDIR`, else for `Fast` a
    /// writable `/dev/shm` (copying the template there takes 0.1 s instead of up to 1.5 s on
    /// a busy disk), else the system temp dir.
    fn base(self) -> PathBuf {
        if let Some(dir) = std::env::var_os("TWOFACTOR_PG_TMPDIR") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        if self == Durability::Fast
            && std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && m.mode() & 0o002 != 0)
        {
            return shm.to_owned();
        }
        std::env::temp_dir()
    }
}

/// One running PostgreSQL server, stopped and deleted on drop.
pub struct PgServer {
    port: u16,
    root: PathBuf,
    data: PathBuf,
    bin: PathBuf,
    run_as_postgres: bool,
    /// Holding this keeps the watchdog waiting; dropping it (or exiting) sets it off.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
    databases: AtomicU32,
}

impl PgServer {
    /// The server shared by all tests of this process, started on first use. It is stopped
    /// and deleted by its watchdog when the process exits.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| PgServer::start(Durability::Fast))
    }

    /// Starts a server of its own.
    ///
    /// # Panics
    ///
    /// If PostgreSQL is not installed, or the server does not start (the panic message
    /// carries its log).
    pub fn start(durability: Durability) -> PgServer {
        let bin = find_bin();
        let run_as_postgres = running_as_root();
        let base = durability.base();
        let template = template(&base, &bin, run_as_postgres);
        let root = unique_dir(&base, "twofactor-pg");
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {root:?}: {e}"));
        let data = root.join("data");
        // `cp -a` keeps the postgres user's ownership and the 0700 mode initdb requires.
        run(Command::new("cp").arg("-a").arg(&template).arg(&data));
        if run_as_postgres {
            run(Command::new("chown").arg("postgres:").arg(&root));
        }
        let mut server = PgServer {
            port: 0,
            root,
            data,
            bin,
            run_as_postgres,
            watchdog: Mutex::new(None),
            databases: AtomicU32::new(0),
        };
        server.spawn_watchdog();
        let mut last_log = String::new();
        for _ in 0..5 {
            server.port = free_port();
            let mut opts = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={}",
                server.port,
                server.root.display()
            );
            for s in durability.settings() {
                opts.push_str(" -c ");
                opts.push_str(s);
            }
            let log = server.root.join("server.log");
            let status = server
                .command("pg_ctl")
                .arg("start")
                .arg("-w")
                .args(["-t", "60", "-s"])
                .arg("-D")
                .arg(&server.data)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(&opts)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("run pg_ctl: {e}"));
            if status.success() {
                return server;
            }
            // Most likely another process took the port between our probe and the bind.
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("PostgreSQL did not start; last server log:\n{last_log}");
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser `postgres` (trust authentication).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `url` (from [`Self::url`] or [`Self::fresh_database`]) over the server's Unix socket
    /// instead of TCP: the `host` parameter names the socket's directory.
    pub fn socket_url(&self, url: &str) -> String {
        format!("{url}?host={}", self.root.display())
    }

    /// Creates a fresh, empty database and returns its URL. Tests sharing a server each use
    /// their own database.
    pub async fn fresh_database(&self, prefix: &str) -> String {
        use sqlx::Connection as _;
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("connect to test server: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let _ = admin.close().await;
        self.url(&name)
    }

    /// Stops the server now (fast shutdown: connected clients are disconnected). Calls
    /// afterwards fail to connect. Idempotent.
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-w", "-s", "-m", "fast", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The server's temporary directory (data directory, socket, log).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn spawn_watchdog(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let runner = if self.run_as_postgres {
            "runuser -u postgres --"
        } else {
            ""
        };
        // $1 = pg_ctl, $2 = data dir, $3 = root dir. `cat` returns when the write end of its
        // stdin closes: when we drop it, or when this process is gone.
        let script = format!(
            "cat >/dev/null; {runner} \"$1\" stop -w -s -m immediate -D \"$2\" >/dev/null 2>&1; \
             rm -rf \"$3\""
        );
        let mut child = Command::new("setsid")
            .args(["sh", "-c", &script, "watchdog"])
            .arg(&pg_ctl)
            .arg(&self.data)
            .arg(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the clean-up watchdog: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        *self.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some((child, stdin));
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-w", "-s", "-m", "immediate", "-D"])
            .arg(&self.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
        let watchdog = self.watchdog.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((mut child, mut stdin)) = watchdog.take() {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin`, or `$TWOFACTOR_PG_BIN`.
pub fn find_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("TWOFACTOR_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(dir.join("initdb").is_file(), "{INSTALL_HINT}");
        return dir;
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let bin = entry.path().join("bin");
            let major = entry.file_name().to_string_lossy().parse::<u32>().ok();
            if let Some(major) = major
                && bin.join("initdb").is_file()
                && bin.join("pg_ctl").is_file()
                && best.as_ref().is_none_or(|(m, _)| major > *m)
            {
                best = Some((major, bin));
            }
        }
    }
    best.map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The `initdb` output this machine's servers copy, made once.
fn template(base: &Path, bin: &Path, run_as_postgres: bool) -> PathBuf {
    let major = bin
        .parent()
        .and_then(Path::file_name)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let owner = if run_as_postgres { "postgres" } else { "self" };
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    let path = base.join(format!("twofactor-pg-template-{major}-{uid}-{owner}-v2"));
    if path.join("PG_VERSION").is_file() {
        return path;
    }
    // initdb into a private directory, then rename: concurrent processes each build one, the
    // first rename wins, the others discard theirs.
    let staging_root = unique_dir(base, "twofactor-pg-initdb");
    std::fs::create_dir_all(&staging_root).unwrap_or_else(|e| panic!("{staging_root:?}: {e}"));
    if run_as_postgres {
        run(Command::new("chown").arg("postgres:").arg(&staging_root));
    }
    let staging = staging_root.join("data");
    let mut initdb = if run_as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join("initdb"));
        c
    } else {
        Command::new(bin.join("initdb"))
    };
    initdb
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ])
        .arg("-D")
        .arg(&staging);
    run(&mut initdb);
    if std::fs::rename(&staging, &path).is_err() && !path.join("PG_VERSION").is_file() {
        panic!("could not install the PostgreSQL template at {path:?}");
    }
    let _ = std::fs::remove_dir_all(&staging_root);
    path
}

fn unique_dir(base: &Path, prefix: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base.join(format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("find a free loopback port: {e}"))
}

fn run(cmd: &mut Command) {
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed after {:?}: {}\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
