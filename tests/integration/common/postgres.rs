//! A real PostgreSQL server (Debian's `postgresql` package, which `scripts/test` installs) for the
//! archive tests: one server per test process in a fresh data directory, on a free loopback
//! port, started through the `postgres` system user when the tests run as root (the server
//! refuses to run as root). Each test gets a database of its own. A watcher stops the server
//! and removes its directory when the test process exits.
//!
//! The benchmarks use the same server (`benches/store.rs` includes this file) with its
//! durability on, as an operator's would be.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

/// The running server.
pub struct Server {
    port: u16,
    dir: PathBuf,
}

static SERVER: OnceLock<Server> = OnceLock::new();
/// Whether the server syncs its writes to disk (the benchmarks), or not (the tests).
static DURABLE: OnceLock<bool> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory of the newest installed PostgreSQL's programs, or a panic saying how to get it.
fn bin_dir() -> PathBuf {
    let root = PathBuf::from("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is missing (no /usr/lib/postgresql/<version>/bin/initdb): run \
             `scripts/test`, which installs Debian's postgresql package"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// `program args...`, as the `postgres` user when we are root.
fn as_server_user(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    fn start() -> Self {
        let bin = bin_dir();
        let dir = std::env::temp_dir().join(format!("wakurln-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let mut chown = Command::new("chown");
            chown.args(["postgres:postgres"]).arg(&dir);
            run(chown, "chown the PostgreSQL directory to postgres");
        }
        let data = dir.join("data");
        let mut initdb = as_server_user(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "--auth=trust",
            "--username=postgres",
            "--encoding=UTF8",
            "--no-sync",
        ]);
        run(initdb, "initdb");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Tests: durability off, these databases live as long as one test run. Benchmarks: the
        // server's defaults but for commits, which do not wait for their WAL flush (as the
        // SQLite archive's WAL mode with synchronous=NORMAL).
        let durability = if *DURABLE.get_or_init(|| false) {
            "-c synchronous_commit=off -c shared_buffers=512MB"
        } else {
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        };
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 {durability}",
            dir.display()
        );
        let mut start = as_server_user(bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        run(start, "pg_ctl start");
        // The watcher: once this process is gone, stop the server and remove its files.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m \
             immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runuser = if is_root() {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        // Never waited for: the watcher outlives this process on purpose.
        #[allow(clippy::zombie_processes)]
        Command::new("setsid")
            .args(["sh", "-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the PostgreSQL watcher starts");
        Self { port, dir }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

/// Makes the server, when it starts, sync its writes as a production server does.
#[allow(dead_code)] // used by the benchmarks
pub fn durable() {
    let _ = DURABLE.set(true);
}

/// The server, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(Server::start)
}

/// A URL to `database` on the server, without creating it.
pub fn url_of(database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{database}", server().port)
}

/// A fresh, empty database named after `name`; returns its URL.
pub async fn database(name: &str) -> String {
    let db = format!(
        "{}_{}",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let (client, connection) = tokio_postgres::connect(&url_of("postgres"), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL: {e}\n{}", server().log()));
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    url_of(&db)
}
