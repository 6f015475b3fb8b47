//! The two saves around a mailed login code, through the service: the code is saved as on its
//! way, the mailer is called, then its answer is saved. These tests put something between
//! the steps: the answer's save failing (as when the process dies after the mailer), and a
//! second resend running while the first one's mailer is still at work. What each
//! interleaving must do is in the manual ("When the mail server fails").
#![cfg(feature = "serde")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;
use twofactor::account::{Factor, LoginContext, LoginDecision, PendingLogin, TwoFactorRecord};
use twofactor::mail::{Mailer, Notice};
use twofactor::store::{SaveOutcome, UserStore, Version, Versioned};
use twofactor::testing::{ManualClock, RecordingMailer, test_keys};
use twofactor::{
    EnrollmentStatus, Error, MemoryStore, Principal, Requirement, TwoFactor, UserId, WhenUnenrolled,
};

const T0: u64 = 1_700_000_010;

#[derive(Debug, thiserror::Error)]
#[error("test store: save refused")]
struct SaveRefused;

/// A memory store whose saves fail while `failing` is set.
#[derive(Default)]
struct Store {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl UserStore for Store {
    type Error = SaveRefused;

    async fn load(&self, user: &UserId) -> Result<Option<Versioned>, SaveRefused> {
        self.inner.load(user).await.map_err(|_| SaveRefused)
    }

    async fn save(
        &self,
        user: &UserId,
        record: &TwoFactorRecord,
        expected: Option<Version>,
    ) -> Result<SaveOutcome, SaveRefused> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(SaveRefused);
        }
        self.inner
            .save(user, record, expected)
            .await
            .map_err(|_| SaveRefused)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("test mailer: not sent")]
struct NotSent;

/// A mailer whose sends succeed unless `down`; one send can be held until the test says how
/// it ends; and one that, once it has answered, makes the store's saves fail (the process
/// "dies" before the answer is saved).
#[derive(Default)]
struct Gated {
    sent: RecordingMailer,
    down: AtomicBool,
    hold_next: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<bool>)>>,
    then_fail_saves: Mutex<Option<Arc<Store>>>,
}

impl Gated {
    /// Holds the next send: `entered` fires when it is in the mailer; it ends as `outcome`
    /// says (`true`: delivered).
    fn hold_next(&self) -> (oneshot::Receiver<()>, oneshot::Sender<bool>) {
        let (entered_tx, entered_rx) = oneshot::channel();
        let (outcome_tx, outcome_rx) = oneshot::channel();
        *self.hold_next.lock().unwrap() = Some((entered_tx, outcome_rx));
        (entered_rx, outcome_tx)
    }
}

impl Mailer for Gated {
    type Error = NotSent;

    async fn send(&self, user: &UserId, notice: &Notice) -> Result<(), NotSent> {
        let held = self.hold_next.lock().unwrap().take();
        let delivered = match held {
            Some((entered, outcome)) => {
                let _ = entered.send(());
                outcome.await.unwrap_or(false)
            }
            None => !self.down.load(Ordering::SeqCst),
        };
        if let Some(store) = self.then_fail_saves.lock().unwrap().take() {
            store.failing.store(true, Ordering::SeqCst);
        }
        if !delivered {
            return Err(NotSent);
        }
        match self.sent.send(user, notice).await {
            Ok(()) => Ok(()),
            Err(never) => match never {},
        }
    }
}

type Policy = fn(&Principal, &EnrollmentStatus, u64) -> Requirement;

fn mail_code(_: &Principal, _: &EnrollmentStatus, _: u64) -> Requirement {
    Requirement::Required {
        when_unenrolled: WhenUnenrolled::MailCode,
        grace_until: None,
        trusted_devices: true,
    }
}

type Service<S = Store> = TwoFactor<Arc<S>, Arc<Gated>, Policy, Arc<ManualClock>>;

fn service<S: UserStore>(store: Arc<S>, mailer: Arc<Gated>) -> Service<S> {
    TwoFactor::builder(store)
        .mailer(mailer)
        .keys(test_keys())
        .policy(mail_code as Policy)
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
}

struct Setup {
    tf: Arc<Service>,
    store: Arc<Store>,
    mailer: Arc<Gated>,
}

fn setup() -> Setup {
    let store = Arc::new(Store::default());
    let mailer = Arc::new(Gated::default());
    Setup {
        tf: Arc::new(service(store.clone(), mailer.clone())),
        store,
        mailer,
    }
}

fn marc() -> Principal {
    Principal::new("marc")
}

impl Setup {
    fn row(&self) -> Value {
        let (json, _) = self.store.inner.json(&marc().user).expect("a row");
        serde_json::from_str(&json).expect("JSON")
    }

    fn last_code(&self) -> String {
        self.mailer
            .sent
            .last_login_code_for(&marc().user)
            .expect("a code")
    }

    async fn logs_in(&self, pending: &PendingLogin, code: &str) -> bool {
        match self
            .tf
            .finish_login(
                pending,
                Factor::MailedCode(code),
                None,
                &LoginContext::new(),
            )
            .await
        {
            Ok(_) => true,
            Err(Error::InvalidCode) => false,
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Whether `code` would log in now, leaving the stored row as it was (nothing used up or
    /// counted; the row comes back at a later version).
    async fn would_log_in(&self, pending: &PendingLogin, code: &str) -> bool {
        let (json, _) = self.store.inner.json(&marc().user).expect("a row");
        let ok = self.logs_in(pending, code).await;
        self.store.inner.insert_json(&marc().user, json);
        ok
    }
}

#[tokio::test]
async fn an_answer_that_is_never_saved_leaves_the_code_usable_and_counted() {
    // Delivered, then the process "dies": the code stays on its way, accepted.
    let s = setup();
    *s.mailer.then_fail_saves.lock().unwrap() = Some(s.store.clone());
    let decision = s.tf.start_login(&marc(), None, &LoginContext::new()).await;
    let Ok(LoginDecision::CodeMailed { pending }) = decision else {
        panic!("{decision:?}")
    };
    s.store.failing.store(false, Ordering::SeqCst);
    let row = s.row();
    assert_eq!(row["outgoing"]["delivery"], "sending", "{row}");
    assert_eq!(
        row["mail_sends"],
        serde_json::json!([T0]),
        "counted as sent"
    );
    let code = s.last_code();
    assert!(
        s.logs_in(&pending, &code).await,
        "it may have arrived: accepted"
    );

    // Not delivered, then the process "dies": the code is on its way as far as the record
    // knows (nobody has it), still counted; the login answers CodeNotSent all the same, and a
    // resend delivers a code that works.
    let s = setup();
    s.mailer.down.store(true, Ordering::SeqCst);
    *s.mailer.then_fail_saves.lock().unwrap() = Some(s.store.clone());
    let decision = s.tf.start_login(&marc(), None, &LoginContext::new()).await;
    let Ok(LoginDecision::CodeNotSent { pending, .. }) = decision else {
        panic!("{decision:?}")
    };
    s.store.failing.store(false, Ordering::SeqCst);
    s.mailer.down.store(false, Ordering::SeqCst);
    assert_eq!(s.row()["outgoing"]["delivery"], "sending");
    assert_eq!(s.row()["mail_sends"], serde_json::json!([T0]));
    s.tf.resend_mailed_code(&pending, &LoginContext::new())
        .await
        .expect("resent");
    let row = s.row();
    assert_eq!(row["outgoing"], Value::Null);
    assert_eq!(row["mail_attempts"], serde_json::json!([T0, T0]));
    assert!(s.logs_in(&pending, &s.last_code()).await);
}

/// Two resends race: the first is still in the mailer when the second runs to the end.
async fn race(second_delivered: bool, first_delivered: bool) -> (Setup, PendingLogin, [String; 3]) {
    let s = setup();
    let ctx = LoginContext::new();
    let decision = s.tf.start_login(&marc(), None, &ctx).await.expect("login");
    let LoginDecision::CodeMailed { pending } = decision else {
        panic!("{decision:?}")
    };
    let before = s.last_code();

    let (entered, finish) = s.mailer.hold_next();
    let first = {
        let (tf, pending) = (s.tf.clone(), pending.clone());
        tokio::spawn(async move { tf.resend_mailed_code(&pending, &LoginContext::new()).await })
    };
    entered.await.expect("the first resend is in the mailer");
    // Its code was saved before the mailer was called.
    assert_eq!(s.row()["outgoing"]["delivery"], "sending");

    s.mailer.down.store(!second_delivered, Ordering::SeqCst);
    let second = s.tf.resend_mailed_code(&pending, &ctx).await;
    assert_eq!(second.is_ok(), second_delivered, "{second:?}");
    s.mailer.down.store(false, Ordering::SeqCst);

    finish.send(first_delivered).expect("release the first");
    let first = first.await.expect("joined");
    assert_eq!(first.is_ok(), first_delivered, "{first:?}");
    let first_code = if first_delivered {
        s.last_code()
    } else {
        String::new()
    };
    let second_code = if second_delivered {
        s.mailer
            .sent
            .sent_to(&marc().user)
            .iter()
            .filter_map(|n| n.expose_login_code().map(str::to_owned))
            .nth(1)
            .expect("the second code")
    } else {
        String::new()
    };
    (s, pending, [before, first_code, second_code])
}

#[tokio::test]
async fn racing_resends_the_one_saved_last_wins_and_the_code_delivered_before_survives() {
    // Both delivered: the later-saved (second) code works, the earlier ones do not.
    let (s, pending, [before, first, second]) = race(true, true).await;
    assert_eq!(s.row()["mail_sends"].as_array().map(Vec::len), Some(3));
    assert!(!s.would_log_in(&pending, &before).await);
    assert!(!s.would_log_in(&pending, &first).await);
    assert!(s.logs_in(&pending, &second).await);

    // The second fails: the code delivered before both still works; the first, delivered
    // after the second was stored, was replaced by it.
    let (s, pending, [before, first, _]) = race(false, true).await;
    assert_eq!(s.row()["outgoing"]["delivery"], "not_sent");
    assert_eq!(s.row()["mail_sends"].as_array().map(Vec::len), Some(2));
    assert!(!s.would_log_in(&pending, &first).await);
    assert!(s.logs_in(&pending, &before).await);

    // The first fails after the second was delivered: its send is given back, the second's
    // code works.
    let (s, pending, [before, _, second]) = race(true, false).await;
    assert_eq!(s.row()["mail_sends"].as_array().map(Vec::len), Some(2));
    assert_eq!(s.row()["mail_attempts"].as_array().map(Vec::len), Some(3));
    assert!(!s.would_log_in(&pending, &before).await);
    assert!(s.logs_in(&pending, &second).await);
}

#[allow(dead_code, unreachable_pub)]
#[path = "common/counting.rs"]
mod counting;

/// What the second save costs: a mailed-code login is one load and two saves (the code on
/// its way, then the mailer's answer, saved from the record just written), and the second
/// step still starts from the record `start_login` ended with: one save, no load.
#[tokio::test]
async fn a_mailed_login_is_one_load_and_three_saves() {
    let store = Arc::new(counting::Counting::new(
        MemoryStore::new(),
        counting::Pause::None,
    ));
    let mailer = Arc::new(Gated::default());
    let tf = service(store.clone(), mailer.clone());
    let ctx = LoginContext::new();
    let decision = tf.start_login(&marc(), None, &ctx).await.expect("login");
    assert_eq!(store.counts(), (1, 2, 0));
    let pending = decision.into_pending().expect("a ticket");
    let code = mailer
        .sent
        .last_login_code_for(&marc().user)
        .expect("a code");
    store.reset();
    tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx)
        .await
        .expect("logs in");
    assert_eq!(store.counts(), (0, 1, 0));

    // Not sent: the same two saves; a resend loads once more.
    mailer.down.store(true, Ordering::SeqCst);
    store.reset();
    let decision = tf.start_login(&marc(), None, &ctx).await.expect("login");
    assert!(matches!(decision, LoginDecision::CodeNotSent { .. }));
    assert_eq!(store.counts(), (1, 2, 0));
    mailer.down.store(false, Ordering::SeqCst);
    store.reset();
    let pending = decision.into_pending().expect("a ticket");
    tf.resend_mailed_code(&pending, &ctx).await.expect("resent");
    assert_eq!(store.counts(), (1, 2, 0));
}
