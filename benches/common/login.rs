//! One user logging in again and again through the `TwoFactor` service, as `benches/stores.rs`
//! times it and `benches/seal_cost.rs` counts it: TOTP logins with precomputed codes, each at
//! the next time step, on a store of the caller's choice.

use std::hint::black_box;
use std::sync::Arc;

use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
use twofactor::audit::{AuditEvent, AuditSink};
use twofactor::mail::{Mailer, Notice};
use twofactor::seal::{Keyring, SealedStore};
use twofactor::service::TwoFactor;
use twofactor::store::UserStore;
use twofactor::testing::ManualClock;
use twofactor::{
    Clock, EnrollmentStatus, KeyUri, MemoryStore, Principal, Requirement, Secret, Totp, UserId,
};

/// A mailer that accepts and drops every notice.
pub struct Discard;

impl Mailer for Discard {
    type Error = std::convert::Infallible;
    async fn send(&self, _: &UserId, _: &Notice) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The audit trail, dropped: the bench measures the store and the login, not a sink. (The
/// default `TracingAudit` writes every event to standard error when no `tracing` subscriber
/// is installed, which would be timed too.)
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _: &AuditEvent) {}
}

pub type Policy = fn(&Principal, &EnrollmentStatus, u64) -> Requirement;

pub fn required(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::required()
}

/// One user logging in again and again through their own service instance (own clock),
/// all instances sharing one store.
pub struct Client<S: UserStore> {
    pub tf: TwoFactor<Arc<S>, Discard, Policy, Arc<ManualClock>, NoAudit>,
    pub clock: Arc<ManualClock>,
    pub who: Principal,
    pub secret: Secret,
}

pub const T0: u64 = 1_700_000_010;

impl<S: UserStore> Client<S> {
    pub async fn enrolled(store: Arc<S>, name: &str) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        let tf = TwoFactor::builder(store)
            .mailer(Discard)
            .keys(twofactor::testing::test_keys())
            .policy(required as Policy)
            .clock(clock.clone())
            .audit(NoAudit)
            .build();
        let who = Principal::new(name);
        let started = tf
            .start_enrollment(&who, name, Reauthenticated::at(clock.now()))
            .await
            .expect("start enrollment");
        let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
        let code = Totp::default().generate(&secret, clock.now()).to_string();
        tf.finish_enrollment(&who.user, &code)
            .await
            .expect("finish enrollment");
        Client {
            tf,
            clock,
            who,
            secret,
        }
    }

    /// A user with `n` authenticators (the first enrolled, the others added with the proof of
    /// that enrollment), whose logins use the code of the last one.
    pub async fn with_authenticators(store: Arc<S>, name: &str, n: usize) -> Self {
        let mut client = Self::enrolled(store, name).await;
        let now = client.clock.now();
        let pending = client
            .tf
            .start_login(&client.who, None, &LoginContext::new())
            .await
            .expect("begin login")
            .into_pending()
            .expect("a challenge");
        client.clock.set(now + 30);
        let code = Totp::default()
            .generate(&client.secret, now + 30)
            .to_string();
        let proof = client
            .tf
            .finish_login(&pending, Factor::Totp(&code), None, &LoginContext::new())
            .await
            .expect("login")
            .proof;
        for i in 1..n {
            let started = client
                .tf
                .start_adding_authenticator(
                    &client.who.user,
                    &format!("Phone {i}"),
                    name,
                    &proof,
                    Reauthenticated::at(client.clock.now()),
                )
                .await
                .expect("start adding");
            let secret = KeyUri::parse(started.uri()).expect("uri").into_secret();
            let code = Totp::default()
                .generate(&secret, client.clock.now())
                .to_string();
            client
                .tf
                .finish_adding_authenticator(&client.who.user, &code)
                .await
                .expect("added");
            client.secret = secret;
        }
        client
    }

    /// Times and codes of the next `n` logins, one per time step.
    pub fn next_codes(&self, n: u64) -> Vec<(u64, [u8; 6])> {
        self.next_codes_every(n, 30)
    }

    /// Times and codes of the next `n` logins, `every` seconds apart (a multiple of 30). At
    /// 30 s, the record keeps about 30 used login tickets (a ticket is remembered for its 15
    /// minutes); from 15 minutes apart, one.
    ///
    /// A step whose code equals a neighbouring step's (one in about 500,000) is skipped: the
    /// verifier may match the neighbour instead, which replay protection then refuses, and a
    /// benchmark of millions of logins would meet one.
    pub fn next_codes_every(&self, n: u64, every: u64) -> Vec<(u64, [u8; 6])> {
        let code = |t: u64| Totp::default().generate(&self.secret, t).to_string();
        let mut t = self.clock.now() + every;
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        while (out.len() as u64) < n {
            let this = code(t);
            if this != code(t - 30) && this != code(t + 30) {
                out.push((t, this.as_bytes().try_into().expect("6 digits")));
            }
            t += every;
        }
        out
    }

    /// `n` logins `every` seconds apart, untimed: the record and the caches at their steady
    /// state.
    pub async fn warm_up(&self, n: u64, every: u64) {
        for code in &self.next_codes_every(n, every) {
            self.login(code).await;
        }
    }

    /// One full login at `time` with its precomputed `code`.
    pub async fn login(&self, &(time, ref code): &(u64, [u8; 6])) {
        self.clock.set(time);
        let ctx = LoginContext::new();
        let decision = self
            .tf
            .start_login(&self.who, None, &ctx)
            .await
            .expect("begin login");
        debug_assert!(matches!(decision, LoginDecision::Challenge { .. }));
        let pending = black_box(decision).into_pending().expect("a challenge");
        let code = std::str::from_utf8(code).expect("ascii digits");
        let granted = self
            .tf
            .finish_login(&pending, Factor::Totp(code), None, &ctx)
            .await
            .expect("login accepted");
        black_box(granted);
    }
}

/// A memory store behind `SealedStore` with a `Keyring` (its default cache of opened rows):
/// what sealing adds to a login.
pub fn sealed_memory() -> SealedStore<MemoryStore, Keyring> {
    SealedStore::new(
        MemoryStore::new(),
        Keyring::new("bench", &[7; 32]).expect("key"),
    )
}
