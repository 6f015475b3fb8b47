//! The web demo's own HTML (the 2FA pages are `twofactor::axum`'s, in this frame): plain
//! `format!` with one escaping helper, inline CSS, no external assets (it works offline).

use crate::demo::{PolicyConfig, Scope, when};

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
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "body{max-width:46rem}nav{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;\
border-bottom:1px solid #ddd;padding-bottom:.5rem;margin-bottom:1rem}nav form{margin-left:auto}\
input[type=password],input[type=email],input[type=number]{font:inherit;padding:.35rem;width:16rem}select{font:inherit;padding:.35rem}\
td,th{vertical-align:top}";

/// The logged-in pages' navigation.
const LINKS: &[(&str, &str)] = &[
    // --- 2FA begin ---
    ("/2fa/account", "Account security"),
    // --- 2FA end ---
    ("/admin", "Admin"),
    ("/outbox", "Outbox"),
    ("/audit", "Audit"),
];

/// The page frame around every page, the 2FA pages included: navigation, and the log-out
/// button (a POST with the session's CSRF token) for a logged-in `user`.
pub fn frame(title: &str, user: Option<&str>, csrf: &str, main: &str) -> String {
    let nav = match user {
        Some(u) => {
            let links: String = LINKS
                .iter()
                .map(|(href, label)| format!("<a href={href}>{label}</a>"))
                .collect();
            format!(
                "{links}<form method=post action=/logout><span id=nav-user>{}</span> \
                 <input type=hidden name=csrf value=\"{}\"><button id=logout>Log out</button></form>",
                esc(u),
                esc(csrf)
            )
        }
        None => "<a href=/login>Log in</a><a href=/signup>Sign up</a>".into(),
    };
    // --- 2FA begin ---
    let style = twofactor::axum::DEFAULT_CSS;
    // --- 2FA end ---
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{t} - twofactor demo</title><style>{style}{CSS}</style></head><body><nav><strong>twofactor demo</strong>{nav}</nav>\
         <main>{main}</main></body></html>",
        t = esc(title)
    )
}

/// A page's heading, the notice (if any) and its body.
pub fn page(title: &str, notice: Option<&str>, body: &str) -> String {
    let notice = notice
        .map(|n| format!("<p id=notice class=notice role=status>{}</p>", esc(n)))
        .unwrap_or_default();
    format!("<h1>{}</h1>{notice}{body}", esc(title))
}

fn hidden(csrf: &str) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", esc(csrf))
}

/// Sign-up form.
pub fn signup(csrf: &str) -> String {
    format!(
        "<form method=post action=/signup>{}<label>Name <input type=text id=username name=username required></label>\
         <label>E-mail <input type=email id=email name=email required></label>\
         <label>Password <input type=password id=password name=password minlength=8 required></label>\
         <button id=signup>Sign up</button></form>",
        hidden(csrf)
    )
}

/// Password form.
pub fn login(csrf: &str) -> String {
    format!(
        "<form method=post action=/login>{}<label>Name <input type=text id=username name=username autocomplete=username required></label>\
         <label>Password <input type=password id=password name=password autocomplete=current-password required></label>\
         <button id=login>Log in</button></form>\
         <p>Seeded users (password <code>demo-password</code>): emma (employee), paul (portal user), root (administrator), \
         ana (employee, tenant acme), gus (employee, tenant globex).</p>",
        hidden(csrf)
    )
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
    /// Their two-factor authentication is on.
    pub enrolled: bool,
}

/// The administrator page: the policy, and the users with their actions.
pub fn admin(csrf: &str, c: &PolicyConfig, users: &[AdminRow]) -> String {
    let h = hidden(csrf);
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
                "<label><input type=checkbox id=tenant_{t} name=tenant_{t}{}> Two-factor authentication enabled in tenant {t}</label>",
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
/// administrator), newest first, as the recipient reads them: subject, date and text. With
/// an SMTP server (`smtp`), nothing is kept here.
pub fn outbox(
    rows: &[(i64, String, String, String)],
    everybody: bool,
    smtp: Option<&str>,
) -> String {
    if let Some(server) = smtp {
        return format!(
            "<p class=notice id=smtp>Mail goes out through the SMTP server at <code>{}</code>: look in your mailbox. \
             Nothing is kept here.</p>",
            esc(server)
        );
    }
    let items: String = rows
        .iter()
        .map(|(at, user, subject, body)| {
            format!(
                "<tr class=mail data-user=\"{u}\"><td>{}</td><td>{u}</td><td><strong class=subject>{}</strong>\
                 <pre class=body style=\"white-space:pre-wrap;font:inherit\">{}</pre></td></tr>",
                esc(&date(*at)),
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
        "<p class=warn>Demo only: these messages would be e-mailed (start the demo with <code>--smtp HOST:PORT</code> \
         to send them). Real mail is never stored, and nobody but the recipient sees login codes. {whose}</p>\
         <table id=outbox><tr><th>Sent</th><th>To</th><th>Message</th></tr>{items}</table>"
    )
}

/// A Unix time as people read it; a negative (corrupt) time as "unknown".
fn date(at: i64) -> String {
    u64::try_from(at).map_or_else(|_| "unknown".into(), when)
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
                n.as_u64().map_or_else(|| n.to_string(), when)
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
                esc(&date(*at)),
                esc(user),
                esc(&event_words(event))
            )
        })
        .collect();
    format!("<table id=audit><tr><th>Time</th><th>User</th><th>Event</th></tr>{items}</table>")
}
