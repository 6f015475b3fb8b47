//! The login ticket: `finish_login` takes what `start_login` handed out, enforces its deadline
//! and the factors it accepts, and the ticket is sealed: an edited one (changed where the
//! client could write it, as in an unsigned cookie or a hidden field) is refused with
//! `Error::InvalidTicket` before anything is loaded — nothing checked, nothing counted against
//! the user it names, nothing saved.
//!
//! Before the ticket was sealed, these tests edited the serialized pending login (a plain
//! serde value) and showed that an edit never got further than the stored record allowed.
//! Editing its fields is now impossible by design (it is one opaque string), so each of them
//! is the stronger check: the edited ticket is refused outright, the store is untouched (the
//! counting store sees zero loads and zero saves) and the named user's code-check counter
//! does not move.

#[allow(unused_imports)]
mod common;

use std::sync::Arc;

use common::counting::{Counting, Pause};
use common::flows::{Harness, code, required};
use common::tickets::{self, Claims, Step};
use twofactor::account::{
    Factor, FailureReason, LoginContext, LoginDecision, PendingStep, Reauthenticated, ServiceKeys,
};
use twofactor::audit::AuditKind;
use twofactor::service::Error;
use twofactor::store::UserStore;
use twofactor::testing::{RecordingAudit, RecordingMailer};
use twofactor::vocabulary::FactorKind;
use twofactor::{
    EnrollmentStatus, MemoryStore, PendingLogin, Principal, Requirement, Settings, TwoFactor,
    UserId, WhenUnenrolled,
};

type Counted = Counting<MemoryStore>;

fn ctx() -> LoginContext {
    LoginContext::new()
}

/// Staff must use 2FA; the role "break-glass" is exempt (as a host's policy may say).
fn roles(p: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    if p.has_role("break-glass") {
        Requirement::Exempt {
            reason: "break-glass".into(),
        }
    } else {
        Requirement::required()
    }
}

fn mail_code(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

fn wrong(good: &str) -> String {
    if good == "000000" { "000001" } else { "000000" }.to_owned()
}

/// A harness over a store that counts its loads and saves.
fn counted(policy: common::flows::Policy) -> (Harness<Counted>, Arc<Counted>) {
    let store = Arc::new(Counting::new(MemoryStore::new(), Pause::None));
    (Harness::new(store.clone(), policy), store)
}

fn logins<S: UserStore>(h: &Harness<S>, who: &Principal) -> usize {
    h.successes(&who.user)
}

/// `user`'s stored row as JSON (read past the counter), or `None`.
async fn row(store: &Counted, user: &UserId) -> Option<serde_json::Value> {
    store
        .inner()
        .load(user)
        .await
        .expect("load")
        .map(|v| serde_json::to_value(&v.record).expect("serialize"))
}

/// How many code checks `user`'s throttle has counted in its window.
async fn code_checks(store: &Counted, user: &UserId) -> usize {
    row(store, user).await.map_or(0, |r| {
        r["code_checks"].as_array().expect("code_checks").len()
    })
}

/// Every call that takes a login ticket refuses `forged` with `Error::InvalidTicket` before
/// anything is loaded: `finish_login` with `totp` (the named user's own, current code, when a
/// test has it), a recovery code and a mailed code, `resend_mailed_code`, and both forced
/// set-up calls. Zero loads, zero saves, the named user's row (and so their code-check
/// counter) unchanged, nothing audited, nothing mailed.
async fn refused_untouched(
    h: &Harness<Counted>,
    store: &Counted,
    forged: &PendingLogin,
    totp: &str,
    what: &str,
) {
    let named = forged.user().clone();
    let row_before = row(store, &named).await;
    let checks_before = code_checks(store, &named).await;
    let events_before = h.audit.events().len();
    let mails_before = h.tf.mailer().sent().len();
    store.reset();
    for factor in [
        Factor::Totp(totp),
        Factor::RecoveryCode("zzzz-zzzz-zzzz-zzzz"),
        Factor::MailedCode("123456"),
    ] {
        let r =
            h.tf.finish_login(forged, factor, Some("laptop"), &ctx())
                .await;
        assert!(
            matches!(r, Err(Error::InvalidTicket)),
            "{what}: finish_login({factor:?}) answered {r:?}"
        );
    }
    let r = h.tf.resend_mailed_code(forged, &ctx()).await;
    assert!(
        matches!(r, Err(Error::InvalidTicket)),
        "{what}: resend {r:?}"
    );
    let r = h.tf.start_forced_enrollment(forged, "mallory").await;
    assert!(
        matches!(r, Err(Error::InvalidTicket)),
        "{what}: start_forced_enrollment {:?}",
        r.map(|s| s.uri().to_owned())
    );
    let r = h.tf.finish_forced_enrollment(forged, totp).await;
    assert!(
        matches!(r, Err(Error::InvalidTicket)),
        "{what}: finish_forced_enrollment {:?}",
        r.map(|e| e.login_completed())
    );
    assert_eq!(store.counts(), (0, 0, 0), "{what}: the store was used");
    assert_eq!(row(store, &named).await, row_before, "{what}: row changed");
    assert_eq!(
        code_checks(store, &named).await,
        checks_before,
        "{what}: the throttle counted"
    );
    assert_eq!(h.audit.events().len(), events_before, "{what}: audited");
    assert_eq!(h.tf.mailer().sent().len(), mails_before, "{what}: mailed");
}

#[tokio::test]
async fn the_pending_login_carries_what_start_login_decided() {
    let h = Harness::new(Arc::new(MemoryStore::new()), roles);
    let alice = Principal::new("alice").with_role("staff").in_tenant("acme");
    let (alice_secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    assert_eq!(pending.principal(), &alice);
    assert_eq!(pending.user(), &alice.user);
    // The password check it carries (what `reauthenticated()` used to return; the forced
    // set-up calls now take it from the ticket themselves).
    assert_eq!(pending.password_checked_at(), h.now());
    let ttl = Settings::default().login_challenge_ttl();
    assert_eq!(pending.expires_at(), h.now() + ttl);
    assert_eq!(
        pending.methods(),
        &[FactorKind::Totp, FactorKind::RecoveryCode]
    );
    // It survives the host's session store unchanged (one opaque string, in serde too), and
    // holds nothing secret.
    let json = serde_json::to_string(&pending).unwrap();
    assert_eq!(json, format!("\"{}\"", pending.as_str()));
    assert_eq!(
        serde_json::from_str::<PendingLogin>(&json).unwrap(),
        pending
    );
    assert_eq!(pending.as_str().parse::<PendingLogin>().unwrap(), pending);
    let (secret, codes) = h.enroll(&Principal::new("bob").user).await;
    assert!(!json.contains(secret.to_base32().as_str()));
    assert!(!codes.iter().any(|c| json.contains(c.as_str())));
    // Read back, it logs in.
    let back: PendingLogin = serde_json::from_str(&json).unwrap();
    h.finish_totp(&back, &code(&alice_secret, h.now()))
        .await
        .expect("the ticket read back");
}

#[tokio::test]
async fn an_expired_pending_login_is_refused_and_nothing_is_checked_or_counted() {
    let (h, store) = counted(required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.clock.set(pending.expires_at());
    let before = h.audit.kinds_for(&alice.user).len();
    store.reset();
    for factor in [
        Factor::Totp(&code(&secret, h.now())),
        Factor::RecoveryCode("zzzz-zzzz-zzzz-zzzz"),
        Factor::MailedCode("123456"),
    ] {
        let r = h.tf.finish_login(&pending, factor, None, &ctx()).await;
        assert!(matches!(r, Err(Error::LoginExpired)), "{factor:?}: {r:?}");
    }
    assert_eq!(store.counts(), (0, 0, 0), "refused before any load");
    let e = Error::LoginExpired;
    assert_eq!(e.kind(), twofactor::ErrorKind::NotAllowedNow);
    assert_eq!(e.http_status(), 403);
    let e = Error::InvalidTicket;
    assert_eq!(e.kind(), twofactor::ErrorKind::NotAllowedNow);
    assert_eq!(e.http_status(), 403);
    assert_eq!(h.audit.kinds_for(&alice.user).len(), before, "audited");
    let status = h.tf.status(&alice.user).await.unwrap();
    assert_eq!(status.throttled_until, None);
    // One second earlier the same code is accepted.
    h.clock.set(pending.expires_at() - 1);
    h.finish_totp(&pending, &code(&secret, h.now()))
        .await
        .expect("in time");
}

/// Was `another_users_name_in_the_pending_login_needs_that_users_factor`: an edited pending
/// login naming alice was checked against alice's record, every try counted on her throttle
/// (five of them locked her out for an hour). Now the edited ticket is refused before
/// anything is loaded, and alice's counter does not move.
#[tokio::test]
async fn another_users_name_in_the_ticket_is_refused_before_anything_is_loaded() {
    let (h, store) = counted(required);
    let (alice, mallory) = (Principal::new("alice"), Principal::new("mallory"));
    let (alice_secret, _) = h.enroll(&alice.user).await;
    let (mallory_secret, _) = h.enroll(&mallory.user).await;
    h.clock.advance(30);
    // Mallory passes her own password check and edits her ticket to name alice.
    let own = h.challenge(&mallory).await;
    let forged = tickets::edited(&own, |c| c.user = "alice".into());
    assert_eq!(forged.user(), &alice.user);
    // Her own authenticator's code, guesses, and even alice's real code: all refused, none
    // counted on alice's record.
    let mine = code(&mallory_secret, h.now());
    refused_untouched(&h, &store, &forged, &mine, "mallory's code").await;
    for _ in 0..6 {
        let guess = wrong(&code(&alice_secret, h.now()));
        refused_untouched(&h, &store, &forged, &guess, "a guess").await;
    }
    refused_untouched(
        &h,
        &store,
        &forged,
        &code(&alice_secret, h.now()),
        "alice's own code",
    )
    .await;
    assert_eq!(logins(&h, &alice), 0);
    assert_eq!(h.wrong_codes(&alice.user), 0);
    assert_eq!(code_checks(&store, &alice.user).await, 0);
    // Alice is not throttled: her whole budget is left (four wrong codes, then hers).
    assert_eq!(
        h.tf.status(&alice.user).await.unwrap().throttled_until,
        None
    );
    let pending = h.challenge(&alice).await;
    for _ in 0..4 {
        let r = h
            .finish_totp(&pending, &wrong(&code(&alice_secret, h.now())))
            .await;
        assert!(matches!(r, Err(Error::InvalidCode)), "{r:?}");
    }
    h.finish_totp(&pending, &code(&alice_secret, h.now()))
        .await
        .expect("alice logs in");
    // And mallory's own ticket still works for mallory.
    h.clock.advance(30);
    h.finish_totp(&own, &code(&mallory_secret, h.now()))
        .await
        .expect("mallory's own ticket");
}

/// Was `edited_roles_never_turn_a_required_factor_into_a_grant`: the edit (an exempting role,
/// another tenant, superuser) used to reach the policy at `finish_login`; now it is refused
/// before the policy or the record is consulted, even with her own code.
#[tokio::test]
async fn edited_roles_tenant_or_superuser_are_refused_even_with_her_own_code() {
    let (h, store) = counted(roles);
    let alice = Principal::new("alice").with_role("staff");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    // The edit would make the policy answer Exempt at finish_login.
    let forged = tickets::edited(&pending, |c| {
        c.roles = ["break-glass".to_owned()].into();
        c.tenant = Some("other".into());
        c.superuser = true;
    });
    assert!(forged.principal().has_role("break-glass"));
    let good = code(&secret, h.now());
    for bad in [
        wrong(&good),
        "not a code".to_owned(),
        String::new(),
        good.clone(),
    ] {
        refused_untouched(&h, &store, &forged, &bad, &format!("{bad:?}")).await;
    }
    assert_eq!(logins(&h, &alice), 0);
    assert!(h.tf.list_devices(&alice.user).await.unwrap().is_empty());
    // The ticket she was given, with her real code, logs her in as her record allows.
    let granted =
        h.tf.finish_login(&pending, Factor::Totp(&good), Some("laptop"), &ctx())
            .await
            .expect("her own code");
    assert!(granted.device_token.is_some());
    assert_eq!(logins(&h, &alice), 1);
}

/// Was `a_later_deadline_does_not_lift_the_throttle_or_replay_protection`: an edited deadline
/// is refused outright now, before and after the real deadline; the throttle and replay
/// protection stand for genuine tickets, and a used ticket is refused (single use).
#[tokio::test]
async fn a_later_deadline_is_refused_and_the_throttle_and_replay_protection_stand() {
    let (h, store) = counted(required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let forever = tickets::edited(&pending, |c| c.expires_at = u64::MAX);
    assert_eq!(forever.expires_at(), u64::MAX);
    refused_untouched(&h, &store, &forever, &code(&secret, h.now()), "in time").await;
    h.clock
        .advance(Settings::default().login_challenge_ttl() + 30);
    assert!(matches!(
        h.finish_totp(&pending, &code(&secret, h.now())).await,
        Err(Error::LoginExpired)
    ));
    refused_untouched(&h, &store, &forever, &code(&secret, h.now()), "late").await;
    // A genuine ticket: five wrong codes, then even the right one is throttled.
    let pending = h.challenge(&alice).await;
    let good = code(&secret, h.now());
    for _ in 0..5 {
        assert!(matches!(
            h.finish_totp(&pending, &wrong(&good)).await,
            Err(Error::InvalidCode)
        ));
    }
    assert!(matches!(
        h.finish_totp(&pending, &good).await,
        Err(Error::Throttled { .. })
    ));
    h.clock.advance(3_600);
    let pending = h.challenge(&alice).await;
    let good = code(&secret, h.now());
    h.finish_totp(&pending, &good).await.expect("her code");
    // Single use: the same ticket is refused, replayed code or not.
    assert!(matches!(
        h.finish_totp(&pending, &good).await,
        Err(Error::LoginExpired)
    ));
    // Replay protection: the same code on a new ticket is refused.
    let again = h.challenge(&alice).await;
    assert!(matches!(
        h.finish_totp(&again, &good).await,
        Err(Error::InvalidCode)
    ));
}

/// Was `other_accepted_factors_reach_only_what_the_record_holds`: a factor the ticket does
/// not accept is still refused and counted; a ticket edited to accept other factors is now
/// refused before anything is loaded.
#[tokio::test]
async fn other_accepted_factors_reach_only_what_the_record_holds() {
    let (h, store) = counted(required);
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    // A TOTP challenge does not take a mailed code: refused and counted.
    let r =
        h.tf.finish_login(&pending, Factor::MailedCode("123456"), None, &ctx())
            .await;
    assert!(matches!(r, Err(Error::InvalidCode)), "{r:?}");
    assert!(
        h.audit
            .kinds_for(&alice.user)
            .contains(&AuditKind::LoginFailed {
                factor: FactorKind::MailedCode,
                reason: FailureReason::NoPendingFactor
            })
    );
    assert_eq!(code_checks(&store, &alice.user).await, 1);
    // Edited to accept mailed codes (or fewer factors, or another order): refused, with the
    // authenticator's code and a recovery code too.
    for (what, step) in [
        ("mailed code", Step::MailedCode(u64::MAX)),
        ("TOTP only", Step::SecondFactor(vec![tickets::TOTP])),
        (
            "recovery code only",
            Step::SecondFactor(vec![tickets::RECOVERY_CODE]),
        ),
    ] {
        let forged = tickets::edited(&pending, |c| c.step = step);
        refused_untouched(&h, &store, &forged, &code(&secret, h.now()), what).await;
        store.reset();
        let r =
            h.tf.finish_login(&forged, Factor::RecoveryCode(&codes[0]), None, &ctx())
                .await;
        assert!(matches!(r, Err(Error::InvalidTicket)), "{what}: {r:?}");
        assert_eq!(store.counts(), (0, 0, 0));
    }
    assert_eq!(logins(&h, &alice), 0);
    assert_eq!(code_checks(&store, &alice.user).await, 1, "counted");
    // Listing a factor no step takes is refused when the session is read.
    for methods in [
        vec![tickets::TRUSTED_DEVICE],
        vec![tickets::MAILED_CODE],
        vec![],
        vec![tickets::TOTP, tickets::TOTP],
        vec![9],
    ] {
        let token = tickets::edited_token(&pending, |c| c.step = Step::SecondFactor(methods));
        assert!(token.parse::<PendingLogin>().is_err(), "{token}");
        let json = serde_json::Value::String(token);
        assert!(serde_json::from_value::<PendingLogin>(json).is_err());
    }
}

#[tokio::test]
async fn a_must_enroll_pending_login_refuses_every_factor_and_supplies_enrollment() {
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let alice = Principal::new("alice").with_role("staff");
    let decision = h.tf.start_login(&alice, None, &ctx()).await.unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    assert_eq!(pending.step(), &PendingStep::Enrollment);
    assert!(pending.methods().is_empty());
    for factor in [
        Factor::Totp("123456"),
        Factor::RecoveryCode("zzzz-zzzz-zzzz-zzzz"),
        Factor::MailedCode("123456"),
    ] {
        let r = h.tf.finish_login(&pending, factor, None, &ctx()).await;
        assert!(matches!(r, Err(Error::InvalidCode)), "{factor:?}: {r:?}");
    }
    assert!(matches!(
        h.tf.resend_mailed_code(&pending, &ctx()).await,
        Err(Error::NoPendingLogin)
    ));
    // What enrollment needs comes from the ticket (the forced set-up calls take it: its
    // user, principal and password check); the login is completed by it.
    h.clock.advance(60);
    let started =
        h.tf.start_forced_enrollment(&pending, "alice")
            .await
            .unwrap();
    let secret = twofactor::KeyUri::parse(started.uri())
        .unwrap()
        .into_secret();
    let enrolled =
        h.tf.finish_forced_enrollment(&pending, &code(&secret, h.now()))
            .await
            .unwrap();
    assert!(enrolled.login_completed());
    // The ticket is used up.
    let r = h.tf.start_forced_enrollment(&pending, "alice").await;
    assert!(matches!(r, Err(Error::LoginExpired)), "{:?}", r.map(drop));
    // The password check a ticket carries goes stale like any other.
    h.clock.advance(30);
    let later = h.challenge(&alice).await;
    h.clock.advance(Settings::default().reauth_max_age() + 1);
    assert!(matches!(
        h.tf.start_rotation(
            later.user(),
            "alice",
            code(&secret, h.now()).as_str(),
            Reauthenticated::at(later.password_checked_at())
        )
        .await,
        Err(Error::ReauthenticationRequired)
    ));
}

/// Was: the forged `MustEnroll` (an edited `step`) reached `start_enrollment`, which asked
/// the policy and the record. Now the edited ticket is refused by every call before anything
/// is loaded, and the real mailed-code login opens enrollment only with its proof.
#[tokio::test]
async fn a_forged_must_enroll_under_a_mail_code_policy_does_not_open_enrollment() {
    let (h, store) = counted(mail_code);
    let bob = Principal::new("bob");
    let decision = h.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::CodeMailed { pending } = decision else {
        panic!("{decision:?}")
    };
    let forged = tickets::edited(&pending, |c| c.step = Step::Enrollment);
    assert_eq!(forged.step(), &PendingStep::Enrollment);
    let mailed = h.tf.mailer().last_login_code_for(&bob.user).unwrap();
    refused_untouched(&h, &store, &forged, "123456", "forged enrollment step").await;
    // Nor does the forged value take the mailed code.
    store.reset();
    let r =
        h.tf.finish_login(&forged, Factor::MailedCode(&mailed), None, &ctx())
            .await;
    assert!(matches!(r, Err(Error::InvalidTicket)), "{r:?}");
    assert_eq!(store.counts(), (0, 0, 0));
    // Enrollment asks the policy and the stored record: the password alone is not enough.
    let reauth = Reauthenticated::at(pending.password_checked_at());
    let r = h.tf.start_enrollment(&bob, "bob", reauth).await;
    assert!(
        matches!(r, Err(Error::SecondFactorRequired)),
        "{:?}",
        r.map(drop)
    );
    // The real ticket takes the mailed code; enrollment then opens with that login's proof
    // (and still not without it).
    let granted =
        h.tf.finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx())
            .await
            .expect("the mailed code");
    assert_eq!(granted.proof.factor(), FactorKind::MailedCode);
    let r = h.tf.start_enrollment(&bob, "bob", reauth).await;
    assert!(
        matches!(r, Err(Error::SecondFactorRequired)),
        "{:?}",
        r.map(drop)
    );
    h.tf.start_enrollment_with_proof(&bob, "bob", reauth, &granted.proof)
        .await
        .expect("after the mailed code");
}

#[tokio::test]
async fn resending_needs_a_mailed_code_pending_login_that_is_still_open() {
    let (h, store) = counted(mail_code);
    let bob = Principal::new("bob");
    let decision = h.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let pending = decision.into_pending().unwrap();
    h.clock.advance(60);
    let expires = h.tf.resend_mailed_code(&pending, &ctx()).await.unwrap();
    assert_eq!(expires, h.now() + Settings::default().mailed_code_ttl());
    // A resent code does not extend the pending login.
    assert!(pending.expires_at() < expires);
    // Nor does an edited one.
    let later = tickets::edited(&pending, |c| c.expires_at = u64::MAX);
    refused_untouched(&h, &store, &later, "123456", "later deadline").await;
    h.clock.set(pending.expires_at());
    assert!(matches!(
        h.tf.resend_mailed_code(&pending, &ctx()).await,
        Err(Error::LoginExpired)
    ));
    // A genuine TOTP challenge for bob (from an app server where he is enrolled): not a
    // mailed-code login.
    let challenge = h.pending_for(&bob).await;
    assert!(matches!(challenge.step(), PendingStep::SecondFactor { .. }));
    assert!(matches!(
        h.tf.resend_mailed_code(&challenge, &ctx()).await,
        Err(Error::NoPendingLogin)
    ));
    // Edited into a mailed-code step, it is refused before anything is loaded.
    let forged = tickets::edited(&challenge, |c| c.step = Step::MailedCode(u64::MAX));
    refused_untouched(&h, &store, &forged, "123456", "forged mailed-code step").await;
}

/// Every class of edit (another user, roles, tenant, superuser, account age, password check
/// time, deadline, factors, a forged mailed-code or `MustEnroll` step, generation, nonce, MAC)
/// of a ticket mallory holds is refused by every call with `Error::InvalidTicket`, before any
/// load, with no throttle charge to the user it names and nothing saved. On 90027a0 the
/// pending login was plain serde and every one of these edits reached the record (that API
/// cannot express a sealed ticket; the old attacks were replayed there with JSON edits).
#[tokio::test]
async fn every_edit_of_a_ticket_is_refused_before_anything_is_loaded() {
    let (h, store) = counted(roles);
    let (alice, mallory) = (
        Principal::new("alice").with_role("staff").in_tenant("acme"),
        Principal::new("mallory")
            .with_role("staff")
            .in_tenant("acme"),
    );
    let (alice_secret, _) = h.enroll(&alice.user).await;
    let (mallory_secret, _) = h.enroll(&mallory.user).await;
    h.clock.advance(30);
    let own = h.challenge(&mallory).await;
    let edits = tickets::every_edit(&own, "alice");
    assert!(edits.len() >= 20, "{}", edits.len());
    for (what, forged) in &edits {
        assert_ne!(forged.as_str(), own.as_str(), "{what}: not an edit");
        for totp in [code(&mallory_secret, h.now()), code(&alice_secret, h.now())] {
            refused_untouched(&h, &store, forged, &totp, what).await;
        }
    }
    assert_eq!(code_checks(&store, &alice.user).await, 0);
    assert_eq!(code_checks(&store, &mallory.user).await, 0);
    assert_eq!(logins(&h, &alice) + logins(&h, &mallory), 0);
    // The untouched ticket still works.
    h.finish_totp(&own, &code(&mallory_secret, h.now()))
        .await
        .expect("mallory's own ticket");
}

/// A `MustEnroll` ticket edited to name another, unenrolled account (on 90027a0 this enrolled
/// the attacker's authenticator on any unenrolled account) or to take factors: refused before
/// anything is loaded; the victim gets no record at all.
#[tokio::test]
async fn an_edited_must_enroll_ticket_enrolls_nobody() {
    let (h, store) = counted(required);
    let mallory = Principal::new("mallory");
    let decision = h.tf.start_login(&mallory, None, &ctx()).await.unwrap();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    let victim = UserId::new("victim");
    let mut edits = tickets::every_edit(&pending, "victim");
    edits.push((
        "the victim, with a later deadline",
        tickets::edited(&pending, |c| {
            c.user = "victim".into();
            c.expires_at = u64::MAX;
        }),
    ));
    for (what, forged) in &edits {
        refused_untouched(&h, &store, forged, "123456", what).await;
    }
    assert!(
        row(&store, &victim).await.is_none(),
        "the victim got a record"
    );
    // Mallory's own ticket still sets up her own account.
    let (_, codes) = h.enroll_forced(&pending).await;
    assert!(!codes.is_empty());
}

/// A ticket sealed by a server with another key (another deployment, or a server that was
/// not given the shared keys and seals under a random key of its own) is refused, never
/// accepted, before anything is loaded — also when its claims are exactly right.
#[tokio::test]
async fn a_ticket_from_a_server_with_another_key_is_refused() {
    let (h, store) = counted(required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);

    // Another deployment's server, where alice is enrolled too.
    let other = TwoFactor::builder(MemoryStore::new())
        .mailer(RecordingMailer::new())
        .policy(required as common::flows::Policy)
        .clock(h.clock.clone())
        .audit(RecordingAudit::new())
        .keys(ServiceKeys::derive(&[0x77; 32]).unwrap())
        .build();
    // A server with no keys: tickets sealed under its process's random key.
    let unkeyed = TwoFactor::builder(MemoryStore::new())
        .policy(required as common::flows::Policy)
        .clock(h.clock.clone())
        .audit(RecordingAudit::new())
        .build();
    let mut foreign = Vec::new();
    let reauth = Reauthenticated::at(h.now());
    let started = other
        .start_enrollment(&alice, "alice", reauth)
        .await
        .unwrap();
    let s = twofactor::KeyUri::parse(started.uri())
        .unwrap()
        .into_secret();
    other
        .finish_enrollment(&alice.user, &code(&s, h.now()))
        .await
        .unwrap();
    let decision = other.start_login(&alice, None, &ctx()).await.unwrap();
    foreign.push(("another key", decision.into_pending().unwrap()));
    let started = unkeyed
        .start_enrollment(&alice, "alice", reauth)
        .await
        .unwrap();
    let s = twofactor::KeyUri::parse(started.uri())
        .unwrap()
        .into_secret();
    unkeyed
        .finish_enrollment(&alice.user, &code(&s, h.now()))
        .await
        .unwrap();
    let decision = unkeyed.start_login(&alice, None, &ctx()).await.unwrap();
    foreign.push(("no keys", decision.into_pending().unwrap()));
    // A must-enroll ticket of the other deployment, for an account unenrolled here.
    let decision = other
        .start_login(&Principal::new("bob"), None, &ctx())
        .await
        .unwrap();
    foreign.push(("another key, MustEnroll", decision.into_pending().unwrap()));
    // Its claims are what this server would have issued (user, times, methods, generation).
    let ours = h.challenge(&alice).await;
    let (mine, _) = Claims::decode(&ours);
    let (theirs, _) = Claims::decode(&foreign[0].1);
    assert_eq!(
        (mine.user, mine.expires_at, mine.step, mine.generation),
        (
            theirs.user,
            theirs.expires_at,
            theirs.step,
            theirs.generation
        )
    );
    for (what, ticket) in &foreign {
        refused_untouched(&h, &store, ticket, &code(&secret, h.now()), what).await;
    }
    assert_eq!(code_checks(&store, &alice.user).await, 0);
    // Ours, with the same code, logs in.
    h.finish_totp(&ours, &code(&secret, h.now()))
        .await
        .expect("our own ticket");
    assert!(row(&store, &UserId::new("bob")).await.is_none());
}

/// A password change revokes every outstanding ticket (`revoke_login_tickets`), and so does
/// an administrator's reset: the ticket is refused (`LoginExpired`), nothing checked.
#[tokio::test]
async fn revoked_tickets_are_refused() {
    let (h, store) = counted(required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.tf.revoke_login_tickets(&alice.user).await.unwrap();
    let checks = code_checks(&store, &alice.user).await;
    let r = h.finish_totp(&pending, &code(&secret, h.now())).await;
    assert!(matches!(r, Err(Error::LoginExpired)), "{r:?}");
    assert_eq!(code_checks(&store, &alice.user).await, checks);
    // An edited generation does not get past the revocation either.
    let bumped = tickets::edited(&pending, |c| c.generation += 1);
    refused_untouched(&h, &store, &bumped, &code(&secret, h.now()), "bumped").await;
    // A new ticket works.
    let fresh = h.challenge(&alice).await;
    h.finish_totp(&fresh, &code(&secret, h.now()))
        .await
        .expect("a ticket issued after the revocation");
    // An administrator's reset revokes too (a ticket issued before it).
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    h.tf.reset_by_admin(&alice.user, &UserId::new("root"))
        .await
        .unwrap();
    let r = h.finish_totp(&pending, &code(&secret, h.now())).await;
    assert!(matches!(r, Err(Error::LoginExpired)), "{r:?}");
}

/// Single use in constant space (record format 7): a completed login refuses its ticket and
/// every ticket of the user issued before it (the user's older logins still waiting for a
/// second step start again), while a ticket issued later, or in the same second and not
/// used, still works; and the row does not grow with the number of logins.
#[tokio::test]
async fn a_completed_login_ends_older_waiting_logins_and_the_row_stays_small() {
    let store = Arc::new(MemoryStore::new());
    let h = Harness::new(store.clone(), required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let older = h.challenge(&alice).await;
    h.clock.advance(5);
    let used = h.challenge(&alice).await;
    let same_second = h.challenge(&alice).await;
    h.finish_totp(&used, &code(&secret, h.now()))
        .await
        .expect("login");
    h.clock.advance(30);
    for (what, ticket) in [("the used ticket", &used), ("an older one", &older)] {
        let r = h.finish_totp(ticket, &code(&secret, h.now())).await;
        assert!(matches!(r, Err(Error::LoginExpired)), "{what}: {r:?}");
    }
    h.finish_totp(&same_second, &code(&secret, h.now()))
        .await
        .expect("issued in the same second, never used");
    h.clock.advance(30);
    let later = h.challenge(&alice).await;
    h.finish_totp(&later, &code(&secret, h.now()))
        .await
        .expect("issued later");

    // A hundred logins 30 s apart later, the row is the size it was (a format-6 row listed
    // each used ticket until its deadline: about 30 at this pace).
    let size = || store.json(&alice.user).map(|(j, _)| j.len()).unwrap_or(0);
    h.clock.advance(30);
    h.totp_login(&alice, &secret).await;
    let after_one = size();
    for _ in 0..100 {
        h.clock.advance(30);
        h.totp_login(&alice, &secret).await;
    }
    assert_eq!(size(), after_one);
}
