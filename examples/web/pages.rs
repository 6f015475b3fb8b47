//! The demo's HTML: plain `format!` with one escaping helper, inline CSS, no external assets
//! (it works offline). Forms carry `{csrf}`, which `app::page` replaces with the session's token.

use crate::twofa::{PolicyConfig, Scope, Setup, Status};
use twofactor::UserId;

/// Escapes text for HTML content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // So no text can look like the `{csrf}` placeholder.
            '{' => out.push_str("&#123;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;color:#222}\
nav{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ddd;padding-bottom:.5rem;margin-bottom:1rem}\
nav form{margin-left:auto}h1{font-size:1.5rem}section{border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}\
label{display:block;margin:.5rem 0}input[type=text],input[type=password],input[type=email],input[type=number],select{font:inherit;padding:.3rem;width:16rem}\
button{font:inherit;padding:.3rem .8rem;border-radius:6px;border:1px solid #888;background:#f4f4f4;cursor:pointer}\
.error{background:#fde8e8;border:1px solid #e99;padding:.5rem;border-radius:6px}.flash{background:#e8f4fd;border:1px solid #9bd;padding:.5rem;border-radius:6px}\
.warn{background:#fff6dd;border:1px solid #e5c07b;padding:.5rem;border-radius:6px}code,.key{font-family:ui-monospace,monospace}\
.key{font-size:1.2rem;letter-spacing:.05em}.qr svg{width:200px;height:200px}table{border-collapse:collapse;width:100%}\
td,th{border-bottom:1px solid #eee;padding:.3rem;text-align:left;vertical-align:top}ul.codes{columns:2;font-family:ui-monospace,monospace}";

/// The page frame.
pub fn layout(title: &str, user: Option<&str>, csrf: &str, body: &str) -> String {
    let nav = match user {
        Some(u) => format!(
            "<a href=/account>Account security</a><a href=/admin>Admin</a><a href=/outbox>Outbox</a><a href=/audit>Audit</a>\
             <form method=post action=/logout><span id=whoami>{}</span> <input type=hidden name=csrf value=\"{}\"><button id=logout>Log out</button></form>",
            esc(u),
            esc(csrf)
        ),
        None => "<a href=/login>Log in</a><a href=/signup>Sign up</a>".into(),
    };
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{t} - twofactor demo</title><style>{CSS}</style></head><body><nav><strong>twofactor demo</strong>{nav}</nav>\
         <h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    )
}

fn hidden() -> &'static str {
    "<input type=hidden name=csrf value=\"{csrf}\">"
}

/// Sign-up form.
pub fn signup() -> String {
    format!(
        "<form method=post action=/signup>{}<label>Name <input type=text id=username name=username required></label>\
         <label>E-mail <input type=email id=email name=email required></label>\
         <label>Password <input type=password id=password name=password minlength=8 required></label>\
         <button id=signup>Sign up</button></form>",
        hidden()
    )
}

/// Password form.
pub fn login() -> String {
    format!(
        "<form method=post action=/login>{}<label>Name <input type=text id=username name=username autocomplete=username required></label>\
         <label>Password <input type=password id=password name=password autocomplete=current-password required></label>\
         <button id=login>Log in</button></form>\
         <p>Seeded users (password <code>demo-password</code>): emma (employee), paul (portal user), root (administrator), \
         ana (employee, tenant acme), gus (employee, tenant globex).</p>",
        hidden()
    )
}

/// The second step: one input for a code or a recovery code, or the mailed code.
pub fn code(mailed: bool, recovery: bool) -> String {
    let (prompt, extra) = if mailed {
        (
            "Enter the code we mailed you (it is in <a id=mailbox href=/outbox>your outbox</a>, this demo's mailbox).",
            format!(
                "<form method=post action=/login/resend>{}<button id=resend>Resend the code</button></form>",
                hidden()
            ),
        )
    } else if recovery {
        (
            "Enter the code from your authenticator app, or one of your recovery codes.",
            String::new(),
        )
    } else {
        ("Enter the code from your authenticator app.", String::new())
    };
    format!(
        "<p>{prompt}</p><form method=post action=/login/code>{}<label>Code <input type=text id=code name=code \
         autocomplete=one-time-code autofocus required></label>{}<button id=verify>Verify</button></form>{extra}",
        hidden(),
        if mailed {
            ""
        } else {
            "<label><input type=checkbox id=remember name=remember> Don't ask again on this device</label>"
        }
    )
}

/// The QR code, the grouped key and the confirmation form.
pub fn setup(s: &Setup, action: &str, forced: bool) -> String {
    let why = if forced {
        "<p class=warn>Your organisation requires two-factor authentication: set it up to continue.</p>"
    } else {
        ""
    };
    format!(
        "{why}<ol><li>Scan this QR code with your authenticator app:<div class=qr id=qr>{}</div>\
         <details><summary>Cannot scan it?</summary><p>Enter this key in the app: <span class=key id=manual-key>{}</span></p></details></li>\
         <li>Enter the code the app shows:<form method=post action=\"{}\">{}<label>Code <input type=text id=code name=code \
         autocomplete=one-time-code required></label><button id=confirm>Confirm</button></form></li></ol>",
        s.qr_svg(),
        esc(s.manual_key()),
        esc(action),
        hidden()
    )
}

/// The forced set-up when a key is already waiting for its code.
pub fn confirm_waiting() -> String {
    format!(
        "<p class=warn>Your organisation requires two-factor authentication, and a key is waiting for its first code \
         (for example one an administrator mailed you). Enter the code your app shows for it.</p>\
         <form method=post action=/login/setup/confirm>{}<label>Code <input type=text id=code name=code \
         autocomplete=one-time-code required></label><button id=confirm>Confirm</button></form>\
         <form method=post action=/login/setup/new>{}<button id=start-over>Start over with a new key</button></form>",
        hidden(),
        hidden()
    )
}

/// The recovery codes, shown once.
pub fn recovery_codes(codes: &[String], logged_in: bool) -> String {
    let items: String = codes
        .iter()
        .map(|c| format!("<li>{}</li>", esc(c)))
        .collect();
    format!(
        "<p class=warn>Two-factor authentication is on. Keep these recovery codes somewhere safe: each works once, \
         and they are not shown again.</p><ul class=codes id=recovery-codes>{items}</ul><p><a id=continue href=\"{}\">Continue</a></p>",
        if logged_in { "/account" } else { "/login" }
    )
}

fn password_field() -> &'static str {
    "<label>Password <input type=password name=password autocomplete=current-password required></label>"
}

/// The account security page.
pub fn account(user: &UserId, s: &Status, now: u64) -> String {
    let h = hidden();
    let pw = password_field();
    let mut out = format!(
        "<p>Signed in as <strong>{}</strong>.</p>",
        esc(user.as_str())
    );
    if !s.enrolled {
        out += &format!(
            "<section id=tfa-off><h2>Two-factor authentication: off</h2><p>Protect your account with a code from an \
             authenticator app. Confirm your password to start.</p>\
             <form method=post action=/account/enable>{h}{pw}<button id=enable>Enable two-factor authentication</button></form>{}</section>",
            if s.pending {
                "<div>A set-up is waiting for its code (from this page or a key an administrator mailed you): \
                 <form method=post action=/account/confirm><input type=hidden name=csrf value=\"{csrf}\">\
                 <label>Code <input type=text id=pending-code name=code autocomplete=one-time-code required></label>\
                 <button id=confirm-pending>Confirm</button></form> Starting again replaces it.</div>"
            } else {
                ""
            }
        );
        return out;
    }
    out += &format!(
        "<section id=tfa-on><h2>Two-factor authentication: on</h2><p id=recovery-left>{} recovery codes left.</p>\
         <form method=post action=/account/recovery>{h}{pw}<label>Code or recovery code (if you logged in more than 10 minutes ago) \
         <input type=text name=code autocomplete=one-time-code></label><button id=regenerate>New recovery codes</button></form></section>",
        s.recovery_left
    );
    let rows: String = s
        .devices
        .iter()
        .map(|d| {
            format!(
                "<tr><td>{}</td><td>{} days ago</td><td>expires in {} days</td><td><form method=post action=/account/devices/revoke>{h}\
                 <input type=hidden name=device value=\"{}\"><button>Revoke</button></form></td></tr>",
                esc(&d.label),
                now.saturating_sub(d.created_at) / 86_400,
                d.expires_at.saturating_sub(now) / 86_400,
                esc(d.id.as_str())
            )
        })
        .collect();
    out += &format!(
        "<section id=devices><h2>Trusted devices</h2>{}<form method=post action=/account/devices/revoke-all>{h}\
         <button id=revoke-all>Revoke all</button></form></section>",
        if rows.is_empty() {
            "<p>None.</p>".into()
        } else {
            format!("<table>{rows}</table>")
        }
    );
    out += &format!(
        "<section><h2>New phone</h2><p>Move to a new authenticator: your trusted devices are revoked and you get new recovery codes.</p>\
         <form method=post action=/account/rotate>{h}{pw}<label>Code from your current app <input type=text name=code required></label>\
         <button id=rotate>Replace authenticator</button></form></section>\
         <section><h2>Turn off</h2><form method=post action=/account/disable>{h}{pw}<label>Code or recovery code \
         <input type=text name=code required></label><button id=disable>Disable two-factor authentication</button></form></section>"
    );
    out
}

/// One user on the administrator page.
pub struct AdminRow {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// Superuser.
    pub superuser: bool,
    /// 2FA on.
    pub enrolled: bool,
}

/// The administrator page.
pub fn admin(c: &PolicyConfig, users: &[AdminRow]) -> String {
    let h = hidden();
    let opt = |v: &str, label: &str, on: bool| {
        format!(
            "<option value={v}{}>{label}</option>",
            if on { " selected" } else { "" }
        )
    };
    let check = |on: bool| if on { " checked" } else { "" };
    let scope = [
        opt(
            "off",
            "Off (not offered; who set it up is still asked)",
            c.scope == Scope::Off,
        ),
        opt(
            "optional",
            "Optional (users choose)",
            c.scope == Scope::Optional,
        ),
        opt(
            "employees",
            "Required for employees only",
            c.scope == Scope::Employees,
        ),
        opt("all", "Required for all users", c.scope == Scope::All),
    ]
    .concat();
    let tenants: String = ["acme", "globex"]
        .iter()
        .map(|t| {
            format!(
                "<label><input type=checkbox id=tenant_{t} name=tenant_{t}{}> 2FA enabled in tenant {t}</label>",
                check(!c.tenants_off.contains(*t))
            )
        })
        .collect();
    let rows: String = users
        .iter()
        .map(|u| {
            let action = |a: &str, label: &str| {
                format!(
                    "<form method=post action=/admin/user style=display:inline>{h}<input type=hidden name=user value=\"{}\">\
                     <input type=hidden name=action value={a}><button id={a}-{}>{label}</button></form>",
                    esc(&u.name),
                    esc(&u.name)
                )
            };
            format!(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {} {}</td></tr>",
                esc(&u.name),
                if u.superuser { " (superuser)" } else { "" },
                esc(&u.role),
                esc(u.tenant.as_deref().unwrap_or("-")),
                if u.enrolled { "on" } else { "off" },
                action("reset", "Reset 2FA"),
                action("invite", "Invite"),
                action("provision", "Provision by mail")
            )
        })
        .collect();
    format!(
        "<section><h2>Policy</h2><form method=post action=/admin/policy>{h}\
         <label>Two-factor authentication <select id=scope name=scope>{scope}</select></label>\
         <label>Users without an authenticator <select id=unenrolled name=unenrolled>{}{}</select></label>\
         <label>Grace period (days) <input type=number id=grace_days name=grace_days min=0 max=365 value={}></label>\
         <label><input type=checkbox id=superuser_exempt name=superuser_exempt{}> Superusers are exempt</label>\
         {tenants}<button id=save-policy>Save policy</button></form></section>\
         <section><h2>Users</h2><p>Every action here asks for a code from your authenticator app first \
         if you confirmed none in the last 10 minutes.</p><p><em>Reset</em> is for a lost phone: the user logs in with the password and sets up again. \
         <em>Invite</em> mails a link to the account security page. <em>Provision by mail</em> is dangerous: the secret \
         travels by e-mail, and anyone who can read that mailbox can clone the authenticator; prefer an invitation.</p>\
         <table id=users><tr><th>User</th><th>Role</th><th>Tenant</th><th>2FA</th><th></th></tr>{rows}</table></section>",
        opt(
            "block",
            "must set up an authenticator at login",
            !c.mail_code
        ),
        opt("mail", "get a code by e-mail", c.mail_code),
        c.grace_days,
        check(c.superuser_exempt)
    )
}

/// The outbox: the messages the demo "sent" to this user (to everybody, for an
/// administrator), newest first, as the recipient reads them: subject, date and text.
pub fn outbox(rows: &[(i64, String, String, String)], everybody: bool) -> String {
    let items: String = rows
        .iter()
        .map(|(at, user, subject, body)| {
            format!(
                "<tr class=mail data-user=\"{u}\"><td>{}</td><td>{u}</td><td><strong class=subject>{}</strong>\
                 <pre class=body style=\"white-space:pre-wrap;font:inherit\">{}</pre></td></tr>",
                esc(&when(*at)),
                esc(subject),
                esc(body),
                u = esc(user)
            )
        })
        .collect();
    let whose = if everybody {
        "As an administrator you see everybody's mail."
    } else {
        "You see only the mail sent to you."
    };
    format!(
        "<p class=warn>Demo only: these messages would be e-mailed. Real mail is never stored, and nobody but the \
         recipient sees login codes. {whose}</p><table id=outbox><tr><th>Sent</th><th>To</th><th>Message</th></tr>{items}</table>"
    )
}

/// A Unix time as people read it; a negative (corrupt) time as "unknown".
fn when(at: i64) -> String {
    u64::try_from(at).map_or_else(|_| "unknown".into(), crate::twofa::when)
}

/// An audit event (the library's `AuditKind` as JSON, `{"kind": "login_succeeded", ...}`) in
/// words: "Login succeeded (method: totp)". Times read as dates; nothing is shown raw.
pub fn event_words(json: &str) -> String {
    fn words(s: &str) -> String {
        let s = s.replace('_', " ");
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect())
            .unwrap_or_default()
    }
    fn value(key: &str, v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.replace('_', " "),
            serde_json::Value::Number(n)
                if key.ends_with("_at") || key == "until" || key.ends_with("_by") =>
            {
                n.as_u64().map_or_else(|| n.to_string(), crate::twofa::when)
            }
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => (if *b { "yes" } else { "no" }).into(),
            serde_json::Value::Null => "none".into(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| value(key, x))
                .collect::<Vec<_>>()
                .join(", "),
            serde_json::Value::Object(o) => o
                .iter()
                .map(|(k, x)| format!("{} {}", k.replace('_', " "), value(k, x)))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(o)) => {
            let kind = o
                .get("kind")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| "Event".into(), words);
            let details: Vec<String> = o
                .iter()
                .filter(|(k, _)| *k != "kind")
                .map(|(k, v)| format!("{}: {}", k.replace('_', " "), value(k, v)))
                .collect();
            if details.is_empty() {
                kind
            } else {
                format!("{kind} ({})", details.join("; "))
            }
        }
        Ok(serde_json::Value::String(s)) => words(&s),
        _ => "Event".into(),
    }
}

/// The audit trail, newest first, in words.
pub fn audit(rows: &[(i64, String, String)]) -> String {
    let items: String = rows
        .iter()
        .map(|(at, user, event)| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&when(*at)),
                esc(user),
                esc(&event_words(event))
            )
        })
        .collect();
    format!("<table id=audit><tr><th>Time</th><th>User</th><th>Event</th></tr>{items}</table>")
}

/// The step-up page: an administrator confirms a second factor before administrator actions.
pub fn step_up(enrolled: bool) -> String {
    if !enrolled {
        return "<p class=warn id=enroll-first>Administrator actions need a fresh second factor, and your account has no \
                two-factor authentication yet: <a href=/account>set it up on the Account security page</a> first.</p>"
            .into();
    }
    format!(
        "<p class=warn>Administrator actions need a second factor proven in the last 10 minutes. Enter the code from \
         your authenticator app (or a recovery code), then repeat the action.</p>\
         <form method=post action=/admin/step-up>{}<label>Code <input type=text id=code name=code \
         autocomplete=one-time-code autofocus required></label><button id=step-up>Confirm</button></form>",
        hidden()
    )
}

/// The forced set-up when no key is waiting (it expired, or was dropped): a button starts one.
pub fn setup_start() -> String {
    format!(
        "<p class=warn>Your organisation requires two-factor authentication: set it up to continue.</p>\
         <form method=post action=/login/setup/new>{}<button id=start-setup>Show my QR code</button></form>",
        hidden()
    )
}
