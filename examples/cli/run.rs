//! The CLI demo's commands, as a function of the arguments, an input and an output, so the test
//! drives it in-process. Passwords and codes are read one per line from the input (a prompt is
//! printed only on a terminal).

use std::io::{BufRead, Write};

use twofactor::UserId;

use crate::demo::{self, Config};
use crate::twofa::{self, Next, Step};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Usage text.
pub const USAGE: &str = "usage: cli [--db FILE] COMMAND
  signup NAME EMAIL          create a user (password from the input)
  enroll NAME                password (and, under a mailed-code policy, the mailed code), then
                             the QR code and key; confirms with the next input line if any
  confirm NAME CODE          confirm a pending enrollment (password from the input)
  login NAME [--device TOKEN] [--remember LABEL]
                             password, then a code or recovery code (next input lines)
  status NAME                2FA status and trusted devices (password from the input)
  revoke NAME (DEVICE|--all) revoke trusted devices (password from the input)
  admin-reset NAME ADMIN     ADMIN (a superuser with 2FA on: password, then a code or
                             recovery code from the input) resets NAME's 2FA
  outbox NAME                the messages the demo 'sent' to NAME (password from the input;
                             a superuser sees everybody's)
  reseal OLD_KEY_FILE NEW_KEY_FILE [--old-id ID] [--new-id ID]
         [--accept-untagged] [--accept-unsealed]
                             re-seal every 2FA record under the new key (files of 64 hex
                             digits, as DB.key; ids default to demo-1 and demo-2)";

/// Input lines, with an optional prompt on a terminal.
struct Input<'a> {
    lines: &'a mut dyn BufRead,
    tty: bool,
}

impl Input<'_> {
    fn line(&mut self, out: &mut dyn Write, prompt: &str) -> Result<Option<String>, BoxError> {
        if self.tty {
            write!(out, "{prompt}: ")?;
            out.flush()?;
        }
        let mut s = String::new();
        if self.lines.read_line(&mut s)? == 0 {
            return Ok(None);
        }
        Ok(Some(s.trim_end_matches(['\r', '\n']).to_owned()))
    }
    fn required(&mut self, out: &mut dyn Write, prompt: &str) -> Result<String, BoxError> {
        self.line(out, prompt)?
            .ok_or_else(|| format!("{prompt}: no input").into())
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Runs one command; returns the process exit code (0 success, 1 refused, 2 usage).
pub async fn run(
    args: &[String],
    lines: &mut dyn BufRead,
    out: &mut dyn Write,
    tty: bool,
) -> Result<i32, BoxError> {
    let mut args = args.to_vec();
    let mut db = std::path::PathBuf::from("twofactor-demo.db");
    if let Some(i) = args.iter().position(|a| a == "--db") {
        db = args.get(i + 1).ok_or("--db needs a path")?.into();
        args.drain(i..i + 2);
    }
    let Some(command) = args.first().cloned() else {
        writeln!(out, "{USAGE}")?;
        return Ok(2);
    };
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or_else(|| BoxError::from(format!("missing argument\n{USAGE}")))
    };
    if command == "reseal" {
        return crate::reseal::run(&db, &args[1..], out).await;
    }
    let app = demo::open(&Config::new(db)).await?;
    let tf = &app.tf;
    let mut input = Input { lines, tty };
    let now = || twofactor::Clock::now(&*app.clock);
    let code = match command.as_str() {
        "signup" => {
            let (name, email) = (arg(1)?, arg(2)?);
            let password = input.required(out, "New password")?;
            if password.len() < 8 {
                writeln!(out, "refused: the password needs 8 characters or more")?;
                1
            } else if demo::create_user(&app, &name, &email, &password, "portal", None, false)
                .await?
            {
                writeln!(out, "created {name}")?;
                0
            } else {
                writeln!(out, "refused: that name is taken")?;
                1
            }
        }
        "enroll" => {
            let name = arg(1)?;
            let password = input.required(out, "Password")?;
            let Some(user) = demo::check_password(&app, &name, &password).await? else {
                writeln!(out, "refused: wrong name or password")?;
                return finish(&app, 1).await;
            };
            let mut started =
                twofa::start_enrollment(tf, &user.principal(), &user.email, now(), None).await;
            if started.as_ref().is_err_and(|e| e.second_factor_required) {
                // A mailed-code policy: the password is not enough. Log in with the mailed
                // code first; its proof opens the set-up (in this run only).
                started =
                    match mailed_code_proof(tf, &user.principal(), &name, &mut input, out).await? {
                        Ok(proof) => {
                            twofa::start_enrollment(
                                tf,
                                &user.principal(),
                                &user.email,
                                now(),
                                Some(&proof),
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    };
            }
            match started {
                Ok(setup) => {
                    writeln!(
                        out,
                        "Scan this QR code with your authenticator app:\n{}",
                        twofa::terminal_qr(&setup, tty)
                    )?;
                    writeln!(
                        out,
                        "Cannot scan it? Enter this key: {}",
                        setup.manual_key()
                    )?;
                    match input.line(out, "Code from the app")? {
                        Some(c) => confirm(tf, &user.principal().user, &c, out).await?,
                        None => {
                            writeln!(out, "then confirm with: cli confirm {name} CODE")?;
                            0
                        }
                    }
                }
                Err(e) => refused(out, &e)?,
            }
        }
        "confirm" => {
            let (name, c) = (arg(1)?, arg(2)?);
            match authenticate(&app, &name, &mut input, out).await? {
                Some(user) => confirm(tf, &user.principal().user, &c, out).await?,
                None => 1,
            }
        }
        "login" => {
            let name = arg(1)?;
            let password = input.required(out, "Password")?;
            let Some(user) = demo::check_password(&app, &name, &password).await? else {
                writeln!(out, "refused: wrong name or password")?;
                return finish(&app, 1).await;
            };
            let ctx = twofa::context(None, "terminal");
            let device = flag(&args, "--device");
            let begun = twofa::start_login(tf, &user.principal(), device.as_deref(), &ctx).await;
            match begun.map(|(next, _)| next) {
                Ok(Next::LoggedIn(note)) => {
                    writeln!(
                        out,
                        "logged in{}",
                        note.map(|n| format!(" ({n})")).unwrap_or_default()
                    )?;
                    0
                }
                Ok(Next::Second(half)) if half.step() == Step::Enroll => {
                    writeln!(
                        out,
                        "two-factor authentication is required: run `cli enroll {name}` first"
                    )?;
                    1
                }
                Ok(Next::Second(half)) => {
                    let mailed = half.step() == Step::Mailed;
                    if mailed {
                        writeln!(out, "a login code was mailed (see: cli outbox {name})")?;
                    }
                    let c = input.required(
                        out,
                        if mailed {
                            "Mailed code"
                        } else {
                            "Code or recovery code"
                        },
                    )?;
                    let remember = flag(&args, "--remember");
                    match twofa::finish_login(tf, &half, &c, remember.as_deref(), &ctx).await {
                        Ok(g) => {
                            writeln!(
                                out,
                                "logged in{}",
                                g.note.map(|n| format!(" ({n})")).unwrap_or_default()
                            )?;
                            if let Some(t) = g.device {
                                writeln!(
                                    out,
                                    "device token (pass with --device): {}",
                                    t.expose_secret()
                                )?;
                            }
                            0
                        }
                        Err(e) => refused(out, &e)?,
                    }
                }
                Err(e) => refused(out, &e)?,
            }
        }
        "status" => match authenticate(&app, &arg(1)?, &mut input, out).await? {
            None => 1,
            Some(user) => match twofa::status(tf, &user.principal().user).await {
                Ok(s) => {
                    writeln!(
                        out,
                        "2FA: {}; recovery codes left: {}",
                        if s.enrolled { "on" } else { "off" },
                        s.recovery_left
                    )?;
                    for d in &s.devices {
                        writeln!(
                            out,
                            "device {}  {}  trusted until {}",
                            d.id.as_str(),
                            d.label,
                            demo::when(d.expires_at)
                        )?;
                    }
                    0
                }
                Err(e) => refused(out, &e)?,
            },
        },
        "revoke" => {
            let (name, which) = (arg(1)?, arg(2)?);
            let Some(user) = authenticate(&app, &name, &mut input, out).await? else {
                return finish(&app, 1).await;
            };
            let user = user.principal().user;
            let result = if which == "--all" {
                twofa::revoke_all(tf, &user)
                    .await
                    .map(|n| format!("{n} device(s) revoked"))
            } else {
                twofa::revoke_device(tf, &user, &which)
                    .await
                    .map(|()| "device revoked".to_string())
            };
            match result {
                Ok(msg) => {
                    writeln!(out, "{msg}")?;
                    0
                }
                Err(e) => refused(out, &e)?,
            }
        }
        "admin-reset" => {
            let (name, admin) = (arg(1)?, arg(2)?);
            let password = input.required(out, "Administrator password")?;
            match demo::check_password(&app, &admin, &password).await? {
                Some(a) if a.superuser => {
                    // An administrator action takes a fresh second factor, as on the web.
                    let enrolled = twofa::status(tf, &a.principal().user)
                        .await
                        .is_ok_and(|s| s.enrolled);
                    if !enrolled {
                        writeln!(
                            out,
                            "refused: administrator actions need two-factor authentication: \
                             run `cli enroll {admin}` first"
                        )?;
                        return finish(&app, 1).await;
                    }
                    let c = input.required(out, "Administrator's code or recovery code")?;
                    let ctx = twofa::context(None, "terminal");
                    if let Err(e) =
                        twofa::verify_second_factor(tf, &a.principal().user, &c, &ctx).await
                    {
                        let code = refused(out, &e)?;
                        return finish(&app, code).await;
                    }
                    match twofa::admin_reset(tf, &UserId::new(name.as_str()), &a.principal().user)
                        .await
                    {
                        Ok(()) => {
                            writeln!(out, "2FA of {name} reset")?;
                            0
                        }
                        Err(e) => refused(out, &e)?,
                    }
                }
                _ => {
                    writeln!(out, "refused: not an administrator, or wrong password")?;
                    1
                }
            }
        }
        "outbox" => {
            let Some(user) = authenticate(&app, &arg(1)?, &mut input, out).await? else {
                return finish(&app, 1).await;
            };
            let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
                "SELECT at, user_id, subject, body FROM outbox ORDER BY id DESC LIMIT 50",
            )
            .fetch_all(&app.pool)
            .await?;
            let me = user.name.as_str();
            for (at, to, subject, body) in rows.iter().filter(|r| user.superuser || r.1 == me) {
                let at = u64::try_from(*at).map_or_else(|_| "unknown".into(), demo::when);
                writeln!(
                    out,
                    "To: {to}\nDate: {at}\nSubject: {subject}\n\n{}\n",
                    body.trim_end()
                )?;
            }
            0
        }
        _ => {
            writeln!(out, "{USAGE}")?;
            2
        }
    };
    finish(&app, code).await
}

/// Waits for the audit trail, closes the file and returns `code`.
async fn finish(app: &demo::App, code: i32) -> Result<i32, BoxError> {
    app.tf.audit().flush().await;
    app.pool.close().await;
    Ok(code)
}

/// The user `name` after checking their password (the next input line); `None` (and a
/// refusal printed) for a wrong name or password. Every command that acts for a user, or
/// shows what is theirs, asks for it.
async fn authenticate(
    app: &demo::App,
    name: &str,
    input: &mut Input<'_>,
    out: &mut dyn Write,
) -> Result<Option<demo::User>, BoxError> {
    let password = input.line(out, "Password")?.unwrap_or_default();
    let user = demo::check_password(app, name, &password).await?;
    if user.is_none() {
        writeln!(out, "refused: wrong name or password")?;
    }
    Ok(user)
}

async fn confirm(
    tf: &demo::Service,
    user: &UserId,
    code: &str,
    out: &mut dyn Write,
) -> Result<i32, BoxError> {
    match twofa::finish_enrollment(tf, user, code).await {
        Ok(c) => {
            writeln!(
                out,
                "two-factor authentication is on. Recovery codes (shown once, each works once):"
            )?;
            for c in c.codes {
                writeln!(out, "  {c}")?;
            }
            Ok(0)
        }
        Err(e) => refused(out, &e),
    }
}

/// A login with the code mailed to `who` (read from the input): the proof that the set-up
/// under a mailed-code policy needs.
async fn mailed_code_proof(
    tf: &demo::Service,
    who: &twofactor::Principal,
    name: &str,
    input: &mut Input<'_>,
    out: &mut dyn Write,
) -> Result<Result<twofactor::SecondFactorProof, twofa::UiError>, BoxError> {
    let ctx = twofa::context(None, "terminal");
    let half = match twofa::start_login(tf, who, None, &ctx).await {
        Ok((Next::Second(half), _)) if half.step() == Step::Mailed => half,
        Ok(_) => {
            return Ok(Err(twofa::UiError {
                status: 403,
                message: "a login with a mailed code is required first, and none was mailed".into(),
                second_factor_required: true,
            }));
        }
        Err(e) => return Ok(Err(e)),
    };
    writeln!(
        out,
        "a login code was mailed first (see: cli outbox {name})"
    )?;
    let code = input.required(out, "Mailed code")?;
    Ok(twofa::finish_login(tf, &half, &code, None, &ctx)
        .await
        .map(|g| g.proof))
}

fn refused(out: &mut dyn Write, e: &twofa::UiError) -> Result<i32, BoxError> {
    writeln!(out, "refused ({}): {}", e.status, e.message)?;
    Ok(1)
}
