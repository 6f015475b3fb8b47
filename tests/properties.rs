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
//!    a policy grant or a denial leaves the stored record and its version exactly as they were,
//!    except for the record's "asked for a mailed code" flag of an unenrolled user: set when
//!    the policy asks for one (also when the send is throttled), forgotten when it no longer
//!    does (one save changing only that flag);
//! 5. a login ticket is taken exactly while it is usable (open by its deadline, issued under
//!    the record's ticket generation, not used by a completed login); one that is not is
//!    refused with `LoginExpired` and leaves the record exactly as it was; no genuine ticket is
//!    ever refused as forged;
//! 6. enrolling under a mailed-code requirement needs a fresh proof of a mailed code from this
//!    session (the record also remembers that the user was asked for one), forced set-up
//!    completes exactly the login waiting for it, and new recovery codes need a proof of a
//!    second factor (from a login, or a step-up that is itself checked like a login).
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
use twofactor::account::{
    Factor, FactorKind, FailureReason, GrantReason, LoginContext, LoginDecision, Reauthenticated,
    SecondFactorProof,
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

#[allow(dead_code, unreachable_pub)]
#[path = "common/tickets.rs"]
mod tickets;

const T0: u64 = 1_700_000_000;
/// `Settings::reauth_max_age`: how long a password check and a proof stay fresh.
const FRESH: u64 = 600;
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
    /// The proof of the last login with a mailed code in this session (lets the user enroll
    /// under a mailed-code requirement while fresh and not revoked).
    mail_proof: Option<SecondFactorProof>,
    /// The proof of the last TOTP or recovery code this session proved (at login or step-up).
    proof: Option<SecondFactorProof>,
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
    let record = tf
        .store()
        .load(&p.user)
        .await
        .expect("memory store")
        .map(|v| v.record)
        .unwrap_or_default();
    // Whatever state a flow left, the store's encoder writes serde_json's canonical bytes.
    assert_eq!(
        twofactor::store::codec::encode_record(&record).expect("encode"),
        serde_json::to_string(&record).expect("serialize")
    );
    record
}

/// The stored record as JSON (`null` when there is none): what the oracle reads of the ticket
/// ledger and of the "asked for a mailed code" flag.
async fn record_json(tf: &Service, p: &Principal) -> serde_json::Value {
    tf.store()
        .load(&p.user)
        .await
        .expect("memory store")
        .map_or(serde_json::Value::Null, |v| {
            serde_json::to_value(&v.record).expect("serialize")
        })
}

fn generation(record: &serde_json::Value) -> u64 {
    record["tickets"]["generation"].as_u64().unwrap_or(0)
}

/// Whether `proof` would be taken now for `record`: issued under its ticket generation, and
/// fresh.
fn proof_valid(proof: &SecondFactorProof, record: &serde_json::Value, now: u64) -> bool {
    tickets::proof_generation(proof.as_str()) == generation(record) && proof.is_fresh(now, FRESH)
}

/// A genuine ticket for `p` at `now` of the kind that takes `kind`, under ticket generation
/// `generation`, as another app server of the deployment (same keys) hands it out: what a
/// host (or an attacker who passed the password check) kept from an earlier `start_login`.
/// Tickets cannot be made up (`PendingLogin::new` is gone), so this stands in for the
/// hand-made pending logins these properties used before.
async fn held_elsewhere(
    p: &Principal,
    now: u64,
    kind: FactorKind,
    generation: u64,
) -> PendingLogin {
    let mailed = kind == FactorKind::MailedCode;
    let policy: Policy = if mailed {
        Arc::new(RequiredForAll::new(WhenUnenrolled::MailCode))
    } else {
        Arc::new(RequiredForAll::new(WhenUnenrolled::BlockUntilEnrolled))
    };
    let elsewhere = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .policy(policy)
        .clock(ManualClock::new(now))
        .audit(RecordingAudit::new())
        .keys(twofactor::testing::test_keys())
        .build();
    for _ in 0..generation {
        elsewhere
            .revoke_login_tickets(&p.user)
            .await
            .expect("revoke");
    }
    if !mailed {
        let started = elsewhere
            .start_enrollment(p, "u", Reauthenticated::at(now))
            .await
            .expect("start");
        let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
        elsewhere
            .finish_enrollment(&p.user, &Totp::default().generate(&secret, now).to_string())
            .await
            .expect("finish");
    }
    let decision = elsewhere
        .start_login(p, None, &LoginContext::new())
        .await
        .expect("start_login");
    match decision {
        LoginDecision::Challenge { pending } | LoginDecision::CodeMailed { pending } => pending,
        other => panic!("{other:?}"),
    }
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

/// Whether a grace period is running (then the password alone logs in, and may enroll).
fn in_grace(req: &Requirement, now: u64) -> bool {
    matches!(req, Requirement::Required { grace_until: Some(g), .. } if now < *g)
}

/// Whether enrolling needs a proof of a mailed code: the requirement asks this unenrolled user
/// for one, or the record remembers that a login asked for one (outside a grace period).
fn needs_mail_proof(req: &Requirement, record: &serde_json::Value, now: u64) -> bool {
    let asked = record["mailed_login_required"].as_bool().unwrap_or(false);
    mail_code_enforced(req, now) || (asked && !in_grace(req, now))
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
    /// The tickets `start_login` handed out last, by step: what the host's session holds.
    held_second: Option<PendingLogin>,
    held_mailed: Option<PendingLogin>,
    held_enroll: Option<PendingLogin>,
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
        // The one write an answer that needs no new state may make: the record's flag that an
        // unenrolled user is asked for a mailed code, set when the policy asks for one (a
        // throttled send included), forgotten when it no longer does.
        let mailed_now = matches!(
            req,
            Requirement::Required {
                when_unenrolled: WhenUnenrolled::MailCode,
                ..
            }
        );
        let expected_unchanged = {
            let before_snapshot = before_snapshot.clone();
            move |after: &(Option<u64>, Option<String>)| -> bool {
                if *after == before_snapshot {
                    return true;
                }
                let parse = |s: &Option<String>| -> serde_json::Value {
                    s.as_deref().map_or(serde_json::Value::Null, |s| {
                        serde_json::from_str(s).unwrap()
                    })
                };
                let (mut was, now) = (parse(&before_snapshot.1), parse(&after.1));
                if was.is_null() {
                    let none = twofactor::account::TwoFactorRecord::default();
                    was = serde_json::to_value(&none).expect("serialize");
                }
                let flag = |v: &serde_json::Value| v["mailed_login_required"].as_bool();
                let mut expected = was.clone();
                expected["mailed_login_required"] = serde_json::Value::Bool(mailed_now);
                let allowed = !enrolled && flag(&was) != Some(mailed_now);
                allowed && after.0 == Some(before_snapshot.0.unwrap_or(0) + 1) && now == expected
            }
        };
        let decision = match decision {
            Ok(d) => d,
            Err(e) => {
                prop_assert!(!infrastructure(&e), "start_login: {e:?}");
                prop_assert!(matches!(e, Error::Throttled { .. }), "start_login: {e:?}");
                let after = snapshot(&self.tf, &self.p).await;
                prop_assert!(
                    expected_unchanged(&after),
                    "a throttled start_login wrote: {:?} -> {:?}",
                    before_snapshot,
                    after
                );
                return Ok(());
            }
        };
        let needs_state = matches!(
            decision,
            LoginDecision::MustEnroll { .. }
                | LoginDecision::CodeMailed { .. }
                | LoginDecision::Granted {
                    reason: GrantReason::TrustedDevice { .. },
                    ..
                }
        );
        if !needs_state {
            let after = snapshot(&self.tf, &self.p).await;
            prop_assert!(
                expected_unchanged(&after),
                "start_login wrote the record for {:?}: {:?} -> {:?}",
                decision,
                before_snapshot,
                after
            );
        }
        // A ticket handed out is usable at once, for the principal asked about; the session
        // keeps it for the step it waits for.
        if let Some(pending) = decision.pending() {
            let stored = record_json(&self.tf, &self.p).await;
            prop_assert!(
                tickets::usable(pending, &stored, self.now()),
                "a fresh ticket is not usable"
            );
            prop_assert_eq!(pending.principal(), &self.p);
            let held = Some(pending.clone());
            match &decision {
                LoginDecision::Challenge { .. } => self.held_second = held,
                LoginDecision::CodeMailed { .. } => self.held_mailed = held,
                LoginDecision::MustEnroll { .. } => self.held_enroll = held,
                other => prop_assert!(false, "a ticket with {:?}", other),
            }
        }
        if let LoginDecision::Granted { reason, .. } = decision {
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
        // The host keeps the ticket of the kind asked for while it is open (even one already
        // used: then it must be refused); otherwise one kept from an earlier login.
        let stored = record_json(&self.tf, &self.p).await;
        let held = match factor.kind() {
            FactorKind::MailedCode => &self.held_mailed,
            _ => &self.held_second,
        };
        let pending = match held.as_ref().filter(|t| t.is_open(now)) {
            Some(t) => t.clone(),
            None => held_elsewhere(&self.p, now, factor.kind(), generation(&stored)).await,
        };
        let usable = tickets::usable(&pending, &stored, now);
        let result = self
            .tf
            .finish_login(&pending, factor, label, &self.ctx)
            .await;
        prop_assert_eq!(
            matches!(result, Err(Error::LoginExpired)),
            !usable,
            "ticket usable: {}, answer {:?}",
            usable,
            result.as_ref().map(|g| g.factor)
        );
        let granted = match result {
            Ok(g) => g,
            Err(e) => {
                prop_assert!(!infrastructure(&e), "finish_login: {e:?}");
                prop_assert!(
                    !matches!(e, Error::InvalidTicket),
                    "a genuine ticket refused"
                );
                if matches!(
                    e,
                    Error::Malformed(_) | Error::Throttled { .. } | Error::LoginExpired
                ) {
                    let after = snapshot(&self.tf, &self.p).await;
                    prop_assert_eq!(&before_snapshot, &after, "record changed by {:?}", e);
                }
                return Ok(());
            }
        };
        // The ticket is used up.
        let after = record_json(&self.tf, &self.p).await;
        prop_assert!(
            !tickets::usable(&pending, &after, now),
            "a ticket completed two logins"
        );
        prop_assert_eq!(granted.proof.factor(), granted.factor);
        prop_assert_eq!(granted.proof.verified_at(), now);
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
                self.m.mail_proof = Some(granted.proof.clone());
            }
        }
        if granted.factor != FactorKind::MailedCode {
            self.m.proof = Some(granted.proof.clone());
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
        let stored = record_json(&self.tf, &self.p).await;
        let req = self.requirement(&record(&self.tf, &self.p).await);
        // Forced set-up when the session holds an open `MustEnroll` ticket; the account page
        // otherwise (where the session passes the mailed-code proof it holds, if any).
        let forced = self.held_enroll.clone().filter(|t| t.is_open(now));
        let needs_proof = self.m.secret.is_none() && needs_mail_proof(&req, &stored, now);
        let started = match &forced {
            Some(ticket) => {
                let usable = tickets::usable(ticket, &stored, now);
                let reauth_fresh =
                    Reauthenticated::at(ticket.password_checked_at()).is_fresh(now, FRESH);
                let r = self
                    .tf
                    .start_forced_enrollment(ticket, "u@example.com")
                    .await;
                let expected = if !usable {
                    "LoginExpired"
                } else if !reauth_fresh {
                    "ReauthenticationRequired"
                } else if self.m.secret.is_some() {
                    "AlreadyEnrolled"
                } else if needs_proof {
                    // Forced set-up carries no proof: the mailbox must be proved first.
                    "SecondFactorRequired"
                } else {
                    "Ok"
                };
                match r {
                    Ok(s) => {
                        prop_assert_eq!(expected, "Ok");
                        s
                    }
                    Err(e) => {
                        let got = match e {
                            Error::LoginExpired => "LoginExpired",
                            Error::ReauthenticationRequired => "ReauthenticationRequired",
                            Error::AlreadyEnrolled => "AlreadyEnrolled",
                            Error::SecondFactorRequired => "SecondFactorRequired",
                            e => return Err(TestCaseError::fail(format!("forced start: {e:?}"))),
                        };
                        prop_assert_eq!(expected, got, "forced set-up under {:?}", req);
                        prop_assert_eq!(&before_start, &snapshot(&self.tf, &self.p).await);
                        return Ok(());
                    }
                }
            }
            None => {
                let reauth = Reauthenticated::at(now);
                let proof = self.m.mail_proof.clone();
                let r = match &proof {
                    Some(proof) => {
                        self.tf
                            .start_enrollment_with_proof(&self.p, "u@example.com", reauth, proof)
                            .await
                    }
                    None => {
                        self.tf
                            .start_enrollment(&self.p, "u@example.com", reauth)
                            .await
                    }
                };
                // Only a fresh, unrevoked proof of a mailed code from this session opens it
                // under a mailed-code requirement.
                let expected = if self.m.secret.is_some() {
                    "AlreadyEnrolled"
                } else if !needs_proof {
                    "Ok"
                } else {
                    match &proof {
                        None => "SecondFactorRequired",
                        Some(p) if tickets::proof_generation(p.as_str()) != generation(&stored) => {
                            "InvalidProof"
                        }
                        Some(p) if !p.is_fresh(now, FRESH) => "SecondFactorRequired",
                        Some(_) => "Ok",
                    }
                };
                match r {
                    Ok(s) => {
                        prop_assert_eq!(
                            expected,
                            "Ok",
                            "enrolled on the password alone under {:?}",
                            req
                        );
                        s
                    }
                    Err(e) => {
                        let got = match e {
                            Error::AlreadyEnrolled => "AlreadyEnrolled",
                            Error::SecondFactorRequired => "SecondFactorRequired",
                            Error::InvalidProof => "InvalidProof",
                            e => return Err(TestCaseError::fail(format!("start: {e:?}"))),
                        };
                        prop_assert_eq!(expected, got, "enrollment under {:?}", req);
                        prop_assert_eq!(&before_start, &snapshot(&self.tf, &self.p).await);
                        return Ok(());
                    }
                }
            }
        };
        let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
        let finish = |code: String| {
            let tf = &self.tf;
            let user = &self.p.user;
            let forced = forced.clone();
            async move {
                match &forced {
                    Some(ticket) => tf.finish_forced_enrollment(ticket, &code).await,
                    None => tf.finish_enrollment(user, &code).await,
                }
            }
        };
        if typo_first {
            let before = snapshot(&self.tf, &self.p).await;
            let r = finish("12 34 5x".to_owned()).await;
            prop_assert!(matches!(r, Err(Error::Malformed(_))), "{:?}", r.map(|_| ()));
            prop_assert_eq!(before, snapshot(&self.tf, &self.p).await);
        }
        let before = snapshot(&self.tf, &self.p).await;
        let stored = record_json(&self.tf, &self.p).await;
        // Forced set-up completes the login waiting for it, while it waits; the account page
        // never completes one.
        let waiting = forced.is_some()
            && stored["login_awaiting_enrollment"]["expires_at"]
                .as_u64()
                .is_some_and(|at| now < at);
        let code = Totp::default().generate(&secret, now).to_string();
        let logins_before = self.logins();
        match finish(code.clone()).await {
            Ok(enrolled) => {
                prop_assert_eq!(enrolled.login_completed(), waiting);
                prop_assert_eq!(self.logins() - logins_before, usize::from(waiting));
                if let Some(ticket) = &forced {
                    let after = record_json(&self.tf, &self.p).await;
                    prop_assert_eq!(tickets::usable(ticket, &after, now), !waiting);
                }
                self.m.retire_secret();
                self.m.mail_proof = None;
                self.m.proof = Some(enrolled.proof().clone());
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

    /// Logins audited as successful so far.
    fn logins(&self) -> usize {
        self.tf
            .audit()
            .kinds_for(&self.p.user)
            .iter()
            .filter(|k| matches!(k, AuditKind::LoginSucceeded { .. }))
            .count()
    }

    /// New recovery codes: with the session's proof of a TOTP or recovery code while it is
    /// valid, after a step-up with the app's current code otherwise.
    async fn regenerate(&mut self) -> Result<(), TestCaseError> {
        let now = self.now();
        let stored = record_json(&self.tf, &self.p).await;
        let valid = self
            .m
            .proof
            .clone()
            .filter(|p| proof_valid(p, &stored, now));
        let proof = match valid {
            Some(p) => p,
            None => {
                // Step-up: checked, counted and replay-protected like a login's code.
                let before = snapshot(&self.tf, &self.p).await;
                let code = match &self.m.secret {
                    Some(s) => Totp::default().generate(s, now).to_string(),
                    None => "123456".to_owned(),
                };
                match self
                    .tf
                    .verify_second_factor(&self.p.user, Factor::Totp(&code), &self.ctx)
                    .await
                {
                    Ok(proof) => {
                        let Some(secret) = self.m.secret.clone() else {
                            return Err(TestCaseError::fail("step-up without an enrolled app"));
                        };
                        let step = record(&self.tf, &self.p)
                            .await
                            .last_used_step()
                            .expect("a used step is recorded");
                        prop_assert_eq!(step, now / 30);
                        let fresh = self
                            .m
                            .accepted_steps
                            .insert((secret.expose_secret().to_vec(), step));
                        prop_assert!(fresh, "time step {} accepted twice", step);
                        self.m.last_accepted_code = Some(code);
                        prop_assert_eq!(proof.factor(), FactorKind::Totp);
                        self.m.proof = Some(proof.clone());
                        proof
                    }
                    Err(Error::NotEnrolled) => {
                        prop_assert!(self.m.secret.is_none());
                        return Ok(());
                    }
                    Err(Error::InvalidCode) => return Ok(()),
                    Err(e @ Error::Throttled { .. }) => {
                        let after = snapshot(&self.tf, &self.p).await;
                        prop_assert_eq!(&before, &after, "record changed by {:?}", e);
                        return Ok(());
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("step-up: {e:?}"))),
                }
            }
        };
        let reauth = Reauthenticated::at(now);
        match self
            .tf
            .regenerate_recovery_codes(&self.p.user, reauth, &proof)
            .await
        {
            Ok(codes) => {
                prop_assert!(self.m.secret.is_some());
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
                let now = self.now();
                let before = snapshot(&self.tf, &self.p).await;
                let stored = record_json(&self.tf, &self.p).await;
                let pending = match self.held_mailed.as_ref().filter(|t| t.is_open(now)) {
                    Some(t) => t.clone(),
                    None => {
                        let g = generation(&stored);
                        held_elsewhere(&self.p, now, FactorKind::MailedCode, g).await
                    }
                };
                let usable = tickets::usable(&pending, &stored, now);
                let r = self.tf.resend_mailed_code(&pending, &self.ctx).await;
                prop_assert_eq!(matches!(r, Err(Error::LoginExpired)), !usable, "{:?}", r);
                match r {
                    Ok(_) | Err(Error::NoPendingLogin) => {}
                    Err(Error::Throttled { .. } | Error::LoginExpired) => {
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
                        // The session keeps its proofs and tickets: the reset revokes them
                        // (the oracle expects them refused).
                        self.m.mail_epoch = login_codes(&self.tf, &self.p).len();
                    }
                    Err(Error::NotEnrolled) => {}
                    Err(e) => prop_assert!(false, "reset: {e:?}"),
                }
            }
            Op::Enroll { typo_first } => self.enroll(typo_first).await?,
            Op::SetPolicy(choice) => self.tf.policy().set(choice),
            Op::Regenerate => self.regenerate().await?,
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
                AuditKind::LoginFailed { reason, .. }
                | AuditKind::EnrollmentFailed { reason }
                | AuditKind::VerificationFailed { reason, .. } => {
                    (*reason != FailureReason::Malformed, false)
                }
                // A step-up is a code check like a login's, and resets the count the same way.
                AuditKind::SecondFactorVerified { .. } => (true, true),
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
        .keys(twofactor::testing::test_keys())
        .build();
    let mut case = Case {
        tf,
        p: principal(),
        m: Model::default(),
        ctx: LoginContext::new(),
        held_second: None,
        held_mailed: None,
        held_enroll: None,
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
                .keys(twofactor::testing::test_keys())
                .build();
            // The victim enrolled (after a login with the mailed code where the policy asks
            // for one, with that login's proof); the attacker knows the password, not the
            // secret.
            let ctx = LoginContext::new();
            let mut proof = None;
            if let Ok(LoginDecision::CodeMailed { pending }) = tf.start_login(&p, None, &ctx).await {
                let code = tf.mailer().last_login_code_for(&p.user).expect("mailed");
                let granted = tf
                    .finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
                    .await
                    .expect("mailed-code login");
                proof = Some(granted.proof);
            }
            let reauth = Reauthenticated::at(T0);
            let started = match &proof {
                Some(proof) => tf.start_enrollment_with_proof(&p, "victim", reauth, proof).await,
                None => tf.start_enrollment(&p, "victim", reauth).await,
            }
            .expect("start");
            let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
            tf.finish_enrollment(&p.user, &Totp::default().generate(&secret, T0).to_string())
                .await
                .expect("finish");
            let mut kept: Option<PendingLogin> = None;
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
                        reason: GrantReason::Off | GrantReason::Exempt { .. },
                        ..
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
                // The ticket handed out, or one the attacker kept from earlier (the last one
                // handed out, or one from another app server of the deployment).
                let now = tf.clock().now();
                let pending = match decision.as_ref().and_then(LoginDecision::pending) {
                    Some(t) => t.clone(),
                    None => match kept.clone() {
                        Some(t) => t,
                        None => {
                            let g = generation(&record_json(&tf, &p).await);
                            held_elsewhere(&p, now, FactorKind::Totp, g).await
                        }
                    },
                };
                kept = Some(pending.clone());
                let r = tf.finish_login(&pending, Factor::Totp(&guess), None, &ctx).await;
                prop_assert!(!matches!(r, Err(Error::InvalidTicket)), "a genuine ticket refused");
                if r.is_ok() {
                    prop_assert!(window.contains(&guess), "a wrong guess was accepted");
                }
            }
            let case = Case {
                tf,
                p,
                m: Model::default(),
                ctx: LoginContext::new(),
                held_second: None,
                held_mailed: None,
                held_enroll: None,
            };
            case.check_limits()
        })?;
    }
}
