//! Assurance claims (issue 14, section 3) through the service: every kind of grant says how
//! the user was authenticated (RFC 8176 `amr`, NIST SP 800-63B level, when, with which
//! authenticator); proofs seal them (an edited claim is refused, an outdated proof has its own
//! error); a host asks `satisfies` and puts them in a session or token.

#[allow(unused_imports)] // this binary uses the flows, not the store fixtures
mod common;

use std::sync::Arc;

use common::flows::{Harness, code, optional, required};
use twofactor::account::{Aal, AssuranceClaims, AuthMethod, DomainError, Factor, LoginContext};
use twofactor::service::Error;
use twofactor::{
    EnrollmentStatus, LoginDecision, MemoryStore, Principal, Requirement, SecondFactorProof,
    WhenUnenrolled,
};

fn ctx() -> LoginContext {
    LoginContext::new()
}

fn methods(claims: &AssuranceClaims) -> Vec<(AuthMethod, u64)> {
    claims
        .methods()
        .iter()
        .map(|m| (m.method, m.completed_at))
        .collect()
}

fn mail_code(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

fn exempt(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Exempt {
        reason: "superuser".into(),
    }
}

/// Each way in, with its methods, times, `amr` and level. The password is dated when
/// `start_login` ran (the host had just checked it), the factor when it was verified.
#[tokio::test]
async fn every_grant_says_how_the_user_got_in() {
    use AuthMethod::{MailedCode, Otp, Password, RecoveryCode, RememberedDevice};
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let alice = Principal::new("alice");
    let (secret, codes) = h.enroll(&alice.user).await;

    // TOTP, a minute after the password.
    h.clock.advance(30);
    let password_at = h.now();
    let pending = h.challenge(&alice).await;
    h.clock.advance(60);
    let totp =
        h.tf.finish_login(
            &pending,
            Factor::Totp(&code(&secret, h.now())),
            Some("Firefox"),
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(
        methods(&totp.claims),
        [(Password, password_at), (Otp, h.now())]
    );
    assert_eq!(totp.claims.amr(), ["pwd", "otp", "mfa"]);
    assert_eq!(totp.claims.aal(), Aal::Aal2);
    assert_eq!(totp.claims.auth_time(), h.now());
    assert_eq!(totp.proof.claims(), &totp.claims);
    assert_eq!(
        h.tf.check_proof(&alice.user, &totp.proof, 600)
            .await
            .unwrap(),
        totp.claims
    );

    // A recovery code.
    h.clock.advance(30);
    let pending = h.challenge(&alice).await;
    let recovery =
        h.tf.finish_login(&pending, Factor::RecoveryCode(&codes[0]), None, &ctx())
            .await
            .unwrap();
    assert_eq!(
        methods(&recovery.claims),
        [(Password, h.now()), (RecoveryCode, h.now())]
    );
    assert_eq!(recovery.claims.amr(), ["pwd", "lookup_secret", "mfa"]);
    assert_eq!(recovery.claims.aal(), Aal::Aal2);

    // The remembered device: AAL1, naming the device; no proof.
    let token = totp.device_token.unwrap();
    h.clock.advance(86_400);
    let decision =
        h.tf.start_login(&alice, Some(token.expose_secret()), &ctx())
            .await
            .unwrap();
    let claims = decision.claims().expect("granted by the device");
    assert_eq!(
        methods(claims),
        [(Password, h.now()), (RememberedDevice, h.now())]
    );
    assert_eq!(
        claims.methods()[1].authenticator.as_deref(),
        Some(token.id().as_str())
    );
    assert_eq!(claims.amr(), ["pwd", "remembered_device"]);
    assert_eq!(claims.aal(), Aal::Aal1);
    assert!(decision.pending().is_none());

    // A mailed code: AAL1, whatever the code's freshness; a second factor would lift it.
    let m = Harness::new(Arc::new(MemoryStore::new()), mail_code);
    let bob = Principal::new("bob");
    let decision = m.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let LoginDecision::CodeMailed { pending } = decision else {
        panic!("{decision:?}")
    };
    let mailed = m.tf.mailer().last_login_code_for(&bob.user).unwrap();
    let granted =
        m.tf.finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx())
            .await
            .unwrap();
    assert_eq!(
        methods(&granted.claims),
        [(Password, m.now()), (MailedCode, m.now())]
    );
    assert_eq!(granted.claims.amr(), ["pwd", "email_code"]);
    assert_eq!(granted.claims.aal(), Aal::Aal1);
    let checked =
        m.tf.check_proof(&bob.user, &granted.proof, 600)
            .await
            .unwrap();
    let e = checked.satisfies(Aal::Aal2, 600, m.now()).unwrap_err();
    assert_eq!(e.needed, [Otp, RecoveryCode]);

    // Forced set-up at login: the password of the ticket, and the code.
    let f = Harness::new(Arc::new(MemoryStore::new()), required);
    let carol = Principal::new("carol");
    let decision = f.tf.start_login(&carol, None, &ctx()).await.unwrap();
    let password_at = f.now();
    let LoginDecision::MustEnroll { pending } = decision else {
        panic!("{decision:?}")
    };
    f.clock.advance(45);
    let (_, enrolled) = f.forced_enrollment(&pending).await;
    assert_eq!(
        methods(enrolled.proof().claims()),
        [(Password, password_at), (Otp, f.now())]
    );

    // No second factor needed: the password alone.
    for policy in [optional as common::flows::Policy, exempt] {
        let p = Harness::new(Arc::new(MemoryStore::new()), policy);
        let decision = p.tf.start_login(&alice, None, &ctx()).await.unwrap();
        let claims = decision.claims().expect("granted");
        assert_eq!(methods(claims), [(Password, p.now())]);
        assert_eq!((claims.aal(), claims.amr()), (Aal::Aal1, vec!["pwd"]));
    }
}

/// Kratos' `highest_available`: what a session must reach is AAL2 for a user with an
/// authenticator and AAL1 for one without; the status says which.
#[tokio::test]
async fn highest_available_follows_the_status() {
    let h = Harness::new(Arc::new(MemoryStore::new()), optional);
    let alice = Principal::new("alice");
    let before = h.tf.status(&alice.user).await.unwrap();
    assert_eq!(before.highest_available_aal(), Aal::Aal1);
    let decision = h.tf.start_login(&alice, None, &ctx()).await.unwrap();
    let claims = decision.claims().unwrap();
    assert!(
        claims
            .satisfies(before.highest_available_aal(), 600, h.now())
            .is_ok()
    );
    h.enroll(&alice.user).await;
    let after = h.tf.status(&alice.user).await.unwrap();
    assert_eq!(after.highest_available_aal(), Aal::Aal2);
    // The same password-only session no longer satisfies what she can reach.
    assert!(
        claims
            .satisfies(after.highest_available_aal(), 600, h.now())
            .is_err()
    );
}

/// The byte offsets of a proof's payload for user `bob`: version, kind, the user (length
/// and 3 bytes), the factor, `verified_at`, the generation, then the claims (count, and per
/// method its byte, time and authenticator flag).
const FACTOR: usize = 2 + 2 + 3;
const FIRST_METHOD: usize = FACTOR + 1 + 8 + 8 + 1;
const SECOND_METHOD: usize = FIRST_METHOD + 1 + 8 + 1;

fn edit_payload(token: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let (payload, mac) = token.split_once('.').unwrap();
    let mut bytes: Vec<u8> = (0..payload.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&payload[i..i + 2], 16).unwrap())
        .collect();
    edit(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.{mac}")
}

/// Claims cannot be raised: a mailed-code proof edited to claim a TOTP code, a later
/// password or an earlier time parses (it is well-formed) and is refused by the service; so
/// is one sealed by another deployment. A proof of the format before claims has its own
/// error, and the service asks for the second factor again.
#[tokio::test]
async fn edited_claims_are_refused() {
    let m = Harness::new(Arc::new(MemoryStore::new()), mail_code);
    let bob = Principal::new("bob");
    let decision = m.tf.start_login(&bob, None, &ctx()).await.unwrap();
    let pending = decision.into_pending().unwrap();
    let mailed = m.tf.mailer().last_login_code_for(&bob.user).unwrap();
    m.clock.advance(60);
    let proof =
        m.tf.finish_login(&pending, Factor::MailedCode(&mailed), None, &ctx())
            .await
            .unwrap()
            .proof;
    let token = proof.as_str();
    assert_eq!(
        token.parse::<SecondFactorProof>().unwrap().claims(),
        proof.claims()
    );
    let raised = [
        // email_code -> otp, and the factor with it: "AAL2".
        edit_payload(token, |b| {
            b[FACTOR] = 1;
            b[SECOND_METHOD] = 2;
        }),
        // The password checked a second later than it was.
        edit_payload(token, |b| b[FIRST_METHOD + 8] += 1),
        // The mailed code a second later (with the proof's own time, consistently).
        edit_payload(token, |b| {
            b[FACTOR + 8] += 1;
            b[SECOND_METHOD + 8] += 1;
        }),
    ];
    for forged in &raised {
        let parsed: SecondFactorProof = forged.parse().expect("well-formed");
        assert_ne!(parsed.claims(), proof.claims());
        assert!(matches!(
            m.tf.check_proof(&bob.user, &parsed, 600).await,
            Err(Error::InvalidProof)
        ));
        // And through serde, as a host's session store would hand it back.
        let json = serde_json::to_string(forged).unwrap();
        let back: SecondFactorProof = serde_json::from_str(&json).unwrap();
        assert!(matches!(
            m.tf.check_proof(&bob.user, &back, 600).await,
            Err(Error::InvalidProof)
        ));
    }
    m.tf.check_proof(&bob.user, &proof, 600).await.unwrap();

    // The format before claims (version byte 1): its own error, whatever its MAC.
    let outdated = edit_payload(token, |b| b[0] = 1);
    assert_eq!(
        outdated.parse::<SecondFactorProof>(),
        Err(DomainError::OutdatedProof)
    );
    let e = serde_json::from_str::<SecondFactorProof>(&serde_json::to_string(&outdated).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("outdated"), "{e}");
    assert!(matches!(
        Error::from(DomainError::OutdatedProof),
        Error::SecondFactorRequired
    ));
    assert_eq!(
        edit_payload(token, |b| b[0] = 3).parse::<SecondFactorProof>(),
        Err(DomainError::InvalidProof)
    );
}

/// What a host puts in its session or token: `amr`, an `acr`-like level and `auth_time`
/// (serde writes them with the methods, and reads back only what follows from the methods);
/// a step-up merged in lifts the session to AAL2 for the window the host chooses.
#[tokio::test]
async fn a_session_keeps_its_claims_and_steps_up() {
    let h = Harness::new(Arc::new(MemoryStore::new()), required);
    let alice = Principal::new("alice");
    let (secret, _) = h.enroll(&alice.user).await;
    h.clock.advance(30);
    let granted = h.totp_login(&alice, &secret).await;
    let login_at = h.now();
    let session = serde_json::to_value(&granted.claims).unwrap();
    assert_eq!(session["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(session["aal"], "aal2");
    assert_eq!(session["auth_time"], login_at);
    let mut stored: AssuranceClaims = serde_json::from_value(session.clone()).unwrap();
    assert_eq!(stored, granted.claims);
    let mut raised = session.clone();
    raised["methods"][1]["completed_at"] = serde_json::json!(login_at + 7_200);
    assert!(serde_json::from_value::<AssuranceClaims>(raised).is_err());

    // Two hours on: AAL2 within 10 minutes no longer holds; a step-up merged in does.
    h.clock.advance(7_200);
    let e = stored.satisfies(Aal::Aal2, 600, h.now()).unwrap_err();
    assert_eq!(e.needed, [AuthMethod::Otp, AuthMethod::RecoveryCode]);
    let proof =
        h.tf.verify_second_factor(&alice.user, Factor::Totp(&code(&secret, h.now())), &ctx())
            .await
            .unwrap();
    let step = h.tf.check_proof(&alice.user, &proof, 600).await.unwrap();
    stored = stored.merge(&step);
    assert_eq!(stored.satisfies(Aal::Aal2, 600, h.now()), Ok(()));
    // The password keeps its time (the host's session limits run from its login).
    assert_eq!(stored.completed(AuthMethod::Password), Some(login_at));
    assert_eq!(stored.auth_time(), h.now());
    // Nothing reaches AAL3 yet.
    assert!(
        stored
            .satisfies(Aal::Aal3, u64::MAX, h.now())
            .unwrap_err()
            .needed
            .is_empty()
    );
}
