//! `SmtpMailer` against a real SMTP server: Python's aiosmtpd, started by each test on a free
//! loopback port with the handler `tests/support/smtp_sink.py`, which writes every message it
//! accepts to a directory (the bytes received, and the message as Python's `email` package
//! parses it). The tests read the messages back from there: a mailed login code is parsed
//! out of what the server received and completes a real login; every notice arrives as a
//! proper `multipart/alternative` message; a server that is down, refuses, hangs or speaks
//! the wrong TLS gives the caller a typed error. A login whose code could not be sent keeps
//! its ticket: once the server is back, a resend delivers a code that completes it; a code
//! delivered earlier survives a resend that fails; failed sends are not counted as sent, and
//! are bounded.
//!
//! Needs `python3` with `aiosmtpd` (`python3 -m pip install aiosmtpd`; `scripts/test`
//! installs it): without it the tests fail, saying so, never skip.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use twofactor::Clock as _;
use twofactor::account::PendingStep;
use twofactor::audit::AuditKind;
use twofactor::mail::{
    DisabledBy, EnglishMessages, MailFailure, Mailer, Messages, Notice, NoticeKind, Recipient,
    SecretText, SmtpError, SmtpMailer, SmtpTls,
};
use twofactor::store::UserStore;
use twofactor::testing::{ManualClock, RecordingAudit};
use twofactor::{
    EnrollmentStatus, Error, ErrorKind, Factor, LoginContext, LoginDecision, MemoryStore,
    PendingLogin, Principal, Requirement, TwoFactor, UserId, WhenUnenrolled,
};

/// 6 December 2026 at 15:04 UTC.
const T0: u64 = 1_796_569_440;
const FROM: &str = "Acme <no-reply@acme.example>";

// ----- the server -----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Deliver,
    /// 550 on every recipient.
    Refuse,
    /// The recipients accepted, the message refused with 554 once received.
    RefuseData,
    Stall,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Deliver => "deliver",
            Mode::Refuse => "refuse",
            Mode::RefuseData => "refuse-data",
            Mode::Stall => "stall",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ServerTls {
    None,
    /// STARTTLS offered and required before MAIL.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// A running aiosmtpd, killed (and its directory removed) on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn support() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support")
}

/// A loopback port nothing listens on (at the time of asking).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn temp_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "twofactor-smtp-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create the mail directory");
    dir
}

impl SmtpServer {
    fn start(mode: Mode) -> SmtpServer {
        SmtpServer::start_on(free_port(), mode, ServerTls::None)
    }

    /// Starts aiosmtpd on `port`, and waits until it accepts connections.
    fn start_on(port: u16, mode: Mode, tls: ServerTls) -> SmtpServer {
        let dir = temp_dir("server");
        let support = support();
        let mut command = Command::new("python3");
        command
            .env("PYTHONPATH", &support)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).expect("log file"));
        let (cert, key) = (
            support.join("tls/server.pem"),
            support.join("tls/server.key"),
        );
        match tls {
            ServerTls::None => {}
            ServerTls::StartTls => {
                command
                    .arg("--tlscert")
                    .arg(&cert)
                    .arg("--tlskey")
                    .arg(&key);
            }
            ServerTls::Implicit => {
                command
                    .arg("--smtpscert")
                    .arg(&cert)
                    .arg("--smtpskey")
                    .arg(&key);
            }
        }
        command
            .args(["-c", "smtp_sink.Sink"])
            .arg(&dir)
            .arg(mode.name());
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): the SMTP tests need python3 with aiosmtpd")
        });
        let mut server = SmtpServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "aiosmtpd exited ({status}) (missing? python3 -m pip install aiosmtpd):\n{}",
                    server.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen within 20 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Switches the running server to `mode` from the next message on.
    fn set_mode(&self, mode: Mode) {
        let tmp = self.dir.join("mode.tmp");
        std::fs::write(&tmp, mode.name()).expect("write the mode");
        std::fs::rename(tmp, self.dir.join("mode")).expect("switch the mode");
    }

    /// The recipients the server was asked for, accepted or not: one per attempt to send.
    fn attempts_for(&self, address: &str) -> usize {
        std::fs::read_to_string(self.dir.join("rcpt.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == address)
            .count()
    }

    /// Every message the server accepted, in order (the JSON summaries).
    fn received(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("read the mail directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read a message"))
                    .expect("a JSON summary")
            })
            .collect()
    }

    /// The bytes of the `n`th message (from 1), as the server received them.
    fn raw(&self, n: usize) -> String {
        String::from_utf8(std::fs::read(self.dir.join(format!("{n:04}.eml"))).expect("eml"))
            .expect("the message is ASCII/UTF-8")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ----- the service -----

type Addresses = HashMap<UserId, Recipient>;
type Smtp = SmtpMailer<Addresses, EnglishMessages, Arc<ManualClock>>;
type MailCodePolicy = fn(&Principal, &EnrollmentStatus, u64) -> Requirement;
type ServiceOn<S> = TwoFactor<S, Smtp, MailCodePolicy, Arc<ManualClock>, RecordingAudit>;
type Service = ServiceOn<MemoryStore>;

fn addresses() -> Addresses {
    HashMap::from([
        (
            UserId::new("marc"),
            Recipient::new("marc@acme.example").name("Marc Demo"),
        ),
        (UserId::new("lea"), Recipient::new("lea@acme.example")),
    ])
}

fn mailer(port: u16, clock: &Arc<ManualClock>) -> Smtp {
    SmtpMailer::builder("127.0.0.1", SmtpTls::Plain, FROM)
        .port(port)
        .timeout(Duration::from_secs(5))
        .messages(EnglishMessages::new("Acme").account_url("https://acme.example/account"))
        .clock(clock.clone())
        .build(addresses())
        .expect("valid settings")
}

/// Everyone must pass a second factor; without an authenticator, a code is mailed.
fn mail_code_policy(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

fn service(port: u16) -> Service {
    service_on(MemoryStore::new(), port)
}

fn service_on<S: UserStore>(store: S, port: u16) -> ServiceOn<S> {
    let clock = Arc::new(ManualClock::new(T0));
    TwoFactor::builder(store)
        .mailer(mailer(port, &clock))
        .policy(mail_code_policy as MailCodePolicy)
        .clock(clock)
        .audit(RecordingAudit::new())
        .keys(twofactor::testing::test_keys())
        .build()
}

fn marc() -> Principal {
    Principal::new("marc")
}

fn context() -> LoginContext {
    LoginContext::new()
        .ip("203.0.113.9".parse().expect("an IP"))
        .device("Firefox on Linux")
}

fn pending_of(decision: LoginDecision) -> PendingLogin {
    match decision {
        LoginDecision::CodeMailed { pending } => pending,
        other => panic!("expected CodeMailed, got {other:?}"),
    }
}

/// The plain-text and HTML parts of a received message, after checking it is a proper
/// `multipart/alternative` message in UTF-8 that Python's parser found no defect in.
fn alternative_parts(message: &Value) -> (String, String) {
    assert_eq!(
        message["content_type"], "multipart/alternative",
        "{message:#}"
    );
    assert_eq!(message["defects"], Value::Array(vec![]), "{message:#}");
    let parts = message["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 2, "{message:#}");
    let content = |part: &Value, content_type: &str| {
        assert_eq!(part["content_type"], content_type, "{message:#}");
        assert_eq!(part["charset"], "utf-8", "{message:#}");
        assert_eq!(part["defects"], Value::Array(vec![]), "{message:#}");
        part["content"]
            .as_str()
            .expect("decoded text")
            .replace("\r\n", "\n")
    };
    (
        content(&parts[0], "text/plain"),
        content(&parts[1], "text/html"),
    )
}

/// The login code in the plain text of a received message: the line after "is:".
fn code_in(message: &Value) -> String {
    let (text, html) = alternative_parts(message);
    let mut lines = text.lines().skip_while(|l| !l.ends_with(" is:")).skip(1);
    let code = lines
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("no code in {text}"))
        .trim()
        .to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code:?}"
    );
    assert!(html.contains(&format!(">{code}</p>")), "{html}");
    code
}

fn smtp_error(error: &Error) -> &SmtpError {
    match error {
        Error::Mailer(source) => source
            .downcast_ref::<SmtpError>()
            .unwrap_or_else(|| panic!("not an SmtpError: {source:?}")),
        other => panic!("expected Error::Mailer, got {other:?}"),
    }
}

/// The ticket and the mailer's error of a login whose code could not be sent.
fn not_sent(decision: LoginDecision) -> (PendingLogin, MailFailure) {
    match decision {
        LoginDecision::CodeNotSent { pending, error } => (pending, error),
        other => panic!("expected CodeNotSent, got {other:?}"),
    }
}

fn smtp_failure(failure: &MailFailure) -> &SmtpError {
    failure
        .downcast_ref::<SmtpError>()
        .unwrap_or_else(|| panic!("not an SmtpError: {failure:?}"))
}

fn login_codes_mailed<S: UserStore>(tf: &ServiceOn<S>) -> usize {
    tf.audit()
        .kinds_for(&marc().user)
        .iter()
        .filter(|k| matches!(k, AuditKind::CodeMailed { .. }))
        .count()
}

// ----- (a) a login through real mail -----

#[tokio::test]
async fn a_mailed_login_code_goes_out_over_smtp_and_completes_the_login() {
    let server = SmtpServer::start(Mode::Deliver);
    let tf = service(server.port);
    let ctx = context();

    let started = Instant::now();
    let pending = pending_of(tf.start_login(&marc(), None, &ctx).await.expect("mailed"));
    eprintln!("start_login with an SMTP send: {:?}", started.elapsed());
    assert_eq!(
        pending.step(),
        &PendingStep::MailedCode {
            code_expires_at: T0 + 3_600
        }
    );

    let received = server.received();
    assert_eq!(received.len(), 1, "one message");
    let message = &received[0];
    assert_eq!(message["mail_from"], "no-reply@acme.example");
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["marc@acme.example"])
    );
    assert_eq!(message["tls"], false);
    let headers = &message["headers"];
    assert_eq!(headers["subject"], "Your Acme login code");
    assert_eq!(headers["from"], "Acme <no-reply@acme.example>");
    assert_eq!(headers["to"], "Marc Demo <marc@acme.example>");
    assert!(
        headers["message-id"]
            .as_str()
            .is_some_and(|id| id.ends_with('>'))
    );
    assert!(headers["date"].is_string());
    let (text, _) = alternative_parts(message);
    assert!(text.starts_with("Hello Marc Demo,\n\n"), "{text}");
    assert!(
        text.contains("until 6 December 2026 at 16:04 UTC (in 60 minutes)"),
        "{text}"
    );
    assert!(text.contains("Device: Firefox on Linux"), "{text}");
    assert!(text.contains("IP address: 203.0.113.9"), "{text}");

    // The code as the user reads it completes the login; a wrong one does not.
    let code = code_in(message);
    let wrong = format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&wrong), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    let granted = tf
        .finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .expect("the mailed code logs in");
    assert_eq!(granted.factor, twofactor::account::FactorKind::MailedCode);
    // The code went only in the body: the raw message carries it once per part at most, and
    // never in a header.
    let raw = server.raw(1);
    let (head, _) = raw.split_once("\r\n\r\n").expect("headers, then a body");
    assert!(!head.contains(&code), "{head}");
}

// ----- (b) every notice, as a proper MIME message -----

fn every_notice() -> Vec<Notice> {
    let ctx = LoginContext::new()
        .ip("2001:db8::7".parse().expect("an IP"))
        .device("Safari on iPhone \u{201c}Zoë\u{2019}s\u{201d}")
        .location("Zürich, Switzerland");
    vec![
        Notice::LoginCode {
            code: SecretText::new("042917"),
            expires_at: T0 + 3_600,
            context: ctx.clone(),
        },
        Notice::Enabled,
        Notice::Rotated { devices_revoked: 2 },
        Notice::Disabled {
            by: DisabledBy::Admin {
                admin: UserId::new("root"),
            },
        },
        Notice::DeviceTrusted {
            label: "Zoë's <iPhone> & \"work\" laptop".to_owned(),
            context: ctx.clone(),
        },
        Notice::DevicesRemoved {
            labels: vec!["Firefox on Linux".to_owned(), "Zoë's iPhone".to_owned()],
        },
        Notice::SignInFromUntrustedDevice {
            context: ctx.clone(),
        },
        Notice::FailedCodeAttempt {
            context: ctx.clone(),
        },
        Notice::RecoveryCodesRegenerated,
        Notice::RecoveryCodeUsed {
            remaining: 2,
            low: true,
            context: ctx,
        },
        Notice::Invitation {
            link: "https://acme.example/account/2fa?from=invite&x=\"<y>\"".to_owned(),
            invited_by: UserId::new("root"),
        },
        Notice::ProvisionedSecret {
            uri: SecretText::new(
                "otpauth://totp/Acme:marc%40acme.example?secret=JBSWY3DPEHPK3PXP&issuer=Acme",
            ),
            manual_key: SecretText::new("JBSW Y3DP EHPK 3PXP"),
            expires_at: T0 + 86_400,
            provisioned_by: UserId::new("root"),
        },
    ]
}

#[tokio::test]
async fn every_notice_arrives_as_multipart_alternative_with_its_rendered_words() {
    let server = SmtpServer::start(Mode::Deliver);
    let clock = Arc::new(ManualClock::new(T0));
    let mut book = addresses();
    book.insert(
        UserId::new("zoe"),
        Recipient::new("zoe@acme.example").name("Zoë \"Z\" Çelik"),
    );
    let messages = EnglishMessages::new("Acme").account_url("https://acme.example/account");
    let mailer = SmtpMailer::builder("127.0.0.1", SmtpTls::Plain, FROM)
        .port(server.port)
        .messages(messages.clone())
        .clock(clock.clone())
        .build(book)
        .expect("valid settings");
    let zoe = UserId::new("zoe");
    let to = Recipient::new("zoe@acme.example").name("Zoë \"Z\" Çelik");
    let notices = every_notice();
    let kinds: std::collections::HashSet<NoticeKind> = notices.iter().map(Notice::kind).collect();
    assert_eq!(kinds.len(), 12, "every kind of notice");

    let started = Instant::now();
    for notice in &notices {
        mailer.send(&zoe, notice).await.expect("sent");
    }
    eprintln!(
        "{} notices over SMTP: {:?} ({:?} each)",
        notices.len(),
        started.elapsed(),
        started.elapsed() / u32::try_from(notices.len()).expect("few")
    );

    let received = server.received();
    assert_eq!(received.len(), notices.len());
    for (n, (notice, message)) in notices.iter().zip(&received).enumerate() {
        let expected = messages.render(&to, notice, T0);
        assert_eq!(
            message["headers"]["subject"],
            expected.subject(),
            "{notice:?}"
        );
        assert_eq!(
            message["headers"]["to"], "\"Zoë \\\"Z\\\" Çelik\" <zoe@acme.example>",
            "{notice:?}"
        );
        assert_eq!(message["headers"]["mime-version"], "1.0");
        assert_eq!(message["rcpt_tos"], serde_json::json!(["zoe@acme.example"]));
        let (text, html) = alternative_parts(message);
        // What the server received decodes to exactly what was rendered.
        assert_eq!(text, expected.text(), "{notice:?}");
        assert_eq!(html, expected.html(), "{notice:?}");
        assert!(html.starts_with("<!DOCTYPE html>"));
        // Non-ASCII text travels encoded (7-bit safe), and never as Rust Debug text.
        let raw = server.raw(n + 1);
        assert!(raw.is_ascii(), "{notice:?}: 8-bit message");
        assert!(!raw.contains("Some(") && !raw.contains("UserId("), "{raw}");
    }
}

// ----- (c) a server that is down, refuses or hangs -----

/// A login whose code could not be sent keeps its ticket; once the server is back, a resend
/// with that ticket delivers a code that completes the login. On `store`.
async fn down_at_login_then_resend_once_back<S: UserStore>(store: S) {
    let port = free_port(); // nothing listens here yet
    let tf = service_on(store, port);
    let ctx = context();

    let started = Instant::now();
    let (pending, error) = not_sent(tf.start_login(&marc(), None, &ctx).await.expect("a ticket"));
    eprintln!(
        "start_login, server down: {error} after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(smtp_failure(&error), SmtpError::Connect(_)),
        "{error:?}"
    );
    assert!(smtp_failure(&error).is_transient());
    assert_eq!(
        pending.step(),
        &PendingStep::MailedCode {
            code_expires_at: T0 + 3_600
        }
    );
    // The failure is in the audit trail; nobody was let in.
    let trail = tf.audit().kinds_for(&marc().user);
    assert!(
        trail.contains(&AuditKind::NoticeFailed {
            notice: NoticeKind::LoginCode
        }),
        "{trail:?}"
    );
    assert!(
        !trail
            .iter()
            .any(|k| matches!(k, AuditKind::LoginSucceeded { .. }))
    );
    // The record knows the code was not sent, and nothing else is pending.
    let row = stored_row(&tf).await;
    assert_eq!(row["outgoing"]["delivery"], "not_sent", "{row}");
    assert_eq!(row["mailed"], Value::Null);
    assert_eq!(row["mail_sends"], serde_json::json!([]), "given back");
    assert_eq!(row["mail_attempts"], serde_json::json!([T0]));

    // The server comes back: the same ticket asks again, and the code it gets logs in.
    tf.clock().advance(60);
    let server = SmtpServer::start_on(port, Mode::Deliver, ServerTls::None);
    let expires_at = tf.resend_mailed_code(&pending, &ctx).await.expect("resent");
    assert_eq!(expires_at, T0 + 60 + 3_600);
    let received = server.received();
    assert_eq!(received.len(), 1, "the failed send left nothing behind");
    let code = code_in(&received[0]);
    let row = stored_row(&tf).await;
    assert_eq!(row["outgoing"], Value::Null, "{row}");
    assert_eq!(row["mail_sends"], serde_json::json!([T0 + 60]));
    tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .expect("the code from the server logs in");
    assert_eq!(login_codes_mailed(&tf), 2);
}

/// marc's stored row, as JSON.
async fn stored_row<S: UserStore>(tf: &ServiceOn<S>) -> Value {
    let loaded = tf
        .store()
        .load(&marc().user)
        .await
        .unwrap_or_else(|_| panic!("load"))
        .expect("a row");
    serde_json::from_str(&twofactor::store::codec::encode_record(&loaded.record).expect("encode"))
        .expect("JSON")
}

#[tokio::test]
async fn a_server_down_at_login_leaves_a_ticket_and_a_resend_delivers_once_it_is_back() {
    down_at_login_then_resend_once_back(MemoryStore::new()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_same_on_sqlite() {
    let store = twofactor::SqliteStore::in_memory().await.expect("sqlite");
    down_at_login_then_resend_once_back(store).await;
}

#[tokio::test]
async fn a_refusing_server_leaves_a_ticket_and_a_resend_delivers_once_it_accepts() {
    for (mode, refused_with) in [(Mode::Refuse, 550), (Mode::RefuseData, 554)] {
        let server = SmtpServer::start(mode);
        let tf = service(server.port);
        let ctx = context();

        let (pending, error) =
            not_sent(tf.start_login(&marc(), None, &ctx).await.expect("a ticket"));
        match smtp_failure(&error) {
            SmtpError::Refused { code, source } => {
                assert_eq!(*code, refused_with, "{mode:?}");
                // The server's words are in the source chain, not flattened into ours.
                assert!(
                    source.to_string().contains("refused by the test server"),
                    "{source}"
                );
                assert!(!error.to_string().contains("refused by the test server"));
            }
            other => panic!("{mode:?}: expected Refused, got {other:?}"),
        }
        assert!(!smtp_failure(&error).is_transient());
        assert!(server.received().is_empty());
        assert_eq!(server.attempts_for("marc@acme.example"), 1);

        // The same server, now accepting: the ticket's resend delivers.
        server.set_mode(Mode::Deliver);
        tf.clock().advance(60);
        tf.resend_mailed_code(&pending, &ctx).await.expect("resent");
        let received = server.received();
        assert_eq!(received.len(), 1, "{mode:?}");
        let code = code_in(&received[0]);
        tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
            .await
            .expect("logs in");
    }
}

#[tokio::test]
async fn a_delivered_code_survives_resends_that_fail_until_a_new_one_is_delivered() {
    let server = SmtpServer::start(Mode::Deliver);
    let port = server.port;
    let tf = service(port);
    let ctx = context();
    let pending = pending_of(tf.start_login(&marc(), None, &ctx).await.expect("mailed"));
    let first = code_in(&server.received()[0]);

    // The user asks for the code again; the server refuses, then is down.
    server.set_mode(Mode::Refuse);
    tf.clock().advance(60);
    let error = tf
        .resend_mailed_code(&pending, &ctx)
        .await
        .expect_err("refused");
    assert!(
        matches!(smtp_error(&error), SmtpError::Refused { code: 550, .. }),
        "{error:?}"
    );
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    drop(server);
    tf.clock().advance(60);
    let error = tf
        .resend_mailed_code(&pending, &ctx)
        .await
        .expect_err("server down");
    assert!(
        matches!(smtp_error(&error), SmtpError::Connect(_)),
        "{error:?}"
    );
    assert_eq!(error.http_status(), 503);

    // Back up: a resend delivers a second code, which replaces the first.
    let server = SmtpServer::start_on(port, Mode::Deliver, ServerTls::None);
    tf.clock().advance(60);
    tf.resend_mailed_code(&pending, &ctx).await.expect("resent");
    let second = code_in(&server.received()[0]);
    assert_ne!(first, second);
    // Now the server is down again: another failed resend takes nothing away.
    server.set_mode(Mode::RefuseData);
    tf.clock().advance(60);
    assert!(tf.resend_mailed_code(&pending, &ctx).await.is_err());
    assert!(matches!(
        tf.finish_login(&pending, Factor::MailedCode(&first), None, &ctx)
            .await,
        Err(Error::InvalidCode)
    ));
    tf.finish_login(&pending, Factor::MailedCode(&second), None, &ctx)
        .await
        .expect("the code delivered last still logs in after the failed resend");

    // The same with nothing delivered in between: the code of the login itself survives.
    tf.clock().advance(60);
    server.set_mode(Mode::Deliver);
    let pending = pending_of(tf.start_login(&marc(), None, &ctx).await.expect("mailed"));
    let third = code_in(&server.received()[1]);
    drop(server);
    for _ in 0..3 {
        tf.clock().advance(30);
        assert!(tf.resend_mailed_code(&pending, &ctx).await.is_err());
    }
    tf.finish_login(&pending, Factor::MailedCode(&third), None, &ctx)
        .await
        .expect("the code mailed at login survives three failed resends");
}

#[tokio::test]
async fn failed_sends_are_not_counted_as_sent_and_are_bounded() {
    let server = SmtpServer::start(Mode::Refuse);
    let tf = service(server.port);
    let ctx = context();

    // Four attempts refused (the login and three resends), then five delivered: the failed
    // ones do not use up the five codes an hour a user may be sent.
    let (pending, _) = not_sent(tf.start_login(&marc(), None, &ctx).await.expect("a ticket"));
    for _ in 0..3 {
        tf.clock().advance(10);
        assert!(matches!(
            tf.resend_mailed_code(&pending, &ctx).await,
            Err(Error::Mailer(_))
        ));
    }
    server.set_mode(Mode::Deliver);
    for _ in 0..5 {
        tf.clock().advance(10);
        tf.resend_mailed_code(&pending, &ctx)
            .await
            .expect("delivered");
    }
    assert_eq!(server.received().len(), 5);
    // The sixth delivered code in the hour is refused; the last one still works.
    tf.clock().advance(10);
    let error = tf
        .resend_mailed_code(&pending, &ctx)
        .await
        .expect_err("five sent this hour");
    assert_eq!(error.retry_after(tf.clock().now()), Some(3_600 - 90 + 40));
    assert_eq!(server.attempts_for("marc@acme.example"), 9);
    let last = code_in(&server.received()[4]);
    tf.finish_login(&pending, Factor::MailedCode(&last), None, &ctx)
        .await
        .expect("the last code delivered logs in");

    // Failed sends are bounded on their own: 15 attempts an hour, delivered or not. Someone
    // with lea's password cannot make the server hammer the mail server.
    server.set_mode(Mode::Refuse);
    let lea = Principal::new("lea");
    let start = tf.clock().now();
    let (pending, _) = not_sent(tf.start_login(&lea, None, &ctx).await.expect("a ticket"));
    for _ in 1..15 {
        tf.clock().advance(1);
        assert!(matches!(
            tf.resend_mailed_code(&pending, &ctx).await,
            Err(Error::Mailer(_))
        ));
    }
    assert_eq!(server.attempts_for("lea@acme.example"), 15);
    server.set_mode(Mode::Deliver);
    for _ in 0..3 {
        tf.clock().advance(1);
        let error = tf
            .resend_mailed_code(&pending, &ctx)
            .await
            .expect_err("bounded");
        assert!(matches!(error, Error::Throttled { .. }), "{error:?}");
        assert_eq!(
            error.retry_after(tf.clock().now()),
            Some(start + 3_600 - tf.clock().now())
        );
        let again = tf.start_login(&lea, None, &ctx).await;
        assert!(matches!(again, Err(Error::Throttled { .. })), "{again:?}");
    }
    assert_eq!(
        server.attempts_for("lea@acme.example"),
        15,
        "nothing more was tried"
    );
    assert!(server.received().len() == 5, "nothing reached lea");
    // An hour after the first attempt, a new login mails a code that works.
    tf.clock().set(start + 3_600);
    let pending = pending_of(tf.start_login(&lea, None, &ctx).await.expect("mailed"));
    let code = code_in(&server.received()[5]);
    tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .expect("logs in");
}

#[tokio::test]
async fn a_server_that_hangs_is_a_timeout_after_the_configured_delay() {
    let server = SmtpServer::start(Mode::Stall);
    let clock = Arc::new(ManualClock::new(T0));
    let mailer = SmtpMailer::builder("127.0.0.1", SmtpTls::Plain, FROM)
        .port(server.port)
        .timeout(Duration::from_secs(1))
        .clock(clock)
        .build(addresses())
        .expect("valid settings");
    let started = Instant::now();
    let error = mailer
        .send(&UserId::new("marc"), &Notice::Enabled)
        .await
        .expect_err("no answer");
    let waited = started.elapsed();
    eprintln!("hung server: {error} after {waited:?}");
    assert!(matches!(error, SmtpError::Timeout(_)), "{error:?}");
    assert!(error.is_transient());
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn a_user_without_an_address_is_a_typed_error() {
    let server = SmtpServer::start(Mode::Deliver);
    let tf = service(server.port);
    let nobody = Principal::new("nobody");
    let (_, error) = not_sent(
        tf.start_login(&nobody, None, &LoginContext::new())
            .await
            .expect("a ticket"),
    );
    match smtp_failure(&error) {
        SmtpError::NoAddress { user } => assert_eq!(user, &nobody.user),
        other => panic!("expected NoAddress, got {other:?}"),
    }
    assert!(server.received().is_empty());

    // An address that is not one is refused before anything is sent.
    let clock = Arc::new(ManualClock::new(T0));
    let mailer = SmtpMailer::builder("127.0.0.1", SmtpTls::Plain, FROM)
        .port(server.port)
        .clock(clock)
        .build(HashMap::from([(
            UserId::new("marc"),
            Recipient::new("marc at acme"),
        )]))
        .expect("valid settings");
    let error = mailer
        .send(&UserId::new("marc"), &Notice::Enabled)
        .await
        .expect_err("invalid address");
    assert!(
        matches!(error, SmtpError::InvalidAddress { .. }),
        "{error:?}"
    );
    assert!(server.received().is_empty());
}

// ----- TLS -----

fn tls_mailer(port: u16, tls: SmtpTls, trust_test_ca: bool) -> SmtpMailer<Addresses> {
    let mut builder = SmtpMailer::builder("127.0.0.1", tls, FROM)
        .port(port)
        .timeout(Duration::from_secs(5));
    if trust_test_ca {
        let ca = std::fs::read(support().join("tls/ca.pem")).expect("the test CA");
        builder = builder.root_certificate_pem(ca);
    }
    builder.build(addresses()).expect("valid settings")
}

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_to_a_server_with_a_trusted_certificate() {
    for (server_tls, tls) in [
        (ServerTls::StartTls, SmtpTls::StartTls),
        (ServerTls::Implicit, SmtpTls::Implicit),
    ] {
        let server = SmtpServer::start_on(free_port(), Mode::Deliver, server_tls);
        tls_mailer(server.port, tls, true)
            .send(&UserId::new("marc"), &Notice::Enabled)
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e:?}\n{}", server.log()));
        let received = server.received();
        assert_eq!(received.len(), 1, "{tls:?}");
        assert_eq!(received[0]["tls"], true, "{tls:?}: the message crossed TLS");
        alternative_parts(&received[0]);
    }
}

#[tokio::test]
async fn tls_never_falls_back_to_clear_text() {
    // A certificate from an authority the mailer does not trust.
    let server = SmtpServer::start_on(free_port(), Mode::Deliver, ServerTls::Implicit);
    let error = tls_mailer(server.port, SmtpTls::Implicit, false)
        .send(&UserId::new("marc"), &Notice::Enabled)
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(error, SmtpError::Tls(_)), "{error:?}");
    assert!(server.received().is_empty());
    drop(server);

    // STARTTLS required, and the server does not offer it: nothing is sent in clear.
    let server = SmtpServer::start(Mode::Deliver);
    let error = tls_mailer(server.port, SmtpTls::StartTls, true)
        .send(&UserId::new("marc"), &Notice::Enabled)
        .await
        .expect_err("no STARTTLS");
    assert!(matches!(error, SmtpError::Protocol(_)), "{error:?}");
    assert!(server.received().is_empty());
}
