//! Security review point 4: under a mailed-code policy, the password alone must not be enough
//! to enroll an authenticator (and then log in with it): the mailbox factor would never have
//! been used. Played against every policy shape that yields `WhenUnenrolled::MailCode`.

use std::sync::Arc;
use std::time::Duration;

use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
use twofactor::service::{Error, TwoFactor};
use twofactor::{
    Clock, EnforcementPolicy, GracePeriod, KeyUri, ManualClock, MemoryStore, PerTenant, Principal,
    RecordingMailer, RequiredForAll, RequiredForRoles, Totp, WhenUnenrolled,
};

const T0: u64 = 1_700_000_000;
const DAY: u64 = 86_400;

type Service =
    TwoFactor<MemoryStore, RecordingMailer, Arc<dyn EnforcementPolicy>, Arc<ManualClock>>;

fn service(policy: Arc<dyn EnforcementPolicy>) -> (Service, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let tf = TwoFactor::builder(MemoryStore::new(), RecordingMailer::new(), policy)
        .clock(clock.clone())
        .build();
    (tf, clock)
}

/// Every shape of policy that asks an unenrolled `principal` for a mailed code at `T0`.
fn mail_code_policies() -> Vec<(&'static str, Arc<dyn EnforcementPolicy>, Principal)> {
    let mail = WhenUnenrolled::MailCode;
    let tenant = PerTenant::new(RequiredForAll::new(mail));
    tenant.enable("acme");
    vec![
        (
            "RequiredForAll",
            Arc::new(RequiredForAll::new(mail)),
            Principal::new("mallory"),
        ),
        (
            "RequiredForRoles",
            Arc::new(RequiredForRoles::new(["staff"], mail)),
            Principal::new("mallory").with_role("staff"),
        ),
        (
            "PerTenant(RequiredForAll)",
            Arc::new(tenant),
            Principal::new("mallory").in_tenant("acme"),
        ),
        (
            "GracePeriod(RequiredForAll), expired",
            Arc::new(GracePeriod::since(
                RequiredForAll::new(mail),
                T0 - 40 * DAY,
                Duration::from_secs(30 * DAY),
            )),
            Principal::new("mallory"),
        ),
        (
            "GracePeriod after account creation, expired",
            Arc::new(GracePeriod::after_account_creation(
                RequiredForRoles::new(["staff"], mail),
                Duration::from_secs(7 * DAY),
            )),
            Principal::new("mallory")
                .with_role("staff")
                .created_at(T0 - 8 * DAY),
        ),
    ]
}

/// The attack: the password is known, the mailbox is not. Skip the mailed code, enroll an
/// authenticator of one's own, and log in with it.
#[tokio::test]
async fn password_alone_cannot_enroll_under_a_mail_code_policy() {
    for (name, policy, mallory) in mail_code_policies() {
        let (tf, clock) = service(policy);
        let ctx = LoginContext::new();
        let password_checked_at = clock.now();
        let decision = tf.begin_login(&mallory, None, &ctx).await.unwrap();
        assert!(
            matches!(decision, LoginDecision::CodeMailed { .. }),
            "{name}: {decision:?}"
        );
        // The mailed code goes unread. Enroll instead:
        let started = tf
            .start_enrollment(
                &mallory.user,
                "mallory",
                Reauthenticated::at(password_checked_at),
            )
            .await;
        let Ok(started) = started else {
            continue;
        };
        let app = KeyUri::parse(started.uri()).unwrap().into_secret();
        let code = Totp::default().generate(&app, clock.now()).to_string();
        tf.finish_enrollment(&mallory.user, &code).await.unwrap();
        clock.advance(30);
        tf.begin_login(&mallory, None, &ctx).await.unwrap();
        let code = Totp::default().generate(&app, clock.now()).to_string();
        let granted = tf
            .finish_login(&mallory, Factor::Totp(&code), None, &ctx)
            .await;
        panic!("{name}: logged in without the mailbox: {granted:?}");
    }
}
