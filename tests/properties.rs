//! Property tests of the whole service: random sequences of what users, attackers, clocks and
//! administrators do, run against [`TwoFactor`] on the memory store and a manual clock, under
//! each kind of policy.
//!
//! After every operation an oracle that knows only what the user legitimately holds (the app's
//! secret, the printed recovery codes, the mails received, the cookies issued) checks that:
//!
//! 1. access is granted only with a valid factor, a trusted-device token we were given and that
//!    is still trusted, or an explicit policy answer (`Off`, `Exempt`, `Optional` for an
//!    unenrolled user, a running grace period);
//! 2. no TOTP time step, recovery code or mailed code is accepted twice;
//! 3. a typed input error (malformed code) or a throttled attempt leaves the stored record
//!    exactly as it was;
//! 4. `start_login` writes only for answers that need new state (a mailed code, a login
//!    waiting for enrollment, a trusted device's use): a challenge for a TOTP or recovery code,
//!    a policy grant or a denial leaves the stored record and its version exactly as they were.
//!
//! At the end of each sequence the audit trail is replayed to check that the code-check limit
//! (5 per sliding hour between successes) and the mail-send limit (5 per sliding hour) were
//! never exceeded.
#![cfg(feature = "serde")]

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use proptest::prelude::*;
use twofactor::PendingLogin;
use twofactor::account::PendingStep;
use twofactor::account::{
    Factor, FactorKind, FailureReason, GrantReason, LoginContext, LoginDecision, Reauthenticated,
};
use twofactor::audit::AuditKind;
use twofactor::mail::Notice;
use twofactor::policy::PolicyExt;
use twofactor::policy::{GraceStart, UnknownTenant};
use twofactor::service::{Error, TwoFactor};
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, EnforcementPolicy, EnrollmentStatus, KeyUri, MemoryStore, Optional, PerTenant,
    Principal, RequiredForAll, Requirement, Secret, Totp, UserStore, WhenUnenrolled,
};

const T0: u64 = 1_700_000_000;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;
const LIMIT: usize = 5;

type Policy = Arc<dyn EnforcementPolicy>;
type Service = TwoFactor<MemoryStore, RecordingMailer, Arc<Switch>, ManualClock, RecordingAudit>;

/// The deployment's policy, which an administrator may change between any two requests.
struct Switch(RwLock<Policy>);

impl Switch {
    fn new(choice: PolicyChoice) -> Self {
        Switch(RwLock::new(policy_of(choice)))
    }
    fn set(&self, choice: PolicyChoice) {
        *self.0.write().expect("lock") = policy_of(choice);
    }
}

impl EnforcementPolicy for Switch {
    fn requirement(&self, p: &Principal, s: &EnrollmentStatus, now: u64) -> Requirement {
        self.0.read().expect("lock").requirement(p, s, now)
    }
}

/// One user for every policy: the superuser flag and the tenant matter only to the policies
/// that look at them.
fn principal() -> Principal {
    Principal::new("u").superuser(true).in_tenant("acme")
}

#[derive(Debug, Clone, Copy)]
enum PolicyChoice {
    Optional,
    OptionalNoDevices,
    RequiredBlock,
    RequiredMail,
    RequiredNoDevices,
    GraceThenBlock,
    TenantSwitchedOff,
    TenantDisabled,
    ClosureOff,
    SuperuserExempt,
}

fn policy_of(choice: PolicyChoice) -> Policy {
    let block = RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled);
    match choice {
        PolicyChoice::Optional => Arc::new(Optional),
        PolicyChoice::OptionalNoDevices => Arc::new(Optional.without_trusted_devices()),
        PolicyChoice::RequiredBlock => Arc::new(block),
        PolicyChoice::RequiredMail => Arc::new(RequiredForAll::new(WhenUnenrolled::MailCode)),
        PolicyChoice::RequiredNoDevices => Arc::new(block.without_trusted_devices()),
        PolicyChoice::GraceThenBlock => {
            Arc::new(block.with_grace_period(GraceStart::Since(T0), Duration::from_secs(2 * HOUR)))
        }
        // The principal's tenant was never switched on.
        PolicyChoice::TenantSwitchedOff => Arc::new(PerTenant::new(block, UnknownTenant::OptIn)),
        // The principal's tenant was switched off by its owner.
        PolicyChoice::TenantDisabled => {
            let p = PerTenant::new(block, UnknownTenant::OptIn);
            p.disable("acme");
            Arc::new(p)
        }
        // A host's own policy that says `Off` to everyone.
        PolicyChoice::ClosureOff => {
            Arc::new(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Off)
        }
        // The principal is the superuser.
        PolicyChoice::SuperuserExempt => Arc::new(block.exempt_superuser()),
    }
}

#[derive(Debug, Clone, Copy)]
enum TokenPick {
    None,
    Latest,
    Dead,
    Forged,
}

#[derive(Debug, Clone, Copy)]
enum TotpPick {
    Current,
    Previous,
    Next,
    Replay,
    Wrong,
    Malformed,
    Stale,
}

#[derive(Debug, Clone, Copy)]
enum RecoveryPick {
    Fresh(usize),
    Used,
    Stale,
    WellFormedWrong,
    Malformed,
}

#[derive(Debug, Clone, Copy)]
enum MailPick {
    Latest,
    Earlier,
    Wrong,
    Malformed,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Advance(u64),
    Begin(TokenPick),
    /// A TOTP code; remember the device; begin a login first.
    Totp(TotpPick, bool, bool),
    /// A recovery code; begin a login first.
    Recovery(RecoveryPick, bool),
    /// A mailed code; begin a login first.
    Mailed(MailPick, bool),
    Resend,
    RevokeAll,
    AdminReset,
    Enroll {
        typo_first: bool,
    },
    Regenerate,
    /// An administrator changes the deployment's policy.
    SetPolicy(PolicyChoice),
}

fn op() -> impl Strategy<Value = Op> {
    let advance = prop_oneof![
        6 => 0u64..=40,
        3 => 0u64..=4_000,
        1 => Just(91 * DAY),
    ]
    .prop_map(Op::Advance);
    let token = prop_oneof![
        2 => Just(TokenPick::None),
        4 => Just(TokenPick::Latest),
        1 => Just(TokenPick::Dead),
        1 => Just(TokenPick::Forged),
    ];
    let totp = prop_oneof![
        3 => Just(TotpPick::Current),
        1 => Just(TotpPick::Previous),
        1 => Just(TotpPick::Next),
        2 => Just(TotpPick::Replay),
        2 => Just(TotpPick::Wrong),
        1 => Just(TotpPick::Malformed),
        1 => Just(TotpPick::Stale),
    ];
    let recovery = prop_oneof![
        2 => (0usize..10).prop_map(RecoveryPick::Fresh),
        2 => Just(RecoveryPick::Used),
        1 => Just(RecoveryPick::Stale),
        1 => Just(RecoveryPick::WellFormedWrong),
        1 => Just(RecoveryPick::Malformed),
    ];
    let mailed = prop_oneof![
        3 => Just(MailPick::Latest),
        1 => Just(MailPick::Earlier),
        2 => Just(MailPick::Wrong),
        1 => Just(MailPick::Malformed),
    ];
    prop_oneof![
        3 => advance,
        4 => token.prop_map(Op::Begin),
        4 => (totp, any::<bool>(), begin_first()).prop_map(|(p, r, b)| Op::Totp(p, r, b)),
        2 => (recovery, begin_first()).prop_map(|(p, b)| Op::Recovery(p, b)),
        2 => (mailed, begin_first()).prop_map(|(p, b)| Op::Mailed(p, b)),
        1 => Just(Op::Resend),
        1 => Just(Op::RevokeAll),
        1 => Just(Op::AdminReset),
        1 => any::<bool>().prop_map(|typo_first| Op::Enroll { typo_first }),
        1 => Just(Op::Regenerate),
        2 => policy_choice().prop_map(Op::SetPolicy),
    ]
}

/// Mostly a fresh login before the second step, sometimes a stale or missing one.
fn begin_first() -> impl Strategy<Value = bool> {
    prop_oneof![3 => Just(true), 1 => Just(false)]
}

fn policy_choice() -> impl Strategy<Value = PolicyChoice> {
    prop_oneof![
        1 => Just(PolicyChoice::Optional),
        1 => Just(PolicyChoice::OptionalNoDevices),
        1 => Just(PolicyChoice::RequiredBlock),
        3 => Just(PolicyChoice::RequiredMail),
        1 => Just(PolicyChoice::RequiredNoDevices),
        1 => Just(PolicyChoice::GraceThenBlock),
        1 => Just(PolicyChoice::TenantSwitchedOff),
        1 => Just(PolicyChoice::TenantDisabled),
        1 => Just(PolicyChoice::ClosureOff),
        1 => Just(PolicyChoice::SuperuserExempt),
    ]
}

/// What the legitimate user holds, and what has been accepted so far.
#[derive(Default)]
struct Model {
    /// The secret in the user's app, while 2FA is enrolled with it.
    secret: Option<Secret>,
    /// Secrets of earlier enrollments (an old phone).
    stale_secrets: Vec<Secret>,
    /// (secret, time step) pairs accepted so far.
    accepted_steps: HashSet<(Vec<u8>, u64)>,
    last_accepted_code: Option<String>,
    recovery_current: Vec<String>,
    recovery_used: HashSet<String>,
    recovery_stale: Vec<String>,
    /// Device tokens issued and not revoked, with their expiry.
    tokens: Vec<(String, u64)>,
    dead_tokens: Vec<String>,
    /// Login codes mailed before this index were cleared by an admin reset.
    mail_epoch: usize,
    accepted_mail: HashSet<usize>,
    /// When a login with a mailed code last succeeded (lets the user enroll under a
    /// mailed-code policy for `reauth_max_age`).
    mailed_login_at: Option<u64>,
}

impl Model {
    fn kill_tokens(&mut self) {
        let dead = self.tokens.drain(..).map(|(t, _)| t);
        self.dead_tokens.extend(dead);
    }
    fn retire_secret(&mut self) {
        if let Some(s) = self.secret.take() {
            self.stale_secrets.push(s);
        }
        let old = std::mem::take(&mut self.recovery_current);
        self.recovery_stale.extend(old);
        self.kill_tokens();
    }
}

/// The stored record, serialized, and its version: "unchanged" means both are equal.
async fn snapshot(tf: &Service, p: &Principal) -> (Option<u64>, Option<String>) {
    let loaded = tf.store().load(&p.user).await.expect("memory store");
    match loaded {
        Some(v) => (
            Some(v.version.0),
            Some(serde_json::to_string(&v.record).expect("serialize")),
        ),
        None => (None, None),
    }
}

async fn record(tf: &Service, p: &Principal) -> twofactor::account::TwoFactorRecord {
    tf.store()
        .load(&p.user)
        .await
        .expect("memory store")
        .map(|v| v.record)
        .unwrap_or_default()
}

fn login_codes(tf: &Service, p: &Principal) -> Vec<(String, u64)> {
    tf.mailer()
        .sent_to(&p.user)
        .into_iter()
        .filter_map(|n| match &n {
            Notice::LoginCode { expires_at, .. } => {
                Some((n.expose_login_code()?.to_owned(), *expires_at))
            }
            _ => None,
        })
        .collect()
}

/// Whether the requirement lets a trusted device skip the challenge.
fn devices_may_skip(req: &Requirement, enrolled: bool) -> bool {
    match req {
        Requirement::Optional { trusted_devices } => *trusted_devices && enrolled,
        Requirement::Required {
            trusted_devices,
            when_unenrolled,
            ..
        } => *trusted_devices && (enrolled || *when_unenrolled == WhenUnenrolled::MailCode),
        _ => false,
    }
}

/// Whether the requirement lets a device be remembered after a successful code.
fn devices_may_be_trusted(req: &Requirement) -> bool {
    match req {
        Requirement::Optional { trusted_devices }
        | Requirement::Required {
            trusted_devices, ..
        } => *trusted_devices,
        _ => false,
    }
}

/// Whether the requirement asks an unenrolled user for a mailed code with no grace left:
/// then the password alone may not enroll.
fn mail_code_enforced(req: &Requirement, now: u64) -> bool {
    matches!(
        req,
        Requirement::Required {
            when_unenrolled: WhenUnenrolled::MailCode,
            grace_until,
            ..
        } if grace_until.is_none_or(|g| now >= g)
    )
}

/// Errors that must never appear here (memory store, recording mailer, OS RNG).
fn infrastructure(e: &Error) -> bool {
    matches!(
        e,
        Error::Store(_) | Error::Mailer(_) | Error::Contention { .. } | Error::Rng
    )
}

fn other_digits(code: &str) -> String {
    let n: u32 = code.parse().unwrap_or(0);
    format!("{:06}", (n + 1) % 1_000_000)
}

struct Case {
    tf: Service,
    p: Principal,
    m: Model,
    ctx: LoginContext,
}

impl Case {
    fn now(&self) -> u64 {
        self.tf.clock().now()
    }

    fn requirement(&self, before: &twofactor::account::TwoFactorRecord) -> Requirement {
        self.tf
            .policy()
            .requirement(&self.p, &before.enrollment_status(), self.now())
    }

    async fn begin(&mut self, pick: TokenPick) -> Result<(), TestCaseError> {
        let before_snapshot = snapshot(&self.tf, &self.p).await;
        let before = record(&self.tf, &self.p).await;
        let req = self.requirement(&before);
        let enrolled = before.is_enrolled();
        let token = match pick {
            TokenPick::None => None,
            TokenPick::Latest => self.m.tokens.last().map(|(t, _)| t.clone()),
            TokenPick::Dead => self.m.dead_tokens.last().cloned(),
            TokenPick::Forged => Some("5a".repeat(32)),
        };
        let decision = self
            .tf
            .start_login(&self.p, token.as_deref(), &self.ctx)
            .await;
        let decision = match decision {
            Ok(d) => d,
            Err(e) => {
                prop_assert!(!infrastructure(&e), "start_login: {e:?}");
                prop_assert!(matches!(e, Error::Throttled { .. }), "start_login: {e:?}");
                let after = snapshot(&self.tf, &self.p).await;
                prop_assert_eq!(&before_snapshot, &after, "a throttled start_login wrote");
                return Ok(());
            }
        };
        let needs_state = matches!(
            decision,
            LoginDecision::MustEnroll { .. }
                | LoginDecision::CodeMailed { .. }
                | LoginDecision::Granted {
                    reason: GrantReason::TrustedDevice { .. }
                }
        );
        if !needs_state {
            let after = snapshot(&self.tf, &self.p).await;
            prop_assert_eq!(
                &before_snapshot,
                &after,
                "start_login wrote the record for {:?}",
                decision
            );
        }
        if let LoginDecision::Granted { reason } = decision {
            let now = self.now();
            match reason {
                GrantReason::Off => {
                    prop_assert_eq!(req, Requirement::Off);
                    prop_assert!(!enrolled, "an enrolled user let in on the password alone");
                }
                GrantReason::NotRequired => {
                    prop_assert!(matches!(req, Requirement::Optional { .. }), "{:?}", req);
                    prop_assert!(!enrolled, "an enrolled user let in without a code");
                }
                GrantReason::Exempt { reason } => {
                    prop_assert_eq!(req, Requirement::Exempt { reason });
                }
                GrantReason::GracePeriod { enroll_by } => {
                    prop_assert!(!enrolled);
                    let deadline = match req {
                        Requirement::Required { grace_until, .. } => grace_until,
                        _ => None,
                    };
                    prop_assert_eq!(deadline, Some(enroll_by));
                    prop_assert!(now < enroll_by, "grace period over at {now}");
                }
                GrantReason::TrustedDevice { .. } => {
                    let token = token.expect("a trusted-device grant needs a token");
                    let live = self
                        .m
                        .tokens
                        .iter()
                        .any(|(t, expires)| *t == token && now < *expires);
                    prop_assert!(live, "a revoked, expired or forged token was accepted");
                    prop_assert!(
                        devices_may_skip(&req, enrolled),
                        "device skipped the challenge under {:?}",
                        req
                    );
                }
                other => prop_assert!(false, "unexpected grant {:?}", other),
            }
        }
        Ok(())
    }

    async fn totp(&mut self, pick: TotpPick, remember: bool) -> Result<(), TestCaseError> {
        let now = self.now();
        let app = Totp::default();
        let code = match (pick, &self.m.secret) {
            (TotpPick::Malformed, _) => "12a456".to_owned(),
            (TotpPick::Replay, _) if self.m.last_accepted_code.is_some() => {
                self.m.last_accepted_code.clone().unwrap_or_default()
            }
            (TotpPick::Stale, _) if !self.m.stale_secrets.is_empty() => {
                let s = &self.m.stale_secrets[self.m.stale_secrets.len() - 1];
                app.generate(s, now).to_string()
            }
            (_, None) => "123456".to_owned(),
            (TotpPick::Previous, Some(s)) => app.generate(s, now.saturating_sub(30)).to_string(),
            (TotpPick::Next, Some(s)) => app.generate(s, now + 30).to_string(),
            (TotpPick::Wrong, Some(s)) => other_digits(&app.generate(s, now).to_string()),
            (_, Some(s)) => app.generate(s, now).to_string(),
        };
        self.finish(Factor::Totp(&code), remember).await
    }

    async fn recovery(&mut self, pick: RecoveryPick) -> Result<(), TestCaseError> {
        let code = match pick {
            RecoveryPick::Fresh(i) if !self.m.recovery_current.is_empty() => {
                self.m.recovery_current[i % self.m.recovery_current.len()].clone()
            }
            RecoveryPick::Used if !self.m.recovery_used.is_empty() => {
                let mut used: Vec<_> = self.m.recovery_used.iter().cloned().collect();
                used.sort();
                used[0].clone()
            }
            RecoveryPick::Stale if !self.m.recovery_stale.is_empty() => {
                self.m.recovery_stale[0].clone()
            }
            RecoveryPick::Malformed => "not-a-code!".to_owned(),
            _ => "zzzz-zzzz-zz".to_owned(),
        };
        self.finish(Factor::RecoveryCode(&code), false).await
    }

    async fn mailed(&mut self, pick: MailPick) -> Result<(), TestCaseError> {
        let codes = login_codes(&self.tf, &self.p);
        let code = match pick {
            MailPick::Malformed => "12345".to_owned(),
            MailPick::Latest if !codes.is_empty() => codes[codes.len() - 1].0.clone(),
            MailPick::Earlier if codes.len() >= 2 => codes[codes.len() - 2].0.clone(),
            MailPick::Wrong if !codes.is_empty() => other_digits(&codes[codes.len() - 1].0),
            _ => "654321".to_owned(),
        };
        self.finish(Factor::MailedCode(&code), false).await
    }

    /// `finish_login`, with the oracle.
    async fn finish(&mut self, factor: Factor<'_>, remember: bool) -> Result<(), TestCaseError> {
        let before_snapshot = snapshot(&self.tf, &self.p).await;
        let before = record(&self.tf, &self.p).await;
        let req = self.requirement(&before);
        let now = self.now();
        let label = remember.then_some("laptop");
        // The host keeps the pending login of the kind asked for; the model checks the record.
        let pending = held_pending(&self.p, now, factor.kind());
        let result = self
            .tf
            .finish_login(&pending, factor, label, &self.ctx)
            .await;
        let granted = match result {
            Ok(g) => g,
            Err(e) => {
                prop_assert!(!infrastructure(&e), "finish_login: {e:?}");
                if matches!(e, Error::Malformed(_) | Error::Throttled { .. }) {
                    let after = snapshot(&self.tf, &self.p).await;
                    prop_assert_eq!(&before_snapshot, &after, "record changed by {:?}", e);
                }
                return Ok(());
            }
        };
        match factor {
            Factor::Totp(code) => {
                prop_assert_eq!(granted.factor, FactorKind::Totp);
                let Some(secret) = self.m.secret.clone() else {
                    return Err(TestCaseError::fail("TOTP accepted without an enrolled app"));
                };
                let after = record(&self.tf, &self.p).await;
                let step = after.last_used_step().expect("a used step is recorded");
                let app = Totp::default();
                let current = now / 30;
                prop_assert!(
                    (current.saturating_sub(1)..=current + 1).contains(&step),
                    "step {} outside the window around {}",
                    step,
                    current
                );
                prop_assert_eq!(app.generate_at_step(&secret, step).to_string(), code);
                prop_assert!(before.last_used_step().is_none_or(|s| step > s));
                let fresh = self
                    .m
                    .accepted_steps
                    .insert((secret.expose_secret().to_vec(), step));
                prop_assert!(fresh, "time step {} accepted twice", step);
                self.m.last_accepted_code = Some(code.to_owned());
            }
            Factor::RecoveryCode(code) => {
                prop_assert_eq!(granted.factor, FactorKind::RecoveryCode);
                prop_assert!(
                    self.m.recovery_current.iter().any(|c| c == code),
                    "a recovery code that was never issued, or was replaced, was accepted"
                );
                prop_assert!(
                    self.m.recovery_used.insert(code.to_owned()),
                    "recovery code accepted twice"
                );
                prop_assert_eq!(
                    granted.recovery_codes_left,
                    Some(self.m.recovery_current.len() - self.m.recovery_used.len())
                );
            }
            Factor::MailedCode(code) => {
                prop_assert_eq!(granted.factor, FactorKind::MailedCode);
                let codes = login_codes(&self.tf, &self.p);
                let Some((latest, expires_at)) = codes.last() else {
                    return Err(TestCaseError::fail("mailed code accepted, none mailed"));
                };
                let index = codes.len() - 1;
                prop_assert_eq!(latest.as_str(), code, "not the latest mailed code");
                prop_assert!(now < *expires_at, "mailed code accepted after its hour");
                prop_assert!(index >= self.m.mail_epoch, "code mailed before a reset");
                prop_assert!(
                    self.m.accepted_mail.insert(index),
                    "mailed code accepted twice"
                );
                self.m.mailed_login_at = Some(now);
            }
        }
        if let Some(token) = granted.device_token {
            prop_assert!(
                devices_may_be_trusted(&req),
                "device trusted under {:?}",
                req
            );
            self.m
                .tokens
                .push((token.expose_secret().to_owned(), token.expires_at()));
        }
        Ok(())
    }

    async fn enroll(&mut self, typo_first: bool) -> Result<(), TestCaseError> {
        let now = self.now();
        let before_start = snapshot(&self.tf, &self.p).await;
        let req = self.requirement(&record(&self.tf, &self.p).await);
        // Under an enforced mailed-code policy only a recent mailed-code login opens it.
        let needs_mailbox = self.m.secret.is_none()
            && mail_code_enforced(&req, now)
            && self.m.mailed_login_at.is_none_or(|at| now >= at + 600);
        let started = self
            .tf
            .start_enrollment(&self.p, "u@example.com", Reauthenticated::at(now))
            .await;
        let started = match started {
            Ok(s) => {
                prop_assert!(
                    !needs_mailbox,
                    "enrolled on the password alone under {:?}",
                    req
                );
                s
            }
            Err(Error::SecondFactorRequired) => {
                prop_assert!(needs_mailbox, "mailed-code login demanded under {:?}", req);
                prop_assert_eq!(before_start, snapshot(&self.tf, &self.p).await);
                return Ok(());
            }
            Err(e) => {
                prop_assert!(matches!(e, Error::AlreadyEnrolled), "start: {e:?}");
                prop_assert!(self.m.secret.is_some());
                return Ok(());
            }
        };
        let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
        if typo_first {
            let before = snapshot(&self.tf, &self.p).await;
            let r = self.tf.finish_enrollment(&self.p.user, "12 34 5x").await;
            prop_assert!(matches!(r, Err(Error::Malformed(_))), "{r:?}");
            prop_assert_eq!(before, snapshot(&self.tf, &self.p).await);
        }
        let before = snapshot(&self.tf, &self.p).await;
        let code = Totp::default().generate(&secret, now).to_string();
        match self.tf.finish_enrollment(&self.p.user, &code).await {
            Ok(enrolled) => {
                self.m.retire_secret();
                self.m.mailed_login_at = None;
                let step = record(&self.tf, &self.p)
                    .await
                    .last_used_step()
                    .expect("the confirming step is used");
                prop_assert_eq!(step, now / 30);
                self.m
                    .accepted_steps
                    .insert((secret.expose_secret().to_vec(), step));
                self.m.last_accepted_code = Some(code);
                self.m.secret = Some(secret);
                self.m.recovery_current = enrolled
                    .recovery_codes()
                    .expose_secret()
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect();
                self.m.recovery_used.clear();
            }
            Err(Error::Throttled { .. }) => {
                prop_assert_eq!(before, snapshot(&self.tf, &self.p).await);
            }
            Err(e) => prop_assert!(false, "finish_enrollment: {e:?}"),
        }
        Ok(())
    }

    async fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Advance(s) => self.tf.clock().advance(s),
            Op::Begin(t) => self.begin(t).await?,
            Op::Totp(pick, remember, begin) => {
                if begin {
                    self.begin(TokenPick::None).await?;
                }
                self.totp(pick, remember).await?;
            }
            Op::Recovery(pick, begin) => {
                if begin {
                    self.begin(TokenPick::None).await?;
                }
                self.recovery(pick).await?;
            }
            Op::Mailed(pick, begin) => {
                if begin {
                    self.begin(TokenPick::None).await?;
                }
                self.mailed(pick).await?;
            }
            Op::Resend => {
                let before = snapshot(&self.tf, &self.p).await;
                let pending = held_pending(&self.p, self.now(), FactorKind::MailedCode);
                match self.tf.resend_mailed_code(&pending, &self.ctx).await {
                    Ok(_) | Err(Error::NoPendingLogin) => {}
                    Err(Error::Throttled { .. }) => {
                        prop_assert_eq!(before, snapshot(&self.tf, &self.p).await);
                    }
                    Err(e) => prop_assert!(false, "resend: {e:?}"),
                }
            }
            Op::RevokeAll => {
                self.tf
                    .revoke_all_devices(&self.p.user)
                    .await
                    .expect("revoke");
                self.m.kill_tokens();
            }
            Op::AdminReset => {
                let admin = twofactor::UserId::new("admin");
                match self.tf.reset_by_admin(&self.p.user, &admin).await {
                    Ok(()) => {
                        self.m.retire_secret();
                        // A reset clears the proof a mailed-code login left too.
                        self.m.mailed_login_at = None;
                        self.m.mail_epoch = login_codes(&self.tf, &self.p).len();
                    }
                    Err(Error::NotEnrolled) => {}
                    Err(e) => prop_assert!(false, "reset: {e:?}"),
                }
            }
            Op::Enroll { typo_first } => self.enroll(typo_first).await?,
            Op::SetPolicy(choice) => self.tf.policy().set(choice),
            Op::Regenerate => {
                let reauth = Reauthenticated::at(self.now());
                match self
                    .tf
                    .regenerate_recovery_codes(&self.p.user, reauth)
                    .await
                {
                    Ok(codes) => {
                        let old = std::mem::take(&mut self.m.recovery_current);
                        self.m.recovery_stale.extend(old);
                        self.m.recovery_current = codes
                            .expose_secret()
                            .iter()
                            .map(|c| (*c).to_owned())
                            .collect();
                        self.m.recovery_used.clear();
                    }
                    Err(Error::NotEnrolled) => prop_assert!(self.m.secret.is_none()),
                    Err(e) => prop_assert!(false, "regenerate: {e:?}"),
                }
            }
        }
        Ok(())
    }

    /// Replays the audit trail: never more than 5 code checks in any hour since the last
    /// success or reset, never more than 5 codes mailed in any hour since the last reset.
    fn check_limits(&self) -> Result<(), TestCaseError> {
        let mut checks: Vec<u64> = Vec::new();
        let mut sends: Vec<u64> = Vec::new();
        let events = self.tf.audit().events();
        for e in events.iter().filter(|e| e.user == self.p.user) {
            let t = e.at;
            let (is_check, resets_checks) = match &e.kind {
                AuditKind::LoginFailed { reason, .. } | AuditKind::EnrollmentFailed { reason } => {
                    (*reason != FailureReason::Malformed, false)
                }
                AuditKind::LoginSucceeded { factor } => {
                    let checked = *factor != FactorKind::TrustedDevice;
                    (checked, checked)
                }
                AuditKind::Enrolled => (true, true),
                AuditKind::ResetByAdmin { .. } => {
                    sends.clear();
                    (false, true)
                }
                AuditKind::CodeMailed { .. } => {
                    sends.push(t);
                    let in_hour = sends.iter().filter(|&&s| t < s + HOUR).count();
                    prop_assert!(in_hour <= LIMIT, "{} codes mailed within an hour", in_hour);
                    (false, false)
                }
                _ => (false, false),
            };
            if is_check {
                checks.push(t);
                let in_hour = checks.iter().filter(|&&c| t < c + HOUR).count();
                prop_assert!(in_hour <= LIMIT, "{} code checks within an hour", in_hour);
            }
            if resets_checks {
                checks.clear();
            }
        }
        let mailed_events = events
            .iter()
            .filter(|e| matches!(e.kind, AuditKind::CodeMailed { .. }))
            .count();
        prop_assert_eq!(mailed_events, login_codes(&self.tf, &self.p).len());
        Ok(())
    }
}

async fn run(choice: PolicyChoice, enrolled: bool, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let policy = Arc::new(Switch::new(choice));
    let tf = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .policy(policy)
        .clock(ManualClock::new(T0))
        .audit(RecordingAudit::new())
        .build();
    let mut case = Case {
        tf,
        p: principal(),
        m: Model::default(),
        ctx: LoginContext::new(),
    };
    if enrolled {
        // Most sequences start with the app already set up, half a minute ago.
        case.step(Op::Enroll { typo_first: false }).await?;
        case.step(Op::Advance(30)).await?;
    }
    for op in ops {
        case.step(op).await?;
    }
    case.check_limits()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn no_sequence_breaks_the_security_invariants(
        choice in policy_choice(),
        enrolled in prop_oneof![3 => Just(true), 1 => Just(false)],
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(run(choice, enrolled, ops))?;
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Attack-heavy sequences: a known password, no factor, many guesses.
    #[test]
    fn guessing_never_gets_in_and_stays_throttled(
        choice in policy_choice(),
        guesses in proptest::collection::vec((0u64..=900, 0u32..1_000_000), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let p = principal();
            let policy = Arc::new(Switch::new(choice));
            let tf: Service = TwoFactor::builder(MemoryStore::new()).mailer(RecordingMailer::new()).policy(policy)
                .clock(ManualClock::new(T0))
                .audit(RecordingAudit::new())
                .build();
            // The victim enrolled (after a login with the mailed code where the policy asks
            // for one); the attacker knows the password, not the secret.
            let ctx = LoginContext::new();
            if let Ok(LoginDecision::CodeMailed { pending }) = tf.start_login(&p, None, &ctx).await {
                let code = tf.mailer().last_login_code_for(&p.user).expect("mailed");
                tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
                    .await
                    .expect("mailed-code login");
            }
            let started = tf
                .start_enrollment(&p, "victim", Reauthenticated::at(T0))
                .await
                .expect("start");
            let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
            tf.finish_enrollment(&p.user, &Totp::default().generate(&secret, T0).to_string())
                .await
                .expect("finish");
            for (wait, guess) in guesses {
                tf.clock().advance(wait);
                // A throttled login is refused outright, like a throttled code.
                let decision = match tf.start_login(&p, None, &ctx).await {
                    Ok(decision) => Some(decision),
                    Err(Error::Throttled { .. }) => None,
                    Err(e) => return Err(TestCaseError::fail(format!("begin: {e:?}"))),
                };
                let allowed_grant = matches!(
                    decision,
                    Some(LoginDecision::Granted {
                        reason: GrantReason::Off | GrantReason::Exempt { .. }
                    })
                );
                if let Some(LoginDecision::Granted { .. }) = decision {
                    prop_assert!(allowed_grant, "enrolled user granted without a code: {:?}", decision);
                }
                let guess = format!("{guess:06}");
                let window: Vec<String> = {
                    let s = tf.clock().now() / 30;
                    (s.saturating_sub(1)..=s + 1)
                        .map(|s| Totp::default().generate_at_step(&secret, s).to_string())
                        .collect()
                };
                // The pending login handed out, or one the attacker kept from earlier.
                let pending = decision
                    .as_ref()
                    .and_then(LoginDecision::pending)
                    .cloned()
                    .unwrap_or_else(|| held_pending(&p, tf.clock().now(), FactorKind::Totp));
                let r = tf.finish_login(&pending, Factor::Totp(&guess), None, &ctx).await;
                if r.is_ok() {
                    prop_assert!(window.contains(&guess), "a wrong guess was accepted");
                }
            }
            let case = Case { tf, p, m: Model::default(), ctx: LoginContext::new() };
            case.check_limits()
        })?;
    }
}

/// A pending login for `p` at `now` that accepts `kind`, as a host holds from `start_login`.
fn held_pending(p: &Principal, now: u64, kind: FactorKind) -> PendingLogin {
    let step = match kind {
        FactorKind::MailedCode => PendingStep::MailedCode {
            code_expires_at: now + 3_600,
        },
        _ => PendingStep::SecondFactor {
            methods: vec![FactorKind::Totp, FactorKind::RecoveryCode],
        },
    };
    PendingLogin::new(p.clone(), now, 900, step)
}
