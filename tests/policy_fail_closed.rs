//! A user with an active factor is never let in on the password alone unless a policy
//! explicitly (and audibly) exempts them.
//!
//! The review's attack: `PerTenant` answered `Off` for a tenant it did not know (a misspelled
//! or differently cased name, a principal without a tenant, or switches not yet restored after
//! a restart), and the login of an *enrolled* user was granted with the password alone. The
//! same class: any policy (a closure, a combinator) answering `Off` for an enrolled user.

use std::sync::{Arc, RwLock};

use proptest::prelude::*;
use twofactor::account::{Factor, GrantReason, LoginContext, LoginDecision, Reauthenticated};
use twofactor::audit::AuditKind;
use twofactor::policy::GraceStart;
use twofactor::policy::PolicyExt;
use twofactor::policy::{TENANT_DISABLED_EXEMPTION, UnknownTenant};
use twofactor::service::TwoFactor;
use twofactor::testing::ManualClock;
use twofactor::testing::RecordingAudit;
use twofactor::testing::RecordingMailer;
use twofactor::{
    Clock, EnforcementPolicy, EnrollmentStatus, KeyUri, MemoryStore, Optional, PerTenant,
    Principal, RequiredForAll, RequiredForRoles, Requirement, Secret, Totp, UserId, WhenUnenrolled,
};

const T0: u64 = 1_700_000_010;

type Policy = Arc<dyn EnforcementPolicy>;
type Service =
    TwoFactor<Arc<MemoryStore>, RecordingMailer, Arc<Switch>, ManualClock, RecordingAudit>;

/// The deployment's policy, replaceable between requests (a restart with a fresh policy).
struct Switch(RwLock<Policy>);

impl EnforcementPolicy for Switch {
    fn requirement(&self, p: &Principal, s: &EnrollmentStatus, now: u64) -> Requirement {
        self.0.read().expect("lock").requirement(p, s, now)
    }
}

/// How the tests build a per-tenant switch: unknown tenants opt-in (the Onum default).
fn per_tenant() -> PerTenant {
    PerTenant::new(RequiredForAll::default(), UnknownTenant::OptIn)
}

struct World {
    tf: Service,
    switch: Arc<Switch>,
}

impl World {
    fn new(policy: Policy) -> Self {
        Self::on(Arc::new(MemoryStore::new()), policy)
    }

    fn on(store: Arc<MemoryStore>, policy: Policy) -> Self {
        let switch = Arc::new(Switch(RwLock::new(policy)));
        let tf = TwoFactor::builder(store)
            .mailer(RecordingMailer::new())
            .policy(Arc::clone(&switch))
            .clock(ManualClock::new(T0))
            .audit(RecordingAudit::new())
            .keys(twofactor::testing::test_keys())
            .build();
        World { tf, switch }
    }

    fn set(&self, policy: Policy) {
        *self.switch.0.write().expect("lock") = policy;
    }

    fn code(&self, secret: &Secret) -> String {
        Totp::default()
            .generate(secret, self.tf.clock().now())
            .to_string()
    }

    async fn enroll(&self, user: &UserId) -> Secret {
        let now = self.tf.clock().now();
        let started = self
            .tf
            .start_enrollment(
                &Principal::new(user.clone()),
                user.as_str(),
                Reauthenticated::at(now),
            )
            .await
            .expect("start enrollment");
        let secret = KeyUri::parse(started.uri()).expect("URI").into_secret();
        self.tf
            .finish_enrollment(user, &self.code(&secret))
            .await
            .expect("finish enrollment");
        self.tf.clock().advance(30);
        secret
    }

    async fn decision(&self, who: &Principal) -> LoginDecision {
        self.tf
            .start_login(who, None, &LoginContext::new())
            .await
            .expect("begin login")
    }
}

fn is_challenge(d: &LoginDecision) -> bool {
    matches!(d, LoginDecision::Challenge { .. })
}

/// The tenant names that reach `PerTenant` and match no switch: a typo, another case, padding,
/// another tenant, and no tenant at all.
fn unknown_principals(user: &str) -> Vec<Principal> {
    let mut out: Vec<Principal> = ["acmee", "Acme", "ACME", " acme", "acme ", "globex", ""]
        .into_iter()
        .map(|t| Principal::new(user).in_tenant(t))
        .collect();
    out.push(Principal::new(user));
    out
}

#[tokio::test]
async fn enrolled_user_of_an_unknown_tenant_is_challenged() {
    let toggle = Arc::new(per_tenant());
    let w = World::new(toggle.clone());
    toggle.enable("acme");
    let ana = Principal::new("ana").in_tenant("acme");
    let secret = w.enroll(&ana.user).await;
    assert!(is_challenge(&w.decision(&ana).await));

    for who in unknown_principals("ana") {
        let d = w.decision(&who).await;
        assert!(is_challenge(&d), "{:?}: {d:?}", who.tenant);
        // And the challenge is answerable: a correct code lets her in, nothing else does.
        let pending = d.into_pending().expect("a challenge");
        assert_eq!(pending.principal(), &who);
        w.tf.finish_login(
            &pending,
            Factor::Totp(&w.code(&secret)),
            None,
            &LoginContext::new(),
        )
        .await
        .expect("her code is accepted");
        w.tf.clock().advance(30);
    }

    // Unenrolled users of unknown tenants keep logging in with the password.
    for who in unknown_principals("ben") {
        assert_eq!(
            w.decision(&who).await.grant_reason(),
            Some(&GrantReason::Off),
            "{:?}",
            who.tenant
        );
    }
}

#[tokio::test]
async fn switches_not_restored_after_a_restart_do_not_open_the_door() {
    let store = Arc::new(MemoryStore::new());
    let toggle = Arc::new(per_tenant());
    let before = World::on(store.clone(), toggle.clone());
    toggle.enable("acme");
    let ana = Principal::new("ana").in_tenant("acme");
    before.enroll(&ana.user).await;

    // The process restarts; the host has not replayed the owners' switches yet.
    let after = World::on(store, Arc::new(per_tenant()));
    after.tf.clock().advance(60);
    assert!(is_challenge(&after.decision(&ana).await));
}

#[tokio::test]
async fn a_policy_answering_off_cannot_let_an_enrolled_user_in() {
    // A host's own closure that forgot enrolled users.
    let off: Policy = Arc::new(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Off);
    let w = World::new(Arc::new(RequiredForAll::default()));
    let ana = Principal::new("ana");
    let secret = w.enroll(&ana.user).await;
    w.set(off);
    let d = w.decision(&ana).await;
    assert!(is_challenge(&d));
    let pending = d.into_pending().expect("a challenge");
    assert!(
        w.tf.finish_login(&pending, Factor::Totp("000000"), None, &LoginContext::new())
            .await
            .is_err()
            || w.code(&secret) == "000000"
    );
    w.tf.finish_login(
        &pending,
        Factor::Totp(&w.code(&secret)),
        None,
        &LoginContext::new(),
    )
    .await
    .expect("her code is accepted");
    assert_eq!(
        w.decision(&Principal::new("ben")).await.grant_reason(),
        Some(&GrantReason::Off)
    );
}

#[tokio::test]
async fn an_owner_switching_off_is_an_audited_exemption() {
    let toggle = Arc::new(per_tenant());
    let w = World::new(toggle.clone());
    toggle.enable("acme");
    let ana = Principal::new("ana").in_tenant("acme");
    w.enroll(&ana.user).await;
    toggle.disable("acme");
    assert_eq!(
        w.decision(&ana).await.grant_reason(),
        Some(&GrantReason::Exempt {
            reason: TENANT_DISABLED_EXEMPTION.into()
        })
    );
    assert!(
        w.tf.audit()
            .kinds_for(&ana.user)
            .contains(&AuditKind::PolicyExemptionApplied {
                reason: TENANT_DISABLED_EXEMPTION.into()
            })
    );
    // An unenrolled user of the switched-off tenant: password only, nothing to exempt from.
    assert_eq!(
        w.decision(&Principal::new("ben").in_tenant("acme"))
            .await
            .grant_reason(),
        Some(&GrantReason::Off)
    );
}

// ---------------------------------------------------------------------------------------------
// The property: whatever the policy and the tenant, an enrolled user is challenged unless the
// answer is an explicit exemption.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Answer {
    Off,
    Optional(bool),
    Required(bool, Option<u64>, bool),
    Exempt,
}

impl Answer {
    fn requirement(&self) -> Requirement {
        match *self {
            Answer::Off => Requirement::Off,
            Answer::Optional(trusted_devices) => Requirement::Optional { trusted_devices },
            Answer::Required(mail, grace_until, trusted_devices) => Requirement::Required {
                when_unenrolled: if mail {
                    WhenUnenrolled::MailCode
                } else {
                    WhenUnenrolled::BlockUntilEnrolled
                },
                grace_until,
                trusted_devices,
            },
            Answer::Exempt => Requirement::Exempt {
                reason: "test".into(),
            },
        }
    }
}

#[derive(Debug, Clone)]
enum PolicyPick {
    /// A closure answering this, whoever asks.
    Fixed(Answer),
    /// A per-tenant switch with these tenants switched on and off, and this unknown default.
    Tenants {
        switches: Vec<(String, bool)>,
        enforce_unknown: bool,
    },
    Optional,
    RolesOtherwiseOff,
    GraceSuperuserNoDevices,
}

fn tenant() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("acme".to_owned()),
        Just("Acme".to_owned()),
        Just("acmee".to_owned()),
        Just(String::new()),
        "[a-zA-Z ]{0,6}",
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        Just(Answer::Off),
        any::<bool>().prop_map(Answer::Optional),
        (
            any::<bool>(),
            proptest::option::of(0u64..2 * T0),
            any::<bool>()
        )
            .prop_map(|(m, g, t)| Answer::Required(m, g, t)),
        Just(Answer::Exempt),
    ]
}

fn policy_pick() -> impl Strategy<Value = PolicyPick> {
    prop_oneof![
        answer().prop_map(PolicyPick::Fixed),
        (
            proptest::collection::vec((tenant(), any::<bool>()), 0..4),
            any::<bool>()
        )
            .prop_map(|(switches, enforce_unknown)| PolicyPick::Tenants {
                switches,
                enforce_unknown
            }),
        Just(PolicyPick::Optional),
        Just(PolicyPick::RolesOtherwiseOff),
        Just(PolicyPick::GraceSuperuserNoDevices),
    ]
}

fn build(pick: &PolicyPick) -> Policy {
    match pick {
        PolicyPick::Fixed(answer) => {
            let req = answer.requirement();
            Arc::new(move |_: &Principal, _: &EnrollmentStatus, _: u64| req.clone())
        }
        PolicyPick::Tenants {
            switches,
            enforce_unknown,
        } => {
            let unknown = if *enforce_unknown {
                UnknownTenant::Enforce
            } else {
                UnknownTenant::OptIn
            };
            let p = PerTenant::new(RequiredForAll::default(), unknown);
            for (t, on) in switches {
                p.set(t.clone(), *on);
            }
            Arc::new(p)
        }
        PolicyPick::Optional => Arc::new(Optional),
        PolicyPick::RolesOtherwiseOff => Arc::new(
            RequiredForRoles::new(["admin"], WhenUnenrolled::MailCode)
                .otherwise(|_: &Principal, _: &EnrollmentStatus, _: u64| Requirement::Off),
        ),
        PolicyPick::GraceSuperuserNoDevices => Arc::new(
            per_tenant()
                .with_grace_period(
                    GraceStart::AccountCreated,
                    std::time::Duration::from_secs(60),
                )
                .exempt_superuser()
                .without_trusted_devices(),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn an_enrolled_user_is_never_granted_on_the_password_alone_unless_exempt(
        pick in policy_pick(),
        tenant in proptest::option::of(tenant()),
        superuser in any::<bool>(),
        admin in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        rt.block_on(async {
            let w = World::new(Arc::new(RequiredForAll::default()));
            let mut ana = Principal::new("ana").superuser(superuser).created_at(T0);
            if admin {
                ana = ana.with_role("admin");
            }
            if let Some(t) = &tenant {
                ana = ana.in_tenant(t.clone());
            }
            w.enroll(&ana.user).await;
            let policy = build(&pick);
            let status = EnrollmentStatus::enrolled_at(T0);
            let requirement = policy.requirement(&ana, &status, w.tf.clock().now());
            w.set(policy);
            let decision = w.decision(&ana).await;
            match &decision {
                LoginDecision::Challenge { .. } => {}
                LoginDecision::Granted { reason: GrantReason::Exempt { reason }, .. } => {
                    prop_assert_eq!(&requirement, &Requirement::Exempt { reason: reason.clone() });
                }
                other => prop_assert!(false, "{:?} under {:?} ({:?})", other, requirement, pick),
            }
            // The built-in policies themselves never answer `Off` for an enrolled user.
            if !matches!(pick, PolicyPick::Fixed(_) | PolicyPick::RolesOtherwiseOff) {
                prop_assert_ne!(requirement, Requirement::Off, "{:?}", pick);
            }
            Ok(())
        })?;
    }
}
