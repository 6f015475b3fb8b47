//! The web demo: every login flow of `twofactor` in a browser, on an embedded SQLite file.
//!
//! ```sh
//! cargo run --example web --features sqlite,seal            # http://127.0.0.1:8080
//! cargo run --example web --features sqlite,seal -- --port 9000 --db /tmp/demo.db
//! ```
//!
//! The first run creates the database (`twofactor-demo.db` in the current directory), a
//! sealing key beside it, and seeded users (password `demo-password`): emma (employee), paul
//! (portal user), root (administrator), ana and gus (employees of tenants acme and globex).
//! It listens on 127.0.0.1 only; if the port is taken it takes a free one and prints it.
//!
//! Each user's Outbox page shows the mail the demo "sent" them (root sees everybody's).
//! Administrator actions take a second factor confirmed in the last 10 minutes: root sets up
//! two-factor authentication on the Account security page first, then confirms a code when
//! asked. Every change is a POST with a CSRF token; no GET changes anything.

mod app;
mod pages;
#[allow(dead_code)] // shared with the CLI demo, which uses a few more of its functions
mod twofa;

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut config = app::Config {
        db: PathBuf::from("twofactor-demo.db"),
        port: 8080,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => config.port = args.next().ok_or("--port needs a number")?.parse()?,
            "--db" => config.db = args.next().ok_or("--db needs a path")?.into(),
            "-h" | "--help" => {
                println!("usage: web [--port PORT] [--db FILE]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let (addr, _app, server) = match app::serve(config.clone()).await {
        Ok(up) => up,
        Err(e) if config.port != 0 => {
            eprintln!("port {} unavailable ({e}); taking a free one", config.port);
            app::serve(app::Config { port: 0, ..config }).await?
        }
        Err(e) => return Err(e),
    };
    println!("twofactor demo on http://{addr}/  (Ctrl-C to stop)");
    server.await?;
    Ok(())
}
