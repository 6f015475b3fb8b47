//! # The manual: why `twofactor` works the way it does
//!
//! This module holds no code. It explains the decisions behind the defaults, so that a host
//! developer or a security reviewer can check them instead of trusting them.
//!
//! ## Layers
//!
//! ```text
//!  host application (axum, actix, CLI, ERP)
//!        │ checks the password, then calls ↓
//!  ┌──────────────────────────────────────────────────────────────────────┐
//!  │ service    TwoFactor<Store, Mailer, Policy, Clock, Audit>  (async)   │
//!  │            load → one pure transition → compare-and-swap save        │
//!  │            → notices to the Mailer, events to the AuditSink          │
//!  │ seal       SealedStore: a UserStore wrapper (encryption at rest)     │
//!  │ cookie     trusted-device cookie names and headers                   │
//!  │ store      UserStore trait; memory, SQLite, PostgreSQL adapters      │
//!  ├──────────────────────────────────────────── sans-IO below ───────────┤
//!  │ account    TwoFactorRecord + pure transitions                        │
//!  │ policy     EnforcementPolicy: Off / Optional / Required / Exempt     │
//!  │ audit      AuditEvent, AuditKind, the AuditSink trait                │
//!  │ mail       Notice, the Mailer trait                                  │
//!  │ provision  otpauth:// URIs, QR codes                                 │
//!  │ vocabulary UserId, DeviceId, LoginContext, FactorKind, secret slots  │
//!  │ otp        RFC 4226 / RFC 6238, Secret                               │
//!  │ clock      the Clock trait                                           │
//!  └──────────────────────────────────────────────────────────────────────┘
//!        ↑ UserStore (memory, SQLite, PostgreSQL, yours)   ↑ Mailer (yours)
//! ```
//!
//! Each module imports only the modules listed below it (`tests/layers.rs` checks it), so
//! the words every layer shares live in [`vocabulary`](crate::vocabulary), at the bottom,
//! and no two modules import each other. [`testing`](crate::testing) (test doubles) sits on
//! top of everything and is for tests only. The traits at the edges (`Mailer`, `AuditSink`)
//! are declared below the domain, which returns the notices and audit kinds to deliver; only
//! the service calls them.
//!
//! Everything below the service is synchronous and does no I/O: it never reads a clock or the
//! operating system's random number generator except through what is passed in. That makes
//! every rule testable at exact instants (RFC vectors, expiry edges, grace periods) and lets a
//! host run the core inside any runtime or none.
//!
//! ## Why SHA-1, 6 digits and 30 seconds by default
//!
//! Authenticator apps are the other half of the protocol, and several of them (Google
//! Authenticator among them, for years) ignore the `algorithm`, `digits` and `period`
//! parameters of the provisioning URI and compute SHA-1, 6 digits, 30 seconds regardless. A
//! user whose app silently does that can never log in. HMAC-SHA-1 is still sound for this use:
//! the collision attacks on SHA-1 do not give an attacker HMAC outputs without the key.
//! SHA-256 and SHA-512 are available for deployments that control the authenticator.
//!
//! ## The skew window
//!
//! A code is checked against the current time step and [`otp::DEFAULT_SKEW`](crate::otp::DEFAULT_SKEW)
//! (one) step either side: phones drift, and people take seconds to type. Every extra step
//! multiplies an online guesser's odds, so the window is capped at
//! [`otp::MAX_SKEW`](crate::otp::MAX_SKEW). Verification computes every step in the window,
//! compares each in constant time with `subtle` and never stops at the first match, so the time
//! it takes does not reveal which step matched. It keys the HMAC once per call and allocates
//! nothing.
//!
//! ## Replay protection
//!
//! RFC 6238 §5.2 says a verifier must not accept the second attempt of the same code. Verification
//! therefore returns the *time step* that matched, not a `bool`, and takes the last accepted
//! step: any step at or below it is refused. The service stores the new step in the user's
//! record with a compare-and-swap save, so two requests racing with the same code cannot both
//! win: one save succeeds, the other sees a version conflict, reloads, and is then refused as
//! a replay. The same mechanism makes recovery codes and mailed codes single-use.
//!
//! When the digits typed match more than one step of the window (adjacent steps share a code
//! about once in a million), the highest matching step is recorded, so the same six digits are
//! never accepted twice while they are still valid; at worst a user waits for the next step.
//!
//! ## One record, one compare-and-swap
//!
//! All mutable 2FA state of a user lives in one record with a version number, and
//! [`UserStore::save`](crate::UserStore::save) writes only if the version is unchanged. A host
//! that implements the store for its own database writes one conditional `UPDATE`; it cannot
//! get replay protection, one-time recovery codes or throttles subtly wrong, and those hold
//! across any number of app servers that share the database.
//!
//! To save a load, [`finish_login`](crate::TwoFactor::finish_login) starts from the record
//! that [`start_login`](crate::TwoFactor::start_login) kept in memory (see
//! [`login_snapshot_capacity`](crate::service::TwoFactorBuilder::login_snapshot_capacity)).
//! A stale snapshot is harmless: its verdict counts only if the save with the snapshot's
//! version succeeds, which proves the stored record *was* the snapshot; if another server,
//! an admin or a concurrent request changed it, the save conflicts and the check runs again
//! on a fresh load. A verdict that would save nothing (a throttled attempt, say) is never
//! taken from a snapshot, since nothing would validate it: it is checked again on a fresh
//! load. This rests on versions never repeating for a user, which the store contract
//! guarantees; a host that deletes and re-creates rows behind the service should turn
//! snapshots off.
//!
//! ## Rate limits
//!
//! A 6-digit code with a ±1 window gives a guesser three chances in a million per try. Without
//! a limit, that is broken in a day of scripted attempts. Code checks are limited per user
//! (default 5 per hour) and *counted before the check*: the increment and the verdict are saved
//! by the same compare-and-swap, so concurrent guesses cannot slip past the limit. Mailed codes
//! are also limited per hour, because every send costs the user an e-mail and the host money.
//!
//! There is **one budget per user**, whatever the call: second steps of a login
//! (`finish_login`), confirming codes (`finish_enrollment`) and the codes that authorise a
//! rotation or turning 2FA off all count against it, including `finish_login` calls made
//! before the user has any factor (they are refused, and counted before anything is looked
//! at). So someone who knows the password can spend the budget with nonsense and keep the
//! user from confirming a set-up, or from logging in once set up, for up to an hour. This is
//! deliberate:
//!
//! - A separate budget for enrollment would not stop it. Wherever the password alone may
//!   enroll (an optional policy, a running grace period, forced enrollment: see
//!   [who may enroll](#who-may-enroll)), the set-up page is open to whoever passed the
//!   password check, so the same person can submit wrong confirming codes, or restart the
//!   enrollment and replace the pending secret; under forced enrollment they can even set up
//!   an authenticator of their own, which no throttle prevents.
//! - Every one of those calls is a guess at something: a mailed code, the active
//!   authenticator, or an administrator-provisioned secret whose confirmation completes a
//!   login. One budget means no mix of calls gives a guesser more than 5 tries an hour.
//!
//! The problem to fix is the leaked password, not the throttle: the block lifts by itself an
//! hour after the failures, and the audit trail shows them (`LoginFailed`, `EnrollmentFailed`,
//! `LoginThrottled`, with the request's context for login calls).
//!
//! ## Forced enrollment at login
//!
//! Under a policy that blocks users without an authenticator
//! ([`WhenUnenrolled::BlockUntilEnrolled`](crate::WhenUnenrolled::BlockUntilEnrolled)),
//! `start_login` answers [`LoginDecision::MustEnroll`](crate::LoginDecision::MustEnroll), and
//! only enrolling gets the user in. The two halves are linked explicitly:
//!
//! 1. **Re-authentication.** The password check just before `start_login` is the fresh
//!    re-authentication that `start_enrollment` needs. `MustEnroll` carries a
//!    [`PendingLogin`](crate::PendingLogin): keep it in the half-logged-in session and pass
//!    `pending.principal()` and `pending.reauthenticated()` (the time `start_login` ran) to
//!    `start_enrollment`. It stays fresh for
//!    [`Settings::reauth_max_age`](crate::Settings::reauth_max_age) (10 minutes); after that
//!    `start_enrollment` refuses it: ask for the password again. The proof lives in the
//!    session, not in the record, because only the host knows *which* browser passed the
//!    password check.
//! 2. **Completion.** `start_login` records the login as waiting for enrollment, open for
//!    [`Settings::login_challenge_ttl`](crate::Settings::login_challenge_ttl) (15 minutes).
//!    A successful `finish_enrollment` while it is open completes
//!    it: [`Enrolled::login_completed`](crate::account::Enrolled::login_completed) is `true`, and the
//!    audit trail records `Enrolled` then `LoginSucceeded { factor: Totp }` (the confirming
//!    code is that login's second factor). Later, or when no login was waiting (enrollment
//!    from an account page), 2FA is on but no login is completed: ask for the password again,
//!    and the next login asks for a new code (the confirming one is spent).
//! 3. **Which session.** The record knows *that* a login is waiting, not from where: log in
//!    only the session that received `MustEnroll`.
//!
//! ```
//! use twofactor::account::{LoginContext, LoginDecision, Reauthenticated};
//! use twofactor::{Clock, KeyUri, MemoryStore, Principal, RequiredForAll, Totp, TwoFactor};
//! use twofactor::testing::{ManualClock, RecordingMailer};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(1_700_000_000);
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .policy(RequiredForAll::default())
//!     .clock(&clock)
//!     .build();
//! let alice = Principal::new("alice");
//!
//! // The password is right; the session keeps the pending login (who, and when).
//! let decision = tf.start_login(&alice, None, &LoginContext::new()).await?;
//! let LoginDecision::MustEnroll { pending } = decision else { panic!("{decision:?}") };
//! assert_eq!(pending.reauthenticated(), Reauthenticated::at(clock.now()));
//!
//! // The set-up page, a minute later: that password check is the re-authentication.
//! clock.advance(60);
//! let started = tf
//!     .start_enrollment(pending.principal(), "alice", pending.reauthenticated())
//!     .await?;
//! let app = KeyUri::parse(started.uri())?.into_secret();
//! clock.advance(60);
//! let code = Totp::default().generate(&app, clock.now()).to_string();
//! let enrolled = tf.finish_enrollment(&alice.user, &code).await?;
//! assert!(enrolled.login_completed()); // log this session in
//! # Ok(())
//! # }
//! ```
//!
//! ## Who may enroll
//!
//! [`start_enrollment`](crate::TwoFactor::start_enrollment) always needs a fresh password
//! check. Whether that is *enough* depends on what the password alone gets the user today,
//! which is why it takes the [`Principal`](crate::Principal) and asks the policy:
//!
//! | the policy says, for this unenrolled user | to enroll, the user needs |
//! |---|---|
//! | `Off`, `Exempt`, `Optional` | the password |
//! | `Required`, grace period running | the password (it alone logs them in until then) |
//! | `Required { when_unenrolled: BlockUntilEnrolled }` | the password (enrolling *is* the login: [forced enrollment](#forced-enrollment-at-login)) |
//! | `Required { when_unenrolled: MailCode }`, no grace left | the password **and** a login with the mailed code, completed within [`Settings::reauth_max_age`](crate::Settings::reauth_max_age) (10 minutes) |
//!
//! The last row closes a downgrade: without it, someone who has the password but not the
//! mailbox could skip the mailed code, enroll an authenticator of their own and log in with
//! it from then on; the mailbox factor would never have been used. `finish_login` with a
//! mailed code records when it succeeded, and `start_enrollment` refuses with
//! [`Error::SecondFactorRequired`](crate::Error::SecondFactorRequired) without such a
//! recent login: log the user in with the mailed code, then send them to the set-up page.
//! A trusted-device login does not count (a stolen cookie must not turn into a permanent
//! factor); begin the login without the token to mail a code.
//!
//! The check is made when enrollment starts, not again when it is confirmed: an
//! authenticator enrolled a moment before the policy changes survives the change anyway, so
//! re-checking at `finish_enrollment` would add nothing. Rotation needs a code from the
//! current authenticator, and an administrator's
//! [provisioning by mail](crate::TwoFactor::start_enrollment_by_mail_dangerous) sends the
//! secret to the mailbox itself, so both already use a second factor. During a grace period
//! the password alone logs in, and enrolling then is the point of the grace period; the
//! [`Enabled`](crate::Notice::Enabled) notice tells the mailbox owner either way.
//!
//! ```
//! use twofactor::account::{Factor, LoginContext, LoginDecision, Reauthenticated};
//! use twofactor::{Clock, Error, MemoryStore, Principal, RequiredForAll, TwoFactor, WhenUnenrolled};
//! use twofactor::testing::{ManualClock, RecordingMailer};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = ManualClock::new(1_700_000_000);
//! let policy = RequiredForAll::new(WhenUnenrolled::MailCode);
//! let tf = TwoFactor::builder(MemoryStore::new())
//!     .mailer(RecordingMailer::new())
//!     .policy(policy)
//!     .clock(&clock)
//!     .build();
//! let bob = Principal::new("bob");
//! let ctx = LoginContext::new();
//! let decision = tf.start_login(&bob, None, &ctx).await?;
//! let LoginDecision::CodeMailed { pending } = decision else { panic!("{decision:?}") };
//!
//! // The password alone does not open the set-up page:
//! let refused = tf.start_enrollment(&bob, "bob", pending.reauthenticated()).await;
//! assert!(matches!(refused, Err(Error::SecondFactorRequired)));
//!
//! // After the mailed code, it does (for the next 10 minutes):
//! let code = tf.mailer().last_login_code_for(&bob.user).unwrap();
//! tf.finish_login(&pending, Factor::MailedCode(&code), None, &ctx).await?;
//! tf.start_enrollment(&bob, "bob", pending.reauthenticated()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Login challenges
//!
//! When `start_login` asks an enrolled user for a TOTP or recovery code
//! ([`LoginDecision::Challenge`](crate::LoginDecision::Challenge)), it stores nothing: it
//! loads the record, asks the policy and answers, with no write. A full login is one load +
//! save round trip, not two. The link between the two steps is the
//! [`PendingLogin`](crate::PendingLogin) the answer carries (webauthn-rs style: the state a
//! host keeps between two calls is a type the library hands out and takes back):
//!
//! - `finish_login` takes the pending login, not a user id: there is no way to check a
//!   login's second factor without one. The pending login names the principal the policy was
//!   asked about (so the host does not rebuild roles and tenant for the second call), the
//!   time of the password check, its deadline
//!   ([`Settings::login_challenge_ttl`](crate::Settings::login_challenge_ttl), 15 minutes by
//!   default; for a mailed code, the code's expiry: [`Settings::mailed_code_ttl`](crate::Settings::mailed_code_ttl),
//!   1 hour by default, since mail can be slow) and the factors it accepts.
//!   After the deadline `finish_login` refuses with
//!   [`Error::LoginExpired`](crate::Error::LoginExpired) before loading anything; a factor
//!   it does not accept is counted and refused like a wrong code.
//! - Guessing is bounded by the code-check throttle: every `finish_login` is counted before
//!   the code is looked at, in the same compare-and-swap save as the verdict.
//! - Replay protection (the last used time step, consumed recovery codes) and the policy,
//!   asked fresh by `finish_login` about the pending login's principal, are unchanged.
//!
//! ## The pending login
//!
//! A [`PendingLogin`](crate::PendingLogin) holds nothing secret (a principal, three times, a
//! list of factor kinds) and is serde-serializable, so it fits any session store. It is not a
//! credential: it grants nothing by itself. What an edited one can do:
//!
//! | the edit | the effect |
//! |---|---|
//! | another user | that user's second step opens, exactly as their password would have: their factor is still needed |
//! | other roles or tenant | the policy may answer differently at `finish_login`, but `finish_login` never grants without a factor verified against the stored record; the answer only decides whether a trusted-device token may be issued |
//! | a later deadline | code checks stay throttled (5 an hour); a mailed code stays bound to its stored expiry and its stored open login |
//! | other accepted factors | each factor is checked against the stored record: a mailed code only exists if the library mailed one; TOTP and recovery codes need an enrolled factor |
//! | `Enrollment` for a user under a mailed-code policy | `start_enrollment` asks the policy and the stored record (a recent mailed-code login), not the pending value: refused with `SecondFactorRequired`; `finish_enrollment` completes only a login stored as waiting for enrollment |
//!
//! What a pending login does stand for is the host's **password check**: a client that can
//! write it can claim a password check that never happened, and name any user. So keep it
//! where the client cannot edit it — a server-side session, or a signed or encrypted session
//! cookie — as webauthn-rs asks for its ceremony states. Deserializing is strict (unknown
//! fields, a deadline not after the password check, a second-factor step listing a mailed
//! code or nothing are refused), so a damaged session fails closed.
//!
//! Logins that need state still store it, with an expiry: a mailed code (its salted hash, and
//! the login waiting for it, open as long as the code: a late mailed code is refused and
//! audited as `Expired`), a login waiting for enrollment
//! ([forced enrollment](#forced-enrollment-at-login)), and a trusted device's last use.
//!
//! ## What the caller sees, and what the audit trail sees
//!
//! A wrong code, a replayed code and a late mailed code return the same error to the caller:
//! telling them apart would tell an attacker which codes were once valid. Unknown users and users
//! without 2FA look the same from outside, so the login flow does not enumerate accounts. The
//! audit trail records the reason, for the people who investigate, with one exception: a used
//! recovery code is audited as `WrongCode`, exactly like a code that was never issued.
//!
//! **Why the trail does not tell a used recovery code from a wrong one.** The same error is not
//! enough: the audit sink runs inside the request (a host formats or writes each event before
//! the response goes out), so whatever the trail tells apart, the response time tells apart
//! too. Timed through [`TwoFactor::finish_login`](crate::TwoFactor::finish_login)
//! (`benches/dudect.rs`, results in `benches/DUDECT.md`), a used code audited as `Replayed`
//! was refused measurably differently from a code never issued. That difference told whoever
//! holds a recovery code whether it was ever issued to this user: that a printed sheet, a
//! photo or a leaked list belongs to this account and is its current set, so its other codes
//! are worth trying. Now both are one refusal in every respect a host, its logs or the network
//! can see: the same error ([`Error::InvalidCode`](crate::Error::InvalidCode)), the same audit
//! event (`LoginFailed { reason: WrongCode }`), the same notice (`FailedCodeAttempt`), the
//! same record saved (one more counted check), and the same work in the check (a used entry
//! simply does not match; the typed code is parsed through a table, whatever its symbols).
//! `tests/recovery_refusal.rs` pins it. What the operator gives up: the trail no longer says
//! that a used recovery code was tried. Every use of a code is still in it once, as
//! `RecoveryCodeUsed` with the login it completed, and repeated failed recovery-code logins
//! still show as `LoginFailed { factor: RecoveryCode, .. }`.
//!
//! **A replayed TOTP code is still audited as `Replayed`**: it is how a relayed or
//! shoulder-surfed code shows up, and operators alert on it
//! ([`AuditKind::is_replay`](crate::audit::AuditKind::is_replay)). That refusal differs from
//! a wrong code's in time as well (the event, and the branch that picks it; row "TOTP replayed
//! vs wrong" in `benches/DUDECT.md`). What the difference reveals, exactly: that the digits
//! sent are this user's code for a time step of the verification window (by default the
//! current step and one either side) and that a login was accepted at that step or a later
//! one, i.e. that the user logged in with a code within about the last minute and a half.
//! Only someone who already holds a valid code can ask (seen, or guessed at one chance in a
//! million per try: the odds of guessing a code that would have let them in had the user not
//! just logged in), and the answer never lets them in: those steps are spent, and the next
//! step's code has nothing to do with them.
//!
//! Every failure is an [`Error`](crate::Error) whose [`kind`](crate::Error::kind) a host
//! matches on once (wrong code 401, throttled 429 with `Retry-After`, malformed input 400,
//! not allowed now 403, conflict 409, unavailable 503, misconfigured 500: the table is on
//! [`Error`](crate::Error)). Throttling in particular arrives one way, as
//! [`Error::Throttled`](crate::Error::Throttled), from `start_login` as from every call that
//! checks a code.
//!
//! ## Secrets
//!
//! [`Secret`](crate::Secret) zeroizes its bytes on drop, prints `[REDACTED]`, and has no
//! `PartialEq`. New secrets are 160 bits from the OS CSPRNG (RFC 4226 recommends 160, requires
//! 128; we refuse to generate fewer than 128). Importing a shorter existing secret is allowed —
//! some services still issue 80-bit ones — and [`Secret::strength`](crate::Secret::strength)
//! says how strong it is. Recovery codes and trusted-device tokens are stored only as hashes;
//! they are shown once.
//!
//! ## Threat model: who reads and who writes the table
//!
//! All of a user's 2FA state is one row: the [`TwoFactorRecord`](crate::account::TwoFactorRecord) a
//! [`UserStore`](crate::store::UserStore) keeps. Four kinds of people can get at it.
//!
//! **Anyone on the network** knows usernames and may know passwords. They must not get past
//! the second factor, and may not learn which time step matched or whether a guess was close:
//! codes are compared in constant time, every failure is the same `InvalidCode`, code checks
//! are throttled (counted before the check), a code is accepted once (the last used step
//! rides on the compare-and-swap), unknown users and users without 2FA look alike.
//!
//! **Someone who reads the table** (a leaked backup, an analytics replica, an SQL injection
//! elsewhere in the application) must not get what a login needs. With
//! [`SealedStore`](crate::seal::SealedStore) the TOTP secrets are encrypted under a key that
//! lives outside the database, bound to the user and slot. Recovery codes and trusted-device
//! tokens are stored as hashes only.
//!
//! With a server-side [`CodeKey`](crate::account::CodeKey), recovery and mailed codes are
//! stored as keyed hashes, so the table alone cannot test a guess offline; without one, a
//! mailed code falls in microseconds (see [offline guessing](#offline-guessing-of-recovery-and-mailed-codes)
//! for the costs).
//!
//! **Someone who writes the table** (an SQL injection, a compromised replica promoted to
//! primary, an operator's mistake) must not be able to change what a login decides.
//! - *Without* sealing, nothing stops them: they can write a secret they know. Decoding is
//!   strict all the same: a row that is not exactly a record this crate wrote (an array, `{}`,
//!   an object that lost fields or gained some, a wrong type anywhere, an unknown format
//!   version) is a corrupt row, on every store. The login fails closed with a store error and
//!   nothing is saved over the row, so a damaged row never reads as "no 2FA" (which an opt-in
//!   policy would let in on the password alone, and an enforcing one would answer with a fresh
//!   enrollment by whoever holds the password), and the evidence stays for the operator.
//! - *With* [`SealedStore`](crate::seal::SealedStore), every record it saves carries a tag (a
//!   MAC, HMAC-SHA-256 under a key the [`Keyring`](crate::seal::Keyring) derives from each of
//!   its keys) over the canonical encoding of the whole record, bound to the user id and to
//!   the version the save creates. Every load checks it before using anything in the record.
//!   A planted trusted device or recovery code, cleared throttle counters, an older secret
//!   written back after a rotation, a row copied from another user, a row moved to another
//!   version, a removed tag: all are refused like a corrupt row
//!   ([`SealedStoreError::Tampered`](crate::seal::SealedStoreError::Tampered) or
//!   [`Untagged`](crate::seal::SealedStoreError::Untagged)). While
//!   [`accept_untagged`](crate::seal::SealedStore::accept_untagged) or
//!   [`accept_unsealed`](crate::seal::SealedStore::accept_unsealed) is on (migrating), a
//!   record without a tag is accepted, so those switches must be turned off when the migration
//!   is done.
//!
//! What no table-level check can catch, without state kept outside the table:
//! - **Rolling a whole row back** to an older state it really had (the record *and* its
//!   version column, as in a restored backup): the tag of that state was valid. This revives a
//!   revoked secret, a consumed recovery code or a revoked device, and resets the throttle.
//!   Only a counter outside the database (for instance the latest version of each user kept
//!   by your application elsewhere, or a transparency log) detects it; this crate does not
//!   keep one. Restore backups of this table only together with a reset of 2FA for the users
//!   whose state changed since.
//! - **Deleting the row**: a user with no record has no 2FA. If your application must know
//!   that a user had 2FA, keep that fact elsewhere too (your user table), and treat "no
//!   record" for such a user as an error.
//!
//! **The client** (the browser between the two login steps) must not be able to edit the
//! [`PendingLogin`](crate::PendingLogin) the host keeps for it: what an edited one can and
//! cannot do is in [the pending login](#the-pending-login).
//!
//! **The host application** is trusted: it decides who is logged in. The API makes the safe
//! path the easy one (paired calls carry the state, dangerous switches are named so), but a
//! host that grants a session without asking the library cannot be stopped by it.
//!
//! ## Offline guessing of recovery and mailed codes
//!
//! Someone who reads the table (a backup, a replica, a leaked dump) gets every stored digest
//! and its salt. Whether they can then test guesses offline, at GPU speed and without the
//! throttle, depends on the server-side [`CodeKey`](crate::account::CodeKey):
//!
//! - **With a code key** (recommended; [`TwoFactorBuilder::code_key`](crate::service::TwoFactorBuilder::code_key),
//!   or [`Keyring::code_key`](crate::seal::Keyring::code_key) to derive it from the sealing
//!   key): recovery and mailed codes are stored as `HMAC-SHA-256(key, label || 0 || salt ||
//!   code)`. The table alone cannot test a single guess: the attacker would first have to find
//!   a 256-bit key (2^256 work). Only the server, holding the key, can check a code, and it
//!   checks at most 5 per user per hour.
//! - **Without a code key**: salted SHA-256, as in 0.1.0. One SHA-256 per guess tests a guess
//!   against every code of a set (one salt per set). At 10^10 SHA-256 per second per GPU (a
//!   current high-end card does 1-2 × 10^10 on short inputs):
//!
//! | Code | Space | Expected guesses to hit one (a set of 10: N / 11) | Time, 1 GPU, no key | With key |
//! |---|---:|---:|---:|---|
//! | recovery code (16 symbols, 80 bits) | 2^80 ≈ 1.2 × 10^24 | ≈ 1.1 × 10^23 | ≈ 350,000 years | impossible offline |
//! | legacy recovery code (10 symbols, 50 bits, 0.1.0 sets) | 2^50 ≈ 1.1 × 10^15 | ≈ 1.0 × 10^14 | ≈ 3 hours (≈ 1 day for all 10) | legacy sets are unkeyed: regenerate |
//! | mailed code (6 digits, one code) | 10^6 | 5 × 10^5 | ≈ 50 µs | impossible offline |
//!
//! So a new recovery set is out of reach of offline guessing even without a key (a million
//! GPUs would still need about four months); the key makes it impossible rather than expensive.
//! A mailed code without a key falls as soon as its digest is read: it is only useful while it
//! is valid (one hour by default) and only together with the password, but a live replica
//! gives exactly that. **If your policy mails codes, configure a code key.** We keep accepting
//! a deployment without one (it stays compatible with 0.1.0 hosts and every server needs the
//! same key, which the library cannot invent), and the stored scheme says `sha256` so an audit
//! of the table shows it.
//!
//! A slow hash (Argon2, scrypt) was not chosen: it cannot save a 6-digit code (10^6 guesses
//! × 100 ms is a day on one core, minutes on a cluster), it would cost the server CPU on every
//! online attempt, and the key already removes offline guessing at the cost of one HMAC.
//!
//! Sets generated by 0.1.0 keep working (10-symbol codes, salted SHA-256) until the user
//! regenerates them; after that, the new set uses the current key. Each stored set and mailed
//! code records its scheme (`{"alg": "sha256"}` or `{"alg": "hmac_sha256", "key_id": ...}`).
//! The key id is an HMAC of a fixed label under the key: it names the key without revealing it.
//!
//! **Rotation.** Make the new key current and keep the old one with
//! [`old_code_key`](crate::service::TwoFactorBuilder::old_code_key): sets hashed under it keep
//! working, new sets and mailed codes use the new key. Mailed codes expire within the hour;
//! recovery sets last until regenerated, so keep the old key until your users have regenerated
//! (or ask them to). A record hashed under a key the service does not hold is never read as a
//! wrong code: the check fails closed with [`Error::UnknownCodeKey`](crate::service::Error::UnknownCodeKey)
//! before an attempt is counted, and TOTP logins of that user are unaffected.
//!
//! Trusted-device tokens need no key: they are 256 random bits, stored as SHA-256. Testing a
//! guess offline means guessing 256 bits.
//!
//! **Constant time.** Every code check compares against every stored digest with `subtle`
//! and selects the outcome without branching on which digest matched; for recovery codes the
//! used flag is folded into the match, so a used code is the same miss as a code that never
//! existed, at the same cost, and is refused the same way all along the call (see
//! [what the audit trail sees](#what-the-caller-sees-and-what-the-audit-trail-sees)).
//! `benches/dudect.rs` measures it at two depths: the record's inner check, and the whole
//! [`TwoFactor::finish_login`](crate::TwoFactor::finish_login) a host calls (dudect-style:
//! classes interleaved at random, Welch's t-test with percentile crops, a calibration row
//! that must show an artificial 1-2 ns difference, an A/A control that must not show
//! anything); `benches/DUDECT.md` holds the recorded runs.
