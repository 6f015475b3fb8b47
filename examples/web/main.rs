//! The web demo: every login flow of `twofactor` in a browser, on an embedded SQLite file,
//! built on `twofactor::axum`.
//!
//! ```sh
//! cargo run --example web --features sqlite,seal,axum            # http://127.0.0.1:8080
//! cargo run --example web --features sqlite,seal,axum -- --port 9000 --db /tmp/demo.db
//! # real mail through an SMTP server (a local relay here):
//! cargo run --example web --features sqlite,seal,axum,smtp -- --smtp 127.0.0.1:1025
//! ```
//!
//! The first run creates the database (`twofactor-demo.db` in the current directory), a
//! sealing key beside it, and seeded users (password `demo-password`): emma (employee), paul
//! (portal user), root (administrator), ana and gus (employees of tenants acme and globex).
//! It listens on 127.0.0.1 only; if the port is taken it takes a free one and prints it.
//!
//! Mail (login codes, notices, invitations) goes to the Outbox page, where each user sees
//! their own (root sees everybody's); with `--smtp HOST:PORT` it is sent through that SMTP
//! server instead (to the users' addresses). Administrator actions take a second factor
//! confirmed in the last 10 minutes: root sets up two-factor authentication on the Account
//! security page first, then confirms a code when asked. Every change is a POST with a CSRF
//! token; no GET changes anything.

mod app;
mod demo;
mod pages;

use std::path::PathBuf;

const USAGE: &str =
    "usage: web [--port PORT] [--db FILE] [--smtp HOST:PORT [--smtp-tls plain|starttls|tls]
           [--smtp-user USER] [--smtp-from MAILBOX] [--smtp-ca PEM_FILE]]
  --smtp        send mail through this SMTP server instead of keeping it in the Outbox page
                (needs the `smtp` feature: --features sqlite,seal,axum,smtp)
  --smtp-tls    plain (the default for a server on this machine), starttls (the default
                otherwise) or tls (implicit TLS)
  --smtp-user   log in as USER, with the password in the environment variable SMTP_PASSWORD
  --smtp-from   the sender (default: twofactor demo <no-reply@demo.example>)
  --smtp-ca     also trust this certificate authority (PEM)";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut config = demo::Config {
        port: 8080,
        ..demo::Config::new("twofactor-demo.db")
    };
    let (mut tls, mut user, mut from, mut ca) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or(format!("{arg} needs a value (try --help)"))
        };
        match arg.as_str() {
            "--port" => config.port = value()?.parse()?,
            "--db" => config.db = value()?.into(),
            "--smtp" => {
                let server = value()?;
                let (host, port) = server.rsplit_once(':').ok_or("--smtp HOST:PORT")?;
                config.smtp = Some(demo::Smtp {
                    host: host.trim_start_matches('[').trim_end_matches(']').into(),
                    port: port.parse()?,
                    tls: String::new(),
                    login: None,
                    from: String::new(),
                    ca: None,
                });
            }
            "--smtp-tls" => tls = Some(value()?),
            "--smtp-user" => user = Some(value()?),
            "--smtp-from" => from = Some(value()?),
            "--smtp-ca" => ca = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    if config.smtp.is_some() && cfg!(not(feature = "smtp")) {
        return Err(demo::NO_SMTP.into());
    }
    match config.smtp.as_mut() {
        Some(smtp) => {
            let local = ["localhost", "127.0.0.1", "::1"].contains(&smtp.host.as_str());
            let default_tls = if local { "plain" } else { "starttls" };
            smtp.tls = tls.unwrap_or_else(|| default_tls.into());
            smtp.from = from.unwrap_or_else(|| "twofactor demo <no-reply@demo.example>".into());
            smtp.ca = ca;
            if let Some(user) = user {
                let password = std::env::var("SMTP_PASSWORD")
                    .map_err(|_| "--smtp-user needs the password in SMTP_PASSWORD")?;
                smtp.login = Some((user, password));
            }
        }
        None if tls.is_some() || user.is_some() || from.is_some() || ca.is_some() => {
            return Err("the --smtp-* options need --smtp HOST:PORT".into());
        }
        None => {}
    }
    let mail = match &config.smtp {
        Some(s) => format!("mail goes through the SMTP server at {}:{}", s.host, s.port),
        None => "mail goes to the Outbox page".into(),
    };
    let (addr, _app, server) = match app::serve(config.clone()).await {
        Ok(up) => up,
        Err(e) if config.port != 0 && e.is::<std::io::Error>() => {
            eprintln!("port {} unavailable ({e}); taking a free one", config.port);
            app::serve(demo::Config { port: 0, ..config }).await?
        }
        Err(e) => return Err(e),
    };
    println!("{mail}");
    println!("twofactor demo on http://{addr}/  (Ctrl-C to stop)");
    if cfg!(feature = "webauthn") {
        let port = addr.port();
        println!("security keys: open http://localhost:{port}/ (WebAuthn needs a domain name)");
    }
    server.await?;
    Ok(())
}
